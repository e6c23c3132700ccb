"""Webhooks end to end: outbox events reach a real HTTP receiver on a loopback port, signed and retried."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from rebill.billing.engine import RenewalEngine
from rebill.ids import decode_id, to_global_id
from rebill.services.runtime import Services
from rebill.webhooks.delivery import JITTER, SCHEDULE, WebhookReport, deliver_due, new_client
from rebill.webhooks.events import EVENT_TYPES
from rebill.webhooks.receiver import Received, Receiver
from tests.support import add_card, gql, make_world, mutate, ok, subscribe

ENDPOINT = "endpoint { id url events enabled disabledReason }"


async def create_endpoint(client: Any, receiver: Receiver, events: list[str] | None = None) -> str:
    """An endpoint for ``receiver``, which from now on verifies with its secret."""
    payload = ok(
        await mutate(client, "createWebhookEndpoint", {"url": receiver.url, "events": events}, f"{ENDPOINT} secret")
    )
    assert payload["secret"].startswith("whsec_")
    receiver.secrets.append(payload["secret"])
    return str(payload["endpoint"]["id"])


async def deliveries(client: Any, **args: Any) -> list[dict[str, Any]]:
    data = await gql(
        client,
        """query($endpointId: ID, $status: [WebhookDeliveryStatus!]) {
             webhookDeliveries(endpointId: $endpointId, status: $status, first: 100) { totalCount edges { node {
               id eventId eventType status attempts lastStatusCode lastError nextAttemptAt createdAt deliveredAt
               endpoint { id enabled } } } } }""",
        args,
    )
    return [e["node"] for e in data["webhookDeliveries"]["edges"]]


async def send(services: Services, answer_within: float = 5.0) -> WebhookReport:
    async with new_client(timeout=answer_within, allow_private=services.settings.webhook_allow_private) as http:
        return await deliver_due(services, client=http, rng=random.Random(7))


async def insert_events(services: Services, n: int, subscriptions: int, kind: str = "RENEWAL_RECEIPT") -> None:
    """``n`` outbox events spread over ``subscriptions`` subscriptions, in one set-based insert."""
    async with services.engine.begin() as conn:
        await conn.execute(
            text(
                """INSERT INTO outbox (kind, subscription_id, payload, created_at)
                   SELECT :kind, g % :subs + 1,
                          jsonb_build_object('subscriptionId', g % :subs + 1, 'seq', g, 'amount', '10.00'), :now
                     FROM generate_series(1, :n) AS g ORDER BY g"""
            ),
            {"kind": kind, "subs": subscriptions, "n": n, "now": services.clock.now()},
        )


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


def seconds(value: str, since: datetime) -> float:
    return (datetime.fromisoformat(value) - since).total_seconds()


async def test_events_arrive_signed_with_global_ids_in_the_order_they_happened(client, services, receiver):
    await create_endpoint(client, receiver)
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    ok(await mutate(client, "suspendSubscription", {"subscriptionId": sub["id"]}, "subscription { id }"))
    ok(await mutate(client, "cancelSubscription", {"subscriptionId": sub["id"]}, "subscription { id }"))

    report = await send(services)

    types = [m.event["type"] for m in receiver.received]
    assert types[-2:] == ["subscription.suspended", "subscription.cancelled"]
    assert report.attempted == report.succeeded == len(types)
    for message in receiver.received:
        assert message.verified, message.headers
        event = message.event
        assert set(event) == {"type", "timestamp", "data"}
        assert event["data"]["subscriptionId"] == sub["id"]
        assert not any(k.endswith("Url") for k in event["data"])
        assert message.headers["content-type"] == "application/json"
    listed = await deliveries(client)
    assert {d["eventId"] for d in listed} == {m.id for m in receiver.received}
    assert {d["status"] for d in listed} == {"SUCCEEDED"}


async def test_a_receipt_carries_the_renewal_as_a_global_id(client, services, receiver):
    await create_endpoint(client, receiver, ["renewal.paid"])
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    services.clock.set(datetime.fromisoformat(sub["nextRenewalDate"] + "T12:00:00+00:00"))
    await RenewalEngine(services).run_once(None)
    await send(services)
    assert {m.event["type"] for m in receiver.received} == {"renewal.paid"}
    [message] = [m for m in receiver.received if m.event["data"]["cycle"] == 2]
    renewals = await gql(
        client,
        "query($id: ID!) { subscription(id: $id) { renewals { edges { node { id cycle } } } } }",
        {"id": sub["id"]},
    )
    second = [e["node"]["id"] for e in renewals["subscription"]["renewals"]["edges"] if e["node"]["cycle"] == 2]
    assert message.event["data"]["renewalId"] == second[0]
    assert message.event["data"]["cycle"] == 2
    assert message.event["data"]["amount"] == "62.96"


async def test_an_endpoint_receives_only_the_events_it_subscribed_to(client, services, receiver):
    await create_endpoint(client, receiver, ["subscription.cancelled"])
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    ok(await mutate(client, "suspendSubscription", {"subscriptionId": sub["id"]}, "subscription { id }"))
    ok(await mutate(client, "cancelSubscription", {"subscriptionId": sub["id"]}, "subscription { id }"))
    await send(services)
    assert [m.event["type"] for m in receiver.received] == ["subscription.cancelled"]


async def test_failing_attempts_are_retried_on_the_schedule_then_recover(client, services, receiver):
    answers = iter([500, 503])
    receiver.respond = lambda message: next(answers, 204)
    await create_endpoint(client, receiver)
    await insert_events(services, 1, 1)
    start = services.clock.now()

    first = await send(services)
    assert (first.attempted, first.retrying) == (1, 1)
    [pending] = await deliveries(client)
    assert pending["status"] == "PENDING" and pending["lastStatusCode"] == 500
    assert 5 <= seconds(pending["nextAttemptAt"], start) <= 5 * (1 + JITTER)

    # Not due yet on rebill's clock: nothing is sent.
    services.clock.set(start + timedelta(seconds=4))
    assert (await send(services)).attempted == 0

    services.clock.set(datetime.fromisoformat(pending["nextAttemptAt"]))
    assert (await send(services)).retrying == 1
    [pending] = await deliveries(client)
    assert pending["attempts"] == 2 and pending["lastStatusCode"] == 503
    moved = services.clock.now()
    assert 300 <= seconds(pending["nextAttemptAt"], moved) <= 300 * (1 + JITTER)

    services.clock.set(datetime.fromisoformat(pending["nextAttemptAt"]))
    assert (await send(services)).succeeded == 1
    [done] = await deliveries(client)
    assert done["status"] == "SUCCEEDED" and done["attempts"] == 3 and done["nextAttemptAt"] is None
    # Every attempt carried the same webhook-id, and each was signed.
    assert [m.id for m in receiver.received] == [done["eventId"]] * 3
    assert all(m.verified for m in receiver.received)


async def test_a_delivery_fails_after_the_last_attempt_of_the_schedule(client, services, receiver):
    receiver.respond = lambda message: 500
    await create_endpoint(client, receiver)
    await insert_events(services, 1, 1)
    waits = []
    for attempt in range(len(SCHEDULE)):
        before = services.clock.now()
        assert (await send(services)).attempted == 1, attempt
        [row] = await deliveries(client)
        if row["status"] == "FAILED":
            break
        waits.append(seconds(row["nextAttemptAt"], before))
        services.clock.set(datetime.fromisoformat(row["nextAttemptAt"]))
    assert row["status"] == "FAILED" and row["attempts"] == len(SCHEDULE) == 10
    for wait, step in zip(waits, SCHEDULE[1:], strict=True):
        assert step.total_seconds() <= wait <= step.total_seconds() * (1 + JITTER)
    services.clock.set(services.clock.now() + timedelta(days=3))
    assert (await send(services)).attempted == 0


async def test_an_endpoint_that_does_not_answer_in_time_is_retried(client, services, receiver):
    async def slow(message: Received) -> int:
        await asyncio.sleep(1)
        return 204

    receiver.respond = slow
    await create_endpoint(client, receiver)
    await insert_events(services, 1, 1)
    report = await send(services, answer_within=0.3)
    assert report.retrying == 1
    [row] = await deliveries(client)
    assert row["status"] == "PENDING" and row["lastStatusCode"] is None
    assert "no answer within 0.3 s" in row["lastError"]


async def test_410_gone_disables_the_endpoint_with_a_reason(client, services, receiver):
    receiver.respond = lambda message: 410
    endpoint = await create_endpoint(client, receiver)
    await insert_events(services, 1, 1)
    report = await send(services)
    assert report.endpoints_disabled == 1
    [row] = await deliveries(client)
    assert row["status"] == "FAILED" and row["lastStatusCode"] == 410
    assert row["endpoint"]["enabled"] is False
    listed = await gql(client, "{ webhookEndpoints { edges { node { id enabled disabledReason } } } }")
    [node] = [e["node"] for e in listed["webhookEndpoints"]["edges"]]
    assert node["id"] == endpoint and "410 Gone" in node["disabledReason"]
    # A disabled endpoint gets no new deliveries.
    await insert_events(services, 3, 1)
    assert len(await deliveries(client)) == 1
    assert (await send(services)).attempted == 0


async def test_a_retrying_event_holds_back_later_events_of_its_subscription_only(client, services, receiver):
    failing = {"on": True}

    def respond(message: Received) -> int:
        data = message.event["data"]
        return 500 if failing["on"] and data["subscriptionId"] == to_global_id("Subscription", 1) else 204

    receiver.respond = respond
    await create_endpoint(client, receiver)
    await insert_events(services, 6, 2)  # seq 2, 4, 6 for subscription 1; 1, 3, 5 for subscription 2
    await send(services)
    sent = [(m.event["data"]["subscriptionId"], m.event["data"]["seq"]) for m in receiver.received]
    first, second = to_global_id("Subscription", 1), to_global_id("Subscription", 2)
    assert [seq for sub, seq in sent if sub == second] == [1, 3, 5]
    assert [seq for sub, seq in sent if sub == first] == [2]  # 4 and 6 wait behind the retrying 2

    failing["on"] = False
    services.clock.set(services.clock.now() + timedelta(seconds=6))
    await send(services)
    sent = [(m.event["data"]["subscriptionId"], m.event["data"]["seq"]) for m in receiver.received]
    assert [seq for sub, seq in sent if sub == first] == [2, 2, 4, 6]


async def test_a_rolled_back_change_emits_nothing(client, services, receiver):
    await create_endpoint(client, receiver)
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    await send(services)
    before = len(receiver.received)

    dry = ok(
        await mutate(
            client, "suspendSubscription", {"subscriptionId": sub["id"], "dryRun": True}, "subscription { status }"
        )
    )
    assert dry["subscription"]["status"] == "SUSPENDED"
    async with services.engine.connect() as conn:
        tx = await conn.begin()
        await conn.execute(
            text("INSERT INTO outbox (kind, subscription_id, payload) VALUES ('SUBSCRIPTION_CANCELLED', 1, '{}')")
        )
        inside = (await conn.execute(text("SELECT count(*) FROM webhook_deliveries"))).scalar()
        await tx.rollback()
    assert inside == before + 1  # the delivery exists with the change, inside its transaction
    assert len(await deliveries(client)) == before
    assert (await send(services)).attempted == 0
    assert len(receiver.received) == before


async def test_after_a_rotation_both_secrets_sign_for_24_hours(client, services, receiver):
    endpoint = await create_endpoint(client, receiver)
    rotated = ok(await mutate(client, "rotateWebhookSecret", {"endpointId": endpoint}, f"{ENDPOINT} secret"))
    receiver.secrets.append(rotated["secret"])  # secrets: [old, new]
    await insert_events(services, 1, 1)
    await send(services)
    [message] = receiver.received
    assert message.headers["webhook-signature"].count("v1,") == 2
    assert message.verified_by == [0, 1]

    services.clock.set(services.clock.now() + timedelta(hours=24, seconds=1))
    await insert_events(services, 1, 2)
    await send(services)
    later = receiver.received[-1]
    assert later.headers["webhook-signature"].count("v1,") == 1
    assert later.verified_by == [1]


async def test_redelivery_sends_again_with_the_same_webhook_id(client, services, receiver):
    await create_endpoint(client, receiver)
    await insert_events(services, 1, 1)
    await send(services)
    [row] = await deliveries(client)
    again = ok(await mutate(client, "redeliverWebhook", {"deliveryId": row["id"]}, "delivery { status attempts }"))
    assert again["delivery"]["status"] == "PENDING"
    await send(services)
    assert [m.id for m in receiver.received] == [row["eventId"]] * 2
    [row] = await deliveries(client)
    assert row["status"] == "SUCCEEDED" and row["attempts"] == 2


async def test_a_finished_bulk_run_is_a_partner_event(client, services, receiver):
    await create_endpoint(client, receiver, ["bulk_run.completed", "bulk_run.failed"])
    async with services.engine.begin() as conn:
        run_id = (
            await conn.execute(
                text(
                    """INSERT INTO bulk_runs (plan, plan_hash, status, as_of, created_by, total, applied)
                       VALUES ('{}', 'x', 'RUNNING', now(), 'ops', 3, 3) RETURNING id"""
                )
            )
        ).scalar_one()
        await conn.execute(
            text("UPDATE bulk_runs SET status = 'COMPLETED', finished_at = now() WHERE id = :id"), {"id": run_id}
        )
    await send(services)
    [message] = receiver.received
    assert message.event["type"] == "bulk_run.completed"
    assert message.event["data"]["bulkRunId"] == to_global_id("BulkRun", run_id)
    assert message.event["data"]["applied"] == 3
    # The event is in the outbox like every other, with no email to send.
    listed = await gql(
        client, "{ notifications(kind: [BULK_RUN_COMPLETED]) { edges { node { recipient deliveredAt } } } }"
    )
    [node] = [e["node"] for e in listed["notifications"]["edges"]]
    assert node["recipient"] is None and node["deliveredAt"] is not None


async def test_the_fan_out_trigger_maps_the_same_kinds_as_the_code(services):
    async with services.engine.connect() as conn:
        for kind, event_type in {**EVENT_TYPES, "RENEWAL_REMINDER": None, "PAYMENT_DUE": None}.items():
            got = (await conn.execute(text("SELECT rebill_webhook_event_type(:k)"), {"k": kind})).scalar()
            assert got == event_type, kind


@pytest.mark.slow
async def test_two_workers_deliver_every_event_exactly_once_in_order(client, services, receiver, database_url):
    async def respond(message: Received) -> int:
        await asyncio.sleep(0.002)
        return 204

    receiver.respond = respond
    await create_endpoint(client, receiver)
    await insert_events(services, 600, 40)
    other_engine = create_async_engine(database_url, pool_size=4)
    other = Services(other_engine, services.settings, services.clock)
    try:
        async with new_client(allow_private=True) as a, new_client(allow_private=True) as b:
            reports = await asyncio.gather(
                deliver_due(services, client=a),
                deliver_due(other, client=b),
            )
    finally:
        await other_engine.dispose()
    assert all(r.attempted > 0 for r in reports), reports  # both took part
    ids = [m.id for m in receiver.received]
    assert len(ids) == len(set(ids)) == 600
    assert all(m.verified for m in receiver.received)
    order: dict[str, list[int]] = defaultdict(list)
    for m in receiver.received:
        order[m.event["data"]["subscriptionId"]].append(m.event["data"]["seq"])
    assert all(seqs == sorted(seqs) for seqs in order.values())


async def test_rebill_worker_once_delivers_what_is_due(client, services, receiver, database_url):
    from typer.testing import CliRunner

    import rebill.billing.commands  # noqa: F401  (registers the commands)
    from rebill.cli import app

    await create_endpoint(client, receiver)
    await insert_events(services, 3, 2)
    env = {
        "DATABASE_URL": database_url,
        "REBILL_NOW": services.clock.now().isoformat(),
        "REBILL_DELIVERER": "log",
        "REBILL_WEBHOOK_ALLOW_PRIVATE": "true",  # the receiver is on loopback
    }
    result = await asyncio.to_thread(CliRunner().invoke, app, ["worker", "--once"], env=env)
    assert result.exit_code == 0, result.output
    assert "webhooks: 3 sent, 3 accepted, 0 to retry, 0 failed" in result.output
    assert len(receiver.received) == 3 and all(m.verified for m in receiver.received)


def start_worker(database_url: str, now: datetime, *args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REBILL_NOW": now.isoformat(),
        "REBILL_DELIVERER": "log",
        "REBILL_WEBHOOK_ALLOW_PRIVATE": "true",  # the receiver is on loopback
    }
    return subprocess.Popen(
        [sys.executable, "-c", "from rebill.cli import main; main()", "worker", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_the_worker_loop_delivers_events_as_they_come_and_stops_on_ctrl_c(
    client, services, receiver, database_url
):
    await create_endpoint(client, receiver)
    proc = start_worker(database_url, services.clock.now(), "--poll", "60")
    try:
        await asyncio.sleep(1)
        await insert_events(services, 4, 2)
        deadline = time.monotonic() + 30
        while len(receiver.received) < 4:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.to_thread(proc.communicate, timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "rebill worker stopped" in stderr
    assert "accepted" in stdout
    assert sorted(m.id for m in receiver.received) == sorted({m.id for m in receiver.received})


@pytest.mark.slow
async def test_two_worker_processes_send_each_delivery_once(client, services, receiver, database_url):
    async def respond(message: Received) -> int:
        await asyncio.sleep(0.005)
        return 204

    receiver.respond = respond
    await create_endpoint(client, receiver)
    await insert_events(services, 300, 30)
    procs = [start_worker(database_url, services.clock.now(), "--once") for _ in range(2)]
    outputs = [await asyncio.to_thread(p.communicate, timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    ids = [m.id for m in receiver.received]
    assert len(ids) == len(set(ids)) == 300
    assert all(m.verified for m in receiver.received)
    sent = await rows(services, "SELECT status, attempts FROM webhook_deliveries")
    assert {tuple(r) for r in sent} == {("SUCCEEDED", 1)}


async def test_a_pass_interrupted_mid_send_sends_those_deliveries_again_with_the_same_ids(client, services, receiver):
    release = asyncio.Event()

    async def held(message: Received) -> int:
        await release.wait()
        return 204

    receiver.respond = held
    await create_endpoint(client, receiver)
    await insert_events(services, 3, 3)
    worker = asyncio.create_task(send(services))
    async with asyncio.timeout(10):
        while len(receiver.received) < 3:  # noqa: ASYNC110  (the receiver runs in this loop)
            await asyncio.sleep(0.01)
    worker.cancel()  # the worker dies with the requests in flight: its claim rolls back
    with contextlib.suppress(asyncio.CancelledError):
        await worker
    first = sorted(m.id for m in receiver.received)
    assert {d["status"] for d in await deliveries(client)} == {"PENDING"}
    release.set()
    report = await send(services)
    assert report.succeeded == 3
    assert sorted(m.id for m in receiver.received[3:]) == first


async def test_deliveries_are_listed_by_endpoint_and_status(client, services, receiver):
    def respond(message: Received) -> int:
        event = message.event
        return 500 if (event["type"], event["data"]["seq"]) == ("renewal.paid", 1) else 204

    receiver.respond = respond
    one = await create_endpoint(client, receiver, ["renewal.paid"])
    two = await create_endpoint(client, receiver, ["subscription.cancelled"])
    await insert_events(services, 3, 3)
    await insert_events(services, 1, 1, kind="SUBSCRIPTION_CANCELLED")
    await send(services)
    assert len(await deliveries(client, endpointId=one)) == 3
    [cancelled] = await deliveries(client, endpointId=two)
    assert cancelled["eventType"] == "subscription.cancelled" and cancelled["endpoint"]["id"] == two
    [retrying] = await deliveries(client, status=["PENDING"])
    assert retrying["lastStatusCode"] == 500
    assert len(await deliveries(client, status=["SUCCEEDED", "FAILED"])) == 3
    page = await gql(client, "{ webhookDeliveries(first: 2) { edges { cursor } pageInfo { hasNextPage endCursor } } }")
    assert page["webhookDeliveries"]["pageInfo"]["hasNextPage"] is True


async def rows(services: Services, sql: str) -> list[Any]:
    async with services.engine.connect() as conn:
        return list(await conn.execute(text(sql)))


async def test_an_endpoint_that_is_down_is_retried(client, services):
    down = Receiver()
    await down.start()
    await down.stop()  # nothing listens on its port any more
    await create_endpoint(client, down)
    await insert_events(services, 1, 1)
    assert (await send(services)).retrying == 1
    [row] = await deliveries(client)
    assert row["status"] == "PENDING" and row["lastStatusCode"] is None
    assert row["lastError"].startswith("ConnectError")


async def test_deliveries_claimed_by_a_worker_that_died_are_sent_once_its_lease_runs_out(client, services, receiver):
    from rebill.webhooks.delivery import _Pass

    await create_endpoint(client, receiver)
    await insert_events(services, 2, 2)
    _, claimed = await _Pass(services, None).claim(10)  # a worker claims, then dies before sending
    assert len(claimed) == 2
    assert (await send(services)).attempted == 0  # leased: nobody else sends them meanwhile
    async with services.engine.begin() as conn:
        await conn.execute(text("UPDATE webhook_deliveries SET claimed_until = clock_timestamp() - interval '1 s'"))
    assert (await send(services)).succeeded == 2
    assert len(receiver.received) == 2


async def test_a_slow_endpoint_does_not_hold_back_another(client, services, receiver):
    release = asyncio.Event()

    async def stuck(message: Received) -> int:
        await release.wait()
        return 204

    slow = Receiver(respond=stuck)
    await slow.start()
    try:
        await create_endpoint(client, slow, ["subscription.cancelled"])
        await create_endpoint(client, receiver, ["renewal.paid"])
        await insert_events(services, 1, 1, kind="SUBSCRIPTION_CANCELLED")
        await insert_events(services, 20, 5)
        worker = asyncio.create_task(send(services))
        async with asyncio.timeout(10):
            while len(receiver.received) < 20:  # noqa: ASYNC110  (the receivers run in this loop)
                await asyncio.sleep(0.01)
        assert len(slow.received) == 1 and not worker.done()
        release.set()
        report = await worker
    finally:
        release.set()
        await slow.stop()
    assert report.succeeded == 21


async def test_resuming_a_scheduled_cancellation_is_subscription_updated(client, services, receiver):
    await create_endpoint(client, receiver)
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    scheduled = {"subscriptionId": sub["id"], "atPeriodEnd": True}
    ok(await mutate(client, "cancelSubscription", scheduled, "subscription { id }"))
    ok(await mutate(client, "resumeSubscription", {"subscriptionId": sub["id"]}, "subscription { id }"))
    await send(services)
    last = receiver.received[-1].event
    assert (last["type"], last["data"]["subscriptionId"]) == ("subscription.updated", sub["id"])


async def test_a_bulk_run_through_the_api_sends_bulk_run_completed(client, services, receiver):
    from rebill.bulk.runner import process_queued_runs

    await create_endpoint(client, receiver, ["bulk_run.completed", "bulk_run.failed"])
    world = await make_world(client)
    for _ in range(3):
        await subscribe(client, world)
    plan = {
        "filter": {"status": ["ACTIVE", "TRIAL"]},
        "segments": [{"name": "all", "actions": [{"shiftNextRenewal": {"unit": "DAY", "count": 7}}]}],
    }
    run = ok(await mutate(client, "startBulkRun", {"plan": plan}, "run { id }"))["run"]
    await process_queued_runs(services)
    await send(services)
    [message] = receiver.received
    assert message.event["type"] == "bulk_run.completed"
    assert message.event["data"]["bulkRunId"] == run["id"]
    assert (message.event["data"]["applied"], message.event["data"]["dryRun"]) == (3, False)


async def test_a_declined_renewal_is_renewal_failed_without_customer_links(client, services, receiver):
    await create_endpoint(client, receiver, ["renewal.failed"])
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    declining = await add_card(client, world.customer, "4000000000000002", default=False)
    change = {"subscriptionId": sub["id"], "paymentMethodId": declining}
    ok(await mutate(client, "setPaymentMethod", change, "subscription { id }"))
    services.clock.set(datetime.fromisoformat(sub["nextRenewalDate"] + "T12:00:00+00:00"))
    await RenewalEngine(services).run_once(None)
    await send(services)
    [message] = receiver.received
    data = message.event["data"]
    assert message.event["type"] == "renewal.failed"
    assert data["subscriptionId"] == sub["id"] and data["declineCode"] == "card_declined"
    assert decode_id(data["renewalId"], "Renewal") > 0
    assert not any(key.endswith("Url") for key in data)


async def test_a_subscriptions_life_reaches_the_partner_as_its_events_in_order(client, services, receiver):
    await create_endpoint(client, receiver)
    world = await make_world(client)
    created = await subscribe(client, world)
    sub, first_renewal = created["subscription"]["id"], created["renewal"]["id"]
    steps = [
        ("changeNextRenewalDate", {"shift": {"unit": "DAY", "count": 3}}),
        ("suspendSubscription", {}),
        ("activateSubscription", {}),
        ("cancelSubscription", {}),
    ]
    for name, extra in steps:
        ok(await mutate(client, name, {"subscriptionId": sub, **extra}, "subscription { id }"))
    ok(await mutate(client, "refundRenewal", {"renewalId": first_renewal}, "renewal { id }"))
    await send(services)
    events = [m.event for m in receiver.received]
    assert [e["type"] for e in events] == [
        "subscription.created",
        "invoice.created",
        "invoice.finalized",
        "renewal.paid",
        "invoice.paid",
        "subscription.updated",
        "subscription.suspended",
        "subscription.activated",
        "subscription.cancelled",
        "credit_note.created",
        "renewal.refunded",
    ]
    assert {e["data"]["subscriptionId"] for e in events} == {sub}
    refunded = next(e for e in events if e["type"] == "renewal.refunded")
    assert refunded["data"]["renewalId"] == first_renewal
    paid = next(e for e in events if e["type"] == "invoice.paid")
    assert paid["data"]["number"] == "INV-2026-000001" and paid["data"]["status"] == "PAID"
    assert decode_id(paid["data"]["invoiceId"], "Invoice") > 0
    credit = events[-2]["data"]
    assert credit["invoiceId"] == paid["data"]["invoiceId"] and credit["number"] == "CN-2026-000001"
    assert all(m.verified for m in receiver.received)
