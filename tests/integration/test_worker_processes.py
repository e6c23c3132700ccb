"""Exactly once across processes: several ``rebill worker --once`` at the same time, and a worker killed mid-batch."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from datetime import date
from typing import Any

from sqlalchemy import text

from rebill.config import Settings
from rebill.invoicing.backfill import backfill_invoices

TODAY = date(2026, 6, 1)
NOW = "2026-06-01T09:00:00Z"
WORKER = [sys.executable, "-c", "from rebill.cli import main; main()", "worker"]

SEED = [
    "INSERT INTO subscription_profiles (name, interval_unit, interval_count) VALUES ('Monthly', 'MONTH', 1)",
    "INSERT INTO products (name, sku) VALUES ('Coffee', 'coffee')",
    "INSERT INTO customers (email) SELECT 'c' || n || '@example.com' FROM generate_series(1, :n) AS n",
    """INSERT INTO payment_methods (customer_id, kind, gateway_token)
       SELECT id, 'CARD', CASE WHEN id % 10 = 0 THEN '4000000000000002' ELSE '4242424242424242' END FROM customers""",
    # Subscription i is (i % 3) months behind: its next renewal is 0, 1 or 2 months before today.
    """INSERT INTO subscriptions (customer_id, profile_id, currency, status, renewal_type, start_date, anchor_date,
           next_renewal_date, current_period_start, current_period_end, occurrences_billed, last_cycle,
           payment_method_id, amount_minor)
       SELECT c.id, (SELECT id FROM subscription_profiles), 'USD', 'ACTIVE', 'AUTOMATIC',
              CAST(CAST(:today AS date) - (c.id % 3 + 1) * interval '1 month' AS date),
              CAST(CAST(:today AS date) - (c.id % 3 + 1) * interval '1 month' AS date),
              CAST(CAST(:today AS date) - (c.id % 3) * interval '1 month' AS date),
              CAST(CAST(:today AS date) - (c.id % 3 + 1) * interval '1 month' AS date),
              CAST(CAST(:today AS date) - (c.id % 3) * interval '1 month' AS date),
              1, 1, pm.id, 1500
       FROM customers c JOIN payment_methods pm ON pm.customer_id = c.id ORDER BY c.id""",
    """INSERT INTO subscription_items (subscription_id, product_id, unit_price_minor, currency, quantity)
       SELECT id, (SELECT id FROM products), 1500, 'USD', 1 FROM subscriptions""",
    """INSERT INTO renewals (subscription_id, cycle, kind, status, period_start, period_end, amount_minor, currency,
           attempts, idempotency_key)
       SELECT id, 1, 'INITIAL', 'PAID', start_date, current_period_end, 1500, 'USD', 1, 'seed_' || id
       FROM subscriptions""",
]


async def seed(engine: Any, n: int) -> int:
    """``n`` subscriptions due today, some of them several periods behind; the cycles due."""
    async with engine.begin() as conn:
        for sql in SEED:
            await conn.execute(text(sql), {"n": n, "today": TODAY})
        await backfill_invoices(conn, Settings())  # the seeded charges' invoices, as for data from before invoicing
    return sum(i % 3 + 1 for i in range(1, n + 1))


def worker(database_url: str, *args: str, batch_size: int = 10) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REBILL_NOW": NOW,
        "REBILL_WORKER_BATCH_SIZE": str(batch_size),
        "REBILL_LOG_LEVEL": "ERROR",
    }
    return subprocess.Popen(
        [*WORKER, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


async def finish(proc: subprocess.Popen[str]) -> str:
    stdout, stderr = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 0, stderr
    return stdout


async def scalar(engine: Any, sql: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql))).scalar()


async def assert_billed_exactly_once(engine: Any, cycles_due: int) -> None:
    """One renewal per (subscription, cycle), no gap, and one gateway charge per renewal attempt."""
    duplicates = "SELECT count(*) FROM (SELECT 1 FROM renewals GROUP BY subscription_id, cycle HAVING count(*) > 1) d"
    assert await scalar(engine, duplicates) == 0
    gaps = """SELECT count(*) FROM (SELECT subscription_id FROM renewals GROUP BY subscription_id
              HAVING max(cycle) <> count(*) OR min(cycle) <> 1) g"""
    assert await scalar(engine, gaps) == 0
    assert await scalar(engine, "SELECT count(*) FROM renewals WHERE kind = 'SCHEDULED'") == cycles_due
    assert await scalar(engine, "SELECT count(*) FROM renewals WHERE status = 'PENDING'") == 0
    assert (
        await scalar(
            engine,
            "SELECT count(*) FROM subscriptions WHERE status IN ('ACTIVE', 'OVERDUE') AND next_renewal_date <= '2026-06-01'",
        )
        == 0
    )
    # The gateway's own ledger: exactly one charge per scheduled renewal, under that renewal's key.
    unmatched = """SELECT count(*) FROM renewals r WHERE r.kind = 'SCHEDULED' AND (SELECT count(*) FROM sandbox_charges c
                   WHERE c.gateway = 'sandbox' AND c.kind = 'CHARGE' AND c.idempotency_key = r.idempotency_key || '\\:sandbox') <> 1"""
    assert await scalar(engine, unmatched) == 0
    assert await scalar(engine, "SELECT count(*) FROM sandbox_charges") == cycles_due
    # And the customer hears about each renewal once.
    notices = "SELECT count(*) FROM outbox WHERE kind IN ('RENEWAL_RECEIPT', 'PAYMENT_DECLINED')"
    assert await scalar(engine, notices) == cycles_due
    receipts = "SELECT count(*) FROM outbox WHERE kind = 'RENEWAL_RECEIPT'"
    assert await scalar(engine, receipts) == await scalar(
        engine, "SELECT count(*) FROM renewals WHERE kind = 'SCHEDULED' AND status = 'PAID'"
    )


async def test_several_workers_at_once_bill_every_cycle_exactly_once(engine, clean_db, database_url):
    cycles_due = await seed(engine, 150)
    # Hold the workers at their first claim until all three are there, so that they race.
    async with engine.connect() as gate:
        await gate.execute(text("LOCK TABLE subscriptions IN EXCLUSIVE MODE"))
        procs = [worker(database_url, "--once", "--no-deliver", batch_size=7) for _ in range(3)]
        waiting = "SELECT count(*) FROM pg_locks WHERE relation = 'subscriptions'::regclass AND NOT granted"
        deadline = time.monotonic() + 30
        while await scalar(engine, waiting) < 3:
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
            await asyncio.sleep(0.02)
        await gate.commit()
    outputs = [await finish(proc) for proc in procs]
    await assert_billed_exactly_once(engine, cycles_due)
    billed = sum(int(m.group(1)) + int(n.group(1)) for o in outputs for m, n in [_counts(o)])
    assert billed == cycles_due
    assert sum(1 for o in outputs if _counts(o)[0].group(1) != "0") >= 2, "the work was shared"


def _counts(output: str) -> tuple[Any, Any]:
    renewed = re.search(r"renewed (\d+)", output)
    failed = re.search(r"failed (\d+)", output)
    assert renewed and failed, output
    return renewed, failed


async def test_a_worker_killed_mid_batch_is_finished_by_the_next_one_without_a_double_charge(
    engine, clean_db, database_url
):
    cycles_due = await seed(engine, 400)
    proc = worker(database_url, "--once", "--no-deliver", batch_size=5)
    deadline = time.monotonic() + 30
    while await scalar(engine, "SELECT count(*) FROM renewals WHERE kind = 'SCHEDULED'") < 60:
        assert proc.poll() is None, "the worker finished before it could be killed"
        assert time.monotonic() < deadline
        await asyncio.sleep(0.005)
    # Aim for the worst moment: renewals recorded and charged, not yet settled.
    aim = time.monotonic() + 1
    while time.monotonic() < aim and proc.poll() is None:
        if await scalar(engine, "SELECT count(*) FROM renewals WHERE status = 'PENDING'"):
            break
    os.killpg(proc.pid, signal.SIGKILL)
    await asyncio.to_thread(proc.wait)
    assert proc.returncode == -signal.SIGKILL
    done = await scalar(engine, "SELECT count(*) FROM renewals WHERE kind = 'SCHEDULED'")
    assert done < cycles_due, "killed before the end"

    output = await finish(worker(database_url, "--once", "--no-deliver", batch_size=50))
    assert "renewed" in output
    await assert_billed_exactly_once(engine, cycles_due)

    again = await finish(worker(database_url, "--once", "--no-deliver"))
    assert "renewed 0, failed 0" in again, "a retry of the same run bills nothing"


async def test_invoice_numbers_stay_gapless_under_two_workers_an_api_finalizing_drafts_and_a_kill(
    engine, clean_db, database_url
):
    """Slow (about 15 s) on purpose: it is real processes (a server, two workers) racing for the invoice series,
    and one of them killed with SIGKILL mid-batch, that numbering without gaps must survive."""
    import httpx

    from tests.api.live_server import running_rebill
    from tests.ledger import assert_ledger_ok, numbering_gaps

    cycles_due = await seed(engine, 240)
    async with engine.begin() as conn:
        # One in eight reviews its renewals as drafts: the workers draft them, and finalize one whose next
        # period comes due, while the API finalizes the others.
        await conn.execute(
            text("""UPDATE subscriptions SET invoicing = '{"draftInvoices": true, "draftDays": 30}' WHERE id % 8 = 0""")
        )
    finalized = 0
    with running_rebill(database_url, scopes=("admin",), REBILL_NOW=NOW) as live:
        procs = [worker(database_url, "--once", "--no-deliver", batch_size=7) for _ in range(2)]
        async with httpx.AsyncClient(base_url=live.base_url, headers=live.headers("admin"), timeout=60) as api:

            async def finalize_drafts() -> int:
                page = await api.post(
                    "/graphql",
                    json={"query": "{ invoices(filter: {status: [DRAFT]}, first: 100) { edges { node { id } } } }"},
                )
                ids = [e["node"]["id"] for e in page.json()["data"]["invoices"]["edges"]]
                answers = await asyncio.gather(
                    *(
                        api.post(
                            "/graphql",
                            json={
                                "query": "mutation($i: FinalizeInvoiceInput!) { finalizeInvoice(input: $i) "
                                "{ userErrors { code } invoice { number } } }",
                                "variables": {"i": {"invoiceId": i}},
                            },
                        )
                        for i in ids
                    )
                )
                return sum(1 for a in answers if a.json()["data"]["finalizeInvoice"]["userErrors"] == [])

            killed = False
            deadline = time.monotonic() + 60
            while any(p.poll() is None for p in procs):
                assert time.monotonic() < deadline, "the workers did not finish"
                finalized += await finalize_drafts()
                if not killed and await scalar(engine, "SELECT count(*) FROM renewals WHERE kind = 'SCHEDULED'") > 80:
                    os.killpg(procs[0].pid, signal.SIGKILL)
                    killed = True
            assert killed, "a worker was killed mid-run"
            await asyncio.to_thread(procs[0].wait)
            await finish(procs[1])
            # Whatever the killed worker left in flight is recovered by the next one, which drafts and finalizes
            # what is still due.
            await finish(worker(database_url, "--once", "--no-deliver", batch_size=50))
            finalized += await finalize_drafts()
    assert finalized > 0, "the API finalized drafts while the workers ran"
    assert await numbering_gaps(engine) == []
    assert await scalar(engine, "SELECT count(*) FROM invoices WHERE status = 'DRAFT'") == 0
    await assert_ledger_ok(engine)
    drafts_skipped = await scalar(engine, "SELECT count(*) FROM history_entries WHERE action = 'draft_deleted'")
    assert drafts_skipped == 0
    assert await scalar(engine, "SELECT count(*) FROM renewals WHERE kind = 'SCHEDULED'") == cycles_due
