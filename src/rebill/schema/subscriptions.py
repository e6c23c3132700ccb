"""Subscriptions and what hangs off them: items, coupons, renewals, history, phases."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, cast

import strawberry
from asyncpg import Record  # type: ignore[import-untyped]
from sqlalchemy import select
from strawberry.scalars import JSON
from strawberry.types import Info

from rebill.db import tables as t
from rebill.db.driver import parsed
from rebill.domain.money import Money as DomainMoney
from rebill.domain.pricing import Line
from rebill.domain.renewal import RenewalInfo
from rebill.domain.subscription import AppliedCoupon as DomainAppliedCoupon
from rebill.domain.subscription import Item, SubscriptionState
from rebill.resolvers.pages import LazyPage, Page, Window
from rebill.schema.catalog import Address, Coupon, Customer, PaymentMethod, Product, SubscriptionProfile
from rebill.schema.common import (
    FieldChange,
    Money,
    Node,
    PageInfo,
    RowBacked,
    changes_of,
    columns,
    connection,
    held,
    page_info,
    read_from_row,
    to_global_id,
    when_loaded,
)
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


@held("held_product")
def _item_product(root: SubscriptionItem) -> Product:
    if root.item is not None:
        return Product.of(root.item.product)
    if root.held_product is not None:
        return root.held_product
    return when_loaded(root.loaders.product_by_id.load(root.product_pk), _found)


def _item_total(root: SubscriptionItem) -> Money:
    if root.item is not None:
        return Money.of(root.item.total)
    unit_price, quantity = DomainMoney(root.row["unit_price_minor"], root.row["currency"]), root.quantity
    if not root.price_from_tiers:
        return Money.of(Line(str(root.pk), root.product_pk, unit_price, quantity).total)
    return when_loaded(
        root.loaders.tiers_by_product.load(root.product_pk),
        lambda tiers: Money.of(Line(str(root.pk), root.product_pk, unit_price, quantity, tiers).total),
    )


def _found(node: Any) -> Any:
    """A node a foreign key names: it exists (the key guarantees it)."""
    if node is None:
        raise LookupError("a row its foreign key names is missing")
    return node


@strawberry.type
class SubscriptionItem(RowBacked, Node):
    product: Product = strawberry.field(resolver=_item_product)
    unit_price: Money
    quantity: int
    total: Money = strawberry.field(resolver=_item_total)
    auto_renew: bool
    price_from_tiers: bool
    pending_unit_price: Money | None = strawberry.field(description="A price that takes effect at the next renewal")
    pending_quantity: int | None = strawberry.field(description="A quantity that takes effect at the next renewal")
    # Built from the domain's item (a subscription's state), or read from a row: then its product and,
    # for a price from tiers, its total are loaded when asked for.
    item: strawberry.Private[Item | None] = None
    pk: strawberry.Private[int] = 0
    product_pk: strawberry.Private[int] = 0
    row: strawberry.Private[Any] = None
    # What a page's resolver loaded for it ahead (``rebill.resolvers.lookahead``), and the request's
    # loaders for what it did not (read from a row, it has no domain item to take them from).
    held_product: strawberry.Private[Product | None] = None
    loaders: strawberry.Private[Any] = None

    @classmethod
    def of(cls, item: Item) -> SubscriptionItem:
        pk = item.id if item.id is not None else -item.temp
        return cls(
            id=strawberry.ID(to_global_id("SubscriptionItem", pk)),
            unit_price=Money.of(item.unit_price),
            quantity=item.quantity,
            auto_renew=item.auto_renew,
            price_from_tiers=item.price_from_tiers,
            pending_unit_price=Money.of(item.pending_unit_price) if item.pending_unit_price else None,
            pending_quantity=item.pending_quantity,
            item=item,
            product_pk=item.product.id,
        )

    @classmethod
    def of_row(cls, row: Any, loaders: Any) -> SubscriptionItem:
        """A ``subscription_items`` row, each field computed when first read; ``loaders`` the request's."""
        m = row if isinstance(row, Record) else row._mapping  # mapping_of, inline: a page reads many
        item: SubscriptionItem = cls.__new__(cls)
        item.__dict__.update(
            row=m, loaders=loaders, pk=m["id"], product_pk=m["product_id"], price_from_tiers=m["price_from_tiers"]
        )
        return item


read_from_row(
    SubscriptionItem,
    {
        **columns("quantity", "auto_renew", "pending_quantity"),
        "id": lambda r: strawberry.ID(to_global_id("SubscriptionItem", r["id"])),
        "unit_price": lambda r: Money.of_minor(r["unit_price_minor"], r["currency"]),
        "pending_unit_price": lambda r: (
            Money.of_minor(r["pending_unit_price_minor"], r["currency"])
            if r["pending_unit_price_minor"] is not None
            else None
        ),
    },
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
    def subscription(self, info: Info) -> Subscription:
        loaded = info.context.loaders.subscription_row_by_id.load(self.subscription_pk)
        return when_loaded(loaded, lambda row: Subscription.of_row(_found(row), info.context.loaders))

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


@held("held_profile")
def _profile(root: Subscription) -> SubscriptionProfile:
    if root.state is not None:
        return SubscriptionProfile.of(root.state.profile)
    if root.held_profile is not None:
        return root.held_profile
    return when_loaded(root.loaders.profile_by_pk.load(root.profile_pk), _found)


@held("held_items")
def _items(root: Subscription) -> list[SubscriptionItem]:
    if root.state is not None:
        return [SubscriptionItem.of(i) for i in root.state.items]
    if root.held_items is not None:
        return root.held_items
    items: Any = root.loaders.items_by_subscription.load(root.pk)  # a future: at once when loaded
    return items


def _coupons(root: Subscription) -> list[AppliedCoupon]:
    if root.state is not None:
        return [AppliedCoupon.of(c) for c in root.state.coupons]
    return when_loaded(
        root.loaders.coupons_by_subscription.load(root.pk), lambda found: [AppliedCoupon.of(c) for c in found]
    )


_EPOCH = datetime.fromtimestamp(0).astimezone()
_FINAL = (SubscriptionStatus.CANCELLED, SubscriptionStatus.EXPIRED)
_STATUSES = {m.value: m for m in SubscriptionStatus}
_RENEWAL_TYPES = {m.value: m for m in RenewalType}


@strawberry.type
class Subscription(RowBacked, Node):
    """A subscription as the API shows it: its own row's fields, and what it refers to loaded when asked for.

    Built from a ``subscriptions`` row (``of_row``: lists and lookups read no more than that row) or
    from a state a service returned (``of``: mutations, whose payloads have the whole state in hand).
    """

    status: SubscriptionStatus
    renewal_type: RenewalType
    profile: SubscriptionProfile = strawberry.field(resolver=_profile)
    items: list[SubscriptionItem] = strawberry.field(resolver=_items)
    coupons: list[AppliedCoupon] = strawberry.field(resolver=_coupons)
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
    pk: strawberry.Private[int]
    customer_pk: strawberry.Private[int]
    profile_pk: strawberry.Private[int]
    payment_method_pk: strawberry.Private[int | None]
    shipping_override_pk: strawberry.Private[int | None]
    held_cancellation_date: strawberry.Private[date | None]
    invoicing_terms: strawberry.Private[Any]
    # The whole state, when it was built from one (``of``); None when read from a row.
    state: strawberry.Private[SubscriptionState | None] = None
    row: strawberry.Private[Any] = None
    # What a page's resolver loaded for it ahead (``rebill.resolvers.lookahead``).
    held_customer: strawberry.Private[Customer | None] = None
    held_profile: strawberry.Private[SubscriptionProfile | None] = None
    held_items: strawberry.Private[list[SubscriptionItem] | None] = None
    # The request's loaders, for what it refers to (read from a row, it has no state to take it from).
    loaders: strawberry.Private[Any] = None

    @classmethod
    def of(cls, s: SubscriptionState) -> Subscription:
        assert s.id is not None
        return cls(
            id=strawberry.ID(to_global_id("Subscription", s.id)),
            status=s.status,
            renewal_type=s.renewal_type,
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
            created_at=s.created_at or _EPOCH,
            updated_at=s.updated_at or _EPOCH,
            replaces_id=strawberry.ID(to_global_id("Subscription", s.replaces_id)) if s.replaces_id else None,
            replaced_by_id=strawberry.ID(to_global_id("Subscription", s.replaced_by_id)) if s.replaced_by_id else None,
            pk=s.id,
            customer_pk=s.customer_id,
            profile_pk=s.profile.id or 0,
            payment_method_pk=s.payment_method.id if s.payment_method is not None else None,
            shipping_override_pk=s.shipping_override.id if s.shipping_override is not None else None,
            held_cancellation_date=s.cancellation_date,
            invoicing_terms=s.invoicing,
            state=s,
        )

    @classmethod
    def of_row(cls, r: Any, loaders: Any) -> Subscription:
        """A ``subscriptions`` row (SQLAlchemy's or the driver's): each field computed when first read,
        as ``of`` shows the state read from the same row; ``loaders`` the request's."""
        m = r if isinstance(r, Record) else r._mapping  # mapping_of, inline: fifty of these a page
        node: Subscription = cls.__new__(cls)
        node.__dict__.update(
            row=m,
            loaders=loaders,
            pk=m["id"],
            customer_pk=m["customer_id"],
            profile_pk=m["profile_id"],
            payment_method_pk=m["payment_method_id"],
            shipping_override_pk=m["shipping_profile_id"],
            state=None,
        )
        return node

    async def full_state(self, info: Info) -> SubscriptionState:
        """The whole state, for the fields computed by the domain (loaded once per request)."""
        if self.state is None:
            self.state = _found(await info.context.loaders.subscription_by_id.load(self.pk))
        return self.state

    @strawberry.field
    @held("held_customer")
    def customer(self, info: Info) -> Customer:
        if self.held_customer is not None:
            return self.held_customer
        return when_loaded(info.context.loaders.customer_by_id.load(self.customer_pk), Customer.of)

    @strawberry.field
    def payment_method(self, info: Info) -> PaymentMethod | None:
        if self.payment_method_pk is None:
            return None
        return when_loaded(
            info.context.loaders.payment_method_by_id.load(self.payment_method_pk),
            lambda row: PaymentMethod.of(row) if row is not None else None,
        )

    @strawberry.field
    async def phases(self, info: Info) -> list[Phase]:
        rows = await info.context.loaders.phases_by_subscription.load(self.pk)
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
        key = (self.pk, Window(first, after, last, before), chronological(order_by))
        return renewal_connection(await info.context.loaders.renewal_page_by_subscription.load(key))

    @strawberry.field(
        description="What the next renewal will bill, line by line, as the subscription is now; never stored. "
        "Null when no renewal is coming (cancelled, expired, suspended, awaiting reinstatement, or ending first)"
    )
    async def upcoming_invoice(self, info: Info) -> InvoicePreview | None:
        from rebill.domain.cadence import local_today
        from rebill.domain.cycle import upcoming_charge
        from rebill.domain.outcome import OpContext
        from rebill.invoicing.issue import document_of

        state = await self.full_state(info)
        now = info.context.services.clock.now()
        charge = upcoming_charge(state, OpContext(now=now, today=local_today(now, state.time_zone)))
        if charge is None:
            return None
        return InvoicePreview.of(document_of(charge), issue_date=charge.period_start)

    @strawberry.field(
        description="The shipping profile that applies: its own (setShippingProfile), else its profile's. "
        "Renewals bill its first rate in the subscription's currency when the subscription ships"
    )
    async def shipping_profile(
        self, info: Info
    ) -> Annotated[ShippingProfile, strawberry.lazy("rebill.schema.taxes")] | None:
        from rebill.schema.taxes import ShippingProfile

        if self.state is not None:
            shipping = self.state.shipping_profile
            return ShippingProfile.of(shipping) if shipping is not None else None
        loaders = info.context.loaders
        pk = self.shipping_override_pk
        if pk is None:
            profile = await loaders.profile_by_pk.load(self.profile_pk)
            pk = profile.shipping_profile_pk if profile is not None else None
        found = await loaders.shipping_profile_by_id.load(pk) if pk is not None else None
        return ShippingProfile.of(found) if found is not None else None

    @strawberry.field(description="The contract the subscription is under (null without one)")
    async def contract(self, info: Info) -> Annotated[Contract, strawberry.lazy("rebill.schema.contracts")] | None:
        from rebill.domain import contract as contract_rules
        from rebill.domain.cadence import local_today
        from rebill.schema.contracts import Contract

        state = await self.full_state(info)
        if state.contract is None:
            return None
        today = local_today(info.context.services.clock.now(), state.time_zone)
        return Contract.of(state.contract, contract_rules.effective_date_of(state, today))

    @strawberry.field(
        description="When a scheduled cancellation takes effect (null: none); resumeSubscription withdraws it"
    )
    def cancellation_date(self) -> date | None:
        return self.held_cancellation_date

    @strawberry.field(description="The invoicing settings: purchase order, memo, document type, drafts, terms")
    def invoicing(self, info: Info) -> InvoicingSettings:
        return InvoicingSettings.of(self.invoicing_terms, info.context.services.settings.payment_terms_days)

    @strawberry.field(description="The subscription's invoices, newest first")
    async def invoices(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> InvoiceConnection:
        key = (self.pk, Window(first, after, last, before), chronological(None))
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
        key = (self.pk, Window(first, after, last, before), chronological(order_by))
        page = await info.context.loaders.history_page_by_subscription.load(key)
        return connection(page, HistoryEntryEdge, HistoryEntryConnection, HistoryEntry.of)


def _dict_or_none(value: Any) -> Any:
    return dict(value) if value is not None else None


def _global(type_name: str, pk: int | None) -> strawberry.ID | None:
    return strawberry.ID(to_global_id(type_name, pk)) if pk else None


read_from_row(
    Subscription,
    {
        **columns(
            "trial_end_date",
            "start_date",
            "end_date",
            "current_period_start",
            "current_period_end",
            "anchor_date",
            "occurrences_billed",
            "overdue_count",
            "next_retry_date",
            "gateway_id",
            "last_gateway_id",
            "currency",
            "cancel_at_period_end",
            "time_zone",
            "version",
        ),
        "id": lambda r: strawberry.ID(to_global_id("Subscription", r["id"])),
        "status": lambda r: _STATUSES[r["status"]],
        "renewal_type": lambda r: _RENEWAL_TYPES[r["renewal_type"]],
        # The stored amount is the next bill's (every write keeps it so; filters and sorts read it too).
        "amount": lambda r: Money.of_minor(r["amount_minor"], r["currency"]),
        "next_renewal_date": lambda r: None if _STATUSES[r["status"]] in _FINAL else r["next_renewal_date"],
        "gateway_mode": lambda r: GatewayMode(r["gateway_mode"]) if r["gateway_mode"] else None,
        "shipping_address": lambda r: Address.of(parsed(r["shipping_address"])),
        "metadata": lambda r: _dict_or_none(parsed(r["metadata"])),
        "credit": lambda r: Money.of_minor(r["credit_minor"], r["currency"]) if r["credit_minor"] else None,
        "created_at": lambda r: r["created_at"] or _EPOCH,
        "updated_at": lambda r: r["updated_at"] or _EPOCH,
        "replaces_id": lambda r: _global("Subscription", r["replaces_id"]),
        "replaced_by_id": lambda r: _global("Subscription", r["replaced_by_id"]),
        "held_cancellation_date": lambda r: r["cancellation_date"],
        "invoicing_terms": lambda r: parsed(r["invoicing"]),
    },
)


def renewal_connection(page: Page) -> RenewalConnection:
    from rebill.db.repositories import renewal_from_row

    return connection(page, RenewalEdge, RenewalConnection, lambda r: Renewal.of(renewal_from_row(r)))


@strawberry.type
class SubscriptionEdge:
    cursor: str
    node: Subscription


def _total_count(root: SubscriptionConnection) -> int:
    """The page's total, counted now if it was left to be counted when asked for (an awaitable then)."""
    total: Any = root.page.count() if isinstance(root.page, LazyPage) else root.page.total
    return total


@strawberry.type
class SubscriptionConnection:
    edges: list[SubscriptionEdge]
    page_info: PageInfo
    total_count: int = strawberry.field(resolver=_total_count)
    page: strawberry.Private[Page]

    @classmethod
    def of(cls, page: Page, nodes: list[Subscription]) -> SubscriptionConnection:
        edges = [SubscriptionEdge(cursor=c, node=n) for c, n in zip(page.cursors, nodes, strict=True)]
        return cls(edges=edges, page_info=page_info(edges, page.has_next, page.has_previous), page=page)
