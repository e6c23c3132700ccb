"""Statements built with SQLAlchemy and run on asyncpg directly, for the read API's hottest ones.

SQLAlchemy's execution costs about 0.4 ms of CPU a statement on top of
asyncpg's (greenlet switches, cursor emulation, result rows), its
``Connection`` about 0.07 ms more per checkout, and a session adds a ``BEGIN``
and a ``ROLLBACK`` round trip around its reads. A page of the read API runs
half a dozen statements, so that was most of its time once the SQL itself
was cheap. Here a statement is still written with ``select()``, compiled once
(``Prepared``) or once per shape (SQLAlchemy's cache key, its parameters
extracted anew each time), and run on the asyncpg connection of one of the
engine's pooled connections, outside any transaction: under READ COMMITTED
each statement sees its own snapshot in a transaction too, so a read loses
nothing by it.

A statement whose compiled form needs SQLAlchemy at execution (expanding
``IN`` lists) is run by SQLAlchemy, also outside a transaction; bind
processors (an array's, say) are applied here as SQLAlchemy applies them.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import JSON, Executable, Text
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import greenlet_spawn

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


def json_as_text(table: Any) -> list[Any]:
    """A table's columns to select, its JSON ones as their text (the driver would parse every one of
    them for every row): the nodes read from these rows parse the ones their fields read."""
    return [c.cast(Text).label(c.name) if isinstance(c.type, JSON) else c for c in table.c]


def parsed(value: Any) -> Any:
    """A JSON column's value, read as text by ``json_as_text`` (or parsed already, read otherwise). The
    columns read so hold objects or null, never a bare string."""
    return json.loads(value) if isinstance(value, str) else value


@asynccontextmanager
async def autocommit(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A pooled connection in autocommit: each statement its own transaction, no ``BEGIN``/``ROLLBACK``."""
    async with engine.connect() as conn:
        yield await conn.execution_options(isolation_level="AUTOCOMMIT")


@asynccontextmanager
async def driver_connection(engine: AsyncEngine) -> AsyncIterator[Any]:
    """A pooled connection's asyncpg connection itself, given back to the pool at the end.

    No SQLAlchemy ``Connection`` is made around it (a fifth of the cost of one), and no transaction
    is begun: each statement run on it is its own.
    """
    pooled = await engine.raw_connection()
    try:
        yield pooled.driver_connection
    finally:
        await give_back(pooled)


async def give_back(pooled: Any) -> None:
    """Return a raw pooled connection: in a greenlet, as SQLAlchemy's pool may close it there (one over
    the pool's size is closed, not kept)."""
    await greenlet_spawn(pooled.close)


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


def _arguments(names: Sequence[str], params: Any, processors: Any) -> list[Any]:
    """The positional arguments of a compiled statement (its parameters' ``names`` in order), each through
    its bind processor (an array's, say) as SQLAlchemy applies them."""
    return [processors[name](params[name]) if name in processors else params[name] for name in names]


def _announce(engine: AsyncEngine, sql: str, args: Sequence[Any]) -> None:
    """Whoever counts the engine's statements (tests of N+1 queries) sees these too."""
    dispatch = engine.sync_engine.dispatch.before_cursor_execute
    if dispatch:
        dispatch(None, None, sql, args, None, False)


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
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        processors: Any = compiled._bind_processors
        self.processors: dict[str, Any] = dict(processors)

    async def fetch(self, engine: AsyncEngine, **values: Any) -> Sequence[Any]:
        """Its rows, run with ``values`` on a connection of its own."""
        async with driver_connection(engine) as driver:
            return await self.run(engine, driver, values)

    async def run(self, engine: AsyncEngine, driver: Any, values: dict[str, Any]) -> Sequence[Any]:
        """Its rows, run with ``values`` on ``driver``, an asyncpg connection of ``engine``'s pool."""
        args = _arguments(self.names, values, self.processors)
        _announce(engine, self.sql, args)
        return await driver.fetch(self.sql, *args, record_class=Row)


class Reads:
    """One request's reads on one pooled connection, in autocommit, one statement at a time.

    The connection is taken at the first read and given back by ``close`` (the GraphQL view calls
    it when the operation is done): a page and its loaders cost one checkout, not one each, and
    the request holds one connection however many loaders it runs, as a hand-written endpoint does.
    A statement that needs SQLAlchemy to run it (one expanding an ``IN`` list) takes a connection of
    its own.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._lock = asyncio.Lock()
        self._pooled: Any = None

    async def _driver(self) -> Any:
        if self._pooled is None:
            self._pooled = await self.engine.raw_connection()
        return self._pooled.driver_connection

    async def fetch(self, statement: Prepared | Executable, **values: Any) -> Sequence[Any]:
        """The rows of a prepared statement run with ``values``, or of a built statement."""
        async with self._lock:
            if isinstance(statement, Prepared):
                return await statement.run(self.engine, await self._driver(), values)
            compiled, key = _compiled(statement)
            if compiled is None:
                async with autocommit(self.engine) as conn:
                    return list(await conn.execute(statement))
            params = compiled.construct_params(extracted_parameters=key[1], escape_names=False)
            args = _arguments(compiled.positiontup or (), params, compiled._bind_processors)
            _announce(self.engine, compiled.string, args)
            driver = await self._driver()
            return await driver.fetch(compiled.string, *args, record_class=Row)

    async def value(self, statement: Executable) -> Any:
        """The first column of the first row of a read (None without one)."""
        rows = await self.fetch(statement)
        return rows[0][0] if rows else None

    async def close(self) -> None:
        pooled, self._pooled = self._pooled, None
        if pooled is not None:
            await give_back(pooled)
