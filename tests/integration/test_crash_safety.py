"""Crash safety with real processes: SIGKILL of ``rebill serve`` and of ``rebill worker`` in the middle of charges.

The sandbox gateway is made slow (``latencyMs``): it records a charge on its
ledger, then takes its time to answer, so a kill lands between "the gateway
took the money" and "rebill recorded it". Each test ends with the ledger
audit of :mod:`tests.ledger`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from rebill.config import Settings
from rebill.ids import to_global_id
from rebill.invoicing.backfill import backfill_invoices
from tests.ledger import assert_ledger_ok

pytestmark = pytest.mark.slow

TODAY = "2026-06-01"
NOW = f"{TODAY}T09:00:00Z"
REBILL = [sys.executable, "-c", "from rebill.cli import main; main()"]
SLOW_GATEWAYS = [{"name": "sandbox", "latencyMs": 200}, {"name": "sandbox-b"}]

# Monthly subscriptions started a month before, their first period paid (outside the sandbox);
# ``:due`` moves their next renewal date to today (worker tests) or leaves it ahead (force bills).
SEED = [
    "INSERT INTO subscription_profiles (name, interval_unit, interval_count) VALUES ('Monthly', 'MONTH', 1)",
    "INSERT INTO products (name, sku) VALUES ('Coffee', 'coffee')",
    "INSERT INTO customers (email) SELECT 'c' || n || '@example.com' FROM generate_series(1, :n) AS n",
    """INSERT INTO payment_methods (customer_id, kind, gateway_token)
       SELECT id, 'CARD', '4242424242424242' FROM customers""",
    "UPDATE customers c SET default_payment_method_id = pm.id FROM payment_methods pm WHERE pm.customer_id = c.id",
    """INSERT INTO subscriptions (customer_id, profile_id, currency, status, renewal_type, start_date, anchor_date,
           next_renewal_date, current_period_start, current_period_end, occurrences_billed, last_cycle,
           payment_method_id, amount_minor)
       SELECT c.id, (SELECT id FROM subscription_profiles), 'USD', 'ACTIVE', 'AUTOMATIC',
              CAST(:start AS date), CAST(:start AS date), CAST(:next AS date), CAST(:start AS date),
              CAST(:next AS date), 1, 1, pm.id, 1500
       FROM customers c JOIN payment_methods pm ON pm.customer_id = c.id ORDER BY c.id""",
    """INSERT INTO subscription_items (subscription_id, product_id, unit_price_minor, currency, quantity)
       SELECT id, (SELECT id FROM products), 1500, 'USD', 1 FROM subscriptions""",
    """INSERT INTO renewals (subscription_id, cycle, kind, status, period_start, period_end, amount_minor, currency,
           attempts, idempotency_key)
       SELECT id, 1, 'INITIAL', 'PAID', start_date, current_period_end, 1500, 'USD', 1, 'seed_' || id
       FROM subscriptions""",
]


async def seed(engine: Any, n: int, *, start: str, next_date: str) -> list[int]:
    from datetime import date

    async with engine.begin() as conn:
        for sql in SEED:
            params = {"n": n, "start": date.fromisoformat(start), "next": date.fromisoformat(next_date)}
            await conn.execute(text(sql), {k: v for k, v in params.items() if f":{k}" in sql})
        await backfill_invoices(conn, Settings())  # the seeded charges' invoices, as for data from before invoicing
        return [row.id for row in await conn.execute(text("SELECT id FROM subscriptions ORDER BY id"))]


async def scalar(engine: Any, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


def env(database_url: str, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("REBILL_") and k != "DATABASE_URL"}
    return {
        **base,
        "DATABASE_URL": database_url,
        "REBILL_NOW": NOW,
        "REBILL_GATEWAYS": json.dumps(SLOW_GATEWAYS),
        "REBILL_LOG_LEVEL": "ERROR",
        "REBILL_RATE_LIMIT_BUCKET": "1000000000",
        "REBILL_RATE_LIMIT_RESTORE": "1000000000",
        "REBILL_BULK_WORKER_IN_SERVER": "false",
        "REBILL_DELIVERER": "log",
        **extra,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(args: list[str], environment: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen([*REBILL, *args], env=environment, stdout=out, stderr=subprocess.STDOUT)


async def serve(database_url: str, tmp_path: Path, name: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = start(["serve", "--port", str(port)], env(database_url), tmp_path / f"{name}.log")
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / f"{name}.log").read_text()
            try:
                if (await http.get(f"{base}/healthz", timeout=2)).status_code == 200:
                    return proc, base
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    proc.kill()
    raise AssertionError("rebill serve did not become healthy")


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


async def worker_once(database_url: str, tmp_path: Path) -> str:
    log = tmp_path / "worker-once.log"
    proc = start(["worker", "--once", "--no-deliver"], env(database_url), log)
    code = await asyncio.to_thread(proc.wait, 180)
    assert code == 0, log.read_text()
    return log.read_text()


#: Requests in flight at once: the whole burst (wider than the server's connection pool).
BURST_WIDTH = 120

FORCE_BILL = """mutation($input: ForceBillInput!) { forceBill(input: $input) {
    userErrors { code message } replayed subscription { id status nextRenewalDate } renewal { id cycle status } } }"""


def force_bill_body(sid: int) -> dict[str, Any]:
    gid = to_global_id("Subscription", sid)
    return {"query": FORCE_BILL, "variables": {"input": {"subscriptionId": gid, "idempotencyKey": f"fb-{sid}"}}}


async def burst_then_kill(
    engine: Any, base: str, headers: dict[str, str], ids: list[int], server: Any
) -> dict[int, Any]:
    """Force bills for every subscription at once; SIGKILL of the server once some are charged."""
    answers: dict[int, dict[str, Any]] = {}
    limits = httpx.Limits(max_connections=BURST_WIDTH)
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60, limits=limits) as http:

            async def send(sid: int) -> None:
                try:
                    response = await http.post("/graphql", json=force_bill_body(sid))
                    answers[sid] = response.json()
                except httpx.HTTPError:
                    pass  # no answer: the client will send it again

            burst = [asyncio.create_task(send(sid)) for sid in ids]
            # Kill once the gateway has taken money for some of them and the rest are still on their way.
            deadline = time.monotonic() + 60
            while await scalar(engine, "SELECT count(*) FROM sandbox_charges WHERE succeeded") < 15:
                assert time.monotonic() < deadline, "the burst never reached the gateway"
                await asyncio.sleep(0.01)
            kill(server)
            await asyncio.gather(*burst)
    finally:
        kill(server)
    for answer in answers.values():
        assert "errors" not in answer, answer
        assert answer["data"]["forceBill"]["userErrors"] == [], answer
    return answers


async def stop(server: Any) -> None:
    server.send_signal(signal.SIGINT)
    try:
        await asyncio.to_thread(server.wait, 30)
    finally:
        kill(server)


async def test_a_server_killed_during_a_burst_of_force_bills_charges_each_subscription_once(
    engine, clean_db, database_url, admin_key, tmp_path
):
    ids = await seed(engine, 100, start="2026-05-20", next_date="2026-06-20")
    server, base = await serve(database_url, tmp_path, "serve-1")
    headers = {"Authorization": f"Bearer {admin_key}"}
    limits = httpx.Limits(max_connections=BURST_WIDTH)
    body = force_bill_body
    answers = await burst_then_kill(engine, base, headers, ids, server)

    unanswered = [sid for sid in ids if sid not in answers]
    pending = await scalar(engine, "SELECT count(*) FROM renewals WHERE status = 'PENDING'")
    assert unanswered, "the kill came too late to test anything"
    assert pending > 0, "no charge was caught in flight by the kill"

    server, base = await serve(database_url, tmp_path, "serve-2")
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120, limits=limits) as http:
            resent = await asyncio.gather(*(http.post("/graphql", json=body(sid)) for sid in unanswered))
    finally:
        await stop(server)
    for sid, response in zip(unanswered, resent, strict=True):
        payload = response.json()["data"]["forceBill"]
        assert payload["userErrors"] == [], (sid, payload)
        assert (payload["renewal"]["cycle"], payload["renewal"]["status"]) == (2, "PAID"), (sid, payload)

    # Every subscription charged exactly once for its forced cycle, and the gateway's ledger agrees.
    forced = await scalar(
        engine, "SELECT count(DISTINCT subscription_id) FROM renewals WHERE kind = 'FORCED' AND cycle = 2"
    )
    assert forced == len(ids)
    per_subscription = await scalar(
        engine,
        """SELECT count(*) FROM subscriptions s WHERE (SELECT count(*) FROM sandbox_charges c
               WHERE c.succeeded AND c.kind = 'CHARGE' AND c.idempotency_key LIKE 'rnw\\_' || s.id || '\\_2:%') <> 1""",
    )
    assert per_subscription == 0
    async with engine.connect() as conn:
        stuck = [
            row.subscription_id
            for row in await conn.execute(text("SELECT subscription_id FROM renewals WHERE status = 'PENDING'"))
        ]
    assert stuck == [], {sid: answers.get(sid, "resent") for sid in stuck}
    await assert_ledger_ok(engine)

    await worker_once(database_url, tmp_path)
    assert await scalar(engine, "SELECT count(*) FROM renewals WHERE status = 'PENDING'") == 0
    assert await scalar(engine, "SELECT count(*) FROM renewals WHERE kind = 'FORCED' AND status <> 'PAID'") == 0
    assert await scalar(engine, "SELECT count(*) FROM sandbox_charges WHERE succeeded") == len(ids)
    assert await scalar(engine, "SELECT count(*) FROM subscriptions WHERE next_renewal_date <> '2026-07-01'") == 0
    await assert_ledger_ok(engine, renewed_through=None)


async def test_subscriptions_cancelled_after_a_server_was_killed_are_not_charged_when_the_client_resends(
    engine, clean_db, database_url, admin_key, tmp_path
):
    ids = await seed(engine, 60, start="2026-05-20", next_date="2026-06-20")
    server, base = await serve(database_url, tmp_path, "serve-1")
    headers = {"Authorization": f"Bearer {admin_key}"}
    answers = await burst_then_kill(engine, base, headers, ids, server)
    unanswered = [sid for sid in ids if sid not in answers]
    async with engine.connect() as conn:
        in_flight = sorted(
            row.subscription_id
            for row in await conn.execute(text("SELECT subscription_id FROM renewals WHERE status = 'PENDING'"))
        )
        taken_before = {
            row.idempotency_key
            for row in await conn.execute(text("SELECT idempotency_key FROM sandbox_charges WHERE succeeded"))
        }
    assert in_flight, "no charge was caught in flight by the kill"
    # Cancel the ones in flight, and a few that were never recorded, then the client sends everything again.
    never_recorded = [sid for sid in unanswered if sid not in in_flight][:3]
    cancelled = in_flight + never_recorded
    limits = httpx.Limits(max_connections=BURST_WIDTH)
    server, base = await serve(database_url, tmp_path, "serve-2")
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120, limits=limits) as http:
            for sid in cancelled:
                response = await http.post(
                    "/graphql",
                    json={
                        "query": "mutation($id: ID!) { cancelSubscription(input: {subscriptionId: $id}) { "
                        "userErrors { code message } subscription { status } } }",
                        "variables": {"id": to_global_id("Subscription", sid)},
                    },
                )
                payload = response.json()["data"]["cancelSubscription"]
                assert payload["userErrors"] == [], (sid, payload)
                assert payload["subscription"]["status"] == "CANCELLED"
            resent = await asyncio.gather(*(http.post("/graphql", json=force_bill_body(sid)) for sid in unanswered))
    finally:
        await stop(server)
    for sid, response in zip(unanswered, resent, strict=True):
        payload = response.json()["data"]["forceBill"]
        for error in payload["userErrors"]:
            assert "Internal error" not in error["message"], (sid, payload)
        if sid not in cancelled:
            assert payload["userErrors"] == [], (sid, payload)
            assert payload["renewal"]["status"] == "PAID", (sid, payload)
    async with engine.connect() as conn:
        taken_after = {
            row.idempotency_key
            for row in await conn.execute(text("SELECT idempotency_key FROM sandbox_charges WHERE succeeded"))
        }
        statuses = {
            row.id: row.status
            for row in await conn.execute(
                text("SELECT id, status FROM subscriptions WHERE id = ANY(CAST(:ids AS bigint[]))"), {"ids": cancelled}
            )
        }
    charged_later = sorted(k for k in taken_after - taken_before if int(k.split("_")[1]) in cancelled)
    assert charged_later == [], "cancelled subscriptions were charged when the client sent its request again"
    assert set(statuses.values()) == {"CANCELLED"}
    await worker_once(database_url, tmp_path)
    assert await scalar(engine, "SELECT count(*) FROM renewals WHERE status = 'PENDING'") == 0
    billed = await scalar(
        engine,
        """SELECT count(DISTINCT subscription_id) FROM renewals WHERE kind = 'FORCED' AND status = 'PAID'
           AND NOT (subscription_id = ANY(CAST(:ids AS bigint[])))""",
        ids=cancelled,
    )
    assert billed == len(ids) - len(cancelled)
    await assert_ledger_ok(engine)


async def test_a_burst_of_force_bills_wider_than_the_connection_pool_is_answered(
    engine, clean_db, database_url, admin_key, tmp_path
):
    ids = await seed(engine, 60, start="2026-05-20", next_date="2026-06-20")
    server, base = await serve(database_url, tmp_path, "serve-wide")
    headers = {"Authorization": f"Bearer {admin_key}"}
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=90) as http:
            started = time.monotonic()
            responses = await asyncio.gather(
                *(
                    http.post(
                        "/graphql",
                        json={
                            "query": FORCE_BILL,
                            "variables": {"input": {"subscriptionId": to_global_id("Subscription", sid)}},
                        },
                    )
                    for sid in ids
                )
            )
            elapsed = time.monotonic() - started
    finally:
        kill(server)
    statuses = sorted({r.status_code for r in responses})
    assert statuses == [200], f"answers {statuses} after {elapsed:.1f} s"
    assert all(r.json()["data"]["forceBill"]["userErrors"] == [] for r in responses)
    assert elapsed < 29, f"60 force bills took {elapsed:.1f} s (the connection pool waits up to 30 s)"
    await assert_ledger_ok(engine)


async def test_subscriptions_cancelled_after_a_worker_was_killed_are_never_charged_again(
    engine, clean_db, database_url, client, clock, tmp_path
):
    from datetime import UTC, datetime

    clock.set(datetime(2026, 6, 1, 9, tzinfo=UTC))
    ids = await seed(engine, 60, start="2026-05-01", next_date=TODAY)
    log = tmp_path / "worker-1.log"
    worker = start(["worker", "--once", "--no-deliver"], env(database_url, REBILL_WORKER_BATCH_SIZE="8"), log)
    try:
        deadline = time.monotonic() + 120
        # Mid-pass: some renewals paid, a batch charged on the gateway and waiting for its slow answer.
        while True:
            assert worker.poll() is None, "the worker finished before it could be killed: " + log.read_text()
            assert time.monotonic() < deadline, "the worker never got going"
            paid = await scalar(engine, "SELECT count(*) FROM renewals WHERE kind = 'SCHEDULED' AND status = 'PAID'")
            in_flight = await scalar(
                engine,
                """SELECT count(*) FROM renewals r WHERE r.status = 'PENDING' AND EXISTS (SELECT 1 FROM sandbox_charges c
                   WHERE c.idempotency_key LIKE r.idempotency_key || ':%')""",
            )
            if paid >= 8 and in_flight > 0:
                break
            await asyncio.sleep(0.01)
    finally:
        kill(worker)

    async with engine.connect() as conn:
        stuck = sorted(
            row.subscription_id
            for row in await conn.execute(text("SELECT subscription_id FROM renewals WHERE status = 'PENDING'"))
        )
        # What the gateway took before the kill: the most any of them may ever be charged.
        taken_before = {
            row.idempotency_key: row.n
            for row in await conn.execute(
                text("SELECT idempotency_key, count(*) AS n FROM sandbox_charges WHERE succeeded GROUP BY 1")
            )
        }
        never_claimed = [
            row.id
            for row in await conn.execute(
                text("SELECT id FROM subscriptions WHERE next_renewal_date = :d ORDER BY id LIMIT 5"),
                {"d": datetime(2026, 6, 1).date()},
            )
        ]
    assert stuck, "the kill left nothing in flight"

    cancelled = stuck + [sid for sid in never_claimed if sid not in stuck]
    for sid in cancelled:
        payload = (
            await client.post(
                "/graphql",
                json={
                    "query": "mutation($id: ID!) { cancelSubscription(input: {subscriptionId: $id}) { "
                    "userErrors { code message } subscription { status } } }",
                    "variables": {"id": to_global_id("Subscription", sid)},
                },
            )
        ).json()["data"]["cancelSubscription"]
        assert payload["userErrors"] == [], (sid, payload)
        assert payload["subscription"]["status"] == "CANCELLED"

    await worker_once(database_url, tmp_path)

    async with engine.connect() as conn:
        charged_after = {
            row.idempotency_key: row.n
            for row in await conn.execute(
                text(
                    """SELECT c.idempotency_key, count(*) AS n FROM sandbox_charges c
                       WHERE c.succeeded AND split_part(c.idempotency_key, '_', 2) = ANY(CAST(:ids AS text[]))
                       GROUP BY 1"""
                ),
                {"ids": [str(sid) for sid in cancelled]},
            )
        }
        statuses = {
            row.id: row.status
            for row in await conn.execute(
                text("SELECT id, status FROM subscriptions WHERE id = ANY(CAST(:ids AS bigint[]))"), {"ids": cancelled}
            )
        }
    assert set(statuses.values()) == {"CANCELLED"}
    beyond = {key: n for key, n in charged_after.items() if n > taken_before.get(key, 0)}
    assert beyond == {}, "cancelled subscriptions were charged after their cancellation"
    assert await scalar(engine, "SELECT count(*) FROM renewals WHERE status = 'PENDING'") == 0
    # Their in-flight renewals: paid when the gateway had taken the money, void when it never saw them.
    async with engine.connect() as conn:
        for row in await conn.execute(
            text(
                "SELECT id, idempotency_key, status FROM renewals WHERE subscription_id = ANY(CAST(:ids AS bigint[]))"
            ),
            {"ids": stuck},
        ):
            took = any(k.startswith(row.idempotency_key + ":") for k in taken_before)
            if row.idempotency_key.startswith("seed_"):
                continue
            assert row.status == ("PAID" if took else "VOID"), (row, took)
    # Everyone else was renewed once.
    others = [sid for sid in ids if sid not in cancelled]
    assert await scalar(
        engine,
        """SELECT count(*) FROM renewals WHERE kind = 'SCHEDULED' AND status = 'PAID'
               AND subscription_id = ANY(CAST(:ids AS bigint[]))""",
        ids=others,
    ) == len(others)
    await assert_ledger_ok(engine, renewed_through=datetime(2026, 6, 1).date())


async def kill_worker_before_the_gateway(engine: Any, database_url: str, tmp_path: Path, n: int) -> list[int]:
    """Seed ``n`` subscriptions due today; kill a worker whose first batch of 10 is recorded but not yet charged.

    The gateway's ledger is held locked, so the worker waits on it after committing its PENDING renewals.
    """
    await seed(engine, n, start="2026-05-01", next_date=TODAY)
    log = tmp_path / "worker-1.log"
    async with engine.connect() as gate:
        await gate.execute(text("LOCK TABLE sandbox_charges IN EXCLUSIVE MODE"))  # until the rollback below
        worker = start(["worker", "--once", "--no-deliver"], env(database_url, REBILL_WORKER_BATCH_SIZE="10"), log)
        try:
            deadline = time.monotonic() + 120
            waiting = "SELECT count(*) FROM pg_locks WHERE relation = 'sandbox_charges'::regclass AND NOT granted"
            while await scalar(engine, waiting) < 1:
                assert worker.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the worker never reached the gateway"
                await asyncio.sleep(0.02)
        finally:
            kill(worker)
            await gate.rollback()
    assert await scalar(engine, "SELECT count(*) FROM sandbox_charges") == 0
    stuck = [
        row.subscription_id
        for row in await _rows(engine, "SELECT subscription_id FROM renewals WHERE status = 'PENDING' ORDER BY 1")
    ]
    assert len(stuck) == 10, stuck
    return stuck


LIFECYCLE = """mutation($id: ID!) {{ {name}(input: {{subscriptionId: $id}}) {{
    userErrors {{ code message }} subscription {{ status nextRenewalDate }} }} }}"""


async def lifecycle(client: Any, name: str, sid: int) -> dict[str, Any]:
    response = await client.post(
        "/graphql",
        json={"query": LIFECYCLE.format(name=name), "variables": {"id": to_global_id("Subscription", sid)}},
    )
    payload: dict[str, Any] = response.json()["data"][name]
    assert payload["userErrors"] == [], (name, sid, payload)
    return payload


async def test_charges_a_killed_worker_never_sent_are_void_once_their_subscriptions_stop(
    engine, clean_db, database_url, client, clock, tmp_path
):
    from datetime import UTC, datetime

    clock.set(datetime(2026, 6, 1, 9, tzinfo=UTC))
    stuck = await kill_worker_before_the_gateway(engine, database_url, tmp_path, 30)
    stopped: dict[int, str] = {}
    for n, sid in enumerate(stuck):
        name = "cancelSubscription" if n % 2 == 0 else "suspendSubscription"
        stopped[sid] = (await lifecycle(client, name, sid))["subscription"]["status"]
    assert sorted(set(stopped.values())) == ["CANCELLED", "SUSPENDED"]
    # The gateway never saw them: nothing was taken, the renewals are void.
    statuses = await _rows(
        engine,
        "SELECT status, count(*) AS n FROM renewals WHERE kind = 'SCHEDULED' "
        "AND subscription_id = ANY(CAST(:ids AS bigint[])) GROUP BY 1",
        ids=stuck,
    )
    assert {row.status: row.n for row in statuses} == {"VOID": 10}

    await worker_once(database_url, tmp_path)
    charged = await scalar(
        engine,
        "SELECT count(*) FROM sandbox_charges WHERE split_part(idempotency_key, '_', 2) = ANY(CAST(:ids AS text[]))",
        ids=[str(sid) for sid in stuck],
    )
    assert charged == 0, "stopped subscriptions were charged by the next worker run"
    others = await _rows(engine, "SELECT id FROM subscriptions WHERE NOT (id = ANY(CAST(:ids AS bigint[])))", ids=stuck)
    paid = await scalar(
        engine,
        "SELECT count(*) FROM renewals WHERE kind = 'SCHEDULED' AND status = 'PAID' "
        "AND subscription_id = ANY(CAST(:ids AS bigint[]))",
        ids=[row.id for row in others],
    )
    assert paid == len(others) == 20
    await assert_ledger_ok(engine, renewed_through=datetime(2026, 6, 1).date())


async def test_a_subscription_suspended_while_its_renewal_was_in_flight_is_billed_when_activated(
    engine, clean_db, database_url, client, clock, tmp_path
):
    from datetime import UTC, datetime

    clock.set(datetime(2026, 6, 1, 9, tzinfo=UTC))
    stuck = await kill_worker_before_the_gateway(engine, database_url, tmp_path, 12)
    voided = stuck[0]
    await lifecycle(client, "suspendSubscription", voided)
    # The same situation without the crash: suspended before its renewal was due, activated on the day.
    control = max(
        row.id
        for row in await _rows(
            engine, "SELECT id FROM subscriptions WHERE NOT (id = ANY(CAST(:ids AS bigint[])))", ids=stuck
        )
    )
    await lifecycle(client, "suspendSubscription", control)
    await worker_once(database_url, tmp_path)
    answers = {sid: await lifecycle(client, "activateSubscription", sid) for sid in (control, voided)}
    june = {
        sid: [
            row.status
            for row in await _rows(
                engine,
                "SELECT status FROM renewals WHERE subscription_id = :s AND period_start = '2026-06-01' ORDER BY id",
                s=sid,
            )
        ]
        for sid in (control, voided)
    }
    assert june[control] == ["PAID"], (june, answers)
    assert "PAID" in june[voided], ("the voided period was never billed", june, answers)
    assert answers[voided]["subscription"]["nextRenewalDate"] == answers[control]["subscription"]["nextRenewalDate"]
    await assert_ledger_ok(engine)


async def _rows(engine: Any, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list(await conn.execute(text(sql), params))
