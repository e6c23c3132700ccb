"""Revenue metrics (``revenueMetrics``): MRR and its movements, and the money of each period.

Everything is summed by PostgreSQL; no subscription is loaded.

* MRR, its movements and the active and trialing counts come from
  ``revenue_movements``, which triggers fill as subscriptions are saved
  (migration 0019): the MRR at a period's end is the sum of every movement
  before it, so each period reconciles exactly (end = start + new +
  reactivation + expansion - contraction - churned).
* ``billed``: totals of invoices finalized (issued) in the period, a later
  void included (it does not un-bill the period); pro forma documents are
  requests for payment and are left out. ``refunded``: credit notes
  refunded through a gateway, issued in the period. Both with shipping and
  tax.
* ``collected``: successful charges recorded in the period (gateways,
  payments collected outside them, transfers marked paid).
* ``failedPayments``: renewals whose first attempt failed in the period;
  ``recoveredPayments``: renewals paid in the period after an attempt that
  failed before.

Periods are days of the seller's calendar (``REBILL_SELLER``'s time zone),
the same days invoices are dated by.

**Closed days.** A year of a million subscriptions is millions of rows, and
what happened on a day is never rewritten once the day is over: every row
these figures read is dated by the clock when it is written (a movement, an
invoice's issue, a charge, a credit note). So each day's sums are kept in
``revenue_days`` once the day is two days past (a margin for transactions
still open across midnight), per currency, and a request adds the kept days
to the sums of the days after them, read from the rows. A clock set back
(``REBILL_NOW``) forgets the kept days from its "two days ago" on; a change
of the seller's time zone forgets them all; ``rebill seed`` and the
migration's backfill, which write the past, forget them too
(``db.revenue.forget_days``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from rebill.db import tables as t
from rebill.domain.cadence import local_today, start_of_day
from rebill.domain.errors import ValidationError
from rebill.domain.money import Money, currency_exponent
from rebill.domain.periods import MetricsInterval, Period, periods
from rebill.services.runtime import Services

DAYS = t.table_of(t.RevenueDay)
KEPT = t.table_of(t.RevenueDaysKept)

# A day's rows are kept once it is this far behind the seller's today.
CLOSING = timedelta(days=2)
_FAR_PAST = datetime(1, 1, 1, tzinfo=UTC)


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


@dataclass
class Totals:
    """What happened in a stretch of time, in minor units and counts; columns of ``revenue_days`` by name."""

    step_minor: int = 0  # the change of MRR
    new_minor: int = 0
    expansion_minor: int = 0
    contraction_minor: int = 0
    churned_minor: int = 0
    reactivation_minor: int = 0
    active_step: int = 0
    trialing_step: int = 0
    new_subscriptions: int = 0
    billed_minor: int = 0
    collected_minor: int = 0
    refunded_minor: int = 0
    failed_payments: int = 0
    recovered_payments: int = 0

    def add(self, other: Totals | Any) -> None:
        for name in _TOTALS:
            setattr(self, name, getattr(self, name) + int(getattr(other, name) or 0))

    def any(self) -> bool:
        return any(getattr(self, name) for name in _TOTALS)


_TOTALS = tuple(f.name for f in fields(Totals))

# Bucket n (1-based) of ``:starts`` (instants) or ``:days`` (dates); 0 is before the first. Movements have no
# DISTINCT, so their scan and sums run in parallel: a subscription's MRR leaves 0 for the first time once.
MOVEMENTS = """
SELECT width_bucket(occurred_at, CAST(:starts AS timestamptz[])) AS n,
       sum(mrr_after_minor - mrr_before_minor) AS step_minor,
       sum(mrr_after_minor - mrr_before_minor) FILTER (WHERE kind = 'NEW') AS new_minor,
       sum(mrr_after_minor - mrr_before_minor) FILTER (WHERE kind = 'EXPANSION') AS expansion_minor,
       sum(mrr_before_minor - mrr_after_minor) FILTER (WHERE kind = 'CONTRACTION') AS contraction_minor,
       sum(mrr_before_minor - mrr_after_minor) FILTER (WHERE kind = 'CHURNED') AS churned_minor,
       sum(mrr_after_minor - mrr_before_minor) FILTER (WHERE kind = 'REACTIVATION') AS reactivation_minor,
       sum(active_step) AS active_step,
       sum(trialing_step) AS trialing_step,
       count(*) FILTER (WHERE kind = 'NEW') AS new_subscriptions
FROM revenue_movements
WHERE currency = :currency AND occurred_at >= :floor AND occurred_at < :until
GROUP BY 1
"""

# A subscription may churn, come back and churn again in one period: it is counted once (never kept by day).
CHURNED = """
SELECT n, count(*) AS count
FROM (SELECT DISTINCT width_bucket(occurred_at, CAST(:starts AS timestamptz[])) AS n, chain_id
      FROM revenue_movements
      WHERE currency = :currency AND occurred_at >= :since AND occurred_at < :until AND kind = 'CHURNED') AS c
GROUP BY n
"""

# Invoices issued in the period (a later void does not un-bill a period), pro formas left out.
BILLED = """
SELECT width_bucket(issue_date, CAST(:days AS date[])) AS n, sum(total_minor) AS billed_minor
FROM invoices
WHERE currency = :currency AND issue_date >= :floor_day AND issue_date <= :last_day
  AND document_type = 'INVOICE' AND number IS NOT NULL
GROUP BY 1
"""

REFUNDED = """
SELECT width_bucket(issue_date, CAST(:days AS date[])) AS n, sum(total_minor) AS refunded_minor
FROM credit_notes
WHERE issue_date >= :floor_day AND issue_date <= :last_day AND currency = :currency AND refunded
GROUP BY 1
"""

COLLECTED = """
SELECT width_bucket(created_at, CAST(:starts AS timestamptz[])) AS n, sum(amount_minor) AS collected_minor
FROM transactions
WHERE currency = :currency AND created_at >= :money_floor AND created_at < :until
  AND kind = 'CHARGE' AND status = 'SUCCEEDED' AND amount_minor > 0
GROUP BY 1
"""

# A renewal's first attempt is its earliest charge: it failed when it was declined and nothing succeeded at
# that instant (a gateway that could not process it, then another that charged it, is an attempt that
# succeeded). A renewal is recovered when it is paid after its first decline. Declines are few: they are
# read whole (one index), the period's payments beside them.
PAYMENTS = """
WITH declined AS MATERIALIZED (
    SELECT renewal_id, min(created_at) AS first_declined FROM transactions
    WHERE currency = :currency AND created_at < :until AND kind = 'CHARGE' AND status = 'FAILED'
    GROUP BY renewal_id
),
paid AS (
    SELECT renewal_id, created_at FROM transactions
    WHERE currency = :currency AND created_at >= :money_floor AND created_at < :until
      AND kind = 'CHARGE' AND status = 'SUCCEEDED'
),
failed AS (
    SELECT width_bucket(d.first_declined, CAST(:starts AS timestamptz[])) AS n, count(*) AS failed_payments
    FROM declined d
    WHERE d.first_declined >= :money_floor
      AND NOT EXISTS (SELECT 1 FROM paid p WHERE p.renewal_id = d.renewal_id AND p.created_at = d.first_declined)
    GROUP BY 1
),
recovered AS (
    SELECT width_bucket(p.created_at, CAST(:starts AS timestamptz[])) AS n,
           count(DISTINCT p.renewal_id) AS recovered_payments
    FROM paid p JOIN declined d ON d.renewal_id = p.renewal_id AND p.created_at > d.first_declined
    GROUP BY 1
)
SELECT coalesce(f.n, r.n) AS n, f.failed_payments, r.recovered_payments
FROM failed f FULL JOIN recovered r ON r.n = f.n
"""

KEPT_DAYS = f"""
SELECT width_bucket(day, CAST(:days AS date[])) AS n, {", ".join(f"sum({name}) AS {name}" for name in _TOTALS)}
FROM revenue_days
WHERE currency = :currency AND day < :kept_until AND day <= :last_day
GROUP BY 1
"""

FIRST_DAY = """
SELECT (SELECT min(occurred_at) FROM revenue_movements WHERE currency = :currency) AS moved,
       (SELECT min(created_at) FROM transactions
        WHERE currency = :currency AND kind = 'CHARGE' AND status = 'SUCCEEDED') AS charged,
       (SELECT min(created_at) FROM transactions
        WHERE currency = :currency AND kind = 'CHARGE' AND status = 'FAILED') AS declined,
       (SELECT min(issue_date) FROM invoices
        WHERE currency = :currency AND document_type = 'INVOICE' AND number IS NOT NULL) AS invoiced,
       (SELECT min(issue_date) FROM credit_notes WHERE currency = :currency AND refunded) AS refunded
"""


async def aggregate(
    conn: AsyncConnection,
    currency: str,
    starts: Sequence[datetime],
    days: Sequence[date],
    *,
    floor: datetime,
    money_floor: datetime,
    until: datetime,
    floor_day: date,
    last_day: date,
) -> dict[int, Totals]:
    """Totals per bucket (``starts`` and ``days`` the buckets' first instants and days) from the rows:
    movements from ``floor``, charges from ``money_floor``, documents from ``floor_day``."""
    params = {
        "currency": currency,
        "starts": list(starts),
        "days": list(days),
        "floor": floor,
        "money_floor": money_floor,
        "until": until,
        "floor_day": floor_day,
        "last_day": last_day,
    }
    out: dict[int, Totals] = {}
    for sql in (MOVEMENTS, BILLED, REFUNDED, COLLECTED, PAYMENTS):
        for row in await conn.execute(text(sql), params):
            out.setdefault(row.n, Totals()).add(_as_totals(row))
    return out


def _as_totals(row: Any) -> Totals:
    values = row._mapping
    return Totals(**{name: int(values[name] or 0) for name in _TOTALS if name in values})


class RevenueMetrics:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def points(
        self,
        currency: str,
        start: date,
        end: date,
        interval: MetricsInterval = MetricsInterval.MONTH,
        *,
        kept: bool = True,
    ) -> list[MetricsPoint]:
        """One point per period from ``start`` to ``end`` (days of the seller's calendar, both included).

        Refused (``ValidationError``, ``MoneyError``) for an unknown currency,
        ``start`` after ``end``, or more than 400 points. ``kept=False`` reads
        every row instead of the closed days' sums (what tests compare them with).
        """
        try:
            currency_exponent(currency)
        except ValidationError as exc:
            raise exc.with_field("currency") from None
        cuts = periods(start, end, interval)
        zone = self.services.settings.seller_time_zone
        starts = [start_of_day(p.start, zone) for p in cuts]
        following = end + timedelta(days=1) if end < date.max else None
        until = start_of_day(following, zone) if following is not None else datetime.max.replace(tzinfo=UTC)
        kept_until: date | None = None
        if kept:
            kept_until = await self.keep_closed_days(currency)
        async with self.services.engine.connect() as conn, conn.begin():
            await conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            # A year's churned subscriptions are counted once each: let that sort happen in memory.
            await conn.exec_driver_sql("SET LOCAL work_mem = '32MB'")
            days = [p.start for p in cuts]
            totals: dict[int, Totals] = {}
            live_floor, live_day = _FAR_PAST, date.min
            if kept_until is not None:
                kept_rows = await conn.execute(
                    text(KEPT_DAYS),
                    {"currency": currency, "days": days, "kept_until": kept_until, "last_day": end},
                )
                for row in kept_rows:
                    totals.setdefault(row.n, Totals()).add(row)
                live_floor, live_day = start_of_day(kept_until, zone), kept_until
            live = await aggregate(
                conn,
                currency,
                starts,
                days,
                floor=live_floor,
                money_floor=max(live_floor, starts[0]),
                until=until,
                floor_day=max(live_day, start),
                last_day=end,
            )
            for n, sums in live.items():
                totals.setdefault(n, Totals()).add(sums)
            churned = {
                r.n: int(r._mapping["count"])
                for r in await conn.execute(
                    text(CHURNED), {"currency": currency, "starts": starts, "since": starts[0], "until": until}
                )
            }
        return _points(currency, cuts, totals, churned)

    async def keep_closed_days(self, currency: str) -> date:
        """Keep the sums of every closed day not kept yet; the day before which they are all kept."""
        zone = self.services.settings.seller_time_zone
        closing = local_today(self.services.clock.now(), zone) - CLOSING
        async with self.services.engine.begin() as conn:
            lock = {"key": f"revenue_days:{currency}"}  # one request keeps a currency's days at a time
            await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), lock)
            await conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")  # the first time: every day at once
            mark = (
                await conn.execute(
                    text("SELECT kept_until, time_zone FROM revenue_days_kept WHERE currency = :c"), {"c": currency}
                )
            ).first()
            since: date | None = None
            if mark is not None and mark.time_zone != zone:
                await conn.execute(text("DELETE FROM revenue_days WHERE currency = :c"), {"c": currency})
            elif mark is not None and mark.kept_until > closing:  # the clock went back
                await conn.execute(
                    text("DELETE FROM revenue_days WHERE currency = :c AND day >= :d"), {"c": currency, "d": closing}
                )
                since = closing
            elif mark is not None:
                since = mark.kept_until
            if since is None:
                since = await _first_day(conn, currency, zone)
            if since is not None and since < closing:
                days = [since + timedelta(days=n) for n in range((closing - since).days)]
                starts = [start_of_day(d, zone) for d in days]
                sums = await aggregate(
                    conn,
                    currency,
                    starts,
                    days,
                    floor=starts[0],
                    money_floor=starts[0],
                    until=start_of_day(closing, zone),
                    floor_day=since,
                    last_day=closing - timedelta(days=1),
                )
                rows = [
                    {"currency": currency, "day": days[n - 1], **vars(s)} for n, s in sorted(sums.items()) if s.any()
                ]
                if rows:
                    await conn.execute(insert(DAYS), rows)
            kept = pg_insert(KEPT).values(currency=currency, kept_until=closing, time_zone=zone)
            await conn.execute(
                kept.on_conflict_do_update(
                    index_elements=[KEPT.c.currency], set_={"kept_until": closing, "time_zone": zone}
                )
            )
        return closing


async def _first_day(conn: AsyncConnection, currency: str, zone: str) -> date | None:
    """The seller's first day on which anything these metrics read happened in ``currency``."""
    row = (await conn.execute(text(FIRST_DAY), {"currency": currency})).one()
    found = [local_today(v, zone) for v in (row.moved, row.charged, row.declined) if v is not None]
    found += [v for v in (row.invoiced, row.refunded) if v is not None]
    return min(found) if found else None


def _points(
    currency: str, cuts: Sequence[Period], totals: dict[int, Totals], churned: dict[int, int]
) -> list[MetricsPoint]:
    def money(minor: int) -> Money:
        return Money(minor, currency)

    before = totals.get(0, Totals())
    mrr, active, trialing = before.step_minor, before.active_step, before.trialing_step
    out = []
    for n, period in enumerate(cuts, start=1):
        row = totals.get(n, Totals())
        mrr += row.step_minor
        active += row.active_step
        trialing += row.trialing_step
        out.append(
            MetricsPoint(
                period=period,
                mrr=money(mrr),
                new=money(row.new_minor),
                expansion=money(row.expansion_minor),
                contraction=money(row.contraction_minor),
                churned=money(row.churned_minor),
                reactivation=money(row.reactivation_minor),
                active=active,
                trialing=trialing,
                new_subscriptions=row.new_subscriptions,
                churned_subscriptions=churned.get(n, 0),
                billed=money(row.billed_minor),
                collected=money(row.collected_minor),
                refunded=money(row.refunded_minor),
                failed_payments=row.failed_payments,
                recovered_payments=row.recovered_payments,
            )
        )
    return out
