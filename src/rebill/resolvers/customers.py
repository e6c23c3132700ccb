"""Lookups: customers(filter:), Customer.subscriptions and nodes(ids:)."""

from __future__ import annotations

import asyncio

import strawberry
from sqlalchemy import ColumnElement
from strawberry.types import Info

from rebill.db import tables as t
from rebill.domain.errors import RebillError
from rebill.ids import from_global_id
from rebill.resolvers.lookahead import page_nodes, prefetch_subscriptions
from rebill.resolvers.pages import Window, fetch_page
from rebill.schema.catalog import Customer
from rebill.schema.common import ApiError, Node, page_info
from rebill.schema.customers import CustomerConnection, CustomerEdge, CustomerFilter
from rebill.schema.ordering import SubscriptionOrder, subscription_order
from rebill.schema.subscriptions import Subscription, SubscriptionConnection
from rebill.services.search import MAX_SEARCH_LENGTH, contains, customer_words, lower_email

C = t.table_of(t.Customer)
MAX_NODES = 100


def _text(value: str, field: str) -> str:
    if len(value) > MAX_SEARCH_LENGTH:
        raise ApiError(f"filter.{field} may be at most {MAX_SEARCH_LENGTH} characters")
    if "\x00" in value:
        raise ApiError(f"filter.{field} may not contain NUL characters")
    return value.strip().lower()


def customer_filter(f: CustomerFilter | None) -> list[ColumnElement[bool]]:
    if f is None:
        return []
    where: list[ColumnElement[bool]] = []
    if f.email is not None:
        where.append(lower_email == _text(f.email, "email"))
    if f.email_contains is not None:
        where.append(contains(lower_email, _text(f.email_contains, "emailContains")))
    if f.search is not None:
        where.extend(customer_words(_text(f.search, "search")))
    return where


async def customers(
    info: Info,
    filter: CustomerFilter | None = None,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> CustomerConnection:
    async with info.context.services.sessions() as session:
        page = await fetch_page(session, C, customer_filter(filter), first, after, last=last, before=before)
    edges = [CustomerEdge(cursor=c, node=Customer.of(r)) for r, c in zip(page.rows, page.cursors, strict=True)]
    return CustomerConnection(
        edges=edges, page_info=page_info(edges, page.has_next, page.has_previous), total_count=page.total
    )


async def customer_subscriptions(
    info: Info,
    customer_pk: int,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    order_by: SubscriptionOrder | None,
) -> SubscriptionConnection:
    key = (customer_pk, Window(first, after, last, before), subscription_order(order_by))
    page = await info.context.loaders.subscription_page_by_customer.load(key)
    loaders = info.context.loaders
    nodes = [Subscription.of_row(r, loaders) for r in page.rows]
    # Every customer's page resolves in the same tick: their prefetches batch together too.
    await prefetch_subscriptions(info, nodes, *page_nodes(info))
    return SubscriptionConnection.of(page, nodes)


BATCHED = frozenset({"Subscription", "Customer", "SubscriptionProfile", "PaymentMethod"})


def _kind(gid: str) -> str | None:
    try:
        return from_global_id(gid)[0]
    except RebillError:
        return None


async def nodes(info: Info, ids: list[strawberry.ID]) -> list[Node | None]:
    """Objects by global id, in the order asked; null for an id that names nothing."""
    from rebill.resolvers.queries import node

    if len(ids) > MAX_NODES:
        raise ApiError(f"ids may list at most {MAX_NODES} ids (got {len(ids)})")
    found: list[Node | None] = [None] * len(ids)
    # Kinds read through DataLoaders are resolved together: one query per kind, whatever the count.
    batched = [n for n, gid in enumerate(ids) if _kind(gid) in BATCHED]
    for n, obj in zip(batched, await asyncio.gather(*(node(info, ids[n]) for n in batched)), strict=True):
        found[n] = obj
    for n, gid in enumerate(ids):
        if n not in batched and _kind(gid) is not None:
            found[n] = await node(info, gid)
    return found
