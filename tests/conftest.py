"""Test fixtures: a real PostgreSQL for every test that needs one.

By default an embedded PostgreSQL is started once per run in a temporary
directory. With ``REBILL_TEST_DATABASE_URL`` the suite uses that server
instead, in a database of its own that is dropped afterwards. Each test starts
from empty tables.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from rebill.clock import Clock
from rebill.config import Settings
from rebill.db.engine import to_async_url
from rebill.db.tables import TABLES

DEFAULT_NOW = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)


def _admin_url(url: str) -> str:
    return make_url(to_async_url(url)).set(database="postgres").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh, migrated database for this test run; its URL (asyncpg driver)."""
    import asyncio

    from rebill.db.migrate import upgrade

    external = os.environ.get("REBILL_TEST_DATABASE_URL")
    tmp: str | None = None
    server = None
    if external:
        base = to_async_url(external)
    else:
        from rebill.db.embedded import asyncpg_url, start_embedded

        tmp = tempfile.mkdtemp(prefix="rebill-test-")
        server = start_embedded(Path(tmp), cleanup_mode="delete")
        base = asyncpg_url(server)
    name = f"rebill_test_{uuid.uuid4().hex[:8]}"
    url = make_url(base).set(database=name).render_as_string(hide_password=False)

    async def create() -> None:
        admin = create_async_engine(_admin_url(base), isolation_level="AUTOCOMMIT")
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await admin.dispose()
        engine = create_async_engine(url)
        await upgrade(engine)
        await engine.dispose()

    async def drop() -> None:
        admin = create_async_engine(_admin_url(base), isolation_level="AUTOCOMMIT")
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()

    asyncio.run(create())
    try:
        yield url
    finally:
        asyncio.run(drop())
        if server is not None:
            server.cleanup()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(database_url, pool_size=10, max_overflow=60)
    yield eng
    await eng.dispose()


@pytest.fixture
async def clean_db(engine: AsyncEngine) -> None:
    names = ", ".join(f'"{t}"' for t in TABLES)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
def clock() -> Clock:
    return Clock(DEFAULT_NOW)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, bulk_chunk_size=50, bulk_worker_in_server=False)


@pytest.fixture
async def services(engine: AsyncEngine, settings: Settings, clock: Clock, clean_db: None) -> Any:
    from rebill.services.runtime import Services

    return Services(engine, settings, clock)


@pytest.fixture
async def admin_key(services: Any) -> str:
    from rebill.services.apikeys import create_key

    return (await create_key(services.engine, "support-agent", ["admin"], services.clock.now())).secret


@pytest.fixture
async def client(services: Any, admin_key: str) -> AsyncIterator[httpx.AsyncClient]:
    from rebill.app import create_app

    app = create_app(services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://rebill.test", headers={"Authorization": f"Bearer {admin_key}"}, timeout=60
    ) as http:
        yield http
