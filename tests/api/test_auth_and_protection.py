"""API keys and scopes, query limits, masked errors, and production switches."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from rebill.app import create_app
from rebill.services.apikeys import create_key
from tests.support import gql_raw, make_world, subscribe

LIST = "{ subscriptions(first: 5) { totalCount } }"


async def _client_with(services, key: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services)), base_url="http://rebill.test", headers=headers
    )


async def _key(services, name: str, *scopes: str) -> str:
    return (await create_key(services.engine, name, scopes, services.clock.now())).secret


async def test_no_key_is_401_unauthenticated(services):
    async with await _client_with(services, None) as anonymous:
        response = await gql_raw(anonymous, LIST)
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_wrong_key_is_401_unauthenticated(services):
    async with await _client_with(services, "rbk_nope_not-a-real-secret") as stranger:
        response = await gql_raw(stranger, LIST)
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_only_a_hash_of_the_secret_is_stored(services):
    from sqlalchemy import text

    secret = await _key(services, "dashboard", "read")
    async with services.engine.connect() as conn:
        stored = (await conn.execute(text("SELECT secret_hash FROM api_keys WHERE name = 'dashboard'"))).scalar()
    assert secret not in stored
    assert len(stored) == 64


@pytest.mark.parametrize(
    ("scopes", "operation", "allowed"),
    [
        (("read",), LIST, True),
        (("write",), LIST, False),
        (("read",), 'mutation { createCustomer(input: {email: "a@b.c"}) { userErrors { code } } }', False),
        (("write",), 'mutation { createCustomer(input: {email: "a@b.c"}) { userErrors { code } } }', True),
        (("write",), 'mutation { refundRenewal(input: {renewalId: "x"}) { userErrors { code } } }', False),
        (("refund",), 'mutation { refundRenewal(input: {renewalId: "x"}) { userErrors { code } } }', True),
        (("admin",), 'mutation { refundRenewal(input: {renewalId: "x"}) { userErrors { code } } }', True),
        (("admin",), LIST, True),
    ],
)
async def test_scopes_decide_what_a_key_may_do(services, scopes, operation, allowed):
    secret = await _key(services, "k-" + "-".join(scopes), *scopes)
    async with await _client_with(services, secret) as keyed:
        response = await gql_raw(keyed, operation)
    body = response.json()
    assert response.status_code == 200
    if allowed:
        assert "errors" not in body, body
    else:
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        assert "scope" in body["errors"][0]["message"]


async def test_first_above_100_is_refused_with_a_clear_error(client):
    body = (await gql_raw(client, "{ subscriptions(first: 101) { totalCount } }")).json()
    assert "may not exceed 100" in body["errors"][0]["message"]


async def test_too_deep_a_query_is_refused(client):
    deep = "{ subscriptions { edges { node { renewals { edges { node { subscription { renewals { edges { node { subscription { renewals { edges { node { id } } } } } } } } } } } } } } }"
    body = (await gql_raw(client, deep)).json()
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]


async def test_too_many_aliases_are_refused(client):
    aliases = " ".join(f"a{i}: subscriptions(first: 1) {{ totalCount }}" for i in range(40))
    body = (await gql_raw(client, "{ " + aliases + " }")).json()
    assert "aliases" in body["errors"][0]["message"].lower()


async def test_too_many_tokens_are_refused(client):
    fields = " ".join("__typename" for _ in range(6000))
    body = (await gql_raw(client, "{ " + fields + " }")).json()
    assert "token" in body["errors"][0]["message"].lower()


async def test_an_unexpected_failure_is_masked(client, monkeypatch):
    from rebill.resolvers import queries

    async def boom(*args, **kwargs):
        raise RuntimeError('relation "subscriptions" SELECT secret FROM api_keys')

    world = await make_world(client)
    await subscribe(client, world)
    monkeypatch.setattr(queries, "read_page", boom)
    response = await gql_raw(client, LIST.replace("totalCount", "edges { node { id } }"))
    text = response.text
    assert "Internal error." in text
    assert "SELECT" not in text and "Traceback" not in text and "RuntimeError" not in text


async def test_introspection_and_graphiql_can_be_turned_off(services, admin_key):
    services.settings = replace(services.settings, introspection=False, graphiql=False)
    async with await _client_with(services, admin_key) as keyed:
        body = (await gql_raw(keyed, "{ __schema { types { name } } }")).json()
        assert "introspection" in body["errors"][0]["message"].lower()
        page = await keyed.get("/graphql", headers={"Accept": "text/html"})
        assert page.status_code in (401, 404, 405) or "graphiql" not in page.text.lower()
        assert "errors" not in (await gql_raw(keyed, LIST)).json()


async def test_graphiql_is_served_when_enabled(client):
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()


async def test_health_check_reports_the_database(client):
    response = await client.get("/healthz")
    assert response.json() == {"status": "ok", "database": "up"}
