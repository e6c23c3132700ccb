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
from rebill.domain.errors import NotFound, RebillError
from rebill.domain.invoice import InvoiceStatus
from rebill.domain.outcome import OpContext, Outcome
from rebill.domain.renewal import Event
from rebill.domain.subscription import SubscriptionState
from rebill.services.runtime import Actor, Common, Result, Services
from rebill.services.subscriptions import SubscriptionService, Unit

INVOICES = t.table_of(t.Invoice)
R = t.table_of(t.Renewal)


class InvoiceError(RebillError):
    pass


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
