"""Each key sees only what its scopes allow: mutation payloads, and bulk runs owned by the key that started them."""

from __future__ import annotations

import httpx
import pytest

from rebill.app import create_app
from rebill.services.apikeys import create_key
from tests.support import gql_raw, history, make_world, subscribe

PLAN = {"segments": [{"name": "all", "actions": [{"shiftNextRenewal": {"unit": "DAY", "count": 1}}]}]}
START = "mutation($p: BulkPlanInput!) { startBulkRun(input: { plan: $p, dryRun: true }) { run { id status } userErrors { code } } }"
READ_RUN = "query($id: ID!) { bulkRun(id: $id) { id status } }"
NODE = "query($id: ID!) { node(id: $id) { id ... on BulkRun { status } } }"
CANCEL = "mutation($id: ID!) { cancelBulkRun(input: { runId: $id }) { run { id status } userErrors { code message } } }"
REVERT = "mutation($id: ID!) { revertBulkRun(input: { runId: $id }) { run { id } userErrors { code message } } }"


async def _keyed(services, name: str, *scopes: str) -> httpx.AsyncClient:
    secret = (await create_key(services.engine, name, scopes, services.clock.now())).secret
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services)),
        base_url="http://rebill.test",
        headers={"Authorization": f"Bearer {secret}"},
    )


@pytest.mark.parametrize(
    "selection",
    [
        "subscription { customer { email } }",
        "subscription { history { edges { node { actor } } } }",
        "subscription { status amount { amount } }",
        "subscription { ...Leak }",
        "... on SuspendSubscriptionPayload { subscription { customer { email } } }",
    ],
)
async def test_a_write_only_key_reads_nothing_through_a_mutation_payload(client, services, selection):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]["id"]
    before = await history(client, sub)
    fragment = " fragment Leak on Subscription { customer { email } }" if "Leak" in selection else ""
    async with await _keyed(services, "writer", "write") as writer:
        response = await gql_raw(
            writer,
            "mutation($id: ID!) { suspendSubscription(input: { subscriptionId: $id, dryRun: false }) { userErrors { code } "
            + selection
            + " } }"
            + fragment,
            {"id": sub},
        )
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "read" in body["errors"][0]["message"]
    assert "ada@example.com" not in response.text
    assert await history(client, sub) == before  # refused before it ran


async def test_a_write_only_key_still_learns_ids_and_user_errors(client, services):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]["id"]
    async with await _keyed(services, "writer", "write") as writer:
        body = (
            await gql_raw(
                writer,
                "mutation($id: ID!) { suspendSubscription(input: { subscriptionId: $id, dryRun: true }) { userErrors { code } subscription { id __typename } } }",
                {"id": sub},
            )
        ).json()
    assert "errors" not in body, body
    assert body["data"]["suspendSubscription"]["subscription"]["id"] == sub


async def test_a_key_with_read_and_write_sees_the_payload(client, services):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]["id"]
    async with await _keyed(services, "both", "read", "write") as both:
        body = (
            await gql_raw(
                both,
                "mutation($id: ID!) { suspendSubscription(input: { subscriptionId: $id, dryRun: true }) { subscription { customer { email } } } }",
                {"id": sub},
            )
        ).json()
    assert body["data"]["suspendSubscription"]["subscription"]["customer"]["email"] == "ada@example.com"


async def test_a_bulk_run_belongs_to_the_key_that_started_it(client, services):
    async with (
        await _keyed(services, "alice", "bulk") as alice,
        await _keyed(services, "bob", "bulk") as bob,
        await _keyed(services, "boss", "admin") as boss,
    ):
        started = (await gql_raw(alice, START, {"p": PLAN})).json()
        run_id = started["data"]["startBulkRun"]["run"]["id"]
        assert (await gql_raw(alice, READ_RUN, {"id": run_id})).json()["data"]["bulkRun"]["id"] == run_id

        assert (await gql_raw(bob, READ_RUN, {"id": run_id})).json()["data"]["bulkRun"] is None
        assert (await gql_raw(bob, NODE, {"id": run_id})).json()["data"]["node"] is None
        for mutation, name in ((CANCEL, "cancelBulkRun"), (REVERT, "revertBulkRun")):
            payload = (await gql_raw(bob, mutation, {"id": run_id})).json()["data"][name]
            assert payload["run"] is None
            assert payload["userErrors"][0]["code"] == "FORBIDDEN"
            assert "admin" in payload["userErrors"][0]["message"]

        assert (await gql_raw(boss, READ_RUN, {"id": run_id})).json()["data"]["bulkRun"]["id"] == run_id
        cancelled = (await gql_raw(alice, CANCEL, {"id": run_id})).json()["data"]["cancelBulkRun"]
        assert cancelled["userErrors"] == [] and cancelled["run"]["id"] == run_id


async def _portal_tokens(services) -> int:
    from sqlalchemy import func, select

    from rebill.db import tables as t

    async with services.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(t.PortalToken))).scalar_one()


MINT = "mutation($c: ID!) { createCustomerPortalSession(input: { customerId: $c }) { url token userErrors { code } } }"


@pytest.mark.parametrize("scopes", [("write",), ("read",), ("write", "refund", "bulk")])
async def test_a_customer_token_is_minted_only_by_keys_that_may_read_and_write(client, services, scopes):
    world = await make_world(client)
    before = await _portal_tokens(services)
    async with await _keyed(services, "minter", *scopes) as minter:
        response = await gql_raw(minter, MINT, {"c": world.customer})
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    missing = "read" if "read" not in scopes else "write"
    assert f"'{missing}'" in body["errors"][0]["message"]
    assert body["data"] is None or body["data"].get("createCustomerPortalSession") is None
    assert await _portal_tokens(services) == before, "nothing is created"


async def test_a_key_with_read_and_write_mints_a_customer_token(client, services):
    world = await make_world(client)
    async with await _keyed(services, "store", "read", "write") as store:
        payload = (await gql_raw(store, MINT, {"c": world.customer})).json()["data"]["createCustomerPortalSession"]
    assert payload["userErrors"] == [] and payload["token"] and payload["url"]
