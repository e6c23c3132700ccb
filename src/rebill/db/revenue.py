"""Revenue movements for subscriptions saved before the triggers that record them.

Migration 0018 makes PostgreSQL record every change of a subscription's MRR
(``revenue_movements``) as it is saved. Subscriptions that existed before,
and those ``rebill seed`` writes with ``COPY`` while those triggers stand
aside (:data:`SKIP_MOVEMENTS`), get theirs from :data:`BACKFILL`: one
set-based statement that rebuilds each one's life from its history.

What the history tells is each status a subscription went through and when;
what it billed at each time is not kept, so the rebuilt movements price
every counted status at today's amount and cadence (a price change made
before the migration shows as if the price had always been today's). A
last step brings each subscription to what it is now, so every
subscription's movements add up exactly to its MRR and status today, and a
product change (the end of one subscription and the start of its
replacement at one instant) is one movement of its chain, as the triggers
record it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

# For the transaction: the triggers compute nothing, a writer that records its own movements is at work.
SKIP_MOVEMENTS = "SET LOCAL rebill.revenue_movements = 'off'"

_BACKFILL = """
WITH RECURSIVE chains AS (
    SELECT s.id, s.id AS chain_id FROM subscriptions s WHERE s.replaces_id IS NULL AND {scope}
    UNION ALL
    SELECT s.id, c.chain_id FROM subscriptions s JOIN chains c ON s.replaces_id = c.id
),
subs AS (
    SELECT s.id, c.chain_id, s.currency, s.status, s.updated_at,
           rebill_mrr(s.amount_minor, 'ACTIVE', p.interval_unit, p.interval_count) AS counted_mrr
    FROM chains c
    JOIN subscriptions s ON s.id = c.id
    JOIN subscription_profiles p ON p.id = s.profile_id
),
states AS (
    -- each status a subscription's history set, in order, then the status it has now
    SELECT h.subscription_id AS id, 0 AS last, h.occurred_at AS at, h.id AS seq, e.value ->> 'after' AS status
    FROM history_entries h
    CROSS JOIN LATERAL jsonb_array_elements(
        CASE WHEN jsonb_typeof(h.changes) = 'array' THEN h.changes ELSE '[]'::jsonb END
    ) AS e(value)
    WHERE h.subscription_id IN (SELECT id FROM subs) AND e.value ->> 'field' = 'status'
      AND e.value ->> 'after' IS NOT NULL
    UNION ALL
    SELECT id, 1, updated_at, 0, status FROM subs
),
steps AS (
    SELECT st.id, st.last, st.seq,
           max(st.at) OVER (PARTITION BY st.id ORDER BY st.last, st.at, st.seq) AS at,
           CASE WHEN st.status IN ('ACTIVE', 'OVERDUE') THEN s.counted_mrr ELSE 0 END AS mrr,
           CASE WHEN st.status IN ('ACTIVE', 'OVERDUE') THEN 1 ELSE 0 END AS active,
           CASE WHEN st.status = 'TRIAL' THEN 1 ELSE 0 END AS trialing
    FROM states st JOIN subs s ON s.id = st.id
),
deltas AS (
    SELECT id, at,
           mrr - coalesce(lag(mrr) OVER w, 0) AS step,
           active - coalesce(lag(active) OVER w, 0) AS active_step,
           trialing - coalesce(lag(trialing) OVER w, 0) AS trialing_step
    FROM steps
    WINDOW w AS (PARTITION BY id ORDER BY last, at, seq)
),
per_chain AS (
    -- what happens to a chain at one instant is one movement (a product change: an end and a start)
    SELECT s.chain_id, min(s.currency) AS currency, d.at, max(d.id) AS subscription_id,
           sum(d.step) AS step, sum(d.active_step) AS active_step, sum(d.trialing_step) AS trialing_step
    FROM deltas d JOIN subs s ON s.id = d.id
    WHERE d.step <> 0 OR d.active_step <> 0 OR d.trialing_step <> 0
    GROUP BY s.chain_id, d.at
),
running AS (
    SELECT p.*, sum(p.step) OVER (PARTITION BY p.chain_id ORDER BY p.at ROWS UNBOUNDED PRECEDING) AS after
    FROM per_chain p
),
classified AS (
    SELECT r.*, r.after - r.step AS before,
           coalesce(bool_or(r.after <> 0) OVER (
               PARTITION BY r.chain_id ORDER BY r.at ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
           ), false) AS had_mrr
    FROM running r
)
INSERT INTO revenue_movements (subscription_id, chain_id, currency, occurred_at, mrr_before_minor, mrr_after_minor,
                               kind, active_step, trialing_step)
SELECT subscription_id, chain_id, currency, at, before, after,
       CASE WHEN before = after THEN NULL
            WHEN before = 0 THEN CASE WHEN had_mrr THEN 'REACTIVATION' ELSE 'NEW' END
            WHEN after = 0 THEN 'CHURNED'
            WHEN after > before THEN 'EXPANSION'
            ELSE 'CONTRACTION' END,
       active_step, trialing_step
FROM classified
WHERE step <> 0 OR active_step <> 0 OR trialing_step <> 0
ORDER BY at, chain_id
"""

# Every subscription (migration 0018).
BACKFILL = _BACKFILL.format(scope="true")
# The subscriptions of ``:ids`` (``rebill seed``, after each batch).
BACKFILL_IDS = _BACKFILL.format(scope="s.id = ANY(CAST(:ids AS bigint[]))")


# Sums of past days that revenueMetrics kept (``services.revenue``), and the counts of past hours billingForecast's
# decline rate kept (``services.forecast``): to forget whenever the past is written.
FORGET_DAYS = ("DELETE FROM revenue_days", "DELETE FROM revenue_days_kept", "DELETE FROM decline_hours")


async def forget_days(session: AsyncSession | AsyncConnection) -> None:
    """Forget the kept sums of past days (and counts of past hours): rows were written with dates in the past
    (a seed, a backfill)."""
    for sql in FORGET_DAYS:
        await session.execute(text(sql))


async def backfill_movements(session: AsyncSession, ids: Sequence[int]) -> int:
    """The movements of the subscriptions ``ids`` (written without them), from their history; how many."""
    if not ids:
        return 0
    result: Any = await session.execute(text(BACKFILL_IDS), {"ids": list(ids)})
    await forget_days(session)
    return int(result.rowcount)
