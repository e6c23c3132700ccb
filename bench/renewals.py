"""Renewal throughput: N subscriptions due today, billed by two ``rebill worker --once`` processes.

    .venv/bin/python bench/renewals.py [--subscriptions 100000] [--workers 2] [--batch-size N] [--no-endpoint]
                                       [--no-floor]

Uses ``DATABASE_URL`` when set (a scratch database is created on that server
and dropped afterwards), otherwise a fresh embedded PostgreSQL in a
temporary directory. Each renewal is billed with its numbered invoice and
lines, history, outbox events and, unless ``--no-endpoint``, a delivery row
for a webhook endpoint subscribed to every event (sending them is
``bench/webhooks.py``'s measure: the workers run with ``--no-webhooks``). Prints renewals per
second, the baseline (the same number of renewal rows written by one
``INSERT … SELECT``, the floor for any engine), the ratio between them and
the workers' peak memory, each beside its target, then checks that every
cycle was billed exactly once: one renewal per (subscription, cycle) and one
gateway charge per renewal in the sandbox ledger. Exits 1 when a check
fails and 2 when a target is missed.

First (unless ``--no-floor``), the write floor: the same rows written by
set-based SQL alone, in as many sessions as workers, in batches of 1,000
committed twice each as the workers commit, in another database on the same
server seeded alike and dropped before the workers' own is seeded (each run
starts after a checkpoint). It is what PostgreSQL itself needs for these writes,
with their indexes, constraints and triggers: no engine can be faster, and
the workers' share of it is what the engine costs.

Targets: with the endpoint, at least 10,000 renewals/s and 0.08 of the
baseline; without it, at least 4,000 renewals/s; worker memory under 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from rebill.db.scratch import ScratchDatabase  # noqa: E402

TODAY = date(2026, 3, 1)
NOW = "2026-03-01T09:00:00Z"
DECLINE_EVERY = 50  # 2 % of the cards are declined: dunning is part of the run


SEED = [
    "INSERT INTO subscription_profiles (name, interval_unit, interval_count) VALUES ('Bench monthly', 'MONTH', 1)",
    "INSERT INTO products (name, sku) VALUES ('Bench product', 'bench-1')",
    """INSERT INTO customers (email, name)
       SELECT 'bench' || n || '@example.com', 'Bench ' || n FROM generate_series(1, :n) AS n""",
    """INSERT INTO payment_methods (customer_id, kind, gateway_token, brand, last4)
       SELECT id, 'CARD',
              CASE WHEN id % :decline = 0 THEN '4000000000000002' ELSE '4242424242424242' END,
              'visa', CASE WHEN id % :decline = 0 THEN '0002' ELSE '4242' END
       FROM customers""",
    "UPDATE customers c SET default_payment_method_id = pm.id FROM payment_methods pm WHERE pm.customer_id = c.id",
    """INSERT INTO subscriptions (customer_id, profile_id, currency, status, renewal_type, start_date, anchor_date,
           next_renewal_date, current_period_start, current_period_end, occurrences_billed, last_cycle,
           payment_method_id, amount_minor, created_at, updated_at)
       SELECT c.id, (SELECT id FROM subscription_profiles LIMIT 1), 'USD', 'ACTIVE', 'AUTOMATIC',
              CAST(:start AS date), CAST(:start AS date), CAST(:today AS date), CAST(:start AS date),
              CAST(:today AS date), 1, 1, c.default_payment_method_id, 1999, now(), now()
       FROM customers c ORDER BY c.id""",
    """INSERT INTO subscription_items (subscription_id, product_id, position, unit_price_minor, currency, quantity)
       SELECT s.id, (SELECT id FROM products LIMIT 1), 0, 1999, 'USD', 1 FROM subscriptions s""",
    """INSERT INTO renewals (subscription_id, cycle, kind, status, period_start, period_end, amount_minor, currency,
           attempts, idempotency_key, gateway_id, paid_at)
       SELECT id, 1, 'INITIAL', 'PAID', start_date, next_renewal_date, 1999, 'USD', 1,
              'seed_' || id || '_1', 'sandbox', now() FROM subscriptions""",
    "ANALYZE",
]

BASELINE = """
    INSERT INTO renewals (subscription_id, cycle, kind, status, period_start, period_end, amount_minor, currency,
        attempts, idempotency_key, created_at, updated_at)
    SELECT id, last_cycle + 1, 'SCHEDULED', 'PENDING', next_renewal_date,
           CAST(next_renewal_date + interval '1 month' AS date), amount_minor, currency, 1,
           'baseline_' || id || '_' || (last_cycle + 1), now(), now()
    FROM subscriptions WHERE status = 'ACTIVE' AND next_renewal_date <= CAST(:today AS date)
"""

# Every row the workers write for a renewal, written by set-based SQL alone: the floor of the writes themselves,
# with the same indexes, constraints and triggers and no engine at all. As the workers do, it takes batches of
# 1,000 due subscriptions in as many sessions as there are workers, and commits twice per batch: once the
# renewals are recorded, once they are settled. Every renewal is paid here (the 2 % declined write one event
# fewer); payloads are of the engine's shape and size. Without an endpoint, the invoices' events for partners
# are not written, as the engine does not write them.
FLOOR_CLAIM = """
    CREATE TEMP TABLE floor_due AS
    SELECT s.id, s.customer_id, s.last_cycle + 1 AS cycle, s.next_renewal_date AS period_start,
           CAST(s.next_renewal_date + interval '1 month' AS date) AS period_end, s.amount_minor, s.currency,
           s.payment_method_id, c.email, c.name, nextval('renewals_id_seq') AS renewal_id,
           nextval('invoices_id_seq') AS invoice_id
    FROM subscriptions s JOIN customers c ON c.id = s.customer_id
    WHERE s.status = 'ACTIVE' AND s.next_renewal_date <= CAST(:today AS date)
    ORDER BY s.id LIMIT 1000 FOR UPDATE OF s SKIP LOCKED
"""
FLOOR_RECORD = [
    # Claim and record: the renewal, the subscription one cycle further, its history, the invoice and its line.
    """INSERT INTO renewals (id, subscription_id, cycle, kind, status, period_start, period_end, amount_minor,
           currency, attempts, payment_method_id, payment_kind, idempotency_key, created_at, updated_at)
       SELECT renewal_id, id, cycle, 'SCHEDULED', 'PENDING', period_start, period_end, amount_minor, currency, 1,
              payment_method_id, 'CARD', 'floor_' || id || '_' || cycle, now(), now()
       FROM floor_due""",
    """UPDATE subscriptions s SET next_renewal_date = d.period_end, current_period_start = d.period_start,
           current_period_end = d.period_end, last_cycle = d.cycle, version = s.version + 1, updated_at = now()
       FROM floor_due d WHERE s.id = d.id""",
    """INSERT INTO history_entries (subscription_id, occurred_at, actor, action, changes)
       SELECT id, now(), 'engine', 'renewal_created', jsonb_build_array(
           jsonb_build_object('field', 'nextRenewalDate', 'before', period_start, 'after', period_end),
           jsonb_build_object('field', 'currentPeriodStart', 'before', period_start, 'after', period_start),
           jsonb_build_object('field', 'currentPeriodEnd', 'before', period_start, 'after', period_end),
           jsonb_build_object('field', 'renewals.' || renewal_id, 'before', NULL, 'after', jsonb_build_object(
               'kind', 'SCHEDULED', 'cycle', cycle, 'amount', '19.99', 'status', 'PENDING',
               'periodStart', period_start, 'periodEnd', period_end)))
       FROM floor_due""",
    """INSERT INTO invoices (id, number, status, subscription_id, customer_id, renewal_id, currency, issue_date,
           due_date, period_start, period_end, subtotal_minor, total_minor, customer_name, customer_email, seller,
           created_at, finalized_at, updated_at)
       SELECT invoice_id, 'FLR-' || invoice_id, 'OPEN', id, customer_id, renewal_id, currency,
              period_start, period_start, period_start, period_end, amount_minor, amount_minor, name, email,
              CAST('{}' AS jsonb), now(), now(), now()
       FROM floor_due""",
    """INSERT INTO invoice_lines (invoice_id, position, kind, description, product_id, quantity, unit_price_minor,
           amount_minor, period_start, period_end)
       SELECT invoice_id, 0, 'ITEM', 'Bench product', (SELECT id FROM products LIMIT 1), 1, amount_minor,
              amount_minor, period_start, period_end
       FROM floor_due""",
]
# The invoice created and finalized, for partners: written only when an endpoint listens, as the engine does.
FLOOR_RECORD_EVENTS = [
    """INSERT INTO outbox (kind, subscription_id, recipient, payload, created_at)
       SELECT k.kind, d.id, NULL, jsonb_build_object('total', '19.99', 'number', 'FLR-' || d.invoice_id, 'status', 'OPEN',
              'currency', d.currency, 'invoiceId', d.invoice_id, 'renewalId', d.renewal_id,
              'customerId', d.customer_id, 'subscriptionId', d.id), now()
       FROM floor_due d CROSS JOIN (VALUES ('INVOICE_CREATED'), ('INVOICE_FINALIZED')) AS k (kind)
       ORDER BY d.id, k.kind""",
]
FLOOR_SETTLE = [
    # Charge: the sandbox's ledger.
    r"""INSERT INTO sandbox_charges (gateway, idempotency_key, kind, token, amount_minor, currency, succeeded,
           reference)
       SELECT 'sandbox', 'floor_' || id || '_' || cycle || '\:sandbox', 'CHARGE', '4242424242424242', amount_minor,
              currency, true, 'sb_ch_' || md5(CAST(renewal_id AS text))
       FROM floor_due""",
    # Settle: the renewal, the invoice and the subscription paid, the transaction, history, receipt and portal link.
    """UPDATE renewals r SET status = 'PAID', gateway_id = 'sandbox', paid_at = now(), updated_at = now()
       FROM floor_due d WHERE r.id = d.renewal_id""",
    """UPDATE invoices i SET status = 'PAID', amount_paid_minor = i.total_minor, paid_at = now(), updated_at = now()
       FROM floor_due d WHERE i.id = d.invoice_id""",
    """UPDATE subscriptions s SET occurrences_billed = s.occurrences_billed + 1, last_gateway_id = 'sandbox',
           version = s.version + 1, updated_at = now()
       FROM floor_due d WHERE s.id = d.id""",
    """INSERT INTO transactions (renewal_id, subscription_id, kind, gateway_id, amount_minor, currency, status,
           gateway_reference, created_at)
       SELECT renewal_id, id, 'CHARGE', 'sandbox', amount_minor, currency, 'SUCCEEDED',
              'sb_ch_' || md5(CAST(renewal_id AS text)), now()
       FROM floor_due""",
    """INSERT INTO history_entries (subscription_id, occurred_at, actor, action, changes)
       SELECT id, now(), 'engine', 'renewal_paid', jsonb_build_array(
           jsonb_build_object('field', 'occurrencesBilled', 'before', cycle - 1, 'after', cycle),
           jsonb_build_object('field', 'renewals.' || renewal_id || '.status', 'before', 'PENDING', 'after', 'PAID'))
       FROM floor_due""",
    """INSERT INTO portal_tokens (customer_id, kind, token_hash, flow, subscription_id, invoice_id, source,
           created_at, expires_at)
       SELECT customer_id, 'LINK', encode(sha256(convert_to(md5(CAST(renewal_id AS text)), 'UTF8')), 'hex'),
              'OVERVIEW', id, invoice_id, 'EMAIL', now(), now() + interval '7 days'
       FROM floor_due""",
    """INSERT INTO outbox (kind, subscription_id, recipient, payload, created_at)
       SELECT 'RENEWAL_RECEIPT', id, email, jsonb_build_object('kind', 'SCHEDULED', 'cycle', cycle,
              'amount', '19.99', 'gateway', 'sandbox', 'currency', currency, 'invoiceId', invoice_id,
              'periodEnd', period_end, 'portalUrl', 'http://127.0.0.1:8000/portal/start/' || md5(email) || md5(name),
              'renewalId', renewal_id, 'periodStart', period_start, 'invoiceNumber', 'FLR-' || invoice_id,
              'subscriptionId', id), now()
       FROM floor_due ORDER BY id""",
]
# The invoice paid, for partners.
FLOOR_SETTLE_EVENTS = [
    """INSERT INTO outbox (kind, subscription_id, recipient, payload, created_at)
       SELECT 'INVOICE_PAID', id, NULL, jsonb_build_object('total', '19.99', 'number', 'FLR-' || invoice_id,
              'status', 'PAID', 'currency', currency, 'invoiceId', invoice_id, 'renewalId', renewal_id,
              'customerId', customer_id, 'subscriptionId', id), now()
       FROM floor_due ORDER BY id""",
]

CHECKS = {
    "renewals of one (subscription, cycle) beyond the first": """
        SELECT count(*) FROM (SELECT 1 FROM renewals WHERE NOT adjustment
                              GROUP BY subscription_id, cycle HAVING count(*) > 1) AS d""",
    "renewals charged more than once in the sandbox ledger": """
        SELECT count(*) FROM (SELECT 1 FROM sandbox_charges WHERE kind = 'CHARGE'
                              GROUP BY split_part(idempotency_key, ':', 1) HAVING count(*) > 1) AS d""",
    "(subscription, cycle) charged under two renewals in the ledger": """
        SELECT count(*) FROM (SELECT 1 FROM sandbox_charges WHERE kind = 'CHARGE'
                              GROUP BY split_part(idempotency_key, '_', 2), split_part(idempotency_key, '_', 3)
                              HAVING count(DISTINCT split_part(idempotency_key, ':', 1)) > 1) AS d""",
    "subscriptions still due": """
        SELECT count(*) FROM subscriptions WHERE status IN ('ACTIVE', 'OVERDUE') AND next_renewal_date <= :today""",
    "renewals left PENDING": "SELECT count(*) FROM renewals WHERE status = 'PENDING'",
    "scheduled renewals without exactly one ledger charge": r"""
        SELECT count(*) FROM renewals r WHERE r.kind = 'SCHEDULED' AND (
            SELECT count(*) FROM sandbox_charges c
            WHERE c.gateway = 'sandbox' AND c.kind = 'CHARGE'
              AND c.idempotency_key = r.idempotency_key || '\:sandbox') <> 1""",
}


async def scalar(engine: AsyncEngine, sql: str, **params: object) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(sql), params)).scalar_one())


async def checkpoint(engine: AsyncEngine) -> None:
    """Write out what the seed left dirty, so that the run measured next does not pay for it."""
    async with engine.connect() as conn:
        await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(text("CHECKPOINT"))


async def seed(engine: AsyncEngine, n: int, *, endpoint: bool) -> float:
    """``n`` subscriptions due today, and the webhook endpoint when ``endpoint``; how long it took."""
    started = time.perf_counter()
    start = date(TODAY.year if TODAY.month > 1 else TODAY.year - 1, TODAY.month - 1 or 12, TODAY.day)
    async with engine.begin() as conn:
        for sql in SEED[:-1]:
            await conn.execute(text(sql), {"n": n, "decline": DECLINE_EVERY, "start": start, "today": TODAY})
        if endpoint:
            await conn.execute(text(ENDPOINT))
    async with engine.connect() as conn:
        await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(text(SEED[-1]))
    return time.perf_counter() - started


async def baseline(engine: AsyncEngine) -> tuple[int, float]:
    """The same renewal rows in one statement, rolled back: the floor any engine stands on."""
    async with engine.connect() as conn:
        transaction = await conn.begin()
        started = time.perf_counter()
        inserted = (await conn.execute(text(BASELINE), {"today": TODAY})).rowcount  # type: ignore[attr-defined]
        elapsed = time.perf_counter() - started
        await transaction.rollback()
    return int(inserted), elapsed


async def write_floor(url: str, sessions: int, *, endpoint: bool) -> float:
    """Every row of the renewals written by set-based SQL alone, in ``sessions`` concurrent sessions; the time."""
    engine = create_async_engine(url)
    record = FLOOR_RECORD + (FLOOR_RECORD_EVENTS if endpoint else [])
    settle = FLOOR_SETTLE + (FLOOR_SETTLE_EVENTS if endpoint else [])

    async def session() -> None:
        async with engine.connect() as conn:
            while True:
                async with conn.begin():
                    await conn.execute(text(FLOOR_CLAIM), {"today": TODAY})
                    if not (await conn.execute(text("SELECT count(*) FROM floor_due"))).scalar_one():
                        await conn.execute(text("DROP TABLE floor_due"))
                        return
                    for sql in record:
                        await conn.execute(text(sql))
                async with conn.begin():
                    for sql in settle:
                        await conn.execute(text(sql))
                    await conn.execute(text("DROP TABLE floor_due"))

    try:
        started = time.perf_counter()
        await asyncio.gather(*(session() for _ in range(sessions)))
        return time.perf_counter() - started
    finally:
        await engine.dispose()


async def measure_floor(server_url: str, n: int, sessions: int, *, endpoint: bool) -> float:
    """The write floor in a database of its own on the same server, seeded as the workers' is; its time."""
    scratch = ScratchDatabase("rebill_floor", server_url)
    url = await scratch.create()
    engine = create_async_engine(url)
    try:
        await seed(engine, n, endpoint=endpoint)
        await checkpoint(engine)
        elapsed = await write_floor(url, sessions, endpoint=endpoint)
        written = await scalar(engine, "SELECT count(*) FROM renewals WHERE status = 'PAID' AND cycle = 2")
        if written != n:
            raise SystemExit(f"the write floor renewed {written:,} subscriptions, not {n:,}")
        return elapsed
    finally:
        await engine.dispose()
        await scratch.drop()


ENDPOINT = """
    INSERT INTO webhook_endpoints (url, description, events, enabled, secret, created_at, updated_at)
    VALUES ('https://partner.example/hooks', 'every event', '{}', true, 'whsec_' || md5('bench'), now(), now())
"""

TARGET_RATE_WITH_ENDPOINT = 10_000
TARGET_RATIO_WITH_ENDPOINT = 0.08
TARGET_RATE_WITHOUT_ENDPOINT = 4_000
TARGET_MEMORY_MB = 300


def run_workers(url: str, workers: int, batch_size: int | None) -> tuple[float, list[str]]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REBILL_NOW": NOW,
        "PYTHONPATH": str(ROOT / "src"),
    }
    env.pop("REBILL_WORKER_BATCH_SIZE", None)
    if batch_size is not None:
        env["REBILL_WORKER_BATCH_SIZE"] = str(batch_size)
    command = [
        sys.executable,
        "-c",
        "from rebill.cli import main; main()",
        "worker",
        "--once",
        "--no-deliver",
        "--no-webhooks",
    ]
    started = time.perf_counter()
    procs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]
    outputs = []
    for proc in procs:
        stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"a worker failed (exit {proc.returncode}):\n{stderr}")
        outputs.append(stdout.strip())
    return time.perf_counter() - started, outputs


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscriptions", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, help="subscriptions per batch (default: the worker's own, 1000)")
    parser.add_argument(
        "--no-endpoint", action="store_true", help="no webhook endpoint: no delivery rows (the invoices target)"
    )
    parser.add_argument(
        "--no-floor", action="store_true", help="skip the write floor (the same rows by set-based SQL alone)"
    )
    args = parser.parse_args()

    scratch = ScratchDatabase("rebill_bench", os.environ.get("DATABASE_URL"))
    url = await scratch.create()
    engine = create_async_engine(url)
    try:
        n = args.subscriptions
        # First, in a database of its own that is gone before the workers start.
        writes = None if args.no_floor else await measure_floor(url, n, args.workers, endpoint=not args.no_endpoint)
        seeded = await seed(engine, n, endpoint=not args.no_endpoint)
        print(f"seeded {n:,} subscriptions due {TODAY} in {seeded:.1f}s ({100 // DECLINE_EVERY} % declining cards)")
        if not args.no_endpoint:
            print("one webhook endpoint subscribed to every event: each event gets its delivery row")
        rows, floor = await baseline(engine)
        print(f"baseline: one INSERT … SELECT of {rows:,} renewal rows: {floor:.2f}s ({rows / floor:,.0f} rows/s)")
        if writes is not None:
            print(
                f"write floor: the same {n:,} renewals' rows by set-based SQL alone in {args.workers} sessions "
                f"(another database, seeded alike): {writes:.1f}s: {n / writes:,.0f} renewals/s, "
                f"{(n / writes) / (rows / floor):.3f} of the baseline"
            )
        await checkpoint(engine)

        elapsed, outputs = run_workers(url, args.workers, args.batch_size)
        engine_times = [float(m.group(1)) for o in outputs if (m := re.search(r"\(([\d.]+)s\)\s*$", o))]
        for number, output in enumerate(outputs, 1):
            print(f"worker {number}: {output}")
        renewals = await scalar(engine, "SELECT count(*) FROM renewals WHERE kind = 'SCHEDULED'")
        rate = renewals / elapsed
        print(
            f"{args.workers} workers: {renewals:,} renewals in {elapsed:.1f}s wall clock "
            f"(process start included): {rate:,.0f} renewals/s"
        )
        if engine_times:
            busy = max(engine_times)
            print(f"  engine time (slowest worker): {busy:.1f}s: {renewals / busy:,.0f} renewals/s")
        print(f"ratio to the INSERT … SELECT baseline: {elapsed / floor:,.1f}x the time ({rate / (rows / floor):.3f})")

        failures = 0
        for label, sql in CHECKS.items():
            count = await scalar(engine, sql, today=TODAY)
            failures += count != 0
            print(f"  check: {label}: {count} {'ok' if count == 0 else 'FAILED'}", flush=True)
        if renewals != n:
            failures += 1
            print(f"  check: {renewals:,} scheduled renewals, expected {n:,}: FAILED")
        if not args.no_endpoint:
            deliveries = await scalar(engine, "SELECT count(*) FROM webhook_deliveries")
            print(f"  {deliveries:,} delivery rows written for the endpoint")
        memory = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        ratio = rate / (rows / floor)
        if writes is not None:
            print(f"the workers reach {rate / (n / writes):.2f} of the write floor")
        if args.no_endpoint:
            targets = [
                (
                    f"{rate:,.0f} renewals/s",
                    f"at least {TARGET_RATE_WITHOUT_ENDPOINT:,}",
                    rate >= TARGET_RATE_WITHOUT_ENDPOINT,
                )
            ]
        else:
            targets = [
                (
                    f"{rate:,.0f} renewals/s",
                    f"at least {TARGET_RATE_WITH_ENDPOINT:,}",
                    rate >= TARGET_RATE_WITH_ENDPOINT,
                ),
                (f"ratio {ratio:.3f}", f"at least {TARGET_RATIO_WITH_ENDPOINT}", ratio >= TARGET_RATIO_WITH_ENDPOINT),
            ]
        targets.append(
            (f"worker peak memory {memory:,.0f} MB", f"under {TARGET_MEMORY_MB} MB", memory < TARGET_MEMORY_MB)
        )
        missed = 0
        for figure, target, met in targets:
            missed += not met
            print(f"target: {figure}, {target}: {'met' if met else 'MISSED'}")
        if failures:
            return 1
        return 2 if missed else 0
    finally:
        await engine.dispose()
        await scratch.drop()


def _interrupted(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # so the scratch database and server are removed


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupted)
    sys.exit(asyncio.run(main()))
