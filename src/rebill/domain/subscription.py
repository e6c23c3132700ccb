"""A subscription as the rules see it: an immutable value.

Operations take a ``SubscriptionState`` and return a new one; the service
layer loads and saves it. Because the state is a plain value, a what-if run,
a bulk preview, an idempotent replay and a revert all handle the same thing:
the state before and the state after. ``snapshot`` flattens a state into the
fields the history shows, and ``diff`` lists every field that changed.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from itertools import compress
from operator import is_not
from typing import TYPE_CHECKING, Any

from rebill.domain.cadence import AnchorPolicy, Cadence, IntervalUnit
from rebill.domain.money import Money
from rebill.domain.pricing import Bill, CouponDuration, Discount, Line, PriceTier, bill, coupon_active
from rebill.domain.shipping import ShippingProfile, ShippingRate
from rebill.domain.shipping import from_json as shipping_from_json
from rebill.domain.shipping import to_json as shipping_to_json
from rebill.domain.status import SubscriptionStatus

if TYPE_CHECKING:
    from rebill.domain.contract import Contract
from rebill.domain.tax import TaxRate

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
    # The shipping profile its subscriptions ship with unless they override it (seed 003).
    shipping_profile: ShippingProfile | None = None


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


@dataclass(frozen=True)
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
    # Invoicing settings as JSON (``domain.invoice.InvoicingTerms``); None: the defaults.
    invoicing: Mapping[str, Any] | None = None
    cancel_at_period_end: bool = False
    cancelled_at: datetime | None = None
    renew_due: bool = False
    time_zone: str = "UTC"
    version: int = 1
    replaces_id: int | None = None
    replaced_by_id: int | None = None
    created_at: datetime | None = field(default=None, compare=False)
    updated_at: datetime | None = field(default=None, compare=False)
    # A shipping profile of the subscription's own, over its profile's (``setShippingProfile``).
    shipping_override: ShippingProfile | None = None
    # The tax its invoices are charged at (the customer's address or exemption; DOMAIN.md "Tax and
    # shipping"): read with the state, never stored with it, so an address change reaches the next invoice.
    tax_rate: TaxRate | None = field(default=None, compare=False)
    # The next bill, computed once per state (and kept by ``evolve`` while
    # nothing it depends on changes): bulk runs and the engine price millions.
    _bill: Bill | None = field(default=None, init=False, repr=False, compare=False)
    # Contract terms (``domain.contract``): the term running, its notice and what happens at its end.
    contract: Contract | None = None
    # When a scheduled cancellation takes effect (a contract's term end, or the period end); None: none.
    cancellation_date: date | None = None

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
        cached = self._bill
        if cached is None:
            lines = [item.line(pending=True) for item in self.items if item.auto_renew]
            discounts = [c.coupon.discount() for c in self.coupons if c.active]
            cached = bill(lines, discounts, self.currency)
            object.__setattr__(self, "_bill", cached)
        return cached

    def current_bill(self) -> Bill:
        """What the current configuration costs per period (no pending changes)."""
        lines = [item.line(pending=False) for item in self.items]
        discounts = [c.coupon.discount() for c in self.coupons if c.active]
        return bill(lines, discounts, self.currency)

    @property
    def amount(self) -> Money:
        return self.next_bill().total

    @property
    def shipping_profile(self) -> ShippingProfile | None:
        """The shipping profile that applies: the subscription's own, else its profile's."""
        return self.shipping_override or self.profile.shipping_profile

    @property
    def shipping_rate(self) -> ShippingRate | None:
        """What a renewal of a period bills for shipping, when the subscription ships (has an address)."""
        if not self.shipping_address:
            return None
        profile = self.shipping_profile
        return profile.rate_in(self.currency) if profile is not None else None

    def item(self, item_id: int) -> Item | None:
        for item in self.items:
            if item.id == item_id:
                return item
        return None

    @classmethod
    def trusted(cls, **values: Any) -> SubscriptionState:
        """A state from values read back from the database, built without the per-field cost of ``__init__``.

        Every field must be given; otherwise this is the ordinary constructor.
        """
        if values.keys() != _STATE_FIELDS:
            return cls(**values)
        values["_bill"] = None
        new = object.__new__(cls)
        object.__setattr__(new, "__dict__", values)
        return new

    def evolve(self, **changes: Any) -> SubscriptionState:
        """A copy with ``changes``: ``dataclasses.replace`` at a fraction of its cost on hot paths.

        The next bill is kept when nothing it depends on changes.
        """
        if not changes.keys() <= _STATE_FIELDS:
            raise TypeError(f"SubscriptionState has no field {sorted(changes.keys() - _STATE_FIELDS)[0]!r}")
        old = self.__dict__
        values = old.copy()
        values.update(changes)
        if not _BILL_INPUTS.isdisjoint(changes) and any(
            changes[name] is not old[name] for name in _BILL_INPUTS.intersection(changes)
        ):
            values["_bill"] = None
        new = object.__new__(SubscriptionState)
        object.__setattr__(new, "__dict__", values)
        return new


_STATE_INIT_FIELDS = tuple(f.name for f in fields(SubscriptionState) if f.init)
_STATE_FIELDS = frozenset(_STATE_INIT_FIELDS)
_BILL_INPUTS = frozenset({"items", "coupons", "currency"})


# -- snapshots and diffs -------------------------------------------------


# The contract's JSON lives with its rules (``domain.contract`` imports this module, so it is read late).
def _contract_shown(value: Contract | None) -> JSON:
    from rebill.domain.contract import shown

    return shown(value)


def _contract_json(value: Contract | None) -> JSON:
    from rebill.domain.contract import to_json

    return to_json(value)


def _contract_from(value: JSON) -> Contract | None:
    from rebill.domain.contract import from_json

    return from_json(value)


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


def _enum(value: enum.Enum | None) -> str | None:
    return value.value if value is not None else None


def _plain(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return dict(value) if value is not None else None


def _credit(value: Money | None) -> str | None:
    return value.amount_str if value is not None and not value.is_zero else None


def _same(value: Any) -> Any:
    return value


# The fields the history shows, in the order it shows them: the key, the
# attribute it comes from (or a reader for derived values), and how to write
# it as JSON. Comparing raw values first means a diff formats only what changed.
_Reader = Callable[[SubscriptionState], Any]
_FIELDS: tuple[tuple[str, str | _Reader, Callable[[Any], JSON]], ...] = (
    ("status", "status", _enum),
    ("renewalType", "renewal_type", _enum),
    ("profileId", lambda s: s.profile.id, _same),
    ("nextRenewalDate", "next_renewal_date", _date),
    ("trialEndDate", "trial_end_date", _date),
    ("anchorDate", "anchor_date", _date),
    ("startDate", "start_date", _date),
    ("currentPeriodStart", "current_period_start", _date),
    ("currentPeriodEnd", "current_period_end", _date),
    ("endDate", "end_date", _date),
    ("occurrencesBilled", "occurrences_billed", _same),
    ("overdueCount", "overdue_count", _same),
    ("nextRetryDate", "next_retry_date", _date),
    ("gatewayId", "gateway_id", _same),
    ("gatewayMode", "gateway_mode", _enum),
    ("paymentMethodId", lambda s: s.payment_method.id if s.payment_method else None, _same),
    ("shippingAddress", "shipping_address", _plain),
    ("metadata", "metadata", _plain),
    ("invoicing", "invoicing", _plain),
    ("amount", lambda s: s.amount, _money),
    ("credit", "credit", _credit),
    ("cancelAtPeriodEnd", "cancel_at_period_end", _same),
    ("coupons", lambda s: sorted(c.coupon.code for c in s.coupons), _same),
    ("replacedById", "replaced_by_id", _same),
    ("contract", "contract", lambda v: _contract_shown(v)),
    ("cancellationDate", "cancellation_date", _date),
    ("shippingProfileId", lambda s: s.shipping_override.id if s.shipping_override else None, _same),
)
# What the derived fields are read from.
_DERIVED_FROM = {
    "shippingProfileId": ("shipping_override",),
    "profileId": ("profile",),
    "paymentMethodId": ("payment_method",),
    "amount": tuple(_BILL_INPUTS),
    "coupons": ("coupons",),
}


def _shown_in() -> dict[str, tuple[int, ...]]:
    """state attribute -> the positions in ``_FIELDS`` of the fields it shows in."""
    out: dict[str, tuple[int, ...]] = {}
    for position, (key, source, _) in enumerate(_FIELDS):
        for name in (source,) if isinstance(source, str) else _DERIVED_FROM[key]:
            out[name] = (*out.get(name, ()), position)
    return out


_SHOWN_IN = _shown_in()


def _read(state: SubscriptionState, source: str | _Reader) -> Any:
    return state.__dict__[source] if isinstance(source, str) else source(state)


def snapshot(state: SubscriptionState) -> dict[str, JSON]:
    """The fields the history shows, flattened to JSON values."""
    values: dict[str, JSON] = {key: fmt(_read(state, source)) for key, source, fmt in _FIELDS}
    for item in state.items:
        values[f"items.{item.ref}"] = item_snapshot(item)
    return values


def changed_fields(before: SubscriptionState, after: SubscriptionState) -> set[str]:
    """The names of the fields whose values differ (cheap: compares the states' dictionaries)."""
    old, new = before.__dict__, after.__dict__
    return {name for name in _STATE_INIT_FIELDS if old[name] is not new[name] and old[name] != new[name]}


def replaced_fields(before: SubscriptionState, after: SubscriptionState) -> list[str]:
    """The attributes ``after`` holds other objects in than ``before`` (a superset of those that changed:
    ``evolve`` shares every value it does not replace)."""
    old, new = before.__dict__, after.__dict__
    try:
        # The loops run in C: this is called for every state the worker and bulk runs save.
        return list(compress(new, map(is_not, new.values(), map(old.__getitem__, new))))
    except KeyError:  # not two states of one class: compare what there is
        return [name for name, value in new.items() if value is not old.get(name)]


def diff(
    before: SubscriptionState | None, after: SubscriptionState, replaced: Sequence[str] | None = None
) -> list[dict[str, JSON]]:
    """Every changed field with its value before and after, in the order the history shows them.

    Items present on both sides are compared field by field
    (``items.12.quantity``); an added or removed item appears whole.
    ``replaced`` is ``replaced_fields(before, after)`` when the caller has it.
    """
    if before is None:
        return [{"field": key, "before": None, "after": value} for key, value in snapshot(after).items()]
    changes: list[dict[str, JSON]] = []
    if replaced is None:
        replaced = replaced_fields(before, after)
    # What the next renewal bills depends only on items, coupons and currency.
    same_bill = (
        before.items is after.items and before.coupons is after.coupons and before.currency == after.currency
    ) or (before._bill is not None and before._bill is after._bill)
    old_values, new_values = before.__dict__, after.__dict__
    shown = sorted({position for name in replaced for position in _SHOWN_IN.get(name, ())})
    for position in shown:
        key, source, fmt = _FIELDS[position]
        if isinstance(source, str):
            was, now = old_values[source], new_values[source]
        elif key == "amount" and same_bill:
            continue
        else:
            was, now = source(before), source(after)
        if was != now:
            was_json, now_json = fmt(was), fmt(now)
            if was_json != now_json:
                changes.append({"field": key, "before": was_json, "after": now_json})
    if before.items is not after.items and before.items != after.items:
        old_items = {i.ref: i for i in before.items}
        new_items = {i.ref: i for i in after.items}
        for ref, item in new_items.items():
            old_item = old_items.get(ref)
            if old_item == item:
                continue
            now_snap = item_snapshot(item)
            if old_item is None:
                changes.append({"field": f"items.{ref}", "before": None, "after": now_snap})
                continue
            was_snap = item_snapshot(old_item)
            for sub, value in now_snap.items():
                if was_snap[sub] != value:
                    changes.append({"field": f"items.{ref}.{sub}", "before": was_snap[sub], "after": value})
        for ref, item in old_items.items():
            if ref not in new_items:
                changes.append({"field": f"items.{ref}", "before": item_snapshot(item), "after": None})
    return changes


# -- JSON round trip (idempotent replays, bulk reverts) ------------------


def _money_json(value: Money | None) -> list[JSON] | None:
    return [value.minor, value.currency] if value is not None else None


def _money_from(value: JSON) -> Money | None:
    return Money(int(value[0]), str(value[1])) if value is not None else None


def _d(value: JSON) -> date | None:
    return date.fromisoformat(value) if value else None


@lru_cache(maxsize=4096)
def profile_to_json(p: ProfileTerms) -> dict[str, JSON]:
    """The profile as JSON (cached: many states share one profile; callers must not mutate it)."""
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
        "shippingProfile": shipping_to_json(p.shipping_profile),
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
        shipping_profile=shipping_from_json(d.get("shippingProfile")),
    )


@lru_cache(maxsize=4096)
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


def _item_to_json(i: Item) -> dict[str, JSON]:
    return {
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


def _item_from(i: Mapping[str, JSON]) -> Item:
    return Item(
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


def _pm_to_json(pm: PaymentMethodInfo | None) -> dict[str, JSON] | None:
    if pm is None:
        return None
    return {"id": pm.id, "customerId": pm.customer_id, "kind": pm.kind.value, "gatewayToken": pm.gateway_token}


def _pm_from(d: Mapping[str, JSON] | None) -> PaymentMethodInfo | None:
    return PaymentMethodInfo(d["id"], d["customerId"], PaymentKind(d["kind"]), d["gatewayToken"]) if d else None


def _instant(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _instant_from(value: JSON) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _optional(kind: Callable[[Any], Any]) -> Callable[[JSON], Any]:
    return lambda value: kind(value) if value is not None else None


# field -> (JSON key, encode, decode): one codec for whole states and for deltas.
_CODEC: dict[str, tuple[str, Callable[[Any], JSON], Callable[[JSON], Any]]] = {
    "id": ("id", _same, _same),
    "customer_id": ("customerId", _same, _same),
    "currency": ("currency", _same, _same),
    "status": ("status", _enum, SubscriptionStatus),
    "renewal_type": ("renewalType", _enum, RenewalType),
    "profile": ("profile", profile_to_json, profile_from_json),
    "items": ("items", lambda v: [_item_to_json(i) for i in v], lambda v: tuple(_item_from(i) for i in v)),
    "coupons": (
        "coupons",
        lambda v: [{"id": c.id, "coupon": _coupon_to_json(c.coupon), "cyclesUsed": c.cycles_used} for c in v],
        lambda v: tuple(AppliedCoupon(c["id"], _coupon_from(c["coupon"]), c["cyclesUsed"]) for c in v),
    ),
    "start_date": ("startDate", _date, date.fromisoformat),
    "anchor_date": ("anchorDate", _date, date.fromisoformat),
    "next_renewal_date": ("nextRenewalDate", _date, _d),
    "trial_end_date": ("trialEndDate", _date, _d),
    "current_period_start": ("currentPeriodStart", _date, _d),
    "current_period_end": ("currentPeriodEnd", _date, _d),
    "end_date": ("endDate", _date, _d),
    "occurrences_billed": ("occurrencesBilled", _same, _same),
    "last_cycle": ("lastCycle", _same, _same),
    "overdue_count": ("overdueCount", _same, _same),
    "next_retry_date": ("nextRetryDate", _date, _d),
    "gateway_id": ("gatewayId", _same, _same),
    "gateway_mode": ("gatewayMode", _enum, _optional(GatewayMode)),
    "last_gateway_id": ("lastGatewayId", _same, _same),
    "payment_method": ("paymentMethod", _pm_to_json, _pm_from),
    "shipping_address": ("shippingAddress", _plain, _same),
    "metadata": ("metadata", _plain, _same),
    "invoicing": ("invoicing", _plain, _same),
    "credit": ("credit", _money_json, _money_from),
    "cancel_at_period_end": ("cancelAtPeriodEnd", _same, _same),
    "cancelled_at": ("cancelledAt", _instant, _instant_from),
    "renew_due": ("renewDue", _same, _same),
    "time_zone": ("timeZone", _same, _same),
    "version": ("version", _same, _same),
    "replaces_id": ("replacesId", _same, _same),
    "replaced_by_id": ("replacedById", _same, _same),
    "shipping_override": ("shippingProfile", shipping_to_json, shipping_from_json),
    "created_at": ("createdAt", _instant, _instant_from),
    "updated_at": ("updatedAt", _instant, _instant_from),
    "contract": ("contract", lambda v: _contract_json(v), lambda v: _contract_from(v)),
    "cancellation_date": ("cancellationDate", _date, _d),
}
_BY_KEY = {key: (name, decode) for name, (key, _, decode) in _CODEC.items()}


def state_to_json(s: SubscriptionState) -> dict[str, JSON]:
    values = s.__dict__
    return {key: encode(values[name]) for name, (key, encode, _) in _CODEC.items()}


def state_from_json(d: Mapping[str, JSON]) -> SubscriptionState:
    return SubscriptionState(**{name: decode(d.get(key)) for name, (key, _, decode) in _CODEC.items()})


# Fields a change never needs to undo: they are set again when the undo is saved.
_UNDONE = frozenset(_CODEC.keys() - {"version", "updated_at", "created_at"})


def delta_to_json(
    before: SubscriptionState, after: SubscriptionState, replaced: Sequence[str] | None = None
) -> dict[str, JSON]:
    """``before``'s values of exactly the fields ``after`` changed: what it takes to undo the change.

    Much smaller than a whole state, which matters when a bulk run keeps one
    for every subscription it changes.
    """
    old, new = before.__dict__, after.__dict__
    delta: dict[str, JSON] = {}
    for name in replaced_fields(before, after) if replaced is None else replaced:
        if name in _UNDONE and (was := old.get(name)) != new[name]:
            key, encode, _ = _CODEC[name]
            delta[key] = encode(was)
    return delta


def diff_and_delta(
    before: SubscriptionState, after: SubscriptionState
) -> tuple[list[dict[str, JSON]], dict[str, JSON]]:
    """``diff`` and ``delta_to_json`` of one change, comparing the two states once."""
    replaced = replaced_fields(before, after)
    return diff(before, after, replaced), delta_to_json(before, after, replaced)


def delta_fields(keys: Iterable[str]) -> set[str]:
    """The state fields of the keys of ``delta_to_json`` results."""
    return {_BY_KEY[key][0] for key in keys}


def undo(current: SubscriptionState, delta: Mapping[str, JSON]) -> SubscriptionState:
    """``current`` with the fields of a ``delta_to_json`` put back."""
    changes = {}
    for key, value in delta.items():
        name, decode = _BY_KEY[key]
        changes[name] = decode(value)
    return current.evolve(**changes)
