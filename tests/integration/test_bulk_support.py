"""A small shop for the bulk tests, built through the services (no GraphQL round trips)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from rebill.bulk.runner import process_queued_runs
from rebill.bulk.runs import BulkService, RunView
from rebill.db import tables as t
from rebill.db.repositories import SubscriptionRepository
from rebill.domain.cadence import Cadence, IntervalUnit
from rebill.domain.money import Money
from rebill.domain.pricing import CouponDuration, PriceTier
from rebill.domain.subscription import GatewayMode, PaymentKind, ProductKind, ProfileTerms, SubscriptionState
from rebill.services.catalog import CatalogService
from rebill.services.runtime import Actor, Common, Result
from rebill.services.subscriptions import SubscriptionService

ADMIN = Actor("support-agent", scopes=frozenset({"admin"}))
OPERATOR = Actor("cli:ops", scopes=frozenset({"admin"}))


def ok(result: Result) -> Result:
    assert result.ok, result.errors
    return result


class Shop:
    """Customers, a monthly profile, products (plain, seats with tiers, usage) and coupons."""

    def __init__(self, services: Any) -> None:
        self.services = services
        self.catalog = CatalogService(services)
        self.subs = SubscriptionService(services)
        self.bulk = BulkService(services)
        self.profiles: dict[str, int] = {}
        self.products: dict[str, int] = {}
        self.customers: list[int] = []

    async def open(self) -> Shop:
        for name, cadence, trial in (
            ("monthly", Cadence(IntervalUnit.MONTH, 1), 0),
            ("trial-monthly", Cadence(IntervalUnit.MONTH, 1), 14),
            ("yearly", Cadence(IntervalUnit.YEAR, 1), 0),
        ):
            result = ok(
                await self.catalog.create_profile(ADMIN, {}, ProfileTerms(None, name, cadence, trial_days=trial))
            )
            self.profiles[name] = result.extra["profile"].id
        for sku, kind, tiers in (
            ("coffee", ProductKind.STANDARD, []),
            ("tea", ProductKind.STANDARD, []),
            (
                "seats",
                ProductKind.SEAT,
                [PriceTier(10, Money(1000, "USD")), PriceTier(None, Money(800, "USD"))],
            ),
            ("meter", ProductKind.USAGE, []),
        ):
            result = ok(await self.catalog.create_product(ADMIN, {}, name=sku.title(), sku=sku, kind=kind, tiers=tiers))
            self.products[sku] = result.extra["product"].id
        for code, pct, amount, duration, products in (
            ("TENOFF", "10", None, CouponDuration.FOREVER, []),
            ("FIVER", None, Money(500, "USD"), CouponDuration.FOREVER, []),
            ("ONCE25", "25", None, CouponDuration.ONCE, []),
            ("TEATIME", "50", None, CouponDuration.FOREVER, [self.products["tea"]]),
            ("EUROFF", None, Money(300, "EUR"), CouponDuration.FOREVER, []),
        ):
            ok(
                await self.catalog.create_coupon(
                    ADMIN,
                    {},
                    code=code,
                    name=None,
                    percent_off=pct,
                    amount_off=amount,
                    duration=duration,
                    duration_cycles=None,
                    product_ids=products,
                )
            )
        for n, tz in enumerate(("UTC", "Pacific/Auckland", "America/Los_Angeles")):
            await self.customer(f"customer{n}@example.com", tz)
        return self

    async def customer(self, email: str, tz: str = "UTC") -> int:
        cid = ok(await self.catalog.create_customer(ADMIN, {}, email=email, name=email, time_zone=tz)).extra[
            "customerId"
        ]
        ok(
            await self.catalog.add_payment_method(
                ADMIN, {}, customer_id=cid, kind=PaymentKind.CARD, gateway_token="4242424242424242", make_default=True
            )
        )
        self.customers.append(cid)
        return cid

    async def subscribe(
        self,
        price: str = "10.00",
        *,
        currency: str = "USD",
        quantity: int = 1,
        product: str = "coffee",
        profile: str = "monthly",
        customer: int | None = None,
        items: Sequence[tuple[str, str | None, int]] | None = None,
        start_days_ago: int = 0,
    ) -> int:
        lines = items or [(product, price, quantity)]
        today = self.services.clock.today()
        result = ok(
            await self.subs.create(
                ADMIN,
                Common(),
                {},
                customer_id=customer or self.customers[0],
                profile_id=self.profiles[profile],
                items=[
                    (self.products[sku], Money.parse(p, currency) if p is not None else None, q) for sku, p, q in lines
                ],
                start_date=today - timedelta(days=start_days_ago),
                bill_first_period=False,
            )
        )
        assert result.subscription is not None and result.subscription.id is not None
        return result.subscription.id

    async def do(self, method: str, sid: int, **params: Any) -> SubscriptionState:
        result = ok(await getattr(self.subs, method)(ADMIN, Common(), {}, sid, **params))
        assert result.subscription is not None
        return result.subscription

    async def force_gateway(self, sid: int, gateway: str = "sandbox") -> SubscriptionState:
        return await self.do("set_gateway", sid, gateway_id=gateway, mode=GatewayMode.FORCED)

    async def coupon(self, sid: int, code: str) -> SubscriptionState:
        return await self.do("apply_coupon", sid, code=code)

    async def state(self, sid: int) -> SubscriptionState:
        async with self.services.sessions() as session:
            return await SubscriptionRepository(session).get(sid)

    async def states(self, ids: Sequence[int]) -> dict[int, SubscriptionState]:
        async with self.services.sessions() as session:
            return await SubscriptionRepository(session).get_many(list(ids))

    async def history(self, sid: int) -> list[Any]:
        table = t.table_of(t.HistoryEntry)
        async with self.services.sessions() as session:
            return list(await session.execute(select(table).where(table.c.subscription_id == sid).order_by(table.c.id)))

    async def run(
        self, plan: dict[str, Any], *, limit: int | None = None, dry_run: bool = False, as_of: Any = None
    ) -> RunView:
        """Start a run of ``plan`` and work it to the end, as the worker would."""
        run = await self.bulk.start(OPERATOR, plan, limit=limit, dry_run=dry_run, as_of=as_of)
        await process_queued_runs(self.services)
        view = await self.bulk.get(run.id)
        assert view is not None
        return view


def outcomes(page: Any) -> dict[int, str]:
    return {item.subscription_id: item.outcome for item in page.items}
