"""Load and save subscriptions as domain states, in batches.

A state is assembled from its row plus its items, coupons, profile, products
and payment method: one ``= ANY(ids)`` query per table whatever the batch
size, so a page of 100 costs what a page of 10 does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Row, any_, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from rebill.db import tables as t
from rebill.domain.cadence import AnchorPolicy, Cadence, IntervalUnit
from rebill.domain.contract import Contract, TermEndAction
from rebill.domain.errors import NotFound, VersionConflict
from rebill.domain.money import Money
from rebill.domain.pricing import CouponDuration, PriceTier
from rebill.domain.renewal import FulfillmentStatus, RenewalInfo, RenewalKind, RenewalStatus
from rebill.domain.shipping import ShippingProfile, rates_from_rows
from rebill.domain.status import SubscriptionStatus
from rebill.domain.subscription import (
    AppliedCoupon,
    CouponInfo,
    FinalFailureAction,
    GatewayMode,
    Item,
    PaymentKind,
    PaymentMethodInfo,
    ProductInfo,
    ProductKind,
    ProfileTerms,
    RenewalType,
    SubscriptionState,
)
from rebill.domain.tax import TaxRate
from rebill.domain.tax import taxation as tax_of

S = t.table_of(t.Subscription)
I = t.table_of(t.SubscriptionItem)  # noqa: E741
AC = t.table_of(t.AppliedCoupon)
C = t.table_of(t.Coupon)
P = t.table_of(t.Profile)
PR = t.table_of(t.Product)
PT = t.table_of(t.ProductTier)
PM = t.table_of(t.PaymentMethod)
R = t.table_of(t.Renewal)
SC = t.table_of(t.SubscriptionContract)
SP = t.table_of(t.ShippingProfile)
TR = t.table_of(t.TaxRate)
CU = t.table_of(t.Customer)


# -- rows to domain values ---------------------------------------------------


def any_of(column: Any, values: Iterable[int]) -> Any:
    """``column = ANY(:ids)``: one array parameter, so the statement text is the same for any
    number of ids (``IN`` renders a parameter per id and defeats the prepared-statement cache)."""
    return column == any_(bindparam(None, list(values), type_=ARRAY(BigInteger)))


def shipping_profile_from_row(row: Any) -> ShippingProfile:
    return ShippingProfile(row.id, row.name, rates_from_rows(row.rates), row.active)


def tax_rate_from_row(row: Any) -> TaxRate:
    return TaxRate(row.id, row.name, row.percentage, row.inclusive, row.country.strip(), row.region)


def profile_from_row(row: Any, shipping: ShippingProfile | None = None) -> ProfileTerms:
    return ProfileTerms(
        id=row.id,
        name=row.name,
        cadence=Cadence(IntervalUnit(row.interval_unit), row.interval_count),
        anchor_policy=AnchorPolicy(row.anchor_policy),
        trial_days=row.trial_days,
        max_occurrences=row.max_occurrences,
        overdue_limit=row.overdue_limit,
        retry_schedule_days=tuple(row.retry_schedule_days or ()),
        final_failure_action=FinalFailureAction(row.final_failure_action),
        default_renewal_type=RenewalType(row.default_renewal_type),
        force_last_gateway=row.force_last_gateway,
        custom=row.custom,
        reminder_days_before=row.reminder_days_before,
        description=row.description,
        active=row.active,
        shipping_profile=shipping,
    )


def profile_values(p: ProfileTerms) -> dict[str, Any]:
    return {
        "name": p.name,
        "description": p.description,
        "active": p.active,
        "interval_unit": p.cadence.unit.value,
        "interval_count": p.cadence.count,
        "anchor_policy": p.anchor_policy.value,
        "trial_days": p.trial_days,
        "max_occurrences": p.max_occurrences,
        "overdue_limit": p.overdue_limit,
        "retry_schedule_days": list(p.retry_schedule_days),
        "final_failure_action": p.final_failure_action.value,
        "default_renewal_type": p.default_renewal_type.value,
        "force_last_gateway": p.force_last_gateway,
        "custom": p.custom,
        "reminder_days_before": p.reminder_days_before,
        "shipping_profile_id": p.shipping_profile.id if p.shipping_profile else None,
    }


def coupon_from_row(row: Any) -> CouponInfo:
    return CouponInfo(
        id=row.id,
        code=row.code,
        name=row.name,
        percent_off=Decimal(row.percent_off).normalize() if row.percent_off is not None else None,
        amount_off=Money(row.amount_off_minor, row.currency) if row.amount_off_minor is not None else None,
        duration=CouponDuration(row.duration),
        duration_cycles=row.duration_cycles,
        product_ids=frozenset(row.product_ids or ()),
    )


def payment_method_from_row(row: Any) -> PaymentMethodInfo:
    return PaymentMethodInfo(row.id, row.customer_id, PaymentKind(row.kind), row.gateway_token)


def contract_from_row(row: Any) -> Contract:
    return Contract(
        start_date=row.start_date,
        end_date=row.end_date,
        term=Cadence(IntervalUnit(row.term_unit), row.term_count),
        notice_days=row.notice_days,
        action=TermEndAction(row.action_at_term_end),
        early_termination_fee=Money(row.fee_minor, row.fee_currency) if row.fee_minor is not None else None,
    )


def contract_values(c: Contract) -> dict[str, Any]:
    fee = c.early_termination_fee
    return {
        "start_date": c.start_date,
        "end_date": c.end_date,
        "term_unit": c.term.unit.value,
        "term_count": c.term.count,
        "notice_days": c.notice_days,
        "action_at_term_end": c.action.value,
        "fee_minor": fee.minor if fee is not None else None,
        "fee_currency": fee.currency if fee is not None else None,
    }


def renewal_from_row(row: Any) -> RenewalInfo:
    return RenewalInfo(
        id=row.id,
        subscription_id=row.subscription_id,
        cycle=row.cycle,
        kind=RenewalKind(row.kind),
        status=RenewalStatus(row.status),
        period_start=row.period_start,
        period_end=row.period_end,
        amount=Money(row.amount_minor, row.currency),
        refunded=Money(row.refunded_minor, row.currency),
        attempts=row.attempts,
        next_retry_date=row.next_retry_date,
        fulfillment=FulfillmentStatus(row.fulfillment),
        gateway_id=row.gateway_id,
        payment_kind=PaymentKind(row.payment_kind) if row.payment_kind else None,
        adjustment=row.adjustment,
        idempotency_key=row.idempotency_key,
        created_at=row.created_at,
    )


def subscription_values(s: SubscriptionState) -> dict[str, Any]:
    """The subscription row for a state (everything but id, version and timestamps)."""
    return {
        "customer_id": s.customer_id,
        "profile_id": s.profile.id,
        "currency": s.currency,
        "status": s.status.value,
        "renewal_type": s.renewal_type.value,
        "time_zone": s.time_zone,
        "start_date": s.start_date,
        "anchor_date": s.anchor_date,
        "next_renewal_date": s.next_renewal_date,
        "trial_end_date": s.trial_end_date,
        "current_period_start": s.current_period_start,
        "current_period_end": s.current_period_end,
        "end_date": s.end_date,
        "occurrences_billed": s.occurrences_billed,
        "last_cycle": s.last_cycle,
        "overdue_count": s.overdue_count,
        "next_retry_date": s.next_retry_date,
        "gateway_id": s.gateway_id,
        "gateway_mode": s.gateway_mode.value if s.gateway_mode else None,
        "last_gateway_id": s.last_gateway_id,
        "payment_method_id": s.payment_method.id if s.payment_method else None,
        "shipping_address": dict(s.shipping_address) if s.shipping_address is not None else None,
        "metadata": dict(s.metadata) if s.metadata is not None else None,
        "invoicing": dict(s.invoicing) if s.invoicing is not None else None,
        "amount_minor": s.amount.minor,
        "discount_minor": s.next_bill().discount.minor,
        "credit_minor": s.credit.minor if s.credit is not None else 0,
        "cancel_at_period_end": s.cancel_at_period_end,
        "cancelled_at": s.cancelled_at,
        "renew_due": s.renew_due,
        "replaces_id": s.replaces_id,
        "replaced_by_id": s.replaced_by_id,
        "cancellation_date": s.cancellation_date,
        "shipping_profile_id": s.shipping_override.id if s.shipping_override else None,
    }


# The columns of an item row besides its id, in the order ``item_row`` gives them.
ITEM_COLUMNS = (
    "subscription_id",
    "product_id",
    "position",
    "unit_price_minor",
    "currency",
    "quantity",
    "price_from_tiers",
    "auto_renew",
    "pending_unit_price_minor",
    "pending_quantity",
)


def item_row(subscription_id: int, position: int, i: Item) -> tuple[Any, ...]:
    pending = i.pending_unit_price
    return (
        subscription_id,
        i.product.id,
        position,
        i.unit_price.minor,
        i.unit_price.currency,
        i.quantity,
        i.price_from_tiers,
        i.auto_renew,
        pending.minor if pending is not None else None,
        i.pending_quantity,
    )


def item_values(subscription_id: int, position: int, i: Item) -> dict[str, Any]:
    return dict(zip(ITEM_COLUMNS, item_row(subscription_id, position, i), strict=True))


# -- catalog lookups ---------------------------------------------------------


class Catalog:
    """Profiles, products, coupons and payment methods as domain values, cached per unit of work."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.profiles: dict[int, ProfileTerms] = {}
        self.products: dict[int, ProductInfo] = {}
        self.coupons: dict[int, CouponInfo] = {}
        self.payment_methods: dict[int, PaymentMethodInfo] = {}
        self.shipping_profiles: dict[int, ShippingProfile] = {}
        self._tax_rates: tuple[TaxRate, ...] | None = None

    async def load_profiles(self, ids: Iterable[int]) -> dict[int, ProfileTerms]:
        missing = {i for i in ids if i not in self.profiles}
        if missing:
            rows = list(await self.session.execute(select(P).where(any_of(P.c.id, missing))))
            shipping = await self.load_shipping_profiles({r.shipping_profile_id for r in rows if r.shipping_profile_id})
            for row in rows:
                self.profiles[row.id] = profile_from_row(
                    row, shipping[row.shipping_profile_id] if row.shipping_profile_id else None
                )
        return self.profiles

    async def load_shipping_profiles(self, ids: Iterable[int]) -> dict[int, ShippingProfile]:
        missing = {i for i in ids if i not in self.shipping_profiles}
        if missing:
            for row in await self.session.execute(select(SP).where(any_of(SP.c.id, missing))):
                self.shipping_profiles[row.id] = shipping_profile_from_row(row)
        return self.shipping_profiles

    async def shipping_profile(self, profile_id: int, field: str = "shippingProfileId") -> ShippingProfile:
        profiles = await self.load_shipping_profiles([profile_id])
        if profile_id not in profiles:
            raise NotFound(f"shipping profile {profile_id} does not exist", field=[field])
        return profiles[profile_id]

    async def tax_rates(self) -> tuple[TaxRate, ...]:
        """The active rates (a few per country at most), read once per unit of work."""
        if self._tax_rates is None:
            rows = await self.session.execute(select(TR).where(TR.c.active).order_by(TR.c.id))
            self._tax_rates = tuple(tax_rate_from_row(row) for row in rows)
        return self._tax_rates

    async def taxation_of(self, customer_ids: Iterable[int]) -> dict[int, Any]:
        """Each customer's exemption and billing address, for :func:`domain.tax.taxation`."""
        ids = list(set(customer_ids))
        if not ids:
            return {}
        rows = await self.session.execute(
            select(CU.c.id, CU.c.billing_address, CU.c.tax_exempt, CU.c.tax_exempt_reason).where(any_of(CU.c.id, ids))
        )
        return {row.id: row for row in rows}

    async def load_products(self, ids: Iterable[int]) -> dict[int, ProductInfo]:
        missing = {i for i in ids if i not in self.products}
        if missing:
            tiers: dict[int, list[PriceTier]] = {}
            for row in await self.session.execute(
                select(PT).where(any_of(PT.c.product_id, missing)).order_by(PT.c.product_id, PT.c.position)
            ):
                tiers.setdefault(row.product_id, []).append(
                    PriceTier(row.up_to, Money(row.unit_price_minor, row.currency))
                )
            for row in await self.session.execute(select(PR).where(any_of(PR.c.id, missing))):
                self.products[row.id] = ProductInfo(
                    row.id, row.name, row.sku, ProductKind(row.kind), tuple(tiers.get(row.id, ()))
                )
        return self.products

    async def load_payment_methods(self, ids: Iterable[int]) -> dict[int, PaymentMethodInfo]:
        missing = {i for i in ids if i not in self.payment_methods}
        if missing:
            for row in await self.session.execute(select(PM).where(any_of(PM.c.id, missing))):
                self.payment_methods[row.id] = payment_method_from_row(row)
        return self.payment_methods

    async def profile(self, profile_id: int) -> ProfileTerms:
        profiles = await self.load_profiles([profile_id])
        if profile_id not in profiles:
            raise NotFound(f"profile {profile_id} does not exist", field=["profileId"])
        return profiles[profile_id]

    async def product(self, product_id: int, field: str = "productId") -> ProductInfo:
        products = await self.load_products([product_id])
        if product_id not in products:
            raise NotFound(f"product {product_id} does not exist", field=[field])
        return products[product_id]

    async def payment_method(self, pm_id: int) -> PaymentMethodInfo:
        pms = await self.load_payment_methods([pm_id])
        if pm_id not in pms:
            raise NotFound(f"payment method {pm_id} does not exist", field=["paymentMethodId"])
        return pms[pm_id]

    async def coupon_by_code(self, code: str) -> tuple[CouponInfo, bool]:
        row = (await self.session.execute(select(C).where(C.c.code == code))).first()
        if row is None:
            raise NotFound(f"coupon {code} does not exist", field=["code"])
        coupon = coupon_from_row(row)
        self.coupons[coupon.id] = coupon
        return coupon, row.active


# -- subscriptions -----------------------------------------------------------


ITEMS_OF = (
    "SELECT id, subscription_id, product_id, unit_price_minor, currency, quantity, auto_renew, price_from_tiers,"
    " pending_unit_price_minor, pending_quantity FROM subscription_items"
    " WHERE subscription_id = ANY($1::bigint[]) ORDER BY subscription_id, position, id"
)


class SubscriptionRepository:
    def __init__(self, session: AsyncSession, catalog: Catalog | None = None) -> None:
        self.session = session
        self.catalog = catalog or Catalog(session)

    async def get(self, subscription_id: int, *, for_update: bool = False) -> SubscriptionState:
        states = await self.get_many([subscription_id], for_update=for_update)
        if subscription_id not in states:
            raise NotFound(f"subscription {subscription_id} does not exist", field=["subscriptionId"])
        return states[subscription_id]

    async def get_many(self, ids: Sequence[int], *, for_update: bool = False) -> dict[int, SubscriptionState]:
        if not ids:
            return {}
        stmt = select(S).where(any_of(S.c.id, ids)).order_by(S.c.id)
        if for_update:
            stmt = stmt.with_for_update()
        rows = list(await self.session.execute(stmt))
        return {s.id: s for s in await self.states_from_rows(rows) if s.id is not None}

    async def states_from_rows(self, rows: Sequence[Row[Any]] | Sequence[Any]) -> list[SubscriptionState]:
        """Assemble states for subscription rows with one query per related table."""
        if not rows:
            return []
        fields = [_fields(r) for r in rows]
        ids = [f["id"] for f in fields]
        # Items come straight from asyncpg: a chunk of a bulk run reads thousands of them,
        # and its records are several times cheaper to read than result rows.
        item_rows = await (await self._driver()).fetch(ITEMS_OF, ids)
        coupon_rows = list(
            await self.session.execute(
                select(AC.c.id.label("applied_id"), AC.c.subscription_id, AC.c.cycles_used, C)
                .join(C, C.c.id == AC.c.coupon_id)
                .where(any_of(AC.c.subscription_id, ids))
                .order_by(AC.c.subscription_id, AC.c.id)
            )
        )
        await self.catalog.load_profiles({f["profile_id"] for f in fields})
        await self.catalog.load_products({r["product_id"] for r in item_rows})
        await self.catalog.load_payment_methods({f["payment_method_id"] for f in fields if f["payment_method_id"]})
        overrides = await self.catalog.load_shipping_profiles(
            {f["shipping_profile_id"] for f in fields if f["shipping_profile_id"]}
        )
        rates = await self.catalog.tax_rates()
        customers = await self.catalog.taxation_of(f["customer_id"] for f in fields)
        items: dict[int, list[Item]] = {}
        products = self.catalog.products
        for r in item_rows:
            pending_price = r["pending_unit_price_minor"]
            items.setdefault(r["subscription_id"], []).append(
                Item(
                    id=r["id"],
                    product=products[r["product_id"]],
                    unit_price=Money(r["unit_price_minor"], r["currency"]),
                    quantity=r["quantity"],
                    auto_renew=r["auto_renew"],
                    price_from_tiers=r["price_from_tiers"],
                    pending_unit_price=Money(pending_price, r["currency"]) if pending_price is not None else None,
                    pending_quantity=r["pending_quantity"],
                )
            )
        coupons: dict[int, list[AppliedCoupon]] = {}
        for coupon_row in coupon_rows:
            coupons.setdefault(coupon_row.subscription_id, []).append(
                AppliedCoupon(coupon_row.applied_id, coupon_from_row(coupon_row), coupon_row.cycles_used)
            )
        profiles, payment_methods = self.catalog.profiles, self.catalog.payment_methods
        contracts = await self._contracts(ids)
        return [
            state_from_row(
                f,
                profile=profiles[f["profile_id"]],
                items=items.get(f["id"], ()),
                coupons=coupons.get(f["id"], ()),
                payment_method=payment_methods.get(f["payment_method_id"]) if f["payment_method_id"] else None,
                shipping_override=overrides[f["shipping_profile_id"]] if f["shipping_profile_id"] else None,
                tax_rate=customer_tax_rate(customers.get(f["customer_id"]), f["shipping_address"], rates),
                contract=contracts.get(f["id"]),
            )
            for f in fields
        ]

    async def _contracts(self, ids: Sequence[int]) -> dict[int, Contract]:
        """The contracts of a batch of subscriptions: one ``= ANY(ids)`` query."""
        rows = await self.session.execute(select(SC).where(any_of(SC.c.subscription_id, ids)))
        return {row.subscription_id: contract_from_row(row) for row in rows}

    async def _save_contract(self, subscription_id: int, before: Contract | None, after: Contract | None) -> None:
        """Write a subscription's contract when it changed: a row replaced, or deleted."""
        if before == after:
            return
        if after is None:
            await self.session.execute(delete(SC).where(SC.c.subscription_id == subscription_id))
            return
        values = contract_values(after)
        await self.session.execute(
            pg_insert(SC)
            .values(subscription_id=subscription_id, **values)
            .on_conflict_do_update(index_elements=[SC.c.subscription_id], set_={**values, "updated_at": func.now()})
        )

    async def _driver(self) -> Any:
        """The asyncpg connection under the session, inside its transaction."""
        connection = await self.session.connection()
        return (await connection.get_raw_connection()).driver_connection

    async def insert(self, state: SubscriptionState, now: datetime) -> SubscriptionState:
        values = subscription_values(state)
        row = (
            await self.session.execute(
                insert(S).values(**values, version=1, created_at=now, updated_at=now).returning(S.c.id)
            )
        ).one()
        created = state.evolve(id=row.id, version=1, created_at=now, updated_at=now)
        return await self._save_children(None, created)

    async def save(self, before: SubscriptionState, after: SubscriptionState, now: datetime) -> SubscriptionState:
        """Write ``after`` over ``before``: the row (version + 1) and what changed among children.

        The version guard makes a lost update impossible even for a caller
        that forgot to lock the row.
        """
        assert before.id is not None and before.id == after.id
        result = await self.session.execute(
            update(S)
            .where(S.c.id == before.id, S.c.version == before.version)
            .values(**subscription_values(after), version=before.version + 1, updated_at=now)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise VersionConflict(
                f"subscription {before.id} changed while this change was being made; load it again and retry"
            )
        saved = after.evolve(version=before.version + 1, updated_at=now)
        return await self._save_children(before, saved)

    async def _save_children(self, before: SubscriptionState | None, after: SubscriptionState) -> SubscriptionState:
        sid = after.id
        assert sid is not None
        old_items = {i.id: i for i in (before.items if before else ()) if i.id is not None}
        kept_ids = {i.id for i in after.items if i.id is not None}
        gone = [i for i in old_items if i not in kept_ids]
        if gone:
            await self.session.execute(delete(I).where(any_of(I.c.id, gone)))
        new_items: list[Item] = []
        for position, item in enumerate(after.items):
            values = item_values(sid, position, item)
            if item.id is None:
                item_id = (await self.session.execute(insert(I).values(**values).returning(I.c.id))).scalar_one()
                new_items.append(replace(item, id=item_id, temp=0))
            else:
                old = old_items.get(item.id)
                if old is None or old != item or before is None or before.items.index(old) != position:
                    await self.session.execute(update(I).where(I.c.id == item.id).values(**values))
                new_items.append(item)
        old_coupons = {c.id: c for c in (before.coupons if before else ()) if c.id is not None}
        kept_coupons = {c.id for c in after.coupons if c.id is not None}
        gone_coupons = [c for c in old_coupons if c not in kept_coupons]
        if gone_coupons:
            await self.session.execute(delete(AC).where(any_of(AC.c.id, gone_coupons)))
        new_coupons: list[AppliedCoupon] = []
        for applied in after.coupons:
            if applied.id is None:
                cid = (
                    await self.session.execute(
                        insert(AC)
                        .values(subscription_id=sid, coupon_id=applied.coupon.id, cycles_used=applied.cycles_used)
                        .returning(AC.c.id)
                    )
                ).scalar_one()
                new_coupons.append(replace(applied, id=cid))
            else:
                old_c = old_coupons.get(applied.id)
                if old_c is not None and old_c.cycles_used != applied.cycles_used:
                    await self.session.execute(
                        update(AC).where(AC.c.id == applied.id).values(cycles_used=applied.cycles_used)
                    )
                new_coupons.append(applied)
        await self._save_contract(sid, before.contract if before else None, after.contract)
        return after.evolve(items=tuple(new_items), coupons=tuple(new_coupons))


def _fields(row: Any) -> Any:
    """Name-keyed access to a row: a SQLAlchemy row's mapping (ten times cheaper than its
    attributes), an asyncpg record as it is, or any other object's attributes."""
    mapping = getattr(row, "_mapping", None)
    if mapping is not None:
        return mapping
    return row if hasattr(row, "keys") else vars(row)


_STATUSES = {m.value: m for m in SubscriptionStatus}
_RENEWAL_TYPES = {m.value: m for m in RenewalType}
_GATEWAY_MODES = {m.value: m for m in GatewayMode}


def customer_tax_rate(customer: Any, shipping_address: Any, rates: Sequence[TaxRate]) -> TaxRate | None:
    if customer is None:
        return None
    return tax_of(
        exempt_reason=(customer.tax_exempt_reason or "Tax exempt") if customer.tax_exempt else None,
        billing_address=customer.billing_address,
        shipping_address=shipping_address,
        rates=rates,
    )


def state_from_row(
    r: Any,
    *,
    profile: ProfileTerms,
    items: Sequence[Item],
    coupons: Sequence[AppliedCoupon],
    payment_method: PaymentMethodInfo | None,
    shipping_override: ShippingProfile | None = None,
    tax_rate: TaxRate | None = None,
    contract: Contract | None = None,
) -> SubscriptionState:
    r = _fields(r)
    return SubscriptionState.trusted(
        id=r["id"],
        customer_id=r["customer_id"],
        currency=r["currency"],
        status=_STATUSES[r["status"]],
        renewal_type=_RENEWAL_TYPES[r["renewal_type"]],
        profile=profile,
        items=tuple(items),
        coupons=tuple(coupons),
        start_date=r["start_date"],
        anchor_date=r["anchor_date"],
        next_renewal_date=r["next_renewal_date"],
        trial_end_date=r["trial_end_date"],
        current_period_start=r["current_period_start"],
        current_period_end=r["current_period_end"],
        end_date=r["end_date"],
        occurrences_billed=r["occurrences_billed"],
        last_cycle=r["last_cycle"],
        overdue_count=r["overdue_count"],
        next_retry_date=r["next_retry_date"],
        gateway_id=r["gateway_id"],
        gateway_mode=_GATEWAY_MODES[r["gateway_mode"]] if r["gateway_mode"] else None,
        last_gateway_id=r["last_gateway_id"],
        payment_method=payment_method,
        shipping_address=r["shipping_address"],
        metadata=r["metadata"],
        invoicing=r["invoicing"],
        credit=Money(r["credit_minor"], r["currency"]) if r["credit_minor"] else None,
        cancel_at_period_end=r["cancel_at_period_end"],
        cancelled_at=r["cancelled_at"],
        renew_due=r["renew_due"],
        time_zone=r["time_zone"],
        version=r["version"],
        replaces_id=r["replaces_id"],
        replaced_by_id=r["replaced_by_id"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        shipping_override=shipping_override,
        tax_rate=tax_rate,
        contract=contract,
        cancellation_date=r.get("cancellation_date"),
    )


def history_row(
    subscription_id: int,
    *,
    at: datetime,
    actor: str,
    action: str,
    reason: str | None,
    changes: list[dict[str, Any]],
    bulk_run_id: int | None = None,
    consent_reference: str | None = None,
) -> dict[str, Any]:
    return {
        "subscription_id": subscription_id,
        "occurred_at": at,
        "actor": actor,
        "action": action,
        "reason": reason,
        "changes": changes,
        "bulk_run_id": bulk_run_id,
        "consent_reference": consent_reference,
    }


async def write_history(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        await session.execute(insert(t.table_of(t.HistoryEntry)), list(rows))
