"""Seed 003 (payment/CRM platform): suspend and activate, final cancellation, custom profiles,
product changes with a replacement subscription, partial refunds."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.support import (
    SUBSCRIPTION_FIELDS,
    change,
    error_codes,
    get_subscription,
    gql,
    history,
    make_world,
    mutate,
    ok,
    subscribe,
)


async def test_suspend_then_activate_resumes_and_history_records_both(client):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    suspended = ok(
        await mutate(client, "suspendSubscription", {"subscriptionId": sub["id"]}, "subscription { status }")
    )
    assert suspended["subscription"]["status"] == "SUSPENDED"
    again = await mutate(client, "suspendSubscription", {"subscriptionId": sub["id"]}, "subscription { status }")
    assert error_codes(again) == ["INVALID_STATUS"]
    assert "SUSPENDED" in again["userErrors"][0]["message"]
    active = ok(await mutate(client, "activateSubscription", {"subscriptionId": sub["id"]}, "subscription { status }"))
    assert active["subscription"]["status"] == "ACTIVE"
    entries = await history(client, sub["id"])
    assert [e["action"] for e in entries[-2:]] == ["suspended", "activated"]
    assert change(entries[-2], "status") == ("ACTIVE", "SUSPENDED")
    assert change(entries[-1], "status") == ("SUSPENDED", "ACTIVE")


async def test_suspension_notifies_the_customer_through_the_outbox(client):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    ok(await mutate(client, "suspendSubscription", {"subscriptionId": sub["id"]}, "subscription { id }"))
    data = await gql(
        client,
        "query($id: ID!) { notifications(subscriptionId: $id) { edges { node { kind recipient } } } }",
        {"id": sub["id"]},
    )
    kinds = [e["node"] for e in data["notifications"]["edges"]]
    assert {"kind": "SUBSCRIPTION_SUSPENDED", "recipient": "ada@example.com"} in kinds


async def test_a_cancelled_subscription_can_never_be_changed_again(client):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    ok(await mutate(client, "cancelSubscription", {"subscriptionId": sub["id"]}, "subscription { id }"))
    attempts = [
        ("activateSubscription", {}),
        ("suspendSubscription", {}),
        ("cancelSubscription", {}),
        ("changeNextRenewalDate", {"shift": {"unit": "DAY", "count": 3}}),
        ("updateItem", {"itemId": sub["items"][0]["id"], "quantity": 2}),
        ("renewNow", {}),
        ("forceBill", {}),
        ("setEndDate", {"endDate": "2030-01-01"}),
    ]
    for name, extra in attempts:
        payload = await mutate(client, name, {"subscriptionId": sub["id"], **extra}, "subscription { id }")
        assert error_codes(payload) == ["INVALID_STATUS"], (name, payload)
        assert "CANCELLED" in payload["userErrors"][0]["message"]
    assert (await get_subscription(client, sub["id"]))["status"] == "CANCELLED"
    actions = [e["action"] for e in await history(client, sub["id"])]
    assert actions == ["created", "initial_charge", "renewal_paid", "cancelled"], "nothing after the cancellation"


async def test_a_custom_profile_belongs_to_one_subscription(client):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    payload = ok(
        await mutate(
            client,
            "changeProfile",
            {
                "subscriptionId": sub["id"],
                "customProfile": {"name": "Every 45 days for ACME", "cadence": {"unit": "DAY", "count": 45}},
            },
            "subscription { nextRenewalDate profile { id name custom cadence { unit count } } }",
        )
    )
    profile = payload["subscription"]["profile"]
    assert profile["custom"] is True
    assert profile["cadence"] == {"unit": "DAY", "count": 45}
    assert payload["subscription"]["nextRenewalDate"] == sub["nextRenewalDate"]
    listed = await gql(client, "{ profiles { edges { node { id custom } } } }")
    assert profile["id"] not in [e["node"]["id"] for e in listed["profiles"]["edges"]]
    last = (await history(client, sub["id"]))[-1]
    assert last["action"] == "profile_changed"
    before, after = change(last, "profileId")
    assert (before, after) == (world.profile, profile["id"])


async def test_changing_the_product_creates_a_replacement_and_links_both(client):
    world = await make_world(client)
    ok(await mutate(client, "createCoupon", {"code": "LOYAL10", "percentOff": "10"}, "coupon { id }"))
    sub = (await subscribe(client, world, price="40.00"))["subscription"]
    ok(await mutate(client, "applyCoupon", {"subscriptionId": sub["id"], "code": "LOYAL10"}, "subscription { id }"))
    payload = ok(
        await mutate(
            client,
            "changeProduct",
            {
                "subscriptionId": sub["id"],
                "itemId": sub["items"][0]["id"],
                "productId": world.other_product,
                "unitPrice": {"amount": "30.00", "currency": "USD"},
                "quantity": 2,
                "transferCoupons": True,
                "consentReference": "customer chose the tea bundle on the phone",
            },
            f"subscription {{ {SUBSCRIPTION_FIELDS} replacesId }} replaced {{ id status replacedById }}",
        )
    )
    new, old = payload["subscription"], payload["replaced"]
    assert old["id"] == sub["id"]
    assert old["status"] == "CANCELLED"
    assert old["replacedById"] == new["id"]
    assert new["replacesId"] == sub["id"]
    assert new["status"] == "ACTIVE"
    assert [(i["product"]["sku"], i["quantity"]) for i in new["items"]] == [("tea", 2)]
    assert new["amount"]["amount"] == "54.00"  # 2 x 30.00 less the transferred 10 %
    assert [c["code"] for c in new["coupons"]] == ["LOYAL10"]
    assert new["nextRenewalDate"] == sub["nextRenewalDate"]
    old_history = await history(client, old["id"])
    assert [e["action"] for e in old_history][-2:] == ["replaced", "replacement_linked"]
    assert change(old_history[-1], "replacedById")[1] == new["id"]
    new_history = await history(client, new["id"])
    assert new_history[0]["action"] == "created_as_replacement"


async def test_product_change_without_transfer_leaves_coupons_behind(client):
    world = await make_world(client)
    ok(await mutate(client, "createCoupon", {"code": "LOYAL10", "percentOff": "10"}, "coupon { id }"))
    sub = (await subscribe(client, world, price="40.00"))["subscription"]
    ok(await mutate(client, "applyCoupon", {"subscriptionId": sub["id"], "code": "LOYAL10"}, "subscription { id }"))
    change_input = {"subscriptionId": sub["id"], "itemId": sub["items"][0]["id"], "productId": world.other_product}
    selection = "subscription { coupons { code } amount { amount } }"
    # Losing the coupon raises the bill from 36.00 to 40.00: that needs consent too.
    refused = await mutate(client, "changeProduct", change_input, selection)
    assert error_codes(refused) == ["CONSENT_REQUIRED"]
    payload = ok(
        await mutate(client, "changeProduct", {**change_input, "consentReference": "call 2026-01-15"}, selection)
    )
    assert payload["subscription"]["coupons"] == []
    assert payload["subscription"]["amount"]["amount"] == "40.00"


async def test_partial_refunds_never_exceed_what_was_paid(client):
    world = await make_world(client)
    created = await subscribe(client, world)
    renewal = created["renewal"]["id"]
    sub = created["subscription"]["id"]
    select = "renewal { status refundedAmount { amount } } subscription { id }"
    first = ok(
        await mutate(
            client, "refundRenewal", {"renewalId": renewal, "amount": {"amount": "20.00", "currency": "USD"}}, select
        )
    )
    assert first["renewal"] == {"status": "PARTIALLY_REFUNDED", "refundedAmount": {"amount": "20.00"}}
    too_much = await mutate(
        client, "refundRenewal", {"renewalId": renewal, "amount": {"amount": "42.97", "currency": "USD"}}, select
    )
    assert error_codes(too_much) == ["REFUND_EXCEEDS_PAID"]
    rest = ok(await mutate(client, "refundRenewal", {"renewalId": renewal}, select))
    assert rest["renewal"] == {"status": "REFUNDED", "refundedAmount": {"amount": "62.96"}}
    nothing_left = await mutate(client, "refundRenewal", {"renewalId": renewal}, select)
    assert error_codes(nothing_left) == ["REFUND_NOT_ALLOWED"]
    refunds = [e for e in await history(client, sub) if e["action"] == "renewal_refunded"]
    assert [change(e, f"renewals.{renewal}.refunded") for e in refunds] == [("0.00", "20.00"), ("20.00", "62.96")]


async def test_activate_with_a_passed_renewal_date_marks_it_due(client, clock):
    clock.set(datetime(2026, 1, 15, 9, tzinfo=UTC))
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    ok(await mutate(client, "suspendSubscription", {"subscriptionId": sub["id"]}, "subscription { id }"))
    clock.set(datetime(2026, 3, 1, 9, tzinfo=UTC))
    payload = ok(
        await mutate(
            client,
            "activateSubscription",
            {"subscriptionId": sub["id"]},
            "subscription { status nextRenewalDate occurrencesBilled }",
        )
    )
    assert payload["subscription"]["status"] == "ACTIVE"
    # The missed February renewal is billed at once on activation.
    assert payload["subscription"]["occurrencesBilled"] >= 2
