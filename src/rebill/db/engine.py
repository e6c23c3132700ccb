"""Engine and session factory, over the configured or the embedded server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from rebill.config import Settings
from rebill.db.embedded import asyncpg_url, start_embedded
from rebill.db.outage import is_database_outage


class DatabaseUrlError(ValueError):
    """``DATABASE_URL`` cannot be used as it is: a one-line reason for the operator."""


class DatabaseUnreachable(RuntimeError):
    """The configured server refused or could not be reached: a one-line reason for the operator."""


_SCHEMES = (
    "postgresql+asyncpg://",
    "postgresql+psycopg://",
    "postgresql+psycopg2://",
    "postgresql://",
    "postgres://",
)


def where(url: str | URL) -> str:
    """Host, port and database of a URL, for messages (never the password)."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
        # A Unix socket is given as ?host=/path (and maybe ?port=), as the embedded server does.
        host = parsed.host or _first(parsed.query.get("host")) or "localhost"
        port = parsed.port or _first(parsed.query.get("port")) or 5432
        database = parsed.database or "(none)"
    except (sa_exc.ArgumentError, ValueError, TypeError):
        return "host ?, port ?, database ?"
    return f"host {host}, port {port}, database {database}"


def _first(value: str | tuple[str, ...] | None) -> str | None:
    return value[0] if isinstance(value, tuple) else value


def to_async_url(url: str) -> str:
    """Accept the usual ``postgresql://`` spellings and use the asyncpg driver."""
    for prefix in _SCHEMES:
        if url.startswith(prefix):
            converted = "postgresql+asyncpg://" + url[len(prefix) :]
            break
    else:
        shown = url.split("://", 1)[0] + "://…" if "://" in url else "text without a scheme"
        raise DatabaseUrlError(f"DATABASE_URL must be a postgresql:// URL, not {shown[:40]} ({where(url)})")
    try:
        parsed = make_url(converted)
        parsed.port  # noqa: B018 - a port that is not a number raises here
    except (sa_exc.ArgumentError, ValueError) as exc:
        raise DatabaseUrlError(f"DATABASE_URL is malformed ({type(exc).__name__}: {str(exc)[:120]})") from None
    return converted


def configured_url(url: str) -> str:
    """``DATABASE_URL`` as rebill connects to it; it must name its database.

    PostgreSQL would otherwise pick the database named after the user, and
    rebill would migrate whatever that is.
    """
    converted = to_async_url(url)
    if not make_url(converted).database:
        raise DatabaseUrlError(f"DATABASE_URL names no database ({where(converted)})")
    return converted


def explain_connection_failure(url: str | URL, exc: BaseException) -> DatabaseUnreachable:
    """One line naming host, port and database, and what the server or the network said."""
    root: BaseException = exc
    while isinstance(root, sa_exc.DBAPIError) and root.orig is not None:
        root = root.orig
    while getattr(root, "__cause__", None) is not None and not isinstance(root, asyncpg.PostgresError):
        root = root.__cause__  # type: ignore[assignment]
    reason = (str(root).strip().splitlines() or [type(root).__name__])[0][:200]
    return DatabaseUnreachable(f"cannot connect to the database at {where(url)}: {reason}")


async def ensure_reachable(engine: AsyncEngine) -> None:
    """Open one connection, or raise ``DatabaseUnreachable`` with a one-line reason."""
    try:
        async with engine.connect():
            pass
    except Exception as exc:
        if isinstance(exc, sa_exc.DBAPIError | OSError | asyncpg.PostgresError) or is_database_outage(exc):
            raise explain_connection_failure(engine.url, exc) from None
        raise


@dataclass
class Database:
    """A resolved database: its URL, and the embedded server handle if any."""

    url: str
    server: Any = None

    def engine(self, **kwargs: Any) -> AsyncEngine:
        return make_engine(self.url, **kwargs)


def resolve_database(settings: Settings) -> Database:
    if settings.database_url:
        return Database(configured_url(settings.database_url))
    server = start_embedded(settings.data_dir)
    return Database(asyncpg_url(server), server)


#: Settings of every connection rebill opens. JIT off: rebill's statements are short, and a cost estimated from
#: the statistics of a table grown since its last analyze (renewals, invoices) can pass the server's JIT
#: threshold by far, when compiling costs more than running (seen: 29 ms compiling a 2 ms update of a
#: batch's invoices). The long aggregates run as well without it (the billing forecast turned it off first).
SERVER_SETTINGS = {"jit": "off"}


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    options: dict[str, Any] = {"pool_size": 10, "max_overflow": 20, "pool_pre_ping": False}
    options.update(kwargs)
    connect_args = dict(options.get("connect_args") or {})
    connect_args["server_settings"] = {**SERVER_SETTINGS, **(connect_args.get("server_settings") or {})}
    options["connect_args"] = connect_args
    return create_async_engine(to_async_url(url), **options)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
