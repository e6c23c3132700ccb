"""The HTTP edge: keys, GET without a key, malformed and oversized bodies, the database down."""

from __future__ import annotations

import json
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from rebill.app import create_app
from rebill.db.engine import session_factory
from tests.support import gql_raw

LIST = "{ subscriptions(first: 5) { totalCount } }"
INTROSPECT = "{ __schema { types { name } } }"


def _client(services, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services)), base_url="http://rebill.test", headers=headers or {}
    )


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer ", "Bearer    ", "Basic abc"])
async def test_an_absent_or_empty_bearer_token_says_missing_api_key(services, header):
    async with _client(services, {"Authorization": header} if header is not None else {}) as anonymous:
        response = await gql_raw(anonymous, LIST)
    assert response.status_code == 401
    error = response.json()["errors"][0]
    assert error["message"] == "missing API key"
    assert error["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_wrong_key_says_unknown_or_revoked(services):
    async with _client(services, {"Authorization": "Bearer rbk_nope"}) as stranger:
        response = await gql_raw(stranger, LIST)
    assert response.status_code == 401
    assert response.json()["errors"][0]["message"] == "unknown or revoked API key"


@pytest.mark.parametrize("query", [INTROSPECT, LIST, "{ __typename }"])
async def test_a_get_from_a_browser_without_a_key_never_runs_the_query(services, query):
    async with _client(services) as anonymous:
        response = await anonymous.get("/graphql", params={"query": query}, headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "__Schema" not in response.text and "totalCount" not in response.text.replace(query, "")
    assert '"data"' not in response.text


async def test_a_get_without_a_key_and_graphiql_off_is_unauthenticated(services):
    services.settings = replace(services.settings, graphiql=False)
    async with _client(services) as anonymous:
        response = await anonymous.get("/graphql", params={"query": INTROSPECT}, headers={"Accept": "text/html"})
    assert response.status_code == 401
    assert "__Schema" not in response.text


async def test_a_get_with_a_key_runs_a_query(services, admin_key):
    async with _client(services, {"Authorization": f"Bearer {admin_key}"}) as keyed:
        response = await keyed.get("/graphql", params={"query": LIST}, headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.json()["data"] == {"subscriptions": {"totalCount": 0}}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"42", "JSON object"),
        (b"[]", "JSON object"),
        (b'"query"', "JSON object"),
        (b"null", "JSON object"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"query": "{ __typename }", "x": "\xe9"}', "not UTF-8"),
        (b"{", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[" * 5000 + b"]" * 5000, "nests JSON"),
        (b'{"query": "{ __typename }", "variables": ' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}", "nests JSON"),
        (b'{"query": "{ __typename }", "variables": ' + b"[" * 100 + b"]" * 100 + b"}", "JSON"),
        (b'{"query": 42}', "'query' must be a string"),
        (b'{"query": "{ __typename }", "variables": [1]}', "'variables' must be a JSON object"),
        (b'{"query": "{ __typename }", "operationName": {}}', "'operationName' must be a string"),
    ],
)
async def test_malformed_bodies_are_400_with_a_json_error(client, body, fragment):
    response = await client.post("/graphql", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    error = response.json()["errors"][0]
    assert fragment in error["message"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize(
    ("request_args", "fragment"),
    [
        ({"json": {"variables": {}}}, "No GraphQL query"),
        ({"content": b"{ __typename }", "headers": {"Content-Type": "text/plain"}}, "content type"),
        ({"json": {"query": "{ __typename }", "operationName": "Nope"}}, "Nope"),
    ],
)
async def test_requests_the_graphql_view_refuses_get_a_json_error(client, request_args, fragment):
    response = await client.post("/graphql", **request_args)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["errors"][0]
    assert fragment in error["message"] and error["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_mutation_sent_as_get_gets_a_json_error(client):
    response = await client.get("/graphql", params={"query": "mutation { __typename }"})
    assert response.status_code in (400, 405)
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_body_over_the_limit_is_413_whatever_its_content(services, admin_key):
    services.settings = replace(services.settings, max_body_bytes=10_000)
    async with _client(services, {"Authorization": f"Bearer {admin_key}"}) as keyed:
        declared = await keyed.post("/graphql", content=b" " * 10_001, headers={"Content-Type": "application/json"})
        assert declared.status_code == 413
        assert declared.json()["errors"][0]["extensions"]["code"] == "REQUEST_TOO_LARGE"

        async def chunks():
            for _ in range(100):  # 1 MB announced by no header: refused once it passes the limit
                yield b" " * 10_000

        streamed = await keyed.post("/graphql", content=chunks(), headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413
        small = await keyed.post("/graphql", json={"query": LIST})
        assert small.status_code == 200 and small.json()["data"]["subscriptions"]["totalCount"] == 0


async def test_the_default_body_limit_is_one_mebibyte(client):
    query = "{ __typename }" + " " * 1_048_576
    response = await client.post("/graphql", content=json.dumps({"query": query}).encode())
    assert response.status_code == 413
    assert "1048576 bytes" in response.json()["errors"][0]["message"]


@pytest.fixture
async def dead_engine():
    engine = create_async_engine("postgresql+asyncpg://rebill:x@127.0.0.1:9/rebill", pool_pre_ping=False)
    yield engine
    await engine.dispose()


async def test_with_the_database_down_authentication_answers_503(services, dead_engine):
    services.engine = dead_engine
    async with _client(services, {"Authorization": "Bearer rbk_anything"}) as keyed:
        response = await gql_raw(keyed, LIST)
    assert response.status_code == 503
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "DATABASE_UNAVAILABLE"
    assert "Internal error" not in response.text and "Traceback" not in response.text


async def test_with_the_database_down_queries_answer_503_and_recover(services, admin_key, dead_engine):
    working = services.sessions
    services.sessions = session_factory(dead_engine)
    async with _client(services, {"Authorization": f"Bearer {admin_key}"}) as keyed:
        down = await gql_raw(keyed, "{ subscriptions(first: 5) { totalCount edges { node { id } } } }")
        assert down.status_code == 503, down.text
        assert down.json()["errors"][0]["extensions"]["code"] == "DATABASE_UNAVAILABLE"
        services.sessions = working
        up = await gql_raw(keyed, "{ subscriptions(first: 5) { totalCount edges { node { id } } } }")
        assert up.status_code == 200 and "errors" not in up.json()


async def test_healthz_reports_a_database_that_is_down(services, dead_engine):
    services.engine = dead_engine
    async with _client(services) as anyone:
        response = await anyone.get("/healthz")
    assert response.status_code == 503


async def test_refused_requests_log_one_line_without_a_traceback(client, caplog):
    caplog.set_level("INFO")
    await gql_raw(client, "{ subscriptionz { totalCount } }")
    await gql_raw(client, '{ subscription(id: "nope") { id } }')
    await gql_raw(client, "query($d: Date!) { renewals(first: 1) { totalCount } __typename @include(if: true) }")
    records = [r for r in caplog.records if r.name.startswith("strawberry")]
    assert records
    for record in records:
        assert record.exc_info is None
        assert "\n" not in record.getMessage()
        assert record.levelname == "INFO"


async def test_nothing_changes_when_a_request_is_refused(client, engine):
    before = await _counts(engine)
    literal = await gql_raw(
        client, 'mutation { createCustomer(input: { email: "a\\u0000b@example.com" }) { customer { id } } }'
    )
    assert literal.json()["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": ["input", "email"]}
    variable = await gql_raw(
        client,
        "mutation($i: CreateCustomerInput!) { createCustomer(input: $i) { customer { id } } }",
        {"i": {"email": "x@y.z", "name": "a\x00"}},
    )
    assert variable.json()["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": ["$i", "name"]}
    assert await _counts(engine) == before


async def _counts(engine) -> tuple[int, ...]:
    counts = []
    async with engine.connect() as conn:
        for table in ("customers", "subscriptions", "history_entries"):
            counts.append((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())
    return tuple(counts)
