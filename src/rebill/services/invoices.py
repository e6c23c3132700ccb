"""Use cases on invoices: each goes through its subscription's one path (lock, history, outbox).

An invoice action changes what the subscription owes, so it runs as a
subscription mutation (``SubscriptionService.mutate``): the subscription is
locked, the invoice read under lock, and the history entry says what
happened to the invoice beside what happened to the subscription.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, text, update

from rebill.db import tables as t
from rebill.domain import invoice as rules
from rebill.domain import lifecycle
from rebill.domain.errors import InvoiceError, NotFound
from rebill.domain.invoice import InvoiceStatus
from rebill.domain.money import Money
from rebill.domain.outcome import OpContext, Outcome
from rebill.domain.renewal import Event
from rebill.domain.subscription import SubscriptionState
from rebill.invoicing import credit as crediting
from rebill.services.runtime import Actor, Common, Result, Services
from rebill.services.subscriptions import SubscriptionService, Unit, credit_note_note, get_renewal

INVOICES = t.table_of(t.Invoice)
R = t.table_of(t.Renewal)


async def _subscription_of(services: Services, invoice_id: int) -> int:
    async with services.sessions() as session:
        row = (await session.execute(select(INVOICES.c.subscription_id).where(INVOICES.c.id == invoice_id))).first()
    if row is None:
        raise NotFound(f"invoice {invoice_id} does not exist", field=["invoiceId"])
    if row.subscription_id is None:
        raise InvoiceError(f"invoice {invoice_id} belongs to no subscription", code="INVALID_STATUS")
    return int(row.subscription_id)


async def void_invoice(services: Services, actor: Actor, common: Common, invoice_id: int, request: Any) -> Result:
    """Forgive an ``OPEN`` or ``UNCOLLECTIBLE`` invoice: its renewal's dunning stops, the schedule goes on."""
    subscription_id = await _subscription_of(services, invoice_id)
    holder: dict[str, Any] = {}

    async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
        session = unit.session
        row = (await session.execute(select(INVOICES).where(INVOICES.c.id == invoice_id).with_for_update())).one()
        status = InvoiceStatus(row.status)
        if not rules.can_move(status, InvoiceStatus.VOID):
            raise InvoiceError(
                f"invoice {row.number or invoice_id} is {status.value}: only an OPEN or UNCOLLECTIBLE invoice "
                "can be voided",
                code="INVOICE_NOT_OPEN",
                field=["invoiceId"],
            )
        declined = False
        if row.renewal_id is not None:
            renewal = (
                await session.execute(select(R.c.status).where(R.c.id == row.renewal_id).with_for_update())
            ).one()
            declined = renewal.status == "FAILED"
            # Nothing more is collected for this period: its retries are dropped.
            await session.execute(
                update(R).where(R.c.id == row.renewal_id).values(next_retry_date=None, updated_at=unit.now)
            )
        other_retry = (
            await session.execute(
                select(func.min(R.c.next_retry_date)).where(
                    R.c.subscription_id == subscription_id,
                    text("renewals.status = 'FAILED'"),
                    R.c.next_retry_date.is_not(None),
                    R.c.id != (row.renewal_id or 0),
                )
            )
        ).scalar()
        reason = common.reason or "voided"
        voided = (
            await session.execute(
                update(INVOICES)
                .where(INVOICES.c.id == invoice_id)
                .values(status="VOID", voided_at=unit.now, void_reason=reason, updated_at=unit.now)
                .returning(INVOICES)
            )
        ).one()
        holder["invoice"] = voided
        new = rules.forgive(state, was_declined=declined, other_retry=other_retry)
        note = {"field": f"invoices.{invoice_id}.status", "before": status.value, "after": "VOID"}
        event = Event("INVOICE_VOIDED", {"invoiceId": invoice_id, "number": row.number, "reason": reason})
        return Outcome(new, "invoice_voided", events=(event,), notes=(note,))

    result = await SubscriptionService(services).mutate("voidInvoice", subscription_id, actor, common, request, build)
    if "invoice" in holder:
        result.extra["invoice"] = holder["invoice"]
    return result


async def create_credit_note(
    services: Services,
    actor: Actor,
    common: Common,
    invoice_id: int,
    request: Any,
    *,
    amount: Money,
    refund: bool,
) -> Result:
    """A staff correction: credit part of an invoice to the customer's balance, or refund it through the gateway.

    Checked against what the invoice can still be credited before any money
    moves, so a refund is never sent for a credit note that would be refused.
    """
    subscription_id = await _subscription_of(services, invoice_id)
    holder: dict[str, Any] = {}

    async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
        session = unit.session
        row = (await session.execute(select(INVOICES).where(INVOICES.c.id == invoice_id).with_for_update())).one()
        if row.status in ("DRAFT", "VOID") or row.document_type != "INVOICE":
            raise InvoiceError(
                f"invoice {row.number or invoice_id} is {row.status}: only a finalized invoice that billed "
                "something can be credited",
                code="INVOICE_NOT_OPEN",
                field=["invoiceId"],
            )
        total, credited = Money(row.total_minor, row.currency), Money(row.credited_minor, row.currency)
        if amount.currency != row.currency:
            raise InvoiceError(
                f"the invoice is in {row.currency}, not {amount.currency}", code="CURRENCY_MISMATCH", field=["amount"]
            )
        if not amount.is_positive or credited + amount > total:
            raise InvoiceError(
                f"{amount.amount_str} {amount.currency} would credit {(credited + amount).amount_str} of an invoice "
                f"of {total.amount_str}"
                if amount.is_positive
                else "a credit note is for more than zero",
                code="CREDIT_EXCEEDS_INVOICE" if amount.is_positive else "INVALID_AMOUNT",
                field=["amount"],
            )
        if refund:
            if row.renewal_id is None:
                raise InvoiceError("this invoice has no payment to refund", code="INVALID_STATUS", field=["refund"])
            renewal = await get_renewal(session, row.renewal_id, for_update=True)
            # apply_outcome refunds through the gateway and issues the credit note with the refund.
            return lifecycle.refund_renewal(state, ctx, renewal=renewal, amount=amount)
        if unit.common.dry_run:
            holder["preview"] = (row, amount)
            note_line: dict[str, Any] = {"field": "creditNotes.new", "before": None, "after": amount.amount_str}
        else:
            note = await crediting.issue_credit_note(
                session, services.settings, invoice_id, amount, unit.now, reason=common.reason, refunded=False
            )
            holder["creditNoteIds"] = [note.id]
            note_line = credit_note_note(note)
        balance = (state.credit or Money.zero(state.currency)) + amount
        return Outcome(state.evolve(credit=balance), "credit_note_created", notes=(note_line,))

    result = await SubscriptionService(services).mutate(
        "createCreditNote", subscription_id, actor, common, request, build
    )
    if "creditNoteIds" in holder:
        result.extra["creditNoteIds"] = holder["creditNoteIds"]
    return result
