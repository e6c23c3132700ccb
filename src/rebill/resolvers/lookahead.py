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

from collections.abc import Iterable
from typing import Any

from graphql import FieldNode, FragmentSpreadNode, InlineFragmentNode, SelectionSetNode
from strawberry.dataloader import DataLoader
from strawberry.types import Info

from rebill.schema.catalog import Customer
from rebill.schema.subscriptions import Subscription, SubscriptionItem

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
    """Load what ``wanted`` asks of these subscriptions: one statement per relation and level. Each
    node keeps what was loaded for it, so that its fields take it without asking a loader (or the
    loader keeps it, for the relations whose fields ask it)."""
    fresh = [n for n in nodes if n.state is None]
    if not fresh:
        return
    fetch = _Fetch(info)
    loaders = info.context.loaders
    if "customer" in wanted:
        rows = await fetch(loaders.customer_by_id, {n.customer_pk for n in fresh})
        customers = {pk: Customer.of(row) if row is not None else None for pk, row in rows.items()}
        for node in fresh:
            node.held_customer = customers[node.customer_pk]  # one node a customer: answered once
    if "profile" in wanted:
        profiles = await fetch(loaders.profile_by_pk, {n.profile_pk for n in fresh})
        for node in fresh:
            node.held_profile = profiles[node.profile_pk]
    if "paymentMethod" in wanted:
        await fetch(loaders.payment_method_by_id, {n.payment_method_pk for n in fresh if n.payment_method_pk}, True)
    if "coupons" in wanted:
        await fetch(loaders.coupons_by_subscription, {n.pk for n in fresh}, True)
    if "items" in wanted:
        items = await fetch(loaders.items_by_subscription, {n.pk for n in fresh})
        for node in fresh:
            node.held_items = items[node.pk]
        every = [i for found in items.values() for i in found]
        await _products(fetch, every, selected(wanted["items"], fragments), fragments)


async def _products(fetch: _Fetch, items: list[SubscriptionItem], wanted: Selection, fragments: Any) -> None:
    """What the items' selection asks of their products (and, for a total from tiers, of the tiers)."""
    loaders = fetch.info.context.loaders
    tiers: set[int] = set()
    if "product" in wanted:
        products = await fetch(loaders.product_by_id, {i.product_pk for i in items})
        for item in items:
            item.held_product = products[item.product_pk]
        if "tiers" in selected(wanted["product"], fragments):
            tiers |= set(products)
    if "total" in wanted:
        tiers |= {i.product_pk for i in items if i.price_from_tiers}
    if tiers:
        await fetch(loaders.tiers_by_product, tiers, True)


class _Fetch:
    """What a loader gives for a page's keys.

    A root field's page is the only one: its keys, all known at once, go to the loader's batch
    function in one call (asking ``load`` key by key would cost a future, a callback and a scheduled
    call each, for one batch all the same), and the nodes keep what was read (``held_*``), or, with
    ``prime``, the loader does, for the fields that ask it. A page under a list (each customer's
    subscriptions) has siblings, one per parent, asking in the same tick: they go through ``load``,
    which batches them into one statement.
    """

    def __init__(self, info: Info) -> None:
        self.info = info
        self.alone = info.path.prev is None

    async def __call__(self, loader: DataLoader[Any, Any], keys: set[Any], prime: bool = False) -> dict[Any, Any]:
        if not keys:
            return {}
        wanted = list(keys)
        if not self.alone:
            return dict(zip(wanted, await loader.load_many(wanted), strict=True))
        found = dict(zip(wanted, await loader.load_fn(wanted), strict=True))
        if prime:
            loader.prime_many(found)
        return found
