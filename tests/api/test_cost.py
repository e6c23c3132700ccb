"""Query cost in every response, and each API key's leaky bucket shared by every API process."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from rebill.config import Settings
from tests.support import gql_raw, make_world, subscribe

SIZE = 300


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Points come back slowly enough (one every 100 s) that arithmetic on the bucket is exact.
    return Settings(
        database_url=database_url, bulk_worker_in_server=False, rate_limit_bucket=SIZE, rate_limit_restore=0.01
    )


def cost(response: httpx.Response) -> dict[str, Any]:
    found: dict[str, Any] = response.json()["extensions"]["cost"]
    return found


PAGE = "query($first: Int) { subscriptions(first: $first) { totalCount edges { node { id profile { name } } } } }"


async def test_every_response_says_what_the_query_asked_for_what_it_got_and_what_is_left(client):
    world = await make_world(client)  # five mutations: 10 points each, plus the objects they return
    for _ in range(3):
        await subscribe(client, world)
    before = cost(await gql_raw(client, "{ products { totalCount } }"))
    assert before == {
        "requestedQueryCost": 1,
        "actualQueryCost": 1,
        "throttleStatus": {
            "maximumAvailable": SIZE,
            "currentlyAvailable": before["throttleStatus"]["currentlyAvailable"],
            "restoreRate": 0.01,
        },
    }
    response = await gql_raw(client, PAGE, {"first": 10})
    assert response.status_code == 200 and len(response.json()["data"]["subscriptions"]["edges"]) == 3
    spent = cost(response)
    # The connection, then per edge: the edge, its node and the node's profile.
    assert spent["requestedQueryCost"] == 1 + 10 * 3
    assert spent["actualQueryCost"] == 1 + 3 * 3
    left = before["throttleStatus"]["currentlyAvailable"] - 31
    assert spent["throttleStatus"]["currentlyAvailable"] == left


async def test_a_mutation_costs_ten_and_what_it_returns(client):
    response = await gql_raw(
        client,
        'mutation { createCustomer(input: {email: "x@example.com"}) { customer { id } userErrors { code } } }',
    )
    assert response.json()["data"]["createCustomer"]["customer"]["id"]
    assert cost(response)["requestedQueryCost"] == 10 + 1 + 1
    assert cost(response)["actualQueryCost"] == 10 + 1


async def test_fragments_aliases_and_nodes_are_counted(client):
    query = """query($ids: [ID!]!) {
      a: subscriptions(last: 4) { edges { ...E } }
      b: nodes(ids: $ids) { id ... on Subscription { profile { id } } }
    } fragment E on SubscriptionEdge { node { id customer { id } } }"""
    response = await gql_raw(client, query, {"ids": ["x", "y"]})
    assert cost(response)["requestedQueryCost"] == (1 + 4 * 3) + 2 * 2
    assert cost(response)["actualQueryCost"] == 1


async def test_a_request_that_would_overdraw_the_bucket_is_refused_with_429_and_retry_after(client):
    spent = 0
    while True:
        response = await gql_raw(client, PAGE, {"first": 50})  # 151 points
        if response.status_code == 429:
            break
        assert response.status_code == 200
        spent += 1
        assert spent < 3
    assert spent == 1, "300 points pay for one query of 151, not two"
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert "151 points" in body["errors"][0]["message"]
    assert cost(response)["requestedQueryCost"] == 151
    assert cost(response)["actualQueryCost"] == 0
    available = cost(response)["throttleStatus"]["currentlyAvailable"]
    assert available == SIZE - 151, "a refused request takes nothing"
    # (151 - 149) / 0.01 points a second.
    assert int(response.headers["Retry-After"]) == 200
    # A cheaper query still fits.
    assert (await gql_raw(client, PAGE, {"first": 10})).status_code == 200


async def test_a_query_costing_more_than_a_full_bucket_is_refused_outright(client):
    response = await gql_raw(
        client,
        "{ a: subscriptions(first: 100) { edges { node { id } } } b: products(first: 100) { edges { node { id } } } }",
    )
    assert response.json()["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert cost(response)["throttleStatus"]["currentlyAvailable"] == SIZE


async def test_a_request_refused_before_execution_is_free_and_still_shows_the_bucket(client):
    response = await gql_raw(client, "{ subscriptions(first: 5) { nope } }")
    assert response.json()["errors"]
    assert cost(response) == {
        "requestedQueryCost": 0,
        "actualQueryCost": 0,
        "throttleStatus": {"maximumAvailable": SIZE, "currentlyAvailable": SIZE, "restoreRate": 0.01},
    }


async def test_concurrent_requests_never_spend_the_same_points_twice(client, services):
    """Two API processes on one database share the bucket: here, two apps with engines of their own."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from rebill.app import create_app
    from rebill.services.runtime import Services

    other_engine = create_async_engine(services.settings.database_url, pool_size=10)
    other = Services(other_engine, services.settings, services.clock)
    headers = dict(client.headers)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(other)), base_url="http://other.test", headers=headers
        ) as second:
            calls = [gql_raw(http, PAGE, {"first": 9}) for _ in range(10) for http in (client, second)]  # 28 each
            statuses = [r.status_code for r in await asyncio.gather(*calls)]
    finally:
        await other_engine.dispose()
    assert statuses.count(200) == SIZE // 28
    assert statuses.count(429) == 20 - SIZE // 28


async def test_each_api_key_has_its_own_bucket(client, services):
    from rebill.services.apikeys import create_key

    for _ in range(2):
        await gql_raw(client, PAGE, {"first": 50})
    assert (await gql_raw(client, PAGE, {"first": 50})).status_code == 429
    other = (await create_key(services.engine, "partner", ["read"], services.clock.now())).secret
    response = await client.post(
        "/graphql", json={"query": PAGE, "variables": {"first": 50}}, headers={"Authorization": f"Bearer {other}"}
    )
    assert response.status_code == 200
    assert cost(response)["throttleStatus"]["currentlyAvailable"] == SIZE - 151


async def test_the_bucket_fills_again_at_the_restore_rate(services, admin_key):
    from dataclasses import replace

    from rebill.app import create_app
    from rebill.services.runtime import Services

    # 200 points restored at 200 a second: the second page (151 points, 49 left) is refused unless half a second
    # passed between the two, which a busy machine can take; 1,000 a second left it a tenth of a second.
    fast = Services(services.engine, replace(services.settings, rate_limit_bucket=200, rate_limit_restore=200))
    transport = httpx.ASGITransport(app=create_app(fast))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://rebill.test", headers={"Authorization": f"Bearer {admin_key}"}
    ) as http:
        assert (await gql_raw(http, PAGE, {"first": 50})).status_code == 200
        refused = await gql_raw(http, PAGE, {"first": 50})
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "1"
        await asyncio.sleep(0.6)  # the 102 points missing, at 200 a second
        assert (await gql_raw(http, PAGE, {"first": 50})).status_code == 200
