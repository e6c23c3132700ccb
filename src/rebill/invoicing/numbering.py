"""Gapless document numbers: ``{prefix}{year}-{counter}``, one series per prefix and year.

A number is taken by updating the series' row of ``document_counters`` in
the transaction that finalizes the document. The row stays locked until
that transaction ends, so numbers are given in commit order, and a
transaction that rolls back, or a process killed before its commit, gives
its numbers back: no gap, no duplicate (a PostgreSQL sequence would leave a
gap on every rollback). Take numbers late in a transaction: the lock
serializes every finalizer of the series until the commit.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from rebill.domain.invoice import number_of

_TAKE = text(
    "INSERT INTO document_counters (prefix, year, last_number) VALUES (:prefix, :year, :count) "
    "ON CONFLICT (prefix, year) DO UPDATE SET last_number = document_counters.last_number + EXCLUDED.last_number "
    "RETURNING last_number"
)


async def take_numbers(session: AsyncSession, prefix: str, year: int, count: int) -> list[str]:
    """The next ``count`` numbers of a series, in order."""
    if count <= 0:
        return []
    last = (await session.execute(_TAKE, {"prefix": prefix, "year": year, "count": count})).scalar_one()
    return [number_of(prefix, year, n) for n in range(last - count + 1, last + 1)]
