"""The billing forecast (``billingForecast``): what the worker will charge, per day of the seller's calendar.

A million subscriptions are forecast in SQL. The first part
works out, per subscription, what each of its coming renewals charges —
items after the coupons still running at that renewal (a coupon that runs
out splits the renewals into at most three stretches of one amount),
shipping, and exclusive tax per line — mirroring ``bulk/simulate.py``'s
``chargedAfter`` and held to the domain by tests. Subscriptions that
renew on the same dates (same next renewal, cadence, anchor day, time zone,
stops and stretches) are then grouped, and only the groups' renewal dates
are generated (``generate_series`` over the cadence with the ANCHORED and
STICKY month-end rules of ``domain.cadence``), so the work grows with the
number of distinct schedules, not of subscriptions.

Most subscriptions are plain (``db.schedule``: billing, renewed
automatically, no end, no coupon taking anything, no credit, no invoicing
settings): they bill ``amount_minor`` on each renewal, and every write keeps
their groups counted (``schedule_tallies``, by its triggers), so their groups
are read, not counted from a million rows. The others (a partial index lists
them) are grouped from one scan, by their next renewal, anchor, time zone,
cadence, stop date and delay (a few small columns the planner can count, so
it hashes the groups instead of sorting their rows), and each group's cadence
is worked out once. When no tax rate and no shipping profile is in use,
that scan also prices the subscriptions with one coupon: the coupon comes
from a hash join all workers share, what its renewing items add up to from
the row itself (``amount_minor + discount_minor``: every write keeps what the
coupons take off beside what the subscription bills), and they are grouped as
well by the renewal their coupon runs out at. The same scan then keeps a group of its own for each
subscription with a retry or a draft owed (so it is counted once on a day it
also renews), and one for each with a credit balance (the domain prices
those). The others (several coupons or one limited to some products, and,
when tax or shipping applies, every coupon, credit, retry or draft) are
priced row by row; without tax or shipping they are few and looked up by
key. The tax and shipping rates are read once into two small maps, as
``bulk/simulate.py`` does. JIT is off for the statements: compiling them took
thirty seconds, whatever the number of subscriptions.

What SQL does not price exactly is priced by the domain, through the
engine's own rules (``domain.forecast.scheduled_charges``): subscriptions
with a phase dated inside the window (applied on its date by the same
``apply_changes`` the worker uses), ``FUTURE`` ones billing nothing (or
renewed by hand after a trial or a first period paid elsewhere: the statement
bills those renewed by hand their first period only), a credit balance, a
product-limited coupon beside another, more than two coupons running out,
or several taxed items under a discount (tax per line after each line's
share of it). Those are few; their count is reported.

Beside the renewals: retries of declined renewals on their retry dates (at
what the renewal owes), invoices paid by transfer on their due dates (at
their amount due), drafts on the day they are finalized.

The work is two statements run at once on two connections, the second
importing the first's snapshot (both read the same data whatever is written
meanwhile): ``plain`` reads the tallies and groups the other subscriptions on
one core, ``rest`` prices the few with several coupons and what is owed beside
the renewals on the other (with tax or shipping, ``plain`` reads every
subscription, in parallel workers). Their points
add up; ``rest`` names the subscriptions it charged on their own, so that one
the domain prices is counted once.

The decline rate of the last 90 days reads the counts of the window's closed
hours from ``decline_hours`` (the first request counts and keeps them) and
counts the rest from the charges, on a third connection while the statements
run. A process runs two forecasts at once; others wait their turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from rebill.db import schedule
from rebill.db import tables as t
from rebill.db.rates import SHIPPING_RATES, TAX_RATES
from rebill.db.repositories import Catalog, SubscriptionRepository, any_of
from rebill.domain import forecast as rules
from rebill.domain.cadence import local_today
from rebill.domain.errors import RebillError
from rebill.domain.money import Money
from rebill.domain.outcome import OpContext
from rebill.domain.periods import MetricsInterval, Period, periods
from rebill.services.runtime import ENGINE, Common, Services

PH = t.table_of(t.Phase)
DH = t.table_of(t.DeclineHour)

#: An hour of the decline rate's window is kept once it has been over for this long (a charge is dated when its
#: batch starts, and written when the batch ends); the hours after it are counted from the charges.
_CLOSING = timedelta(hours=1)
#: The schedules' tallies are summed once more rows of changes than this were added (and than they had rows).
_TALLIES_GROWN = 1000
#: The advisory-lock class of summing the tallies ("RBT").
_TALLY_LOCK = 0x524254
#: Hours to count at once from the charges' indexes, looking their renewals up by key; more are joined.
_FEW_HOURS = 48

# The scheduled renewals whose first attempt was between :since (included) and :until (excluded), and how many
# of those failed; ``{hour}`` groups them by UTC hour. A renewal's first attempt is its earliest charge
# transaction(s), as revenueMetrics counts them: a gateway that could not process it, then another that charged
# it at once, is one attempt that succeeded. Many days at once are joined (``_FIRST_ATTEMPTS``); a few hours
# are read from the charges' indexes and looked up by key (``_FIRST_ATTEMPTS_AT``).
_FIRST_OF = """
SELECT {hour} count(*) FILTER (WHERE NOT first.succeeded) AS failed, count(*) AS attempted
FROM (
    SELECT date_trunc('hour', min(t.created_at) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS hour,
        bool_or(t.status = 'SUCCEEDED') AS succeeded
    FROM {charges}
    WHERE NOT EXISTS (SELECT 1 FROM transactions e
                      WHERE e.renewal_id = t.renewal_id AND e.kind = 'CHARGE' AND e.created_at < t.created_at{lookup})
    GROUP BY t.renewal_id
) AS first
"""
_IN_RANGE = "t.kind = 'CHARGE' AND t.currency = :currency AND t.created_at >= :since AND t.created_at < :until"
_SCHEDULED = "r.kind = 'SCHEDULED' AND NOT r.adjustment"
_FIRST_ATTEMPTS = _FIRST_OF.format(
    hour="{hour}",
    charges=f"""(SELECT t.renewal_id, t.created_at, t.status
                 FROM transactions t JOIN renewals r ON r.id = t.renewal_id AND {_IN_RANGE}
                 WHERE {_SCHEDULED}) AS t""",
    lookup="",
)
# The charges of a few hours, read from the two partial indexes alone (each implies its status), each renewal
# looked up to keep the scheduled ones before their earlier charges are looked for.
_FIRST_ATTEMPTS_AT = _FIRST_OF.format(
    hour="{hour}",
    charges=f"""(SELECT t.* FROM (
                     SELECT t.renewal_id, t.created_at, 'SUCCEEDED' AS status FROM transactions t
                     WHERE {_IN_RANGE} AND t.status = 'SUCCEEDED'
                     UNION ALL
                     SELECT t.renewal_id, t.created_at, 'FAILED' FROM transactions t
                     WHERE {_IN_RANGE} AND t.status = 'FAILED') AS t
                 CROSS JOIN LATERAL (SELECT 1 FROM renewals r WHERE r.id = t.renewal_id AND {_SCHEDULED} OFFSET 0) AS r
                 OFFSET 0) AS t""",
    lookup=" OFFSET 0",
)


def _hour_of(at: datetime) -> datetime:
    """The UTC hour ``at`` is in."""
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _hours(first: datetime, until: datetime) -> list[datetime]:
    """The hours from ``first`` (an hour's start) to ``until`` (excluded)."""
    return [first + timedelta(hours=n) for n in range(int((until - first) / timedelta(hours=1)))]


#: A subscription's local dates reach at most a day past the seller's (time zones differ by under 27 hours).
_ZONE_MARGIN = timedelta(days=1)


def _half_even(n: str) -> str:
    """``n`` (numeric, >= 0) rounded half to even, as ``Rounding.HALF_EVEN`` does."""
    return f"(CASE WHEN ({n}) - floor({n}) = 0.5 THEN floor({n}) + mod(floor({n}), 2) ELSE round({n}) END)::bigint"


# Dates are taken apart with ``date_part`` (a float) rather than ``extract`` (a numeric, several times slower).


def _mi(d: str) -> str:
    """A date's month index (year * 12 + month - 1)."""
    return f"(date_part('year', {d})::int * 12 + date_part('month', {d})::int - 1)"


def _dim(mi: str) -> str:
    """The number of days of the month with index ``mi``: 28 or 29 in February, else 30 or 31 (31 in odd months
    up to July, in even ones from August)."""
    y, m = f"(({mi}) / 12)", f"(({mi}) % 12 + 1)"
    leap = f"({y} % 4 = 0 AND ({y} % 100 <> 0 OR {y} % 400 = 0))"
    return f"(CASE WHEN {m} = 2 THEN CASE WHEN {leap} THEN 29 ELSE 28 END ELSE 30 + ({m} + {m} / 8) % 2 END)"


def _mk(mi: str, day: str) -> str:
    """Day ``day`` of month ``mi``, clamped to the month's last day (as ``relativedelta`` does)."""
    return f"make_date(({mi}) / 12, ({mi}) % 12 + 1, least({day}, {_dim(mi)}))"


def _period_end(day: str) -> str:
    """The last day of the forecast's period holding ``day``."""
    return f"""CASE CAST(:interval AS text) WHEN 'DAY' THEN {day}
        WHEN 'WEEK' THEN date_trunc('week', {day})::date + 6
        ELSE (date_trunc('month', {day}) + interval '1 month')::date - 1 END"""


def _seller(d: str, tz: str) -> str:
    """The seller's date at the first instant of local day ``d`` in zone ``tz``."""
    return f"((({d})::timestamp AT TIME ZONE {tz}) AT TIME ZONE :seller)::date"


_SHIPS = "jsonb_typeof(s.shipping_address) = 'object'"
# The address that decides the tax: the customer's billing address, else the subscription's shipping address.
_ADDRESS = (
    "coalesce(CASE WHEN jsonb_typeof(c.billing_address) = 'object' THEN c.billing_address END,"
    f" CASE WHEN {_SHIPS} THEN s.shipping_address END)"
)
# The exclusive percentage (``tax.rate_for``): the region's rate, else the country's; none for an exempt customer.
_PLACE = """CASE WHEN coalesce(addr ->> 'region', '') = '' THEN NULL
    WHEN strpos(addr ->> 'region', '-') > 0 THEN upper(addr ->> 'country') || ' ' || upper(addr ->> 'region')
    ELSE upper(addr ->> 'country') || ' ' || upper(addr ->> 'country') || '-' || upper(addr ->> 'region') END"""
_EXCLUSIVE_PERCENTAGE = f"""CASE WHEN tax_exempt IS NOT FALSE THEN NULL
    ELSE (coalesce(tax_rates -> ({_PLACE}), tax_rates -> upper(addr ->> 'country')) #>> '{{}}')::numeric END"""
_SHIPPING_MINOR = "coalesce((shipping_rates ->> (ship_profile::text || ' ' || currency))::bigint, 0)"

# What an item adds to the next bill (``Item.line(pending=True)``): its pending quantity and price, or its tier's.
_QTY = "coalesce(i.pending_quantity, i.quantity)"
_LISTED = "coalesce(i.pending_unit_price_minor, i.unit_price_minor)"
_TIER = f"""(SELECT pt.unit_price_minor FROM product_tiers pt
    WHERE pt.product_id = i.product_id AND (pt.up_to IS NULL OR pt.up_to >= {_QTY}) ORDER BY pt.position LIMIT 1)"""
_LINE = f"({_QTY}::bigint * CASE WHEN i.price_from_tiers THEN coalesce({_TIER}, {_LISTED}) ELSE {_LISTED} END)"


def _coupon_discount(base: str, coupon: str = "cp") -> str:
    """What one coupon (``coupon``'s columns) takes of ``base`` (the lines it applies to)."""
    return (
        f"CASE WHEN {coupon}.percent_off IS NOT NULL"
        f" THEN {_half_even(f'({base})::numeric * {coupon}.percent_off / 100')}"
        f" ELSE least({coupon}.amount_off_minor, {base}) END"
    )


def _tax(amount: str, discount: str) -> str:
    """The exclusive tax of the items billing ``amount`` after ``discount`` (NULL: per-line, the domain's)."""
    line_tax = f"(SELECT coalesce(sum({_half_even('x::numeric * pct / 100')}), 0) FROM unnest(lines) AS x)"
    return f"""(CASE WHEN pct IS NULL THEN 0
        WHEN coalesce(n_items, 0) <= 1 THEN {_half_even(f"({amount})::numeric * pct / 100")}
        WHEN ({discount}) = 0 THEN {line_tax} END)"""


def _charge(amount: str, discount: str) -> str:
    ship_tax = f"CASE WHEN pct IS NULL THEN 0 ELSE {_half_even('ship::numeric * pct / 100')} END"
    return f"(({amount}) + {_tax(amount, discount)} + ship + {ship_tax})"


def _by_key(key: str) -> str:
    """The subscription ``s`` whose id is ``key``, looked up by key for each of a few rows (OFFSET 0 keeps it a
    lookup: joined, the planner may read every subscription to find a few thousand)."""
    return f"CROSS JOIN LATERAL (SELECT * FROM subscriptions s WHERE s.id = {key} OFFSET 0) AS s"


# What the subscriptions owing something beside their renewals carry, to be dated once more on their own.
_OWING = """s.id, s.currency, s.status, s.renewal_type, s.time_zone, s.start_date, s.anchor_date,
        s.next_renewal_date, s.trial_end_date, s.current_period_end, s.end_date, s.cancellation_date, s.last_cycle,
        s.profile_id, s.payment_method_id, s.invoicing, s.amount_minor, s.discount_minor, s.credit_minor,
        s.cancel_at_period_end"""


def _extra() -> str:
    """What is owed beside the renewals: retries of declined renewals on their retry dates, invoices paid by
    transfer on their due dates, drafts on the day they are finalized (one row each: sid, day, amount, and the
    subscription's columns that date it, ``_OWING``)."""
    # The subscription of each of the few failed renewals is looked up by its key (``_by_key``).
    # Only a renewal paid by transfer looks its invoice up (the condition on ``r`` gates the lookup).
    return f"""
    SELECT r.subscription_id AS sid,
        CASE WHEN r.payment_kind = 'OFFLINE' THEN inv.due_date
             ELSE greatest({_seller("r.next_retry_date", "s.time_zone")}, CAST(:seller_today AS date)) END AS day,
        CASE WHEN r.payment_kind = 'OFFLINE'
             THEN inv.total_minor - inv.credit_applied_minor - inv.amount_paid_minor
             ELSE r.amount_minor END AS amount, {_OWING}
    FROM (SELECT r.id, r.subscription_id, r.amount_minor, r.payment_kind, r.next_retry_date FROM renewals r
          WHERE r.status = 'FAILED' AND r.next_retry_date IS NOT NULL AND r.currency = :currency
          ORDER BY r.subscription_id) AS r
    {_by_key("r.subscription_id")}
    LEFT JOIN LATERAL (
        SELECT * FROM invoices v WHERE r.payment_kind = 'OFFLINE' AND v.renewal_id = r.id AND v.status = 'OPEN'
        ORDER BY v.document_type = 'INVOICE' DESC LIMIT 1) AS inv ON true
    WHERE ((r.payment_kind IS DISTINCT FROM 'OFFLINE' AND s.status = 'OVERDUE')
           OR (r.payment_kind = 'OFFLINE' AND inv.due_date >= CAST(:seller_today AS date)))
    UNION ALL
    SELECT v.subscription_id,
        greatest({_seller("(v.draft ->> 'finalizeOn')::date", "s.time_zone")}, CAST(:seller_today AS date))
        + CASE WHEN pm.kind = 'OFFLINE'
               THEN coalesce((s.invoicing ->> 'paymentTermsDays')::int, CAST(:terms AS int)) ELSE 0 END,
        greatest(0, v.total_minor - s.credit_minor), {_OWING}
    FROM invoices v
    JOIN subscriptions s ON s.id = v.subscription_id
    LEFT JOIN payment_methods pm ON pm.id = s.payment_method_id
    WHERE v.draft IS NOT NULL AND v.status = 'DRAFT' AND v.currency = :currency
      AND s.status NOT IN ('CANCELLED', 'EXPIRED')"""


# A subscription's first billing date to come: its next renewal; for a FUTURE one, its trial's end, the end of
# a first period paid elsewhere, or its start (its first period billed then as the INITIAL renewal, what a
# renewal bills).
_N0 = """CASE WHEN s.status <> 'FUTURE' THEN s.next_renewal_date
                         WHEN s.trial_end_date > s.start_date THEN s.trial_end_date
                         ELSE coalesce(s.current_period_end, s.start_date) END"""

# A FUTURE subscription renewed by hand is billed its first period at its start (``_ONCE``), and nothing after;
# with a trial, or a first period paid elsewhere, it is billed nothing at all (the domain's, as it finds).
_ONCE = "s.renewal_type <> 'AUTOMATIC'"
# How many renewals are left: the profile's occurrences beyond the last cycle billed (NULL: no limit).
_REMAINING = f"CASE WHEN {_ONCE} THEN 1 ELSE p.max_occurrences - s.last_cycle END"
_FIRST_ONLY = """(s.status = 'FUTURE' AND s.current_period_end IS NULL
                       AND NOT coalesce(s.trial_end_date > s.start_date, false))"""

# The subscriptions the worker bills from their next renewal on, and the FUTURE ones billing something (those
# with a phase to apply are the domain's). A FUTURE one's next renewal is its start.
_BILLS = f"""s.currency = :currency
      AND (s.status IN ('TRIAL', 'ACTIVE', 'OVERDUE') OR (s.status = 'FUTURE' AND s.amount_minor > 0))
      AND (s.renewal_type = 'AUTOMATIC' OR {_FIRST_ONLY}) AND NOT s.cancel_at_period_end
      AND s.next_renewal_date <= CAST(:horizon AS date)
      AND NOT s.id IN (SELECT ph.subscription_id FROM phases ph
                       WHERE ph.status = 'PENDING' AND ph.effective_date <= CAST(:horizon AS date))"""

# The subscriptions with a declined renewal to retry, and those with a draft invoice.
_RETRIES = """SELECT r.subscription_id FROM renewals r
                       WHERE r.status = 'FAILED' AND r.next_retry_date IS NOT NULL AND r.currency = :currency"""
_DRAFTS = """SELECT v.subscription_id FROM invoices v
                       WHERE v.draft IS NOT NULL AND v.status = 'DRAFT' AND v.currency = :currency
                         AND v.subscription_id IS NOT NULL"""

# Those priced row by row (a few per cent): a coupon, a retry or a draft to forecast beside their renewals,
# a credit balance, or nothing billed today (they bill only if an item renews). The others, read in one
# pass with nothing but uncorrelated lookups (hashed once, in each parallel worker), are grouped at once.
_NOT_SINGLED_OUT = f"""s.amount_minor > 0 AND s.credit_minor <= 0
      AND NOT s.id IN (SELECT subscription_id FROM applied_coupons)
      AND NOT s.id IN ({_RETRIES})
      AND NOT s.id IN ({_DRAFTS})"""

# Billing nothing today, a subscription bills only if one of its items renews.
_RENEWS = """(s.amount_minor > 0 OR s.id IN (
           SELECT ai.subscription_id FROM subscription_items ai JOIN subscriptions z ON z.id = ai.subscription_id
           WHERE ai.auto_renew AND z.amount_minor <= 0))"""


_OFFLINE = "s.payment_method_id IN (SELECT id FROM payment_methods WHERE kind = 'OFFLINE')"

# The coupons still running, with how many renewals each still discounts (NULL: for ever).
_RUNNING = """SELECT ac.subscription_id AS sid, c.percent_off, c.amount_off_minor, c.product_ids,
        cardinality(c.product_ids) > 0 AS restricted,
        CASE c.duration WHEN 'ONCE' THEN 1 - ac.cycles_used
             WHEN 'REPEATING' THEN coalesce(c.duration_cycles, 0) - ac.cycles_used END AS runs
    FROM applied_coupons ac
    JOIN coupons c ON c.id = ac.coupon_id
    WHERE (c.duration = 'FOREVER' OR ac.cycles_used < CASE c.duration WHEN 'ONCE' THEN 1
                                                       ELSE coalesce(c.duration_cycles, 0) END)"""


# The subscriptions with more than one coupon applied.
_REPEATED = """SELECT a.subscription_id FROM (
        SELECT subscription_id, lag(subscription_id) OVER (ORDER BY subscription_id) AS before
        FROM applied_coupons) AS a
        WHERE a.before = a.subscription_id"""


def _delay(invoicing: str, offline: str) -> str:
    """Days from a billing date to the charge: a draft's days before it is finalized, then transfer terms. Most
    subscriptions have no invoicing settings and are not paid by transfer: none."""
    return f"""CASE WHEN {invoicing} IS NULL AND NOT ({offline}) THEN 0
            ELSE CASE WHEN ({invoicing} ->> 'draftInvoices')::boolean
                      THEN coalesce(({invoicing} ->> 'draftDays')::int, 0) ELSE 0 END
                 + CASE WHEN {offline} THEN coalesce(({invoicing} ->> 'paymentTermsDays')::int, CAST(:terms AS int))
                        ELSE 0 END END"""


def _priced(columns: str, joins: str, where: str, *, taxes: bool, shipping: bool, rows: str | None = None) -> str:
    """Rows of subscriptions with ``columns``, and what an invoice adds to them: ``pct`` (the exclusive tax
    rate, NULL for none), ``ship`` (the shipping, 0 for none), ``n_items`` and ``lines`` (with taxes).
    ``rows``: a CTE of the few subscriptions' rows, looked up already (otherwise all are read in one pass).

    Each layer (``OFFSET 0`` keeps it one) works its columns out once per row for the layer above."""
    return f"""(
            SELECT sub.*, {_EXCLUSIVE_PERCENTAGE if taxes else "NULL::numeric"} AS pct,
                {_SHIPPING_MINOR if shipping else "0::bigint"} AS ship
            FROM (
                SELECT {columns}, s.currency, s.amount_minor,
                    {_ADDRESS if taxes else "NULL::jsonb"} AS addr,
                    {"c.tax_exempt" if taxes else "NULL::boolean"} AS tax_exempt,
                    {
        f"CASE WHEN {_SHIPS} THEN coalesce(s.shipping_profile_id, p.shipping_profile_id) END"
        if shipping
        else "NULL::bigint"
    } AS ship_profile,
                    rates.tax_rates, rates.shipping_rates
                FROM {f"{rows} AS s" if rows else "subscriptions s"}
                JOIN subscription_profiles p ON p.id = s.profile_id
                LEFT JOIN subscription_contracts ct ON ct.subscription_id = s.id
                {"JOIN customers c ON c.id = s.customer_id" if taxes else ""}
                {joins}
                CROSS JOIN (SELECT {TAX_RATES if taxes else "NULL::jsonb"} AS tax_rates,
                                   {SHIPPING_RATES if shipping else "NULL::jsonb"} AS shipping_rates) AS rates
                WHERE {_BILLS}{where}
                OFFSET 0
            ) AS sub
            OFFSET 0
        )"""


def several_sql(*, restricted: bool) -> str:
    """The subscriptions with several coupons running, or one limited to some products, as a JSON object whose
    keys are their ids (``:several`` of both statements, when no tax or shipping applies). Unless a coupon is
    limited to some products, only the subscriptions with two coupons or more are looked at: found in the
    index's order, they are the few whose key repeats the one before it."""
    candidates = "" if restricted else f"\n    WHERE sid IN ({_REPEATED})"
    return f"""SELECT coalesce(jsonb_object_agg(sid, true), '{{}}'::jsonb)::text FROM (
    SELECT sid FROM ({_RUNNING}) AS running{candidates}
    GROUP BY sid HAVING count(*) > 1 OR bool_or(coalesce(restricted, false))
) AS several"""


def forecast_sql(
    *,
    taxes: bool,
    shipping: bool,
    restricted: bool,
    offline: bool = True,
    contracts: bool = True,
) -> tuple[str, str]:
    """The two statements, ``plain`` and ``rest``, run at once on two connections that share one snapshot. Each
    gives one row per period (kind 'p') and one per subscription left to the domain (kind 'd'); their points
    add up. ``plain`` prices and dates most subscriptions (below) while ``rest`` prices the others and what
    is owed beside the renewals: on 2 cores, neither waits for the other.

    ``taxes``, ``shipping``: whether any tax rate is active and any shipping profile exists (if not, the
    statement skips their lookups); ``restricted``: whether any coupon is limited to some products;
    ``offline``, ``contracts``: whether any payment method is paid by transfer and any contract cancels at
    its term's end (if not, the pass that groups most subscriptions joins neither).

    Without tax or shipping, the plain subscriptions' groups are read from their tallies (``db.schedule``),
    and the others are read once and grouped at once by their schedule (``plain``); with tax or shipping,
    every subscription with no running coupon, no credit and nothing owed beside its renewals is. The planner
    can count those few columns: it hashes the groups instead of sorting their rows. Without tax or shipping,
    the same pass prices
    those with one coupon (the coupon joined) and those owing a retry or a draft beside their renewals, and
    marks those the domain prices (``dom``); the few left (``singled``: several coupons, or one limited to
    some products) are looked up by key. With tax or shipping, the others are found by a second scan. Those
    are priced row by row (``each``), each in a group of its own (``solo``) if it owes something beside its
    renewals. Only the groups, a few thousand rows, are then dated, and those owing something beside their
    renewals in the plain groups once more on their own (``probes``), to count them once in a period where
    they also renew.
    """
    arrays = restricted or taxes
    total1 = "greatest(0, subtotal - d1)"
    total2 = "greatest(0, subtotal - d2)"
    total0 = "CASE WHEN d0 IS NULL THEN amount_minor ELSE greatest(0, subtotal - d0) END"
    # With taxes, what the tax of a subscription's lines needs (its items that renew).
    all_items = (
        f"""LEFT JOIN (SELECT i.subscription_id AS sid, count(*) AS n_items,
                       array_agg(l.line ORDER BY i.position, i.id) AS lines
                   FROM subscription_items i CROSS JOIN LATERAL (SELECT {_LINE} AS line) AS l
                   WHERE i.auto_renew GROUP BY i.subscription_id) AS li ON li.sid = s.id"""
        if taxes
        else ""
    )
    item_columns = "li.n_items, li.lines" if taxes else "NULL::bigint AS n_items, NULL::bigint[] AS lines"
    charged_on = _seller("x.d", "x.tz")
    # The j-th billing date of a group: j = 0 is its next renewal; then its day-cadence grid (D), its
    # anchored months (A: the anchor's day, clamped in short months), or one interval after the previous
    # date (S: a clamp is for good, so the day is the smallest month length met so far, ``sticky_floor``: worked
    # out for S groups only).
    n0_month = _mi("g.n0")
    sticky_floor = f"(SELECT min({_dim(f'{n0_month} + k * g.step')}) FROM generate_series(1, y.j) AS k)"
    step_dates = f"""CASE WHEN y.j = 0 THEN g.n0
            WHEN g.kind = 'D' THEN g.f + (y.j - 1) * g.step
            WHEN g.kind = 'A' THEN {_mk("g.p1 + (y.j - 1) * g.step", "g.p2")}
            ELSE {_mk(f"{_mi('g.n0')} + y.j * g.step", f"least(date_part('day', g.n0)::int, {sticky_floor})")} END"""
    # A contract's term end, from ``ct``: the pass with tax or shipping (``_priced``) always joins the contracts,
    # the other one when a contract may cancel at its term's end.
    terms = "ct.action_at_term_end AS term_action, ct.end_date AS term_end"
    if not (contracts or taxes or shipping):
        terms = "NULL::text AS term_action, NULL::date AS term_end"
    plain_columns = f"""{_N0} AS n0, s.anchor_date, s.time_zone AS tz, s.profile_id, s.last_cycle, {_ONCE} AS once,
                    s.end_date, s.cancellation_date, {terms}, s.invoicing"""
    if taxes or shipping:
        plain_rows = _priced(
            f"{plain_columns}, {_OFFLINE} AS offline, NULL::bigint AS d0, NULL::bigint AS subtotal,"
            f" NULL::bigint AS dom, {item_columns}",
            all_items,
            f"\n      AND {_NOT_SINGLED_OUT}",
            taxes=taxes,
            shipping=shipping,
        )
        plain_charge = _charge(total0, "0")
        plain_runs = "NULL::int"
        plain_c1 = "NULL::numeric"
        # The others (every coupon among them) are read in a second pass and priced row by row.
        singled_out = f"\n      AND NOT ({_NOT_SINGLED_OUT})"
        tallied = ""
        each_rows_of = None
        coupons_of = ""
        items_of = f"SELECT sid FROM ({_RUNNING}) AS running"
        several = singled = probes = ""
    else:
        # Nothing an invoice adds. Those with one coupon running (not limited to some products) are read in
        # the same parallel pass, priced from their subtotal (what their items add up to: the amount they bill
        # and the discount their coupons take, both kept on the row) and the coupon (joined from a hash the
        # workers share), and grouped as well by the renewal their coupon runs out at, after which they bill
        # their subtotal. A credit balance is the domain's (``dom``), as ``each`` finds. Coupons that take nothing
        # off the next renewal (``discount_minor``) take nothing off any: the subscription bills its amount until
        # they run out and after, as if it had none. Only the others look their coupons up (a NULL key probes
        # nothing), and only those are singled out when they have several.
        # Without a contract that cancels at its term's end or a payment by transfer, the pass joins neither.
        joins = "\n            LEFT JOIN subscription_contracts ct ON ct.subscription_id = s.id" if contracts else ""
        if offline:
            joins += "\n            LEFT JOIN payment_methods o ON o.id = s.payment_method_id AND o.kind = 'OFFLINE'"
        is_offline = "o.id IS NOT NULL" if offline else "false"
        # The plain subscriptions are counted by their schedules' tallies (``tallied``); the others are read from
        # their partial index (0023). Plain ones whose contract cancels at its term's end are looked up by key
        # and read with them (and taken off their tallies).
        untallied = f"(SELECT * FROM subscriptions s WHERE NOT {schedule.plain('s')})"
        if contracts:
            untallied = f"""(
                SELECT * FROM subscriptions s WHERE NOT {schedule.plain("s")}
                UNION ALL
                SELECT s.* FROM subscription_contracts k {_by_key("k.subscription_id")}
                WHERE k.action_at_term_end = 'CANCEL' AND {schedule.plain("s")})"""
        plain_where = f"""{_BILLS}
              AND {_RENEWS}
              AND (cp.sid IS NULL OR NOT coalesce((SELECT m FROM several_map) ? cp.sid::text, false))"""
        cancelling = (
            "\n        UNION SELECT subscription_id FROM subscription_contracts WHERE action_at_term_end = 'CANCEL'"
            if contracts
            else ""
        )
        # Less those the tallies count that are not billed as the others (each looked up by key): a phase to
        # apply (the domain's), or a contract that cancels at its term's end (read with the others above). Their
        # schedules are worked out as the triggers work them out, with the opposite sign.
        aside = f"""(SELECT s.* FROM (
            SELECT ph.subscription_id AS id FROM phases ph
            WHERE ph.status = 'PENDING' AND ph.effective_date <= CAST(:horizon AS date){cancelling}
        ) AS aside {_by_key("aside.id")})"""
        tallied = f"""
    UNION ALL
    -- The plain subscriptions, by their schedules' tallies.
    SELECT next_renewal_date, anchor_date, time_zone, profile_id, last_cycle,
        CASE WHEN offline THEN CAST(:terms AS int) ELSE 0 END, NULL::date, NULL::int, NULL::bigint, NULL::bigint,
        false, sum(subscriptions)::bigint, sum(amount_minor), NULL::numeric
    FROM (
        SELECT {schedule.KEY}, subscriptions, amount_minor FROM schedule_tallies
        UNION ALL{schedule.tallied(schedule.side(aside, -1))}
    ) AS t
    WHERE currency = :currency AND next_renewal_date <= CAST(:horizon AS date)
    GROUP BY next_renewal_date, anchor_date, time_zone, profile_id, last_cycle, offline"""
        plain_rows = f"""(
            SELECT {plain_columns}, {is_offline} AS offline, s.amount_minor, cp.runs,
                s.amount_minor + s.discount_minor AS subtotal, cp.sid AS coupon, cp.percent_off, cp.amount_off_minor,
                CASE WHEN s.credit_minor > 0 THEN s.id END AS dom
            FROM {untallied} AS s{joins}
            LEFT JOIN ({_RUNNING}) AS cp ON cp.sid = CASE WHEN s.discount_minor > 0 THEN s.id END
            WHERE {plain_where}
        )"""
        # Those owing something beside their renewals (``extra``: a retry, a transfer awaited, a draft) stay in
        # their groups. Each is dated once more on its own, up to the end of the last period it owes in
        # (``upto``), to tell the periods where it also renews: there it is counted once. ``extra`` has their
        # columns.
        term_end = "CASE WHEN ct.action_at_term_end = 'CANCEL' THEN ct.end_date END" if contracts else "NULL::date"
        contract = "\n    LEFT JOIN subscription_contracts ct ON ct.subscription_id = s.id" if contracts else ""
        probes = f"""
    UNION ALL
    SELECT {_N0}, s.anchor_date, s.time_zone, {_delay("s.invoicing", _OFFLINE)},
        least(s.end_date, s.cancellation_date, {term_end}),
        {_REMAINING}, p.interval_unit, p.interval_count, p.anchor_policy,
        NULL::int, NULL::int, s.id, NULL::bigint, 1::bigint, 0::numeric, NULL::numeric, NULL::numeric, s.upto
    -- A renewal charged a day before its date at the earliest: one dated after the last period owed in is not
    -- (those are left out before the latest period of each subscription is kept).
    FROM (SELECT DISTINCT ON (s.sid) s.*, u.upto FROM extra AS s
          CROSS JOIN LATERAL (SELECT {_period_end("s.day")} AS upto) AS u
          WHERE {_N0} <= u.upto + 1
          ORDER BY s.sid, u.upto DESC) AS s
    JOIN subscription_profiles p ON p.id = s.profile_id{contract}
    WHERE {_BILLS}
      AND {_RENEWS}
      AND (s.discount_minor <= 0 OR NOT coalesce((SELECT m FROM several_map) ? s.id::text, false))
      AND s.credit_minor <= 0"""
        plain_charge = f"""CASE WHEN coupon IS NULL THEN amount_minor
                                 ELSE greatest(0, subtotal - ({_coupon_discount("subtotal", "pr")})) END"""
        plain_runs = "runs"
        # (One value of ``runs`` per group: only those with a coupon sum their subtotal.)
        plain_c1 = "sum(CASE WHEN runs IS NOT NULL THEN subtotal END)"
        # The others, a few, are looked up by key and priced row by row: several coupons running or one limited
        # to some products (``several_map`` hands the pass the same set, to leave them out).
        singled_out = ""
        each_rows_of = "singled"
        coupons_of = "\n      AND ac.subscription_id IN (SELECT id FROM singled)"
        # The items of those few only (the others' subtotals are on their rows).
        items_of = "SELECT id FROM singled"
        # ``several`` counts the running coupons only. They are found once, before both statements
        # (``several_sql``), and handed to each as ``:several``.
        several = """several_map AS MATERIALIZED (
    SELECT CAST(:several AS jsonb) AS m
),
several AS (
    SELECT CAST(jsonb_object_keys(m) AS bigint) AS sid FROM several_map
),
"""
        singled = f"""
-- Those that bill, each looked up by key once (``_by_key``); their rows are priced as they are. Those whose
-- coupons take nothing are ``plain``'s.
singled AS MATERIALIZED (
    SELECT s.* FROM several AS k
    {_by_key("k.sid")}
    WHERE {_BILLS} AND s.discount_minor > 0
),
"""
    each_rows = _priced(
        f"""s.id, {_N0} AS n0, s.anchor_date, s.time_zone AS tz, s.credit_minor,
                    p.interval_unit AS unit, p.interval_count AS cnt, p.anchor_policy AS policy,
                    least(s.end_date, s.cancellation_date,
                          CASE WHEN ct.action_at_term_end = 'CANCEL' THEN ct.end_date END) AS stop,
                    {_REMAINING} AS remaining,
                    {_delay("s.invoicing", _OFFLINE)} AS delay, {item_columns}""",
        all_items,
        f"""{singled_out}
      AND {_RENEWS}""",
        taxes=taxes,
        shipping=shipping,
        rows=each_rows_of,
    )

    # From the groups on (``grouped``, ``by_domain``): both statements date their groups and sort the charges
    # into the points; ``rest`` adds what is owed beside the renewals, and gives per point the subscriptions
    # charged on their own (``who`` > 0), among which the domain's may be.
    def dated_from_groups(*, rest: bool) -> str:
        owed = "\n    UNION ALL\n    SELECT day, sid, 1, amount, false FROM extra" if rest else ""
        shared = "array_agg(who) FILTER (WHERE who > 0)" if rest else "NULL::bigint[]"
        return f"""keyed AS (
    SELECT g.*, a.kind, a.step,
        CASE WHEN a.kind <> 'D' THEN NULL
             WHEN g.policy = 'STICKY' THEN g.n0 + a.step
             WHEN g.n0 < g.anchor_date THEN g.anchor_date
             ELSE g.anchor_date + ((g.n0 - g.anchor_date) / a.step + 1) * a.step END AS f,
        CASE WHEN a.kind = 'A' THEN b.bmi + CASE WHEN {_mk("b.bmi", "date_part('day', g.anchor_date)::int")} <= g.n0
                                              THEN a.step ELSE 0 END END AS p1,
        CASE WHEN a.kind = 'A' THEN date_part('day', g.anchor_date)::int END AS p2
    FROM grouped AS g
    CROSS JOIN LATERAL (
        SELECT CASE WHEN g.unit IN ('DAY', 'WEEK') THEN 'D' WHEN g.policy = 'STICKY' THEN 'S' ELSE 'A' END AS kind,
            CASE g.unit WHEN 'DAY' THEN g.cnt WHEN 'WEEK' THEN 7 * g.cnt WHEN 'MONTH' THEN g.cnt
                 ELSE 12 * g.cnt END AS step) AS a
    CROSS JOIN LATERAL (
        SELECT {_mi("g.anchor_date")} + greatest(0, {_mi("g.n0")} - {_mi("g.anchor_date")}) / a.step * a.step
            AS bmi) AS b
    WHERE g.dom IS NULL
),
-- Groups that renew on the same dates are one: once their cadence is worked out, what told them apart (an anchor
-- a whole number of periods apart, a cycle count with no limit, a profile of the same cadence) is gone.
merged AS (
    SELECT n0, tz, delay, stop, remaining, kind, step, f, p1, p2, b1, b2, solo, upto,
        sum(n) AS n, sum(c0) AS c0, sum(c1) AS c1, sum(c2) AS c2
    FROM keyed
    GROUP BY n0, tz, delay, stop, remaining, kind, step, f, p1, p2, b1, b2, solo, upto
),
sched AS (
    SELECT merged.*, l.lim, row_number() OVER () AS gid,
        CASE WHEN kind = 'D' THEN (lim - f) / step + 2 ELSE ({_mi("lim")} - {_mi("n0")}) / step + 2 END AS last_j
    FROM merged
    -- The last date to look at: a probe's charges fall a day before its dates at the earliest.
    CROSS JOIN LATERAL (SELECT least(CAST(:horizon AS date), upto + 1) AS lim) AS l
),
dated AS (
    SELECT g.gid, g.solo, g.n, g.tz, g.delay, g.stop, g.lim, g.upto IS NOT NULL AS probe, x.j, x.d,
        CASE WHEN g.b1 IS NULL OR x.j < g.b1 THEN g.c0 WHEN g.b2 IS NULL OR x.j < g.b2 THEN g.c1 ELSE g.c2 END
            AS amount
    FROM sched AS g
    CROSS JOIN LATERAL (
        SELECT y.j, {step_dates} AS d
        FROM generate_series(0, CASE WHEN g.remaining IS NULL THEN g.last_j
                                     ELSE least(g.last_j, g.remaining - 1) END) AS y(j)
    ) AS x
),
charges AS (
    SELECT greatest({charged_on}, CAST(:seller_today AS date)) + x.delay AS day,
           coalesce(x.solo, -x.gid) AS who, x.n, x.amount, x.probe
    FROM dated AS x
    WHERE x.d <= x.lim AND (x.stop IS NULL OR x.d < x.stop){owed}
),
buckets AS (
    SELECT CASE CAST(:interval AS text) WHEN 'DAY' THEN day
                WHEN 'WEEK' THEN greatest(date_trunc('week', day)::date, CAST(:window_from AS date))
                ELSE greatest(date_trunc('month', day)::date, CAST(:window_from AS date)) END AS bucket,
           who, CASE WHEN bool_or(probe) THEN 0 ELSE max(n) END AS n, sum(amount) AS amount
    FROM charges
    WHERE day BETWEEN greatest(CAST(:window_from AS date), CAST(:seller_today AS date)) AND CAST(:window_to AS date)
    GROUP BY 1, 2
)
SELECT 'p' AS kind, bucket, sum(n)::bigint AS n, sum(amount)::bigint AS amount,
       {shared} AS shared
FROM buckets GROUP BY bucket
UNION ALL
SELECT 'd', NULL, id, NULL, NULL FROM by_domain
"""

    plain_sql = f"""
WITH
{several}plain AS (
    SELECT n0, anchor_date, tz, profile_id, last_cycle, {_delay("invoicing", "offline")} AS delay,
        least(end_date, cancellation_date, CASE WHEN term_action = 'CANCEL' THEN term_end END) AS stop,
        {plain_runs} AS runs, NULL::bigint AS solo, dom, once, count(*) AS n, sum({plain_charge}) AS c0,
        {plain_c1} AS c1
    FROM {plain_rows} AS pr
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 10, 11{tallied}
),
-- The groups with their profile's cadence: those its profile makes alike (no limit to the cycles, the same
-- cadence) are one before their dates are worked out.
grouped AS MATERIALIZED (
    SELECT g.n0, g.anchor_date, g.tz, g.delay, g.stop,
        CASE WHEN g.once THEN 1 ELSE p.max_occurrences - g.last_cycle END AS remaining, p.interval_unit AS unit,
        p.interval_count AS cnt,
        p.anchor_policy AS policy, g.runs AS b1, NULL::int AS b2, g.solo, g.dom,
        sum(g.n) AS n, sum(g.c0) AS c0, sum(g.c1) AS c1, NULL::numeric AS c2, NULL::date AS upto
    FROM plain AS g JOIN subscription_profiles p ON p.id = g.profile_id
    GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13
    -- (A schedule all of whose subscriptions were taken off its tally bills nothing.)
    HAVING sum(g.n) <> 0
),
by_domain AS (
    SELECT dom AS id FROM grouped WHERE dom IS NOT NULL
),
{dated_from_groups(rest=False)}"""
    rest_sql = f"""
WITH
phased AS (
    SELECT DISTINCT ph.subscription_id AS id FROM phases ph
    WHERE ph.status = 'PENDING' AND ph.effective_date <= CAST(:horizon AS date)
),
{several}{singled}
-- What the items that renew add up to, for the subscriptions with a coupon still running priced row by row.
it AS (
    SELECT i.subscription_id AS sid, coalesce(sum(l.line), 0)::bigint AS subtotal,
        {"array_agg(i.product_id ORDER BY i.position, i.id)" if arrays else "NULL::bigint[]"} AS products,
        {"array_agg(l.line ORDER BY i.position, i.id)" if arrays else "NULL::bigint[]"} AS lines
    FROM subscription_items i
    CROSS JOIN LATERAL (SELECT {_LINE} AS line) AS l
    WHERE i.auto_renew AND i.subscription_id IN ({items_of})
    GROUP BY i.subscription_id
),
cp AS (
    {_RUNNING}{coupons_of}
),
cd AS (
    SELECT cp.sid, cp.runs, min(it.subtotal) AS subtotal, sum(d.taken)::bigint AS taken, count(*) AS k,
        bool_or(cp.restricted) AS restricted
    FROM cp LEFT JOIN it ON it.sid = cp.sid
    CROSS JOIN LATERAL (SELECT CASE WHEN cp.restricted
        THEN (SELECT coalesce(sum(l.amount), 0) FROM unnest(it.products, it.lines) AS l(product_id, amount)
              WHERE l.product_id = ANY(cp.product_ids))
        ELSE coalesce(it.subtotal, 0) END AS base) AS b
    CROSS JOIN LATERAL (SELECT ({_coupon_discount("b.base")})::bigint AS taken) AS d
    GROUP BY cp.sid, cp.runs
),
-- Per subscription: the renewal its first coupons run out at (b1), the next (b2), and what its coupons take
-- until then (d0), between (d1) and after (d2). With two counts a < b, those running b renewals take
-- (S1 - a * S0) / (b - a), S0 and S1 the sums of what the coupons with a count take and of that times
-- their count; three counts or more are the domain's (tangled).
cdd AS (
    SELECT sid, min(subtotal) AS subtotal, min(runs) AS b1, CASE WHEN max(runs) > min(runs) THEN max(runs) END AS b2,
        count(runs) > 2 OR (bool_or(restricted) AND sum(k) > 1) AS tangled,
        sum(taken) AS d0,
        coalesce(sum(taken) FILTER (WHERE runs IS NULL), 0)
            + CASE WHEN max(runs) > min(runs) THEN div(sum(taken * runs) FILTER (WHERE runs IS NOT NULL)
                   - min(runs) * sum(taken) FILTER (WHERE runs IS NOT NULL), max(runs) - min(runs)) ELSE 0 END AS d1,
        coalesce(sum(taken) FILTER (WHERE runs IS NULL), 0) AS d2
    FROM cd GROUP BY sid
),
extra AS ({_extra()}
),
each AS (
    SELECT n0, anchor_date, tz, delay, stop, remaining, unit, cnt, policy, b1, b2, solo,
        CASE WHEN tangled OR c0 IS NULL OR (b1 IS NOT NULL AND c1 IS NULL) OR (b2 IS NOT NULL AND c2 IS NULL)
             THEN id END AS dom,
        count(*) AS n, sum(c0) AS c0, sum(c1) AS c1, sum(c2) AS c2
    FROM (
        SELECT id, n0, anchor_date, tz, delay, stop, remaining, unit, cnt, policy, b1, b2, solo,
            {_charge(total0, "coalesce(d0, 0)")} AS c0,
            CASE WHEN b1 IS NOT NULL THEN {_charge(total1, "d1")} END AS c1,
            CASE WHEN b2 IS NOT NULL THEN {_charge(total2, "d2")} END AS c2,
            credit_minor > 0 OR coalesce(tangled, false) AS tangled
        FROM (
            SELECT pr.*, cdd.b1, cdd.b2, cdd.tangled, cdd.d0, cdd.d1, cdd.d2, cdd.subtotal,
                CASE WHEN pr.id IN (SELECT sid FROM extra) THEN pr.id END AS solo
            FROM {each_rows} AS pr
            LEFT JOIN cdd ON cdd.sid = pr.id
        ) AS pr
        OFFSET 0
    ) AS seg
    GROUP BY n0, anchor_date, tz, delay, stop, remaining, unit, cnt, policy, b1, b2, solo, 13
),
grouped AS MATERIALIZED (
    SELECT *, NULL::date AS upto FROM each{probes}
),
by_domain AS (
    SELECT dom AS id FROM grouped WHERE dom IS NOT NULL
    UNION
    SELECT s.id FROM subscriptions s
    WHERE s.currency = :currency AND s.status = 'FUTURE' AND s.start_date <= CAST(:horizon AS date)
      AND NOT coalesce(s.amount_minor > 0 AND (s.renewal_type = 'AUTOMATIC' OR {_FIRST_ONLY})
                       AND NOT s.cancel_at_period_end
                       AND s.next_renewal_date <= CAST(:horizon AS date), false)
    UNION
    SELECT s.id FROM phased JOIN subscriptions s ON s.id = phased.id
    WHERE s.currency = :currency AND s.status NOT IN ('CANCELLED', 'EXPIRED')
),
{dated_from_groups(rest=True)}"""
    return plain_sql, rest_sql


# JIT compiling the statements takes far longer than running them (their row estimates, multiplied through the
# generated dates, look huge); the groups and the coupons' hash tables are to stay in memory.
_SETTINGS = """SELECT set_config('jit', 'off', true), set_config('work_mem', '64MB', true),
    set_config('hash_mem_multiplier', '4', true)"""

# ``rest`` reads a few rows at a time by key, from pages the server has in memory: at the default cost of a page
# read out of order, the planner went through the 166,000 entries of the partial index of the subscriptions
# the tallies do not count to find the few thousand ``FUTURE`` ones, rather than through the status index.
_REST_SETTINGS = "SELECT set_config('random_page_cost', '1.1', true)"

_ONE_CORE = "SELECT set_config('max_parallel_workers_per_gather', '0', true)"

# Both statements read one snapshot: the first exports it, the second imports it (both repeatable read).
_SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
_SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?")

# What the statements need to look up at all.
_PRESENT = """SELECT EXISTS (SELECT 1 FROM tax_rates WHERE active) AS taxes,
    EXISTS (SELECT 1 FROM shipping_profiles) AS shipping,
    EXISTS (SELECT 1 FROM coupons WHERE cardinality(product_ids) > 0) AS restricted,
    EXISTS (SELECT 1 FROM payment_methods WHERE kind = 'OFFLINE') AS offline,
    EXISTS (SELECT 1 FROM subscription_contracts WHERE action_at_term_end = 'CANCEL') AS contracts"""


@dataclass
class Point:
    """One period of the forecast."""

    period: Period
    subscriptions: int
    expected: Money
    after_declines: Money


@dataclass
class Forecast:
    points: list[Point]
    decline_share: Fraction
    # How many subscriptions the domain priced one by one (the rest were priced in SQL).
    priced_by_domain: int = 0


class ForecastService:
    """``billingForecast``: read-only, on its own session."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def forecast(
        self, currency: str, start: date, end: date, interval: MetricsInterval = MetricsInterval.DAY
    ) -> Forecast:
        currency = currency.strip().upper()
        Money.zero(currency)  # refuses an unknown currency
        cut = periods(start, end, interval)
        settings = self.services.settings
        seller_zone = settings.seller_time_zone
        now = self.services.clock.now()
        today = local_today(now, seller_zone)
        horizon = end + _ZONE_MARGIN
        params: dict[str, Any] = {
            "currency": currency,
            "window_from": start,
            "window_to": end,
            "seller_today": today,
            "horizon": horizon,
            "seller": seller_zone,
            "terms": max(settings.payment_terms_days, 0),
            "interval": interval.value,
        }
        async with self.services.forecasts:
            await self._sum_tallies()
            # The decline rate is read on a connection of its own while the schedule is priced: neither waits.
            declines = asyncio.create_task(self._decline_share(currency, now))
            try:
                by_bucket, priced_by_domain = await self._scheduled(currency, end, today, params, interval, now)
            except BaseException:
                declines.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await declines
                raise
            share = await declines
        points = []
        for period in cut:
            n, minor = by_bucket.get(period.start, (0, 0))
            expected = Money(minor, currency)
            points.append(Point(period, n, expected, rules.after_declines(expected, share)))
        return Forecast(points, share, priced_by_domain=priced_by_domain)

    async def _sum_tallies(self) -> None:
        """Sum the schedules' tallies into one row each once the rows of changes outnumber them (and a thousand):
        what the plain statement reads stays about as many rows as there are schedules. One process at a time
        sums them; another finds the lock taken and reads the rows as they are, which add up all the same."""
        async with self.services.sessions() as session, session.begin():
            growth = (await session.execute(text(schedule.GROWTH))).one()
            if growth.added <= max(_TALLIES_GROWN, growth.kept):
                return
            locked = await session.execute(text("SELECT pg_try_advisory_xact_lock(:cls, 0)"), {"cls": _TALLY_LOCK})
            if locked.scalar():
                await session.execute(text(schedule.COMPACT))

    async def _scheduled(
        self,
        currency: str,
        end: date,
        today: date,
        params: dict[str, Any],
        interval: MetricsInterval,
        now: datetime,
    ) -> tuple[dict[date, tuple[int, int]], int]:
        """What the schedule charges per point (count, amount), and how many subscriptions the domain priced.

        The two statements run at once, ``rest`` on a second connection that imports this transaction's
        snapshot: both read the same data, whatever is written meanwhile. The domain prices the subscriptions
        ``rest`` leaves it on that connection while ``plain`` still runs."""
        async with self.services.sessions() as session, session.begin():
            await session.execute(text(_SNAPSHOT))
            await session.execute(text(_SETTINGS))
            present = (await session.execute(text(_PRESENT))).one()
            plain_sql, rest_sql = forecast_sql(
                taxes=present.taxes,
                shipping=present.shipping,
                restricted=present.restricted,
                offline=present.offline,
                contracts=present.contracts,
            )
            if not (present.taxes or present.shipping):
                # Read once in this snapshot, for both statements.
                several = await session.execute(text(several_sql(restricted=present.restricted)))
                params = {**params, "several": several.scalar_one()}
                # With the tallies, the first statement reads a few hundred thousand rows, no more than the
                # second's work: each runs on a core of its own, and parallel workers would only compete with
                # them (measured: 0.8-0.9 s a request against 1.0-1.2 s with two workers).
                await session.execute(text(_ONE_CORE))
            snapshot = (await session.execute(text("SELECT pg_export_snapshot()"))).scalar_one()
            pricing = end >= today
            rest = asyncio.create_task(self._rest(rest_sql, snapshot, params, pricing, interval, now))
            try:
                plain, _, plain_domain = _points(await session.execute(text(plain_sql), params))
            except BaseException:
                rest.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await rest
                raise
            points, alone, domain, priced = await rest
            left = set(domain)
            plain_domain = [sid for sid in plain_domain if sid not in left]
            parts = [plain, priced]
            if plain_domain and pricing:
                parts.append(await self._price_in_domain(session, plain_domain, alone, params, interval, now))
        for part in parts:
            for bucket, (n, minor) in part.items():
                count, amount = points.get(bucket, (0, 0))
                points[bucket] = (count + n, amount + minor)
        return points, len(domain) + len(plain_domain)

    async def _rest(
        self,
        sql: str,
        snapshot: str,
        params: dict[str, Any],
        pricing: bool,
        interval: MetricsInterval,
        now: datetime,
    ) -> tuple[dict[date, tuple[int, int]], dict[date, set[int]], list[int], dict[date, tuple[int, int]]]:
        """The ``rest`` statement, on a connection of its own, in the snapshot ``snapshot``: its points, the
        subscriptions it charged on their own per point, those it leaves to the domain, and what the domain
        charges for those (``pricing``: whether the window reaches today)."""
        if not _SNAPSHOT_ID.fullmatch(snapshot):
            raise ValueError(f"unexpected snapshot id {snapshot!r}")
        async with self.services.sessions() as session, session.begin():
            await session.execute(text(_SNAPSHOT))
            await session.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
            await session.execute(text(_SETTINGS))
            await session.execute(text(_REST_SETTINGS))
            points, alone, domain = _points(await session.execute(text(sql), params))
            priced: dict[date, tuple[int, int]] = {}
            if domain and pricing:
                priced = await self._price_in_domain(session, domain, alone, params, interval, now)
        return points, alone, domain, priced

    async def _price_in_domain(
        self,
        session: Any,
        ids: list[int],
        alone: dict[date, set[int]],
        params: dict[str, Any],
        interval: MetricsInterval,
        now: Any,
    ) -> dict[date, tuple[int, int]]:
        """The engine's rules, run forward for each subscription SQL left out; phases applied on their dates.
        Per point: the subscriptions charged (but those the statements counted, ``alone``) and their amount."""
        from rebill.services.phases import apply_changes
        from rebill.services.subscriptions import Unit

        catalog = Catalog(session)
        repo = SubscriptionRepository(session, catalog)
        unit = Unit(session, repo, catalog, self.services, now, ENGINE, Common(dry_run=True))
        phase_rows = await session.execute(
            select(PH.c.subscription_id, PH.c.effective_date, PH.c.changes)
            .where(any_of(PH.c.subscription_id, ids), PH.c.status == "PENDING")
            .order_by(PH.c.subscription_id, PH.c.effective_date, PH.c.id)
        )
        phases: dict[int, list[Any]] = defaultdict(list)
        for row in phase_rows:
            phases[row.subscription_id].append(row)
        start, end, today = params["window_from"], params["window_to"], params["seller_today"]
        first_day = max(start, today)
        points: dict[date, tuple[int, int]] = {}
        for batch in range(0, len(ids), 500):
            states = await repo.get_many(ids[batch : batch + 500])
            for sid, state in states.items():
                local_today_ = local_today(now, state.time_zone)
                until = end + _ZONE_MARGIN
                pending = list(phases.get(sid, ()))
                charged: dict[date, int] = defaultdict(int)
                for _ in range(10_000):
                    due = rules.next_billing_date(state)
                    if (
                        pending
                        and pending[0].effective_date <= until
                        and (due is None or pending[0].effective_date <= due)
                    ):
                        phase = pending.pop(0)
                        ctx = OpContext(now=now, today=max(phase.effective_date, local_today_))
                        # A phase refused on its date is marked FAILED by the worker, which bills on.
                        with contextlib.suppress(RebillError):
                            state = (await apply_changes(unit, state, ctx, phase.changes)).state
                        continue
                    if due is None or due > until:
                        break
                    step = rules.worker_step(state, local_today_)
                    if step is None:
                        break
                    _, expected, state = step
                    if expected is None:
                        continue
                    day = rules.charge_day(
                        expected.billing_date,
                        state.time_zone,
                        params["seller"],
                        today,
                        rules.delay_days(state, params["terms"]),
                    )
                    if first_day <= day <= end:
                        charged[_bucket(day, start, interval)] += expected.amount.minor
                for bucket, minor in charged.items():
                    n, amount = points.get(bucket, (0, 0))
                    points[bucket] = (n + (0 if sid in alone.get(bucket, ()) else 1), amount + minor)
        return points

    async def _decline_share(self, currency: str, now: datetime) -> Fraction:
        """The share of scheduled renewals' first attempts in this currency that failed in the last 90 days.

        The closed UTC hours of the window are counted once and kept (``decline_hours``); the two open ends
        are counted from the charges.
        """
        since = now - rules.DECLINE_WINDOW
        first = _hour_of(since) + (timedelta(hours=1) if since > _hour_of(since) else timedelta(0))
        last = _hour_of(now - _CLOSING)  # the hours before it are kept
        failed = attempted = 0
        async with self.services.sessions() as session, session.begin():
            # A clock set back (``REBILL_NOW``): the hours kept from its last closed one on are not closed.
            await session.execute(delete(DH).where(DH.c.currency == currency, DH.c.hour >= last))
            if first >= last:
                ends = [(since, now)]
            else:
                kept = {
                    row.hour: (row.attempted, row.failed)
                    for row in await session.execute(
                        select(DH.c.hour, DH.c.attempted, DH.c.failed).where(
                            DH.c.currency == currency, DH.c.hour >= first, DH.c.hour < last
                        )
                    )
                }
                hours = _hours(first, last)
                missing = [hour for hour in hours if hour not in kept]
                if missing:
                    kept.update(await self._keep_hours(session, currency, missing[0], missing[-1], kept))
                for hour in hours:
                    attempted += kept[hour][0]
                    failed += kept[hour][1]
                ends = [(since, first), (last, now)]
            for start, until in ends:
                # ``until`` is in the window: a charge at that instant counts.
                row = (
                    await session.execute(
                        text(_FIRST_ATTEMPTS_AT.format(hour="")),
                        {"currency": currency, "since": start, "until": until + timedelta(microseconds=1)},
                    )
                ).one()
                attempted += int(row.attempted)
                failed += int(row.failed)
        return rules.decline_share(failed, attempted)

    async def _keep_hours(
        self, session: Any, currency: str, first: datetime, last: datetime, kept: dict[datetime, tuple[int, int]]
    ) -> dict[datetime, tuple[int, int]]:
        """Count the hours from ``first`` to ``last`` from the charges, and keep those not kept yet."""
        until = last + timedelta(hours=1)
        counting = _FIRST_ATTEMPTS_AT if until - first <= timedelta(hours=_FEW_HOURS) else _FIRST_ATTEMPTS
        rows = await session.execute(
            text(counting.format(hour="hour,") + " GROUP BY hour"),
            {"currency": currency, "since": first, "until": until},
        )
        counted = {row.hour: (int(row.attempted), int(row.failed)) for row in rows}
        new = {hour: counted.get(hour, (0, 0)) for hour in _hours(first, until) if hour not in kept}
        values = [{"currency": currency, "hour": hour, "attempted": a, "failed": f} for hour, (a, f) in new.items()]
        await session.execute(pg_insert(DH).values(values).on_conflict_do_nothing())
        return new


def _points(rows: Any) -> tuple[dict[date, tuple[int, int]], dict[date, set[int]], list[int]]:
    """A statement's rows: per point, the count and amount, and the subscriptions charged on their own; and the
    subscriptions left to the domain."""
    points: dict[date, tuple[int, int]] = {}
    alone: dict[date, set[int]] = {}
    domain: list[int] = []
    for row in rows:
        if row.kind == "p":
            points[row.bucket] = (int(row.n), int(row.amount))
            alone[row.bucket] = set(row.shared or ())
        else:
            domain.append(int(row.n))
    return points, alone, domain


def _bucket(day: date, start: date, interval: MetricsInterval) -> date:
    """The first day of the point ``day`` falls in (clipped to ``start``), as the statement computes it."""
    if interval is MetricsInterval.WEEK:
        return max(day - timedelta(days=day.weekday()), start)
    if interval is MetricsInterval.MONTH:
        return max(day.replace(day=1), start)
    return day
