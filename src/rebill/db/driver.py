"""Statements built with SQLAlchemy and run on asyncpg directly, for the read API's hottest ones.

SQLAlchemy's execution costs about 0.4 ms of CPU a statement on top of
asyncpg's (greenlet switches, cursor emulation, result rows), and a session
adds a ``BEGIN`` and a ``ROLLBACK`` round trip around its reads. A page of
the read API runs half a dozen statements, so that was most of its time once
the SQL itself was cheap. Here a statement is still written with
``select()``, compiled once per shape (SQLAlchemy's cache key, parameters
extracted anew each time), and run on the pooled connection's asyncpg
driver outside any transaction: under READ COMMITTED each statement sees
its own snapshot in a transaction too, so a read loses nothing by it.

A statement whose compiled form needs SQLAlchemy at execution (expanding
``IN`` lists) runs through SQLAlchemy on the same connection, also outside a
transaction; bind processors (an array's, say) are applied here as
SQLAlchemy applies them.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import Executable
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.compiler import SQLCompiler

_DIALECT = PGDialect_asyncpg()
_COMPILED: OrderedDict[Any, SQLCompiler | None] = OrderedDict()
_COMPILED_SIZE = 512


class Row(asyncpg.Record):
    """An asyncpg record read by attribute too (``row.email``), as SQLAlchemy's rows are."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@asynccontextmanager
async def autocommit(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A pooled connection in autocommit: each statement its own transaction, no ``BEGIN``/``ROLLBACK``."""
    async with engine.connect() as conn:
        yield await conn.execution_options(isolation_level="AUTOCOMMIT")


def _compiled(statement: Executable) -> tuple[SQLCompiler | None, Any]:
    """The statement compiled for asyncpg (None: SQLAlchemy must run it), and its cache key."""
    key = statement._generate_cache_key()  # type: ignore[attr-defined]
    if key is None:
        return None, None
    found = _COMPILED.get(key.key, _COMPILED)
    if found is _COMPILED:
        compiled = statement.compile(dialect=_DIALECT, cache_key=key)  # type: ignore[attr-defined]
        found = compiled if isinstance(compiled, SQLCompiler) and not compiled.post_compile_params else None
        _COMPILED[key.key] = found
        while len(_COMPILED) > _COMPILED_SIZE:
            _COMPILED.popitem(last=False)
    else:
        _COMPILED.move_to_end(key.key)
    return found, key  # type: ignore[return-value]


async def fetch(conn: AsyncConnection, statement: Executable) -> Sequence[Any]:
    """The rows of a read: records read by attribute (``Row``), or SQLAlchemy rows when it ran it."""
    compiled, key = _compiled(statement)
    if compiled is None:
        return list(await conn.execute(statement))
    params = compiled.construct_params(extracted_parameters=key[1], escape_names=False)
    processors: Any = compiled._bind_processors
    values = [
        processors[name](params[name]) if name in processors else params[name] for name in compiled.positiontup or ()
    ]
    _announce(conn, compiled.string, values)
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    return await driver.fetch(compiled.string, *values, record_class=Row)


class Prepared:
    """A statement with named ``bindparam``s, compiled once (at import): each run only binds its values.

    For the statements every request runs (the API key, the rate limiter's bucket, the read API's
    loaders), whose building and cache key would otherwise cost more than their round trip.
    """

    def __init__(self, statement: Executable) -> None:
        compiled = statement.compile(dialect=_DIALECT)  # type: ignore[attr-defined]
        if compiled.post_compile_params:
            raise ValueError("a prepared statement cannot expand IN lists; use = ANY(:array)")
        self.sql: str = compiled.string
        self.compiled = compiled
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        processors: Any = compiled._bind_processors
        self.processors: dict[str, Any] = dict(processors)

    async def fetch(self, conn: AsyncConnection, **values: Any) -> Sequence[Any]:
        driver = (await conn.get_raw_connection()).driver_connection
        return await self.run(conn, driver, values)

    async def run(self, conn: AsyncConnection, driver: Any, values: dict[str, Any]) -> Sequence[Any]:
        """Run on ``driver``, the asyncpg connection under ``conn``."""
        processors = self.processors
        args = [processors[name](values[name]) if name in processors else values[name] for name in self.names]
        _announce(conn, self.sql, args)
        return await driver.fetch(self.sql, *args, record_class=Row)


def _announce(conn: AsyncConnection, sql: str, args: Sequence[Any]) -> None:
    """Whoever counts SQLAlchemy's statements (tests of N+1, EXPLAIN checks) sees this one too."""
    sync = conn.sync_connection
    if sync is not None and sync.dispatch.before_cursor_execute:
        sync.dispatch.before_cursor_execute(sync, None, sql, args, None, False)


class Reads:
    """One request's reads on one pooled connection, in autocommit, one statement at a time.

    The connection is taken at the first read and given back by ``close`` (the GraphQL view calls
    it when the operation is done): a page and its loaders cost one checkout, not one each, and
    the request holds one connection however many loaders it runs, as a hand-written endpoint does.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._lock = asyncio.Lock()
        self._stack: AsyncExitStack | None = None
        self._conn: AsyncConnection | None = None
        self._driver: Any = None

    async def _connection(self) -> AsyncConnection:
        if self._conn is None:
            stack = AsyncExitStack()
            try:
                conn = await stack.enter_async_context(autocommit(self.engine))
                self._driver = (await conn.get_raw_connection()).driver_connection
            except BaseException:
                await stack.aclose()
                raise
            self._stack, self._conn = stack, conn
        return self._conn

    async def fetch(self, statement: Prepared | Executable, **values: Any) -> Sequence[Any]:
        """The rows of a prepared statement run with ``values``, or of a built statement."""
        async with self._lock:
            conn = await self._connection()
            if isinstance(statement, Prepared):
                return await statement.run(conn, self._driver, values)
            return await fetch(conn, statement)

    async def value(self, statement: Executable) -> Any:
        """The first column of the first row of a read (None without one)."""
        rows = await self.fetch(statement)
        return rows[0][0] if rows else None

    async def close(self) -> None:
        stack, self._stack, self._conn, self._driver = self._stack, None, None, None
        if stack is not None:
            await stack.aclose()


async def fetch_value(conn: AsyncConnection, statement: Executable) -> Any:
    """The first column of the first row of a read (None without one)."""
    rows = await fetch(conn, statement)
    return rows[0][0] if rows else None
