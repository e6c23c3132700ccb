"""What a page's selection asks of its subscriptions, loaded before its fields resolve.

A page's subscriptions are read from their rows alone; each relation (items,
profile, customer, …) has a DataLoader, so a field asked of every node is one
statement for the page however long. A page resolver that knows the
selection loads those relations first, level by level, so that every field
below it finds its loader's value in hand and resolves at once, without an
awaitable per node (``rebill.schema.execution``). Only what the selection
names is read; anything it cannot see ahead (a relation inside a relation)
still goes through the same loaders when it resolves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any

from graphql import FieldNode, FragmentSpreadNode, InlineFragmentNode, SelectionSetNode
from strawberry.types import Info

from rebill.schema.subscriptions import Subscription

#: Field names selected under some field nodes, each with the nodes selecting it (fragments merged).
Selection = dict[str, list[FieldNode]]


def selected(nodes: Iterable[FieldNode], fragments: dict[str, Any]) -> Selection:
    """The fields selected under ``nodes``, through inline fragments and fragment spreads."""
    found: Selection = {}
    stack: list[SelectionSetNode] = [n.selection_set for n in nodes if n.selection_set is not None]
    seen: set[int] = set()
    while stack:
        selection_set = stack.pop()
        if id(selection_set) in seen:
            continue
        seen.add(id(selection_set))
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                found.setdefault(selection.name.value, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                stack.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = fragments.get(selection.name.value)
                if fragment is not None:
                    stack.append(fragment.selection_set)
    return found


def page_nodes(info: Info) -> tuple[Selection, dict[str, Any]]:
    """What a connection field's selection asks of each ``edges { node }``, and the document's fragments."""
    raw = info._raw_info
    fragments = raw.fragments
    edges = selected(raw.field_nodes, fragments).get("edges", [])
    return selected(selected(edges, fragments).get("node", []), fragments), fragments


async def prefetch_subscriptions(info: Info, nodes: list[Subscription], wanted: Selection, fragments: Any) -> None:
    """Load what ``wanted`` asks of these subscriptions: one statement per relation and level."""
    fresh = [n for n in nodes if n.state is None]
    if not fresh:
        return
    loaders = info.context.loaders
    work: list[Awaitable[Any]] = []
    if "customer" in wanted:
        work.append(loaders.customer_by_id.load_many({n.customer_pk for n in fresh}))
    if "paymentMethod" in wanted:
        pms = {n.payment_method_pk for n in fresh if n.payment_method_pk is not None}
        work.append(loaders.payment_method_by_id.load_many(pms))
    if "profile" in wanted:
        work.append(loaders.profile_by_pk.load_many({n.profile_pk for n in fresh}))
    if "coupons" in wanted:
        work.append(loaders.coupons_by_subscription.load_many([n.pk for n in fresh]))
    if "items" in wanted:
        work.append(_items(info, [n.pk for n in fresh], selected(wanted["items"], fragments), fragments))
    if work:
        await asyncio.gather(*work)


async def _items(info: Info, pks: list[int], wanted: Selection, fragments: Any) -> None:
    """The items, then what their selection asks of their products."""
    loaders = info.context.loaders
    items = [i for found in await loaders.items_by_subscription.load_many(pks) for i in found]
    work: list[Awaitable[Any]] = []
    tiers: set[int] = set()
    if "product" in wanted:
        products = {i.product_pk for i in items}
        work.append(loaders.product_by_id.load_many(products))
        if "tiers" in selected(wanted["product"], fragments):
            tiers |= products
    if "total" in wanted:
        tiers |= {i.product_pk for i in items if i.price_from_tiers}
    if tiers:
        work.append(loaders.tiers_by_product.load_many(tiers))
    if work:
        await asyncio.gather(*work)
