"""The preview's inline MRR is the database's ``rebill_mrr``, value for value."""

from __future__ import annotations

import itertools

from sqlalchemy import BigInteger, Integer, Text, column, func, select, values

from rebill.bulk.simulate import month_ratio, mrr

AMOUNTS = [0, 1, 5, 6, 7, 11, 12, 18, 30, 99, 1000, 1001, 1199, 4999, 12345, 999_999, -1, -6, -7, -18, -1001]
STATUSES = ["ACTIVE", "OVERDUE", "TRIAL", "SUSPENDED", "CANCELLED"]
UNITS = ["DAY", "WEEK", "MONTH", "YEAR", "FORTNIGHT"]
COUNTS = [0, 1, 2, 3, 6, 12]


async def test_the_preview_prices_mrr_inline_exactly_as_rebill_mrr_does(engine):
    grid = values(
        column("amount", BigInteger), column("status", Text), column("unit", Text), column("count", Integer), name="g"
    ).data(list(itertools.product(AMOUNTS, STATUSES, UNITS, COUNTS)))
    times, over = month_ratio(grid.c.unit, grid.c.count)
    inline = mrr(grid.c.amount, grid.c.status, times, over)
    function = func.rebill_mrr(grid.c.amount, grid.c.status, grid.c.unit, grid.c.count)
    async with engine.connect() as conn:
        rows = list(await conn.execute(select(grid, inline.label("inline"), function.label("function"))))
    assert len(rows) == len(AMOUNTS) * len(STATUSES) * len(UNITS) * len(COUNTS)
    assert [r for r in rows if r.inline != r.function] == []
    assert any(r.function not in (0, None) for r in rows)
