"""Small wrong answers: payloads show what changed, every id is a global id, decimals read back as typed."""

from __future__ import annotations

from rebill.ids import from_global_id, to_global_id
from tests.api.test_hostile_scopes import _keyed
from tests.support import gql, gql_raw, make_world, mutate, ok, subscribe

REFUND_FIELDS = "id renewalId amount { amount currency } gatewayReference"
REFUND_NODE = "query($id: ID!) { node(id: $id) { __typename id ... on Refund { " + REFUND_FIELDS + " } } }"
REFUND_NODES = (
    "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id ... on Refund { "
    + REFUND_FIELDS
    + " } ... on Renewal { status } } }"
)


async def test_cancel_phase_returns_the_cancelled_phase(client):
    world = await make_world(client)
    sub = (await subscribe(client, world, price="20.00"))["subscription"]
    phase = ok(
        await mutate(
            client,
            "updateSubscription",
            {"subscriptionId": sub["id"], "effectiveDate": "2026-04-01", "renewalType": "MANUAL"},
            "phase { id }",
        )
    )["phase"]
    cancelled = ok(
        await mutate(
            client,
            "cancelPhase",
            {"subscriptionId": sub["id"], "phaseId": phase["id"]},
            "phase { id status effectiveDate }",
        )
    )
    assert cancelled["phase"] == {"id": phase["id"], "status": "CANCELLED", "effectiveDate": "2026-04-01"}


async def test_a_refunds_renewal_id_is_a_global_id_that_node_resolves(client):
    world = await make_world(client)
    created = await subscribe(client, world)
    payload = ok(
        await mutate(
            client,
            "cancelSubscription",
            {"subscriptionId": created["subscription"]["id"], "refundLastRenewal": True},
            "refund { renewalId amount { amount } }",
        )
    )
    renewal_id = payload["refund"]["renewalId"]
    assert renewal_id == created["renewal"]["id"]
    node = await gql(client, "query($id: ID!) { node(id: $id) { id ... on Renewal { status } } }", {"id": renewal_id})
    assert node["node"] == {"id": renewal_id, "status": "REFUNDED"}


async def _cancel_with_refund(client) -> tuple[dict, dict]:
    world = await make_world(client)
    created = await subscribe(client, world)
    payload = ok(
        await mutate(
            client,
            "cancelSubscription",
            {"subscriptionId": created["subscription"]["id"], "refundLastRenewal": True},
            f"refund {{ {REFUND_FIELDS} }}",
        )
    )
    return created, payload["refund"]


async def test_a_refunds_id_is_a_global_id_that_node_resolves_to_the_same_refund(client):
    created, refund = await _cancel_with_refund(client)
    assert from_global_id(refund["id"])[0] == "Refund"
    assert refund["renewalId"] == created["renewal"]["id"]
    assert refund["amount"] == {"amount": "62.96", "currency": "USD"}
    data = await gql(client, REFUND_NODE, {"id": refund["id"]})
    assert data["node"] == {"__typename": "Refund", **refund}


async def test_nodes_resolves_refunds_among_other_ids_in_the_order_asked(client):
    created, refund = await _cancel_with_refund(client)
    renewal = created["renewal"]["id"]
    data = await gql(client, REFUND_NODES, {"ids": [refund["id"], renewal, refund["id"]]})
    assert data["nodes"] == [
        {"__typename": "Refund", **refund},
        {"__typename": "Renewal", "id": renewal, "status": "REFUNDED"},
        {"__typename": "Refund", **refund},
    ]


async def test_only_refund_transactions_answer_as_refunds(client):
    created, refund = await _cancel_with_refund(client)
    renewal = created["renewal"]["id"]
    transactions = (
        await gql(
            client,
            "query($id: ID!) { renewal(id: $id) { transactions { id kind } } }",
            {"id": renewal},
        )
    )["renewal"]["transactions"]
    [charge] = [from_global_id(tx["id"])[1] for tx in transactions if tx["kind"] == "CHARGE"]
    [refund_pk] = [from_global_id(tx["id"])[1] for tx in transactions if tx["kind"] == "REFUND"]
    assert refund["id"] == to_global_id("Refund", refund_pk)
    not_refunds = [
        to_global_id("Refund", charge),  # a CHARGE transaction wrapped as a Refund
        to_global_id("Refund", 999999),  # no transaction at all
        to_global_id("Refund", "x"),
        to_global_id("Refund", 2**70),
    ]
    for gid in not_refunds:
        assert (await gql(client, REFUND_NODE, {"id": gid}))["node"] is None, gid
    assert (await gql(client, REFUND_NODES, {"ids": not_refunds}))["nodes"] == [None] * len(not_refunds)
    # The renewal's own global id names the renewal, never its refund.
    data = await gql(client, REFUND_NODES, {"ids": [renewal]})
    assert data["nodes"] == [{"__typename": "Renewal", "id": renewal, "status": "REFUNDED"}]


async def test_a_key_without_read_may_not_look_a_refund_up(client, services):
    _, refund = await _cancel_with_refund(client)
    async with await _keyed(services, "refunder", "write", "refund") as refunder:
        body = (await gql_raw(refunder, REFUND_NODE, {"id": refund["id"]})).json()
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "62.96" not in str(body)


async def test_percent_off_reads_back_as_plain_decimal_strings(client):
    for code, typed in (("TEN", "10"), ("HALF", "12.5"), ("HUNDRED", "100")):
        payload = ok(await mutate(client, "createCoupon", {"code": code, "percentOff": typed}, "coupon { percentOff }"))
        assert payload["coupon"]["percentOff"] == typed
        data = await gql(client, "query($c: String!) { coupon(code: $c) { percentOff } }", {"c": code})
        assert data["coupon"]["percentOff"] == typed
