"""A real ``rebill serve`` (uvicorn on 127.0.0.1) on the test database, with one API key per scope.

The fuzz suite and the abuse corpus need a real server: whether the event
loop stays free for other clients while one client sends something hostile
cannot be seen through an in-process transport.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

REBILL = [sys.executable, "-m", "rebill.cli"]


@dataclass
class LiveRebill:
    base_url: str
    keys: dict[str, str] = field(default_factory=dict)
    log: Any = None

    def server_log(self) -> str:
        """What the server wrote to stderr so far."""
        self.log.flush()
        self.log.seek(0)
        text: str = self.log.read()
        self.log.seek(0, 2)
        return text

    def headers(self, scope: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[scope]}"} if scope else {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(database_url: str, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REBILL_NOW",)}
    env.update(
        {
            "DATABASE_URL": database_url,
            "REBILL_BULK_WORKER_IN_SERVER": "false",
            # The suites send many requests quickly, refused ones among them; throttling is tested elsewhere.
            "REBILL_RATE_LIMIT_BUCKET": "1000000000",
            "REBILL_RATE_LIMIT_RESTORE": "1000000",
            "REBILL_REFUSAL_BUCKET": "0",
            **extra,
        }
    )
    return env


def create_api_key(env: dict[str, str], scope: str) -> str:
    """A new API key with one scope, made by ``rebill apikey create`` on the database ``env`` names; its secret."""
    name = f"live-{scope}-{os.getpid()}-{time.monotonic_ns()}"
    created = subprocess.run(
        [*REBILL, "apikey", "create", "--name", name, "--scope", scope],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return created.stdout.strip().splitlines()[-1].strip()


@contextmanager
def running_rebill(
    database_url: str, scopes: tuple[str, ...] = ("read", "admin"), **extra: str
) -> Iterator[LiveRebill]:
    env = _env(database_url, extra)
    live = LiveRebill("")
    for scope in scopes:
        live.keys[scope] = create_api_key(env, scope)
    port = free_port()
    live.base_url = f"http://127.0.0.1:{port}"
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - a file, not a pipe: a full pipe would stall the server
    server = subprocess.Popen(
        [*REBILL, "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
    )
    live.log = log
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{live.base_url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"rebill serve did not start: {log.read()[-2000:]}")
            time.sleep(0.2)
        yield live
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
