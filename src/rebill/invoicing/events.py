"""Partner events of invoices: ``invoice.created``, ``invoice.finalized``, ``invoice.paid``, … (webhooks).

Outbox rows written in the transaction that changes the invoice; partners
only (nobody is e-mailed), so they are born delivered, and the outbox's
trigger fans them out to the webhook endpoints that listen. They exist for
partners alone, so they are written only when an enabled endpoint listens to
their event type: the renewal worker writes several per renewal, and a
merchant without webhooks pays nothing for them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rebill.db import tables as t
from rebill.db.repositories import any_of
from rebill.db.sets import insert_rows
from rebill.domain.money import Money

OUTBOX = t.table_of(t.OutboxMessage)
ENDPOINTS = t.table_of(t.WebhookEndpoint)

#: Outbox kind → partner event type (``rebill.webhooks.events.EVENT_TYPES`` says the same).
EVENT_TYPES = {
    "INVOICE_CREATED": "invoice.created",
    "INVOICE_FINALIZED": "invoice.finalized",
    "INVOICE_PAID": "invoice.paid",
    "INVOICE_VOIDED": "invoice.voided",
    "INVOICE_UNCOLLECTIBLE": "invoice.uncollectible",
    "CREDIT_NOTE_CREATED": "credit_note.created",
}

#: The outbox kind of each invoice status an invoice moves to.
KIND_OF_STATUS = {"PAID": "INVOICE_PAID", "VOID": "INVOICE_VOIDED", "UNCOLLECTIBLE": "INVOICE_UNCOLLECTIBLE"}


def event_row(kind: str, invoice: Any, now: datetime) -> dict[str, Any]:
    """One outbox row about ``invoice`` (a row with id, number, status, subscription, customer, total, currency)."""
    return {
        "kind": kind,
        "subscription_id": invoice.subscription_id,
        "recipient": None,
        "payload": {
            "invoiceId": invoice.id,
            "subscriptionId": invoice.subscription_id,
            "customerId": invoice.customer_id,
            "renewalId": invoice.renewal_id,
            "number": invoice.number,
            "status": invoice.status,
            "total": Money(invoice.total_minor, invoice.currency).amount_str,
            "currency": invoice.currency,
        },
        "created_at": now,
        "delivered_at": now,
    }


async def listened(session: AsyncSession, kinds: Iterable[str]) -> set[str]:
    """Which of these outbox kinds an enabled webhook endpoint listens to (an endpoint without events takes all)."""
    wanted = set(kinds)
    if not wanted:
        return set()
    rows = (await session.execute(select(ENDPOINTS.c.events).where(ENDPOINTS.c.enabled))).all()
    if any(not row.events for row in rows):
        return wanted
    types = {event for row in rows for event in row.events}
    return {kind for kind in wanted if EVENT_TYPES[kind] in types}


async def emit(session: AsyncSession, events: Iterable[tuple[str, Any]], now: datetime) -> None:
    """Write the outbox rows of ``(kind, invoice row)`` pairs that someone listens to, in one statement."""
    pairs = list(events)
    heard = await listened(session, {kind for kind, _ in pairs})
    await insert_rows(session, OUTBOX, [event_row(kind, invoice, now) for kind, invoice in pairs if kind in heard])


#: Customer messages about a renewal that name its invoice.
NAMING = frozenset({"RENEWAL_RECEIPT", "PAYMENT_DECLINED"})


async def name_invoices(session: AsyncSession, outbox_rows: list[dict[str, Any]]) -> None:
    """Receipts and decline notices name the invoice of their renewal (``invoiceId``, ``invoiceNumber``)."""
    wanted = {
        row["payload"]["renewalId"]
        for row in outbox_rows
        if row["kind"] in NAMING and isinstance(row["payload"].get("renewalId"), int)
    }
    if not wanted:
        return
    invoices = t.table_of(t.Invoice)
    found = {
        row.renewal_id: row
        for row in await session.execute(
            select(invoices.c.id, invoices.c.renewal_id, invoices.c.number).where(
                any_of(invoices.c.renewal_id, sorted(wanted)), invoices.c.document_type == "INVOICE"
            )
        )
    }
    for row in outbox_rows:
        invoice = found.get(row["payload"].get("renewalId")) if row["kind"] in NAMING else None
        if invoice is not None:
            row["payload"] = {**row["payload"], "invoiceId": invoice.id, "invoiceNumber": invoice.number}
