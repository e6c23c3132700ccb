"""Small wrong answers: payloads show what changed, every id is a global id, decimals read back as typed."""

from __future__ import annotations

from tests.support import gql, make_world, mutate, ok, subscribe


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


async def test_percent_off_reads_back_as_plain_decimal_strings(client):
    for code, typed in (("TEN", "10"), ("HALF", "12.5"), ("HUNDRED", "100")):
        payload = ok(await mutate(client, "createCoupon", {"code": code, "percentOff": typed}, "coupon { percentOff }"))
        assert payload["coupon"]["percentOff"] == typed
        data = await gql(client, "query($c: String!) { coupon(code: $c) { percentOff } }", {"c": code})
        assert data["coupon"]["percentOff"] == typed
