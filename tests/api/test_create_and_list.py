"""Creating things, refusing bad input with stable codes, and the read API's lists and filters."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.support import (
    add_card,
    error_codes,
    gql,
    gql_raw,
    make_customer,
    make_product,
    make_profile,
    make_world,
    mutate,
    ok,
    subscribe,
)


def _item(world, amount="10.00", currency="USD", quantity=1, product=None):
    return {
        "productId": product or world.product,
        "unitPrice": {"amount": amount, "currency": currency},
        "quantity": quantity,
    }


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"items": "negative-quantity"}, "INVALID_QUANTITY", ["items", "0", "quantity"]),
        ({"items": "unknown-currency"}, "UNKNOWN_CURRENCY", ["items", "0", "unitPrice"]),
        ({"items": "mixed-currencies"}, "CURRENCY_MISMATCH", ["items", "1", "unitPrice"]),
        ({"items": "malformed-money"}, "INVALID_AMOUNT", ["items", "0", "unitPrice"]),
        ({"items": "too-many-decimals"}, "INVALID_AMOUNT", ["items", "0", "unitPrice"]),
        ({"profileId": "missing"}, "NOT_FOUND", ["profileId"]),
        ({"profileId": "garbage"}, "INVALID_ID", ["profileId"]),
        ({"startDate": "1969-12-31"}, "DATE_OUT_OF_RANGE", ["startDate"]),
        ({"startDate": "2201-01-01"}, "DATE_OUT_OF_RANGE", ["startDate"]),
    ],
)
async def test_invalid_subscription_input_is_a_user_error_with_a_stable_code(client, change, code, field):
    from rebill.schema.common import to_global_id

    world = await make_world(client)
    data = {"customerId": world.customer, "profileId": world.profile, "items": [_item(world)]}
    items = {
        "negative-quantity": [_item(world, quantity=-1)],
        "unknown-currency": [_item(world, currency="XYZ")],
        "mixed-currencies": [_item(world), _item(world, currency="EUR", product=world.other_product)],
        "malformed-money": [_item(world, amount="12,50")],
        "too-many-decimals": [_item(world, amount="12.345")],
    }
    if "items" in change:
        data["items"] = items[change["items"]]
    if change.get("profileId") == "missing":
        data["profileId"] = to_global_id("SubscriptionProfile", 999999)
    elif change.get("profileId") == "garbage":
        data["profileId"] = "not-an-id"
    if "startDate" in change:
        data["startDate"] = change["startDate"]
    payload = await mutate(client, "createSubscription", data, "subscription { id }")
    assert error_codes(payload) == [code], payload
    assert payload["userErrors"][0]["field"] == field
    assert payload["subscription"] is None
    listed = await gql(client, "{ subscriptions { totalCount } }")
    assert listed["subscriptions"]["totalCount"] == 0


async def test_trial_days_override_the_profile_and_delay_the_first_charge(client, clock):
    clock.set(datetime(2026, 3, 1, 9, tzinfo=UTC))
    world = await make_world(client, trialDays=14)
    default = await subscribe(client, world)
    assert default["subscription"]["status"] == "TRIAL"
    assert default["subscription"]["trialEndDate"] == "2026-03-15"
    assert default["renewal"] is None
    short = await subscribe(client, world, trialDays=7)
    assert short["subscription"]["trialEndDate"] == "2026-03-08"
    assert short["subscription"]["nextRenewalDate"] == "2026-03-08"
    none = await subscribe(client, world, trialDays=0)
    assert none["subscription"]["status"] == "ACTIVE"
    assert none["renewal"]["kind"] == "INITIAL"


async def test_importing_a_running_subscription_charges_nothing(client, clock):
    clock.set(datetime(2026, 3, 1, 9, tzinfo=UTC))
    world = await make_world(client)
    payload = await subscribe(client, world, startDate="2026-02-10", billFirstPeriod=False)
    assert payload["renewal"] is None
    assert payload["subscription"]["nextRenewalDate"] == "2026-03-10"


async def test_a_new_card_made_default_becomes_the_customers_default(client):
    customer = await make_customer(client)
    first = await add_card(client, customer)
    second = await add_card(client, customer, "5555555555554444", default=True)
    data = await gql(
        client,
        "query($id: ID!) { customer(id: $id) { defaultPaymentMethod { id brand last4 } paymentMethods { id } } }",
        {"id": customer},
    )
    assert data["customer"]["defaultPaymentMethod"] == {"id": second, "brand": "mastercard", "last4": "4444"}
    assert [p["id"] for p in data["customer"]["paymentMethods"]] == [first, second]


async def test_a_profile_can_be_updated(client):
    profile = await make_profile(client)
    payload = ok(
        await mutate(
            client,
            "updateProfile",
            {"profileId": profile, "retryScheduleDays": [3, 3, 7], "finalFailureAction": "SUSPEND", "overdueLimit": 2},
            "profile { retryScheduleDays finalFailureAction overdueLimit name }",
        )
    )
    assert payload["profile"] == {
        "retryScheduleDays": [3, 3, 7],
        "finalFailureAction": "SUSPEND",
        "overdueLimit": 2,
        "name": "Monthly",
    }
    bad = await mutate(
        client, "updateProfile", {"profileId": profile, "finalFailureAction": "EXPLODE"}, "profile { id }"
    )
    assert error_codes(bad) == ["INVALID_PROFILE"]


async def _ids(client, flt: dict) -> set[str]:
    data = await gql(
        client,
        "query($f: SubscriptionFilter) { subscriptions(filter: $f, first: 100) { totalCount edges { node { id } } } }",
        {"f": flt},
    )
    ids = {e["node"]["id"] for e in data["subscriptions"]["edges"]}
    assert data["subscriptions"]["totalCount"] == len(ids)
    return ids


async def test_every_filter_field_narrows_the_list(client, clock):
    clock.set(datetime(2026, 3, 1, 9, tzinfo=UTC))
    world = await make_world(client)
    yearly = await make_profile(client, name="Yearly", cadence={"unit": "YEAR", "count": 1})
    other_customer = await make_customer(client, email="Bob@Example.com")
    await add_card(client, other_customer)
    euro = await make_product(client, "euro-box")

    a = (await subscribe(client, world, price="10.00"))["subscription"]["id"]  # next 2026-04-01
    b = (await subscribe(client, world, price="99.00", trialDays=10))["subscription"]["id"]  # trial ends 2026-03-11
    c_payload = ok(
        await mutate(
            client,
            "createSubscription",
            {
                "customerId": other_customer,
                "profileId": yearly,
                "items": [{"productId": euro, "unitPrice": {"amount": "50.00", "currency": "EUR"}, "quantity": 2}],
                "renewalType": "MANUAL",
            },
            "subscription { id }",
        )
    )
    c = c_payload["subscription"]["id"]
    ok(
        await mutate(
            client,
            "setGateway",
            {"subscriptionId": a, "gatewayId": "sandbox-b", "mode": "FORCED"},
            "subscription { id }",
        )
    )
    ok(
        await mutate(
            client,
            "setGateway",
            {"subscriptionId": c, "gatewayId": "sandbox", "mode": "PREFERRED"},
            "subscription { id }",
        )
    )
    ok(await mutate(client, "suspendSubscription", {"subscriptionId": c}, "subscription { id }"))

    assert await _ids(client, {}) == {a, b, c}
    assert await _ids(client, {"ids": [a, c]}) == {a, c}
    assert await _ids(client, {"status": ["TRIAL"]}) == {b}
    assert await _ids(client, {"status": ["ACTIVE", "SUSPENDED"]}) == {a, c}
    assert await _ids(client, {"renewalType": "MANUAL"}) == {c}
    assert await _ids(client, {"profileIds": [yearly]}) == {c}
    assert await _ids(client, {"productIds": [euro]}) == {c}
    assert await _ids(client, {"customerEmail": "bob@example.com"}) == {c}
    # A trial matches the next-renewal range by its trial end.
    assert await _ids(client, {"nextRenewalFrom": "2026-03-10", "nextRenewalTo": "2026-03-12"}) == {b}
    assert await _ids(client, {"nextRenewalFrom": "2026-04-01", "nextRenewalTo": "2026-04-01"}) == {a}
    assert await _ids(client, {"inTrial": True}) == {b}
    assert await _ids(client, {"inTrial": False}) == {a, c}
    assert await _ids(client, {"amountMin": "50.00"}) == {b, c}
    assert await _ids(client, {"amountMax": "10.00"}) == {a}
    assert await _ids(client, {"amountMin": "99.00", "currency": "EUR"}) == {c}
    assert await _ids(client, {"currency": "USD"}) == {a, b}
    assert await _ids(client, {"gatewayMode": ["FORCED"]}) == {a}
    assert await _ids(client, {"gatewayIds": ["sandbox"]}) == {c}
    assert await _ids(client, {"hasGateway": False}) == {b}
    assert await _ids(client, {"hasGateway": True, "status": ["ACTIVE"]}) == {a}


async def test_pages_follow_the_cursor_and_count_everything(client):
    world = await make_world(client)
    created = [(await subscribe(client, world))["subscription"]["id"] for _ in range(5)]
    query = "query($after: String) { subscriptions(first: 2, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id } } } }"
    seen, after = [], None
    while True:
        page = (await gql(client, query, {"after": after}))["subscriptions"]
        assert page["totalCount"] == 5
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == created
    bad = (await gql_raw(client, '{ subscriptions(after: "%%%") { totalCount } }')).json()
    assert "cursor" in bad["errors"][0]["message"]


async def test_node_resolves_every_kind_of_id(client):
    world = await make_world(client)
    created = await subscribe(client, world)
    ids = {
        "Subscription": created["subscription"]["id"],
        "Renewal": created["renewal"]["id"],
        "SubscriptionProfile": world.profile,
        "Customer": world.customer,
        "PaymentMethod": world.card,
        "Product": world.product,
    }
    for type_name, gid in ids.items():
        data = await gql(client, "query($id: ID!) { node(id: $id) { __typename id } }", {"id": gid})
        assert data["node"] == {"__typename": type_name, "id": gid}
    assert (await gql(client, '{ node(id: "bm9wZTox") { id } }'))["node"] is None


async def test_a_subscription_shows_its_renewals_history_and_related_objects(client):
    world = await make_world(client)
    created = await subscribe(client, world)
    data = await gql(
        client,
        """query($id: ID!) { subscription(id: $id) {
            customer { email } paymentMethod { kind last4 } profile { cadence { unit count } anchorPolicy }
            renewals { totalCount edges { node { cycle kind status transactions { status gatewayId } } } }
            history { totalCount edges { node { action actor } } } phases { id } } }""",
        {"id": created["subscription"]["id"]},
    )
    sub = data["subscription"]
    assert sub["customer"]["email"] == "ada@example.com"
    assert sub["paymentMethod"] == {"kind": "CARD", "last4": "4242"}
    assert sub["profile"] == {"cadence": {"unit": "MONTH", "count": 1}, "anchorPolicy": "ANCHORED"}
    renewal = sub["renewals"]["edges"][0]["node"]
    assert (renewal["cycle"], renewal["kind"], renewal["status"]) == (1, "INITIAL", "PAID")
    assert renewal["transactions"] == [{"status": "SUCCEEDED", "gatewayId": "sandbox"}]
    assert sub["history"]["totalCount"] == 3
    actions = [e["node"]["action"] for e in sub["history"]["edges"]]
    assert sorted(actions) == ["created", "initial_charge", "renewal_paid"], "recorded, then settled"
    assert sub["phases"] == []
    filtered = await gql(client, "{ renewals(status: [PAID]) { totalCount } }")
    assert filtered["renewals"]["totalCount"] == 1
