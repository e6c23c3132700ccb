"""Use cases on invoices: each goes through its subscription's one path (lock, history, outbox).

An invoice action changes what the subscription owes, so it runs as a
subscription mutation (``SubscriptionService.mutate``): the subscription is
locked, the invoice read under lock, and the history entry says what
happened to the invoice beside what happened to the subscription.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

from sqlalchemy import delete, func, insert, select, text, update

from rebill.db import tables as t
from rebill.domain import cycle, lifecycle
from rebill.domain import invoice as rules
from rebill.domain.cadence import start_of_day
from rebill.domain.errors import InvoiceError, NotFound
from rebill.domain.invoice import DocLine, InvoiceStatus
from rebill.domain.money import Money
from rebill.domain.outcome import OpContext, Outcome
from rebill.domain.renewal import Charge, Event, FulfillmentStatus, RenewalKind, RenewalStatus
from rebill.domain.subscription import SubscriptionState
from rebill.domain.tax import tax_lines
from rebill.invoicing import credit as crediting
from rebill.invoicing import drafts
from rebill.invoicing.follow import follow_renewals
from rebill.services.runtime import Actor, Common, Result, Services
from rebill.services.subscriptions import SubscriptionService, Unit, credit_note_note, get_renewal

INVOICES = t.table_of(t.Invoice)
R = t.table_of(t.Renewal)
TX = t.table_of(t.Transaction)


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
            if renewal.status == "PENDING":
                raise InvoiceError(
                    f"invoice {row.number}'s payment is being charged: void it once the gateway has answered",
                    code="INVALID_STATUS",
                    field=["invoiceId"],
                )
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
        # On a dry run too: the transaction is rolled back, number and all, after the note is read back.
        note = await crediting.issue_credit_note(
            session, services.settings, invoice_id, amount, unit.now, reason=common.reason, refunded=False
        )
        holder["creditNoteIds"] = [note.id]
        if unit.common.dry_run:
            holder["creditNotePreview"] = await crediting.read_back(session, note.id)
        note_line = credit_note_note(note)
        balance = (state.credit or Money.zero(state.currency)) + amount
        return Outcome(state.evolve(credit=balance), "credit_note_created", notes=(note_line,))

    result = await SubscriptionService(services).mutate(
        "createCreditNote", subscription_id, actor, common, request, build
    )
    if "creditNoteIds" in holder:
        result.extra["creditNoteIds"] = holder["creditNoteIds"]
    if "creditNotePreview" in holder:
        result.extra["creditNotePreview"] = holder["creditNotePreview"]
    return result  # a refund's credit note (and its dry run's preview) comes from apply_outcome


# -- drafts -------------------------------------------------------------------------


async def _draft(unit: Unit, invoice_id: int) -> Any:
    """A draft under lock, or ``INVOICE_FINALIZED`` for an invoice that no longer is one."""
    row = (await unit.session.execute(select(INVOICES).where(INVOICES.c.id == invoice_id).with_for_update())).first()
    if row is None:
        raise NotFound(f"invoice {invoice_id} does not exist", field=["invoiceId"])
    if row.status != "DRAFT":
        raise InvoiceError(
            f"invoice {row.number} is {row.status}: a finalized invoice is never edited (issue a credit note)",
            code="INVOICE_FINALIZED",
            field=["invoiceId"],
        )
    return row


async def _subscription_lines(unit: Unit, state: SubscriptionState, row: Any) -> list[DocLine]:
    """A draft's lines recomputed from the subscription as it is now, its one-off lines kept."""
    current = [line for _, line in await drafts.lines_of(unit.session, row.id, row.currency)]
    fresh = rules.period_lines(state, row.period_start, row.period_end, pending=False)
    # Its one-off lines are taxed at the customer's rate as it is now, like the rest.
    return list(tax_lines(rules.refreshed(current, fresh), state.tax_rate))


def _draft_note(invoice_id: int, what: str, after: Any = None) -> dict[str, Any]:
    return {"field": f"invoices.{invoice_id}.{what}", "before": None, "after": after}


async def _draft_change(
    services: Services,
    actor: Actor,
    common: Common,
    invoice_id: int,
    request: Any,
    operation: str,
    change: Callable[[Unit, SubscriptionState, Any], Awaitable[tuple[list[DocLine], dict[str, Any]]]],
) -> Result:
    """Change a draft's lines through its subscription's path; the history says what changed."""
    subscription_id = await _subscription_of(services, invoice_id)
    holder: dict[str, Any] = {}

    async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
        row = await _draft(unit, invoice_id)
        lines, note = await change(unit, state, row)
        if rules.Document(row.currency, tuple(lines)).total.is_negative:
            raise InvoiceError("the draft would total less than zero", code="INVALID_LINE", field=["unitPrice"])
        holder["invoice"] = await drafts.replace_lines(unit.session, invoice_id, lines, unit.now)
        holder["lines"] = await drafts.line_rows(unit.session, invoice_id)
        return Outcome(state, f"draft_{operation}", notes=(note,))

    result = await SubscriptionService(services).mutate(operation, subscription_id, actor, common, request, build)
    if "invoice" in holder:
        result.extra["invoice"] = holder["invoice"]
        result.extra["lines"] = holder["lines"]
    return result


async def refresh_invoice(services: Services, actor: Actor, common: Common, invoice_id: int, request: Any) -> Result:
    """Recompute a draft from the subscription as it is now (one-off lines are kept)."""

    async def change(unit: Unit, state: SubscriptionState, row: Any) -> tuple[list[DocLine], dict[str, Any]]:
        return await _subscription_lines(unit, state, row), _draft_note(invoice_id, "refreshed", True)

    return await _draft_change(services, actor, common, invoice_id, request, "refreshInvoice", change)


async def add_invoice_line(
    services: Services,
    actor: Actor,
    common: Common,
    invoice_id: int,
    request: Any,
    *,
    description: str,
    unit_price: Money,
    quantity: int,
) -> Result:
    """A one-off line on a draft (a negative unit price is a discount)."""

    async def change(unit: Unit, state: SubscriptionState, row: Any) -> tuple[list[DocLine], dict[str, Any]]:
        if unit_price.currency != row.currency:
            raise InvoiceError(
                f"the draft is in {row.currency}, not {unit_price.currency}",
                code="CURRENCY_MISMATCH",
                field=["unitPrice"],
            )
        [line] = rules.taxed((rules.one_off_line(description, unit_price, quantity),), state.tax_rate)
        current = [existing for _, existing in await drafts.lines_of(unit.session, invoice_id, row.currency)]
        note = _draft_note(invoice_id, "lines", {"added": line.description, "amount": line.amount.amount_str})
        return [*current, line], note

    return await _draft_change(services, actor, common, invoice_id, request, "addInvoiceLine", change)


async def remove_invoice_line(
    services: Services, actor: Actor, common: Common, invoice_id: int, request: Any, *, line_id: int
) -> Result:
    """Take a one-off line off a draft (the subscription's own lines come back with a refresh)."""

    async def change(unit: Unit, state: SubscriptionState, row: Any) -> tuple[list[DocLine], dict[str, Any]]:
        current = await drafts.lines_of(unit.session, invoice_id, row.currency)
        found = [line for pk, line in current if pk == line_id]
        if not found:
            raise NotFound(f"the draft has no line {line_id}", field=["lineId"])
        kept = [line for pk, line in current if pk != line_id]
        return kept, _draft_note(invoice_id, "lines", {"removed": found[0].description})

    return await _draft_change(services, actor, common, invoice_id, request, "removeInvoiceLine", change)


async def delete_draft_invoice(
    services: Services, actor: Actor, common: Common, invoice_id: int, request: Any
) -> Result:
    """Delete a draft: its period is skipped, nothing is billed for it, and the history says so."""
    subscription_id = await _subscription_of(services, invoice_id)
    holder: dict[str, Any] = {}

    async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
        row = await _draft(unit, invoice_id)
        holder["invoice"] = row
        await unit.session.execute(delete(INVOICES).where(INVOICES.c.id == invoice_id))
        skipped = {"periodStart": str(row.period_start), "periodEnd": str(row.period_end), "skipped": True}
        return Outcome(state, "draft_deleted", notes=(_draft_note(invoice_id, "deleted", skipped),))

    result = await SubscriptionService(services).mutate(
        "deleteDraftInvoice", subscription_id, actor, common, request, build
    )
    if "invoice" in holder:
        result.extra["invoice"] = holder["invoice"]
    return result


async def finalize_invoice(services: Services, actor: Actor, common: Common, invoice_id: int, request: Any) -> Result:
    """Refresh a draft, number it, record its renewal and charge it through the one charge path.

    The draft's row becomes the invoice (its number is given when the
    renewal is recorded, before the gateway is called); the customer's
    balance is applied first, as for any renewal.
    """
    subscription_id = await _subscription_of(services, invoice_id)

    async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
        row = await _draft(unit, invoice_id)
        lines = await _subscription_lines(unit, state, row)
        document = rules.Document(row.currency, tuple(lines), row.period_start, row.period_end)
        if document.total.is_negative:
            raise InvoiceError("the draft totals less than zero", code="INVALID_LINE", field=["invoiceId"])
        amount, balance = rules.finalized_charge_amount(document, state.credit)
        draft = row.draft or {}
        charge = Charge(
            RenewalKind(draft.get("kind", "SCHEDULED")),
            int(draft.get("cycle", state.last_cycle)),
            row.period_start,
            row.period_end,
            amount,
            fulfillment=FulfillmentStatus(draft.get("fulfillment", "NONE")),
            lines=tuple(lines),
        )
        unit.draft_invoice_id = invoice_id
        new = state.evolve(credit=balance if balance.is_positive else None)
        return Outcome(new, "draft_finalized", charge=charge, notes=(_draft_note(invoice_id, "status", "OPEN"),))

    return await SubscriptionService(services).mutate("finalizeInvoice", subscription_id, actor, common, request, build)


# -- payments recorded by staff ----------------------------------------------------------


async def mark_invoice_paid(
    services: Services,
    actor: Actor,
    common: Common,
    invoice_id: int,
    request: Any,
    *,
    paid_on: date,
    reference: str | None,
) -> Result:
    """Record a payment made outside the gateways (a bank transfer): it pays the invoice's renewal.

    The renewal is settled as a paid retry would settle it: the period counts,
    the subscription leaves dunning when nothing else is owed, and the
    customer gets a receipt; the invoice follows its renewal.
    """
    subscription_id = await _subscription_of(services, invoice_id)

    async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
        session = unit.session
        row = (await session.execute(select(INVOICES).where(INVOICES.c.id == invoice_id).with_for_update())).one()
        if row.status not in ("OPEN", "UNCOLLECTIBLE") or row.renewal_id is None:
            raise InvoiceError(
                f"invoice {row.number or invoice_id} is {row.status}: only an OPEN or UNCOLLECTIBLE invoice "
                "can be paid",
                code="INVOICE_NOT_OPEN",
                field=["invoiceId"],
            )
        if paid_on > ctx.today:
            raise InvoiceError("paidAt cannot be in the future", code="INVALID_DATE", field=["paidAt"])
        renewal = await get_renewal(session, row.renewal_id, for_update=True)
        if renewal.status is not RenewalStatus.FAILED:
            raise InvoiceError(
                f"its renewal is {renewal.status.value}: a payment being charged is settled by the gateway",
                code="INVALID_STATUS",
                field=["invoiceId"],
            )
        paid_at = start_of_day(paid_on, services.settings.seller_time_zone)
        await session.execute(
            update(R)
            .where(R.c.id == renewal.id)
            .values(status="PAID", paid_at=paid_at, next_retry_date=None, gateway_id=None, updated_at=unit.now)
        )
        await session.execute(update(INVOICES).where(INVOICES.c.id == invoice_id).values(payment_reference=reference))
        await session.execute(
            insert(TX).values(
                renewal_id=renewal.id,
                subscription_id=subscription_id,
                kind="CHARGE",
                gateway_id=None,
                amount_minor=renewal.amount.minor,
                currency=renewal.amount.currency,
                status="SUCCEEDED",
                gateway_reference=reference,
                created_at=unit.now,
            )
        )
        other_retry = (
            await session.execute(
                select(func.min(R.c.next_retry_date)).where(
                    R.c.subscription_id == subscription_id,
                    text("renewals.status = 'FAILED'"),
                    R.c.next_retry_date.is_not(None),
                    R.c.id != renewal.id,
                )
            )
        ).scalar()
        charge = Charge(
            renewal.kind,
            renewal.cycle,
            renewal.period_start,
            renewal.period_end,
            renewal.amount,
            adjustment=renewal.adjustment,
            fulfillment=renewal.fulfillment,
            renewal_id=renewal.id,
        )
        paid = cycle.cycle_paid(state, charge, None, retry=True, other_retry=other_retry)
        if unit.common.dry_run:
            # The invoice as the payment leaves it (its renewal is paid in this transaction, rolled back).
            await follow_renewals(session, services.settings, [subscription_id], unit.now)
            holder["invoice"] = (await session.execute(select(INVOICES).where(INVOICES.c.id == invoice_id))).one()
        notes = (
            {"field": f"renewals.{renewal.id}.status", "before": "FAILED", "after": "PAID"},
            {
                "field": f"invoices.{invoice_id}.payment",
                "before": None,
                "after": {"paidAt": str(paid_on), "reference": reference},
            },
        )
        return Outcome(paid.state, "invoice_paid", events=paid.events, notes=notes)

    holder: dict[str, Any] = {}
    result = await SubscriptionService(services).mutate(
        "markInvoicePaid", subscription_id, actor, common, request, build
    )
    if "invoice" in holder and result.dry_run:
        result.extra["invoice"] = holder["invoice"]
    return result
