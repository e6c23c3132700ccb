"""Support finds subscriptions by part of a customer's address or name, as customers(filter: { search }) does."""

from __future__ import annotations

from tests.support import gql, gql_raw, make_customer, make_world, subscribe

LIST = "query($f: SubscriptionFilter) { subscriptions(filter: $f, first: 100) { totalCount edges { node { id } } } }"
CUSTOMERS = "query($s: String) { customers(filter: { search: $s }, first: 100) { edges { node { id } } } }"


async def _ids(client, flt: dict) -> set[str]:
    data = (await gql(client, LIST, {"f": flt}))["subscriptions"]
    ids = {e["node"]["id"] for e in data["edges"]}
    assert data["totalCount"] == len(ids)
    return ids


async def _customers(client, search: str) -> set[str]:
    data = await gql(client, CUSTOMERS, {"s": search})
    return {e["node"]["id"] for e in data["customers"]["edges"]}


async def test_part_of_an_address_or_a_name_finds_exactly_that_customers_subscriptions(client):
    world = await make_world(client)
    world.customer = await make_customer(client, email="ada.lovelace@example.com", name="Ada Lovelace")
    ada = (await subscribe(client, world))["subscription"]["id"]
    ada_too = (await subscribe(client, world, price="10.00"))["subscription"]["id"]
    world.customer = await make_customer(client, email="charles@analytical.org", name="Charles Babbage")
    charles = (await subscribe(client, world))["subscription"]["id"]
    world.customer = await make_customer(client, email="grace%hopper@navy.mil", name="Grace Hopper")
    grace = (await subscribe(client, world))["subscription"]["id"]
    world.customer = await make_customer(client, email="gracexhopper@navy.mil", name="Not Grace")
    other_grace = (await subscribe(client, world))["subscription"]["id"]
    everyone = await _ids(client, {})

    cases = {
        "ada.lov": {ada, ada_too},  # part of an address
        "babbage": {charles},  # part of a name
        "ada example.com": {ada, ada_too},  # two words, each somewhere in the name or address
        "  Lovelace  ADA ": {ada, ada_too},  # mixed case, any order, spaces around
        "charles lovelace": set(),  # every word must occur
        "grace%hopper": {grace},  # % is a character, not a wildcard
        "%": {grace},
        "_": set(),  # _ is a character too: no address or name holds one
        "\\": set(),
        "navy.mil": {grace, other_grace},
        "": everyone,  # no words narrow nothing
    }
    for text, expected in cases.items():
        assert await _ids(client, {"customerSearch": text}) == expected, text

    # The same words find the same customers in customers(filter: { search }).
    for text in ("ada.lov", "babbage", "grace%hopper", "  Lovelace  ADA "):
        owners = await _customers(client, text)
        assert len(owners) == 1, text

    # It narrows alongside the other filter fields, and the exact customerEmail stays as it was.
    assert await _ids(client, {"customerSearch": "lovelace", "amountMax": "20.00"}) == {ada_too}
    assert await _ids(client, {"customerEmail": "ADA.LOVELACE@example.com"}) == {ada, ada_too}
    assert await _ids(client, {"customerEmail": "ada.lov"}) == set()


async def test_a_search_longer_than_a_customer_search_is_refused_naming_the_field(client):
    body = (await gql_raw(client, LIST, {"f": {"customerSearch": "a" * 321}})).json()
    assert body.get("data") is None or body["data"].get("subscriptions") is None
    assert "customerSearch" in body["errors"][0]["message"]
    assert await _ids(client, {"customerSearch": "a" * 320}) == set()


async def test_a_bulk_plan_filters_by_customer_search_too(client):
    world = await make_world(client)
    world.customer = await make_customer(client, email="ada.lovelace@example.com", name="Ada Lovelace")
    await subscribe(client, world)
    world.customer = await make_customer(client, email="charles@analytical.org", name="Charles Babbage")
    await subscribe(client, world)
    preview = """
    query($plan: BulkPlanInput!) { bulkPreview(plan: $plan) { matched } }
    """
    plan = {
        "filter": {"customerSearch": "LOVELACE example"},
        "segments": [{"name": "all", "actions": [{"adjustPrice": {"percent": "-10"}}]}],
    }
    assert (await gql(client, preview, {"plan": plan}))["bulkPreview"]["matched"] == 1
