"""An invoice's status follows its renewal (DOMAIN.md "Invoices": Status).

One statement derives each invoice's status from its renewal and its
subscription, so every path that settles, retries, refunds, voids or
cancels keeps invoices right by calling :func:`follow_renewals` in its own
transaction:

- the renewal paid (refunds later are credit notes) → ``PAID``;
- the renewal voided (never sent to the gateway) → ``VOID``;
- the renewal declined with no retry to come and its subscription no longer
  in dunning, or the subscription cancelled or expired → ``UNCOLLECTIBLE``;
- otherwise (in flight, in dunning) → ``OPEN``.

Only moves DOMAIN.md allows are made: ``PAID`` and ``VOID`` are final, an
uncollectible invoice can still be paid or voided; a draft is not the
charge path's (it has no renewal yet).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from rebill.config import Settings
from rebill.invoicing import events
from rebill.invoicing.issue import issue_final_invoices


def status_of_renewal(renewal_status: str, next_retry_date: str, subscription_status: str) -> str:
    """The SQL ``CASE`` of the status an invoice takes from its renewal (the rule above), over these columns."""
    return f"""CASE
               WHEN {renewal_status} IN ('PAID', 'REFUNDED', 'PARTIALLY_REFUNDED') THEN 'PAID'
               WHEN {renewal_status} = 'VOID' THEN 'VOID'
               WHEN {renewal_status} = 'FAILED' AND {subscription_status} IN ('CANCELLED', 'EXPIRED')
                   THEN 'UNCOLLECTIBLE'
               WHEN {renewal_status} = 'FAILED' AND {next_retry_date} IS NULL AND {subscription_status} <> 'OVERDUE'
                   THEN 'UNCOLLECTIBLE'
               ELSE 'OPEN'
           END"""


# Driven by the subscriptions' ids, each one's invoices read from its index whatever the planner believes
# of how many are open (with the statistics of a table grown since its last analyze, it read every open
# invoice, or the whole table, for each batch).
_FOLLOW = text(
    f"""
WITH derived AS (
    SELECT i.id,
           {status_of_renewal("r.status", "r.next_retry_date", "s.status")} AS status,
           r.paid_at
    FROM unnest(CAST(:ids AS bigint[])) AS u(id)
    CROSS JOIN LATERAL (
        SELECT id, renewal_id, subscription_id, status FROM invoices
        WHERE subscription_id = u.id AND status IN ('OPEN', 'UNCOLLECTIBLE')
        OFFSET 0  -- kept apart, so it is run per subscription from its index
    ) AS i
    JOIN renewals r ON r.id = i.renewal_id
    JOIN subscriptions s ON s.id = i.subscription_id
)
UPDATE invoices i
SET status = d.status,
    amount_paid_minor = CASE WHEN d.status = 'PAID' THEN i.total_minor - i.credit_applied_minor
                             ELSE i.amount_paid_minor END,
    paid_at = CASE WHEN d.status = 'PAID' THEN coalesce(d.paid_at, :now) ELSE i.paid_at END,
    voided_at = CASE WHEN d.status = 'VOID' THEN :now ELSE i.voided_at END,
    void_reason = CASE WHEN d.status = 'VOID'
                       THEN 'the charge was never sent to the gateway: nothing was collected'
                       ELSE i.void_reason END,
    updated_at = :now
FROM derived d
WHERE i.id = d.id
  AND d.status <> i.status
  AND (i.status = 'OPEN' OR d.status IN ('PAID', 'VOID'))
RETURNING i.id, i.subscription_id, i.customer_id, i.renewal_id, i.number, i.status, i.total_minor, i.currency,
          i.document_type
"""
)


async def follow_renewals(
    session: AsyncSession, settings: Settings, subscription_ids: Sequence[int], now: datetime
) -> list[tuple[int, int, str]]:
    """Bring the open invoices of these subscriptions in line with their renewals.

    A pro forma that is paid is followed by its final invoice (``INV-``),
    issued for the same renewal and linked to it. Returns ``(invoice_id,
    subscription_id, new_status)`` of each document that moved.
    """
    ids = sorted(set(subscription_ids))
    if not ids:
        return []
    rows = list(await session.execute(_FOLLOW, {"ids": ids, "now": now}))
    await events.emit(session, [(events.KIND_OF_STATUS[row.status], row) for row in rows], now)
    paid_pro_formas = [row.id for row in rows if row.status == "PAID" and row.document_type == "PRO_FORMA"]
    if paid_pro_formas:
        await issue_final_invoices(session, settings, paid_pro_formas, now)
    return [(row.id, row.subscription_id, row.status) for row in rows]


async def drop_drafts(session: AsyncSession, subscription_ids: Sequence[int]) -> None:
    """Nothing more is billed to these subscriptions (cancelled, expired): their open drafts go with them."""
    if subscription_ids:
        await session.execute(
            text(
                "DELETE FROM invoices WHERE subscription_id = ANY(CAST(:ids AS bigint[])) "
                "AND draft IS NOT NULL AND status = 'DRAFT'"
            ),
            {"ids": sorted(set(subscription_ids))},
        )
