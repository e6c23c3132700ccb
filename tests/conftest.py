"""Test fixtures: a real PostgreSQL for every test that needs one.

The suite runs in parallel (pytest-xdist, one process per core): each worker
process gets a database of its own. By default that is an embedded
PostgreSQL started once per worker in a temporary directory. With
``REBILL_TEST_DATABASE_URL`` the workers use that server instead, each in a
database of its own that is dropped afterwards. Each test starts from empty
tables.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from rebill.clock import Clock
from rebill.config import Settings
from rebill.db.tables import TABLES

DEFAULT_NOW = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh, migrated database for this test run; its URL (asyncpg driver)."""
    import asyncio

    from rebill.db.scratch import ScratchDatabase

    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    scratch = ScratchDatabase(f"rebill_test_{worker}", os.environ.get("REBILL_TEST_DATABASE_URL"))
    url = asyncio.run(scratch.create())
    try:
        yield url
    finally:
        asyncio.run(scratch.drop())


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
    # Tests send requests far faster than a partner's bucket allows, and send many refused ones;
    # tests/api/test_cost.py and tests/api/test_refusal_throttle.py check both limits with settings of their own.
    return Settings(
        database_url=database_url,
        bulk_chunk_size=50,
        bulk_worker_in_server=False,
        rate_limit_bucket=1_000_000_000,
        rate_limit_restore=1_000_000_000,
        refusal_bucket=0,
        webhook_allow_private=True,  # receivers listen on loopback; tests/api/test_webhook_destinations.py refuses
    )


@pytest.fixture
async def services(engine: AsyncEngine, settings: Settings, clock: Clock, clean_db: None) -> Any:
    from rebill.services.runtime import Services

    services = Services(engine, settings, clock)
    yield services
    await services.close()


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
