"""Issuing the invoice of every charge, in the transaction that records its renewal.

Whoever records a renewal (a mutation through ``services.subscriptions``,
the renewal worker through ``billing.engine``) calls :func:`issue_for_charges`
before committing, with the charges it recorded: each gets its invoice,
``OPEN`` and numbered, before the gateway is ever called, so a charge that
is later voided keeps its number (as a ``VOID`` invoice) and a crash rolls
back the renewal, its invoice and its number together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import delete, null, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from rebill.config import Settings
from rebill.db import tables as t
from rebill.db.repositories import any_of
from rebill.db.sets import insert_rows
from rebill.domain import invoice
from rebill.domain.cadence import local_today
from rebill.domain.invoice import DocLine, Document, DocumentType, InvoiceStatus, LineKind, terms_of
from rebill.domain.money import Money
from rebill.domain.renewal import Charge
from rebill.domain.tax import TaxRate
from rebill.invoicing import events
from rebill.invoicing.numbering import take_numbers

INVOICES = t.table_of(t.Invoice)
LINES = t.table_of(t.InvoiceLine)
S = t.table_of(t.Subscription)
CUSTOMERS = t.table_of(t.Customer)


@dataclass(frozen=True, slots=True)
class Issued:
    """An invoice just written: its id and number, and what it says."""

    id: int
    number: str
    renewal_id: int
    document: Document


def document_of(charge: Charge) -> Document:
    """What the invoice of ``charge`` says.

    A charge the domain priced carries its lines; one that does not (none
    should) is still documented, by one line of its whole amount.
    """
    lines: Sequence[DocLine] = charge.lines
    if not lines:
        lines = (
            DocLine(
                invoice.LineKind.PRORATION if charge.adjustment else LineKind.ITEM,
                f"Subscription {charge.period_start.isoformat()} to {charge.period_end.isoformat()}",
                charge.amount,
                period_start=charge.period_start,
                period_end=charge.period_end,
            ),
        )
    return invoice.for_charge(lines, charge.amount, charge.period_start, charge.period_end)


class Facts(NamedTuple):
    """What an invoice copies of its subscription and customer when it is issued."""

    customer_id: int
    invoicing: Mapping[str, Any] | None
    name: str | None
    email: str | None
    billing_address: Mapping[str, Any] | None
    tax_id: str | None


def seller_of(settings: Settings) -> dict[str, Any]:
    return dict(settings.seller)


async def facts_of(session: AsyncSession, subscription_ids: Sequence[int]) -> dict[int, Facts]:
    """What the invoices of these subscriptions copy of them and their customers, as stored now."""
    rows = await session.execute(
        select(
            S.c.id,
            S.c.customer_id,
            S.c.invoicing,
            CUSTOMERS.c.name,
            CUSTOMERS.c.email,
            CUSTOMERS.c.billing_address,
            CUSTOMERS.c.tax_id,
        )
        .join(CUSTOMERS, CUSTOMERS.c.id == S.c.customer_id)
        .where(any_of(S.c.id, subscription_ids))
    )
    return {
        row.id: Facts(row.customer_id, row.invoicing, row.name, row.email, row.billing_address, row.tax_id)
        for row in rows
    }


async def issue_for_charges(
    session: AsyncSession,
    settings: Settings,
    charges: Sequence[tuple[int, int, Charge]],
    now: datetime,
    *,
    drafts: Mapping[int, int] | None = None,
    facts: Mapping[int, Facts] | None = None,
) -> dict[int, Issued]:
    """Write the ``OPEN``, numbered invoice of each ``(subscription_id, renewal_id, charge)``.

    One statement per table whatever the batch; the numbers are taken last,
    so the series stays locked only for the rest of the transaction. Keyed
    by renewal id. ``drafts`` maps a renewal to the draft it finalizes: that
    draft's row becomes the invoice (its lines are the charge's). ``facts``: what the caller read of
    each subscription and its customer in this transaction (read here otherwise).
    """
    drafts = drafts or {}
    charges = [c for c in charges if not c[2].amount.is_negative]
    if not charges:
        return {}
    known = dict(facts or {})
    missing = sorted({sid for sid, _, _ in charges} - known.keys())
    if missing:
        known.update(await facts_of(session, missing))
    issue_date = local_today(now, settings.seller_time_zone)
    seller = seller_of(settings)
    ordered = sorted(charges, key=lambda c: c[1])
    # A subscription set to pro formas asks for payment with a PF- document; its invoice follows payment.
    kinds = {
        renewal_id: terms_of(known[sid].invoicing).document_type
        for sid, renewal_id, _ in ordered
        if renewal_id not in drafts
    }
    pro_formas = [c for c in ordered if kinds.get(c[1]) is DocumentType.PRO_FORMA]
    finals = [c for c in ordered if kinds.get(c[1]) is not DocumentType.PRO_FORMA]
    numbered = [
        *zip(finals, await take_numbers(session, settings.invoice_prefix, issue_date.year, len(finals)), strict=True),
        *zip(
            pro_formas,
            await take_numbers(session, settings.pro_forma_prefix, issue_date.year, len(pro_formas)),
            strict=True,
        ),
    ]
    rows: list[dict[str, Any]] = []
    documents: dict[int, Document] = {}
    for (sid, renewal_id, charge), number in numbered:
        fact = known[sid]
        document = document_of(charge)
        documents[renewal_id] = document
        invoicing = terms_of(fact.invoicing)
        terms = invoicing.payment_terms_days
        if terms is None:
            terms = settings.payment_terms_days
        rows.append(
            {
                "number": number,
                "document_type": kinds.get(renewal_id, DocumentType.INVOICE).value,
                "status": InvoiceStatus.OPEN.value,
                "subscription_id": sid,
                "customer_id": fact.customer_id,
                "renewal_id": renewal_id,
                "currency": document.currency,
                "issue_date": issue_date,
                "due_date": issue_date + timedelta(days=max(terms, 0)),
                "period_start": document.period_start,
                "period_end": document.period_end,
                **totals_of(document),
                "amount_paid_minor": 0,
                "credited_minor": 0,
                "purchase_order": invoicing.purchase_order,
                "memo": invoicing.memo,
                "customer_name": fact.name,
                "customer_email": fact.email,
                "billing_address": fact.billing_address,
                "customer_tax_id": fact.tax_id,
                "seller": seller,
                "created_at": now,
                "finalized_at": now,
                "updated_at": now,
            }
        )
    returning = ("id", "renewal_id", "number", "status", "subscription_id", "customer_id", "total_minor", "currency")
    finalized = [row for row in rows if row["renewal_id"] in drafts]
    inserted = await insert_rows(
        session, INVOICES, [row for row in rows if row["renewal_id"] not in drafts], returning=returning
    )
    for row in finalized:
        draft_id = drafts[row["renewal_id"]]
        await session.execute(delete(LINES).where(LINES.c.invoice_id == draft_id))
        values = {k: v for k, v in row.items() if k != "created_at"}
        inserted.append(
            (
                await session.execute(
                    update(INVOICES)
                    .where(INVOICES.c.id == draft_id, INVOICES.c.status == "DRAFT")
                    # SQL NULL (None would store JSON null, which the drafts' index would still count).
                    .values(**values, draft=null())
                    .returning(*(INVOICES.c[name] for name in returning))
                )
            ).one()
        )
    issued = {row.renewal_id: Issued(row.id, row.number, row.renewal_id, documents[row.renewal_id]) for row in inserted}
    await insert_rows(
        session,
        LINES,
        [
            line_row(item.id, position, line)
            for item in issued.values()
            for position, line in enumerate(item.document.lines)
        ],
    )
    # Created and finalized at once, unless a draft was created before.
    await events.emit(
        session,
        [
            (kind, row)
            for row in inserted
            for kind in ("INVOICE_CREATED", "INVOICE_FINALIZED")
            if kind == "INVOICE_FINALIZED" or row.renewal_id not in drafts
        ],
        now,
    )
    return issued


def totals_of(document: Document) -> dict[str, int]:
    sums = document.sums()
    return {
        "subtotal_minor": sums.subtotal,
        "discount_minor": sums.discount,
        "shipping_minor": sums.shipping,
        "tax_minor": sums.tax,
        "total_minor": sums.total,
        "credit_applied_minor": sums.credit,
    }


def line_of(row: Any, currency: str) -> DocLine:
    """A stored line (of an invoice or a credit note) as the rules see it."""
    return DocLine(
        LineKind(row.kind),
        row.description,
        Money(row.amount_minor, currency),
        product_id=row.product_id,
        quantity=row.quantity,
        unit_price=Money(row.unit_price_minor, currency) if row.unit_price_minor is not None else None,
        period_start=row.period_start,
        period_end=row.period_end,
        tax_amount=Money(row.tax_minor, currency),
        tax_rate=rate_of(row),
    )


def rate_of(row: Any) -> TaxRate | None:
    """A stored line's rate, as it was when the document was issued."""
    if row.tax_name is None:
        return None
    return TaxRate(
        row.tax_rate_id,
        row.tax_name,
        row.tax_percentage,
        bool(row.tax_inclusive),
        exempt_reason=row.tax_exempt_reason,
    )


def tax_columns(line: DocLine) -> dict[str, Any]:
    rate = line.tax_rate
    return {
        "tax_minor": line.tax.minor,
        "tax_rate_id": rate.id if rate else None,
        "tax_name": rate.name if rate else None,
        "tax_percentage": rate.percentage if rate else None,
        "tax_inclusive": rate.inclusive if rate else None,
        "tax_exempt_reason": rate.exempt_reason if rate else None,
    }


def line_row(invoice_id: int, position: int, line: DocLine) -> dict[str, Any]:
    return {
        "invoice_id": invoice_id,
        "position": position,
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


async def issue_final_invoices(
    session: AsyncSession, settings: Settings, pro_forma_ids: Sequence[int], now: datetime
) -> None:
    """The final invoice of each paid pro forma: its lines and amounts, an ``INV-`` number, paid, linked to it.

    The pro forma asked for the payment; the invoice documents it (DOMAIN.md "Pro forma").
    """
    pro_formas = list(
        await session.execute(select(INVOICES).where(INVOICES.c.id.in_(list(pro_forma_ids))).order_by(INVOICES.c.id))
    )
    issue_date = local_today(now, settings.seller_time_zone)
    numbers = await take_numbers(session, settings.invoice_prefix, issue_date.year, len(pro_formas))
    copied = (
        "id",
        "number",
        "document_type",
        "issue_date",
        "due_date",
        "pro_forma_id",
        "created_at",
        "finalized_at",
        "updated_at",
        "draft",
    )
    rows = [
        {
            **{k: v for k, v in pf._mapping.items() if k not in copied},
            "number": number,
            "document_type": DocumentType.INVOICE.value,
            "issue_date": issue_date,
            "due_date": issue_date,
            "pro_forma_id": pf.id,
            "created_at": now,
            "finalized_at": now,
            "updated_at": now,
        }
        for pf, number in zip(pro_formas, numbers, strict=True)
    ]
    returning = (
        "id",
        "renewal_id",
        "number",
        "status",
        "subscription_id",
        "customer_id",
        "total_minor",
        "currency",
        "pro_forma_id",
    )
    inserted = await insert_rows(session, INVOICES, rows, returning=returning)
    final_of = {row.pro_forma_id: row.id for row in inserted}
    lines = await session.execute(select(LINES).where(LINES.c.invoice_id.in_(list(final_of))).order_by(LINES.c.id))
    await insert_rows(
        session,
        LINES,
        [
            {
                **{k: v for k, v in line._mapping.items() if k not in ("id", "invoice_id")},
                "invoice_id": final_of[line.invoice_id],
            }
            for line in lines
        ],
    )
    await events.emit(
        session,
        [(kind, row) for row in inserted for kind in ("INVOICE_CREATED", "INVOICE_FINALIZED", "INVOICE_PAID")],
        now,
    )
