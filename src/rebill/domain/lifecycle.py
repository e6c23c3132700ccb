"""Lifecycle operations: suspend, activate, cancel, renew now, force bill, retry, refund."""

from __future__ import annotations

import enum
from dataclasses import replace

from rebill.domain import contract as contract_rules
from rebill.domain.cadence import add_interval, following
from rebill.domain.errors import SubscriptionError, ValidationError
from rebill.domain.invoice import period_lines, total_of
from rebill.domain.money import Money
from rebill.domain.outcome import OpContext, Outcome, changeable, require_consent
from rebill.domain.renewal import (
    Charge,
    Event,
    FulfillmentStatus,
    Refund,
    RenewalInfo,
    RenewalKind,
    RenewalStatus,
)
from rebill.domain.status import Event as StatusEvent
from rebill.domain.status import SubscriptionStatus, transition
from rebill.domain.subscription import PaymentKind, ProductInfo, SubscriptionState
from rebill.domain.updates import apply_pending, check_price


class RenewNowMode(enum.StrEnum):
    EXTEND = "EXTEND"
    RESTART = "RESTART"


def suspend(state: SubscriptionState, ctx: OpContext) -> Outcome:
    """A suspended subscription never renews until it is activated (seed 003)."""
    status = transition(state.status, StatusEvent.SUSPEND)
    new = state.evolve(status=status, renew_due=False)
    return Outcome(new, "suspended", events=(Event("SUBSCRIPTION_SUSPENDED", {"reason": "manual"}),))


def activate(state: SubscriptionState, ctx: OpContext) -> Outcome:
    """Resume renewals; a next renewal date that has passed is due at once (seed 003)."""
    status = transition(state.status, StatusEvent.ACTIVATE)
    due = state.next_renewal_date is not None and state.next_renewal_date <= ctx.today
    return Outcome(
        state.evolve(status=status, renew_due=due), "activated", events=(Event("SUBSCRIPTION_ACTIVATED", {}),)
    )


def _fulfillment(state: SubscriptionState) -> FulfillmentStatus:
    return FulfillmentStatus.PENDING if state.shipping_address else FulfillmentStatus.NONE


def cancel(
    state: SubscriptionState,
    ctx: OpContext,
    *,
    at_period_end: bool = False,
    refund_last_renewal: bool = False,
    cancel_fulfillment: bool = False,
    last_renewal: RenewalInfo | None = None,
    override_contract: bool = False,
) -> Outcome:
    """Cancel now or at the end of the period (seed 000). Nothing un-cancels a subscription.

    Under contract (DOMAIN.md "Contract terms") a cancellation at period end
    is kept for the date it takes effect (``cancellation_date``), and one now
    is refused with ``CONTRACT_COMMITMENT`` unless ``override_contract``,
    which bills the early termination fee, if any, on an invoice of its own.
    """
    changeable(state, "cancel")
    transition(state.status, StatusEvent.CANCEL)  # refuses final statuses with INVALID_STATUS
    term = contract_rules.commitment(state, ctx.today)
    fee: Charge | None = None
    if term is not None and not at_period_end:
        if not override_contract:
            raise contract_rules.refuse_commitment(
                term, contract_rules.Schedule.of(state), ctx.today, "cancelling now", "overrideContract"
            )
        fee = contract_rules.termination_fee(state, ctx, term)
    refund: Refund | None = None
    updates: list[tuple[RenewalInfo, dict[str, object]]] = []
    if refund_last_renewal:
        refund = _refund_last(last_renewal)
    if cancel_fulfillment:
        if last_renewal is not None and last_renewal.fulfillment is FulfillmentStatus.SHIPPED:
            raise SubscriptionError(
                f"renewal {last_renewal.id} has already shipped: its fulfillment cannot be cancelled",
                code="ALREADY_SHIPPED",
                field=["cancelFulfillment"],
            )
        if last_renewal is not None and last_renewal.fulfillment is FulfillmentStatus.PENDING:
            updates.append((last_renewal, {"fulfillment": FulfillmentStatus.CANCELLED}))
    if at_period_end and term is not None:
        new = contract_rules.schedule_cancellation(state, ctx, term)
        return Outcome(new, "cancel_scheduled", refund=refund, renewal_updates=tuple(updates))
    if at_period_end:
        end = state.current_period_end or state.next_renewal_date or ctx.today
        new = state.evolve(cancel_at_period_end=True, end_date=end, cancellation_date=end)
        return Outcome(new, "cancel_scheduled", refund=refund, renewal_updates=tuple(updates))
    new = state.evolve(
        status=SubscriptionStatus.CANCELLED,
        next_renewal_date=None,
        next_retry_date=None,
        cancelled_at=ctx.now,
        renew_due=False,
        cancel_at_period_end=False,
    )
    payload: dict[str, object] = {"effective": ctx.today.isoformat()}
    if term is not None:
        payload["contractOverridden"] = True
    event = Event("SUBSCRIPTION_CANCELLED", payload)
    return Outcome(new, "cancelled", events=(event,), refund=refund, renewal_updates=tuple(updates), charge=fee)


def resume(state: SubscriptionState, ctx: OpContext) -> Outcome:
    """Undo a scheduled cancellation or end date before it happens (DOMAIN.md "Start dates")."""
    changeable(state, "resume")
    if not state.cancel_at_period_end and state.end_date is None and state.cancellation_date is None:
        raise SubscriptionError(
            f"subscription {state.id} has no scheduled cancellation or end date to undo",
            code="NOTHING_TO_RESUME",
        )
    new = state.evolve(cancel_at_period_end=False, end_date=None, cancellation_date=None)
    return Outcome(new, "resumed", events=(Event("SUBSCRIPTION_RESUMED", {}),))


def _refund_last(last: RenewalInfo | None) -> Refund:
    if last is None or last.status not in (RenewalStatus.PAID, RenewalStatus.PARTIALLY_REFUNDED):
        raise SubscriptionError(
            "there is no paid renewal to refund", code="REFUND_NOT_ALLOWED", field=["refundLastRenewal"]
        )
    if last.gateway_id is None or last.payment_kind is not PaymentKind.CARD:
        raise SubscriptionError(
            "the last renewal was not paid by card through a gateway (external or offline payment): "
            "it cannot be refunded here",
            code="REFUND_NOT_ALLOWED",
            field=["refundLastRenewal"],
        )
    return Refund(last, last.refundable)


def renew_now(
    state: SubscriptionState,
    ctx: OpContext,
    *,
    mode: RenewNowMode = RenewNowMode.EXTEND,
    unit_price: Money | None = None,
    product: ProductInfo | None = None,
    consent_reference: str | None = None,
) -> Outcome:
    """Bill a period now (seed 002).

    ``EXTEND`` bills the period that follows the current one: the next renewal
    moves one interval later. ``RESTART`` starts a fresh period today and moves
    the anchor. ``unit_price`` alone is a one-off custom price for this
    renewal; with ``product`` it is an upgrade or downgrade that stays.
    """
    changeable(state, "renew")
    if state.status is SubscriptionStatus.FUTURE:
        raise SubscriptionError(
            f"cannot renew a subscription that has not started (it starts on {state.start_date})",
            code="INVALID_STATUS",
        )
    if state.status is SubscriptionStatus.SUSPENDED:
        raise SubscriptionError(
            "cannot renew a subscription that is SUSPENDED: activate it first", code="INVALID_STATUS"
        )
    base = state
    if product is not None or unit_price is not None:
        if len(state.items) != 1:
            raise ValidationError(
                "a custom price or product applies to single-item subscriptions: update the item instead",
                code="AMBIGUOUS_ITEM",
                field=["unitPrice"],
            )
        if unit_price is not None:
            check_price(state, unit_price)
    if product is not None:
        item = state.items[0]
        price = unit_price or item.unit_price
        base = state.evolve(
            items=(replace(item, product=product, unit_price=price, price_from_tiers=False, pending_unit_price=None),)
        )
        require_consent(state, base, consent_reference)
    elif unit_price is not None:
        one_off = state.evolve(items=(replace(state.items[0], unit_price=unit_price, pending_unit_price=None),))
        require_consent(state, one_off, consent_reference)

    base = apply_pending(base)
    priced = base
    if product is None and unit_price is not None:
        priced = base.evolve(items=(replace(base.items[0], unit_price=unit_price),))

    lapsed = state.next_renewal_date is None or state.next_renewal_date < ctx.today
    reinstating = state.status is SubscriptionStatus.AWAITING_REINSTATE
    if mode is RenewNowMode.RESTART or lapsed:
        start = ctx.today
        end = add_interval(start, state.cadence, 1)
        new = base.evolve(anchor_date=start)
    else:
        assert state.next_renewal_date is not None
        start = state.next_renewal_date
        end = following(state.anchor_date, state.cadence, state.profile.anchor_policy, start)
        new = base
    kind = RenewalKind.MANUAL if reinstating else RenewalKind.EARLY
    cycle = state.last_cycle + 1
    new = new.evolve(
        next_renewal_date=end,
        current_period_start=start
        if (mode is RenewNowMode.RESTART or lapsed)
        else (state.current_period_start or start),
        current_period_end=end,
        last_cycle=cycle,
        trial_end_date=state.trial_end_date,
        renew_due=False,
    )
    lines = period_lines(priced, start, end)
    charge = Charge(
        kind, cycle, start, end, total_of(lines, priced.currency), fulfillment=_fulfillment(state), lines=lines
    )
    return Outcome(new, "renewed_now", charge=charge)


def ensure_force_billable(state: SubscriptionState) -> None:
    changeable(state, "force bill")
    if state.status is SubscriptionStatus.SUSPENDED:
        raise SubscriptionError(
            "cannot force bill a subscription that is SUSPENDED: activate it first", code="INVALID_STATUS"
        )
    if state.status is SubscriptionStatus.FUTURE:
        raise SubscriptionError(
            f"cannot force bill a subscription that has not started (it starts on {state.start_date})",
            code="INVALID_STATUS",
        )


def force_bill(state: SubscriptionState, ctx: OpContext) -> Outcome:
    """Charge and ship the next cycle now (seed 000): the period starts today, the anchor moves."""
    ensure_force_billable(state)
    base = apply_pending(state)
    start = ctx.today
    end = add_interval(start, state.cadence, 1)
    cycle = state.last_cycle + 1
    new = base.evolve(
        anchor_date=start,
        next_renewal_date=end,
        current_period_start=start,
        current_period_end=end,
        last_cycle=cycle,
        renew_due=False,
    )
    lines = period_lines(base, start, end)
    charge = Charge(
        RenewalKind.FORCED,
        cycle,
        start,
        end,
        total_of(lines, base.currency),
        fulfillment=FulfillmentStatus.PENDING,
        lines=lines,
    )
    return Outcome(new, "force_billed", charge=charge)


def paid(state: SubscriptionState, charge: Charge, gateway_id: str | None) -> SubscriptionState:
    """The state once a charge succeeded: the occurrence counts, coupons use a cycle.

    A proration charge is no occurrence; but once nothing is overdue any more
    the subscription is active again, whichever charge settled it.
    """
    if charge.adjustment:
        if state.status is SubscriptionStatus.OVERDUE and state.overdue_count == 0:
            return state.evolve(
                status=transition(state.status, StatusEvent.PAYMENT_SUCCEEDED),
                last_gateway_id=gateway_id or state.last_gateway_id,
            )
        return state
    status = state.status
    if status in (SubscriptionStatus.TRIAL, SubscriptionStatus.AWAITING_REINSTATE) or (
        status is SubscriptionStatus.OVERDUE and state.overdue_count == 0
    ):
        status = transition(status, StatusEvent.PAYMENT_SUCCEEDED)
    coupons = tuple(replace(c, cycles_used=c.cycles_used + 1) if c.active else c for c in state.coupons)
    return state.evolve(
        status=status,
        occurrences_billed=state.occurrences_billed + 1,
        coupons=coupons,
        last_gateway_id=gateway_id or state.last_gateway_id,
    )


def retry_renewal(state: SubscriptionState, ctx: OpContext, *, renewal: RenewalInfo) -> Outcome:
    """Charge a failed renewal again now (the "salvage transaction", seed 003)."""
    changeable(state, "retry a renewal")
    if renewal.status is not RenewalStatus.FAILED:
        raise SubscriptionError(
            f"renewal {renewal.id} is {renewal.status.value}: only a FAILED renewal can be retried",
            code="INVALID_STATUS",
            field=["renewalId"],
        )
    overdue = max(state.overdue_count - 1, 0)
    new = state.evolve(overdue_count=overdue, next_retry_date=state.next_retry_date if overdue else None)
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
    # Written only when the charge succeeds: a declined salvage attempt is
    # recorded on the renewal and leaves the dunning schedule as it was.
    receipt = Event(
        "RENEWAL_RECEIPT",
        {
            "renewalId": renewal.id,
            "cycle": renewal.cycle,
            "kind": renewal.kind.value,
            "amount": renewal.amount.amount_str,
            "currency": renewal.amount.currency,
            "periodStart": renewal.period_start.isoformat(),
            "periodEnd": renewal.period_end.isoformat(),
            "retry": True,
        },
    )
    return Outcome(new, "renewal_retried", charge=charge, events=(receipt,))


def refund_renewal(
    state: SubscriptionState, ctx: OpContext, *, renewal: RenewalInfo, amount: Money | None = None
) -> Outcome:
    """Refund a renewal fully or partly (seed 003); never more than was paid."""
    if renewal.status not in (RenewalStatus.PAID, RenewalStatus.PARTIALLY_REFUNDED):
        raise SubscriptionError(
            f"renewal {renewal.id} is {renewal.status.value}: only a paid renewal can be refunded",
            code="REFUND_NOT_ALLOWED",
            field=["renewalId"],
        )
    if renewal.gateway_id is None or renewal.payment_kind is not PaymentKind.CARD:
        raise SubscriptionError(
            f"renewal {renewal.id} was paid outside a gateway (external or offline payment): refund it there",
            code="REFUND_NOT_ALLOWED",
            field=["renewalId"],
        )
    refundable = renewal.refundable
    if amount is None:
        amount = refundable
    if amount.currency != renewal.amount.currency:
        raise SubscriptionError(
            f"the renewal was paid in {renewal.amount.currency}, not {amount.currency}",
            code="CURRENCY_MISMATCH",
            field=["amount"],
        )
    if not amount.is_positive:
        raise ValidationError("a refund must be more than zero", code="INVALID_AMOUNT", field=["amount"])
    if amount > refundable:
        raise SubscriptionError(
            f"cannot refund {amount.amount_str}: only {refundable.amount_str} {amount.currency} of renewal "
            f"{renewal.id} is left to refund",
            code="REFUND_EXCEEDS_PAID",
            field=["amount"],
        )
    return Outcome(state, "renewal_refunded", refund=Refund(renewal, amount))


def mark_fulfillment(
    state: SubscriptionState, ctx: OpContext, *, renewal: RenewalInfo, status: FulfillmentStatus
) -> Outcome:
    """Record that a renewal's shipment went out (or was cancelled)."""
    if renewal.fulfillment is FulfillmentStatus.NONE:
        raise SubscriptionError(f"renewal {renewal.id} ships nothing", code="NOTHING_TO_SHIP", field=["renewalId"])
    if renewal.fulfillment is FulfillmentStatus.SHIPPED and status is FulfillmentStatus.CANCELLED:
        raise SubscriptionError(f"renewal {renewal.id} has already shipped", code="ALREADY_SHIPPED", field=["status"])
    return Outcome(state, "fulfillment_updated", renewal_updates=((renewal, {"fulfillment": status}),))
