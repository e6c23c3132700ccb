"""Credit notes: every refund, proration credit and staff correction, against the invoice it corrects.

Written in the transaction of the change it documents (a refund, a credit
to the customer's balance), numbered in the ``CN-`` series like invoices
(gapless, given at issue), split over the invoice's lines by
``domain.invoice.credit_split``. The invoice's ``credited_minor`` grows by
the credit note's total under a lock on the invoice, and a check on the
table refuses ever crediting more than the invoice's total.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from rebill.config import Settings
from rebill.db import tables as t
from rebill.db.sets import insert_rows
from rebill.domain import invoice as rules
from rebill.domain.cadence import local_today
from rebill.domain.errors import InvoiceError, NotFound
from rebill.domain.invoice import LineKind
from rebill.domain.money import Money
from rebill.invoicing import events
from rebill.invoicing.issue import line_of, tax_columns
from rebill.invoicing.numbering import take_numbers

INVOICES = t.table_of(t.Invoice)
LINES = t.table_of(t.InvoiceLine)
NOTES = t.table_of(t.CreditNote)
NOTE_LINES = t.table_of(t.CreditNoteLine)
OUTBOX = t.table_of(t.OutboxMessage)


@dataclass(frozen=True, slots=True)
class Issued:
    id: int
    number: str
    invoice_id: int
    total: Money


async def issue_credit_note(
    session: AsyncSession,
    settings: Settings,
    invoice_id: int,
    amount: Money,
    now: datetime,
    *,
    reason: str | None,
    refunded: bool,
    transaction_id: int | None = None,
    kinds: frozenset[LineKind] | None = None,
) -> Issued:
    """Credit ``amount`` against an invoice: its numbered credit note, lines and partner event.

    ``kinds`` credits those lines only (a cancelled delivery's shipping); by default every line shares it.

    Refused with ``CREDIT_EXCEEDS_INVOICE`` when the invoice's credit notes
    would add up to more than its total, and with ``INVOICE_NOT_OPEN`` for a
    draft, a pro forma or a void invoice (nothing was billed by it).
    """
    invoice = (await session.execute(select(INVOICES).where(INVOICES.c.id == invoice_id).with_for_update())).first()
    if invoice is None:
        raise NotFound(f"invoice {invoice_id} does not exist", field=["invoiceId"])
    if invoice.status in ("DRAFT", "VOID") or invoice.document_type != "INVOICE":
        raise InvoiceError(
            f"invoice {invoice.number or invoice_id} is {invoice.status} {invoice.document_type.lower()}: "
            "only a finalized invoice that billed something can be credited",
            code="INVOICE_NOT_OPEN",
            field=["invoiceId"],
        )
    currency = invoice.currency
    lines = [
        line_of(row, currency)
        for row in await session.execute(
            select(LINES).where(LINES.c.invoice_id == invoice_id).order_by(LINES.c.position)
        )
    ]
    if kinds is not None:
        lines = [line for line in lines if line.kind in kinds]
    split = rules.credit_split(
        lines, amount, credited=Money(invoice.credited_minor, currency), total=Money(invoice.total_minor, currency)
    )
    issue_date = local_today(now, settings.seller_time_zone)
    [number] = await take_numbers(session, settings.credit_note_prefix, issue_date.year, 1)
    subtotal = sum(line.amount.minor for line in split)
    tax = sum(line.tax.minor for line in split)
    [row] = await insert_rows(
        session,
        NOTES,
        [
            {
                "number": number,
                "invoice_id": invoice_id,
                "subscription_id": invoice.subscription_id,
                "customer_id": invoice.customer_id,
                "currency": currency,
                "issue_date": issue_date,
                "subtotal_minor": subtotal,
                "tax_minor": tax,
                "total_minor": amount.minor,
                "reason": reason,
                "refunded": refunded,
                "transaction_id": transaction_id,
                "customer_name": invoice.customer_name,
                "customer_email": invoice.customer_email,
                "billing_address": invoice.billing_address,
                "customer_tax_id": invoice.customer_tax_id,
                "seller": dict(settings.seller),
                "created_at": now,
            }
        ],
        returning=("id",),
    )
    await insert_rows(
        session,
        NOTE_LINES,
        [
            {
                "credit_note_id": row.id,
                "position": n,
                "kind": line.kind.value,
                "description": line.description,
                "product_id": line.product_id,
                "quantity": line.quantity,
                "unit_price_minor": line.unit_price.minor if line.unit_price is not None else None,
                "amount_minor": line.amount.minor,
                "period_start": line.period_start,
                "period_end": line.period_end,
                **tax_columns(line),
            }
            for n, line in enumerate(split)
        ],
    )
    await session.execute(
        update(INVOICES)
        .where(INVOICES.c.id == invoice_id)
        .values(credited_minor=INVOICES.c.credited_minor + amount.minor, updated_at=now)
    )
    heard = await events.listened(session, {"CREDIT_NOTE_CREATED"})
    await insert_rows(
        session,
        OUTBOX,
        [
            {
                "kind": "CREDIT_NOTE_CREATED",
                "subscription_id": invoice.subscription_id,
                "recipient": None,
                "payload": {
                    "creditNoteId": row.id,
                    "invoiceId": invoice_id,
                    "subscriptionId": invoice.subscription_id,
                    "customerId": invoice.customer_id,
                    "number": number,
                    "invoiceNumber": invoice.number,
                    "total": amount.amount_str,
                    "currency": currency,
                    "refunded": refunded,
                    "reason": reason,
                },
                "created_at": now,
                "delivered_at": now,
            }
        ]
        if heard
        else [],
    )
    return Issued(row.id, number, invoice_id, amount)


async def shipping_to_credit(session: AsyncSession, renewal_id: int) -> tuple[int, Money] | None:
    """What cancelling a paid renewal's delivery gives back: its invoice's shipping with its tax, as room allows."""
    invoice = (
        await session.execute(
            select(INVOICES).where(
                INVOICES.c.renewal_id == renewal_id,
                INVOICES.c.document_type == "INVOICE",
                INVOICES.c.status == "PAID",
            )
        )
    ).first()
    if invoice is None:
        return None
    shipping = [
        line_of(row, invoice.currency)
        for row in await session.execute(
            select(LINES).where(LINES.c.invoice_id == invoice.id, LINES.c.kind == LineKind.SHIPPING.value)
        )
    ]
    owed = sum(line.amount.minor + line.exclusive_tax for line in shipping)
    room = invoice.total_minor - invoice.credited_minor
    amount = min(owed, room)
    return (invoice.id, Money(amount, invoice.currency)) if amount > 0 else None


async def invoice_of_renewal(session: AsyncSession, renewal_id: int) -> int | None:
    """The final invoice of a renewal (what a refund of it credits)."""
    return (
        await session.execute(
            select(INVOICES.c.id).where(INVOICES.c.renewal_id == renewal_id, INVOICES.c.document_type == "INVOICE")
        )
    ).scalar()


async def latest_creditable_invoice(session: AsyncSession, subscription_id: int, amount: Money) -> int | None:
    """The newest paid invoice of a subscription with room for ``amount`` more credit (a proration credit's)."""
    return (
        await session.execute(
            select(INVOICES.c.id)
            .where(
                INVOICES.c.subscription_id == subscription_id,
                INVOICES.c.document_type == "INVOICE",
                text("invoices.status = 'PAID'"),
                INVOICES.c.currency == amount.currency,
                INVOICES.c.total_minor - INVOICES.c.credited_minor >= amount.minor,
            )
            .order_by(INVOICES.c.id.desc())
            .limit(1)
        )
    ).scalar()


async def check_room(session: AsyncSession, renewal_id: int, amount: Money) -> None:
    """Refuse (``CREDIT_EXCEEDS_INVOICE``) a refund of ``amount`` that the renewal's invoice cannot credit."""
    row = (
        await session.execute(
            select(INVOICES.c.number, INVOICES.c.total_minor, INVOICES.c.credited_minor)
            .where(INVOICES.c.renewal_id == renewal_id, INVOICES.c.document_type == "INVOICE")
            .with_for_update()
        )
    ).first()
    if row is not None and row.credited_minor + amount.minor > row.total_minor:
        left = Money(row.total_minor - row.credited_minor, amount.currency)
        raise InvoiceError(
            f"invoice {row.number} can be credited {left.amount_str} {amount.currency} more, not {amount.amount_str}",
            code="CREDIT_EXCEEDS_INVOICE",
            field=["amount"],
        )


async def read_back(session: AsyncSession, credit_note_id: int) -> tuple[Any, list[Any]]:
    """A credit note's row and lines as this transaction sees them (a dry run's, before it is rolled back)."""
    row = (await session.execute(select(NOTES).where(NOTES.c.id == credit_note_id))).one()
    lines = list(
        await session.execute(
            select(NOTE_LINES).where(NOTE_LINES.c.credit_note_id == credit_note_id).order_by(NOTE_LINES.c.position)
        )
    )
    return row, lines
