"""No N+1: a page of 100 subscriptions runs as many SQL statements as a page of 10.

Statements are counted on the engine as the HTTP request runs, the API-key
check included, the same way for both pages.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from rebill.seed import seed
from rebill.services.runtime import Services
from tests.support import gql

NESTED = """
  id status amount { amount currency } nextRenewalDate
  items { id quantity unitPrice { amount currency } total { amount }
          product { id name sku kind tiers { upTo unitPrice { amount } } } }
  profile { id name cadence { unit count } anchorPolicy }
  customer { id email name timeZone }
  paymentMethod { id kind brand last4 }
"""


@contextmanager
def counting(services: Services) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        statements.append(statement)

    event.listen(services.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(services.engine.sync_engine, "before_cursor_execute", record)


async def page_cost(client: httpx.AsyncClient, services: Services, first: int, selection: str) -> tuple[int, list[Any]]:
    query = (
        f"query($first: Int!) {{ subscriptions(first: $first) {{ totalCount edges {{ node {{ {selection} }} }} }} }}"
    )
    with counting(services) as statements:
        data = await gql(client, query, {"first": first})
    edges = data["subscriptions"]["edges"]
    assert len(edges) == first
    return len(statements), [e["node"] for e in edges]


@pytest.fixture
async def catalog_of_subscriptions(services: Services) -> None:
    """150 subscriptions over about a hundred customers, a dozen plans, thirteen products."""
    await seed(services, 150, seed=2)


async def test_a_page_of_100_costs_what_a_page_of_10_costs(
    client: httpx.AsyncClient, services: Services, catalog_of_subscriptions: None
) -> None:
    small, _ = await page_cost(client, services, 10, NESTED)
    large, nodes = await page_cost(client, services, 100, NESTED)
    assert small == large, f"{small} statements for 10 subscriptions, {large} for 100"
    # A state reads its row, items, coupons, profiles, products, payment methods, contract, and its customer's tax.
    assert large <= 14
    # The page really spans many of each related thing.
    assert len({n["customer"]["id"] for n in nodes}) >= 50
    assert len({n["profile"]["id"] for n in nodes}) >= 8
    assert len({i["product"]["id"] for n in nodes for i in n["items"]}) >= 8
    assert len({n["paymentMethod"]["id"] for n in nodes if n["paymentMethod"]}) >= 50


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param("coupons { code active coupon { id percentOff } }", id="coupons"),
        pytest.param("phases { id effectiveDate }", id="phases"),
        pytest.param("customer { defaultPaymentMethod { id kind } }", id="default-payment-method"),
        pytest.param(
            "renewals(first: 1) { totalCount }",
            id="renewals",
        ),
        pytest.param(
            "history(first: 1) { totalCount }",
            id="history",
        ),
        pytest.param(
            "customer { paymentMethods { id } }",
            id="customer-payment-methods",
        ),
    ],
)
async def test_more_nested_fields_keep_the_cost_flat(
    client: httpx.AsyncClient, services: Services, catalog_of_subscriptions: None, extra: str
) -> None:
    small, _ = await page_cost(client, services, 10, NESTED + extra)
    large, _ = await page_cost(client, services, 100, NESTED + extra)
    assert small == large, f"{small} statements for 10 subscriptions, {large} for 100"


async def test_a_page_reads_what_its_selection_asks_and_nothing_more(
    client: httpx.AsyncClient, services: Services, catalog_of_subscriptions: None
) -> None:
    async def statements(query: str) -> list[str]:
        with counting(services) as seen:
            await gql(client, query)
        return [" ".join(s.split()) for s in seen]

    rows = await statements("{ subscriptions(first: 5) { edges { node { id status nextRenewalDate } } } }")
    # The API key, the rate limiter's bucket, the page's rows: no item, profile or state is read.
    assert len(rows) == 3, rows
    assert "FROM subscriptions" in rows[2] and "count(" not in rows[2]
    counted = await statements("{ subscriptions(first: 5) { totalCount edges { node { id } } } }")
    assert len(counted) == 4 and "count(" in counted[3], counted
    nested = await statements(
        "{ subscriptions(first: 5) { edges { node { id items { product { name } } customer { email } } } } }"
    )
    # One statement per level: customers and items, then the items' products.
    assert len(nested) == 6, nested
    assert ["customers" in s for s in nested[3:]].count(True) == 1
    assert ["products" in s for s in nested[3:]].count(True) == 1
