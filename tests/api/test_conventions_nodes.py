"""Every id a client sees is a global id that node(id:) resolves: checked for each type the schema says is a Node.

The types come from introspection, not from a list kept here, so a new type
that implements Node fails these tests until ``node`` reads it and the world
below holds one of it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from rebill.app import create_app
from rebill.bulk.runner import process_queued_runs
from rebill.ids import from_global_id
from rebill.services.apikeys import create_key
from tests.support import gql, gql_raw, make_world, mutate, ok, subscribe

#: Node types no test world can hold, and why. Keep it empty unless a type truly cannot exist here.
CANNOT_EXIST: dict[str, str] = {}

NODE = "query($id: ID!) { node(id: $id) { __typename id } }"
NODES = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }"

WORLD = """query($sub: ID!, $refunded: ID!, $run: ID!) {
  subscription(id: $sub) {
    id
    items { id }
    coupons { id }
    phases { id }
    profile { id }
    customer { id paymentMethods { id } }
    renewals(first: 10) { edges { node { id transactions { id } invoice { id } } } }
    history(first: 10) { edges { node { id } } }
  }
  refunded: subscription(id: $refunded) {
    renewals(first: 10) { edges { node { id transactions { id kind } invoice { creditNotes { id } } } } }
  }
  products(first: 10) { edges { node { id } } }
  coupon(code: "HALF") { id }
  notifications(first: 10) { edges { node { id } } }
  bulkRun(id: $run) { id items(first: 10) { edges { node { id } } } }
  webhookEndpoints(first: 10) { edges { node { id } } }
  webhookDeliveries(first: 10) { edges { node { id } } }
}"""


def _as(services: Any, bearer: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services)),
        base_url="http://rebill.test",
        headers={"Authorization": f"Bearer {bearer}"},
    )


async def _keyed(services: Any, name: str, *scopes: str) -> httpx.AsyncClient:
    return _as(services, (await create_key(services.engine, name, scopes, services.clock.now())).secret)


async def node_types(client: httpx.AsyncClient) -> set[str]:
    data = await gql(client, '{ __type(name: "Node") { possibleTypes { name } } }')
    return {t["name"] for t in data["__type"]["possibleTypes"]}


def _ids(value: Any) -> list[str]:
    """Every ``id`` anywhere in a response."""
    if isinstance(value, dict):
        own = [str(value["id"])] if "id" in value else []
        return own + [i for v in value.values() for i in _ids(v)]
    if isinstance(value, list):
        return [i for v in value for i in _ids(v)]
    return []


async def build_world(client: httpx.AsyncClient, services: Any) -> dict[str, str]:
    """One object of every kind, made as a client makes them; one id of each, by type, read by ordinary queries."""
    ok(await mutate(client, "createWebhookEndpoint", {"url": "https://partner.example/hooks"}, "endpoint { id }"))
    world = await make_world(client)
    ok(await mutate(client, "createCoupon", {"code": "HALF", "percentOff": "50"}, "coupon { id }"))
    sub = (await subscribe(client, world))["subscription"]
    ok(await mutate(client, "applyCoupon", {"subscriptionId": sub["id"], "code": "HALF"}, "subscription { id }"))
    later = (services.clock.now().date() + timedelta(days=40)).isoformat()
    ok(
        await mutate(
            client,
            "updateSubscription",
            {"subscriptionId": sub["id"], "effectiveDate": later, "metadata": {"plan": "later"}},
            "phase { id }",
        )
    )
    refunded = (await subscribe(client, world))["subscription"]
    refund = ok(
        await mutate(
            client,
            "cancelSubscription",
            {"subscriptionId": refunded["id"], "refundLastRenewal": True},
            "refund { id }",
        )
    )["refund"]
    plan = {"segments": [{"name": "all", "actions": [{"setMetadata": {"metadata": {"tier": "gold"}}}]}]}
    run = ok(await mutate(client, "startBulkRun", {"plan": plan, "dryRun": True}, "run { id }"))["run"]
    await process_queued_runs(services)

    data = await gql(client, WORLD, {"sub": sub["id"], "refunded": refunded["id"], "run": run["id"]})
    found: dict[str, str] = {}
    for gid in [*_ids(data), refund["id"]]:
        found.setdefault(from_global_id(gid)[0], gid)
    # The refund's transaction is a Transaction too, under an id of its own.
    [refund_tx] = [
        tx["id"]
        for edge in data["refunded"]["renewals"]["edges"]
        for tx in edge["node"]["transactions"]
        if tx["kind"] == "REFUND"
    ]
    found["Transaction (refund)"] = refund_tx
    rate = ok(
        await mutate(client, "createTaxRate", {"name": "VAT", "percentage": "20", "country": "GB"}, "taxRate { id }")
    )
    found["TaxRate"] = rate["taxRate"]["id"]
    rates = [{"name": "Post", "amount": {"amount": "3.00", "currency": "GBP"}}]
    shipping = ok(
        await mutate(client, "createShippingProfile", {"name": "UK", "rates": rates}, "shippingProfile { id }")
    )
    found["ShippingProfile"] = shipping["shippingProfile"]["id"]
    return found


async def test_node_resolves_one_object_of_every_type_that_implements_node(
    client: httpx.AsyncClient, services: Any
) -> None:
    types = await node_types(client)
    assert types >= {"Subscription", "Refund", "Transaction"}, types
    world = await build_world(client, services)
    missing = types - set(world) - set(CANNOT_EXIST)
    assert not missing, f"the test world holds no {sorted(missing)}: make one in build_world (or say why it cannot be)"
    assert not set(CANNOT_EXIST) & set(world), "a type listed as impossible exists: drop it from CANNOT_EXIST"
    for label, gid in world.items():
        type_name = label.split(" ")[0]
        assert type_name in types, f"{label} id {gid} names a type that is not a Node"
        data = await gql(client, NODE, {"id": gid})
        assert data["node"] == {"__typename": type_name, "id": gid}, f"node(id:) does not resolve a {label}"


async def test_nodes_resolves_every_type_in_one_call_in_the_order_asked(
    client: httpx.AsyncClient, services: Any
) -> None:
    world = await build_world(client, services)
    labels = sorted(world)
    data = await gql(client, NODES, {"ids": [world[label] for label in reversed(labels)]})
    assert data["nodes"] == [{"__typename": label.split(" ")[0], "id": world[label]} for label in reversed(labels)]


async def test_a_refund_is_both_a_refund_and_a_transaction(client: httpx.AsyncClient, services: Any) -> None:
    world = await build_world(client, services)
    refund, tx = world["Refund"], world["Transaction (refund)"]
    assert from_global_id(refund)[1] == from_global_id(tx)[1]  # the same transactions row
    data = await gql(
        client,
        "query($r: ID!, $t: ID!) { r: node(id: $r) { ... on Refund { amount { amount } } }"
        " t: node(id: $t) { ... on Transaction { kind amount { amount } } } }",
        {"r": refund, "t": tx},
    )
    assert data["r"] == {"amount": {"amount": "62.96"}}
    assert data["t"] == {"kind": "REFUND", "amount": {"amount": "62.96"}}


async def test_a_customer_token_looks_no_node_up(client: httpx.AsyncClient, services: Any) -> None:
    world = await build_world(client, services)
    customer = world["Customer"]
    session = ok(await mutate(client, "createCustomerPortalSession", {"customerId": customer}, "token"))
    async with _as(services, session["token"]) as token:
        for label, gid in world.items():
            body = (await gql_raw(token, NODE, {"id": gid})).json()
            assert body["data"] is None or body["data"]["node"] is None, label
            assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", label
        body = (await gql_raw(token, NODES, {"ids": list(world.values())})).json()
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        assert "62.96" not in str(body) and "ada@example.com" not in str(body)


async def test_bulk_and_webhook_nodes_keep_to_the_keys_that_may_see_them(
    client: httpx.AsyncClient, services: Any
) -> None:
    world = await build_world(client, services)
    guarded = {"BulkRun", "BulkRunItem", "WebhookEndpoint", "WebhookDelivery"}
    async with (
        await _keyed(services, "dashboard", "read") as reader,
        await _keyed(services, "other-operator", "read", "bulk") as operator,
    ):
        for label, gid in world.items():
            type_name = label.split(" ")[0]
            shown = (await gql(reader, NODE, {"id": gid}))["node"]
            assert shown == (None if type_name in guarded else {"__typename": type_name, "id": gid}), label
        # A bulk key sees the runs it started, and their items; this run is the admin key's.
        for type_name in ("BulkRun", "BulkRunItem"):
            assert (await gql(operator, NODE, {"id": world[type_name]}))["node"] is None, type_name
