"""Seed 000 (call-centre agent): rebill date extension, save-a-sale, force bill, cancel."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.support import (
    SUBSCRIPTION_FIELDS,
    add_method,
    change,
    error_codes,
    get_subscription,
    history,
    make_world,
    mutate,
    ok,
    subscribe,
)

RENEWAL = "renewal { id kind status cycle periodStart periodEnd amount { amount } fulfillment }"


async def test_agent_moves_the_rebill_date_two_months_and_history_shows_it(client, clock):
    clock.set(datetime(2026, 8, 26, 10, tzinfo=UTC))
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    assert sub["nextRenewalDate"] == "2026-09-26"

    payload = ok(
        await mutate(
            client,
            "changeNextRenewalDate",
            {"subscriptionId": sub["id"], "shift": {"unit": "MONTH", "count": 2}, "reason": "still has product"},
            f"subscription {{ {SUBSCRIPTION_FIELDS} }}",
        )
    )
    assert payload["subscription"]["nextRenewalDate"] == "2026-11-26"
    assert payload["subscription"]["version"] == sub["version"] + 1

    last = (await history(client, sub["id"]))[-1]
    assert last["action"] == "next_renewal_date_changed"
    assert last["actor"] == "support-agent"
    assert last["reason"] == "still has product"
    assert change(last, "nextRenewalDate") == ("2026-09-26", "2026-11-26")
    assert change(last, "anchorDate") == ("2026-08-26", "2026-11-26")


async def test_a_rebill_date_in_the_past_is_refused_and_nothing_changes(client, clock):
    clock.set(datetime(2026, 8, 26, 10, tzinfo=UTC))
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    payload = await mutate(
        client, "changeNextRenewalDate", {"subscriptionId": sub["id"], "date": "2026-08-01"}, "subscription { id }"
    )
    assert error_codes(payload) == ["DATE_IN_PAST"]
    assert payload["subscription"] is None
    assert (await get_subscription(client, sub["id"]))["nextRenewalDate"] == "2026-09-26"
    actions = [e["action"] for e in await history(client, sub["id"])]
    assert actions == ["created", "initial_charge", "renewal_paid"], "only the creation and its first charge"


async def test_save_a_sale_discount_lowers_the_price_without_consent(client):
    world = await make_world(client)
    sub = (await subscribe(client, world, price="62.96"))["subscription"]
    item = sub["items"][0]["id"]
    payload = ok(
        await mutate(
            client,
            "updateItem",
            {"subscriptionId": sub["id"], "itemId": item, "unitPrice": {"amount": "55.00", "currency": "USD"}},
            "subscription { amount { amount } items { unitPrice { amount } } }",
        )
    )
    assert payload["subscription"]["amount"]["amount"] == "55.00"
    last = (await history(client, sub["id"]))[-1]
    assert last["action"] == "item_updated"
    assert change(last, f"items.{item}.unitPrice") == ("62.96", "55.00")
    assert change(last, "amount") == ("62.96", "55.00")


async def test_force_bill_charges_and_ships_now_and_moves_the_anchor(client, clock):
    clock.set(datetime(2026, 3, 10, 12, tzinfo=UTC))
    world = await make_world(client)
    sub = (await subscribe(client, world, startDate="2026-03-01"))["subscription"]
    ok(
        await mutate(
            client,
            "updateShippingAddress",
            {"subscriptionId": sub["id"], "address": {"line1": "1 Main St", "city": "Springfield", "country": "us"}},
            "subscription { id }",
        )
    )
    payload = ok(
        await mutate(
            client,
            "forceBill",
            {"subscriptionId": sub["id"]},
            f"subscription {{ nextRenewalDate anchorDate }} {RENEWAL}",
        )
    )
    renewal = payload["renewal"]
    assert renewal["kind"] == "FORCED"
    assert renewal["status"] == "PAID"
    assert renewal["cycle"] == 2
    assert (renewal["periodStart"], renewal["periodEnd"]) == ("2026-03-10", "2026-04-10")
    assert renewal["fulfillment"] == "PENDING"
    assert payload["subscription"]["nextRenewalDate"] == "2026-04-10"
    assert payload["subscription"]["anchorDate"] == "2026-03-10"
    entries = await history(client, sub["id"])
    assert [e["action"] for e in entries][-2:] == ["force_billed", "renewal_paid"], "recorded, then settled"
    forced, settled = entries[-2:]
    assert change(forced, "nextRenewalDate") == ("2026-04-01", "2026-04-10")
    assert change(forced, f"renewals.{renewal['id']}")[1]["status"] == "PENDING"
    assert change(settled, f"renewals.{renewal['id']}.status") == ("PENDING", "PAID")


async def test_cancel_with_refund_of_a_card_payment_refunds_the_last_renewal(client):
    world = await make_world(client)
    created = await subscribe(client, world)
    sub = created["subscription"]
    payload = ok(
        await mutate(
            client,
            "cancelSubscription",
            {"subscriptionId": sub["id"], "refundLastRenewal": True, "reason": "customer asked"},
            "subscription { status nextRenewalDate } refund { amount { amount currency } }",
        )
    )
    assert payload["subscription"]["status"] == "CANCELLED"
    assert payload["subscription"]["nextRenewalDate"] is None
    assert payload["refund"]["amount"] == {"amount": "62.96", "currency": "USD"}
    renewal = await _renewal(client, created["renewal"]["id"])
    assert renewal["status"] == "REFUNDED"
    assert renewal["refundedAmount"]["amount"] == "62.96"
    last = (await history(client, sub["id"]))[-1]
    assert last["action"] == "cancelled"
    assert change(last, "status") == ("ACTIVE", "CANCELLED")


async def test_cancel_without_refund_keeps_the_payment(client):
    world = await make_world(client)
    created = await subscribe(client, world)
    ok(
        await mutate(
            client, "cancelSubscription", {"subscriptionId": created["subscription"]["id"]}, "subscription { id }"
        )
    )
    assert (await _renewal(client, created["renewal"]["id"]))["status"] == "PAID"


async def test_refund_of_an_external_payment_is_refused_and_nothing_is_cancelled(client):
    world = await make_world(client)
    external = await add_method(client, world.customer, "EXTERNAL")
    created = await subscribe(client, world, paymentMethodId=external)
    sub = created["subscription"]
    payload = await mutate(
        client, "cancelSubscription", {"subscriptionId": sub["id"], "refundLastRenewal": True}, "subscription { id }"
    )
    assert error_codes(payload) == ["REFUND_NOT_ALLOWED"]
    assert (await get_subscription(client, sub["id"]))["status"] == "ACTIVE"
    # Without the refund the external subscription cancels fine.
    ok(await mutate(client, "cancelSubscription", {"subscriptionId": sub["id"]}, "subscription { id }"))
    assert (await get_subscription(client, sub["id"]))["status"] == "CANCELLED"


async def test_cancel_fulfillment_only_while_not_shipped(client):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    ok(
        await mutate(
            client,
            "updateShippingAddress",
            {"subscriptionId": sub["id"], "address": {"line1": "1 Main St", "city": "Springfield", "country": "US"}},
            "subscription { id }",
        )
    )
    forced = ok(await mutate(client, "forceBill", {"subscriptionId": sub["id"]}, RENEWAL))["renewal"]
    ok(
        await mutate(
            client, "updateFulfillment", {"renewalId": forced["id"], "status": "SHIPPED"}, "renewal { fulfillment }"
        )
    )
    refused = await mutate(
        client, "cancelSubscription", {"subscriptionId": sub["id"], "cancelFulfillment": True}, "subscription { id }"
    )
    assert error_codes(refused) == ["ALREADY_SHIPPED"]
    assert (await get_subscription(client, sub["id"]))["status"] == "ACTIVE"


async def test_cancel_fulfillment_of_a_pending_shipment_cancels_it(client):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    ok(
        await mutate(
            client,
            "updateShippingAddress",
            {"subscriptionId": sub["id"], "address": {"line1": "1 Main St", "city": "Springfield", "country": "US"}},
            "subscription { id }",
        )
    )
    forced = ok(await mutate(client, "forceBill", {"subscriptionId": sub["id"]}, RENEWAL))["renewal"]
    ok(
        await mutate(
            client,
            "cancelSubscription",
            {"subscriptionId": sub["id"], "cancelFulfillment": True},
            "subscription { id }",
        )
    )
    assert (await _renewal(client, forced["id"]))["fulfillment"] == "CANCELLED"
    last = (await history(client, sub["id"]))[-1]
    assert last["action"] == "cancelled"
    assert change(last, f"renewals.{forced['id']}.fulfillment") == ("PENDING", "CANCELLED")


async def _renewal(client, renewal_id: str) -> dict:
    from tests.support import gql

    data = await gql(
        client,
        "query($id: ID!) { renewal(id: $id) { id status fulfillment refundedAmount { amount } amount { amount } } }",
        {"id": renewal_id},
    )
    return data["renewal"]
