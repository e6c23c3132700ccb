"""Local updates (seed 001): proration, items, end dates, payment methods, gateways, declines."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.support import (
    add_card,
    change,
    error_codes,
    get_subscription,
    gql,
    history,
    make_customer,
    make_product,
    make_world,
    mutate,
    ok,
    subscribe,
)

CHARGE = "subscription { amount { amount } credit { amount } items { quantity } } renewal { kind status amount { amount } periodStart periodEnd cycle adjustment }"


async def test_an_immediate_prorated_upgrade_charges_the_days_left(client, clock):
    clock.set(datetime(2026, 4, 1, 9, tzinfo=UTC))
    world = await make_world(client)
    sub = (await subscribe(client, world, price="30.00"))["subscription"]  # April: 30 days
    clock.set(datetime(2026, 4, 21, 9, tzinfo=UTC))  # 10 days left
    payload = ok(
        await mutate(
            client,
            "updateItem",
            {
                "subscriptionId": sub["id"],
                "itemId": sub["items"][0]["id"],
                "quantity": 2,
                "proration": "PRORATED",
                "consentReference": "phone 2026-04-21",
            },
            CHARGE.replace("renewal {", "renewal { id"),
        )
    )
    renewal = payload["renewal"]
    assert renewal["kind"] == "MANUAL" and renewal["adjustment"] is True
    assert renewal["amount"]["amount"] == "10.00"  # 30.00 more x 10 / 30 days
    assert (renewal["periodStart"], renewal["periodEnd"]) == ("2026-04-21", "2026-05-01")
    assert renewal["status"] == "PAID"
    assert payload["subscription"]["amount"]["amount"] == "60.00"
    entries = await history(client, sub["id"])
    actions = [e["action"] for e in entries]
    assert actions[-2:] == ["item_updated", "renewal_paid"], "the change with its charge, then the charge settled"
    updated, settled = entries[-2:]
    assert change(updated, f"items.{sub['items'][0]['id']}.quantity") == (1, 2)
    assert change(updated, f"renewals.{renewal['id']}")[1]["status"] == "PENDING"
    assert change(settled, f"renewals.{renewal['id']}.status") == ("PENDING", "PAID")


async def test_an_immediate_prorated_downgrade_credits_the_next_bill(client, clock):
    clock.set(datetime(2026, 2, 1, 9, tzinfo=UTC))
    world = await make_world(client)
    sub = (await subscribe(client, world, price="28.00", quantity=2))["subscription"]  # February 2026: 28 days
    clock.set(datetime(2026, 2, 15, 9, tzinfo=UTC))  # 14 days left
    payload = ok(
        await mutate(
            client,
            "updateItem",
            {"subscriptionId": sub["id"], "itemId": sub["items"][0]["id"], "quantity": 1, "proration": "PRORATED"},
            CHARGE + " creditNote { number total { amount } refunded invoice { number } }",
        )
    )
    assert payload["renewal"] is None, "a credit is no renewal"
    note = payload["creditNote"]
    assert (note["total"]["amount"], note["refunded"]) == ("14.00", False), "documented, to the balance"
    assert note["number"].startswith("CN-") and note["invoice"]["number"].startswith("INV-")
    assert payload["subscription"]["credit"]["amount"] == "14.00"
    assert payload["subscription"]["amount"]["amount"] == "28.00"


async def test_full_proration_charges_the_whole_difference_and_none_charges_nothing(client):
    world = await make_world(client)
    sub = (await subscribe(client, world, price="10.00"))["subscription"]
    item = sub["items"][0]["id"]
    full = ok(
        await mutate(
            client,
            "updateItem",
            {"subscriptionId": sub["id"], "itemId": item, "quantity": 3, "proration": "FULL", "consentReference": "ok"},
            CHARGE,
        )
    )
    assert full["renewal"]["amount"]["amount"] == "20.00"
    none = ok(
        await mutate(
            client,
            "updateItem",
            {"subscriptionId": sub["id"], "itemId": item, "quantity": 4, "proration": "NONE", "consentReference": "ok"},
            CHARGE,
        )
    )
    assert none["renewal"] is None


async def test_usage_quantities_cannot_be_set(client):
    world = await make_world(client)
    metered = await make_product(client, "api-calls", kind="USAGE")
    payload = ok(
        await mutate(
            client,
            "createSubscription",
            {
                "customerId": world.customer,
                "profileId": world.profile,
                "items": [{"productId": metered, "unitPrice": {"amount": "0.01", "currency": "USD"}, "quantity": 1000}],
            },
            "subscription { id items { id } }",
        )
    )
    sub = payload["subscription"]
    refused = await mutate(
        client,
        "updateItem",
        {"subscriptionId": sub["id"], "itemId": sub["items"][0]["id"], "quantity": 5},
        "subscription { id }",
    )
    assert error_codes(refused) == ["QUANTITY_NOT_CHANGEABLE"]


async def test_items_can_be_added_and_removed_but_not_the_last_one(client):
    world = await make_world(client)
    sub = (await subscribe(client, world, price="10.00"))["subscription"]
    added = ok(
        await mutate(
            client,
            "addItem",
            {
                "subscriptionId": sub["id"],
                "productId": world.other_product,
                "unitPrice": {"amount": "5.00", "currency": "USD"},
                "quantity": 2,
                "consentReference": "add-on accepted",
            },
            "subscription { amount { amount } items { id product { sku } } }",
        )
    )["subscription"]
    assert added["amount"]["amount"] == "20.00"
    assert [i["product"]["sku"] for i in added["items"]] == ["coffee", "tea"]
    removed = ok(
        await mutate(
            client,
            "removeItem",
            {"subscriptionId": sub["id"], "itemId": added["items"][0]["id"]},
            "subscription { items { id } amount { amount } }",
        )
    )["subscription"]
    assert removed["amount"]["amount"] == "10.00"
    last = await mutate(
        client, "removeItem", {"subscriptionId": sub["id"], "itemId": removed["items"][0]["id"]}, "subscription { id }"
    )
    assert error_codes(last) == ["LAST_ITEM"]
    assert "cancel" in last["userErrors"][0]["message"]
    entries = await history(client, sub["id"])
    assert [e["action"] for e in entries[-2:]] == ["item_added", "item_removed"]


async def test_adding_an_item_without_consent_is_refused(client):
    world = await make_world(client)
    sub = (await subscribe(client, world, price="10.00"))["subscription"]
    refused = await mutate(
        client,
        "addItem",
        {
            "subscriptionId": sub["id"],
            "productId": world.other_product,
            "unitPrice": {"amount": "5.00", "currency": "USD"},
        },
        "subscription { id }",
    )
    assert error_codes(refused) == ["CONSENT_REQUIRED"]


async def test_coupons_apply_and_come_off_with_immediate_effect(client):
    world = await make_world(client)
    ok(
        await mutate(
            client,
            "createCoupon",
            {"code": "HALF", "percentOff": "50", "duration": "REPEATING", "durationCycles": 3},
            "coupon { id }",
        )
    )
    sub = (await subscribe(client, world, price="62.96"))["subscription"]
    applied = ok(
        await mutate(
            client,
            "applyCoupon",
            {"subscriptionId": sub["id"], "code": "HALF"},
            "subscription { amount { amount } coupons { code active } }",
        )
    )
    assert applied["subscription"]["amount"]["amount"] == "31.48"
    twice = await mutate(client, "applyCoupon", {"subscriptionId": sub["id"], "code": "HALF"}, "subscription { id }")
    assert error_codes(twice) == ["COUPON_ALREADY_APPLIED"]
    unknown = await mutate(client, "applyCoupon", {"subscriptionId": sub["id"], "code": "NOPE"}, "subscription { id }")
    assert error_codes(unknown) == ["NOT_FOUND"]
    removed = ok(
        await mutate(
            client,
            "removeCoupon",
            {"subscriptionId": sub["id"], "code": "HALF"},
            "subscription { amount { amount } coupons { code } }",
        )
    )
    assert removed["subscription"] == {"amount": {"amount": "62.96"}, "coupons": []}
    assert change((await history(client, sub["id"]))[-1], "coupons") == (["HALF"], [])


async def test_the_end_date_cannot_come_before_the_current_period_ends(client, clock):
    clock.set(datetime(2026, 1, 15, 9, tzinfo=UTC))
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]  # period ends 2026-02-15
    early = await mutate(
        client, "setEndDate", {"subscriptionId": sub["id"], "endDate": "2026-02-01"}, "subscription { id }"
    )
    assert error_codes(early) == ["END_BEFORE_PERIOD_END"]
    relative = ok(
        await mutate(
            client,
            "setEndDate",
            {"subscriptionId": sub["id"], "after": {"unit": "MONTH", "count": 12}},
            "subscription { endDate }",
        )
    )
    assert relative["subscription"]["endDate"] == "2027-01-15"
    forever = ok(await mutate(client, "setEndDate", {"subscriptionId": sub["id"]}, "subscription { endDate }"))
    assert forever["subscription"]["endDate"] is None


async def test_only_the_customers_own_payment_methods_can_be_set(client):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    own = await add_card(client, world.customer, "5555555555554444", default=False)
    ok(
        await mutate(
            client, "setPaymentMethod", {"subscriptionId": sub["id"], "paymentMethodId": own}, "subscription { id }"
        )
    )
    stranger = await make_customer(client, email="eve@example.com")
    theirs = await add_card(client, stranger)
    refused = await mutate(
        client, "setPaymentMethod", {"subscriptionId": sub["id"], "paymentMethodId": theirs}, "subscription { id }"
    )
    assert error_codes(refused) == ["PAYMENT_METHOD_NOT_OWNED"]


async def test_gateways_can_be_forced_preferred_or_cleared(client):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    unknown = await mutate(
        client, "setGateway", {"subscriptionId": sub["id"], "gatewayId": "paypal"}, "subscription { id }"
    )
    assert error_codes(unknown) == ["UNKNOWN_GATEWAY"]
    forced = ok(
        await mutate(
            client,
            "setGateway",
            {"subscriptionId": sub["id"], "gatewayId": "sandbox-b", "mode": "FORCED"},
            "subscription { gatewayId gatewayMode }",
        )
    )
    assert forced["subscription"] == {"gatewayId": "sandbox-b", "gatewayMode": "FORCED"}
    charged = ok(await mutate(client, "forceBill", {"subscriptionId": sub["id"]}, "renewal { id }"))
    data = await gql(
        client,
        "query($id: ID!) { renewal(id: $id) { gatewayId transactions { gatewayId } } }",
        {"id": charged["renewal"]["id"]},
    )
    assert data["renewal"]["gatewayId"] == "sandbox-b"
    cleared = ok(
        await mutate(client, "setGateway", {"subscriptionId": sub["id"]}, "subscription { gatewayId gatewayMode }")
    )
    assert cleared["subscription"] == {"gatewayId": None, "gatewayMode": None}


async def test_a_declined_card_is_a_user_error_and_the_failed_attempt_is_recorded(client):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    declining = await add_card(client, world.customer, "4000000000009995", default=False)
    ok(
        await mutate(
            client,
            "setPaymentMethod",
            {"subscriptionId": sub["id"], "paymentMethodId": declining},
            "subscription { id }",
        )
    )
    before = await get_subscription(client, sub["id"])
    payload = await mutate(
        client,
        "renewNow",
        {"subscriptionId": sub["id"]},
        "renewal { id status attempts } subscription { nextRenewalDate version }",
    )
    assert error_codes(payload) == ["PAYMENT_DECLINED"]
    assert "insufficient_funds" in payload["userErrors"][0]["message"]
    assert payload["renewal"]["status"] == "FAILED"
    data = await gql(
        client,
        "query($id: ID!) { renewal(id: $id) { transactions { status declineCode } } }",
        {"id": payload["renewal"]["id"]},
    )
    assert data["renewal"]["transactions"] == [{"status": "FAILED", "declineCode": "insufficient_funds"}]
    after = await get_subscription(client, sub["id"])
    # As for a declined scheduled renewal: the period is owed, the schedule moves on, dunning runs.
    assert after["status"] == "OVERDUE"
    assert after["nextRenewalDate"] > before["nextRenewalDate"]
    assert [h["action"] for h in await history(client, sub["id"])][-2:] == ["renewed_now", "renewal_failed"]


async def test_retrying_a_failed_renewal_after_the_card_is_fixed_collects_it(client):
    world = await make_world(client)
    declining = await add_card(client, world.customer, "4000000000000002", default=True)
    created = await subscribe(client, world, paymentMethodId=declining)
    assert created["subscription"]["status"] == "OVERDUE"
    failed = created["renewal"]
    assert failed["status"] == "FAILED"
    notices = await gql(
        client,
        "query($id: ID!) { notifications(subscriptionId: $id, kind: [PAYMENT_DECLINED]) { edges { node { payload } } } }",
        {"id": created["subscription"]["id"]},
    )
    payload = notices["notifications"]["edges"][0]["node"]["payload"]
    assert payload["declineCode"] == "card_declined"
    assert "/payment-methods" in payload["updatePaymentMethodUrl"]
    again = await mutate(client, "retryRenewal", {"renewalId": failed["id"]}, "renewal { status attempts }")
    assert error_codes(again) == ["PAYMENT_DECLINED"]
    ok(
        await mutate(
            client,
            "setPaymentMethod",
            {"subscriptionId": created["subscription"]["id"], "paymentMethodId": world.card},
            "subscription { id }",
        )
    )
    paid = ok(
        await mutate(
            client,
            "retryRenewal",
            {"renewalId": failed["id"]},
            "renewal { status attempts } subscription { status overdueCount }",
        )
    )
    assert paid["renewal"] == {"status": "PAID", "attempts": 3}
    assert paid["subscription"] == {"status": "ACTIVE", "overdueCount": 0}
    not_failed = await mutate(client, "retryRenewal", {"renewalId": failed["id"]}, "renewal { status }")
    assert error_codes(not_failed) == ["INVALID_STATUS"]
