"""Set-based writes: many rows in one statement, whatever the batch size.

The renewal engine and the charge path write a batch's renewals,
transactions, history and outbox rows with one statement per table. Rows
that need nothing back are copied in (``COPY … FROM STDIN`` in the binary
format, on the session's own connection and transaction): the cheapest way
into PostgreSQL for the server and for the driver alike; rows whose new ids
come back are copied too, with ids taken from the table's sequence first.
Rows that may conflict, that return what the database works out, or that
update others go as one JSON document, unpacked by ``json_to_recordset``:
serialized by orjson in a fraction of what binding a typed array per column
costs the driver (which checks every element of every array in Python).
"""

from __future__ import annotations

from collections import namedtuple
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


def _copied(
    table: Table, columns: tuple[str, ...], rows: Sequence[Mapping[str, Any]], ids: Sequence[int] = ()
) -> list[tuple[Any, ...]]:
    """The rows as the binary COPY takes them: a JSON column's value as its text; ``ids``, when given,
    first (``columns`` then starts with ``id``)."""
    if ids:
        return [(id_, *record) for id_, record in zip(ids, _copied(table, columns[1:], rows), strict=True)]
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
    session: AsyncSession,
    table: Table,
    columns: tuple[str, ...],
    rows: Sequence[Mapping[str, Any]],
    ids: Sequence[int] = (),
) -> None:
    connection = await session.connection()
    driver: Any = (await connection.get_raw_connection()).driver_connection
    if connection.in_transaction() and not driver.is_in_transaction():
        # SQLAlchemy's driver adapter sends its BEGIN with the transaction's first statement: send it.
        await connection.execute(_NOTHING)
    try:
        await driver.copy_records_to_table(table.name, records=_copied(table, columns, rows, ids), columns=columns)
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise IntegrityError(f"COPY {table.name}", None, exc) from exc
    except asyncpg.PostgresError as exc:
        raise DBAPIError(f"COPY {table.name}", None, exc) from exc
    except (asyncpg.InterfaceError, OSError) as exc:
        # The connection is gone (the server went away): as SQLAlchemy does, it never goes back to the pool.
        await connection.invalidate()
        raise DBAPIError(f"COPY {table.name}", None, exc, connection_invalidated=True) from exc


_NOTHING = text("SELECT 1")

# The sequence of each table's ids, by table name (the same in every database rebill migrates).
_SEQUENCES: dict[str, str] = {}


async def _next_ids(session: AsyncSession, table: Table, count: int) -> list[int]:
    """``count`` new ids from ``table``'s sequence, in increasing order."""
    sequence = _SEQUENCES.get(table.name)
    if sequence is None:
        found = (
            await session.execute(text("SELECT pg_get_serial_sequence(:table, 'id')"), {"table": table.name})
        ).scalar_one()
        if found is None:
            raise ValueError(f"{table.name}.id has no sequence")
        sequence = _SEQUENCES[table.name] = found
    rows = await session.execute(
        text("SELECT nextval(CAST(:sequence AS regclass)) FROM generate_series(1, :count)"),
        {"sequence": sequence, "count": count},
    )
    return sorted(row[0] for row in rows)


@lru_cache(maxsize=64)
def _returned(columns: tuple[str, ...]) -> Any:
    """The row type of what an insert returns: its columns by name."""
    return namedtuple("Inserted", columns)


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
    if not conflict and "id" not in columns and {*returning} <= {"id", *columns} and "id" in table.c:
        # What comes back is the ids and what was sent: the ids are taken from the table's sequence
        # first, and the rows copied in with them.
        ids = await _next_ids(session, table, len(rows))
        await _copy(session, table, ("id", *columns), rows, ids)
        shape = _returned(tuple(returning))
        pairs = zip(ids, rows, strict=True)
        return [shape(*(id_ if c == "id" else row.get(c) for c in returning)) for id_, row in pairs]
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
