"""Revenue metrics (``revenueMetrics``): MRR and its movements, and the money of each period.

Everything is summed by PostgreSQL, a few statements in one read-only
snapshot, whatever the number of subscriptions; no subscription is loaded.

* MRR, its movements and the active and trialing counts come from
  ``revenue_movements``, which triggers fill as subscriptions are saved
  (migration 0019): the MRR at a period's end is the sum of every movement
  before it, so each period reconciles exactly (end = start + new +
  reactivation + expansion - contraction - churned).
* ``billed``: totals of invoices finalized (issued) in the period, a
  later void included (it does not un-bill the period); pro forma documents
  are requests for payment and are left out. ``refunded``: credit notes refunded through a gateway, issued in the
  period. Both with shipping and tax.
* ``collected``: successful charges recorded in the period (gateways,
  payments collected outside them, transfers marked paid).
* ``failedPayments``: renewals whose first attempt failed in the period;
  ``recoveredPayments``: renewals paid in the period after an attempt that
  failed before.

Periods are days of the seller's calendar (``REBILL_SELLER``'s time zone),
the same days invoices are dated by.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from rebill.domain.cadence import start_of_day
from rebill.domain.errors import ValidationError
from rebill.domain.money import Money, currency_exponent
from rebill.domain.periods import MetricsInterval, Period, periods
from rebill.services.runtime import Services


@dataclass(frozen=True)
class MetricsPoint:
    period: Period
    mrr: Money
    new: Money
    expansion: Money
    contraction: Money
    churned: Money
    reactivation: Money
    active: int
    trialing: int
    new_subscriptions: int
    churned_subscriptions: int
    billed: Money
    collected: Money
    refunded: Money
    failed_payments: int
    recovered_payments: int

    @property
    def arr(self) -> Money:
        return self.mrr * 12


# Bucket n (1-based) is the n-th period; 0 is everything before the first. No DISTINCT here, so the scan
# and the sums run in parallel: a subscription's MRR leaves 0 for the first time once in its life.
MOVEMENTS = """
SELECT width_bucket(occurred_at, CAST(:starts AS timestamptz[])) AS n,
       sum(mrr_after_minor - mrr_before_minor) AS step,
       coalesce(sum(mrr_after_minor - mrr_before_minor) FILTER (WHERE kind = 'NEW'), 0) AS new,
       coalesce(sum(mrr_after_minor - mrr_before_minor) FILTER (WHERE kind = 'EXPANSION'), 0) AS expansion,
       coalesce(sum(mrr_before_minor - mrr_after_minor) FILTER (WHERE kind = 'CONTRACTION'), 0) AS contraction,
       coalesce(sum(mrr_before_minor - mrr_after_minor) FILTER (WHERE kind = 'CHURNED'), 0) AS churned,
       coalesce(sum(mrr_after_minor - mrr_before_minor) FILTER (WHERE kind = 'REACTIVATION'), 0) AS reactivation,
       sum(active_step) AS active,
       sum(trialing_step) AS trialing,
       count(*) FILTER (WHERE kind = 'NEW') AS new_subscriptions
FROM revenue_movements
WHERE currency = :currency AND occurred_at < :until
GROUP BY 1
"""

# A subscription may churn, come back and churn again in one period: it is counted once.
CHURNED = """
SELECT width_bucket(occurred_at, CAST(:starts AS timestamptz[])) AS n, count(DISTINCT chain_id) AS count
FROM revenue_movements
WHERE currency = :currency AND occurred_at >= :since AND occurred_at < :until AND kind = 'CHURNED'
GROUP BY 1
"""

# Invoices issued in the period (a later void does not un-bill a period), pro formas left out.
BILLED = """
SELECT width_bucket(issue_date, CAST(:days AS date[])) AS n, sum(total_minor) AS amount
FROM invoices
WHERE currency = :currency AND issue_date >= :first AND issue_date <= :last
  AND document_type = 'INVOICE' AND number IS NOT NULL
GROUP BY 1
"""

REFUNDED = """
SELECT width_bucket(issue_date, CAST(:days AS date[])) AS n, sum(total_minor) AS amount
FROM credit_notes
WHERE issue_date >= :first AND issue_date <= :last AND currency = :currency AND refunded
GROUP BY 1
"""

COLLECTED = """
SELECT width_bucket(created_at, CAST(:starts AS timestamptz[])) AS n, sum(amount_minor) AS amount
FROM transactions
WHERE currency = :currency AND created_at >= :since AND created_at < :until
  AND kind = 'CHARGE' AND status = 'SUCCEEDED' AND amount_minor > 0
GROUP BY 1
"""

# A renewal's first attempt is its earliest charge transaction(s); it failed when none of them succeeded
# (a gateway that could not process it, then another that charged it, is one attempt that succeeded).
FAILED = """
SELECT width_bucket(t.created_at, CAST(:starts AS timestamptz[])) AS n, count(DISTINCT t.renewal_id) AS count
FROM transactions t
WHERE t.currency = :currency AND t.created_at >= :since AND t.created_at < :until
  AND t.kind = 'CHARGE' AND t.status = 'FAILED'
  AND NOT EXISTS (
      SELECT 1 FROM transactions e
      WHERE e.renewal_id = t.renewal_id AND e.kind = 'CHARGE'
        AND (e.created_at < t.created_at OR (e.created_at = t.created_at AND e.status = 'SUCCEEDED')))
GROUP BY 1
"""

# Paid in the period after an attempt that failed before (not the same attempt's first gateway). Declines
# are few: they are read first, and the payments of their renewals looked up.
RECOVERED = """
SELECT width_bucket(s.created_at, CAST(:starts AS timestamptz[])) AS n, count(DISTINCT s.renewal_id) AS count
FROM (SELECT renewal_id, min(created_at) AS failed_at FROM transactions
      WHERE currency = :currency AND created_at < :until AND kind = 'CHARGE' AND status = 'FAILED'
      GROUP BY renewal_id) f
JOIN transactions s ON s.renewal_id = f.renewal_id
WHERE s.kind = 'CHARGE' AND s.status = 'SUCCEEDED' AND s.created_at > f.failed_at
  AND s.created_at >= :since AND s.created_at < :until
GROUP BY 1
"""


def _day_after(d: date) -> date | None:
    return d + timedelta(days=1) if d < date.max else None


class RevenueMetrics:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def points(
        self, currency: str, start: date, end: date, interval: MetricsInterval = MetricsInterval.MONTH
    ) -> list[MetricsPoint]:
        """One point per period from ``start`` to ``end`` (days of the seller's calendar, both included).

        Refused (``ValidationError``, ``MoneyError``) for an unknown currency,
        ``start`` after ``end``, or more than 400 points.
        """
        try:
            currency_exponent(currency)
        except ValidationError as exc:
            raise exc.with_field("currency") from None
        cuts = periods(start, end, interval)
        zone = self.services.settings.seller_time_zone
        starts = [start_of_day(p.start, zone) for p in cuts]
        following = _day_after(end)
        until = start_of_day(following, zone) if following is not None else datetime.max.replace(tzinfo=UTC)
        params: dict[str, Any] = {
            "currency": currency,
            "starts": starts,
            "since": starts[0],
            "until": until,
            "days": [p.start for p in cuts],
            "first": start,
            "last": end,
        }
        async with self.services.engine.connect() as conn, conn.begin():
            await conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            movements = await _rows(conn, MOVEMENTS, params)
            churned = await _sums(conn, CHURNED, params, "count")
            billed = await _sums(conn, BILLED, params)
            refunded = await _sums(conn, REFUNDED, params)
            collected = await _sums(conn, COLLECTED, params)
            failed = await _sums(conn, FAILED, params, "count")
            recovered = await _sums(conn, RECOVERED, params, "count")
        return _points(currency, cuts, movements, churned, billed, refunded, collected, failed, recovered)


async def _rows(conn: AsyncConnection, sql: str, params: dict[str, Any]) -> dict[int, Any]:
    return {row.n: row for row in await conn.execute(text(sql), params)}


async def _sums(conn: AsyncConnection, sql: str, params: dict[str, Any], column: str = "amount") -> dict[int, int]:
    return {row.n: int(getattr(row, column)) for row in await conn.execute(text(sql), params)}


def _points(
    currency: str,
    cuts: Sequence[Period],
    movements: dict[int, Any],
    churned: dict[int, int],
    billed: dict[int, int],
    refunded: dict[int, int],
    collected: dict[int, int],
    failed: dict[int, int],
    recovered: dict[int, int],
) -> list[MetricsPoint]:
    def money(minor: Any) -> Money:
        return Money(int(minor or 0), currency)

    before = movements.get(0)
    mrr = int(before.step) if before is not None else 0
    active = int(before.active) if before is not None else 0
    trialing = int(before.trialing) if before is not None else 0
    out = []
    for n, period in enumerate(cuts, start=1):
        row = movements.get(n)
        if row is not None:
            mrr += int(row.step)
            active += int(row.active)
            trialing += int(row.trialing)
        out.append(
            MetricsPoint(
                period=period,
                mrr=money(mrr),
                new=money(row.new if row is not None else 0),
                expansion=money(row.expansion if row is not None else 0),
                contraction=money(row.contraction if row is not None else 0),
                churned=money(row.churned if row is not None else 0),
                reactivation=money(row.reactivation if row is not None else 0),
                active=active,
                trialing=trialing,
                new_subscriptions=int(row.new_subscriptions) if row is not None else 0,
                churned_subscriptions=churned.get(n, 0),
                billed=money(billed.get(n)),
                collected=money(collected.get(n)),
                refunded=money(refunded.get(n)),
                failed_payments=failed.get(n, 0),
                recovered_payments=recovered.get(n, 0),
            )
        )
    return out
