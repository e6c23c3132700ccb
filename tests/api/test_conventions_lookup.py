"""Lookups: nodes(ids:), customers(filter:) and Customer.subscriptions."""

from __future__ import annotations

from typing import Any

import pytest

from rebill.seed import seed
from tests.api.test_n_plus_one import counting
from tests.support import add_card, gql, gql_raw, make_customer, make_world, subscribe

CUSTOMERS = """query($filter: CustomerFilter, $first: Int, $after: String, $last: Int, $before: String) {
  customers(filter: $filter, first: $first, after: $after, last: $last, before: $before) {
    totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id email name } }
  }
}"""


async def emails(client, **variables: Any) -> list[str]:
    data = await gql(client, CUSTOMERS, variables)
    return [e["node"]["email"] for e in data["customers"]["edges"]]


@pytest.fixture
async def people(client) -> dict[str, str]:
    ids = {}
    for email, name in [
        ("ada@example.com", "Ada Lovelace"),
        ("grace.hopper@navy.example", "Grace Hopper"),
        ("ALAN@Example.com", "Alan Turing"),
        ("edsger@example.org", None),
        ("percent_50%@example.com", "Per Cent"),
    ]:
        fields = {"name": name} if name else {}
        ids[email] = await make_customer(client, email, **fields)
    return ids


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        (
            {},
            [
                "ada@example.com",
                "grace.hopper@navy.example",
                "ALAN@Example.com",
                "edsger@example.org",
                "percent_50%@example.com",
            ],
        ),
        ({"email": "alan@example.COM"}, ["ALAN@Example.com"]),
        ({"email": "alan@example"}, []),
        ({"emailContains": "EXAMPLE.COM"}, ["ada@example.com", "ALAN@Example.com", "percent_50%@example.com"]),
        ({"emailContains": "navy"}, ["grace.hopper@navy.example"]),
        # LIKE's wildcards are plain characters here.
        ({"emailContains": "_50%"}, ["percent_50%@example.com"]),
        ({"emailContains": "%"}, ["percent_50%@example.com"]),
        ({"search": "hopper"}, ["grace.hopper@navy.example"]),
        ({"search": "  lovelace  ADA "}, ["ada@example.com"]),
        ({"search": "turing example.com"}, ["ALAN@Example.com"]),
        ({"search": "edsger"}, ["edsger@example.org"]),
        ({"search": "ada hopper"}, []),
        ({"search": "a", "emailContains": ".org"}, ["edsger@example.org"]),
    ],
)
async def test_customers_filter_by_email_exactly_by_part_of_it_and_by_words_of_name_or_email(
    client, people, filter, expected
):
    assert await emails(client, filter=filter) == expected


async def test_customers_page_both_ways(client, people):
    everyone = list(people)
    first = await gql(client, CUSTOMERS, {"first": 2})
    assert [e["node"]["email"] for e in first["customers"]["edges"]] == everyone[:2]
    assert first["customers"]["totalCount"] == 5
    after = first["customers"]["pageInfo"]["endCursor"]
    assert await emails(client, first=2, after=after) == everyone[2:4]
    assert await emails(client, last=2) == everyone[3:]
    last = await gql(client, CUSTOMERS, {"last": 2})
    before = last["customers"]["pageInfo"]["startCursor"]
    assert await emails(client, last=10, before=before) == everyone[:3]


async def test_an_overlong_or_nul_search_is_refused_naming_the_field(client):
    for filter, field in [
        ({"search": "x" * 321}, "filter.search"),
        ({"emailContains": "a\x00b"}, "filter.emailContains"),
    ]:
        response = await gql_raw(client, CUSTOMERS, {"filter": filter})
        [error] = response.json()["errors"]
        assert field in error["message"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"


CUSTOMER_SUBSCRIPTIONS = """query($id: ID!, $order: SubscriptionOrder, $first: Int, $last: Int) { customer(id: $id) {
  subscriptions(orderBy: $order, first: $first, last: $last) {
    totalCount pageInfo { hasNextPage hasPreviousPage } edges { node { id amount { amount } customer { id } } }
  }
} }"""


async def test_a_customers_subscriptions_are_a_connection_of_their_own(client):
    world = await make_world(client)
    ada = world.customer
    mine = [(await subscribe(client, world, price=p))["subscription"]["id"] for p in ["30.00", "10.00", "20.00"]]
    other = await make_customer(client, "other@example.com")
    await add_card(client, other)
    world.customer = other
    await subscribe(client, world, price="99.00")
    theirs = (await gql(client, CUSTOMER_SUBSCRIPTIONS, {"id": other}))["customer"]["subscriptions"]
    assert theirs["totalCount"] == 1
    listed = (await gql(client, CUSTOMER_SUBSCRIPTIONS, {"id": ada}))["customer"]["subscriptions"]
    assert listed["totalCount"] == 3
    assert [e["node"]["id"] for e in listed["edges"]] == mine
    assert {e["node"]["customer"]["id"] for e in listed["edges"]} == {ada}
    by_amount = await gql(
        client, CUSTOMER_SUBSCRIPTIONS, {"id": ada, "order": {"field": "AMOUNT", "direction": "DESC"}}
    )
    amounts = [e["node"]["amount"]["amount"] for e in by_amount["customer"]["subscriptions"]["edges"]]
    assert amounts == ["30.00", "20.00", "10.00"]
    tail = (await gql(client, CUSTOMER_SUBSCRIPTIONS, {"id": ada, "last": 2}))["customer"]["subscriptions"]
    assert [e["node"]["id"] for e in tail["edges"]] == mine[1:]
    assert tail["pageInfo"] == {"hasNextPage": False, "hasPreviousPage": True}


async def test_customers_with_their_subscriptions_cost_the_same_statements_for_10_or_60(client, services):
    await seed(services, 150, seed=2)
    query = """query($first: Int!) { customers(first: $first) { edges { node { id
        subscriptions(first: 3, orderBy: {field: NEXT_RENEWAL_DATE, direction: DESC}) {
          totalCount edges { node { id items { id product { sku } } profile { name } } } } } } } }"""
    counts = []
    for first in (10, 60):
        with counting(services) as statements:
            data = await gql(client, query, {"first": first})
        assert len(data["customers"]["edges"]) == first
        assert sum(e["node"]["subscriptions"]["totalCount"] for e in data["customers"]["edges"]) >= first
        counts.append(len(statements))
    assert counts[0] == counts[1], counts


NODES = """query($ids: [ID!]!) { nodes(ids: $ids) { __typename id
  ... on Subscription { status } ... on Customer { email } ... on Renewal { cycle } ... on Product { sku } } }"""


async def test_nodes_resolves_ids_of_any_kind_in_the_order_asked(client):
    world = await make_world(client)
    created = await subscribe(client, world)
    sub, renewal = created["subscription"]["id"], created["renewal"]["id"]
    from rebill.ids import to_global_id

    missing = to_global_id("Subscription", 999999)
    asked = [renewal, world.customer, "not-an-id", sub, missing, world.product, sub]
    data = await gql(client, NODES, {"ids": asked})
    found = data["nodes"]
    assert [n and n["__typename"] for n in found] == [
        "Renewal",
        "Customer",
        None,
        "Subscription",
        None,
        "Product",
        "Subscription",
    ]
    assert [n["id"] for n in found if n] == [renewal, world.customer, sub, world.product, sub]
    assert found[1]["email"] == "ada@example.com"


async def test_nodes_takes_at_most_100_ids(client):
    from rebill.ids import to_global_id

    ids = [to_global_id("Subscription", n) for n in range(1, 102)]
    response = await gql_raw(client, NODES, {"ids": ids})
    [error] = response.json()["errors"]
    assert "at most 100" in error["message"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert (await gql(client, NODES, {"ids": ids[:100]}))["nodes"] == [None] * 100
