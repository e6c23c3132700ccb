"""A subscription as the rules see it: an immutable value.

Operations take a ``SubscriptionState`` and return a new one; the service
layer loads and saves it. Because the state is a plain value, a what-if run,
a bulk preview, an idempotent replay and a revert all handle the same thing:
the state before and the state after. ``snapshot`` flattens a state into the
fields the history shows, and ``diff`` lists every field that changed.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from rebill.domain.cadence import AnchorPolicy, Cadence, IntervalUnit
from rebill.domain.money import Money
from rebill.domain.pricing import Bill, CouponDuration, Discount, Line, PriceTier, bill, coupon_active
from rebill.domain.status import SubscriptionStatus

JSON = Any


class RenewalType(enum.StrEnum):
    AUTOMATIC = "AUTOMATIC"
    MANUAL = "MANUAL"


class GatewayMode(enum.StrEnum):
    FORCED = "FORCED"
    PREFERRED = "PREFERRED"


class ProductKind(enum.StrEnum):
    STANDARD = "STANDARD"
    SEAT = "SEAT"
    USAGE = "USAGE"


class PaymentKind(enum.StrEnum):
    CARD = "CARD"
    EXTERNAL = "EXTERNAL"
    OFFLINE = "OFFLINE"


class FinalFailureAction(enum.StrEnum):
    CANCEL = "CANCEL"
    SUSPEND = "SUSPEND"


@dataclass(frozen=True, slots=True)
class ProfileTerms:
    """What a subscription profile (plan) decides about its subscriptions."""

    id: int | None
    name: str
    cadence: Cadence
    anchor_policy: AnchorPolicy = AnchorPolicy.ANCHORED
    trial_days: int = 0
    max_occurrences: int | None = None
    overdue_limit: int = 0
    retry_schedule_days: tuple[int, ...] = (5, 5)
    final_failure_action: FinalFailureAction = FinalFailureAction.CANCEL
    default_renewal_type: RenewalType = RenewalType.AUTOMATIC
    force_last_gateway: bool = False
    custom: bool = False
    reminder_days_before: int = 7
    description: str | None = None
    active: bool = True


@dataclass(frozen=True, slots=True)
class ProductInfo:
    id: int
    name: str
    sku: str
    kind: ProductKind = ProductKind.STANDARD
    tiers: tuple[PriceTier, ...] = ()


@dataclass(frozen=True, slots=True)
class Item:
    """One line of a subscription. ``id`` is None until the item is saved."""

    id: int | None
    product: ProductInfo
    unit_price: Money
    quantity: int
    auto_renew: bool = True
    price_from_tiers: bool = False
    pending_unit_price: Money | None = None
    pending_quantity: int | None = None
    # Distinguishes items added in one operation before they have an id.
    temp: int = 0

    @property
    def ref(self) -> str:
        return str(self.id) if self.id is not None else f"new{self.temp}"

    def line(self, *, pending: bool) -> Line:
        unit_price = self.unit_price
        quantity = self.quantity
        if pending:
            unit_price = self.pending_unit_price or unit_price
            quantity = self.pending_quantity if self.pending_quantity is not None else quantity
        tiers = self.product.tiers if self.price_from_tiers else ()
        return Line(self.ref, self.product.id, unit_price, quantity, tiers)

    @property
    def total(self) -> Money:
        return self.line(pending=False).total


@dataclass(frozen=True, slots=True)
class CouponInfo:
    id: int
    code: str
    percent_off: Decimal | None = None
    amount_off: Money | None = None
    duration: CouponDuration = CouponDuration.FOREVER
    duration_cycles: int | None = None
    product_ids: frozenset[int] = frozenset()
    name: str | None = None

    def discount(self) -> Discount:
        return Discount(self.code, self.percent_off, self.amount_off, self.product_ids)


@dataclass(frozen=True, slots=True)
class AppliedCoupon:
    id: int | None
    coupon: CouponInfo
    cycles_used: int = 0

    @property
    def active(self) -> bool:
        return coupon_active(self.coupon.duration, self.coupon.duration_cycles, self.cycles_used)


@dataclass(frozen=True, slots=True)
class PaymentMethodInfo:
    id: int
    customer_id: int
    kind: PaymentKind
    gateway_token: str | None = None


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    id: int | None
    customer_id: int
    currency: str
    status: SubscriptionStatus
    renewal_type: RenewalType
    profile: ProfileTerms
    items: tuple[Item, ...]
    start_date: date
    anchor_date: date
    next_renewal_date: date | None
    coupons: tuple[AppliedCoupon, ...] = ()
    trial_end_date: date | None = None
    current_period_start: date | None = None
    current_period_end: date | None = None
    end_date: date | None = None
    occurrences_billed: int = 0
    last_cycle: int = 0
    overdue_count: int = 0
    next_retry_date: date | None = None
    gateway_id: str | None = None
    gateway_mode: GatewayMode | None = None
    last_gateway_id: str | None = None
    payment_method: PaymentMethodInfo | None = None
    shipping_address: Mapping[str, Any] | None = None
    metadata: Mapping[str, Any] | None = None
    credit: Money | None = None
    cancel_at_period_end: bool = False
    cancelled_at: datetime | None = None
    renew_due: bool = False
    time_zone: str = "UTC"
    version: int = 1
    replaces_id: int | None = None
    replaced_by_id: int | None = None
    created_at: datetime | None = field(default=None, compare=False)
    updated_at: datetime | None = field(default=None, compare=False)

    # -- derived ---------------------------------------------------------

    @property
    def cadence(self) -> Cadence:
        return self.profile.cadence

    @property
    def in_trial(self) -> bool:
        return self.status is SubscriptionStatus.TRIAL

    @property
    def is_final(self) -> bool:
        return self.status in (SubscriptionStatus.CANCELLED, SubscriptionStatus.EXPIRED)

    def next_bill(self) -> Bill:
        """What the next renewal bills: auto-renewing items, pending changes and active coupons."""
        lines = [item.line(pending=True) for item in self.items if item.auto_renew]
        discounts = [c.coupon.discount() for c in self.coupons if c.active]
        return bill(lines, discounts, self.currency)

    def current_bill(self) -> Bill:
        """What the current configuration costs per period (no pending changes)."""
        lines = [item.line(pending=False) for item in self.items]
        discounts = [c.coupon.discount() for c in self.coupons if c.active]
        return bill(lines, discounts, self.currency)

    @property
    def amount(self) -> Money:
        return self.next_bill().total

    def item(self, item_id: int) -> Item | None:
        for item in self.items:
            if item.id == item_id:
                return item
        return None

    def evolve(self, **changes: Any) -> SubscriptionState:
        return replace(self, **changes)


# -- snapshots and diffs -------------------------------------------------


def _money(value: Money | None) -> str | None:
    return value.amount_str if value is not None else None


def _date(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def item_snapshot(item: Item) -> dict[str, JSON]:
    return {
        "productId": item.product.id,
        "unitPrice": _money(item.unit_price),
        "quantity": item.quantity,
        "autoRenew": item.auto_renew,
        "pendingUnitPrice": _money(item.pending_unit_price),
        "pendingQuantity": item.pending_quantity,
    }


def snapshot(state: SubscriptionState) -> dict[str, JSON]:
    """The fields the history shows, flattened to JSON values."""
    values: dict[str, JSON] = {
        "status": state.status.value,
        "renewalType": state.renewal_type.value,
        "profileId": state.profile.id,
        "nextRenewalDate": _date(state.next_renewal_date),
        "trialEndDate": _date(state.trial_end_date),
        "anchorDate": _date(state.anchor_date),
        "startDate": _date(state.start_date),
        "currentPeriodStart": _date(state.current_period_start),
        "currentPeriodEnd": _date(state.current_period_end),
        "endDate": _date(state.end_date),
        "occurrencesBilled": state.occurrences_billed,
        "overdueCount": state.overdue_count,
        "nextRetryDate": _date(state.next_retry_date),
        "gatewayId": state.gateway_id,
        "gatewayMode": state.gateway_mode.value if state.gateway_mode else None,
        "paymentMethodId": state.payment_method.id if state.payment_method else None,
        "shippingAddress": dict(state.shipping_address) if state.shipping_address is not None else None,
        "metadata": dict(state.metadata) if state.metadata is not None else None,
        "amount": state.amount.amount_str,
        "credit": _money(state.credit) if state.credit and not state.credit.is_zero else None,
        "cancelAtPeriodEnd": state.cancel_at_period_end,
        "coupons": sorted(c.coupon.code for c in state.coupons),
        "replacedById": state.replaced_by_id,
    }
    for item in state.items:
        values[f"items.{item.ref}"] = item_snapshot(item)
    return values


def diff(before: SubscriptionState | None, after: SubscriptionState) -> list[dict[str, JSON]]:
    """Every changed field with its value before and after.

    Items present on both sides are compared field by field
    (``items.12.quantity``); an added or removed item appears whole.
    """
    old = snapshot(before) if before is not None else {}
    new = snapshot(after)
    changes: list[dict[str, JSON]] = []
    for key in list(new) + [k for k in old if k not in new]:
        was, now = old.get(key), new.get(key)
        if was == now:
            continue
        if key.startswith("items.") and isinstance(was, dict) and isinstance(now, dict):
            for sub in now:
                if was.get(sub) != now.get(sub):
                    changes.append({"field": f"{key}.{sub}", "before": was.get(sub), "after": now.get(sub)})
            continue
        changes.append({"field": key, "before": was, "after": now})
    return changes


# -- JSON round trip (idempotent replays, bulk reverts) ------------------


def _money_json(value: Money | None) -> list[JSON] | None:
    return [value.minor, value.currency] if value is not None else None


def _money_from(value: JSON) -> Money | None:
    return Money(int(value[0]), str(value[1])) if value is not None else None


def _d(value: JSON) -> date | None:
    return date.fromisoformat(value) if value else None


def profile_to_json(p: ProfileTerms) -> dict[str, JSON]:
    return {
        "id": p.id,
        "name": p.name,
        "unit": p.cadence.unit.value,
        "count": p.cadence.count,
        "anchorPolicy": p.anchor_policy.value,
        "trialDays": p.trial_days,
        "maxOccurrences": p.max_occurrences,
        "overdueLimit": p.overdue_limit,
        "retryScheduleDays": list(p.retry_schedule_days),
        "finalFailureAction": p.final_failure_action.value,
        "defaultRenewalType": p.default_renewal_type.value,
        "forceLastGateway": p.force_last_gateway,
        "custom": p.custom,
        "reminderDaysBefore": p.reminder_days_before,
        "description": p.description,
        "active": p.active,
    }


def profile_from_json(d: Mapping[str, JSON]) -> ProfileTerms:
    return ProfileTerms(
        id=d["id"],
        name=d["name"],
        cadence=Cadence(IntervalUnit(d["unit"]), int(d["count"])),
        anchor_policy=AnchorPolicy(d["anchorPolicy"]),
        trial_days=d["trialDays"],
        max_occurrences=d["maxOccurrences"],
        overdue_limit=d["overdueLimit"],
        retry_schedule_days=tuple(d["retryScheduleDays"]),
        final_failure_action=FinalFailureAction(d["finalFailureAction"]),
        default_renewal_type=RenewalType(d["defaultRenewalType"]),
        force_last_gateway=d["forceLastGateway"],
        custom=d["custom"],
        reminder_days_before=d["reminderDaysBefore"],
        description=d.get("description"),
        active=d.get("active", True),
    )


def _product_to_json(p: ProductInfo) -> dict[str, JSON]:
    return {
        "id": p.id,
        "name": p.name,
        "sku": p.sku,
        "kind": p.kind.value,
        "tiers": [[t.up_to, t.unit_price.minor, t.unit_price.currency] for t in p.tiers],
    }


def _product_from(d: Mapping[str, JSON]) -> ProductInfo:
    return ProductInfo(
        id=d["id"],
        name=d["name"],
        sku=d["sku"],
        kind=ProductKind(d["kind"]),
        tiers=tuple(PriceTier(t[0], Money(t[1], t[2])) for t in d["tiers"]),
    )


def _coupon_to_json(c: CouponInfo) -> dict[str, JSON]:
    return {
        "id": c.id,
        "code": c.code,
        "name": c.name,
        "percentOff": str(c.percent_off) if c.percent_off is not None else None,
        "amountOff": _money_json(c.amount_off),
        "duration": c.duration.value,
        "durationCycles": c.duration_cycles,
        "productIds": sorted(c.product_ids),
    }


def _coupon_from(d: Mapping[str, JSON]) -> CouponInfo:
    return CouponInfo(
        id=d["id"],
        code=d["code"],
        name=d.get("name"),
        percent_off=Decimal(d["percentOff"]) if d["percentOff"] is not None else None,
        amount_off=_money_from(d["amountOff"]),
        duration=CouponDuration(d["duration"]),
        duration_cycles=d["durationCycles"],
        product_ids=frozenset(d["productIds"]),
    )


def state_to_json(s: SubscriptionState) -> dict[str, JSON]:
    return {
        "id": s.id,
        "customerId": s.customer_id,
        "currency": s.currency,
        "status": s.status.value,
        "renewalType": s.renewal_type.value,
        "profile": profile_to_json(s.profile),
        "items": [
            {
                "id": i.id,
                "temp": i.temp,
                "product": _product_to_json(i.product),
                "unitPrice": _money_json(i.unit_price),
                "quantity": i.quantity,
                "autoRenew": i.auto_renew,
                "priceFromTiers": i.price_from_tiers,
                "pendingUnitPrice": _money_json(i.pending_unit_price),
                "pendingQuantity": i.pending_quantity,
            }
            for i in s.items
        ],
        "coupons": [{"id": c.id, "coupon": _coupon_to_json(c.coupon), "cyclesUsed": c.cycles_used} for c in s.coupons],
        "startDate": _date(s.start_date),
        "anchorDate": _date(s.anchor_date),
        "nextRenewalDate": _date(s.next_renewal_date),
        "trialEndDate": _date(s.trial_end_date),
        "currentPeriodStart": _date(s.current_period_start),
        "currentPeriodEnd": _date(s.current_period_end),
        "endDate": _date(s.end_date),
        "occurrencesBilled": s.occurrences_billed,
        "lastCycle": s.last_cycle,
        "overdueCount": s.overdue_count,
        "nextRetryDate": _date(s.next_retry_date),
        "gatewayId": s.gateway_id,
        "gatewayMode": s.gateway_mode.value if s.gateway_mode else None,
        "lastGatewayId": s.last_gateway_id,
        "paymentMethod": (
            {
                "id": s.payment_method.id,
                "customerId": s.payment_method.customer_id,
                "kind": s.payment_method.kind.value,
                "gatewayToken": s.payment_method.gateway_token,
            }
            if s.payment_method
            else None
        ),
        "shippingAddress": dict(s.shipping_address) if s.shipping_address is not None else None,
        "metadata": dict(s.metadata) if s.metadata is not None else None,
        "credit": _money_json(s.credit),
        "cancelAtPeriodEnd": s.cancel_at_period_end,
        "cancelledAt": s.cancelled_at.isoformat() if s.cancelled_at else None,
        "renewDue": s.renew_due,
        "timeZone": s.time_zone,
        "version": s.version,
        "replacesId": s.replaces_id,
        "replacedById": s.replaced_by_id,
        "createdAt": s.created_at.isoformat() if s.created_at else None,
        "updatedAt": s.updated_at.isoformat() if s.updated_at else None,
    }


def state_from_json(d: Mapping[str, JSON]) -> SubscriptionState:
    pm = d["paymentMethod"]
    return SubscriptionState(
        id=d["id"],
        customer_id=d["customerId"],
        currency=d["currency"],
        status=SubscriptionStatus(d["status"]),
        renewal_type=RenewalType(d["renewalType"]),
        profile=profile_from_json(d["profile"]),
        items=tuple(
            Item(
                id=i["id"],
                temp=i.get("temp", 0),
                product=_product_from(i["product"]),
                unit_price=Money(*i["unitPrice"]),
                quantity=i["quantity"],
                auto_renew=i["autoRenew"],
                price_from_tiers=i["priceFromTiers"],
                pending_unit_price=_money_from(i["pendingUnitPrice"]),
                pending_quantity=i["pendingQuantity"],
            )
            for i in d["items"]
        ),
        coupons=tuple(AppliedCoupon(c["id"], _coupon_from(c["coupon"]), c["cyclesUsed"]) for c in d["coupons"]),
        start_date=date.fromisoformat(d["startDate"]),
        anchor_date=date.fromisoformat(d["anchorDate"]),
        next_renewal_date=_d(d["nextRenewalDate"]),
        trial_end_date=_d(d["trialEndDate"]),
        current_period_start=_d(d["currentPeriodStart"]),
        current_period_end=_d(d["currentPeriodEnd"]),
        end_date=_d(d["endDate"]),
        occurrences_billed=d["occurrencesBilled"],
        last_cycle=d["lastCycle"],
        overdue_count=d["overdueCount"],
        next_retry_date=_d(d["nextRetryDate"]),
        gateway_id=d["gatewayId"],
        gateway_mode=GatewayMode(d["gatewayMode"]) if d["gatewayMode"] else None,
        last_gateway_id=d["lastGatewayId"],
        payment_method=(
            PaymentMethodInfo(pm["id"], pm["customerId"], PaymentKind(pm["kind"]), pm["gatewayToken"]) if pm else None
        ),
        shipping_address=d["shippingAddress"],
        metadata=d["metadata"],
        credit=_money_from(d["credit"]),
        cancel_at_period_end=d["cancelAtPeriodEnd"],
        cancelled_at=datetime.fromisoformat(d["cancelledAt"]) if d["cancelledAt"] else None,
        renew_due=d["renewDue"],
        time_zone=d["timeZone"],
        version=d["version"],
        replaces_id=d["replacesId"],
        replaced_by_id=d["replacedById"],
        created_at=datetime.fromisoformat(d["createdAt"]) if d.get("createdAt") else None,
        updated_at=datetime.fromisoformat(d["updatedAt"]) if d.get("updatedAt") else None,
    )
