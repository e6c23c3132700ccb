"""A store's own account pages: the portal token as ``Authorization: Bearer`` with the ``customer`` scope.

It sees ``viewer`` and may call the mutations API.md lists for it, on the
customer's own subscriptions; everything else is FORBIDDEN, another
customer's subscription is NOT_FOUND. Staff keep ``updateCustomer`` and
``Customer.billingAddress``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.support import error_codes, get_subscription, gql, gql_raw, history, make_world, mutate, ok, subscribe

VIEWER = """{ viewer { customer { id email billingAddress { line1 city country } }
    subscriptions(first: 10) { totalCount edges { node { id status nextRenewalDate } } } } }"""


@pytest.fixture
async def store(client: httpx.AsyncClient, services: Any) -> AsyncIterator[Any]:
    """Two customers with a subscription each, and a customer-token client for the first."""
    from rebill.app import create_app

    ada = await make_world(client)
    ada_sub = (await subscribe(client, ada))["subscription"]
    bob_customer = ok(
        await mutate(client, "createCustomer", {"email": "bob@example.com", "name": "Bob"}, "customer { id }")
    )["customer"]["id"]
    bob = type(ada)(bob_customer, ada.card, ada.profile, ada.product, ada.other_product)
    bob_sub = (await subscribe(client, bob))["subscription"]
    session = ok(await mutate(client, "createCustomerPortalSession", {"customerId": ada.customer}, "token expiresAt"))
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://rebill.test", headers={"Authorization": f"Bearer {session['token']}"}
    ) as customer:
        yield type(
            "Store",
            (),
            {"ada": ada, "ada_sub": ada_sub, "bob": bob, "bob_sub": bob_sub, "customer": customer, "token": session},
        )


async def test_the_viewer_is_the_customer_and_their_subscriptions_only(store):
    data = await gql(store.customer, VIEWER)
    assert data["viewer"]["customer"]["id"] == store.ada.customer
    assert data["viewer"]["subscriptions"]["totalCount"] == 1
    assert data["viewer"]["subscriptions"]["edges"][0]["node"]["id"] == store.ada_sub["id"]


async def test_a_staff_key_has_no_viewer(client, store):
    assert (await gql(client, "{ viewer { customer { id } } }"))["viewer"] is None


@pytest.mark.parametrize(
    "query",
    [
        "{ subscriptions(first: 1) { totalCount } }",
        "query($id: ID!) { subscription(id: $id) { id } }",
        "{ notifications(first: 1) { totalCount } }",
    ],
)
async def test_staff_queries_are_forbidden(store, query):
    response = await gql_raw(store.customer, query, {"id": store.bob_sub["id"]} if "$id" in query else None)
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize(
    ("name", "extra", "selection"),
    [
        ("suspendSubscription", {}, "subscription { id }"),
        ("forceBill", {}, "subscription { id }"),
        ("updateShippingAddress", {"address": {"line1": "x", "city": "y", "country": "US"}}, "subscription { id }"),
    ],
)
async def test_staff_only_mutations_are_forbidden(store, name, extra, selection):
    type_name = name[0].upper() + name[1:] + "Input"
    query = f"mutation($input: {type_name}!) {{ {name}(input: $input) {{ {selection} }} }}"
    body = (await gql_raw(store.customer, query, {"input": {"subscriptionId": store.ada_sub["id"], **extra}})).json()
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_creating_portal_sessions_is_for_staff(store):
    query = "mutation($input: CreateCustomerPortalSessionInput!) { createCustomerPortalSession(input: $input) { url } }"
    body = (await gql_raw(store.customer, query, {"input": {"customerId": store.ada.customer}})).json()
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_the_date_moves_later_but_never_earlier(client, store):
    sub = store.ada_sub["id"]
    earlier = await mutate(
        store.customer, "changeNextRenewalDate", {"subscriptionId": sub, "date": "2026-02-01"}, "subscription { id }"
    )
    assert error_codes(earlier) == ["DATE_BEFORE_CURRENT_RENEWAL"]
    back = await mutate(
        store.customer,
        "changeNextRenewalDate",
        {"subscriptionId": sub, "shift": {"unit": "DAY", "count": -3}},
        "subscription { id }",
    )
    assert error_codes(back) == ["DATE_BEFORE_CURRENT_RENEWAL"]
    later = ok(
        await mutate(
            store.customer,
            "changeNextRenewalDate",
            {"subscriptionId": sub, "shift": {"unit": "WEEK", "count": 2}},
            "subscription { nextRenewalDate }",
        )
    )
    assert later["subscription"]["nextRenewalDate"] == "2026-03-01"
    [entry] = [e for e in await history(client, sub) if e["action"] == "next_renewal_date_changed"]
    assert entry["actor"] == f"customer:{store.ada.customer}"


async def test_another_customers_subscription_is_not_found(client, store):
    before = await get_subscription(client, store.bob_sub["id"])
    for name, extra in (
        ("changeNextRenewalDate", {"date": "2026-03-01"}),
        ("cancelSubscription", {}),
        ("renewNow", {}),
        ("setPaymentMethod", {"paymentMethodId": store.ada.card}),
    ):
        payload = await mutate(
            store.customer, name, {"subscriptionId": store.bob_sub["id"], **extra}, "subscription { id }"
        )
        assert error_codes(payload) == ["NOT_FOUND"], name
        assert payload["subscription"] is None
    assert await get_subscription(client, store.bob_sub["id"]) == before
    card = await mutate(
        store.customer,
        "addPaymentMethod",
        {"customerId": store.bob.customer, "kind": "CARD", "gatewayToken": "4242424242424242"},
        "paymentMethod { id }",
    )
    assert error_codes(card) == ["NOT_FOUND"]
    address = await mutate(
        store.customer,
        "updateCustomer",
        {"customerId": store.bob.customer, "billingAddress": {"line1": "1 A St", "city": "B", "country": "US"}},
        "customer { id }",
    )
    assert error_codes(address) == ["NOT_FOUND"]


async def test_cancelling_is_now_and_without_the_merchants_options(client, store):
    sub = store.ada_sub["id"]
    for option in ("atPeriodEnd", "refundLastRenewal", "cancelFulfillment"):
        refused = await mutate(
            store.customer, "cancelSubscription", {"subscriptionId": sub, option: True}, "subscription { id }"
        )
        assert error_codes(refused) == ["FORBIDDEN"], option
    done = ok(await mutate(store.customer, "cancelSubscription", {"subscriptionId": sub}, "subscription { status }"))
    assert done["subscription"]["status"] == "CANCELLED"


async def test_renewing_is_for_a_manual_subscription_awaiting_reinstatement(store):
    refused = await mutate(store.customer, "renewNow", {"subscriptionId": store.ada_sub["id"]}, "subscription { id }")
    assert error_codes(refused) == ["INVALID_STATUS"]


async def test_a_card_and_the_billing_address(client, store):
    card = ok(
        await mutate(
            store.customer,
            "addPaymentMethod",
            {"customerId": store.ada.customer, "kind": "CARD", "gatewayToken": "5555555555554444", "makeDefault": True},
            "paymentMethod { id last4 }",
        )
    )
    assert card["paymentMethod"]["last4"] == "4444"
    offline = await mutate(
        store.customer,
        "addPaymentMethod",
        {"customerId": store.ada.customer, "kind": "OFFLINE"},
        "paymentMethod { id }",
    )
    assert error_codes(offline) == ["FORBIDDEN"]
    pinned = ok(
        await mutate(
            store.customer,
            "setPaymentMethod",
            {"subscriptionId": store.ada_sub["id"], "paymentMethodId": card["paymentMethod"]["id"]},
            "subscription { id }",
        )
    )
    assert pinned["subscription"]["id"] == store.ada_sub["id"]

    address = {"line1": "9 Elm St", "city": "Bend", "country": "US"}
    updated = ok(
        await mutate(
            store.customer,
            "updateCustomer",
            {"customerId": store.ada.customer, "billingAddress": address},
            "customer { billingAddress { line1 city country } }",
        )
    )
    assert updated["customer"]["billingAddress"] == address
    email = await mutate(
        store.customer,
        "updateCustomer",
        {"customerId": store.ada.customer, "email": "eve@example.com"},
        "customer { id }",
    )
    assert error_codes(email) == ["FORBIDDEN"]


async def test_the_token_stops_working_when_it_expires(store, clock):
    clock.set(clock.now() + timedelta(hours=1, seconds=1))
    response = await gql_raw(store.customer, VIEWER)
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_staff_update_any_field_of_a_customer(client):
    world = await make_world(client)
    updated = ok(
        await mutate(
            client,
            "updateCustomer",
            {
                "customerId": world.customer,
                "name": "Ada Lovelace",
                "timeZone": "Europe/London",
                "billingAddress": {
                    "line1": "12 St James's Sq",
                    "city": "London",
                    "postalCode": "SW1Y",
                    "country": "GB",
                },
            },
            "customer { name timeZone email billingAddress { line1 line2 city postalCode country } }",
        )
    )
    assert updated["customer"] == {
        "name": "Ada Lovelace",
        "timeZone": "Europe/London",
        "email": "ada@example.com",
        "billingAddress": {
            "line1": "12 St James's Sq",
            "line2": None,
            "city": "London",
            "postalCode": "SW1Y",
            "country": "GB",
        },
    }
    bad = await mutate(
        client, "updateCustomer", {"customerId": world.customer, "timeZone": "Mars/Base"}, "customer { id }"
    )
    assert error_codes(bad) != [] and bad["customer"] is None


async def test_only_keys_that_may_read_and_write_see_the_sign_in_links_in_notifications(client, services, store):
    from rebill.services.apikeys import create_key
    from tests.support import add_card, make_customer

    customer = await make_customer(client, "carol@example.com")
    await add_card(client, customer, "4000000000000002")
    await subscribe(client, type(store.ada)(customer, "", store.ada.profile, store.ada.product, ""))
    query = "{ notifications(first: 50) { edges { node { kind recipient payload } } } }"
    both = (await create_key(services.engine, "store", ["read", "write"], services.clock.now())).secret
    data = (await client.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {both}"})).json()
    edges = data["data"]["notifications"]["edges"]
    links = [e["node"]["payload"].get("portalUrl") for e in edges if e["node"]["recipient"]]
    assert links and all(links), "a read and write key sees the link of every e-mail to a customer"

    reader = (await create_key(services.engine, "dashboard", ["read"], services.clock.now())).secret
    data = (await client.post("/graphql", json={"query": query}, headers={"Authorization": f"Bearer {reader}"})).json()
    payloads = [e["node"]["payload"] for e in data["data"]["notifications"]["edges"]]
    assert payloads and not any("portalUrl" in p for p in payloads)
    assert any(p.get("subscriptionId") for p in payloads), "the rest of the payload is shown"
