"""The ``rebill worker`` and ``rebill outbox`` commands as an operator uses them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import text

from tests.support import add_card, make_world, mutate, ok, subscribe


async def cli(database_url: str, *args: str, now: str = "2026-02-15T09:00:00Z") -> Any:
    from typer.testing import CliRunner

    import rebill.billing.commands  # noqa: F401  (registers the commands)
    from rebill.cli import app

    env = {"DATABASE_URL": database_url, "REBILL_NOW": now, "REBILL_DELIVERER": "log"}
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


async def two_subscriptions(client: Any) -> tuple[str, str]:
    world = await make_world(client)
    good = (await subscribe(client, world))["subscription"]["id"]
    bad = (await subscribe(client, world))["subscription"]["id"]
    declining = await add_card(client, world.customer, "4000000000000002", default=False)
    change = {"subscriptionId": bad, "paymentMethodId": declining}
    ok(await mutate(client, "setPaymentMethod", change, "subscription { id }"))
    return good, bad


async def test_worker_once_processes_what_is_due_prints_a_summary_and_exits_0(client, database_url):
    await two_subscriptions(client)
    result = await cli(database_url, "worker", "--once", "--no-deliver")
    assert result.exit_code == 0, result.output
    assert "renewed 1, failed 1" in result.output
    again = await cli(database_url, "worker", "--once")
    assert again.exit_code == 0
    assert "renewed 0, failed 0" in again.output
    # The receipts of both initial charges, the renewal's receipt and the decline notice.
    assert "notifications delivered 4" in again.output


async def test_the_worker_forgets_idempotency_keys_once_they_expire(client, services, database_url):
    good, _ = await two_subscriptions(client)
    change = {"subscriptionId": good, "metadata": {"a": 1}, "idempotencyKey": "note-1"}
    ok(await mutate(client, "setMetadata", change, "subscription { id }"))
    count = "SELECT count(*) FROM idempotency_records"
    async with services.engine.connect() as conn:
        assert (await conn.execute(text(count))).scalar_one() == 1
        expires = (await conn.execute(text("SELECT expires_at FROM idempotency_records"))).scalar_one()

    soon = await cli(database_url, "worker", "--once", "--no-deliver", now=(expires - timedelta(hours=1)).isoformat())
    assert "idempotency keys expired 0" in soon.output, soon.output
    later = await cli(database_url, "worker", "--once", "--no-deliver", now=(expires + timedelta(hours=1)).isoformat())
    assert later.exit_code == 0 and "idempotency keys expired 1" in later.output, later.output
    async with services.engine.connect() as conn:
        assert (await conn.execute(text(count))).scalar_one() == 0


async def test_outbox_lists_filters_and_delivers_notifications(client, services, database_url):
    good, _ = await two_subscriptions(client)
    assert (await cli(database_url, "worker", "--once", "--no-deliver")).exit_code == 0

    listing = await cli(database_url, "outbox")
    assert listing.exit_code == 0, listing.output
    assert "RENEWAL_RECEIPT" in listing.output and "PAYMENT_DECLINED" in listing.output

    declined = await cli(database_url, "outbox", "--kind", "payment_declined")
    assert "PAYMENT_DECLINED" in declined.output and "RENEWAL_RECEIPT" not in declined.output
    assert "payment-methods" in declined.output and "card_declined" in declined.output

    mine = await cli(database_url, "outbox", "--subscription", good)  # the API's global id works too
    assert "RENEWAL_RECEIPT" in mine.output and "PAYMENT_DECLINED" not in mine.output

    delivered = await cli(database_url, "outbox", "--deliver", "--pending")
    # Two initial receipts, a renewal receipt and a decline; partner-only rows are never mailed.
    assert "delivered 4 notifications" in delivered.output
    async with services.engine.connect() as conn:
        left = (await conn.execute(text("SELECT count(*) FROM outbox WHERE delivered_at IS NULL"))).scalar()
    assert left == 0


def start_worker_loop(database_url: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "REBILL_NOW": "2026-02-15T09:00:00Z"}
    return subprocess.Popen(
        [sys.executable, "-c", "from rebill.cli import main; main()", "worker", "--poll", "0.2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_the_worker_loop_renews_as_dates_come_and_stops_cleanly_on_ctrl_c(client, services, database_url):
    await two_subscriptions(client)
    proc = start_worker_loop(database_url)
    try:
        deadline = time.monotonic() + 30
        while True:
            async with services.engine.connect() as conn:
                done = (await conn.execute(text("SELECT count(*) FROM renewals WHERE cycle = 2"))).scalar()
            if done == 2:
                break
            assert proc.poll() is None and time.monotonic() < deadline
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.to_thread(proc.communicate, timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "renewed 1, failed 1" in stdout
    assert "rebill worker stopped" in stderr


async def test_a_worker_with_no_webhooks_renews_and_leaves_deliveries_to_another(client, services, database_url):
    async with services.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO webhook_endpoints (url, events, enabled, secret) "
                "VALUES ('https://partner.example/hooks', '{}', true, 'whsec_test')"
            )
        )
    await two_subscriptions(client)
    result = await cli(database_url, "worker", "--once", "--no-deliver", "--no-webhooks")
    assert result.exit_code == 0 and "renewed 1, failed 1" in result.output, result.output
    async with services.engine.connect() as conn:
        rows = list(await conn.execute(text("SELECT status, attempts FROM webhook_deliveries")))
    assert rows and {(r.status, r.attempts) for r in rows} == {("PENDING", 0)}, "queued, none sent"
