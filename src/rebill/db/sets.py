"""Set-based writes: many rows in one statement, whatever the batch size.

The renewal engine and the charge path write a batch's renewals,
transactions, history and outbox rows with one statement per table. Rows
that need nothing back are copied in (``COPY … FROM STDIN`` in the binary
format, on the session's own connection and transaction): the cheapest way
into PostgreSQL for the server and for the driver alike. Rows whose ids come
back, that may conflict, or that update others go as one JSON document,
unpacked by ``json_to_recordset``: serialized by orjson in a fraction of
what binding a typed array per column costs the driver (which checks every
element of every array in Python).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from operator import itemgetter
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson
from sqlalchemy import BigInteger, Boolean, Date, DateTime, Integer, Numeric, Table, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession


def _pg_type(column: Any) -> str:
    kind = column.type
    if isinstance(kind, JSONB):
        return "jsonb"
    if isinstance(kind, BigInteger):
        return "bigint"
    if isinstance(kind, Integer):
        return "integer"
    if isinstance(kind, Boolean):
        return "boolean"
    if isinstance(kind, DateTime):
        return "timestamptz"
    if isinstance(kind, Date):
        return "date"
    if isinstance(kind, Numeric):
        return "numeric"
    return "text"


def _record(table: Table, columns: Sequence[str]) -> str:
    """The record type ``json_to_recordset`` reads the rows as: each column as its own type."""
    return ", ".join(f'"{c}" {_pg_type(table.c[c])}' for c in columns)


@lru_cache(maxsize=64)
def _insert_sql(table: Table, columns: tuple[str, ...], returning: tuple[str, ...], conflict: str | None) -> Any:
    names = ", ".join(f'"{c}"' for c in columns)
    sql = (
        f'INSERT INTO "{table.name}" ({names}) SELECT {names} '
        f"FROM json_to_recordset(CAST(:rows AS json)) AS u({_record(table, columns)})"
    )
    if conflict:
        sql += f" ON CONFLICT ({conflict}) DO NOTHING"
    if returning:
        sql += " RETURNING " + ", ".join(f'"{c}"' for c in returning)
    return text(sql)


def _default(value: Any) -> Any:
    """What orjson does not write itself (a ``Decimal``): its exact text, which PostgreSQL reads back."""
    return str(value)


def _json(value: Any) -> str:
    """``value`` as JSON text: a batch's rows for ``json_to_recordset``, or one JSON column's value."""
    return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS).decode()


@lru_cache(maxsize=64)
def _jsonb_positions(table: Table, columns: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(n for n, c in enumerate(columns) if _pg_type(table.c[c]) == "jsonb")


def _copied(table: Table, columns: tuple[str, ...], rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """The rows as the binary COPY takes them: a JSON column's value as its text."""
    jsonb = _jsonb_positions(table, columns)
    try:
        take = itemgetter(*columns)
        records = [take(row) for row in rows] if len(columns) > 1 else [(take(row),) for row in rows]
    except KeyError:  # rows of different shapes: what one lacks is NULL
        records = [tuple(map(row.get, columns)) for row in rows]
    if jsonb:
        for n, record in enumerate(records):
            values = list(record)
            for position in jsonb:
                if values[position] is not None:
                    values[position] = _json(values[position])
            records[n] = tuple(values)
    return records


async def _copy(
    session: AsyncSession, table: Table, columns: tuple[str, ...], rows: Sequence[Mapping[str, Any]]
) -> None:
    connection = await session.connection()
    driver: Any = (await connection.get_raw_connection()).driver_connection
    if connection.in_transaction() and not driver.is_in_transaction():
        # SQLAlchemy's driver adapter sends its BEGIN with the transaction's first statement: send it.
        await connection.execute(_NOTHING)
    try:
        await driver.copy_records_to_table(table.name, records=_copied(table, columns, rows), columns=columns)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise IntegrityError(f"COPY {table.name}", None, exc) from exc
    except asyncpg.PostgresError as exc:
        raise DBAPIError(f"COPY {table.name}", None, exc) from exc
    except (asyncpg.InterfaceError, OSError) as exc:
        # The connection is gone (the server went away): as SQLAlchemy does, it never goes back to the pool.
        await connection.invalidate()
        raise DBAPIError(f"COPY {table.name}", None, exc, connection_invalidated=True) from exc


_NOTHING = text("SELECT 1")


async def insert_rows(
    session: AsyncSession,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    returning: Sequence[str] = (),
    conflict: str | None = None,
) -> list[Any]:
    """Insert many rows in one statement: copied in, or (to return columns or skip conflicts) one
    ``INSERT … SELECT FROM json_to_recordset``."""
    if not rows:
        return []
    columns = tuple(rows[0])
    if not returning and not conflict:
        await _copy(session, table, columns, rows)
        return []
    statement = _insert_sql(table, columns, tuple(returning), conflict)
    result = await session.execute(statement, {"rows": _json(rows)})
    return list(result) if returning else []


@lru_cache(maxsize=64)
def _update_sql(table: Table, key: str, columns: tuple[str, ...], guard: str | None) -> Any:
    names = (key, *((guard,) if guard else ()), *columns)
    sets = [f'"{c}" = u."{c}"' for c in columns]
    where = f'x."{key}" = u."{key}"'
    if guard:
        sets.append(f'"{guard}" = u."{guard}" + 1')
        where += f' AND x."{guard}" = u."{guard}"'
    return text(
        f'UPDATE "{table.name}" AS x SET {", ".join(sets)} '
        f"FROM json_to_recordset(CAST(:rows AS json)) AS u({_record(table, names)}) "
        f"WHERE {where}"
    )


async def update_rows(
    session: AsyncSession,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    key: str = "id",
    guard: str | None = None,
) -> int:
    """Update many rows by key with one ``UPDATE … FROM json_to_recordset``; ``guard`` is a version column.

    Returns how many rows were updated (a guarded row whose version moved is not).
    """
    if not rows:
        return 0
    columns = tuple(c for c in rows[0] if c not in (key, guard))
    statement = _update_sql(table, key, columns, guard)
    result = await session.execute(statement, {"rows": _json(rows)})
    return int(result.rowcount)  # type: ignore[attr-defined]
