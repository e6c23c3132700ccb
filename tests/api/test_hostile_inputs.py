"""Client mistakes are clear errors naming the field, refused before the database, and quick."""

from __future__ import annotations

import base64
import time

import pytest

from tests.support import gql, gql_raw, make_world, mutate, subscribe


def _error(body: dict) -> dict:
    assert body.get("errors"), body
    error: dict = body["errors"][0]
    assert error["message"] != "Internal error.", body
    return error


def _gid(type_name: str, pk: object) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


@pytest.mark.parametrize("amount", ["1e5000000", "-1e5000000", "1e-5000000", "9" * 5000, "1" + "0" * 60 + ".5"])
async def test_exponent_amounts_in_filters_are_refused_at_once(client, amount):
    started = time.perf_counter()
    response = await gql_raw(
        client, "query($a: String) { subscriptions(filter: { amountMin: $a }) { totalCount } }", {"a": amount}
    )
    assert time.perf_counter() - started < 3  # 12 s before decimals were bounded
    error = _error(response.json())
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "amountMin" in error["message"]


async def test_exponent_percentages_in_bulk_plans_are_answered_at_once(client):
    world = await make_world(client)
    await subscribe(client, world)
    started = time.perf_counter()
    response = await gql_raw(
        client,
        "query($p: BulkPlanInput!) { bulkPreview(plan: $p) { matched segments { name refused { count } } } }",
        {"p": {"segments": [{"name": "all", "actions": [{"adjustPrice": {"percent": "1e-5000000"}}]}]}},
    )
    assert time.perf_counter() - started < 3
    assert "Internal error" not in response.text


@pytest.mark.parametrize("amount", ["99999999999999999999999", "1e30", "92233720368547758.08"])
async def test_amounts_beyond_64_bits_are_a_user_error(client, amount):
    world = await make_world(client)
    payload = await mutate(
        client,
        "createSubscription",
        {
            "customerId": world.customer,
            "profileId": world.profile,
            "items": [{"productId": world.product, "unitPrice": {"amount": amount, "currency": "USD"}, "quantity": 1}],
        },
        "subscription { id }",
    )
    assert payload["subscription"] is None
    assert payload["userErrors"][0]["code"] == "INVALID_AMOUNT"


@pytest.mark.parametrize("pk", ["99999999999999999999", "-99999999999999999999", "1" * 400])
async def test_ids_beyond_64_bits_are_not_found_or_refused(client, pk):
    response = await gql_raw(
        client, "query($id: ID!) { subscription(id: $id) { id } }", {"id": _gid("Subscription", pk)}
    )
    body = response.json()
    assert "Internal error" not in response.text
    assert body.get("errors") or body["data"]["subscription"] is None


@pytest.mark.parametrize("day", ["2026-02-30", "2026-13-01", "", "yesterday", "2026-1-1x"])
async def test_invalid_dates_are_bad_user_input(client, day):
    as_variable = await gql_raw(
        client, "query($d: Date) { subscriptions(filter: { nextRenewalFrom: $d }) { totalCount } }", {"d": day}
    )
    error = _error(as_variable.json())
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "$d" in error["message"]
    as_literal = await gql_raw(client, f'{{ subscriptions(filter: {{ nextRenewalFrom: "{day}" }}) {{ totalCount }} }}')
    error = _error(as_literal.json())
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


async def test_ints_beyond_32_bits_are_bad_user_input(client):
    response = await gql_raw(client, "query($n: Int) { subscriptions(first: $n) { totalCount } }", {"n": 2**70})
    assert _error(response.json())["extensions"]["code"] == "BAD_USER_INPUT"
    literal = await gql_raw(client, "{ subscriptions(first: 99999999999999999999999) { totalCount } }")
    assert _error(literal.json())["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize("metadata", [[1, 2], "text", 42, True])
async def test_metadata_that_is_not_an_object_is_refused(client, metadata):
    world = await make_world(client)
    response = await gql_raw(
        client,
        "mutation($i: CreateSubscriptionInput!) { createSubscription(input: $i) { subscription { id } userErrors { field code } } }",
        {
            "i": {
                "customerId": world.customer,
                "profileId": world.profile,
                "items": [
                    {"productId": world.product, "unitPrice": {"amount": "5.00", "currency": "USD"}, "quantity": 1}
                ],
                "metadata": metadata,
            }
        },
    )
    body = response.json()
    assert "Internal error" not in response.text
    if body.get("errors"):
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert "metadata" in body["errors"][0]["message"]
    else:
        payload = body["data"]["createSubscription"]
        assert payload["subscription"] is None
        assert payload["userErrors"][0]["field"] == ["metadata"]


async def test_metadata_from_a_variable_of_its_own_must_be_an_object_too(client):
    world = await make_world(client)
    sub = await subscribe(client, world)
    response = await gql_raw(
        client,
        "mutation($id: ID!, $m: JSON) { setMetadata(input: { subscriptionId: $id, metadata: $m }) { subscription { id } userErrors { field } } }",
        {"id": sub["subscription"]["id"], "m": [1, 2]},
    )
    error = _error(response.json())
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "$m: metadata must be a JSON object" in error["message"]


@pytest.mark.parametrize(
    ("metadata", "fragment"),
    [({"note": "a\x00b"}, "NUL"), ({"a\x00": 1}, "NUL"), ({"deep": [[["\x00"]]]}, "NUL")],
)
async def test_nul_bytes_anywhere_in_json_are_refused_naming_the_field(client, metadata, fragment):
    world = await make_world(client)
    sub = await subscribe(client, world)
    response = await gql_raw(
        client,
        "mutation($i: SetMetadataInput!) { setMetadata(input: $i) { subscription { id } } }",
        {"i": {"subscriptionId": sub["subscription"]["id"], "metadata": metadata}},
    )
    error = _error(response.json())
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert fragment in error["message"] and "$i.metadata" in error["message"]


async def test_two_hundred_thousand_ids_are_refused_before_the_database(client):
    ids = [_gid("Subscription", i) for i in range(200_000)]
    response = await gql_raw(
        client, "query($ids: [ID!]) { subscriptions(filter: { ids: $ids }) { totalCount } }", {"ids": ids[:1001]}
    )
    error = _error(response.json())
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "1000" in error["message"] and "ids" in error["message"]
    literal = "[" + ", ".join(f'"{i}"' for i in ids[:1500]) + "]"
    response = await gql_raw(client, f"{{ subscriptions(filter: {{ ids: {literal} }}) {{ totalCount }} }}")
    assert "Internal error" not in response.text
    assert response.json()["errors"]


async def test_a_thousand_ids_are_fine(client):
    ids = [_gid("Subscription", i) for i in range(1, 1001)]
    data = await gql(client, "query($ids: [ID!]) { subscriptions(filter: { ids: $ids }) { totalCount } }", {"ids": ids})
    assert data["subscriptions"]["totalCount"] == 0


@pytest.mark.parametrize(
    ("variables", "fragment"),
    [
        ({"f": {"statuz": ["ACTIVE"]}}, "statuz"),
        ({"f": {"status": ["ACTIV"]}}, "ACTIV"),
        ({"f": {"status": "ACTIVE", "renewalType": "SOMETIMES"}}, "SOMETIMES"),
        ({"f": {"inTrial": "yes"}}, "inTrial"),
        ({"f": [1, 2]}, "$f"),
    ],
)
async def test_unknown_fields_and_bad_enums_in_variables_are_bad_user_input(client, variables, fragment):
    response = await gql_raw(
        client, "query($f: SubscriptionFilter) { subscriptions(filter: $f) { totalCount } }", variables
    )
    error = _error(response.json())
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert fragment in error["message"]


async def test_long_strings_are_refused(client):
    response = await gql_raw(
        client,
        "mutation($i: CreateCustomerInput!) { createCustomer(input: $i) { customer { id } } }",
        {"i": {"email": "a@example.com", "name": "x" * 100_000}},
    )
    error = _error(response.json())
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "$i.name" in error["message"]
