"""The README's quick start, pasted as a newcomer would: a server in one folder, its next steps in a fresh
terminal in another folder, with a fresh user data directory and the embedded PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def quick_start_blocks() -> list[list[str]]:
    """The bash blocks of the Quick start section, as commands (continued lines joined, comments dropped)."""
    text = README.read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = []
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        joined = block.replace("\\\n", " ")
        commands = [_strip_comment(line) for line in joined.splitlines()]
        blocks.append([c for c in commands if c])
    return blocks


def _strip_comment(line: str) -> str:
    """The line without its trailing ``# comment`` (a ``#`` inside quotes is kept)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].strip()
    return line.strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_terminal(home: Path) -> dict[str, str]:
    """A new shell's environment: rebill on the PATH, no database settings, a user of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REBILL_") and k != "DATABASE_URL"}
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def run_lines(lines: list[str], cwd: Path, env: dict[str, str], outputs: Path) -> list[tuple[int, str, str]]:
    """Run the lines in order in one bash session (so ``SECRET=…`` carries over); each line's rc, stdout, stderr."""
    script = ["set +e"]
    for i, line in enumerate(lines):
        script.append(f"{{ {line} ; }} > {outputs}/{i}.out 2> {outputs}/{i}.err; echo $? > {outputs}/{i}.rc")
    subprocess.run(["bash", "-c", "\n".join(script)], cwd=cwd, env=env, timeout=300, check=True)
    return [
        (int((outputs / f"{i}.rc").read_text()), (outputs / f"{i}.out").read_text(), (outputs / f"{i}.err").read_text())
        for i in range(len(lines))
    ]


@pytest.mark.slow
def test_the_readme_quick_start_works_pasted_into_a_fresh_terminal_in_another_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("curl") is None and not os.environ.get("REBILL_REQUIRE_BROWSER"):
        pytest.skip("the README's quick start uses curl (CI installs it)")
    server_block, next_steps = quick_start_blocks()
    assert server_block[0].startswith("pip install -e . && rebill serve")
    assert server_block[1].startswith("pip install -e '.[dev]' && pytest")
    home = tmp_path / "home"
    data_dir = home / ".local" / "share" / "rebill"
    first_folder, second_folder = tmp_path / "checkout", tmp_path / "elsewhere"
    first_folder.mkdir()
    second_folder.mkdir()
    env = fresh_terminal(home)
    # This machine may serve something on 8000 already: the same lines on a free port. pip install has
    # been done by whoever runs this test, and pytest is what runs it.
    port = _free_port()
    serve_line = server_block[0].split("&&", 1)[1].strip() + f" --port {port}"
    serve = subprocess.Popen(
        ["bash", "-c", serve_line], cwd=first_folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_healthy(port, serve)
        lines = [line.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for line in next_steps]
        outputs = tmp_path / "outputs"
        outputs.mkdir()
        results = run_lines(lines, second_folder, env, outputs)
        for line, (rc, out, err) in zip(lines, results, strict=True):
            assert rc == 0, f"{line!r} failed ({rc}): {out}\n{err}"

        key, seed, curl, echo = results
        assert lines[0].startswith("SECRET=$(rebill apikey create")
        assert f"embedded PostgreSQL in {data_dir}" in key[2]
        assert "no database yet" not in key[2], "the second terminal must find the server's database"
        assert "created API key me" in key[2]
        assert "1000" in seed[1] + seed[2]
        assert f"embedded PostgreSQL in {data_dir}" in seed[2]
        page = json.loads(curl[1])["data"]["subscriptions"]
        assert page["totalCount"] == 1000 and len(page["edges"]) == 5
        secret = echo[1].strip()
        assert secret.startswith("rbk_")
        admin = httpx.get(f"http://127.0.0.1:{port}/admin", timeout=10)
        assert admin.status_code == 200 and "admin console" in admin.text.lower()

        # Someone who points REBILL_DATA_DIR at a new folder by mistake is told where the server's database
        # is: what every command prints before it opens the embedded database (cli_support.open_services).
        from rebill.db.embedded import notes

        monkeypatch.setenv("XDG_STATE_HOME", env["XDG_STATE_HOME"])
        warning = "\n".join(notes(tmp_path / "stray"))
        assert "a new, empty one is created there" in warning
        assert f"export REBILL_DATA_DIR={data_dir}" in warning
        assert "no database yet" not in "\n".join(notes(data_dir))
    finally:
        serve.send_signal(signal.SIGINT)
        _, serve_err = serve.communicate(timeout=60)
    assert f"embedded PostgreSQL in {data_dir}" in serve_err
    assert f"{data_dir} holds no database yet: a new one is created there" in serve_err
    assert "Traceback" not in serve_err
    assert not (first_folder / ".rebill").exists() and not any(second_folder.iterdir())


def _wait_healthy(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited early: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise AssertionError("serve did not become healthy")


def test_a_server_killed_without_cleaning_up_is_not_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rebill.db.embedded import notes, running_servers

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    servers = tmp_path / "state" / "rebill" / "servers"
    servers.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (servers / f"{dead.pid}.json").write_text(
        json.dumps({"pid": dead.pid, "data_dir": str(tmp_path / "old"), "url": "http://127.0.0.1:8000"})
    )
    assert running_servers() == []
    assert not any(servers.iterdir())
    assert (
        notes(tmp_path / "new")[-1] == f"rebill: {tmp_path / 'new'} holds no database yet: a new one is created there"
    )
