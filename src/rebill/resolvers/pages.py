"""Keyset pages over any table: ``id > after`` ordered by id, plus the total count."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from rebill.schema.common import decode_cursor, page_size


@dataclass
class Page:
    rows: list[Any]
    has_next: bool
    total: int


async def fetch_page(
    session: AsyncSession,
    table: Any,
    where: Sequence[ColumnElement[bool]],
    first: int | None,
    after: str | None,
    *,
    base: Select[Any] | None = None,
    descending: bool = False,
) -> Page:
    size = page_size(first)
    cursor = decode_cursor(after)
    stmt = base if base is not None else select(table)
    count_stmt = select(func.count()).select_from(table)
    for clause in where:
        stmt = stmt.where(clause)
        count_stmt = count_stmt.where(clause)
    if cursor is not None:
        stmt = stmt.where(table.c.id < cursor if descending else table.c.id > cursor)
    stmt = stmt.order_by(table.c.id.desc() if descending else table.c.id).limit(size + 1)
    rows = list(await session.execute(stmt))
    total = int((await session.execute(count_stmt)).scalar_one())
    return Page(rows[:size], len(rows) > size, total)
