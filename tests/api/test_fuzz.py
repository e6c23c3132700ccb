"""Schema-driven fuzzing of every query and mutation (hypothesis-graphql) against a real server.

Valid and invalid operations, with and without variables, from keys of each
scope. Whatever the input, the server never answers 5xx, never masks a client
mistake as "Internal error.", never shows a traceback, SQL or a file path, and
a request it refuses leaves the database as it was. The number of examples is
bounded so that the suite stays within its time budget.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import asyncpg
import graphql
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, mutations, nodes, queries

from rebill.config import Settings
from rebill.schema import build_full_schema
from tests.api.live_server import LiveRebill, running_rebill

SCHEMA = build_full_schema(Settings()).as_str()

SCALARS = {
    "Date": st.one_of(st.dates().map(lambda d: nodes.String(d.isoformat())), st.text(max_size=12).map(nodes.String)),
    "DateTime": st.one_of(
        st.datetimes(timezones=st.just(__import__("datetime").UTC)).map(lambda d: nodes.String(d.isoformat())),
        st.text(max_size=12).map(nodes.String),
    ),
    "JSON": st.one_of(
        st.text(max_size=20).map(nodes.String),
        st.integers().map(nodes.Int),
        st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3).map(
            lambda d: graphql.ObjectValueNode(
                fields=tuple(
                    graphql.ObjectFieldNode(name=graphql.NameNode(value=f"k{i}"), value=nodes.String(v))
                    for i, v in enumerate(d.values())
                )
            )
        ),
    ),
}

LEAKS = re.compile(
    r"Traceback|File \"|\.py\b|site-packages|/src/rebill|SELECT |INSERT INTO|UPDATE \w+ SET|asyncpg|sqlalchemy|psycopg",
)
SCOPES = [None, "read", "write", "admin"]

FINGERPRINT = """
SELECT (SELECT count(*) FROM subscriptions), (SELECT coalesce(sum(version), 0) FROM subscriptions),
       (SELECT count(*) FROM history_entries), (SELECT count(*) FROM customers),
       (SELECT count(*) FROM products), (SELECT count(*) FROM subscription_profiles),
       (SELECT count(*) FROM renewals), (SELECT count(*) FROM outbox), (SELECT count(*) FROM bulk_runs)
"""


@pytest.fixture(scope="module")
def live(database_url: str) -> Iterator[LiveRebill]:
    with running_rebill(database_url, scopes=("read", "write", "admin")) as server:
        yield server


@pytest.fixture(scope="module")
def http(live: LiveRebill) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.base_url, timeout=30) as client:
        yield client


def _dsn(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


def fingerprint(database_url: str) -> tuple[Any, ...]:
    async def read() -> tuple[Any, ...]:
        conn = await asyncpg.connect(_dsn(database_url))
        try:
            return tuple(await conn.fetchrow(FINGERPRINT))
        finally:
            await conn.close()

    return asyncio.run(read())


def check(response: httpx.Response) -> dict[str, Any] | None:
    """What every answer must be, whatever was asked."""
    assert response.status_code < 500, response.text
    assert not LEAKS.search(response.text), response.text
    if response.headers.get("content-type", "").startswith("application/json"):
        body: dict[str, Any] = response.json()
        for error in body.get("errors") or []:
            assert error["message"] != "Internal error.", (response.request.content, body)
        return body
    return None


def _send(http: httpx.Client, live: LiveRebill, scope: str | None, document: str) -> httpx.Response:
    return http.post("/graphql", json={"query": document}, headers=live.headers(scope))


FUZZ = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    database=None,
)


@FUZZ
@given(
    document=queries(SCHEMA, custom_scalars=SCALARS, mode=Mode.POSITIVE),
    scope=st.sampled_from(SCOPES),
)
def test_valid_queries_never_fail_the_server(http, live, document, scope):
    check(_send(http, live, scope, document))


@FUZZ
@given(
    document=queries(SCHEMA, custom_scalars=SCALARS, mode=Mode.NEGATIVE),
    scope=st.sampled_from(SCOPES),
)
def test_invalid_queries_are_clear_client_errors(http, live, document, scope):
    response = _send(http, live, scope, document)
    body = check(response)
    if scope is not None and body is not None and body.get("errors") and response.status_code == 200:
        codes = {(e.get("extensions") or {}).get("code") for e in body["errors"]}
        assert codes & {"BAD_USER_INPUT", "FORBIDDEN", "GRAPHQL_VALIDATION_FAILED", None}, body


@FUZZ
@given(
    document=mutations(SCHEMA, custom_scalars=SCALARS, mode=Mode.POSITIVE),
    scope=st.sampled_from(SCOPES),
)
def test_valid_mutations_never_fail_the_server(http, live, database_url, document, scope):
    before = fingerprint(database_url)
    body = check(_send(http, live, scope, document))
    if body is not None and body.get("errors") and body.get("data") is None:
        assert fingerprint(database_url) == before, (document, body)


@FUZZ
@given(
    document=mutations(SCHEMA, custom_scalars=SCALARS, mode=Mode.NEGATIVE),
    scope=st.sampled_from(SCOPES),
)
def test_invalid_mutations_are_refused_and_change_nothing(http, live, database_url, document, scope):
    before = fingerprint(database_url)
    body = check(_send(http, live, scope, document))
    if body is not None and body.get("data") is None:
        assert fingerprint(database_url) == before, (document, body)


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(
    variables=st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.text(max_size=30)
        | st.floats(allow_nan=False, allow_infinity=False),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=12,
    ),
)
def test_arbitrary_variables_are_coerced_or_refused_clearly(http, live, variables):
    document = (
        "query($f: SubscriptionFilter, $first: Int, $after: String) "
        "{ subscriptions(filter: $f, first: $first, after: $after) { totalCount } }"
    )
    for name in ("f", "first", "after"):
        response = http.post(
            "/graphql", json={"query": document, "variables": {name: variables}}, headers=live.headers("read")
        )
        check(response)
