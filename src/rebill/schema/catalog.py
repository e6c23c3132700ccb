"""Types for what subscriptions refer to: profiles, products, coupons, customers, payment methods."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from asyncpg import Record  # type: ignore[import-untyped]
from strawberry.types import Info

from rebill.db.driver import parsed
from rebill.domain.money import plain_decimal
from rebill.domain.pricing import PriceTier as DomainPriceTier
from rebill.domain.subscription import CouponInfo, ProductInfo, ProfileTerms
from rebill.schema.common import (
    Money,
    Node,
    RowBacked,
    columns,
    mapping_of,
    read_from_row,
    to_global_id,
    when_loaded,
)
from rebill.schema.enums import AnchorPolicy, CouponDuration, IntervalUnit, PaymentMethodKind, ProductKind, RenewalType

if TYPE_CHECKING:
    from rebill.schema.invoices import InvoiceConnection
    from rebill.schema.ordering import SubscriptionOrder
    from rebill.schema.subscriptions import SubscriptionConnection
    from rebill.schema.taxes import ShippingProfile


@strawberry.type
class Cadence:
    unit: IntervalUnit
    count: int


@strawberry.type(name="SubscriptionProfile")
class SubscriptionProfile(Node):
    name: str
    description: str | None
    active: bool
    cadence: Cadence
    anchor_policy: AnchorPolicy
    trial_days: int
    max_occurrences: int | None = strawberry.field(description="null = unlimited")
    overdue_limit: int = strawberry.field(description="0 = no limit")
    retry_schedule_days: list[int]
    final_failure_action: str = strawberry.field(description="CANCEL | SUSPEND")
    default_renewal_type: RenewalType
    force_last_gateway: bool
    custom: bool
    reminder_days_before: int
    terms: strawberry.Private[ProfileTerms | None] = None
    # Read from a row: the shipping profile is loaded when asked for, by its id.
    shipping_profile_pk: strawberry.Private[int | None] = None

    @strawberry.field(description="The shipping profile its subscriptions ship with, unless they override it")
    def shipping_profile(self, info: Info) -> Annotated[ShippingProfile, strawberry.lazy("rebill.schema.taxes")] | None:
        from rebill.schema.taxes import ShippingProfile

        shipping = self.terms.shipping_profile if self.terms is not None else None
        if shipping is not None:
            return ShippingProfile.of(shipping)
        if self.shipping_profile_pk is None:
            return None
        return when_loaded(
            info.context.loaders.shipping_profile_by_id.load(self.shipping_profile_pk),
            lambda found: ShippingProfile.of(found) if found is not None else None,
        )

    @classmethod
    def of_row(cls, row: Any) -> SubscriptionProfile:
        """A ``subscription_profiles`` row, its shipping profile left to be loaded when asked for."""
        from rebill.db.repositories import profile_from_row

        columns = SimpleNamespace(**dict(mapping_of(row)))  # read by attribute, as profile_from_row reads
        profile = cls.of(profile_from_row(columns))
        profile.shipping_profile_pk = columns.shipping_profile_id
        return profile

    @classmethod
    def of(cls, p: ProfileTerms) -> SubscriptionProfile:
        assert p.id is not None
        return cls(
            terms=p,
            id=strawberry.ID(to_global_id("SubscriptionProfile", p.id)),
            name=p.name,
            description=p.description,
            active=p.active,
            cadence=Cadence(unit=p.cadence.unit, count=p.cadence.count),
            anchor_policy=p.anchor_policy,
            trial_days=p.trial_days,
            max_occurrences=p.max_occurrences,
            overdue_limit=p.overdue_limit,
            retry_schedule_days=list(p.retry_schedule_days),
            final_failure_action=p.final_failure_action.value,
            default_renewal_type=p.default_renewal_type,
            force_last_gateway=p.force_last_gateway,
            custom=p.custom,
            reminder_days_before=p.reminder_days_before,
        )


@strawberry.type
class PriceTier:
    up_to: int | None
    unit_price: Money


def _tiers(root: Product, info: Info) -> list[PriceTier]:
    def shown(tiers: tuple[DomainPriceTier, ...]) -> list[PriceTier]:
        return [PriceTier(up_to=tier.up_to, unit_price=Money.of(tier.unit_price)) for tier in tiers]

    if root.held_tiers is not None:
        return shown(root.held_tiers)
    return when_loaded(info.context.loaders.tiers_by_product.load(root.pk), shown)


@strawberry.type
class Product(Node):
    name: str
    sku: str
    kind: ProductKind
    tiers: list[PriceTier] = strawberry.field(resolver=_tiers)
    pk: strawberry.Private[int] = 0
    # None when read from a row: the tiers are loaded when asked for.
    held_tiers: strawberry.Private[tuple[DomainPriceTier, ...] | None] = None

    @classmethod
    def of(cls, p: ProductInfo) -> Product:
        return cls(
            id=strawberry.ID(to_global_id("Product", p.id)),
            name=p.name,
            sku=p.sku,
            kind=p.kind,
            pk=p.id,
            held_tiers=p.tiers,
        )

    @classmethod
    def of_row(cls, row: Any) -> Product:
        """A ``products`` row, its tiers left to be loaded when asked for."""
        m = mapping_of(row)
        return cls(
            id=strawberry.ID(to_global_id("Product", m["id"])),
            name=m["name"],
            sku=m["sku"],
            kind=ProductKind(m["kind"]),
            pk=m["id"],
        )


@strawberry.type
class Coupon(Node):
    code: str
    name: str | None
    percent_off: str | None
    amount_off: Money | None
    duration: CouponDuration
    duration_cycles: int | None
    product_ids: list[strawberry.ID]

    @classmethod
    def of(cls, c: CouponInfo) -> Coupon:
        return cls(
            id=strawberry.ID(to_global_id("Coupon", c.id)),
            code=c.code,
            name=c.name,
            percent_off=plain_decimal(c.percent_off) if c.percent_off is not None else None,
            amount_off=Money.of(c.amount_off) if c.amount_off is not None else None,
            duration=c.duration,
            duration_cycles=c.duration_cycles,
            product_ids=[strawberry.ID(to_global_id("Product", p)) for p in sorted(c.product_ids)],
        )


@strawberry.type
class Address:
    line1: str | None
    line2: str | None
    city: str | None
    region: str | None
    postal_code: str | None
    country: str | None

    @classmethod
    def of(cls, raw: Any) -> Address | None:
        if not raw:
            return None
        return cls(
            line1=raw.get("line1"),
            line2=raw.get("line2"),
            city=raw.get("city"),
            region=raw.get("region"),
            postal_code=raw.get("postalCode"),
            country=raw.get("country"),
        )


@strawberry.type
class PaymentMethod(Node):
    kind: PaymentMethodKind
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    created_at: datetime
    customer_pk: strawberry.Private[int]

    @classmethod
    def of(cls, row: Any) -> PaymentMethod:
        return cls(
            id=strawberry.ID(to_global_id("PaymentMethod", row.id)),
            kind=PaymentMethodKind(row.kind),
            brand=row.brand,
            last4=row.last4,
            exp_month=row.exp_month,
            exp_year=row.exp_year,
            created_at=row.created_at,
            customer_pk=row.customer_id,
        )


@strawberry.type
class Customer(RowBacked, Node):
    email: str
    name: str | None
    time_zone: str
    created_at: datetime
    billing_address: Address | None
    tax_id: str | None = strawberry.field(description="The customer's tax id (a VAT number), printed on invoices")
    tax_exempt: bool = strawberry.field(
        default=False, description="Exempt customers' invoices show a zero rate with the reason"
    )
    tax_exempt_reason: str | None = strawberry.field(default=None, description="Why the customer pays no tax")
    pk: strawberry.Private[int] = 0
    default_payment_method_pk: strawberry.Private[int | None] = None

    row: strawberry.Private[Any] = None

    @classmethod
    def of(cls, row: Any) -> Customer:
        """A ``customers`` row, each field computed when first read (those with defaults at once)."""
        m = row if isinstance(row, Record) else row._mapping  # mapping_of, inline: one a subscription
        customer: Customer = cls.__new__(cls)
        customer.__dict__.update(
            row=m,
            tax_id=m.get("tax_id"),
            tax_exempt=bool(m.get("tax_exempt", False)),
            tax_exempt_reason=m.get("tax_exempt_reason"),
            pk=m["id"],
            default_payment_method_pk=m["default_payment_method_id"],
        )
        return customer

    @strawberry.field
    async def default_payment_method(self, info: Info) -> PaymentMethod | None:
        if self.default_payment_method_pk is None:
            return None
        row = await info.context.loaders.payment_method_by_id.load(self.default_payment_method_pk)
        return PaymentMethod.of(row) if row is not None else None

    @strawberry.field
    async def payment_methods(self, info: Info) -> list[PaymentMethod]:
        rows = await info.context.loaders.payment_methods_by_customer.load(self.pk)
        return [PaymentMethod.of(r) for r in rows]

    @strawberry.field(description="The customer's subscriptions, by id unless orderBy says otherwise")
    async def subscriptions(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        order_by: Annotated[SubscriptionOrder, strawberry.lazy("rebill.schema.ordering")] | None = None,
    ) -> Annotated[SubscriptionConnection, strawberry.lazy("rebill.schema.subscriptions")]:
        from rebill.resolvers.customers import customer_subscriptions

        return await customer_subscriptions(info, self.pk, first, after, last, before, order_by)

    @strawberry.field(description="The customer's invoices, newest first")
    async def invoices(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Annotated[InvoiceConnection, strawberry.lazy("rebill.schema.invoices")]:
        from rebill.resolvers.pages import Window
        from rebill.schema.invoices import invoice_connection
        from rebill.schema.ordering import chronological

        key = (self.pk, Window(first, after, last, before), chronological(None))
        return invoice_connection(await info.context.loaders.invoice_page_by_customer.load(key))


read_from_row(
    Customer,
    {
        **columns("email", "name", "time_zone", "created_at"),
        "id": lambda r: strawberry.ID(to_global_id("Customer", r["id"])),
        "billing_address": lambda r: Address.of(parsed(r["billing_address"])),
    },
)
