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

from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
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
    sync = conn.sync_connection
    if sync is not None and sync.dispatch.before_cursor_execute:
        # Whoever counts SQLAlchemy's statements (tests of N+1, EXPLAIN checks) sees these too.
        sync.dispatch.before_cursor_execute(sync, None, compiled.string, values, None, False)
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    return await driver.fetch(compiled.string, *values, record_class=Row)


async def fetch_value(conn: AsyncConnection, statement: Executable) -> Any:
    """The first column of the first row of a read (None without one)."""
    rows = await fetch(conn, statement)
    return rows[0][0] if rows else None
