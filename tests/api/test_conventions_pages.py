"""Relay pagination and sorting: first/after, last/before, PageInfo, orderBy, cursors that survive new rows."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.support import gql, gql_raw, make_world, mutate, ok, subscribe

PAGE = """query($first: Int, $after: String, $last: Int, $before: String, $order: SubscriptionOrder) {
  subscriptions(first: $first, after: $after, last: $last, before: $before, orderBy: $order) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id nextRenewalDate createdAt updatedAt amount { amount } } }
  }
}"""


async def page(client, **variables: Any) -> dict[str, Any]:
    data = await gql(client, PAGE, variables)
    connection: dict[str, Any] = data["subscriptions"]
    return connection


def ids(connection: dict[str, Any]) -> list[str]:
    return [e["node"]["id"] for e in connection["edges"]]


async def a_shop(client, prices: list[str]) -> tuple[Any, list[str]]:
    """Subscriptions created in this order, with these prices and start dates a few days apart."""
    world = await make_world(client)
    created = []
    for n, price in enumerate(prices):
        sub = await subscribe(client, world, price=price, startDate=f"2026-01-{15 - n:02d}")
        created.append(sub["subscription"]["id"])
    return world, created


async def walk_forward(client, size: int, **variables: Any) -> list[str]:
    seen: list[str] = []
    after = None
    while True:
        connection = await page(client, first=size, after=after, **variables)
        seen += ids(connection)
        assert connection["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not connection["pageInfo"]["hasNextPage"]:
            return seen
        after = connection["pageInfo"]["endCursor"]


async def walk_backward(client, size: int, **variables: Any) -> list[str]:
    seen: list[str] = []
    before = None
    while True:
        connection = await page(client, last=size, before=before, **variables)
        seen = ids(connection) + seen
        assert connection["pageInfo"]["hasNextPage"] is (before is not None)
        if not connection["pageInfo"]["hasPreviousPage"]:
            return seen
        before = connection["pageInfo"]["startCursor"]


async def test_first_after_and_last_before_walk_the_same_list_both_ways(client):
    _, created = await a_shop(client, ["10.00", "11.00", "12.00", "13.00", "14.00"])
    assert await walk_forward(client, 2) == created
    assert await walk_backward(client, 2) == created
    last_two = await page(client, last=2)
    assert ids(last_two) == created[3:]
    assert last_two["pageInfo"] == {
        "hasNextPage": False,
        "hasPreviousPage": True,
        "startCursor": last_two["edges"][0]["cursor"],
        "endCursor": last_two["edges"][1]["cursor"],
    }
    assert last_two["totalCount"] == 5
    # A window between two cursors.
    everything = await page(client)
    between = await page(
        client, first=10, after=everything["edges"][0]["cursor"], before=everything["edges"][4]["cursor"]
    )
    assert ids(between) == created[1:4]


async def test_cursors_stay_valid_while_subscriptions_are_added(client):
    world, created = await a_shop(client, ["10.00", "20.00", "30.00", "40.00"])
    order = {"field": "AMOUNT", "direction": "ASC"}
    first = await page(client, first=2, order=order)
    assert ids(first) == created[:2]
    # New rows land before, between and after the cursor's position.
    for price in ["5.00", "25.00", "50.00"]:
        await subscribe(client, world, price=price)
    rest = await page(client, first=10, after=first["pageInfo"]["endCursor"], order=order)
    amounts = [e["node"]["amount"]["amount"] for e in rest["edges"]]
    assert amounts == ["25.00", "30.00", "40.00", "50.00"], "no row repeated, none skipped after the cursor"
    assert ids(rest)[1:3] == created[2:]


SORTS = [
    ("ID", lambda n: n["position"]),
    ("CREATED_AT", lambda n: (n["createdAt"], n["position"])),
    ("UPDATED_AT", lambda n: (n["updatedAt"], n["position"])),
    ("NEXT_RENEWAL_DATE", lambda n: (n["nextRenewalDate"] or "9999-12-31", n["position"])),
    ("AMOUNT", lambda n: (Decimal(n["amount"]["amount"]), n["position"])),
]


@pytest.mark.parametrize(("field", "key"), SORTS, ids=[s[0] for s in SORTS])
@pytest.mark.parametrize("direction", ["ASC", "DESC"])
async def test_subscriptions_sort_by_each_field_both_ways_and_page_through_the_sort(client, field, key, direction):
    _, created = await a_shop(client, ["30.00", "10.00", "30.00", "20.00", "5.00"])
    # One final subscription (no next renewal date) and one changed later (a newer updatedAt).
    ok(await mutate(client, "cancelSubscription", {"subscriptionId": created[1]}, "subscription { id }"))
    ok(
        await mutate(
            client, "changeNextRenewalDate", {"subscriptionId": created[3], "date": "2026-03-01"}, "subscription { id }"
        )
    )
    nodes = (await page(client, first=100))["edges"]
    position = {e["node"]["id"]: n for n, e in enumerate(nodes)}
    expected = sorted(
        (dict(e["node"], position=position[e["node"]["id"]]) for e in nodes), key=key, reverse=direction == "DESC"
    )
    order = {"field": field, "direction": direction}
    assert ids(await page(client, first=100, order=order)) == [n["id"] for n in expected]
    assert await walk_forward(client, 2, order=order) == [n["id"] for n in expected]
    assert await walk_backward(client, 2, order=order) == [n["id"] for n in expected]


async def test_a_cursor_only_works_with_the_sort_it_came_from(client):
    await a_shop(client, ["10.00", "20.00"])
    by_amount = await page(client, first=1, order={"field": "AMOUNT"})
    response = await gql_raw(client, PAGE, {"first": 1, "after": by_amount["pageInfo"]["endCursor"]})
    [error] = response.json()["errors"]
    assert "sorted by amount" in error["message"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"first": 2, "last": 2}, "not both"),
        ({"last": 101}, "last may not exceed 100"),
        ({"last": -1}, "last may not be negative"),
        ({"before": "bm90IGEgY3Vyc29y"}, "invalid cursor"),
    ],
)
async def test_bad_page_arguments_are_refused_with_a_clear_message(client, variables, message):
    response = await gql_raw(client, PAGE, variables)
    [error] = response.json()["errors"]
    assert message in error["message"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


HISTORY = """query($id: ID!, $order: ChronologicalOrder, $last: Int) { subscription(id: $id) {
  history(orderBy: $order, last: $last) { edges { node { action } } pageInfo { hasPreviousPage } }
  renewals(orderBy: $order, last: $last) { edges { node { cycle } } }
} }"""


async def test_history_and_renewals_list_newest_first_unless_asked_for_asc(client):
    _, [sid] = await a_shop(client, ["10.00"])
    ok(await mutate(client, "renewNow", {"subscriptionId": sid}, "subscription { id }"))
    newest = (await gql(client, HISTORY, {"id": sid}))["subscription"]
    oldest = (await gql(client, HISTORY, {"id": sid, "order": {"direction": "ASC"}}))["subscription"]
    actions = [e["node"]["action"] for e in oldest["history"]["edges"]]
    assert actions[0] == "created" and len(actions) >= 3
    assert [e["node"]["action"] for e in newest["history"]["edges"]] == actions[::-1]
    assert [e["node"]["cycle"] for e in newest["renewals"]["edges"]] == [2, 1]
    assert [e["node"]["cycle"] for e in oldest["renewals"]["edges"]] == [1, 2]
    # last counts from the end of the order asked for: the two oldest entries, oldest first.
    tail = (await gql(client, HISTORY, {"id": sid, "last": 2}))["subscription"]
    assert [e["node"]["action"] for e in tail["history"]["edges"]] == actions[1::-1]
    assert tail["history"]["pageInfo"]["hasPreviousPage"] is True


async def test_every_connection_takes_first_after_last_and_before(client):
    data = await gql(
        client,
        """{ __schema { types { name fields { name args { name type { name } } type { name kind ofType { name } } } } } }""",
    )
    connections = 0
    for type_ in data["__schema"]["types"]:
        for field in type_["fields"] or []:
            returned = field["type"]["name"] or (field["type"]["ofType"] or {}).get("name") or ""
            if not returned.endswith("Connection"):
                continue
            connections += 1
            args = {a["name"]: a["type"]["name"] for a in field["args"]}
            expected = {"first": "Int", "after": "String", "last": "Int", "before": "String"}
            assert expected.items() <= args.items(), f"{type_['name']}.{field['name']}"
    assert connections >= 8
    page_info = next(t for t in data["__schema"]["types"] if t["name"] == "PageInfo")
    assert {f["name"] for f in page_info["fields"]} == {"hasNextPage", "hasPreviousPage", "startCursor", "endCursor"}
