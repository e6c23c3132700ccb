"""Draft invoices (DOMAIN.md "Invoices": drafts), outside the charge path until they are finalized.

A draft is an invoice row with status ``DRAFT``, no number and no renewal:
``draft`` says which renewal it will record (cycle, kind, fulfillment) and
the day the worker finalizes it. Its lines can change; its number, renewal
and charge come only when ``services.invoices.finalize_invoice`` takes it
through the one charge path.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from rebill.db import tables as t
from rebill.db.repositories import any_of
from rebill.db.sets import insert_rows
from rebill.domain.invoice import DocLine, Document
from rebill.domain.renewal import Charge
from rebill.invoicing import events
from rebill.invoicing.issue import line_of, line_row, totals_of

INVOICES = t.table_of(t.Invoice)
LINES = t.table_of(t.InvoiceLine)
S = t.table_of(t.Subscription)
CUSTOMERS = t.table_of(t.Customer)


async def create_drafts(
    session: AsyncSession, items: Sequence[tuple[int, int, Charge, int]], now: datetime, today: date
) -> dict[int, int]:
    """A ``DRAFT`` for each ``(subscription_id, customer_id, charge, draft_days)``; their ids by subscription."""
    if not items:
        return {}
    rows = []
    documents: dict[int, Document] = {}
    for sid, customer_id, charge, days in items:
        document = Document(charge.amount.currency, charge.lines, charge.period_start, charge.period_end)
        documents[sid] = document
        rows.append(
            {
                "status": "DRAFT",
                "document_type": "INVOICE",
                "subscription_id": sid,
                "customer_id": customer_id,
                "currency": document.currency,
                "period_start": charge.period_start,
                "period_end": charge.period_end,
                **totals_of(document),
                "draft": {
                    "cycle": charge.cycle,
                    "kind": charge.kind.value,
                    "fulfillment": charge.fulfillment.value,
                    "finalizeOn": (today + timedelta(days=days)).isoformat(),
                },
                "created_at": now,
                "updated_at": now,
            }
        )
    inserted = await insert_rows(
        session,
        INVOICES,
        rows,
        returning=("id", "subscription_id", "customer_id", "renewal_id", "number", "status", "total_minor", "currency"),
    )
    ids = {row.subscription_id: row.id for row in inserted}
    await insert_rows(
        session,
        LINES,
        [line_row(ids[sid], n, line) for sid, document in documents.items() for n, line in enumerate(document.lines)],
    )
    await events.emit(session, [("INVOICE_CREATED", row) for row in inserted], now)
    return ids


async def lines_of(session: AsyncSession, invoice_id: int, currency: str) -> list[tuple[int, DocLine]]:
    """A draft's lines in order, with their ids."""
    rows = await session.execute(select(LINES).where(LINES.c.invoice_id == invoice_id).order_by(LINES.c.position))
    return [(row.id, line_of(row, currency)) for row in rows]


async def replace_lines(session: AsyncSession, invoice_id: int, lines: Sequence[DocLine], now: datetime) -> Any:
    """A draft's lines and totals replaced; the draft's row as it is now."""
    await session.execute(delete(LINES).where(LINES.c.invoice_id == invoice_id))
    row = (await session.execute(select(INVOICES.c.currency).where(INVOICES.c.id == invoice_id))).one()
    document = Document(row.currency, tuple(lines))
    await insert_rows(session, LINES, [line_row(invoice_id, n, line) for n, line in enumerate(lines)])
    return (
        await session.execute(
            update(INVOICES)
            .where(INVOICES.c.id == invoice_id, INVOICES.c.status == "DRAFT")
            .values(**totals_of(document), updated_at=now)
            .returning(INVOICES)
        )
    ).one()


async def due_drafts(session: AsyncSession, today: date, limit: int = 100) -> list[tuple[int, int]]:
    """``(invoice, subscription)`` of the drafts the worker finalizes now: their draft days have passed, or their
    subscription's next period is due."""
    rows = await session.execute(
        select(INVOICES.c.id, INVOICES.c.subscription_id)
        .join(S, S.c.id == INVOICES.c.subscription_id)
        .where(
            INVOICES.c.draft.is_not(None),  # only drafts have it: the partial index of drafts
            INVOICES.c.status == "DRAFT",
            (INVOICES.c.draft["finalizeOn"].astext <= today.isoformat()) | (S.c.next_renewal_date <= today),
        )
        .order_by(INVOICES.c.id)
        .limit(limit)
    )
    return [(row.id, row.subscription_id) for row in rows]


async def drafted_subscriptions(session: AsyncSession, subscription_ids: Sequence[int]) -> set[int]:
    """Which of these subscriptions have an open draft."""
    if not subscription_ids:
        return set()
    rows = await session.execute(
        select(INVOICES.c.subscription_id).where(
            any_of(INVOICES.c.subscription_id, subscription_ids),
            INVOICES.c.draft.is_not(None),
            INVOICES.c.status == "DRAFT",
        )
    )
    return {row.subscription_id for row in rows}


async def line_rows(session: AsyncSession, invoice_id: int) -> list[Any]:
    """A draft's line rows as they are in this transaction (a dry run shows them before its rollback)."""
    return list(await session.execute(select(LINES).where(LINES.c.invoice_id == invoice_id).order_by(LINES.c.position)))
