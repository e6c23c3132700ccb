"""Helpers shared by the API and integration tests: GraphQL calls and a small catalog."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

SUBSCRIPTION_FIELDS = """
  id status renewalType version currency
  nextRenewalDate trialEndDate startDate endDate anchorDate
  currentPeriodStart currentPeriodEnd occurrencesBilled overdueCount
  gatewayId gatewayMode metadata cancelAtPeriodEnd
  amount { amount currency }
  items { id quantity autoRenew unitPrice { amount currency } total { amount currency }
          pendingQuantity pendingUnitPrice { amount } product { id sku kind } }
  coupons { code active }
  profile { id name }
"""


class GraphQLFailure(AssertionError):
    pass


async def gql(client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run a query that must succeed without top-level errors; return ``data``."""
    response = await client.post("/graphql", json={"query": query, "variables": variables or {}})
    body = response.json()
    if response.status_code != 200 or body.get("errors"):
        raise GraphQLFailure(f"HTTP {response.status_code}: {body}")
    data: dict[str, Any] = body["data"]
    return data


async def gql_raw(client: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
    return await client.post("/graphql", json={"query": query, "variables": variables or {}})


async def mutate(client: httpx.AsyncClient, name: str, input: dict[str, Any], selection: str) -> dict[str, Any]:
    """Call ``name(input:)`` and return its payload (``userErrors`` always selected)."""
    type_name = name[0].upper() + name[1:] + "Input"
    query = f"mutation($input: {type_name}!) {{ {name}(input: $input) {{ userErrors {{ field code message }} {selection} }} }}"
    data = await gql(client, query, {"input": input})
    payload: dict[str, Any] = data[name]
    return payload


def ok(payload: dict[str, Any]) -> dict[str, Any]:
    assert payload["userErrors"] == [], payload["userErrors"]
    return payload


def error_codes(payload: dict[str, Any]) -> list[str]:
    return [e["code"] for e in payload["userErrors"]]


@dataclass
class World:
    customer: str
    card: str
    profile: str
    product: str
    other_product: str


async def make_profile(client: httpx.AsyncClient, **fields: Any) -> str:
    data = {"name": "Monthly", "cadence": {"unit": "MONTH", "count": 1}, **fields}
    payload = ok(await mutate(client, "createProfile", data, "profile { id }"))
    return str(payload["profile"]["id"])


async def make_product(client: httpx.AsyncClient, sku: str, **fields: Any) -> str:
    payload = ok(await mutate(client, "createProduct", {"name": sku.title(), "sku": sku, **fields}, "product { id }"))
    return str(payload["product"]["id"])


async def make_customer(client: httpx.AsyncClient, email: str = "ada@example.com", **fields: Any) -> str:
    payload = ok(await mutate(client, "createCustomer", {"email": email, "name": "Ada", **fields}, "customer { id }"))
    return str(payload["customer"]["id"])


async def add_card(
    client: httpx.AsyncClient, customer: str, number: str = "4242424242424242", default: bool = True
) -> str:
    payload = ok(
        await mutate(
            client,
            "addPaymentMethod",
            {"customerId": customer, "kind": "CARD", "gatewayToken": number, "makeDefault": default},
            "paymentMethod { id }",
        )
    )
    return str(payload["paymentMethod"]["id"])


async def add_method(client: httpx.AsyncClient, customer: str, kind: str, default: bool = True) -> str:
    payload = ok(
        await mutate(
            client,
            "addPaymentMethod",
            {"customerId": customer, "kind": kind, "makeDefault": default},
            "paymentMethod { id }",
        )
    )
    return str(payload["paymentMethod"]["id"])


async def make_world(client: httpx.AsyncClient, **profile_fields: Any) -> World:
    customer = await make_customer(client)
    card = await add_card(client, customer)
    profile = await make_profile(client, **profile_fields)
    product = await make_product(client, "coffee")
    other = await make_product(client, "tea")
    return World(customer, card, profile, product, other)


async def subscribe(
    client: httpx.AsyncClient,
    world: World,
    price: str = "62.96",
    currency: str = "USD",
    quantity: int = 1,
    **fields: Any,
) -> dict[str, Any]:
    data = {
        "customerId": world.customer,
        "profileId": world.profile,
        "items": [
            {"productId": world.product, "unitPrice": {"amount": price, "currency": currency}, "quantity": quantity}
        ],
        **fields,
    }
    payload = ok(
        await mutate(
            client,
            "createSubscription",
            data,
            f"subscription {{ {SUBSCRIPTION_FIELDS} }} renewal {{ id cycle kind status amount {{ amount }} periodStart periodEnd }}",
        )
    )
    return payload


async def history(client: httpx.AsyncClient, subscription_id: str) -> list[dict[str, Any]]:
    data = await gql(
        client,
        """query($id: ID!) { subscription(id: $id) { history(first: 100, orderBy: {direction: ASC}) { totalCount edges { node {
            actor action reason bulkRunId changes { field before after } } } } } }""",
        {"id": subscription_id},
    )
    return [e["node"] for e in data["subscription"]["history"]["edges"]]


async def get_subscription(client: httpx.AsyncClient, subscription_id: str) -> dict[str, Any]:
    data = await gql(
        client, f"query($id: ID!) {{ subscription(id: $id) {{ {SUBSCRIPTION_FIELDS} }} }}", {"id": subscription_id}
    )
    sub: dict[str, Any] = data["subscription"]
    return sub


def change(entry: dict[str, Any], field: str) -> tuple[Any, Any]:
    for c in entry["changes"]:
        if c["field"] == field:
            return c["before"], c["after"]
    raise AssertionError(f"no change of {field} in {entry}")
