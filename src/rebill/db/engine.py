"""Engine and session factory, over the configured or the embedded server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from rebill.config import Settings
from rebill.db.embedded import asyncpg_url, start_embedded


def to_async_url(url: str) -> str:
    """Accept the usual ``postgresql://`` spellings and use the asyncpg driver."""
    for prefix in (
        "postgresql+asyncpg://",
        "postgresql+psycopg://",
        "postgresql+psycopg2://",
        "postgresql://",
        "postgres://",
    ):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"DATABASE_URL must be a postgresql:// URL, not {url.split(':', 1)[0]}://…")


@dataclass
class Database:
    """A resolved database: its URL, and the embedded server handle if any."""

    url: str
    server: Any = None

    def engine(self, **kwargs: Any) -> AsyncEngine:
        return make_engine(self.url, **kwargs)


def resolve_database(settings: Settings) -> Database:
    if settings.database_url:
        return Database(to_async_url(settings.database_url))
    server = start_embedded(settings.data_dir)
    return Database(asyncpg_url(server), server)


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    options: dict[str, Any] = {"pool_size": 10, "max_overflow": 20, "pool_pre_ping": False}
    options.update(kwargs)
    return create_async_engine(to_async_url(url), **options)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
