"""A segment's actions applied to one subscription, through the domain's own operations.

Every bulk action is the operation a single mutation calls
(``changeNextRenewalDate``, ``updateItem``, ``suspendSubscription``…), so a
refusal in a run is the same ``RebillError`` with the same code as it would
be one subscription at a time. Price actions judge consent on the whole
action: "does this action raise what the next renewal bills?", pending changes included.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from functools import lru_cache

from rebill.bulk.plan import (
    Action,
    Activate,
    AdjustPrice,
    ApplyCoupon,
    Cancel,
    ChangeProfile,
    ClearGateway,
    References,
    RemoveCoupon,
    SetGateway,
    SetInvoicing,
    SetMetadata,
    SetNextRenewalDate,
    SetQuantity,
    SetRenewalType,
    SetShippingProfile,
    SetUnitPrice,
    ShiftNextRenewal,
    Suspend,
)
from rebill.domain import lifecycle, updates
from rebill.domain.cadence import IntervalUnit
from rebill.domain.errors import NotFound, RebillError
from rebill.domain.invoice import invoicing_changes, period_lines, total_of
from rebill.domain.money import Money
from rebill.domain.outcome import OpContext, Outcome, changeable, require_consent
from rebill.domain.pricing import tier_unit_price
from rebill.domain.proration import Proration
from rebill.domain.status import FINAL
from rebill.domain.subscription import Item, SubscriptionState

# update_item checks consent item by item; a bulk price action is judged as a
# whole (below, with require_consent), so the per-item check is given this.
_JUDGED_ON_THE_WHOLE_ACTION = "bulk: consent is checked for the whole action"


class ChargeRequired(RebillError):
    """A bulk action never bills or credits anyone: an outcome with a charge is skipped."""

    code = "CHARGE_REQUIRED"


def billed(state: SubscriptionState) -> Money:
    """What one renewal of ``state`` will bill: nothing once it is final or set to end."""
    if state.status in FINAL or state.cancel_at_period_end:
        return Money.zero(state.currency)
    return state.amount


def charged(state: SubscriptionState) -> Money:
    """What the next invoice of ``state`` would charge: its items, shipping when it ships, and tax."""
    if state.status in FINAL or state.cancel_at_period_end:
        return Money.zero(state.currency)
    return total_of(period_lines(state, None, None), state.currency)


def _items(state: SubscriptionState, product_id: int | None) -> list[Item]:
    items = [i for i in state.items if product_id is None or i.product.id == product_id]
    if not items:
        raise NotFound(f"subscription {state.id} has no item of product {product_id}", field=["productId"])
    return items


def next_unit_price(item: Item) -> Money | None:
    """The unit price the next renewal bills the item at, when a pending change makes it differ from the current one.

    A pending price, or a pending quantity that moves a tier-priced item into another tier. None when the
    next renewal bills the current unit price (or the item goes away at the next renewal).
    """
    if item.pending_quantity == 0:
        return None
    if item.pending_unit_price is not None:
        return item.pending_unit_price
    if item.price_from_tiers and item.product.tiers and item.pending_quantity is not None:
        price = tier_unit_price(item.product.tiers, item.pending_quantity)
        return price if price != item.unit_price else None
    return None


def _adjusted(action: AdjustPrice, price: Money) -> Money:
    if action.percent is not None:
        return price.multiply((100 + Fraction(action.percent)) / 100)
    assert action.amount is not None
    return Money(price.minor + action.amount.minor, action.amount.currency)


def _price_action(
    state: SubscriptionState, ctx: OpContext, action: SetUnitPrice | AdjustPrice | SetQuantity
) -> Outcome:
    """Update every item (or the items of ``product_id``), then judge consent on the whole change.

    What counts is the price the next renewal will bill, pending changes included (DOMAIN.md, "Consent"):
    an adjustment moves an item's current price and, when a change is pending, its pending price too, so
    a scheduled rise or cut stays scheduled and is adjusted like the rest; consent is judged on what the
    next renewal bills before and after. Setting a price or a quantity replaces what was pending for it.
    """
    changeable(state, "update an item")
    new = state
    for item in _items(state, action.product_id):
        current = new.item(item.id) if item.id is not None else item
        assert current is not None
        unit_price: Money | None = None
        quantity: int | None = None
        pending: Money | None = None
        if isinstance(action, SetUnitPrice):
            unit_price = action.unit_price
        elif isinstance(action, SetQuantity):
            quantity = action.quantity
        else:
            unit_price = _adjusted(action, current.unit_price)
            scheduled = next_unit_price(current)
            pending = _adjusted(action, scheduled) if scheduled is not None else None
        new = updates.update_item(
            new,
            ctx,
            item_id=item.id or 0,
            unit_price=unit_price,
            quantity=quantity,
            effective=updates.Effective.IMMEDIATE,
            proration=Proration.NONE,
            consent_reference=_JUDGED_ON_THE_WHOLE_ACTION,
        ).state
        if pending is not None:
            new = updates.update_item(
                new,
                ctx,
                item_id=item.id or 0,
                unit_price=pending,
                effective=updates.Effective.NEXT_RENEWAL,
                consent_reference=_JUDGED_ON_THE_WHOLE_ACTION,
            ).state
    require_consent(state, new, action.consent_reference)
    return Outcome(new, "item_updated")


def apply_action(state: SubscriptionState, ctx: OpContext, action: Action, refs: References) -> Outcome:
    match action:
        case ShiftNextRenewal():
            return updates.change_next_renewal_date(state, ctx, shift=_shift(action.unit, action.count))
        case SetNextRenewalDate():
            return updates.change_next_renewal_date(state, ctx, date_=action.date)
        case SetUnitPrice() | AdjustPrice() | SetQuantity():
            return _price_action(state, ctx, action)
        case ChangeProfile():
            return updates.change_profile(state, ctx, profile=refs.profiles[action.profile_id])
        case SetRenewalType():
            return updates.set_renewal_type(state, ctx, renewal_type=action.renewal_type)
        case SetGateway():
            return updates.set_gateway(
                state, ctx, gateway_id=action.gateway_id, mode=action.mode, known_gateways=refs.gateways
            )
        case ClearGateway():
            return updates.set_gateway(state, ctx, gateway_id=None, mode=None, known_gateways=refs.gateways)
        case ApplyCoupon():
            coupon, active = refs.coupons[action.code]
            return updates.apply_coupon(state, ctx, coupon=coupon, active=active)
        case RemoveCoupon():
            return updates.remove_coupon(state, ctx, code=action.code)
        case Suspend():
            return lifecycle.suspend(state, ctx)
        case Activate():
            return lifecycle.activate(state, ctx)
        case Cancel():
            return lifecycle.cancel(
                state, ctx, at_period_end=action.at_period_end, override_contract=action.override_contract
            )
        case SetMetadata():
            return updates.set_metadata(state, ctx, metadata=action.metadata, merge=action.merge)
        case SetInvoicing():
            return updates.update_invoicing(state, ctx, **invoicing_changes(action.changes))
        case SetShippingProfile():
            chosen = refs.shipping_profiles[action.shipping_profile_id] if action.shipping_profile_id else None
            return updates.set_shipping_profile(state, ctx, profile=chosen, consent_reference=action.consent_reference)
    raise TypeError(f"not a bulk action: {action!r}")


@lru_cache(maxsize=64)
def _shift(unit: IntervalUnit, count: int) -> updates.Shift:
    """One Shift per distinct action, not one per subscription."""
    return updates.Shift(unit, count)


def _bills_nothing(outcome: Outcome) -> None:
    if outcome.charge is not None or outcome.refund is not None or outcome.renewal_updates:
        raise ChargeRequired(f"{outcome.action} would bill, refund or change a renewal: a bulk run never does")


def consent_of(actions: Sequence[Action]) -> str | None:
    """The consent reference the price actions of a segment were given: stored with each change they make.

    Several distinct references (one per price action) are kept in the order of the actions, joined by "; ".
    """
    given: list[str] = []
    for action in actions:
        if (
            isinstance(action, SetUnitPrice | AdjustPrice | SetQuantity | SetShippingProfile)
            and action.consent_reference
        ):
            reference = action.consent_reference.strip()
            if reference and reference not in given:
                given.append(reference)
    return "; ".join(given) or None


def apply_actions(state: SubscriptionState, ctx: OpContext, actions: Sequence[Action], refs: References) -> Outcome:
    """The segment's actions in order; the first refusal refuses the subscription (nothing is half-done)."""
    if len(actions) == 1:
        outcome = apply_action(state, ctx, actions[0], refs)
        _bills_nothing(outcome)
        return outcome
    current = state
    names: list[str] = []
    events: list = []
    for action in actions:
        outcome = apply_action(current, ctx, action, refs)
        _bills_nothing(outcome)
        current = outcome.state
        if outcome.action not in names:
            names.append(outcome.action)
        events.extend(outcome.events)
    return Outcome(current, ",".join(names), events=tuple(events))
