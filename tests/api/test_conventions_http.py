"""GraphQL over HTTP: application/graphql-response+json, and graphql-http's audit of a running rebill."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

NEW = "application/graphql-response+json"


async def post(client, query: str, variables: dict | None = None, accept: str = NEW):
    return await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers={"Accept": accept}
    )


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        pytest.param("{ subscriptions(first: 1) { ", None, id="syntax-error"),
        pytest.param("{ subscriptions(first: 1) { nope } }", None, id="invalid-document"),
        pytest.param("query($n: Int!) { subscriptions(first: $n) { totalCount } }", {"n": "ten"}, id="bad-variable"),
        pytest.param("query($n: Int!) { subscriptions(first: $n) { totalCount } }", {}, id="missing-variable"),
    ],
)
async def test_a_request_that_fails_before_execution_is_a_400_without_data(client, query, variables):
    response = await post(client, query, variables)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith(NEW)
    body = response.json()
    assert "data" not in body
    assert body["errors"][0]["message"]


async def test_an_executed_request_is_a_200_in_the_new_media_type_even_with_field_errors(client, services):
    from rebill.services.apikeys import create_key

    ok = await post(client, "{ subscriptions(first: 1) { totalCount } }")
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith(NEW)
    assert ok.json()["data"] == {"subscriptions": {"totalCount": 0}}
    reader = (await create_key(services.engine, "reader", ["read"], services.clock.now())).secret
    refused = await client.post(
        "/graphql",
        json={"query": 'mutation { createCustomer(input: {email: "a@example.com"}) { customer { id } } }'},
        headers={"Accept": NEW, "Authorization": f"Bearer {reader}"},
    )
    assert refused.status_code == 200, "a field error happens during execution"
    body = refused.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert body["errors"][0]["path"] == ["createCustomer"]


async def test_clients_that_accept_only_json_get_the_answers_they_always_had(client):
    response = await post(client, "{ subscriptions(first: 1) { nope } }", accept="application/json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["data"] is None
    preferred = await post(client, "{ nope }", accept=f"application/json, {NEW};q=0.5")
    assert preferred.headers["content-type"].startswith("application/json")


async def test_an_unauthenticated_request_keeps_its_401_in_the_new_media_type(client):
    response = await client.post(
        "/graphql", json={"query": "{ __typename }"}, headers={"Accept": NEW, "Authorization": "Bearer nope"}
    )
    assert response.status_code == 401
    assert response.headers["content-type"].startswith(NEW)
    assert "data" not in response.json()


AUDIT = """
import { auditServer } from 'graphql-http';
const [url, key] = process.argv.slice(2);
const fetchFn = (input, init = {}) => {
  const headers = new Headers(init.headers || {});
  headers.set('authorization', `Bearer ${key}`);
  return fetch(input, { ...init, headers });
};
const results = await auditServer({ url, fetchFn });
console.log(JSON.stringify(results.map((r) => ({ id: r.id, name: r.name, status: r.status, reason: r.reason }))));
"""


@pytest.fixture(scope="session")
def graphql_http(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the graphql-http npm package installed, and the audit script."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("needs node and npm")
    folder = tmp_path_factory.mktemp("graphql-http")
    done = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "graphql-http@1", "graphql@16"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        pytest.skip(f"could not install graphql-http: {done.stderr[-300:]}")
    (folder / "audit.mjs").write_text(AUDIT)
    return folder


@pytest.mark.slow
async def test_graphql_http_audit_passes_without_warnings(graphql_http, services, database_url):
    import asyncio

    from rebill.services.apikeys import create_key
    from tests.browser.conftest import _ServerThread

    secret = (await create_key(services.engine, "auditor", ["admin"], services.clock.now())).secret
    server = _ServerThread(database_url)
    server.start()
    try:
        done = await asyncio.to_thread(
            subprocess.run,
            ["node", "audit.mjs", f"{server.url}/graphql", secret],
            cwd=graphql_http,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert len(results) > 50
    not_ok = [f"{r['id']} {r['status']}: {r['name']} ({r['reason']})" for r in results if r["status"] != "ok"]
    assert not_ok == []
