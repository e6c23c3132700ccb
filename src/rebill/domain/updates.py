"""Local updates: one part of a subscription at a time (seed 001)."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from rebill.domain import contract as contract_rules
from rebill.domain.cadence import Cadence, IntervalUnit, Period, add_interval
from rebill.domain.errors import ConsentRequired, NotFound, SubscriptionError, ValidationError
from rebill.domain.invoice import change_terms, proration_line, taxed, terms_of, total_of
from rebill.domain.money import Money
from rebill.domain.outcome import OpContext, Outcome, changeable, require_consent
from rebill.domain.pricing import tier_unit_price
from rebill.domain.proration import Proration, prorate
from rebill.domain.renewal import Charge, RenewalKind
from rebill.domain.shipping import ShippingProfile, check_serves
from rebill.domain.status import SubscriptionStatus
from rebill.domain.subscription import (
    AppliedCoupon,
    CouponInfo,
    GatewayMode,
    Item,
    PaymentMethodInfo,
    ProductInfo,
    ProductKind,
    ProfileTerms,
    RenewalType,
    SubscriptionState,
)

MIN_DATE = date(1970, 1, 1)
MAX_DATE = date(2200, 12, 31)


class Effective(enum.StrEnum):
    IMMEDIATE = "IMMEDIATE"
    NEXT_RENEWAL = "NEXT_RENEWAL"


@dataclass(frozen=True, slots=True)
class Shift:
    """A relative move such as +3 months or -14 days (count may be negative, not zero)."""

    unit: IntervalUnit
    count: int
    _cadence: Cadence = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.count == 0:
            raise ValidationError("a shift needs a non-zero count", code="INVALID_SHIFT", field=["count"])
        if abs(self.count) > 1000:
            raise ValidationError("a shift may not exceed 1000 units", code="INVALID_SHIFT", field=["count"])
        object.__setattr__(self, "_cadence", Cadence(self.unit, abs(self.count)))

    def apply(self, d: date) -> date:
        return add_interval(d, self._cadence, 1 if self.count > 0 else -1)


def check_date_range(d: date, field: str) -> None:
    if not MIN_DATE <= d <= MAX_DATE:
        raise ValidationError(
            f"{field} {d.isoformat()} is outside the supported range 1970-01-01 to 2200-12-31",
            code="DATE_OUT_OF_RANGE",
            field=[field],
        )


def check_quantity(quantity: int, field: str = "quantity") -> None:
    if quantity < 0:
        raise ValidationError(f"quantity must be zero or more, not {quantity}", code="INVALID_QUANTITY", field=[field])
    if quantity > 10_000_000:
        raise ValidationError("quantity is too large", code="INVALID_QUANTITY", field=[field])


def check_price(state: SubscriptionState, price: Money, field: str = "unitPrice") -> None:
    if price.currency != state.currency:
        raise SubscriptionError(
            f"the subscription bills in {state.currency}, not {price.currency}",
            code="CURRENCY_MISMATCH",
            field=[field],
        )
    if price.is_negative:
        raise ValidationError("a unit price may not be negative", code="INVALID_AMOUNT", field=[field])


def _find_item(state: SubscriptionState, item_id: int) -> Item:
    item = state.item(item_id)
    if item is None:
        raise NotFound(f"subscription {state.id} has no item {item_id}", field=["itemId"])
    return item


def _replace_item(state: SubscriptionState, new_item: Item) -> SubscriptionState:
    return state.evolve(items=tuple(new_item if i.ref == new_item.ref else i for i in state.items))


def _next_temp(state: SubscriptionState) -> int:
    return max((i.temp for i in state.items), default=0) + 1


def proration_charge(
    before: SubscriptionState, after: SubscriptionState, proration: Proration, ctx: OpContext
) -> Charge | None:
    """The charge (or credit, negative) for a change in the middle of the current period.

    Nothing is charged during a trial or before a first period was billed.
    """
    if proration is Proration.NONE or before.in_trial:
        return None
    start, end = before.current_period_start, before.current_period_end
    if start is None or end is None or not start <= ctx.today < end:
        return None
    amount = prorate(before.current_bill().total, after.current_bill().total, Period(start, end), ctx.today, proration)
    if amount.is_zero:
        return None
    # Taxed like the period it changes (no shipping: nothing more is delivered); a credit gives back its tax too.
    lines = taxed((proration_line(abs(amount), ctx.today, end),), before.tax_rate)
    gross = total_of(lines, amount.currency)
    return Charge(
        kind=RenewalKind.MANUAL,
        cycle=max(before.occurrences_billed, 1),
        period_start=ctx.today,
        period_end=end,
        amount=gross if amount.is_positive else -gross,
        adjustment=True,
        lines=lines if amount.is_positive else (),
    )


# -- next renewal date -------------------------------------------------------


def change_next_renewal_date(
    state: SubscriptionState,
    ctx: OpContext,
    *,
    date_: date | None = None,
    shift: Shift | None = None,
) -> Outcome:
    """Move the next renewal (seed 000); it becomes the new anchor, and a trial moves with it."""
    changeable(state, "change the next renewal date")
    if state.status is SubscriptionStatus.FUTURE:
        raise SubscriptionError(
            f"subscription {state.id} starts on {state.start_date}: move its start date (startDate) instead",
            code="INVALID_STATUS",
            field=["date"],
        )
    if (date_ is None) == (shift is None):
        raise ValidationError("give exactly one of date or shift", code="INVALID_INPUT", field=["date"])
    if date_ is None:
        assert shift is not None
        base = state.next_renewal_date or ctx.today
        date_ = shift.apply(base)
    check_date_range(date_, "date")
    if date_ < ctx.today:
        raise SubscriptionError(
            f"the next renewal date may not be in the past ({date_.isoformat()} is before {ctx.today.isoformat()})",
            code="DATE_IN_PAST",
            field=["date"],
        )
    changes = next_renewal_changes(
        date_, in_trial=state.in_trial, period_start=state.current_period_start, period_end=state.current_period_end
    )
    return Outcome(state.evolve(**changes), "next_renewal_date_changed")


def next_renewal_changes(
    date_: date, *, in_trial: bool, period_start: date | None, period_end: date | None
) -> dict[str, date]:
    """What moving the next renewal to ``date_`` sets: it becomes the anchor, a trial ends on it, and the
    current period ends on it (never before it starts). Bulk runs apply it to rows they never make states of."""
    changes = {"next_renewal_date": date_, "anchor_date": date_}
    if in_trial:
        changes["trial_end_date"] = date_
    if period_end is not None and period_start is not None:
        changes["current_period_end"] = max(date_, period_start)
    return changes


# -- items -------------------------------------------------------------------


def update_item(
    state: SubscriptionState,
    ctx: OpContext,
    *,
    item_id: int,
    unit_price: Money | None = None,
    quantity: int | None = None,
    effective: Effective = Effective.IMMEDIATE,
    proration: Proration = Proration.NONE,
    consent_reference: str | None = None,
) -> Outcome:
    """Change an item's price and/or quantity, now or at the next renewal (seeds 001, 002)."""
    changeable(state, "update an item")
    item = _find_item(state, item_id)
    if unit_price is None and quantity is None:
        raise ValidationError("give unitPrice, quantity or both", code="INVALID_INPUT", field=["unitPrice"])
    if unit_price is not None:
        check_price(state, unit_price)
    if quantity is not None:
        check_quantity(quantity)
        if quantity != item.quantity and item.product.kind is ProductKind.USAGE:
            raise SubscriptionError(
                f"{item.product.name} is billed by usage: its quantity cannot be set",
                code="QUANTITY_NOT_CHANGEABLE",
                field=["quantity"],
            )
    if effective is Effective.NEXT_RENEWAL:
        changed = replace(
            item,
            pending_unit_price=unit_price if unit_price is not None else item.pending_unit_price,
            pending_quantity=quantity if quantity is not None else item.pending_quantity,
            price_from_tiers=item.price_from_tiers and unit_price is None,
        )
        new = _replace_item(state, changed)
        require_consent(state, new, consent_reference)
        return Outcome(new, "item_updated")
    changed = replace(
        item,
        unit_price=unit_price if unit_price is not None else item.unit_price,
        quantity=quantity if quantity is not None else item.quantity,
        price_from_tiers=item.price_from_tiers and unit_price is None,
        pending_unit_price=None if unit_price is not None else item.pending_unit_price,
        pending_quantity=None if quantity is not None else item.pending_quantity,
    )
    if changed.price_from_tiers and changed.product.tiers:
        changed = replace(changed, unit_price=tier_unit_price(changed.product.tiers, changed.quantity))
    new = _replace_item(state, changed)
    require_consent(state, new, consent_reference)
    return Outcome(new, "item_updated", charge=proration_charge(state, new, proration, ctx))


def add_item(
    state: SubscriptionState,
    ctx: OpContext,
    *,
    product: ProductInfo,
    unit_price: Money | None,
    quantity: int,
    effective: Effective = Effective.IMMEDIATE,
    proration: Proration = Proration.NONE,
    consent_reference: str | None = None,
) -> Outcome:
    """Add a product to a live subscription (seed 001); adding raises the bill, so it needs consent."""
    changeable(state, "add an item")
    check_quantity(quantity)
    item = new_item(state, product, unit_price, quantity)
    if effective is Effective.NEXT_RENEWAL:
        item = replace(item, quantity=0, pending_quantity=quantity)
    new = state.evolve(items=(*state.items, item))
    require_consent(state, new, consent_reference)
    charge = proration_charge(state, new, proration, ctx) if effective is Effective.IMMEDIATE else None
    return Outcome(new, "item_added", charge=charge)


def new_item(state: SubscriptionState, product: ProductInfo, unit_price: Money | None, quantity: int) -> Item:
    """An item priced explicitly, or by the product's volume tiers when no price is given."""
    if unit_price is None:
        tiers = tuple(t for t in product.tiers if t.unit_price.currency == state.currency)
        if not tiers:
            raise ValidationError(
                f"{product.name} has no price tiers in {state.currency}: give unitPrice",
                code="PRICE_REQUIRED",
                field=["unitPrice"],
            )
        return Item(
            None, product, tier_unit_price(tiers, quantity), quantity, price_from_tiers=True, temp=_next_temp(state)
        )
    check_price(state, unit_price)
    return Item(None, product, unit_price, quantity, temp=_next_temp(state))


def remove_item(
    state: SubscriptionState,
    ctx: OpContext,
    *,
    item_id: int,
    effective: Effective = Effective.IMMEDIATE,
    proration: Proration = Proration.NONE,
) -> Outcome:
    changeable(state, "remove an item")
    item = _find_item(state, item_id)
    remaining = [i for i in state.items if i.ref != item.ref and i.pending_quantity != 0]
    if not remaining:
        raise SubscriptionError(
            "the last item of a subscription cannot be removed: cancel the subscription instead",
            code="LAST_ITEM",
            field=["itemId"],
        )
    if effective is Effective.NEXT_RENEWAL:
        return Outcome(_replace_item(state, replace(item, pending_quantity=0)), "item_removed")
    new = state.evolve(items=tuple(i for i in state.items if i.ref != item.ref))
    return Outcome(new, "item_removed", charge=proration_charge(state, new, proration, ctx))


def apply_pending(state: SubscriptionState) -> SubscriptionState:
    """Changes scheduled for the next renewal take effect (called when it is billed)."""
    if not any(i.pending_quantity is not None or i.pending_unit_price is not None for i in state.items):
        return state
    items = []
    for item in state.items:
        if item.pending_quantity == 0:
            continue
        quantity = item.pending_quantity if item.pending_quantity is not None else item.quantity
        price = item.pending_unit_price or item.unit_price
        if item.price_from_tiers and item.product.tiers:
            price = tier_unit_price(item.product.tiers, quantity)
        items.append(replace(item, unit_price=price, quantity=quantity, pending_quantity=None, pending_unit_price=None))
    return state.evolve(items=tuple(items))


# -- coupons -----------------------------------------------------------------


def apply_coupon(state: SubscriptionState, ctx: OpContext, *, coupon: CouponInfo, active: bool = True) -> Outcome:
    changeable(state, "apply a coupon")
    if not active:
        raise SubscriptionError(f"coupon {coupon.code} is no longer active", code="COUPON_INACTIVE", field=["code"])
    if any(c.coupon.id == coupon.id for c in state.coupons):
        raise SubscriptionError(
            f"coupon {coupon.code} is already applied", code="COUPON_ALREADY_APPLIED", field=["code"]
        )
    if coupon.amount_off is not None and coupon.amount_off.currency != state.currency:
        raise SubscriptionError(
            f"coupon {coupon.code} is in {coupon.amount_off.currency}, the subscription in {state.currency}",
            code="CURRENCY_MISMATCH",
            field=["code"],
        )
    return Outcome(state.evolve(coupons=(*state.coupons, AppliedCoupon(None, coupon))), "coupon_applied")


def remove_coupon(state: SubscriptionState, ctx: OpContext, *, code: str) -> Outcome:
    changeable(state, "remove a coupon")
    kept = tuple(c for c in state.coupons if c.coupon.code != code)
    if len(kept) == len(state.coupons):
        raise NotFound(f"coupon {code} is not applied to this subscription", field=["code"])
    return Outcome(state.evolve(coupons=kept), "coupon_removed")


# -- profile, addresses, payment, gateway ------------------------------------


def change_profile(state: SubscriptionState, ctx: OpContext, *, profile: ProfileTerms) -> Outcome:
    """Switch to another (or a custom) profile; the next renewal date is kept."""
    changeable(state, "change the profile")
    if profile.id == state.profile.id and not profile.custom:
        raise SubscriptionError("the subscription already uses this profile", code="NO_CHANGE", field=["profileId"])
    if state.shipping_override is None:
        check_serves(profile.shipping_profile, state.currency, "profileId")
    return Outcome(state.evolve(profile=profile), "profile_changed")


def set_shipping_profile(
    state: SubscriptionState, ctx: OpContext, *, profile: ShippingProfile | None, consent_reference: str | None
) -> Outcome:
    """Give the subscription a shipping profile of its own, or (None) go back to its profile's (seed 003).

    The profile must have a rate in the subscription's currency; one that
    raises what a renewal bills for shipping needs consent, like a price increase.
    """
    changeable(state, "set the shipping profile")
    current = state.shipping_override.id if state.shipping_override else None
    if (profile.id if profile else None) == current:
        raise SubscriptionError(
            "the subscription already has this shipping profile", code="NO_CHANGE", field=["shippingProfileId"]
        )
    new = state.evolve(shipping_override=profile)
    check_serves(new.shipping_profile, state.currency)
    old_rate, new_rate = state.shipping_rate, new.shipping_rate
    old = old_rate.amount if old_rate else Money.zero(state.currency)
    raised = new_rate.amount if new_rate else Money.zero(state.currency)
    if raised > old and not (consent_reference and consent_reference.strip()):
        raise ConsentRequired(
            f"this raises what a renewal bills for shipping from {old.amount_str} to {raised.amount_str} "
            f"{state.currency}: pass consentReference (who agreed, when, how)",
            field=["consentReference"],
        )
    return Outcome(new, "shipping_profile_set")


ADDRESS_FIELDS = ("line1", "line2", "city", "region", "postalCode", "country")


def update_shipping_address(state: SubscriptionState, ctx: OpContext, *, address: Mapping[str, Any]) -> Outcome:
    changeable(state, "update the shipping address")
    clean = {k: (str(address[k]).strip() if address.get(k) is not None else None) for k in ADDRESS_FIELDS}
    for required in ("line1", "city", "country"):
        if not clean.get(required):
            raise ValidationError(f"{required} is required", code="INVALID_ADDRESS", field=["address", required])
    country = clean["country"] or ""
    if len(country) != 2 or not country.isalpha():
        raise ValidationError(
            "country must be an ISO 3166 two-letter code", code="INVALID_ADDRESS", field=["address", "country"]
        )
    clean["country"] = country.upper()
    return Outcome(state.evolve(shipping_address=clean), "shipping_address_updated")


def set_payment_method(state: SubscriptionState, ctx: OpContext, *, payment_method: PaymentMethodInfo) -> Outcome:
    changeable(state, "set the payment method")
    if payment_method.customer_id != state.customer_id:
        raise SubscriptionError(
            "that payment method belongs to another customer",
            code="PAYMENT_METHOD_NOT_OWNED",
            field=["paymentMethodId"],
        )
    return Outcome(state.evolve(payment_method=payment_method), "payment_method_set")


def set_gateway(
    state: SubscriptionState,
    ctx: OpContext,
    *,
    gateway_id: str | None,
    mode: GatewayMode | None,
    known_gateways: Iterable[str],
) -> Outcome:
    """Force or prefer a gateway (seed 003), or clear the preference."""
    changeable(state, "set the gateway")
    if gateway_id is None:
        return Outcome(state.evolve(gateway_id=None, gateway_mode=None), "gateway_cleared")
    known = set(known_gateways)
    if gateway_id not in known:
        raise ValidationError(
            f"unknown gateway {gateway_id!r}; configured: {', '.join(sorted(known))}",
            code="UNKNOWN_GATEWAY",
            field=["gatewayId"],
        )
    return Outcome(state.evolve(gateway_id=gateway_id, gateway_mode=mode or GatewayMode.PREFERRED), "gateway_set")


def set_renewal_type(
    state: SubscriptionState,
    ctx: OpContext,
    *,
    renewal_type: RenewalType,
    item_ids: Sequence[int] | None = None,
) -> Outcome:
    """Turn automatic renewal off or on, for the whole subscription or chosen items (seed 002).

    Turning it off stops billing and keeps every piece of data.
    """
    changeable(state, "set the renewal type")
    if item_ids:
        wanted = set(item_ids)
        unknown = wanted - {i.id for i in state.items}
        if unknown:
            raise NotFound(f"subscription has no item {sorted(unknown)[0]}", field=["itemIds"])
        auto = renewal_type is RenewalType.AUTOMATIC
        items = tuple(replace(i, auto_renew=auto) if i.id in wanted else i for i in state.items)
        return Outcome(state.evolve(items=items), "renewal_type_set")
    items = (
        tuple(replace(i, auto_renew=True) for i in state.items)
        if renewal_type is RenewalType.AUTOMATIC
        else state.items
    )
    return Outcome(state.evolve(renewal_type=renewal_type, items=items), "renewal_type_set")


def set_end_date(
    state: SubscriptionState,
    ctx: OpContext,
    *,
    end_date: date | None = None,
    after: Shift | None = None,
    override_contract: bool = False,
) -> Outcome:
    """Forever (both None), after a relative duration from the start, or on a date (seed 001).

    Under contract, an end before the term's end is refused with ``CONTRACT_COMMITMENT`` unless
    ``override_contract``, which bills the early termination fee, if any (DOMAIN.md "Contract terms").
    """
    changeable(state, "set the end date")
    if end_date is not None and after is not None:
        raise ValidationError("give endDate or after, not both", code="INVALID_INPUT", field=["endDate"])
    if after is not None:
        end_date = after.apply(state.start_date)
    if end_date is not None:
        check_date_range(end_date, "endDate")
        limit = state.current_period_end or state.next_renewal_date or state.start_date
        if end_date < limit:
            raise SubscriptionError(
                f"the end date may not be before the end of the current billing period ({limit.isoformat()}): "
                "cancel the subscription instead",
                code="END_BEFORE_PERIOD_END",
                field=["endDate"],
            )
    term = contract_rules.commitment(state, ctx.today)
    if end_date is not None and term is not None and end_date < term.end_date:
        if not override_contract:
            raise contract_rules.refuse_commitment(
                term, contract_rules.Schedule.of(state), ctx.today, f"ending on {end_date.isoformat()}", "endDate"
            )
        fee = contract_rules.termination_fee(state, ctx, term)
        return Outcome(state.evolve(end_date=end_date, contract=None), "end_date_set", charge=fee)
    return Outcome(state.evolve(end_date=end_date), "end_date_set")


def set_metadata(
    state: SubscriptionState, ctx: OpContext, *, metadata: Mapping[str, Any] | None, merge: bool = True
) -> Outcome:
    changeable(state, "set metadata")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise ValidationError("metadata must be a JSON object", code="INVALID_METADATA", field=["metadata"])
    if merge and metadata is not None:
        merged = {**(state.metadata or {}), **metadata}
        new_meta: Mapping[str, Any] | None = {k: v for k, v in merged.items() if v is not None}
    else:
        new_meta = dict(metadata) if metadata is not None else None
    return Outcome(state.evolve(metadata=new_meta), "metadata_set")


def update_invoicing(state: SubscriptionState, ctx: OpContext, **changes: Any) -> Outcome:
    """Change the invoicing settings: invoices issued after this follow them, issued ones never change."""
    changeable(state, "change the invoicing settings")
    terms = change_terms(terms_of(state.invoicing), **changes)
    return Outcome(state.evolve(invoicing=terms.to_json()), "invoicing_updated")
