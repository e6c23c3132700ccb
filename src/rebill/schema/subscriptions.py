"""Subscriptions and what hangs off them: items, coupons, renewals, history, phases."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, cast

import strawberry
from sqlalchemy import select
from strawberry.scalars import JSON
from strawberry.types import Info

from rebill.db import tables as t
from rebill.domain.money import Money as DomainMoney
from rebill.domain.renewal import RenewalInfo
from rebill.domain.subscription import AppliedCoupon as DomainAppliedCoupon
from rebill.domain.subscription import Item, SubscriptionState
from rebill.resolvers.pages import Page, Window
from rebill.schema.catalog import Address, Coupon, Customer, PaymentMethod, Product, SubscriptionProfile
from rebill.schema.common import FieldChange, Money, Node, PageInfo, changes_of, connection, to_global_id
from rebill.schema.enums import (
    FulfillmentStatus,
    GatewayMode,
    RenewalKind,
    RenewalStatus,
    RenewalType,
    SubscriptionStatus,
)
from rebill.schema.invoices import (
    Invoice,
    InvoiceConnection,
    InvoicePreview,
    InvoicingSettings,
    invoice_connection,
)
from rebill.schema.ordering import ChronologicalOrder, chronological

if TYPE_CHECKING:
    from rebill.schema.contracts import Contract
    from rebill.schema.taxes import ShippingProfile


@strawberry.type
class SubscriptionItem(Node):
    product: Product
    unit_price: Money
    quantity: int
    total: Money
    auto_renew: bool
    price_from_tiers: bool
    pending_unit_price: Money | None = strawberry.field(description="A price that takes effect at the next renewal")
    pending_quantity: int | None = strawberry.field(description="A quantity that takes effect at the next renewal")

    @classmethod
    def of(cls, item: Item) -> SubscriptionItem:
        pk = item.id if item.id is not None else -item.temp
        return cls(
            id=strawberry.ID(to_global_id("SubscriptionItem", pk)),
            product=Product.of(item.product),
            unit_price=Money.of(item.unit_price),
            quantity=item.quantity,
            total=Money.of(item.total),
            auto_renew=item.auto_renew,
            price_from_tiers=item.price_from_tiers,
            pending_unit_price=Money.of(item.pending_unit_price) if item.pending_unit_price else None,
            pending_quantity=item.pending_quantity,
        )


@strawberry.type
class AppliedCoupon(Node):
    coupon: Coupon
    code: str
    cycles_used: int
    active: bool

    @classmethod
    def of(cls, applied: DomainAppliedCoupon) -> AppliedCoupon:
        return cls(
            id=strawberry.ID(to_global_id("AppliedCoupon", applied.id or 0)),
            coupon=Coupon.of(applied.coupon),
            code=applied.coupon.code,
            cycles_used=applied.cycles_used,
            active=applied.active,
        )


@strawberry.type
class Transaction(Node):
    kind: str
    gateway_id: str | None
    amount: Money
    status: str
    decline_code: str | None
    gateway_reference: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: Any) -> Transaction:
        """A ``transactions`` row (a REFUND one is also a ``Refund`` node, under its own global id)."""
        return cls(
            id=strawberry.ID(to_global_id("Transaction", row.id)),
            kind=row.kind,
            gateway_id=row.gateway_id,
            amount=Money.of(DomainMoney(row.amount_minor, row.currency)),
            status=row.status,
            decline_code=row.decline_code,
            gateway_reference=row.gateway_reference,
            created_at=row.created_at,
        )


@strawberry.type
class Renewal(Node):
    cycle: int
    kind: RenewalKind
    status: RenewalStatus
    period_start: date
    period_end: date
    amount: Money
    refunded_amount: Money
    attempts: int
    next_retry_date: date | None
    fulfillment: FulfillmentStatus
    gateway_id: str | None
    adjustment: bool
    created_at: datetime
    subscription_pk: strawberry.Private[int]
    pk: strawberry.Private[int]

    @classmethod
    def of(cls, r: RenewalInfo) -> Renewal:
        return cls(
            id=strawberry.ID(to_global_id("Renewal", r.id)),
            cycle=r.cycle,
            kind=r.kind,
            status=r.status,
            period_start=r.period_start,
            period_end=r.period_end,
            amount=Money.of(r.amount),
            refunded_amount=Money.of(r.refunded),
            attempts=r.attempts,
            next_retry_date=r.next_retry_date,
            fulfillment=r.fulfillment,
            gateway_id=r.gateway_id,
            adjustment=r.adjustment,
            created_at=r.created_at or datetime.fromtimestamp(0).astimezone(),
            subscription_pk=r.subscription_id,
            pk=r.id,
        )

    @strawberry.field
    async def subscription(self, info: Info) -> Subscription:
        state = await info.context.loaders.subscription_by_id.load(self.subscription_pk)
        return Subscription.of(state)

    @strawberry.field(description="The invoice that documents this renewal (the final one once a pro forma is paid)")
    async def invoice(self, info: Info) -> Invoice | None:
        row = await info.context.loaders.invoice_by_renewal.load(self.pk)
        return Invoice.of(row) if row is not None else None

    @strawberry.field
    async def transactions(self, info: Info) -> list[Transaction]:
        table = t.table_of(t.Transaction)
        async with info.context.services.sessions() as session:
            rows = await session.execute(select(table).where(table.c.renewal_id == self.pk).order_by(table.c.id))
            return [Transaction.of(r) for r in rows]


@strawberry.type
class HistoryEntry(Node):
    occurred_at: datetime
    actor: str
    action: str
    reason: str | None
    bulk_run_id: strawberry.ID | None
    changes: list[FieldChange]
    consent_reference: str | None = strawberry.field(
        default=None, description="The evidence of consent for a price increase this change made (seed 002)"
    )

    @classmethod
    def of(cls, row: Any) -> HistoryEntry:
        return cls(
            id=strawberry.ID(to_global_id("HistoryEntry", row.id)),
            occurred_at=row.occurred_at,
            actor=row.actor,
            action=row.action,
            reason=row.reason,
            bulk_run_id=strawberry.ID(to_global_id("BulkRun", row.bulk_run_id)) if row.bulk_run_id else None,
            changes=changes_of(row.changes),
            consent_reference=getattr(row, "consent_reference", None),
        )


@strawberry.type(description="A scheduled configuration: applied by the renewal engine on its effective date.")
class Phase(Node):
    effective_date: date
    status: str
    changes: JSON
    created_by: str | None
    reason: str | None
    created_at: datetime
    applied_at: datetime | None

    @classmethod
    def of(cls, row: Any) -> Phase:
        return cls(
            id=strawberry.ID(to_global_id("Phase", row.id)),
            effective_date=row.effective_date,
            status=row.status,
            changes=row.changes,
            created_by=row.created_by,
            reason=row.reason,
            created_at=row.created_at,
            applied_at=row.applied_at,
        )


@strawberry.type
class RenewalEdge:
    cursor: str
    node: Renewal


@strawberry.type
class RenewalConnection:
    edges: list[RenewalEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class HistoryEntryEdge:
    cursor: str
    node: HistoryEntry


@strawberry.type
class HistoryEntryConnection:
    edges: list[HistoryEntryEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class Subscription(Node):
    status: SubscriptionStatus
    renewal_type: RenewalType
    profile: SubscriptionProfile
    items: list[SubscriptionItem]
    coupons: list[AppliedCoupon]
    amount: Money = strawberry.field(description="What the next renewal bills, coupons applied")
    next_renewal_date: date | None = strawberry.field(description="The trial end while in TRIAL; null when final")
    trial_end_date: date | None
    start_date: date
    end_date: date | None
    current_period_start: date | None
    current_period_end: date | None
    anchor_date: date
    occurrences_billed: int
    overdue_count: int
    next_retry_date: date | None
    gateway_id: str | None
    gateway_mode: GatewayMode | None
    last_gateway_id: str | None
    shipping_address: Address | None
    metadata: JSON | None
    currency: str
    credit: Money | None
    cancel_at_period_end: bool
    time_zone: str
    version: int
    created_at: datetime
    updated_at: datetime
    replaces_id: strawberry.ID | None
    replaced_by_id: strawberry.ID | None
    state: strawberry.Private[SubscriptionState]

    @classmethod
    def of(cls, s: SubscriptionState) -> Subscription:
        assert s.id is not None
        epoch = datetime.fromtimestamp(0).astimezone()
        return cls(
            id=strawberry.ID(to_global_id("Subscription", s.id)),
            status=s.status,
            renewal_type=s.renewal_type,
            profile=SubscriptionProfile.of(s.profile),
            items=[SubscriptionItem.of(i) for i in s.items],
            coupons=[AppliedCoupon.of(c) for c in s.coupons],
            amount=Money.of(s.amount),
            next_renewal_date=None if s.is_final else s.next_renewal_date,
            trial_end_date=s.trial_end_date,
            start_date=s.start_date,
            end_date=s.end_date,
            current_period_start=s.current_period_start,
            current_period_end=s.current_period_end,
            anchor_date=s.anchor_date,
            occurrences_billed=s.occurrences_billed,
            overdue_count=s.overdue_count,
            next_retry_date=s.next_retry_date,
            gateway_id=s.gateway_id,
            gateway_mode=s.gateway_mode,
            last_gateway_id=s.last_gateway_id,
            shipping_address=Address.of(s.shipping_address),
            metadata=cast(JSON, dict(s.metadata)) if s.metadata is not None else None,
            currency=s.currency,
            credit=Money.of(s.credit) if s.credit is not None and not s.credit.is_zero else None,
            cancel_at_period_end=s.cancel_at_period_end,
            time_zone=s.time_zone,
            version=s.version,
            created_at=s.created_at or epoch,
            updated_at=s.updated_at or epoch,
            replaces_id=strawberry.ID(to_global_id("Subscription", s.replaces_id)) if s.replaces_id else None,
            replaced_by_id=strawberry.ID(to_global_id("Subscription", s.replaced_by_id)) if s.replaced_by_id else None,
            state=s,
        )

    @strawberry.field
    async def customer(self, info: Info) -> Customer:
        row = await info.context.loaders.customer_by_id.load(self.state.customer_id)
        return Customer.of(row)

    @strawberry.field
    async def payment_method(self, info: Info) -> PaymentMethod | None:
        pm = self.state.payment_method
        if pm is None:
            return None
        row = await info.context.loaders.payment_method_by_id.load(pm.id)
        return PaymentMethod.of(row) if row is not None else None

    @strawberry.field
    async def phases(self, info: Info) -> list[Phase]:
        assert self.state.id is not None
        rows = await info.context.loaders.phases_by_subscription.load(self.state.id)
        return [Phase.of(r) for r in rows]

    @strawberry.field(description="The subscription's renewals, newest first unless orderBy says ASC")
    async def renewals(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        order_by: ChronologicalOrder | None = None,
    ) -> RenewalConnection:
        assert self.state.id is not None
        key = (self.state.id, Window(first, after, last, before), chronological(order_by))
        return renewal_connection(await info.context.loaders.renewal_page_by_subscription.load(key))

    @strawberry.field(
        description="What the next renewal will bill, line by line, as the subscription is now; never stored. "
        "Null when no renewal is coming (cancelled, expired, suspended, awaiting reinstatement, or ending first)"
    )
    def upcoming_invoice(self, info: Info) -> InvoicePreview | None:
        from rebill.domain.cadence import local_today
        from rebill.domain.cycle import upcoming_charge
        from rebill.domain.outcome import OpContext
        from rebill.invoicing.issue import document_of

        now = info.context.services.clock.now()
        charge = upcoming_charge(self.state, OpContext(now=now, today=local_today(now, self.state.time_zone)))
        if charge is None:
            return None
        return InvoicePreview.of(document_of(charge), issue_date=charge.period_start)

    @strawberry.field(
        description="The shipping profile that applies: its own (setShippingProfile), else its profile's. "
        "Renewals bill its first rate in the subscription's currency when the subscription ships"
    )
    def shipping_profile(self) -> Annotated[ShippingProfile, strawberry.lazy("rebill.schema.taxes")] | None:
        from rebill.schema.taxes import ShippingProfile

        shipping = self.state.shipping_profile
        return ShippingProfile.of(shipping) if shipping is not None else None

    @strawberry.field(description="The contract the subscription is under (null without one)")
    def contract(self, info: Info) -> Annotated[Contract, strawberry.lazy("rebill.schema.contracts")] | None:
        from rebill.domain import contract as contract_rules
        from rebill.domain.cadence import local_today
        from rebill.schema.contracts import Contract

        if self.state.contract is None:
            return None
        today = local_today(info.context.services.clock.now(), self.state.time_zone)
        return Contract.of(self.state.contract, contract_rules.effective_date_of(self.state, today))

    @strawberry.field(
        description="When a scheduled cancellation takes effect (null: none); resumeSubscription withdraws it"
    )
    def cancellation_date(self) -> date | None:
        return self.state.cancellation_date

    @strawberry.field(description="The invoicing settings: purchase order, memo, document type, drafts, terms")
    def invoicing(self, info: Info) -> InvoicingSettings:
        return InvoicingSettings.of(self.state.invoicing, info.context.services.settings.payment_terms_days)

    @strawberry.field(description="The subscription's invoices, newest first")
    async def invoices(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> InvoiceConnection:
        assert self.state.id is not None
        key = (self.state.id, Window(first, after, last, before), chronological(None))
        return invoice_connection(await info.context.loaders.invoice_page_by_subscription.load(key))

    @strawberry.field(description="Every change to the subscription, newest first unless orderBy says ASC")
    async def history(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        order_by: ChronologicalOrder | None = None,
    ) -> HistoryEntryConnection:
        assert self.state.id is not None
        key = (self.state.id, Window(first, after, last, before), chronological(order_by))
        page = await info.context.loaders.history_page_by_subscription.load(key)
        return connection(page, HistoryEntryEdge, HistoryEntryConnection, HistoryEntry.of)


def renewal_connection(page: Page) -> RenewalConnection:
    from rebill.db.repositories import renewal_from_row

    return connection(page, RenewalEdge, RenewalConnection, lambda r: Renewal.of(renewal_from_row(r)))


@strawberry.type
class SubscriptionEdge:
    cursor: str
    node: Subscription


@strawberry.type
class SubscriptionConnection:
    edges: list[SubscriptionEdge]
    page_info: PageInfo
    total_count: int
