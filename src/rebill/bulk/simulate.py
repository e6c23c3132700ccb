"""A segment's actions as SQL: what a preview needs, without loading 500,000 states.

For every matched subscription the query works out, per action in order,
whether the domain would refuse it (and with which code) and what the
subscription would bill afterwards. Only the rules that decide those two
things are mirrored here — status transitions, dates in the past, currency,
usage quantities, coupons present or not, consent for increases — and the
billed amount follows ``pricing.bill`` for coupons that apply to the whole
subscription (total = max(0, subtotal - sum of half-even(subtotal * pct) - sum of fixed)).
A subscription this cannot price exactly (a coupon limited to some products)
is flagged ``complex`` and priced by the domain itself, in Python. Tests hold
this module to the domain on a mixed data set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    Date,
    DateTime,
    Numeric,
    Text,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql import Select

from rebill.bulk.plan import (
    Action,
    Activate,
    AdjustPrice,
    ApplyCoupon,
    Cancel,
    ChangeProfile,
    References,
    RemoveCoupon,
    SetNextRenewalDate,
    SetQuantity,
    SetRenewalType,
    SetShippingProfile,
    SetUnitPrice,
    ShiftNextRenewal,
    Suspend,
)
from rebill.db import tables as t
from rebill.db.rates import SHIPPING_RATES, TAX_RATES
from rebill.domain.cadence import IntervalUnit
from rebill.domain.status import FINAL, TRANSITIONS
from rebill.domain.status import Event as StatusEvent
from rebill.domain.subscription import CouponInfo, RenewalType
from rebill.domain.updates import MAX_DATE, MIN_DATE

S = t.table_of(t.Subscription)
I = t.table_of(t.SubscriptionItem)  # noqa: E741
PR = t.table_of(t.Product)
PT = t.table_of(t.ProductTier)
AC = t.table_of(t.AppliedCoupon)
C = t.table_of(t.Coupon)

_FINAL = [s.value for s in FINAL]
MRR_RATIO = ("mrr_times", "mrr_over")
_HALF = literal(Decimal("0.5"), Numeric)


CU = t.table_of(t.Customer)
SP = t.table_of(t.Profile)


def _object(value: Any) -> ColumnElement[Any]:
    """A JSON address, or NULL (a missing address may be stored as SQL NULL or as JSON null)."""
    return case((func.jsonb_typeof(value) == "object", value), else_=null())


def _taxation() -> tuple[ColumnElement[Any], ColumnElement[bool]]:
    """The exclusive tax rate of a subscription (over ``subscriptions`` joined to its customer), and whether it
    is taxed with several items (tax per line: priced by the domain, ``complex``).

    The rate is NULL for no rate, an inclusive one or an exempt customer, as ``tax.rate_for`` decides. The
    rates are read once into a small JSON map (an uncorrelated subquery, evaluated once) and looked up per
    row. Correlated subqueries for this and the shipping ran once per row and per use (some sixty times a
    row) and made the preview of 500,000 subscriptions take eight seconds.
    """
    address = func.coalesce(_object(CU.c.billing_address), _object(S.c.shipping_address))
    country = func.upper(address["country"].astext)
    region = address["region"].astext
    place = case(
        (func.coalesce(region, "") == "", null()),
        (func.strpos(region, "-") > 0, country + " " + func.upper(region)),
        else_=country + " " + country + "-" + func.upper(region),
    )
    taxes = literal_column(TAX_RATES, JSONB)
    tax_pct = case(
        (CU.c.tax_exempt.is_not(False), null()),
        (taxes.has_key(place), cast(taxes[place].astext, Numeric)),
        (taxes.has_key(country), cast(taxes[country].astext, Numeric)),
        else_=null(),
    )
    items = select(func.count()).where(I.c.subscription_id == S.c.id).correlate(S).scalar_subquery()
    return tax_pct, and_(tax_pct.is_not(None), items > 1)


def _shipping_minor(ships: Any, own_profile: Any, profile_profile: Any, currency: Any) -> ColumnElement[Any]:
    """What a renewal bills for shipping (NULL: nothing), as ``SubscriptionState.shipping_rate``: the first rate
    in its currency of its own shipping profile, else its profile's, when it ships (has an address)."""
    shipping_profile = func.coalesce(own_profile, profile_profile)
    shipping = literal_column(SHIPPING_RATES, JSONB)[cast(shipping_profile, Text) + " " + currency]
    return case((ships, cast(shipping.astext, BigInteger)))


def _from(event: StatusEvent) -> list[str]:
    return [s.value for (s, e) in TRANSITIONS if e is event]


def month_ratio(unit: Any, count: Any) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """A month's worth of one period of a cadence as ``times / over`` (``rebill_mrr``'s factors): x 1 monthly,
    / 12 yearly, x 52 / 12 weekly, x 365 / 12 daily, / count. ``times`` is NULL for a unit MRR does not know."""
    times = case((unit.in_(["MONTH", "YEAR"]), 1), (unit == "WEEK", 52), (unit == "DAY", 365), else_=null())
    return times, cast(case((unit == "MONTH", 1), else_=12) * count, BigInteger)


def mrr(amount: Any, status: Any, times: Any, over: Any) -> ColumnElement[int]:
    """``rebill_mrr`` (``domain.mrr``) of a subscription billing ``amount`` per period, inline in the query.

    The function's rule in bigint arithmetic: amount x times / over, rounded half to even; ACTIVE and
    OVERDUE only, and a cadence of a count of at least one. A call of the SQL function per subscription
    (its body holds subqueries, so the planner cannot inline it) cost about 65 microseconds: a minute for
    the preview of 500,000. Tests hold this expression to the function.
    """
    n = (cast(amount, BigInteger) * times).self_group()
    # Truncated towards zero, as PostgreSQL divides integers.
    q, r = n.op("/")(over).self_group(), n.op("%")(over).self_group()

    def half_even_of(q: Any, r: Any) -> Any:
        q, r = q.self_group(), r.self_group()
        return q + case((or_(2 * r > over, and_(2 * r == over, q.op("%")(2) != 0)), 1), else_=0)

    # A negative amount's quotient is floored first (remainder made positive), as the function does.
    rounded = case((r >= 0, half_even_of(q, r)), else_=half_even_of(q - 1, r + over))
    counted = and_(cast(status, Text).in_(["ACTIVE", "OVERDUE"]), times.is_not(None), over >= 1)
    return case((counted, rounded), else_=0)


def half_even(n: ColumnElement[Any]) -> ColumnElement[int]:
    """``n`` (numeric, >= 0) rounded half to even, as ``Rounding.HALF_EVEN`` does."""
    floor = func.floor(n)
    return cast(case((n - floor == _HALF, floor + func.mod(floor, 2)), else_=func.round(n)), BigInteger)


def _tier_price(product_id: Any, quantity: Any) -> ColumnElement[int]:
    return (
        select(PT.c.unit_price_minor)
        .where(PT.c.product_id == product_id, or_(PT.c.up_to.is_(None), PT.c.up_to >= quantity))
        .order_by(PT.c.position)
        .limit(1)
        .correlate_except(PT)
        .scalar_subquery()
    )


def _adjust(action: AdjustPrice, unit: Any) -> Any:
    """A unit price (NULL stays NULL) moved by the action's percent or amount, rounded as the domain does."""
    if action.percent is not None:
        factor = literal(100 + action.percent, Numeric)
        return half_even(cast(unit, Numeric) * factor / 100)
    assert action.amount is not None
    return unit + action.amount.minor


def _amount_affecting(action: Action) -> bool:
    if isinstance(action, SetRenewalType):
        return action.renewal_type is RenewalType.AUTOMATIC
    return isinstance(action, SetUnitPrice | AdjustPrice | SetQuantity | ApplyCoupon | RemoveCoupon)


def _item_action(action: Action) -> bool:
    return isinstance(action, SetUnitPrice | AdjustPrice | SetQuantity) or (
        isinstance(action, SetRenewalType) and action.renewal_type is RenewalType.AUTOMATIC
    )


@dataclass
class _Added:
    step: int
    coupon: CouponInfo
    removed_at: int | None = None


@dataclass
class SegmentSql:
    """The grouped query for one segment, and how to read its rows."""

    query: Select[Any]
    per_subscription: Any
    base: Any
    complex: ColumnElement[bool]
    prices: bool
    per_row: Callable[[], SegmentSql] | None = None  # the same, a row per subscription (when ``base`` is grouped)

    def complex_ids(self) -> Select[Any]:
        """The ids of the segment's subscriptions the domain has to price itself."""
        if self.per_row is not None:
            return self.per_row().complex_ids()
        rows = self.per_subscription
        return select(rows.c.id).where(rows.c.complex).order_by(rows.c.id)


@dataclass
class _Sim:
    """The subscription as the actions leave it, as SQL over the segment's ``base`` rows."""

    base: Any
    now: datetime
    status: ColumnElement[Any] = field(init=False)
    next_renewal: ColumnElement[Any] = field(init=False)
    cancel_at_end: ColumnElement[Any] = field(init=False)
    profile_id: ColumnElement[Any] = field(init=False)
    # The profile's cadence as ``month_ratio``: what brings a bill to a month for MRR.
    cadence: tuple[ColumnElement[Any], ColumnElement[Any]] = field(init=False)
    refusals: list[tuple[ColumnElement[bool], str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.status = self.base.c.status
        self.next_renewal = self.base.c.next_renewal_date
        self.cancel_at_end = self.base.c.cancel_at_period_end
        self.profile_id = self.base.c.profile_id
        self.cadence = (self.base.c.mrr_times, self.base.c.mrr_over)

    @property
    def today(self) -> ColumnElement[Any]:
        return self.base.c.today

    def refuse(self, condition: ColumnElement[bool], code: str) -> None:
        self.refusals.append((condition, code))

    def changeable(self) -> None:
        self.refuse(self.status.in_(_FINAL), "INVALID_STATUS")

    def transition(self, event: StatusEvent, to: str) -> None:
        self.refuse(self.status.not_in(_from(event)), "INVALID_STATUS")
        self.status = literal(to)

    def move_next_renewal(self, new: ColumnElement[Any]) -> None:
        self.changeable()
        self.refuse(or_(new < MIN_DATE, new > MAX_DATE), "DATE_OUT_OF_RANGE")
        self.refuse(new < self.today, "DATE_IN_PAST")
        self.next_renewal = new


def _shifted(base: ColumnElement[Any], action: ShiftNextRenewal) -> ColumnElement[Any]:
    if action.unit is IntervalUnit.DAY:
        return base + action.count
    if action.unit is IntervalUnit.WEEK:
        return base + 7 * action.count
    months = action.count * (12 if action.unit is IntervalUnit.YEAR else 1)
    return cast(base + func.make_interval(0, months), Date)


def segment_sql(
    actions: tuple[Action, ...],
    refs: References,
    now: datetime,
    where: list[ColumnElement[bool]],
    *,
    per_row: bool = False,
    taxed: bool = True,
) -> SegmentSql:
    """Count, bill before/after and refusal code of the subscriptions matching ``where``, grouped.

    The segment's rows are read once (``base``); their items and coupons are
    aggregated per subscription by joins on it, not looked up row by row.
    ``base`` and ``per_subscription`` are materialized: inlined, every use of
    a column (the tax rate, "today", a refusal code) was worked out again per
    row, and a row's figures use them a few dozen times.

    When no action reads items or coupons, a subscription's figures depend on
    its own row alone: ``base`` then holds one row per kind of subscription
    (its columns, ``n`` of them, the lowest ``id``), grouped as they are read,
    and the figures are worked out once per kind (``per_row`` keeps a row per
    subscription, for ``complex_ids``). ``taxed=False`` (no active tax rate
    at all) spares every row the lookup of its customer and its rate.
    """
    prices = any(_amount_affecting(a) for a in actions)
    coupon_codes = sorted({a.code for a in actions if isinstance(a, ApplyCoupon | RemoveCoupon)})
    grouped = not (per_row or prices or coupon_codes)
    rate, multi_taxed = _taxation() if taxed else (null(), false())
    own = [
        S.c.currency,
        S.c.status,
        S.c.amount_minor,
        S.c.cancel_at_period_end,
        S.c.next_renewal_date,
        S.c.profile_id,
        S.c.time_zone,
        S.c.shipping_profile_id,
        (func.jsonb_typeof(S.c.shipping_address) == "object").label("ships"),
        cast(rate, Numeric).label("tax_pct"),
        cast(multi_taxed, Boolean).label("multi_taxed"),
    ]
    read = select(*own).select_from(S.join(CU, CU.c.id == S.c.customer_id) if taxed else S).where(*where)
    if grouped:
        read = read.add_columns(func.count().label("n"), func.min(S.c.id).label("id")).group_by(*own)
    else:
        read = read.add_columns(S.c.id, literal(1).label("n"))
    kinds = read.subquery("own")
    # What the profile and the time zone decide, once per kind (or row).
    base = (
        select(
            *(kinds.c[name] for name in ("id", "n", "currency", "status", "amount_minor", "cancel_at_period_end")),
            *(kinds.c[name] for name in ("next_renewal_date", "profile_id", "ships", "tax_pct", "multi_taxed")),
            cast(func.timezone(kinds.c.time_zone, literal(now, DateTime(timezone=True))), Date).label("today"),
            *(f.label(n) for f, n in zip(month_ratio(SP.c.interval_unit, SP.c.interval_count), MRR_RATIO, strict=True)),
            _shipping_minor(
                kinds.c.ships, kinds.c.shipping_profile_id, SP.c.shipping_profile_id, kinds.c.currency
            ).label("ship_minor"),
        )
        .select_from(kinds.join(SP, SP.c.id == kinds.c.profile_id))
        .cte("base")
        .prefix_with("MATERIALIZED")
    )
    sim = _Sim(base, now)

    # -- items, one lateral per item action so each step reads the previous one's columns --
    item_steps = [(k, a) for k, a in enumerate(actions) if _item_action(a)]
    it = None
    step_cols: list[Any] = []
    if prices:
        bi = I.alias("bi")
        bp = PR.alias("bp")
        state: dict[str, Any] = {
            "unit": bi.c.unit_price_minor,
            "qty": bi.c.quantity,
            "pend_unit": bi.c.pending_unit_price_minor,
            "pend_qty": bi.c.pending_quantity,
            "tiers": bi.c.price_from_tiers,
            "auto": bi.c.auto_renew,
        }
        items_from: Any = bi.join(bp, bp.c.id == bi.c.product_id)
        flags: dict[int, dict[str, Any]] = {}
        states = [state]
        correlated: list[Any] = [bi, bp]
        for k, action in item_steps:
            product_id = action.product_id if isinstance(action, SetUnitPrice | AdjustPrice | SetQuantity) else None
            match: Any = bi.c.product_id == product_id if product_id is not None else true()
            new = dict(state)
            f: dict[str, Any] = {"match": match}
            if isinstance(action, SetUnitPrice):
                new["unit"] = case((match, action.unit_price.minor), else_=state["unit"])
                new["tiers"] = and_(state["tiers"], ~match)
                new["pend_unit"] = case((match, null()), else_=state["pend_unit"])
            elif isinstance(action, AdjustPrice):
                # the current price, and the one the next renewal bills when a change is pending
                # (``actions.next_unit_price``): a pending price, or a pending quantity's tier
                scheduled = case(
                    (state["pend_qty"] == 0, null()),
                    (state["pend_unit"].is_not(None), state["pend_unit"]),
                    (
                        and_(state["tiers"], state["pend_qty"].is_not(None)),
                        func.nullif(_tier_price(bi.c.product_id, state["pend_qty"]), state["unit"]),
                    ),
                    else_=null(),
                )
                adjusted: Any = _adjust(action, state["unit"])
                adjusted_scheduled = _adjust(action, scheduled)
                if action.amount is not None:
                    f["negative"] = and_(match, or_(adjusted < 0, adjusted_scheduled < 0))
                new["unit"] = case((match, adjusted), else_=state["unit"])
                new["tiers"] = and_(state["tiers"], ~match)
                new["pend_unit"] = case((match, adjusted_scheduled), else_=state["pend_unit"])
            elif isinstance(action, SetQuantity):
                f["usage"] = and_(match, bp.c.kind == "USAGE", state["qty"] != action.quantity)
                new["qty"] = case((match, action.quantity), else_=state["qty"])
                new["pend_qty"] = case((match, null()), else_=state["pend_qty"])
                new["unit"] = case(
                    (
                        and_(match, state["tiers"]),
                        func.coalesce(_tier_price(bi.c.product_id, action.quantity), state["unit"]),
                    ),
                    else_=state["unit"],
                )
            else:  # automatic renewal again: every item renews
                new["auto"] = true()
            lateral = select(*[v.label(name) for name, v in new.items()]).correlate(*correlated).lateral(f"st{k}")
            correlated.append(lateral)
            items_from = items_from.join(lateral, true())
            state = {name: lateral.c[name] for name in new}
            states.append(state)
            flags[k] = f

        def total(st: dict[str, Any]) -> ColumnElement[Any]:
            """What the item adds to the next bill (``Item.line(pending=True)``; only auto-renewing items)."""
            quantity = func.coalesce(st["pend_qty"], st["qty"])
            listed = func.coalesce(st["pend_unit"], st["unit"])
            unit = case((st["tiers"], func.coalesce(_tier_price(bi.c.product_id, quantity), listed)), else_=listed)
            return case((st["auto"], unit * quantity), else_=0)

        cols: list[Any] = []
        for n, st in enumerate(states):
            cols.append(func.coalesce(func.sum(total(st)), 0).label(f"s{n}"))
        for k, f in flags.items():
            cols.append(func.bool_or(f["match"]).label(f"m{k}"))
            if "negative" in f:
                cols.append(func.bool_or(f["negative"]).label(f"n{k}"))
            if "usage" in f:
                cols.append(func.bool_or(f["usage"]).label(f"u{k}"))
        it = (
            select(bi.c.subscription_id.label("sid"), *cols)
            .select_from(items_from.join(base, base.c.id == bi.c.subscription_id))
            .group_by(bi.c.subscription_id)
            .cte("it")
        )
        step_cols = [func.coalesce(it.c[f"s{n}"], 0) for n in range(len(states))]

    # -- coupons already applied ---------------------------------------------------------
    cp = None
    removed_after: dict[int, set[str]] = {}
    removed: set[str] = set()
    for k, action in enumerate(actions):
        if isinstance(action, RemoveCoupon):
            removed = removed | {action.code}
        removed_after[k] = removed
    subtotal_index = {k: n + 1 for n, (k, _) in enumerate(item_steps)}

    def subtotal_at(k: int) -> Any:
        """The subtotal after action ``k`` (-1: before any)."""
        n = 0
        for step, index in subtotal_index.items():
            if step <= k:
                n = index
        return step_cols[n]

    if prices or coupon_codes:
        bac = AC.alias("bac")
        bc = C.alias("bc")
        active = case(
            (bc.c.duration == "ONCE", bac.c.cycles_used < 1),
            (bc.c.duration == "REPEATING", bac.c.cycles_used < func.coalesce(bc.c.duration_cycles, 0)),
            else_=true(),
        )
        cols = [func.bool_or(bc.c.code == code).label(f"has_{n}") for n, code in enumerate(coupon_codes)]
        if prices:
            cols.append(func.bool_or(and_(active, func.cardinality(bc.c.product_ids) > 0)).label("restricted"))
            for k in [-1, *range(len(actions))]:
                gone = removed_after.get(k, set())
                kept = bc.c.code.not_in(sorted(gone)) if gone else true()
                pct = func.sum(half_even(cast(subtotal_at(k), Numeric) * bc.c.percent_off / 100)).filter(
                    and_(active, bc.c.percent_off.is_not(None), kept)
                )
                fixed = func.sum(bc.c.amount_off_minor).filter(and_(active, bc.c.amount_off_minor.is_not(None), kept))
                cols.append((func.coalesce(pct, 0) + func.coalesce(fixed, 0)).label(f"d{k + 1}"))
        coupons_from: Any = bac.join(bc, bc.c.id == bac.c.coupon_id).join(base, base.c.id == bac.c.subscription_id)
        if it is not None:
            coupons_from = coupons_from.outerjoin(it, it.c.sid == bac.c.subscription_id)
        cp = (
            select(bac.c.subscription_id.label("sid"), *cols)
            .select_from(coupons_from)
            .group_by(bac.c.subscription_id)
            .cte("cp")
        )

    added: list[_Added] = []

    def amount_at(k: int) -> ColumnElement[Any]:
        assert cp is not None
        discount: Any = func.coalesce(cp.c[f"d{k + 1}"], 0)
        for a in added:
            if a.step <= k and (a.removed_at is None or a.removed_at > k):
                if a.coupon.percent_off is not None:
                    pct = literal(a.coupon.percent_off, Numeric)
                    discount = discount + half_even(cast(subtotal_at(k), Numeric) * pct / 100)
                elif a.coupon.amount_off is not None:
                    discount = discount + a.coupon.amount_off.minor
        return func.greatest(0, subtotal_at(k) - discount)

    present: dict[str, ColumnElement[bool]] = {}
    if cp is not None:
        present = {code: func.coalesce(cp.c[f"has_{n}"], False) for n, code in enumerate(coupon_codes)}
    complex_added = False

    # -- the actions, in order ----------------------------------------------------------
    for k, action in enumerate(actions):
        if isinstance(action, ShiftNextRenewal):
            sim.move_next_renewal(_shifted(func.coalesce(sim.next_renewal, sim.today), action))
        elif isinstance(action, SetNextRenewalDate):
            sim.move_next_renewal(literal(action.date, Date))
        elif isinstance(action, SetUnitPrice | AdjustPrice | SetQuantity):
            assert it is not None
            sim.changeable()
            sim.refuse(func.coalesce(it.c[f"m{k}"], False).is_(False), "NOT_FOUND")
            money = action.unit_price if isinstance(action, SetUnitPrice) else getattr(action, "amount", None)
            if money is not None:
                sim.refuse(base.c.currency != money.currency, "CURRENCY_MISMATCH")
            if f"n{k}" in it.c:
                sim.refuse(it.c[f"n{k}"].is_(True), "INVALID_AMOUNT")
            if f"u{k}" in it.c:
                sim.refuse(it.c[f"u{k}"].is_(True), "QUANTITY_NOT_CHANGEABLE")
            if not (action.consent_reference and action.consent_reference.strip()):
                sim.refuse(amount_at(k) > amount_at(k - 1), "CONSENT_REQUIRED")
        elif isinstance(action, ChangeProfile):
            sim.changeable()
            target = refs.profiles[action.profile_id]
            if not target.custom:
                sim.refuse(sim.profile_id == action.profile_id, "NO_CHANGE")
            sim.profile_id = literal(action.profile_id)
            sim.cadence = month_ratio(literal(target.cadence.unit.value), literal(target.cadence.count))
        elif isinstance(action, ApplyCoupon):
            coupon, is_active = refs.coupons[action.code]
            sim.changeable()
            if not is_active:
                sim.refuse(true(), "COUPON_INACTIVE")
            sim.refuse(present[action.code], "COUPON_ALREADY_APPLIED")
            if coupon.amount_off is not None:
                sim.refuse(base.c.currency != coupon.amount_off.currency, "CURRENCY_MISMATCH")
            present[action.code] = true()
            added.append(_Added(k, coupon))
            complex_added = complex_added or bool(coupon.product_ids)
        elif isinstance(action, RemoveCoupon):
            sim.changeable()
            sim.refuse(~present[action.code], "NOT_FOUND")
            present[action.code] = literal(False)
            for a in added:
                if a.coupon.code == action.code and a.removed_at is None:
                    a.removed_at = k
        elif isinstance(action, Suspend):
            sim.transition(StatusEvent.SUSPEND, "SUSPENDED")
        elif isinstance(action, Activate):
            sim.transition(StatusEvent.ACTIVATE, "ACTIVE")
        elif isinstance(action, Cancel):
            sim.changeable()
            sim.refuse(sim.status.not_in(_from(StatusEvent.CANCEL)), "INVALID_STATUS")
            if action.at_period_end:
                sim.cancel_at_end = true()
            else:
                sim.status = literal("CANCELLED")
                sim.cancel_at_end = literal(False)
        else:  # setRenewalType, setGateway, clearGateway, setMetadata: refused only when final
            sim.changeable()

    refusal = case(*[(cond, code) for cond, code in sim.refusals], else_=null()) if sim.refusals else null()
    billed_before = case((or_(base.c.status.in_(_FINAL), base.c.cancel_at_period_end), 0), else_=base.c.amount_minor)
    after_amount = amount_at(len(actions) - 1) if prices else base.c.amount_minor
    billed_after = case((or_(sim.status.in_(_FINAL), sim.cancel_at_end), 0), else_=after_amount)
    # What the invoices would charge: shipping when it ships, exclusive tax per line (items, then shipping).
    ship_minor: Any = func.coalesce(base.c.ship_minor, 0)
    tax_pct: Any = base.c.tax_pct

    def charged(amount: Any) -> Any:
        tax = half_even(amount * tax_pct / 100) + half_even(ship_minor * tax_pct / 100)
        return case((tax_pct.is_(None), amount + ship_minor), else_=amount + ship_minor + tax)

    charged_before = case(
        (or_(base.c.status.in_(_FINAL), base.c.cancel_at_period_end), 0), else_=charged(base.c.amount_minor)
    )
    charged_after = case((or_(sim.status.in_(_FINAL), sim.cancel_at_end), 0), else_=charged(after_amount))
    # MRR (``domain.mrr``, as the database's ``rebill_mrr``): a month of what the next renewal bills, if it counts.
    mrr_before = mrr(base.c.amount_minor, base.c.status, base.c.mrr_times, base.c.mrr_over)
    mrr_after = mrr(after_amount, sim.status, *sim.cadence)
    complex_: ColumnElement[bool] = literal(False)
    if prices:
        assert cp is not None
        complex_ = literal(True) if complex_added else func.coalesce(cp.c.restricted, False)
    # Tax per line on several items, and a shipping profile an action changes, are priced by the domain.
    complex_ = or_(complex_, base.c.multi_taxed)
    if any(isinstance(a, SetShippingProfile) for a in actions):
        complex_ = literal(True)
    elif any(isinstance(a, ChangeProfile) for a in actions):
        complex_ = or_(complex_, base.c.ships)

    frm: Any = base
    if it is not None:
        frm = frm.outerjoin(it, it.c.sid == base.c.id)
    if cp is not None:
        frm = frm.outerjoin(cp, cp.c.sid == base.c.id)
    rows = (
        select(
            base.c.id,
            base.c.n,
            base.c.currency,
            refusal.label("code"),
            complex_.label("complex"),
            billed_before.label("before"),
            billed_after.label("after"),
            charged_before.label("charged_before"),
            charged_after.label("charged_after"),
            mrr_before.label("mrr_before"),
            mrr_after.label("mrr_after"),
        )
        .select_from(frm)
        .cte("per_subscription")
        .prefix_with("MATERIALIZED")
    )

    def summed(figure: Any) -> Any:
        """The sum of a figure over the segment's subscriptions (a grouped row stands for ``n`` of them)."""
        return func.sum(figure * rows.c.n if grouped else figure)

    query = select(
        rows.c.currency,
        rows.c.code,
        rows.c.complex,
        (func.sum(rows.c.n) if grouped else func.count()).label("n"),
        summed(rows.c.before).label("before"),
        summed(case((rows.c.code.is_(None), rows.c.after), else_=rows.c.before)).label("after"),
        summed(rows.c.charged_before).label("charged_before"),
        summed(case((rows.c.code.is_(None), rows.c.charged_after), else_=rows.c.charged_before)).label("charged_after"),
        summed(rows.c.mrr_before).label("mrr_before"),
        summed(case((rows.c.code.is_(None), rows.c.mrr_after), else_=rows.c.mrr_before)).label("mrr_after"),
        func.min(rows.c.id).label("example"),
    ).group_by(rows.c.currency, rows.c.code, rows.c.complex)
    out = SegmentSql(query=query, per_subscription=rows, base=base, complex=complex_, prices=prices)
    if grouped:  # which subscriptions are complex is a question about each one
        out.per_row = lambda: segment_sql(actions, refs, now, where, per_row=True, taxed=taxed)
    return out
