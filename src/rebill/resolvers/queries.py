"""Read resolvers: lists are keyset pages with a total count, nested data comes from DataLoaders."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import strawberry
from sqlalchemy import select
from strawberry.types import Info

from rebill.db import tables as t
from rebill.db.repositories import SubscriptionRepository, profile_from_row, renewal_from_row, shipping_profile_from_row
from rebill.domain.errors import RebillError
from rebill.domain.money import Money as DomainMoney
from rebill.domain.subscription import SubscriptionState
from rebill.resolvers.lookahead import page_nodes, prefetch_subscriptions
from rebill.resolvers.pages import Window, fetch_page, read_page
from rebill.schema import inputs
from rebill.schema.catalog import Coupon, Customer, PaymentMethod, Product, SubscriptionProfile
from rebill.schema.common import ApiError, Node, PageInfo, decode_id, from_global_id, page_info, to_global_id
from rebill.schema.enums import NotificationKind, RenewalStatus
from rebill.schema.notifications import Notification, NotificationConnection, NotificationEdge
from rebill.schema.ordering import ChronologicalOrder, SubscriptionOrder, chronological, subscription_order
from rebill.schema.subscriptions import (
    AppliedCoupon,
    HistoryEntry,
    Phase,
    Renewal,
    RenewalConnection,
    Subscription,
    SubscriptionConnection,
    SubscriptionItem,
    Transaction,
    renewal_connection,
)
from rebill.schema.taxes import ShippingProfile, TaxRate
from rebill.services import filters
from rebill.services.customers import customer_of

S = t.table_of(t.Subscription)


def _pk(gid: str, type_name: str, field: str) -> int:
    try:
        return decode_id(gid, type_name, [field])
    except RebillError as exc:
        raise ApiError(exc.message, "BAD_USER_INPUT") from None


def _pks(gids: list[strawberry.ID] | None, type_name: str, field: str) -> tuple[int, ...] | None:
    return None if gids is None else tuple(_pk(g, type_name, field) for g in gids)


def to_filter(f: inputs.SubscriptionFilter | None) -> filters.SubscriptionFilter:
    """The GraphQL filter as the service's filter (ids decoded; bad input is a RebillError)."""
    if f is None:
        return filters.SubscriptionFilter()
    return filters.SubscriptionFilter(
        ids=_pks(f.ids, "Subscription", "ids"),
        status=tuple(f.status) if f.status is not None else None,
        renewal_type=f.renewal_type,
        profile_ids=_pks(f.profile_ids, "SubscriptionProfile", "profileIds"),
        product_ids=_pks(f.product_ids, "Product", "productIds"),
        customer_email=f.customer_email,
        customer_search=f.customer_search,
        next_renewal_from=f.next_renewal_from,
        next_renewal_to=f.next_renewal_to,
        in_trial=f.in_trial,
        amount_min=f.amount_min,
        amount_max=f.amount_max,
        currency=f.currency,
        gateway_mode=tuple(f.gateway_mode) if f.gateway_mode is not None else None,
        gateway_ids=tuple(f.gateway_ids) if f.gateway_ids is not None else None,
        has_gateway=f.has_gateway,
    )


async def subscription(info: Info, id: strawberry.ID) -> Subscription | None:
    try:
        pk = decode_id(id, "Subscription")
    except RebillError:
        return None
    row = await info.context.loaders.subscription_row_by_id.load(pk)
    return Subscription.of_row(row, info.context.loaders) if row is not None else None


async def subscriptions(
    info: Info,
    filter: inputs.SubscriptionFilter | None = None,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    order_by: SubscriptionOrder | None = None,
) -> SubscriptionConnection:
    try:
        where = filters.compile_filter(to_filter(filter))
    except RebillError as exc:
        raise ApiError(exc.message) from None
    return await subscription_page(info, where, first, after, last, before, order_by)


async def subscription_page(
    info: Info,
    where: list[Any],
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    order_by: SubscriptionOrder | None,
) -> SubscriptionConnection:
    """A page of subscriptions under ``where`` in the order asked for (the id by default).

    The page reads the subscriptions' rows, then what its selection asks of them
    (``rebill.resolvers.lookahead``); its total only when ``totalCount`` is asked for.
    """
    window = Window(first, after, last, before)
    page = await read_page(info.context.reads, S, where, window, subscription_order(order_by))
    loaders = info.context.loaders
    nodes = [Subscription.of_row(r, loaders) for r in page.rows]
    await prefetch_subscriptions(info, nodes, *page_nodes(info))
    return SubscriptionConnection.of(page, nodes)


async def renewal(info: Info, id: strawberry.ID) -> Renewal | None:
    try:
        pk = decode_id(id, "Renewal")
    except RebillError:
        return None
    table = t.table_of(t.Renewal)
    async with info.context.services.sessions() as session:
        row = (await session.execute(select(table).where(table.c.id == pk))).first()
    return Renewal.of(renewal_from_row(row)) if row is not None else None


async def refund(info: Info, id: strawberry.ID) -> inputs.Refund | None:
    """A refund by its global id: a ``transactions`` row of kind REFUND (any other kind is no refund)."""
    try:
        pk = decode_id(id, "Refund")
    except RebillError:
        return None
    table = t.table_of(t.Transaction)
    async with info.context.services.sessions() as session:
        row = (await session.execute(select(table).where(table.c.id == pk, table.c.kind == "REFUND"))).first()
    if row is None:
        return None
    return inputs.Refund.of(
        row.id,
        to_global_id("Renewal", row.renewal_id),
        DomainMoney(row.amount_minor, row.currency),
        row.gateway_reference,
    )


async def renewals(
    info: Info,
    subscription_id: strawberry.ID | None = None,
    status: list[RenewalStatus] | None = None,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    order_by: ChronologicalOrder | None = None,
) -> RenewalConnection:
    table = t.table_of(t.Renewal)
    where: list[Any] = []
    if subscription_id is not None:
        where.append(table.c.subscription_id == _pk(subscription_id, "Subscription", "subscriptionId"))
    if status is not None:
        where.append(table.c.status.in_([s.value for s in status]))
    async with info.context.services.sessions() as session:
        page = await fetch_page(
            session, table, where, first, after, last=last, before=before, order=chronological(order_by)
        )
    return renewal_connection(page)


async def profile(info: Info, id: strawberry.ID) -> SubscriptionProfile | None:
    try:
        pk = decode_id(id, "SubscriptionProfile")
    except RebillError:
        return None
    terms = await info.context.loaders.profile_by_id.load(pk)
    return SubscriptionProfile.of(terms) if terms is not None else None


@strawberry.type
class SubscriptionProfileEdge:
    cursor: str
    node: SubscriptionProfile


@strawberry.type
class SubscriptionProfileConnection:
    edges: list[SubscriptionProfileEdge]
    page_info: PageInfo
    total_count: int


async def profiles(
    info: Info,
    first: int | None = None,
    after: str | None = None,
    include_custom: bool = False,
    last: int | None = None,
    before: str | None = None,
) -> SubscriptionProfileConnection:
    table = t.table_of(t.Profile)
    where = [] if include_custom else [table.c.custom.is_(False)]
    async with info.context.services.sessions() as session:
        page = await fetch_page(session, table, where, first, after, last=last, before=before)
    edges = [
        SubscriptionProfileEdge(cursor=c, node=SubscriptionProfile.of(profile_from_row(r)))
        for r, c in zip(page.rows, page.cursors, strict=True)
    ]
    return SubscriptionProfileConnection(
        edges=edges,
        page_info=page_info(edges, page.has_next, page.has_previous),
        total_count=page.total,
    )


@strawberry.type
class ProductEdge:
    cursor: str
    node: Product


@strawberry.type
class ProductConnection:
    edges: list[ProductEdge]
    page_info: PageInfo
    total_count: int


async def products(
    info: Info, first: int | None = None, after: str | None = None, last: int | None = None, before: str | None = None
) -> ProductConnection:
    table = t.table_of(t.Product)
    async with info.context.services.sessions() as session:
        page = await fetch_page(session, table, [], first, after, last=last, before=before)
        repo = SubscriptionRepository(session)
        loaded = await repo.catalog.load_products([r.id for r in page.rows])
    edges = [ProductEdge(cursor=c, node=Product.of(loaded[r.id])) for r, c in zip(page.rows, page.cursors, strict=True)]
    return ProductConnection(
        edges=edges,
        page_info=page_info(edges, page.has_next, page.has_previous),
        total_count=page.total,
    )


async def customer(info: Info, id: strawberry.ID) -> Customer | None:
    try:
        pk = decode_id(id, "Customer")
    except RebillError:
        return None
    row = await info.context.loaders.customer_by_id.load(pk)
    return Customer.of(row) if row is not None else None


async def coupon(info: Info, code: str) -> Coupon | None:
    async with info.context.services.sessions() as session:
        try:
            found, _active = await SubscriptionRepository(session).catalog.coupon_by_code(code)
        except RebillError:
            return None
    return Coupon.of(found)


async def notifications(
    info: Info,
    subscription_id: strawberry.ID | None = None,
    kind: list[NotificationKind] | None = None,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> NotificationConnection:
    table = t.table_of(t.OutboxMessage)
    where: list[Any] = []
    if subscription_id is not None:
        where.append(table.c.subscription_id == _pk(subscription_id, "Subscription", "subscriptionId"))
    if kind is not None:
        where.append(table.c.kind.in_([k.value for k in kind]))
    async with info.context.services.sessions() as session:
        page = await fetch_page(session, table, where, first, after, last=last, before=before)
    edges = [NotificationEdge(cursor=c, node=Notification.of(r)) for r, c in zip(page.rows, page.cursors, strict=True)]
    return NotificationConnection(
        edges=edges,
        page_info=page_info(edges, page.has_next, page.has_previous),
        total_count=page.total,
    )


#: Reads one type of node by the primary key inside its global id; None when there is none to show.
NodeResolver = Callable[[Info, int], Awaitable[Node | None]]


def _from_row(model: Any, build: Callable[[Any], Node]) -> NodeResolver:
    """A node read as one row of ``model``'s table by its primary key, built by ``build`` (None when there is none)."""
    table = t.table_of(model)

    async def resolve(info: Info, pk: int) -> Node | None:
        async with info.context.services.sessions() as session:
            row = (await session.execute(select(table).where(table.c.id == pk))).first()
        return build(row) if row is not None else None

    return resolve


async def _holder(info: Info, table: Any, pk: int) -> SubscriptionState | None:
    """The subscription a row of ``table`` (an item, an applied coupon) belongs to, as the API shows it."""
    async with info.context.services.sessions() as session:
        found = (await session.execute(select(table.c.subscription_id).where(table.c.id == pk))).first()
    return await info.context.loaders.subscription_by_id.load(found.subscription_id) if found is not None else None


async def _subscription_item(info: Info, pk: int) -> SubscriptionItem | None:
    state = await _holder(info, t.table_of(t.SubscriptionItem), pk)
    item = next((i for i in state.items if i.id == pk), None) if state is not None else None
    return SubscriptionItem.of(item) if item is not None else None


async def _applied_coupon(info: Info, pk: int) -> AppliedCoupon | None:
    state = await _holder(info, t.table_of(t.AppliedCoupon), pk)
    applied = next((c for c in state.coupons if c.id == pk), None) if state is not None else None
    return AppliedCoupon.of(applied) if applied is not None else None


async def _payment_method(info: Info, pk: int) -> PaymentMethod | None:
    row = await info.context.loaders.payment_method_by_id.load(pk)
    return PaymentMethod.of(row) if row is not None else None


async def _product(info: Info, pk: int) -> Product | None:
    async with info.context.services.sessions() as session:
        loaded = await SubscriptionRepository(session).catalog.load_products([pk])
    return Product.of(loaded[pk]) if pk in loaded else None


async def _coupon(info: Info, pk: int) -> Coupon | None:
    table = t.table_of(t.Coupon)
    async with info.context.services.sessions() as session:
        row = (await session.execute(select(table.c.code).where(table.c.id == pk))).first()
    return await coupon(info, row.code) if row is not None else None


async def _bulk_run_item(info: Info, pk: int) -> Node | None:
    from rebill.resolvers.bulk import bulk_run_item

    return await bulk_run_item(info, pk)


async def _webhook_endpoint(info: Info, pk: int) -> Node | None:
    from rebill.resolvers.webhooks import webhook_node

    return await webhook_node(info, "WebhookEndpoint", pk)


async def _webhook_delivery(info: Info, pk: int) -> Node | None:
    from rebill.resolvers.webhooks import webhook_node

    return await webhook_node(info, "WebhookDelivery", pk)


async def _invoice(info: Info, pk: int) -> Node | None:
    from rebill.resolvers.invoices import invoice_by_pk

    return await invoice_by_pk(info, pk)


async def _credit_note(info: Info, pk: int) -> Node | None:
    from rebill.resolvers.invoices import credit_note_by_pk

    return await credit_note_by_pk(info, pk)


def _by_id(resolver: Callable[[Info, strawberry.ID], Awaitable[Node | None]], type_name: str) -> NodeResolver:
    """A ``type(id:)`` resolver as a node resolver (it decodes the id and applies its own rules)."""

    async def resolve(info: Info, pk: int) -> Node | None:
        return await resolver(info, strawberry.ID(to_global_id(type_name, pk)))

    return resolve


def _bulk_run(info: Info, id: strawberry.ID) -> Awaitable[Node | None]:
    from rebill.resolvers.bulk import bulk_run

    return bulk_run(info, id)


#: How ``node(id:)`` reads each type that implements Node, by the type name in the global id.
#: Every object type implementing Node has an entry; tests/api/test_conventions_nodes.py enforces it.
NODE_RESOLVERS: dict[str, NodeResolver] = {
    "Subscription": _by_id(subscription, "Subscription"),
    "Renewal": _by_id(renewal, "Renewal"),
    "SubscriptionProfile": _by_id(profile, "SubscriptionProfile"),
    "Customer": _by_id(customer, "Customer"),
    "PaymentMethod": _payment_method,
    "Product": _product,
    "Coupon": _coupon,
    "Refund": _by_id(refund, "Refund"),
    "Transaction": _from_row(t.Transaction, Transaction.of),
    "SubscriptionItem": _subscription_item,
    "AppliedCoupon": _applied_coupon,
    "HistoryEntry": _from_row(t.HistoryEntry, HistoryEntry.of),
    "Phase": _from_row(t.Phase, Phase.of),
    "Notification": _from_row(t.OutboxMessage, Notification.of),
    "BulkRun": _by_id(_bulk_run, "BulkRun"),
    "BulkRunItem": _bulk_run_item,
    "WebhookEndpoint": _webhook_endpoint,
    "WebhookDelivery": _webhook_delivery,
    "Invoice": _invoice,
    "CreditNote": _credit_note,
    "TaxRate": _from_row(t.TaxRate, lambda row: TaxRate.of(row)),
    "ShippingProfile": _from_row(t.ShippingProfile, lambda row: ShippingProfile.of(shipping_profile_from_row(row))),
}


async def node(info: Info, id: strawberry.ID) -> Node | None:
    """Any object by its global id (null when it names nothing this caller may read).

    A customer token reads through ``viewer`` only: the field itself needs the
    ``read`` scope, and should a customer actor get here anyway it sees nothing.
    """
    if customer_of(info.context.actor) is not None:
        return None
    try:
        type_name, _ = from_global_id(id)
        pk = decode_id(id, type_name)
    except RebillError:
        return None
    resolver = NODE_RESOLVERS.get(type_name)
    return await resolver(info, pk) if resolver is not None else None
