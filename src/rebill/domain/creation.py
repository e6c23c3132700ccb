"""Starting a subscription, and replacing one by a product change (seed 003)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from rebill.domain import contract as contract_rules
from rebill.domain.cadence import add_interval, period_containing
from rebill.domain.errors import NotFound, SubscriptionError, ValidationError
from rebill.domain.invoice import period_lines, total_of
from rebill.domain.money import Money
from rebill.domain.outcome import OpContext, Outcome, changeable, require_consent
from rebill.domain.renewal import Charge, Event, FulfillmentStatus, RenewalKind
from rebill.domain.shipping import check_serves
from rebill.domain.status import Event as StatusEvent
from rebill.domain.status import SubscriptionStatus, transition
from rebill.domain.subscription import (
    Item,
    PaymentMethodInfo,
    ProductInfo,
    ProductKind,
    ProfileTerms,
    RenewalType,
    SubscriptionState,
)
from rebill.domain.tax import TaxRate
from rebill.domain.updates import check_date_range, check_quantity, new_item


@dataclass(frozen=True, slots=True)
class NewItem:
    product: ProductInfo
    unit_price: Money | None
    quantity: int


def start_subscription(
    ctx: OpContext,
    *,
    customer_id: int,
    profile: ProfileTerms,
    items: Sequence[NewItem],
    start_date: date | None = None,
    trial_days: int | None = None,
    payment_method: PaymentMethodInfo | None = None,
    renewal_type: RenewalType | None = None,
    metadata: Mapping[str, Any] | None = None,
    bill_first_period: bool = True,
    time_zone: str = "UTC",
    currency: str | None = None,
    tax_rate: TaxRate | None = None,
) -> Outcome:
    """A new subscription, and its first charge when one is due now.

    Without a trial the first period (``start`` to one interval later) is
    billed at once as the ``INITIAL`` renewal, cycle 1. With a trial the first
    charge is at the trial end. ``bill_first_period=False`` imports a running
    subscription: nothing is charged and the first renewal is one interval
    after the start (or at the trial end).
    """
    if not items:
        raise ValidationError("a subscription needs at least one item", code="ITEMS_REQUIRED", field=["items"])
    if not profile.active:
        raise SubscriptionError(f"profile {profile.name} is not active", code="PROFILE_INACTIVE", field=["profileId"])
    start = start_date or ctx.today
    check_date_range(start, "startDate")
    if trial_days is not None and not 0 <= trial_days <= 3650:
        raise ValidationError("trialDays must be between 0 and 3650", code="INVALID_TRIAL", field=["trialDays"])
    if payment_method is not None and payment_method.customer_id != customer_id:
        raise SubscriptionError(
            "that payment method belongs to another customer",
            code="PAYMENT_METHOD_NOT_OWNED",
            field=["paymentMethodId"],
        )
    prices = [i.unit_price for i in items if i.unit_price is not None]
    if currency is None:
        if prices:
            currency = prices[0].currency
        else:
            # Priced by volume tiers only: the tiers say the currency, if they agree on one.
            tier_currencies = {t.unit_price.currency for it in items for t in it.product.tiers}
            if len(tier_currencies) != 1:
                raise ValidationError(
                    "give a unitPrice for at least one item (its currency is the subscription's)",
                    code="PRICE_REQUIRED",
                    field=["items"],
                )
            currency = tier_currencies.pop()
    for index, it in enumerate(items):
        try:
            check_quantity(it.quantity, "quantity")
        except ValidationError as exc:
            raise exc.with_field("items", str(index)) from None
        if it.unit_price is not None and it.unit_price.currency != currency:
            raise SubscriptionError(
                f"all items must be in one currency: item {index} is in {it.unit_price.currency}, item 0 in {currency}",
                code="CURRENCY_MISMATCH",
                field=["items", str(index), "unitPrice"],
            )
    trial = profile.trial_days if trial_days is None else trial_days
    state = SubscriptionState(
        id=None,
        customer_id=customer_id,
        currency=currency,
        status=SubscriptionStatus.ACTIVE,
        renewal_type=renewal_type or profile.default_renewal_type,
        profile=profile,
        items=(),
        start_date=start,
        anchor_date=start,
        next_renewal_date=None,
        payment_method=payment_method,
        metadata=dict(metadata) if metadata is not None else None,
        time_zone=time_zone,
        tax_rate=tax_rate,
    )
    check_serves(profile.shipping_profile, currency, "profileId")
    built: list[Item] = []
    for index, it in enumerate(items):
        try:
            item = new_item(state.evolve(items=tuple(built)), it.product, it.unit_price, it.quantity)
        except (ValidationError, SubscriptionError) as exc:
            raise exc.with_field("items", str(index)) from None
        built.append(item)
    state = state.evolve(items=tuple(built))

    if start > ctx.today:
        # FUTURE (DOMAIN.md "Start dates"): nothing is billed until the start
        # date, when the renewal engine starts it (cycle.start). An import's
        # first period is known now: it is paid elsewhere.
        trial_end = start + timedelta(days=trial) if trial > 0 else None
        if trial_end is not None:
            check_date_range(trial_end, "trialDays")
        state = state.evolve(
            status=SubscriptionStatus.FUTURE,
            next_renewal_date=start,
            trial_end_date=trial_end,
            anchor_date=trial_end or start,
        )
        if trial_end is None and not bill_first_period:
            end = add_interval(start, profile.cadence, 1)
            check_date_range(end, "startDate")
            state = state.evolve(current_period_start=start, current_period_end=end)
        return Outcome(state, "created")
    anchor = start
    if trial > 0:
        trial_end = start + timedelta(days=trial)
        check_date_range(trial_end, "trialDays")
        if trial_end > ctx.today:
            state = state.evolve(
                status=SubscriptionStatus.TRIAL,
                trial_end_date=trial_end,
                next_renewal_date=trial_end,
                anchor_date=trial_end,
                current_period_start=start,
                current_period_end=trial_end,
            )
            return Outcome(state, "created")
        # A backdated trial that is already over: billing runs from its end.
        anchor = trial_end
        state = state.evolve(trial_end_date=trial_end, anchor_date=trial_end)
    # A start date in the past never bills the periods that ended before
    # today: the first period is the one that contains today.
    period = period_containing(anchor, profile.cadence, profile.anchor_policy, ctx.today)
    check_date_range(period.end, "startDate")
    state = state.evolve(next_renewal_date=period.end, current_period_start=period.start, current_period_end=period.end)
    if not bill_first_period:
        return Outcome(state, "created")
    return Outcome(state.evolve(last_cycle=1), "created", charge=initial_charge(state))


def initial_charge(state: SubscriptionState) -> Charge:
    """The first period's charge: the INITIAL renewal, cycle 1."""
    assert state.current_period_start is not None and state.current_period_end is not None
    lines = period_lines(state, state.current_period_start, state.current_period_end)
    return Charge(
        RenewalKind.INITIAL,
        1,
        state.current_period_start,
        state.current_period_end,
        total_of(lines, state.currency),
        fulfillment=FulfillmentStatus.NONE,
        lines=lines,
    )


def start_future(state: SubscriptionState, ctx: OpContext) -> Outcome:
    """A FUTURE subscription's start date has come (DOMAIN.md "Start dates").

    With a trial it is in ``TRIAL`` until the trial end; an import whose
    first period is paid elsewhere is ``ACTIVE`` until that period ends;
    otherwise its first period is billed now as the ``INITIAL`` renewal.
    """
    start = state.start_date
    event = Event("SUBSCRIPTION_STARTED", {"startDate": start.isoformat()})
    if state.trial_end_date is not None and state.trial_end_date > start:
        new = state.evolve(
            status=transition(state.status, StatusEvent.START_TRIAL),
            next_renewal_date=state.trial_end_date,
            current_period_start=start,
            current_period_end=state.trial_end_date,
        )
        return Outcome(new, "started", events=(event,))
    if state.current_period_end is not None:
        new = state.evolve(
            status=transition(state.status, StatusEvent.START), next_renewal_date=state.current_period_end
        )
        return Outcome(new, "started", events=(event,))
    end = add_interval(start, state.cadence, 1)
    new = state.evolve(
        status=transition(state.status, StatusEvent.START),
        next_renewal_date=end,
        current_period_start=start,
        current_period_end=end,
        last_cycle=1,
    )
    return Outcome(new, "started", events=(event,), charge=initial_charge(new))


def change_start_date(state: SubscriptionState, ctx: OpContext, start: date) -> SubscriptionState:
    """Move a FUTURE subscription's start; once started, the start date is history."""
    if state.status is not SubscriptionStatus.FUTURE:
        raise SubscriptionError(
            f"subscription {state.id} started on {state.start_date}: its start date can no longer change",
            code="START_DATE_LOCKED",
            field=["startDate"],
        )
    if start <= ctx.today:
        raise ValidationError(
            "a start date can only move to a later day than today (to start now, give tomorrow or cancel "
            "and create it again)",
            code="DATE_IN_PAST",
            field=["startDate"],
        )
    check_date_range(start, "startDate")
    shift = start - state.start_date
    trial_end = state.trial_end_date + shift if state.trial_end_date is not None else None
    period_end = add_interval(start, state.cadence, 1) if state.current_period_end is not None else None
    return state.evolve(
        start_date=start,
        next_renewal_date=start,
        trial_end_date=trial_end,
        anchor_date=trial_end or start,
        current_period_start=start if period_end is not None else None,
        current_period_end=period_end,
    )


def change_product(
    state: SubscriptionState,
    ctx: OpContext,
    *,
    item_id: int,
    product: ProductInfo,
    unit_price: Money | None = None,
    quantity: int | None = None,
    transfer_coupons: bool = False,
    consent_reference: str | None = None,
    override_contract: bool = False,
) -> Outcome:
    """End this subscription and start its replacement with the new product (seed 003).

    The replacement continues the schedule (same next renewal date, nothing
    charged now); coupons move over only when asked. Under contract the old
    subscription's end is refused with ``CONTRACT_COMMITMENT`` unless
    ``override_contract``; the contract (and its commitment) moves to the
    replacement, so no termination fee is billed.
    """
    changeable(state, "change the product")
    term = contract_rules.commitment(state, ctx.today)
    if term is not None and not override_contract:
        raise contract_rules.refuse_commitment(
            term, contract_rules.Schedule.of(state), ctx.today, "ending it for a product change", "overrideContract"
        )
    old_item = state.item(item_id)
    if old_item is None:
        raise NotFound(f"subscription {state.id} has no item {item_id}", field=["itemId"])
    if old_item.product.id == product.id:
        raise SubscriptionError("the item already has this product", code="NO_CHANGE", field=["productId"])
    qty = old_item.quantity if quantity is None else quantity
    check_quantity(qty)
    if product.kind is ProductKind.USAGE and quantity is not None and quantity != old_item.quantity:
        raise SubscriptionError(
            f"{product.name} is billed by usage: its quantity cannot be set", code="QUANTITY_NOT_CHANGEABLE"
        )
    has_tiers = any(t.unit_price.currency == state.currency for t in product.tiers)
    price = unit_price if unit_price is not None or has_tiers else old_item.unit_price
    replacement_item = new_item(state, product, price, qty)
    items = tuple(
        replace(replacement_item, temp=0, id=None) if i.ref == old_item.ref else replace(i, id=None, temp=n + 1)
        for n, i in enumerate(state.items)
    )
    items = tuple(replace(i, temp=n + 1) for n, i in enumerate(items))
    replacement = replace(
        state,
        id=None,
        items=items,
        coupons=tuple(replace(c, id=None) for c in state.coupons) if transfer_coupons else (),
        start_date=ctx.today,
        occurrences_billed=0,
        last_cycle=0,
        overdue_count=0,
        next_retry_date=None,
        version=1,
        replaces_id=state.id,
        replaced_by_id=None,
        renew_due=False,
        created_at=None,
        updated_at=None,
    )
    if replacement.status is SubscriptionStatus.OVERDUE:
        replacement = replacement.evolve(status=SubscriptionStatus.ACTIVE)
    require_consent(state, replacement, consent_reference)
    ended = state.evolve(
        status=SubscriptionStatus.CANCELLED,
        next_renewal_date=None,
        next_retry_date=None,
        cancelled_at=ctx.now,
        renew_due=False,
        contract=None,
        cancellation_date=None,
    )
    return Outcome(ended, "replaced", replacement=replacement)
