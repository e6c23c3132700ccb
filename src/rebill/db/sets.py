"""Set-based writes: many rows in one statement, whatever the batch size.

The renewal engine and the charge path write a batch's renewals,
transactions, history and outbox rows with one ``INSERT … SELECT FROM
unnest`` or ``UPDATE … FROM unnest`` per table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import BigInteger, Boolean, Date, DateTime, Integer, Numeric, Table, text
from sqlalchemy.dialects.postgresql import JSONB
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


def _array(table: Table, name: str) -> str:
    pg = _pg_type(table.c[name])
    return f"CAST(:{name} AS {'text' if pg == 'jsonb' else pg}[])"


def _value(table: Table, name: str) -> str:
    return f'u."{name}"::jsonb' if _pg_type(table.c[name]) == "jsonb" else f'u."{name}"'


@lru_cache(maxsize=64)
def _insert_sql(table: Table, columns: tuple[str, ...], returning: tuple[str, ...], conflict: str | None) -> Any:
    names = ", ".join(f'"{c}"' for c in columns)
    sql = (
        f'INSERT INTO "{table.name}" ({names}) SELECT {", ".join(_value(table, c) for c in columns)} '
        f"FROM unnest({', '.join(_array(table, c) for c in columns)}) AS u({names})"
    )
    if conflict:
        sql += f" ON CONFLICT ({conflict}) DO NOTHING"
    if returning:
        sql += " RETURNING " + ", ".join(f'"{c}"' for c in returning)
    return text(sql)


def _params(table: Table, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    params: dict[str, list[Any]] = {}
    for c in columns:
        values = [row.get(c) for row in rows]
        if _pg_type(table.c[c]) == "jsonb":
            values = [json.dumps(v) if v is not None else None for v in values]
        params[c] = values
    return params


async def insert_rows(
    session: AsyncSession,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    returning: Sequence[str] = (),
    conflict: str | None = None,
) -> list[Any]:
    """Insert many rows with one ``INSERT … SELECT FROM unnest`` (one statement, any batch size)."""
    if not rows:
        return []
    columns = tuple(rows[0])
    statement = _insert_sql(table, columns, tuple(returning), conflict)
    result = await session.execute(statement, _params(table, columns, rows))
    return list(result) if returning else []


@lru_cache(maxsize=64)
def _update_sql(table: Table, key: str, columns: tuple[str, ...], guard: str | None) -> Any:
    names = (key, *((guard,) if guard else ()), *columns)
    sets = [f'"{c}" = {_value(table, c)}' for c in columns]
    where = f'x."{key}" = u."{key}"'
    if guard:
        sets.append(f'"{guard}" = u."{guard}" + 1')
        where += f' AND x."{guard}" = u."{guard}"'
    arrays = ", ".join(_array(table, c) for c in names)
    aliases = ", ".join(f'"{c}"' for c in names)
    return text(
        f'UPDATE "{table.name}" AS x SET {", ".join(sets)} FROM unnest({arrays}) AS u({aliases}) '
        f'WHERE {where} RETURNING x."{key}"'
    )


async def update_rows(
    session: AsyncSession,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    key: str = "id",
    guard: str | None = None,
) -> set[Any]:
    """Update many rows by key with one ``UPDATE … FROM unnest``; ``guard`` is a version column.

    Returns the keys of the rows updated (a guarded row whose version moved is not).
    """
    if not rows:
        return set()
    columns = tuple(c for c in rows[0] if c not in (key, guard))
    statement = _update_sql(table, key, columns, guard)
    names = (key, *((guard,) if guard else ()), *columns)
    result = await session.execute(statement, _params(table, names, rows))
    return {row[0] for row in result}
