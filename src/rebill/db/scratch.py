"""A throw-away database for test runs and benchmarks.

On the server a URL names, a database of its own is created (and migrated)
and dropped afterwards; with no URL, an embedded PostgreSQL is started in a
temporary directory and deleted with it.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from rebill.db.embedded import asyncpg_url, start_embedded
from rebill.db.engine import to_async_url
from rebill.db.migrate import upgrade


class ScratchDatabase:
    """``create()`` and ``drop()`` may run in different event loops (a test session's setup
    and teardown); ``async with`` does both in one."""

    def __init__(self, prefix: str, server_url: str | None = None) -> None:
        self.prefix = prefix
        self.server_url = server_url
        self.name = f"{prefix}_{uuid.uuid4().hex[:8]}"
        self.url = ""
        self._base = ""
        self._tmp: str | None = None
        self._server: Any = None

    def _admin(self) -> Any:
        admin = make_url(self._base).set(database="postgres").render_as_string(hide_password=False)
        return create_async_engine(admin, isolation_level="AUTOCOMMIT")

    async def create(self, *, migrate: bool = True) -> str:
        """Create the database (and the embedded server it needs); its URL, asyncpg driver."""
        if self.server_url:
            self._base = to_async_url(self.server_url)
        else:
            self._tmp = tempfile.mkdtemp(prefix=f"{self.prefix.replace('_', '-')}-")
            self._server = start_embedded(Path(self._tmp), cleanup_mode="delete")
            self._base = asyncpg_url(self._server)
        self.url = make_url(self._base).set(database=self.name).render_as_string(hide_password=False)
        admin = self._admin()
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        await admin.dispose()
        if migrate:
            engine = create_async_engine(self.url)
            await upgrade(engine)
            await engine.dispose()
        return self.url

    async def drop(self) -> None:
        """Drop the database, and stop and delete an embedded server."""
        try:
            if self._base:
                admin = self._admin()
                async with admin.connect() as conn:
                    await conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
                await admin.dispose()
        finally:
            if self._server is not None:
                self._server.cleanup()
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)

    async def __aenter__(self) -> str:
        return await self.create()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.drop()
