"""Documents built to make validation expensive are refused quickly, with a clear error."""

from __future__ import annotations

import time
from dataclasses import replace

import httpx
import pytest

from rebill.app import create_app
from tests.support import gql_raw

GRAPHIQL_INTROSPECTION = """
query IntrospectionQuery { __schema { queryType { name } mutationType { name }
  types { ...FullType } directives { name description locations args { ...InputValue } } } }
fragment FullType on __Type { kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue } interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason } possibleTypes { ...TypeRef } }
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } }
"""


def amplified(levels: int) -> str:
    """Each fragment spreads the previous one twice: 2**levels fields once expanded."""
    fragments = ["fragment F0 on Subscription { id status }"]
    fragments += [f"fragment F{i} on Subscription {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels + 1)]
    return f"{{ subscriptions(first: 1) {{ edges {{ node {{ ...F{levels} }} }} }} }}\n" + "\n".join(fragments)


def _message(response: httpx.Response) -> str:
    body = response.json()
    assert body.get("errors"), body
    return str(body["errors"][0]["message"])


@pytest.mark.parametrize("levels", [12, 20, 39, 250])
async def test_amplified_fragments_are_refused_at_once(client, levels):
    """Each spread counts: 2**levels fields, measured in time linear in the document."""
    started = time.perf_counter()
    response = await gql_raw(client, amplified(levels))
    assert time.perf_counter() - started < 3
    assert response.status_code == 200
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    if levels < 200:
        assert "too many fields once its fragments are expanded" in error["message"]
    else:
        assert "nests selections and fragments" in error["message"]


async def test_amplified_fragments_sent_as_a_get_without_a_key_run_nothing(services):
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://rebill.test") as anonymous:
        started = time.perf_counter()
        response = await anonymous.get("/graphql", params={"query": amplified(39)}, headers={"Accept": "text/html"})
    assert time.perf_counter() - started < 3
    assert response.status_code in (200, 401)
    assert '"data"' not in response.text


async def test_a_selection_that_expands_past_the_cap_is_refused(client):
    big = "fragment Big on Subscription { id status version startDate endDate nextRenewalDate createdAt updatedAt items { id quantity product { id name sku } unitPrice { amount currency } total { amount currency } } customer { id email name } profile { id name trialDays } amount { amount currency } }"
    big = big.replace("{ id quantity", "{ " + " ".join(["id"] * 40) + " quantity")
    fields = " ".join(f"s{i}: subscriptions(first: 1) {{ edges {{ node {{ ...Big }} }} }}" for i in range(28))
    started = time.perf_counter()
    response = await gql_raw(client, "{ " + fields + " } " + big)
    assert time.perf_counter() - started < 3
    error = response.json()["errors"][0]
    assert "too many fields once its fragments are expanded" in error["message"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


async def test_graphiqls_own_introspection_query_passes_the_limits(client):
    body = (await gql_raw(client, GRAPHIQL_INTROSPECTION)).json()
    assert "errors" not in body, body["errors"]
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"


async def test_a_thousand_aliases_are_refused(client):
    aliases = " ".join(f"a{i}: id" for i in range(1000))
    response = await gql_raw(client, "{ subscriptions(first: 1) { edges { node { " + aliases + " } } } }")
    assert "too many aliases" in _message(response)


async def test_aliases_inside_a_fragment_count_at_every_use(client):
    fragment = "fragment F on Subscription { a: id b: status c: version }"
    fields = " ".join(f"x{i}: subscriptions(first: 1) {{ edges {{ node {{ ...F }} }} }}" for i in range(10))
    assert "too many aliases" in _message(await gql_raw(client, "{ " + fields + " } " + fragment))


@pytest.mark.parametrize("opening", ["{ subscriptions { edges { node { customer ", "[", "{ a: "])
async def test_thousands_of_nested_brackets_are_refused_before_parsing(client, opening):
    if opening == "[":
        query = "{ subscriptions(filter: { ids: " + "[" * 3000 + "]" * 3000 + " }) { totalCount } }"
    elif opening == "{ a: ":
        query = "{ subscriptions(filter: " + "{ a: " * 2000 + "1" + " }" * 2000 + ") { totalCount } }"
    else:
        query = "{ subscriptions { " + "edges { node { " * 1500 + "id" + " } }" * 1500 + " } }"
    response = await gql_raw(client, query)
    assert response.status_code == 200
    message = _message(response)
    assert "nests brackets" in message or "token" in message
    assert "Internal error" not in message


async def test_one_field_selected_hundreds_of_times_is_refused(client):
    query = "{ subscriptions(first: 1) { edges { node { " + " ".join(["customer { id email }"] * 400) + " } } } }"
    started = time.perf_counter()
    message = _message(await gql_raw(client, query))
    assert "'customer' is selected 400 times" in message
    assert time.perf_counter() - started < 3


async def test_a_fragment_cycle_is_a_validation_error(client):
    query = "{ subscriptions { edges { node { ...A } } } } fragment A on Subscription { ...B } fragment B on Subscription { ...A }"
    message = _message(await gql_raw(client, query))
    assert "within itself" in message


async def test_with_introspection_off_errors_suggest_no_names(services, admin_key):
    services.settings = replace(services.settings, introspection=False)
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://rebill.test", headers={"Authorization": f"Bearer {admin_key}"}
    ) as keyed:
        typo = await gql_raw(keyed, "{ subscriptionz(first: 1) { totalCount } }")
        assert "subscriptionz" in _message(typo)
        assert "Did you mean" not in typo.text
        bad_enum = await gql_raw(
            keyed,
            "query($s: [SubscriptionStatus!]) { subscriptions(filter: { status: $s }) { totalCount } }",
            {"s": ["ACTIV"]},
        )
        assert "Did you mean" not in bad_enum.text
        assert bad_enum.json()["errors"]
        bad_literal = await gql_raw(keyed, "{ subscriptions(filter: { status: [ACTIV] }) { totalCount } }")
        assert "Did you mean" not in bad_literal.text


async def test_with_introspection_on_errors_still_suggest(client):
    typo = await gql_raw(client, "{ subscriptionz(first: 1) { totalCount } }")
    assert "Did you mean" in typo.text
