"""A client whose requests keep being refused is slowed down; everyone else, and its own valid requests, are not."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from rebill.app import create_app
from rebill.config import Settings
from rebill.http import refusals
from rebill.services.apikeys import create_key

BUCKET = 3
RESTORE = 0.2  # one refusal flows back every 5 s: nothing flows back while a test runs

UNKNOWN_FIELD = "{ subscriptions(first: 1) { nosuchfield } }"
VALID = "{ subscriptions(first: 1) { totalCount } }"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        bulk_worker_in_server=False,
        rate_limit_bucket=1_000_000_000,
        rate_limit_restore=1_000_000_000,
        refusal_bucket=BUCKET,
        refusal_restore=RESTORE,
    )


@pytest.fixture(autouse=True)
def brief_holds(monkeypatch):
    """Throttled answers are held 50 ms here instead of up to 2 s; one test measures a real hold."""
    monkeypatch.setattr(refusals, "MAX_HOLD", 0.05)


@pytest.fixture
async def http(services) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(services), client=("203.0.113.7", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://rebill.test", timeout=30) as client:
        yield client


async def key(services, name: str, scope: str = "read") -> dict[str, str]:
    secret = (await create_key(services.engine, name, [scope], services.clock.now())).secret
    return {"Authorization": f"Bearer {secret}"}


async def post(http: httpx.AsyncClient, query: str, headers: dict[str, str], **extra: str) -> httpx.Response:
    return await http.post("/graphql", json={"query": query}, headers={**headers, **extra})


def is_throttled(response: httpx.Response) -> bool:
    return response.status_code == 429 and response.json()["errors"][0]["extensions"]["code"] == "THROTTLED"


async def test_after_its_bucket_of_refusals_a_client_is_throttled_even_for_a_valid_request(http, services):
    reader = await key(services, "careless-partner")
    for _ in range(BUCKET):
        refused = await post(http, UNKNOWN_FIELD, reader)
        assert refused.status_code == 200 and "nosuchfield" in refused.json()["errors"][0]["message"]
    throttled = await post(http, VALID, reader)
    assert is_throttled(throttled)
    assert "too many refused requests" in throttled.json()["errors"][0]["message"]
    assert int(throttled.headers["Retry-After"]) >= 1


async def test_graphql_over_http_request_errors_and_bad_bodies_count_as_refusals(http, services):
    reader = await key(services, "careless-partner")
    assert (await post(http, "{ subscriptions(", reader, Accept="application/graphql-response+json")).status_code == 400
    assert (
        await http.post("/graphql", content=b"42", headers={**reader, "Content-Type": "application/json"})
    ).status_code == 400
    assert (await post(http, "{ " + "__typename " * 6000 + "}", reader)).json()["errors"]
    assert is_throttled(await post(http, VALID, reader))


async def test_a_throttled_answer_is_held_back_so_a_client_ignoring_retry_after_waits(http, services, monkeypatch):
    monkeypatch.setattr(refusals, "MAX_HOLD", 1.0)
    reader = await key(services, "careless-partner")
    for _ in range(BUCKET):
        await post(http, UNKNOWN_FIELD, reader)
    started = time.monotonic()
    throttled = await post(http, VALID, reader)
    assert is_throttled(throttled)
    assert time.monotonic() - started >= 0.95  # the hold: a refusal flows back in 5 s, and MAX_HOLD is 1 s
    assert int(throttled.headers["Retry-After"]) in (4, 5)  # what is left of those 5 s


async def test_a_throttled_request_is_not_read(http, services):
    reader = await key(services, "careless-partner")
    for _ in range(BUCKET):
        await post(http, UNKNOWN_FIELD, reader)
    oversized = b'{"query": "{ __typename }", "pad": "' + b"x" * 2_000_000 + b'"}'
    response = await http.post("/graphql", content=oversized, headers={**reader, "Content-Type": "application/json"})
    assert is_throttled(response)  # not 413: the body was never looked at


async def test_valid_requests_and_field_errors_never_throttle(http, services):
    reader = await key(services, "busy-partner")
    for _ in range(4 * BUCKET):
        assert (await post(http, VALID, reader)).status_code == 200
        field_error = await post(http, '{ subscriptions(filter: { ids: ["zz"] }) { totalCount } }', reader)
        assert field_error.status_code == 200 and field_error.json()["errors"][0]["path"] == ["subscriptions"]
    assert (await post(http, VALID, reader)).status_code == 200


async def test_one_clients_refusals_cost_another_client_from_the_same_address_nothing(http, services):
    careless, careful = await key(services, "careless-partner"), await key(services, "careful-partner")
    for _ in range(BUCKET):
        await post(http, UNKNOWN_FIELD, careless)
    assert is_throttled(await post(http, VALID, careless))
    answered = await post(http, VALID, careful)
    assert answered.status_code == 200 and "errors" not in answered.json()
    for _ in range(BUCKET):  # no key at all: the address is the client, and its bucket is its own
        assert (await post(http, VALID, {})).status_code == 401
    assert is_throttled(await post(http, VALID, {}))
    assert (await post(http, VALID, careful)).status_code == 200


async def test_made_up_keys_are_charged_to_the_address(http, services):
    for n in range(BUCKET):
        refused = await post(http, VALID, {"Authorization": f"Bearer rbk_made_up_{n}"})
        assert refused.status_code == 401 and refused.json()["errors"][0]["message"] == "unknown or revoked API key"
    # A request without a key from that address is now throttled; a valid key from it is still served.
    assert is_throttled(await post(http, VALID, {}))
    reader = await key(services, "careful-partner")
    assert (await post(http, VALID, reader)).status_code == 200


async def test_the_graphiql_page_is_never_throttled(http, services):
    for _ in range(BUCKET):
        await post(http, VALID, {})
    assert is_throttled(await post(http, VALID, {}))
    page = await http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
