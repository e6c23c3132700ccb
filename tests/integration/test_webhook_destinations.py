"""Deliveries keep to public destinations: addresses checked as they are connected to, no redirects, no bodies."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from sqlalchemy import text

from rebill.services.runtime import Services
from rebill.webhooks.delivery import WebhookReport, deliver_due, new_client
from rebill.webhooks.destinations import Resolver
from rebill.webhooks.receiver import Receiver, Reply
from tests.integration.test_webhooks import create_endpoint, deliveries, insert_events
from tests.support import mutate, ok

SECRET_BODY = b"internal-service-answer: redis_version=7.2 password=hunter2"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


def answers(table: dict[str, Sequence[str]]) -> Resolver:
    """A resolver that knows only the names in ``table``."""

    async def resolve(host: str, port: int) -> Sequence[str]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve


async def send(services: Services, *, allow_private: bool, resolver: Resolver | None = None) -> WebhookReport:
    async with new_client(timeout=5, allow_private=allow_private, resolver=resolver) as http:
        return await deliver_due(services, client=http, rng=random.Random(7))


async def named_endpoint(client: Any, receiver: Receiver, host: str) -> None:
    """An endpoint on ``host`` at the receiver's port (registered under the suite's allow-private settings)."""
    url = receiver.url.replace("127.0.0.1", host)
    payload = ok(await mutate(client, "createWebhookEndpoint", {"url": url}, "endpoint { id } secret"))
    receiver.secrets.append(payload["secret"])


@pytest.mark.parametrize(
    ("addresses", "error"),
    [
        (["10.0.0.5"], "refused: hooks.example.test resolves to 10.0.0.5, which is not a public address (private)"),
        (["127.0.0.1"], "refused: hooks.example.test resolves to 127.0.0.1, which is not a public address (loopback)"),
        (["93.184.215.14", "169.254.169.254"], "resolves to 169.254.169.254, which is not a public address"),
        (["::ffff:10.0.0.5"], "which is not a public address (private, as 10.0.0.5)"),
    ],
)
async def test_a_name_that_resolves_to_a_private_address_at_delivery_is_refused(
    client, services, receiver, addresses, error
):
    # Registered while the name was unknown (or public); by delivery time DNS points it inside.
    await named_endpoint(client, receiver, "hooks.example.test")
    await insert_events(services, 1, 1)
    report = await send(services, allow_private=False, resolver=answers({"hooks.example.test": addresses}))
    assert report.retrying == 1 and receiver.received == []
    [row] = await deliveries(client)
    assert row["status"] == "PENDING" and row["lastStatusCode"] is None
    assert error in row["lastError"]


async def test_a_delivery_connects_to_the_address_it_checked_and_keeps_the_host_name(client, services, receiver):
    await named_endpoint(client, receiver, "hooks.example.test")
    await insert_events(services, 1, 1)
    resolver = answers({"hooks.example.test": ["127.0.0.1"]})
    assert (await send(services, allow_private=True, resolver=resolver)).succeeded == 1
    [message] = receiver.received
    assert message.headers["host"] == receiver.url.split("/")[2].replace("127.0.0.1", "hooks.example.test")
    assert message.verified


async def test_a_name_that_does_not_resolve_fails_the_attempt_and_is_retried(client, services, receiver):
    await named_endpoint(client, receiver, "hooks.example.test")
    await insert_events(services, 1, 1)
    assert (await send(services, allow_private=False, resolver=answers({}))).retrying == 1
    [row] = await deliveries(client)
    assert row["lastError"].startswith("ConnectError: hooks.example.test does not resolve")


async def test_a_loopback_endpoint_stored_earlier_is_refused_at_delivery(client, services, receiver):
    await create_endpoint(client, receiver)  # accepted under the suite's allow-private settings
    async with services.engine.begin() as conn:  # and one that predates the credentials rule
        url = receiver.url.replace("127.0.0.1", "user:pw@127.0.0.1")
        await conn.execute(
            text("INSERT INTO webhook_endpoints (url, secret) VALUES (:url, 'whsec_eA==')"), {"url": url}
        )
    await insert_events(services, 1, 1)
    assert (await send(services, allow_private=False)).retrying == 2
    assert receiver.received == []
    errors = sorted(row["lastError"] for row in await deliveries(client))
    assert errors[0] == "refused: 127.0.0.1 is not a public address (loopback)"
    assert errors[1].startswith("refused: a URL with credentials")
    # With private destinations allowed (development), the plain one goes out; credentials never do.
    services.clock.set(services.clock.now().replace(hour=23))
    assert (await send(services, allow_private=True)).succeeded == 1
    assert len(receiver.received) == 1


async def test_a_redirect_is_a_failed_attempt_and_its_location_is_not_fetched(client, services, receiver):
    elsewhere = Receiver()
    await elsewhere.start()
    try:
        receiver.respond = lambda message: Reply(302, {"location": elsewhere.url}, b"moved")
        await create_endpoint(client, receiver)
        await insert_events(services, 1, 1)
        report = await send(services, allow_private=True)
    finally:
        await elsewhere.stop()
    assert report.retrying == 1 and len(receiver.received) == 1
    assert elsewhere.received == []
    [row] = await deliveries(client)
    assert row["status"] == "PENDING" and row["lastStatusCode"] == 302
    assert "redirects are not followed" in row["lastError"] and "moved" not in row["lastError"]


async def test_the_receivers_answer_never_reaches_last_error(client, services, receiver):
    receiver.respond = lambda message: Reply(500, {"content-type": "text/plain"}, SECRET_BODY)
    await create_endpoint(client, receiver)
    await insert_events(services, 1, 1)
    await send(services, allow_private=True)
    [row] = await deliveries(client)
    assert row["lastStatusCode"] == 500
    assert row["lastError"].startswith("HTTP 500, answered in ") and row["lastError"].endswith(" ms")
    assert b"hunter2" not in row["lastError"].encode()


async def test_bytes_of_a_service_that_does_not_speak_http_never_reach_last_error(client, services):
    async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH_9.6 " + SECRET_BODY + b"\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(banner, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        ok(await mutate(client, "createWebhookEndpoint", {"url": f"http://127.0.0.1:{port}/"}, "endpoint { id }"))
        await insert_events(services, 1, 1)
        await send(services, allow_private=True)
    finally:
        server.close()
        await server.wait_closed()
    [row] = await deliveries(client)
    assert row["lastError"] == "RemoteProtocolError: the answer was not valid HTTP/1.1"
