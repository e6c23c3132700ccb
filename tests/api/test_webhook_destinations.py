"""Registering webhook endpoints under production's rules: only public http(s) destinations, no credentials."""

from __future__ import annotations

from dataclasses import replace

import pytest

from rebill.config import Settings
from tests.support import error_codes, gql, mutate, ok

ENDPOINT = "endpoint { id url }"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The default: loopback and private destinations are refused (the suite's own settings allow them)."""
    return replace(settings, webhook_allow_private=False)


REFUSED = [
    ("http://127.0.0.1/hooks", "127.0.0.1 is not a public address (loopback)"),
    ("http://localhost:5432/", "loopback"),
    ("http://db.localhost/", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[::1]:8080/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback, as 127.0.0.1"),
    ("http://[::ffff:a9fe:a9fe]/", "link-local, as 169.254.169.254"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fd00::5]/", "private"),
    ("http://2130706433/", "loopback"),
    ("http://0177.0.0.1/", "loopback"),
    ("http://0x7f.1/", "loopback"),
    ("http://0/", "unspecified"),
    ("http://0.0.0.0:8000/", "unspecified"),
    ("http://10.0.0.5/hooks", "private"),
    ("http://172.16.0.1/", "private"),
    ("https://192.168.1.10/", "private"),
    ("http://100.64.0.1/", "shared address space"),
    ("http://198.18.0.1/", "benchmarking"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("https://user:pass@partner.example/hooks", "credentials"),
    ("https://token@partner.example/hooks", "credentials"),
    ("ftp://partner.example/hooks", "only http and https"),
    ("gopher://partner.example:6379/_", "only http and https"),
    ("file:///etc/passwd", "only http and https"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
async def test_destinations_that_are_not_public_http_are_refused_at_registration(client, url, reason):
    refused = await mutate(client, "createWebhookEndpoint", {"url": url}, f"{ENDPOINT} secret")
    assert error_codes(refused) == ["URL_NOT_ALLOWED"], refused
    [error] = refused["userErrors"]
    assert error["field"] == ["url"] and reason in error["message"]
    assert refused["endpoint"] is None and refused["secret"] is None


async def test_an_endpoint_cannot_be_moved_to_a_refused_destination(client):
    endpoint = ok(await mutate(client, "createWebhookEndpoint", {"url": "https://93.184.215.14/hooks"}, ENDPOINT))
    endpoint_id = endpoint["endpoint"]["id"]
    for url, reason in [("http://169.254.169.254/", "link-local"), ("https://a:b@93.184.215.14/", "credentials")]:
        moved = await mutate(client, "updateWebhookEndpoint", {"endpointId": endpoint_id, "url": url}, ENDPOINT)
        assert error_codes(moved) == ["URL_NOT_ALLOWED"] and reason in moved["userErrors"][0]["message"]
    listed = await gql(client, "{ webhookEndpoints { edges { node { url } } } }")
    assert [e["node"]["url"] for e in listed["webhookEndpoints"]["edges"]] == ["https://93.184.215.14/hooks"]


async def test_public_addresses_and_names_that_do_not_resolve_yet_are_accepted(client):
    # A name that does not resolve is checked again at every delivery (it may be created later).
    for url in [
        "https://93.184.215.14/hooks",
        "https://[2606:4700:4700::1111]/hooks",
        "https://hooks.invalid/x",
        "https://bücher.invalid/hooks",
    ]:
        ok(await mutate(client, "createWebhookEndpoint", {"url": url}, ENDPOINT))
