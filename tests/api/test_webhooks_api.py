"""Managing webhook endpoints through GraphQL: admin only, validated input, the secret shown once."""

from __future__ import annotations

import httpx

from rebill.services.apikeys import create_key
from tests.support import error_codes, gql, gql_raw, mutate, ok

ENDPOINT = "endpoint { id url description events enabled disabledReason createdAt }"


async def create(client: httpx.AsyncClient, **fields: object) -> dict:
    data = {"url": "https://partner.example/hooks", **fields}
    return await mutate(client, "createWebhookEndpoint", data, f"{ENDPOINT} secret")


async def test_a_new_endpoint_shows_its_secret_once_and_lists_without_it(client):
    created = ok(await create(client, events=["renewal.paid", "renewal.failed"], description="ERP"))
    assert created["secret"].startswith("whsec_")
    endpoint = created["endpoint"]
    assert endpoint["events"] == ["renewal.paid", "renewal.failed"] and endpoint["enabled"] is True
    listed = await gql(client, "{ webhookEndpoints(first: 10) { totalCount edges { node { id url events } } } }")
    assert listed["webhookEndpoints"]["totalCount"] == 1
    assert listed["webhookEndpoints"]["edges"][0]["node"]["id"] == endpoint["id"]
    node = await gql(
        client, "query($id: ID!) { node(id: $id) { id ... on WebhookEndpoint { url } } }", {"id": endpoint["id"]}
    )
    assert node["node"] == {"id": endpoint["id"], "url": "https://partner.example/hooks"}


async def test_no_events_means_every_event(client):
    created = ok(await create(client))
    assert created["endpoint"]["events"] == []


async def test_unknown_event_types_and_bad_urls_are_refused(client):
    assert error_codes(await create(client, events=["renewal.paid", "invoice.printed"])) == ["UNKNOWN_EVENT_TYPE"]
    refused = await create(client, url="partner.example/hooks")
    assert error_codes(refused) == ["INVALID_URL"] and refused["userErrors"][0]["field"] == ["url"]
    listed = await gql(client, "{ webhookEndpoints { totalCount } }")
    assert listed["webhookEndpoints"]["totalCount"] == 0


async def test_with_private_destinations_allowed_credentials_and_other_schemes_stay_refused(client):
    # The suite runs with REBILL_WEBHOOK_ALLOW_PRIVATE: loopback is accepted, the rest of the rules hold.
    assert ok(await create(client, url="http://127.0.0.1:9/hooks"))["endpoint"]["url"] == "http://127.0.0.1:9/hooks"
    for url in ["ftp://partner.example/hooks", "http://user:pass@127.0.0.1:9/hooks", "file:///etc/passwd"]:
        refused = await create(client, url=url)
        assert error_codes(refused) == ["URL_NOT_ALLOWED"] and refused["userErrors"][0]["field"] == ["url"], url


async def test_an_endpoint_is_updated_disabled_and_enabled_again(client):
    endpoint = ok(await create(client))["endpoint"]["id"]
    updated = ok(
        await mutate(
            client,
            "updateWebhookEndpoint",
            {"endpointId": endpoint, "url": "https://partner.example/v2", "events": ["subscription.cancelled"]},
            ENDPOINT,
        )
    )["endpoint"]
    assert updated["url"] == "https://partner.example/v2" and updated["events"] == ["subscription.cancelled"]
    assert updated["description"] is None
    off = ok(await mutate(client, "updateWebhookEndpoint", {"endpointId": endpoint, "enabled": False}, ENDPOINT))
    assert off["endpoint"]["enabled"] is False and off["endpoint"]["disabledReason"]
    on = ok(await mutate(client, "updateWebhookEndpoint", {"endpointId": endpoint, "enabled": True}, ENDPOINT))
    assert on["endpoint"]["enabled"] is True and on["endpoint"]["disabledReason"] is None
    assert on["endpoint"]["events"] == ["subscription.cancelled"]  # absent fields stay as they were


async def test_rotation_returns_a_new_secret(client):
    created = ok(await create(client))
    rotated = ok(
        await mutate(client, "rotateWebhookSecret", {"endpointId": created["endpoint"]["id"]}, f"{ENDPOINT} secret")
    )
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]


async def test_a_deleted_endpoint_is_gone(client):
    endpoint = ok(await create(client))["endpoint"]["id"]
    deleted = ok(await mutate(client, "deleteWebhookEndpoint", {"endpointId": endpoint}, "deletedEndpointId"))
    assert deleted["deletedEndpointId"] == endpoint
    again = await mutate(client, "deleteWebhookEndpoint", {"endpointId": endpoint}, "deletedEndpointId")
    assert error_codes(again) == ["NOT_FOUND"]
    listed = await gql(client, "{ webhookEndpoints { totalCount } }")
    assert listed["webhookEndpoints"]["totalCount"] == 0


async def test_ids_of_other_types_are_refused(client):
    refused = await mutate(client, "rotateWebhookSecret", {"endpointId": "U3Vic2NyaXB0aW9uOjE"}, "secret")
    assert error_codes(refused) == ["INVALID_ID"]
    missing = await mutate(client, "redeliverWebhook", {"deliveryId": "V2ViaG9va0RlbGl2ZXJ5Ojk5"}, "delivery { id }")
    assert error_codes(missing) == ["NOT_FOUND"]


async def test_only_admin_keys_manage_or_read_webhooks(client, services):
    secret = (await create_key(services.engine, "writer", ["read", "write"], services.clock.now())).secret
    headers = {"Authorization": f"Bearer {secret}"}
    response = await client.post(
        "/graphql",
        json={"query": 'mutation { createWebhookEndpoint(input: {url: "https://x.example"}) { secret } }'},
        headers=headers,
    )
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    response = await client.post("/graphql", json={"query": "{ webhookDeliveries { totalCount } }"}, headers=headers)
    assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    raw = await gql_raw(client, "{ webhookEndpoints { totalCount } }")
    assert raw.json()["data"]["webhookEndpoints"]["totalCount"] == 0
