"""Creating the things subscriptions refer to: products, profiles, customers, payment methods, coupons."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from rebill.billing.gateways import card_brand
from rebill.db import tables as t
from rebill.db.repositories import Catalog, coupon_from_row, payment_method_from_row, profile_values
from rebill.domain.cadence import validate_time_zone
from rebill.domain.errors import NotFound, RebillError, ValidationError
from rebill.domain.money import Money
from rebill.domain.outcome import Outcome
from rebill.domain.pricing import CouponDuration, PriceTier, validate_tiers
from rebill.domain.status import SubscriptionStatus
from rebill.domain.subscription import (
    CouponInfo,
    PaymentKind,
    PaymentMethodInfo,
    ProductInfo,
    ProductKind,
    ProfileTerms,
)
from rebill.services.runtime import Actor, Common, Result, Services
from rebill.services.subscriptions import Unit, apply_outcome, retry_pending_charge, run_in_transaction
from rebill.services.taxes import check_profile_serves

P = t.table_of(t.Profile)
PR = t.table_of(t.Product)
PT = t.table_of(t.ProductTier)
CU = t.table_of(t.Customer)
PM = t.table_of(t.PaymentMethod)
C = t.table_of(t.Coupon)
S = t.table_of(t.Subscription)
R = t.table_of(t.Renewal)


def validate_profile(p: ProfileTerms) -> None:
    problems: list[tuple[str, str]] = []
    if not p.name or not p.name.strip():
        problems.append(("name", "a profile needs a name"))
    if p.trial_days < 0 or p.trial_days > 3650:
        problems.append(("trialDays", "trialDays must be between 0 and 3650"))
    if p.max_occurrences is not None and p.max_occurrences < 1:
        problems.append(("maxOccurrences", "maxOccurrences must be at least 1 (null means unlimited)"))
    if p.overdue_limit < 0:
        problems.append(("overdueLimit", "overdueLimit must be 0 (no limit) or more"))
    if any(d < 1 or d > 365 for d in p.retry_schedule_days) or len(p.retry_schedule_days) > 20:
        problems.append(("retryScheduleDays", "retry days must each be between 1 and 365, at most 20 retries"))
    if p.reminder_days_before < 0 or p.reminder_days_before > 365:
        problems.append(("reminderDaysBefore", "reminderDaysBefore must be between 0 and 365"))
    if problems:
        field, message = problems[0]
        raise ValidationError(message, code="INVALID_PROFILE", field=[field])


async def insert_profile(session: AsyncSession, profile: ProfileTerms, *, custom: bool, now: datetime) -> ProfileTerms:
    validate_profile(profile)
    profile = replace(profile, custom=custom)
    pid = (
        await session.execute(
            insert(P).values(**profile_values(profile), created_at=now, updated_at=now).returning(P.c.id)
        )
    ).scalar_one()
    return replace(profile, id=pid)


class CatalogService:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def _run(
        self,
        operation: str,
        actor: Actor,
        request: Any,
        body: Any,
        common: Common | None = None,
        *,
        declined_is_error: bool = True,
    ) -> Result:
        return await run_in_transaction(
            self.services, operation, actor, common or Common(), request, body, declined_is_error=declined_is_error
        )

    async def create_profile(
        self,
        actor: Actor,
        request: Any,
        profile: ProfileTerms,
        common: Common | None = None,
        *,
        shipping_profile_id: int | None = None,
    ) -> Result:
        async def body(unit: Unit) -> Result:
            terms = profile
            if shipping_profile_id is not None:
                shipping = await unit.catalog.shipping_profile(shipping_profile_id)
                await check_profile_serves(unit, None, shipping)
                terms = replace(profile, shipping_profile=shipping)
            created = await insert_profile(unit.session, terms, custom=profile.custom, now=unit.now)
            return Result(extra={"profile": created})

        return await self._run("createProfile", actor, request, body, common)

    async def update_profile(
        self, actor: Actor, request: Any, profile_id: int, changes: dict[str, Any], common: Common | None = None
    ) -> Result:
        """Change a profile's terms; its subscriptions follow them from their next renewal."""

        async def body(unit: Unit) -> Result:
            current = await unit.catalog.profile(profile_id)
            if "shipping_profile_id" in changes:
                shipping_id = changes.pop("shipping_profile_id")
                shipping = await unit.catalog.shipping_profile(shipping_id) if shipping_id is not None else None
                # Every subscription that ships with the profile's must have a rate in its currency.
                await check_profile_serves(unit, profile_id, shipping)
                changes["shipping_profile"] = shipping
            updated = replace(current, **changes)
            validate_profile(updated)
            await unit.session.execute(
                update(P).where(P.c.id == profile_id).values(**profile_values(updated), updated_at=unit.now)
            )
            return Result(extra={"profile": updated})

        return await self._run("updateProfile", actor, request, body, common)

    async def create_product(
        self,
        actor: Actor,
        request: Any,
        *,
        name: str,
        sku: str,
        kind: ProductKind,
        tiers: Sequence[PriceTier],
        common: Common | None = None,
    ) -> Result:
        async def body(unit: Unit) -> Result:
            if not name.strip():
                raise ValidationError("a product needs a name", code="INVALID_INPUT", field=["name"])
            if not sku.strip():
                raise ValidationError("a product needs a SKU", code="INVALID_INPUT", field=["sku"])
            try:
                validate_tiers(tiers)
            except RebillError as exc:
                raise exc.with_field("tiers") from None
            exists = (await unit.session.execute(select(PR.c.id).where(PR.c.sku == sku))).scalar()
            if exists is not None:
                raise ValidationError(f"a product with SKU {sku} exists already", code="DUPLICATE_SKU", field=["sku"])
            pid = (
                await unit.session.execute(
                    insert(PR).values(name=name, sku=sku, kind=kind.value, created_at=unit.now).returning(PR.c.id)
                )
            ).scalar_one()
            if tiers:
                await unit.session.execute(
                    insert(PT),
                    [
                        {
                            "product_id": pid,
                            "position": n,
                            "up_to": tier.up_to,
                            "unit_price_minor": tier.unit_price.minor,
                            "currency": tier.unit_price.currency,
                        }
                        for n, tier in enumerate(tiers)
                    ],
                )
            return Result(extra={"product": ProductInfo(pid, name, sku, kind, tuple(tiers))})

        return await self._run("createProduct", actor, request, body, common)

    async def create_customer(
        self,
        actor: Actor,
        request: Any,
        *,
        email: str,
        name: str | None,
        time_zone: str | None,
        billing_address: dict[str, Any] | None = None,
        common: Common | None = None,
    ) -> Result:
        async def body(unit: Unit) -> Result:
            clean = email.strip()
            if "@" not in clean or clean.startswith("@") or clean.endswith("@") or " " in clean or len(clean) > 320:
                raise ValidationError(f"{email!r} is not an email address", code="INVALID_EMAIL", field=["email"])
            tz = validate_time_zone(time_zone or "UTC")
            cid = (
                await unit.session.execute(
                    insert(CU)
                    .values(email=clean, name=name, time_zone=tz, billing_address=billing_address, created_at=unit.now)
                    .returning(CU.c.id)
                )
            ).scalar_one()
            return Result(extra={"customerId": cid})

        return await self._run("createCustomer", actor, request, body, common)

    async def add_payment_method(
        self,
        actor: Actor,
        request: Any,
        *,
        customer_id: int,
        kind: PaymentKind,
        gateway_token: str | None,
        make_default: bool,
        exp_month: int | None = None,
        exp_year: int | None = None,
        common: Common | None = None,
    ) -> Result:
        async def body(unit: Unit) -> Result:
            # FOR NO KEY UPDATE: concurrent changes of this customer queue here, while a charge being settled
            # (which holds its subscription and checks its rows' keys against this customer) is never blocked.
            customer = (
                await unit.session.execute(select(CU).where(CU.c.id == customer_id).with_for_update(key_share=True))
            ).first()
            if customer is None:
                raise NotFound(f"customer {customer_id} does not exist", field=["customerId"])
            brand = last4 = None
            token = gateway_token.strip() if gateway_token else None
            if kind is PaymentKind.CARD:
                if not token:
                    raise ValidationError(
                        "a card needs a gatewayToken (for the sandbox: a test card number)",
                        code="TOKEN_REQUIRED",
                        field=["gatewayToken"],
                    )
                digits = token.replace(" ", "")
                if digits.isdigit():
                    if not 12 <= len(digits) <= 19:
                        raise ValidationError(
                            "that card number has the wrong length", code="INVALID_CARD", field=["gatewayToken"]
                        )
                    brand, last4, token = card_brand(digits), digits[-4:], digits
            elif token:
                raise ValidationError(
                    f"{kind.value} payment methods take no gatewayToken", code="INVALID_INPUT", field=["gatewayToken"]
                )
            if exp_month is not None and not 1 <= exp_month <= 12:
                raise ValidationError("expMonth must be 1 to 12", code="INVALID_INPUT", field=["expMonth"])
            today = unit.ctx(customer.time_zone).today
            if exp_year is not None and (exp_year, exp_month or 12) < (today.year, today.month):
                raise ValidationError(
                    f"that card expired at the end of {exp_month or 12:02d}/{exp_year}: add a card that is valid",
                    code="PAYMENT_METHOD_EXPIRED",
                    field=["expYear"],
                )
            pm_id = (
                await unit.session.execute(
                    insert(PM)
                    .values(
                        customer_id=customer_id,
                        kind=kind.value,
                        gateway_token=token,
                        brand=brand,
                        last4=last4,
                        exp_month=exp_month,
                        exp_year=exp_year,
                        created_at=unit.now,
                    )
                    .returning(PM.c.id)
                )
            ).scalar_one()
            if make_default or customer.default_payment_method_id is None:
                await unit.session.execute(
                    update(CU).where(CU.c.id == customer_id).values(default_payment_method_id=pm_id)
                )
                retried = await follow_default(unit, customer_id, await unit.catalog.payment_method(pm_id))
                return Result(extra={"paymentMethodId": pm_id, "retriedRenewalIds": retried})
            return Result(extra={"paymentMethodId": pm_id})

        # A retry the new card settles is the card's business, not this request's error.
        return await self._run("addPaymentMethod", actor, request, body, common, declined_is_error=False)

    async def create_coupon(
        self,
        actor: Actor,
        request: Any,
        *,
        code: str,
        name: str | None,
        percent_off: str | None,
        amount_off: Money | None,
        duration: CouponDuration,
        duration_cycles: int | None,
        product_ids: Sequence[int],
        common: Common | None = None,
    ) -> Result:
        async def body(unit: Unit) -> Result:
            if not code.strip() or len(code) > 64:
                raise ValidationError(
                    "a coupon needs a code of 1 to 64 characters", code="INVALID_INPUT", field=["code"]
                )
            if (percent_off is None) == (amount_off is None):
                raise ValidationError("give percentOff or amountOff", code="INVALID_COUPON", field=["percentOff"])
            pct = None
            if percent_off is not None:
                try:
                    pct = Decimal(percent_off)
                except InvalidOperation:
                    raise ValidationError(
                        f"percentOff {percent_off!r} is not a number", code="INVALID_COUPON", field=["percentOff"]
                    ) from None
                if not pct.is_finite() or not Decimal(0) < pct <= Decimal(100) or pct.as_tuple().exponent < -4:  # type: ignore[operator]
                    raise ValidationError(
                        "percentOff must be more than 0 and at most 100", code="INVALID_COUPON", field=["percentOff"]
                    )
            if amount_off is not None and not amount_off.is_positive:
                raise ValidationError("amountOff must be more than zero", code="INVALID_COUPON", field=["amountOff"])
            if duration is CouponDuration.REPEATING and (duration_cycles is None or duration_cycles < 1):
                raise ValidationError(
                    "a REPEATING coupon needs durationCycles of 1 or more",
                    code="INVALID_COUPON",
                    field=["durationCycles"],
                )
            if product_ids:
                await unit.catalog.load_products(product_ids)
                missing = [p for p in product_ids if p not in unit.catalog.products]
                if missing:
                    raise NotFound(f"product {missing[0]} does not exist", field=["productIds"])
            try:
                async with unit.session.begin_nested():
                    row = (
                        await unit.session.execute(
                            insert(C)
                            .values(
                                code=code,
                                name=name,
                                percent_off=pct,
                                amount_off_minor=amount_off.minor if amount_off else None,
                                currency=amount_off.currency if amount_off else None,
                                duration=duration.value,
                                duration_cycles=duration_cycles if duration is CouponDuration.REPEATING else None,
                                product_ids=list(product_ids),
                                created_at=unit.now,
                            )
                            .returning(C)
                        )
                    ).one()
            except IntegrityError:
                raise ValidationError(f"coupon {code} exists already", code="DUPLICATE_CODE", field=["code"]) from None
            coupon: CouponInfo = coupon_from_row(row)
            return Result(extra={"coupon": coupon})

        return await self._run("createCoupon", actor, request, body, common)


async def follow_default(unit: Unit, customer_id: int, card: PaymentMethodInfo) -> list[int]:
    """A new default payment method reaches the customer's subscriptions (DOMAIN.md "Payment methods").

    Every subscription that follows the default (none was pinned to it with
    ``setPaymentMethod``) now charges the new method, with a history entry;
    and their renewals in dunning are retried with it at once, through the
    charge path (after this transaction commits). Returns the renewals retried.
    """
    retried: list[int] = []
    ids = [
        row.id
        for row in await unit.session.execute(
            select(S.c.id)
            .where(
                S.c.customer_id == customer_id,
                S.c.payment_method_pinned.is_(False),
                S.c.status.not_in(["CANCELLED", "EXPIRED"]),
            )
            .order_by(S.c.id)
            .with_for_update()
        )
    ]
    for sid in ids:
        state = await unit.repo.get(sid, for_update=True)
        if state.payment_method is None or state.payment_method.id != card.id:
            result = await apply_outcome(
                unit, state, Outcome(state.evolve(payment_method=card), "payment_method_followed_default")
            )
            assert result.subscription is not None
            state = result.subscription
        if state.status not in (SubscriptionStatus.OVERDUE, SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIAL):
            continue
        # A renewal the worker is retrying right now (locked) is left to it.
        failed = await unit.session.execute(
            select(R.c.id)
            .where(R.c.subscription_id == sid, R.c.status == "FAILED")
            .order_by(R.c.cycle, R.c.id)
            .with_for_update(skip_locked=True)
        )
        for row in failed:
            _, job = await retry_pending_charge(unit, state, row.id)
            unit.pending.append(job)
            retried.append(row.id)
    return retried


async def payment_method(session: AsyncSession, pm_id: int) -> PaymentMethodInfo:
    row = (await session.execute(select(PM).where(PM.c.id == pm_id))).first()
    if row is None:
        raise NotFound(f"payment method {pm_id} does not exist", field=["paymentMethodId"])
    return payment_method_from_row(row)


__all__ = ["Catalog", "CatalogService", "insert_profile", "payment_method"]
