"""The schedule's tallies: how many plain subscriptions renew on each schedule, kept by every write.

``billingForecast`` groups subscriptions that renew on the same dates and
works out the dates of each group once. Most subscriptions are *plain*
(:func:`plain`): billing, renewed automatically, with no end date, no
cancellation, no coupon taking anything, no credit balance and no invoicing
settings (SQL or JSON null), so what each of their renewals charges is ``amount_minor`` and when
is fixed by their next renewal, anchor, time zone, profile, last cycle and
whether they are paid by transfer. Their groups are kept here instead of being
counted from a million rows on each request.

Every statement that writes subscriptions adds, in its own transaction, one
row per schedule it changed (``schedule_tallies``): the subscriptions that
joined it (``+``) and left it (``-``), and their amounts. A subscription
renewed moves from one schedule to the next; one whose price changed moves
its amount. Nothing is ever updated in place, so concurrent writers never
wait for each other here, and a group's tally is the sum of its rows.
:data:`COMPACT` sums the rows into one per schedule, atomically (the
forecast runs it when the rows have grown); :data:`BACKFILL` counts them from
the subscriptions (the migration, and a check in the tests).

A payment method's kind never changes (no write path updates it), so whether
a subscription is paid by transfer is read once, when it is written.
"""

from __future__ import annotations

#: The columns of a schedule (a group of plain subscriptions that renew on the same dates).
KEY = "currency, next_renewal_date, anchor_date, time_zone, profile_id, last_cycle, offline"


def plain(alias: str) -> str:
    """Whether the subscription ``alias`` is plain: its renewals charge ``amount_minor`` on its schedule."""
    return f"""({alias}.status IN ('TRIAL', 'ACTIVE', 'OVERDUE') AND {alias}.renewal_type = 'AUTOMATIC'
        AND NOT {alias}.cancel_at_period_end AND {alias}.amount_minor > 0 AND {alias}.credit_minor <= 0
        AND {alias}.discount_minor <= 0 AND ({alias}.invoicing IS NULL OR {alias}.invoicing = 'null'::jsonb)
        AND {alias}.end_date IS NULL
        AND {alias}.cancellation_date IS NULL)"""


def tallied(rows: str) -> str:
    """The schedules of ``rows`` (``sign``: +1 joined, -1 left) and what changed in each: rows of
    ``schedule_tallies`` (:data:`KEY`, ``subscriptions``, ``amount_minor``)."""
    return f"""
    SELECT x.currency, x.next_renewal_date, x.anchor_date, x.time_zone, x.profile_id, x.last_cycle,
        pm.id IS NOT NULL AS offline, sum(x.sign) AS subscriptions, sum(x.sign * x.amount_minor) AS amount_minor
    FROM ({rows}) AS x
    LEFT JOIN payment_methods pm ON pm.id = x.payment_method_id AND pm.kind = 'OFFLINE'
    GROUP BY 1, 2, 3, 4, 5, 6, 7
    HAVING sum(x.sign) <> 0 OR sum(x.sign * x.amount_minor) <> 0"""


_COLUMNS = "r.currency, r.next_renewal_date, r.anchor_date, r.time_zone, r.profile_id, r.last_cycle, "
_COLUMNS += "r.payment_method_id, r.amount_minor"


def side(table: str, sign: int) -> str:
    """The plain subscriptions of ``table`` (a table or a parenthesized query) with ``sign``, for :func:`tallied`."""
    return f"SELECT {_COLUMNS}, {sign} AS sign FROM {table} AS r WHERE {plain('r')}"


_INSERT = f"INSERT INTO schedule_tallies ({KEY}, subscriptions, amount_minor)"

#: The trigger function: one statement's changes, as rows of ``schedule_tallies`` (the triggers name their
#: transition tables ``added`` and ``removed``); emptied subscriptions leave no schedule.
FUNCTION = f"""
CREATE OR REPLACE FUNCTION rebill_tally_schedules() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {_INSERT}{tallied(side("added", 1))};
    ELSIF TG_OP = 'UPDATE' THEN
        {_INSERT}{tallied(side("added", 1) + " UNION ALL " + side("removed", -1))};
    ELSIF TG_OP = 'DELETE' THEN
        {_INSERT}{tallied(side("removed", -1))};
    ELSE
        DELETE FROM schedule_tallies;
    END IF;
    RETURN NULL;
END
$$"""

TRIGGERS = (
    "CREATE TRIGGER schedule_tallies_inserted AFTER INSERT ON subscriptions REFERENCING NEW TABLE AS added "
    "FOR EACH STATEMENT EXECUTE FUNCTION rebill_tally_schedules()",
    "CREATE TRIGGER schedule_tallies_updated AFTER UPDATE ON subscriptions "
    "REFERENCING OLD TABLE AS removed NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION rebill_tally_schedules()",
    "CREATE TRIGGER schedule_tallies_deleted AFTER DELETE ON subscriptions REFERENCING OLD TABLE AS removed "
    "FOR EACH STATEMENT EXECUTE FUNCTION rebill_tally_schedules()",
    "CREATE TRIGGER schedule_tallies_truncated AFTER TRUNCATE ON subscriptions "
    "FOR EACH STATEMENT EXECUTE FUNCTION rebill_tally_schedules()",
)

_KEPT = f"INSERT INTO schedule_tallies ({KEY}, subscriptions, amount_minor, kept)"

#: Every schedule counted from the subscriptions, one row each (what the tallies add up to).
COUNT = tallied(side("subscriptions", 1))
BACKFILL = f"{_KEPT} SELECT *, true FROM ({COUNT}) AS t"

#: How many rows of changes were added since the tallies were last summed, and how many rows that left.
GROWTH = "SELECT count(*) FILTER (WHERE NOT kept) AS added, count(*) FILTER (WHERE kept) AS kept FROM schedule_tallies"

#: One row per schedule instead of its changes, in one statement: a writer's rows added meanwhile stay as they
#: are (they are not in this statement's snapshot), and a schedule no subscription is left on is dropped.
COMPACT = f"""
WITH gone AS (DELETE FROM schedule_tallies RETURNING *)
{_KEPT}
SELECT {KEY}, sum(subscriptions), sum(amount_minor), true FROM gone
GROUP BY {KEY}
HAVING sum(subscriptions) <> 0 OR sum(amount_minor) <> 0"""
