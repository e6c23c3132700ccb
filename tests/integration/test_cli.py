"""The command line: help texts, API keys, and ``serve`` on the embedded database."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REBILL = [sys.executable, "-m", "rebill.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REBILL_NOW")}
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["serve"],
        ["migrate"],
        ["apikey"],
        ["apikey", "create"],
        ["schema"],
        ["worker"],
        ["outbox"],
        ["seed"],
        ["bulk"],
    ],
)
def test_every_command_has_help(command):
    result = subprocess.run([*REBILL, *command, "--help"], capture_output=True, text=True, env=_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout
    assert len(result.stdout) > 200


def test_apikey_create_prints_the_secret_last_and_it_works(database_url, clean_db):
    result = subprocess.run(
        [*REBILL, "apikey", "create", "--name", "ops", "--scope", "read", "--scope", "write"],
        capture_output=True,
        text=True,
        env=_env(DATABASE_URL=database_url),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    secret = result.stdout.strip().splitlines()[-1]
    assert secret.startswith("rbk_")
    refused = subprocess.run(
        [*REBILL, "apikey", "create", "--name", "bad", "--scope", "superuser"],
        capture_output=True,
        text=True,
        env=_env(DATABASE_URL=database_url),
        timeout=60,
    )
    assert refused.returncode == 1
    assert "unknown scope" in refused.stderr
    assert "Traceback" not in refused.stderr


def _wait_healthy(port: int, proc: subprocess.Popen[str], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited early: {proc.stderr.read() if proc.stderr else ''}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
        except httpx.HTTPError:
            time.sleep(0.3)
    raise AssertionError("serve did not become healthy")


@pytest.mark.slow
def test_serve_runs_on_the_embedded_database_stops_on_ctrl_c_and_reuses_its_data(tmp_path: Path):
    data_dir = tmp_path / "data"
    env = _env(REBILL_DATA_DIR=str(data_dir))
    port = _free_port()
    serve = subprocess.Popen(
        [*REBILL, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert _wait_healthy(port, serve) == {"status": "ok", "database": "up"}
        created = subprocess.run(
            [*REBILL, "apikey", "create", "--name", "first", "--scope", "read"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert created.returncode == 0, created.stderr
        secret = created.stdout.strip().splitlines()[-1]
        ok = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": "{ subscriptions { totalCount } }"},
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert ok.json()["data"] == {"subscriptions": {"totalCount": 0}}
        assert ok.json()["extensions"]["cost"]["throttleStatus"]["maximumAvailable"] == 2000
    finally:
        serve.send_signal(signal.SIGINT)
        serve.wait(timeout=60)
    assert serve.returncode == 0
    assert "Traceback" not in (serve.stderr.read() if serve.stderr else "")
    assert not (data_dir / "pgdata" / "postmaster.pid").exists(), "the embedded PostgreSQL was not stopped"

    port = _free_port()
    again = subprocess.Popen(
        [*REBILL, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_healthy(port, again)
        reused = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": "{ subscriptions { totalCount } }"},
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert reused.status_code == 200, "the API key created before the restart is gone"
    finally:
        again.send_signal(signal.SIGINT)
        again.wait(timeout=60)
    assert again.returncode == 0


async def test_migrate_names_and_times_each_revision_it_applies():
    """A fresh database of its own: migrate applies every revision one at a time and says so."""
    from rebill.db.scratch import ScratchDatabase

    scratch = ScratchDatabase("rebill_migrate", os.environ.get("REBILL_TEST_DATABASE_URL"))
    await scratch.create(migrate=False)
    try:
        first = await asyncio.to_thread(
            subprocess.run,
            [*REBILL, "migrate"],
            capture_output=True,
            text=True,
            env=_env(DATABASE_URL=scratch.url),
            timeout=120,
        )
        assert first.returncode == 0, first.stderr
        applied = [line for line in first.stdout.splitlines() if line.startswith("applied ")]
        assert applied[0].startswith("applied 0001: ") and len(applied) >= 15
        assert any(
            line.startswith("applied 0011: invoices for the charges recorded before invoicing (") for line in applied
        )
        assert first.stdout.strip().splitlines()[-1] == f"database at revision {applied[-1].split()[1].rstrip(':')}"
        again = await asyncio.to_thread(
            subprocess.run,
            [*REBILL, "migrate"],
            capture_output=True,
            text=True,
            env=_env(DATABASE_URL=scratch.url),
            timeout=120,
        )
        assert "applied" not in again.stdout, "nothing left to apply"
    finally:
        await scratch.drop()
