"""Bulk editing throughput: preview and run a plan over 500k of 1M subscriptions.

    .venv/bin/python bench/bulk.py [--subscriptions 1000000] [--chunk 2000]

Uses ``DATABASE_URL`` when set (a scratch database is created on that server
and dropped afterwards), otherwise a fresh embedded PostgreSQL in a
temporary directory. Seeds the subscriptions with set-based SQL (one item
each; ``amount_minor`` is what the item bills, 5 % in trial, a few
cancelled), then:

* baseline: one ``UPDATE`` shifting the next renewal of the matching half by
  14 days plus one history row each by ``INSERT … SELECT`` (rolled back);
* preview of the plan "shift the next renewal of those by 14 days"
  (target: under 1 s);
* the run of that plan, worked by a separate process whose peak memory is
  measured (targets: at least 0.70 of the baseline's rows/s, under 200 MB).

Prints each figure with its target beside it, then checks that every
matching subscription was changed exactly once, with one history entry and
one run item each. Exits with status 1 when a check fails or a target is
missed (the last line, JSON, says which).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from rebill.db.scratch import ScratchDatabase  # noqa: E402

NOW = "2026-03-01T09:00:00Z"
NOW_AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
TODAY = date(2026, 3, 1)
WINDOW = 60  # next renewals spread over the 60 days after TODAY; the plan takes the first 30
FROM, TO = TODAY + timedelta(days=1), TODAY + timedelta(days=WINDOW // 2)
TARGET_PREVIEW_S = 1.0
TARGET_RATIO = 0.70
TARGET_PEAK_MB = 200

PLAN = {
    "filter": {"status": ["ACTIVE", "TRIAL"], "nextRenewalFrom": FROM.isoformat(), "nextRenewalTo": TO.isoformat()},
    "segments": [{"name": "everyone", "actions": [{"shiftNextRenewal": {"unit": "DAY", "count": 14}}]}],
}

SEED = [
    """INSERT INTO subscription_profiles (name, interval_unit, interval_count) VALUES ('Bench monthly', 'MONTH', 1)""",
    "INSERT INTO products (name, sku) VALUES ('Coffee', 'bench-coffee'), ('Tea', 'bench-tea')",
    """INSERT INTO customers (email, name)
       SELECT 'bench' || n || '@example.com', 'Bench ' || n FROM generate_series(1, :customers) AS n""",
    """INSERT INTO payment_methods (customer_id, kind, gateway_token, brand, last4)
       SELECT id, 'CARD', '4242424242424242', 'visa', '4242' FROM customers""",
    "UPDATE customers c SET default_payment_method_id = pm.id FROM payment_methods pm WHERE pm.customer_id = c.id",
    # n % 60 is the day of the next renewal; every 20th is in trial (its trial end is its next renewal); a few of
    # the later half are cancelled. Prices: 5.00 to 54.00, quantity 1 to 3; amount_minor = price x quantity.
    """INSERT INTO subscriptions (customer_id, profile_id, currency, status, renewal_type, start_date, anchor_date,
           next_renewal_date, trial_end_date, current_period_start, current_period_end, occurrences_billed,
           last_cycle, payment_method_id, amount_minor, cancelled_at, created_at, updated_at)
       SELECT 1 + n % :customers, (SELECT id FROM subscription_profiles LIMIT 1), 'USD',
              CASE WHEN n % 20 = 0 THEN 'TRIAL' WHEN n % 60 = 59 AND n % 7 = 0 THEN 'CANCELLED' ELSE 'ACTIVE' END,
              'AUTOMATIC', d - 30, d,
              CASE WHEN n % 60 = 59 AND n % 7 = 0 AND n % 20 <> 0 THEN NULL ELSE d END,
              CASE WHEN n % 20 = 0 THEN d END,
              d - 30, d, CASE WHEN n % 20 = 0 THEN 0 ELSE 1 END, CASE WHEN n % 20 = 0 THEN 0 ELSE 1 END,
              1 + n % :customers, (500 + (n % 50) * 100) * (1 + n % 3),
              CASE WHEN n % 60 = 59 AND n % 7 = 0 AND n % 20 <> 0 THEN CAST(:now AS timestamptz) - interval '1 day' END,
              CAST(:now AS timestamptz) - interval '2 days', CAST(:now AS timestamptz) - interval '2 days'
       FROM (SELECT n, CAST(:today AS date) + 1 + n % 60 AS d FROM generate_series(1, :n) AS n) AS g
       ORDER BY n""",
    """INSERT INTO subscription_items (subscription_id, product_id, position, unit_price_minor, currency, quantity)
       SELECT s.id, (SELECT min(id) FROM products) + s.id % 2, 0, 500 + (s.id % 50) * 100, 'USD', 1 + s.id % 3
       FROM subscriptions s ORDER BY s.id""",
]

BASELINE = """
    WITH moved AS (
        UPDATE subscriptions
           SET next_renewal_date = next_renewal_date + 14, anchor_date = next_renewal_date + 14,
               current_period_end = next_renewal_date + 14,
               trial_end_date = CASE WHEN status = 'TRIAL' THEN next_renewal_date + 14 ELSE trial_end_date END,
               version = version + 1, updated_at = CAST(:now AS timestamptz)
         WHERE status IN ('ACTIVE', 'TRIAL') AND next_renewal_date BETWEEN :from AND :to
     RETURNING id, next_renewal_date
    )
    INSERT INTO history_entries (subscription_id, occurred_at, actor, action, changes)
    SELECT id, CAST(:now AS timestamptz), 'baseline', 'next_renewal_date_changed',
           jsonb_build_array(jsonb_build_object('field', 'nextRenewalDate',
                                                'before', next_renewal_date - 14, 'after', next_renewal_date))
      FROM moved
"""

CHECKS = {
    "matching subscriptions not moved by exactly 14 days": """
        SELECT count(*) FROM subscriptions WHERE status IN ('ACTIVE', 'TRIAL') AND version = 1
           AND next_renewal_date BETWEEN :from AND :to""",
    "subscriptions changed more than once": "SELECT count(*) FROM subscriptions WHERE version > 2",
    "changed subscriptions without exactly one history entry of the run": """
        SELECT count(*) FROM subscriptions s WHERE s.version = 2 AND (
            SELECT count(*) FROM history_entries h WHERE h.subscription_id = s.id AND h.bulk_run_id IS NOT NULL) <> 1""",
    "trials whose trial end did not move with the next renewal": """
        SELECT count(*) FROM subscriptions WHERE status = 'TRIAL' AND trial_end_date <> next_renewal_date""",
    "run items not APPLIED": "SELECT count(*) FROM bulk_run_items WHERE outcome <> 'APPLIED'",
    "changed subscriptions without exactly one run item": """
        SELECT count(*) FROM subscriptions s WHERE s.version = 2 AND (
            SELECT count(*) FROM bulk_run_items i WHERE i.subscription_id = s.id) <> 1""",
}


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


async def scalar(engine: AsyncEngine, sql: str, **params: object) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(sql), params)).scalar_one())


async def autocommit(engine: AsyncEngine, sql: str) -> None:
    async with engine.connect() as conn:
        await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(text(sql))


async def seed(engine: AsyncEngine, n: int) -> float:
    started = time.perf_counter()
    params = {"n": n, "customers": max(1, n // 100), "today": TODAY, "now": NOW_AT}
    async with engine.begin() as conn:
        for sql in SEED:
            await conn.execute(text(sql), params)
    await autocommit(engine, "VACUUM ANALYZE")
    return time.perf_counter() - started


async def baseline(engine: AsyncEngine) -> tuple[int, float]:
    """The plan's change as one UPDATE plus one INSERT … SELECT of history, rolled back: the floor."""
    async with engine.connect() as conn:
        transaction = await conn.begin()
        started = time.perf_counter()
        result = await conn.execute(text(BASELINE), {"now": NOW_AT, "from": FROM, "to": TO})
        rows = int(result.rowcount)
        elapsed = time.perf_counter() - started
        await transaction.rollback()
    await autocommit(engine, "VACUUM ANALYZE subscriptions")
    await autocommit(engine, "VACUUM ANALYZE history_entries")
    return rows, elapsed


def settings_env(url: str, chunk: int) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "REBILL_NOW": NOW,
        "REBILL_BULK_CHUNK_SIZE": str(chunk),
        "PYTHONPATH": str(ROOT / "src"),
    }


async def preview(url: str, chunk: int) -> tuple[float, object]:
    from rebill.bulk.runs import BulkService
    from rebill.config import Settings
    from rebill.db.engine import make_engine
    from rebill.services.runtime import Services

    os.environ.update(settings_env(url, chunk))
    engine = make_engine(url)
    try:
        services = Services(engine, Settings.from_env())
        bulk = BulkService(services)
        await bulk.preview(PLAN, sample=1)  # warm the catalogs and the plan cache
        started = time.perf_counter()
        result = await bulk.preview(PLAN, sample=20)
        return time.perf_counter() - started, result
    finally:
        await engine.dispose()


async def start_run(url: str, chunk: int) -> int:
    from rebill.bulk.runs import BulkService
    from rebill.config import Settings
    from rebill.db.engine import make_engine
    from rebill.services.runtime import Actor, Services

    os.environ.update(settings_env(url, chunk))
    engine = make_engine(url)
    try:
        services = Services(engine, Settings.from_env())
        run = await BulkService(services).start(Actor("bench", scopes=frozenset({"admin"})), PLAN)
        return run.id
    finally:
        await engine.dispose()


async def work(run_id: int, domain_path: bool) -> None:
    """In the worker process: work the run, print its figures as JSON."""
    import resource

    from rebill.bulk import setbased
    from rebill.bulk.runner import process_run

    if domain_path:  # every subscription through the domain operation, as before runs moved dates in SQL
        setbased.date_move = lambda actions: None
    from rebill.bulk.runs import BulkService
    from rebill.config import Settings
    from rebill.db.engine import make_engine
    from rebill.services.runtime import Services

    settings = Settings.from_env()
    engine = make_engine(settings.database_url or "")
    services = Services(engine, settings)
    started = time.perf_counter()
    status = await process_run(services, run_id)
    elapsed = time.perf_counter() - started
    view = await BulkService(services).get(run_id)
    await engine.dispose()
    assert view is not None
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"status": status, "elapsed": elapsed, "applied": view.applied, "peak_mb": peak_kb / 1024}))


def run_worker(url: str, chunk: int, run_id: int, domain_path: bool) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--work", str(run_id)]
    command += ["--domain-path"] if domain_path else []
    proc = subprocess.run(command, env=settings_env(url, chunk), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"the worker failed (exit {proc.returncode}):\n{proc.stderr}")
    figures: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return figures


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscriptions", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=2000, help="bulk_chunk_size of the run")
    parser.add_argument(
        "--domain-path",
        action="store_true",
        help="run every subscription through the domain operation (for comparison)",
    )
    parser.add_argument("--work", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.work is not None:
        await work(args.work, args.domain_path)
        return 0

    scratch = ScratchDatabase("rebill_bench", os.environ.get("DATABASE_URL"))
    url = await scratch.create()
    engine = create_async_engine(url)
    try:
        n = args.subscriptions
        seeded = await seed(engine, n)
        matching = await scalar(
            engine,
            "SELECT count(*) FROM subscriptions WHERE status IN ('ACTIVE','TRIAL') "
            "AND next_renewal_date BETWEEN :from AND :to",
            **{"from": FROM, "to": TO},
        )
        print(f"seeded {n:,} subscriptions in {seeded:.1f}s; {matching:,} renew from {FROM} to {TO}")

        rows, floor = await baseline(engine)
        base_rate = rows / floor
        print(
            f"baseline: one UPDATE of {rows:,} rows + INSERT … SELECT of their history: {floor:.2f}s "
            f"({base_rate:,.0f} rows/s)"
        )

        preview_s, result = await preview(url, args.chunk)
        targets = {"preview": preview_s < TARGET_PREVIEW_S}
        print(
            f"preview: {preview_s:.2f}s for {result.matched:,} matched"  # type: ignore[attr-defined]
            f"  [target under {TARGET_PREVIEW_S:.0f} s: {verdict(targets['preview'])}]"
        )

        run_id = await start_run(url, args.chunk)
        figures = run_worker(url, args.chunk, run_id, args.domain_path)
        applied, elapsed = int(figures["applied"]), float(figures["elapsed"])
        rate = applied / elapsed
        peak = float(figures["peak_mb"])
        ratio = rate / base_rate
        targets |= {"ratio": ratio >= TARGET_RATIO, "memory": peak < TARGET_PEAK_MB}
        print(
            f"run: {applied:,} subscriptions in {elapsed:.1f}s ({rate:,.0f} rows/s), chunks of {args.chunk}, "
            f"status {figures['status']}"
        )
        print(f"ratio run / baseline: {ratio:.3f}  [target at least {TARGET_RATIO:.2f}: {verdict(targets['ratio'])}]")
        print(
            f"peak memory of the run's process: {peak:.0f} MB"
            f"  [target under {TARGET_PEAK_MB} MB: {verdict(targets['memory'])}]"
        )

        failures = 0
        for label, sql in CHECKS.items():
            count = await scalar(engine, sql, **{"from": FROM, "to": TO})
            failures += count != 0
            print(f"  check: {label}: {count} {'ok' if count == 0 else 'FAILED'}")
        if applied != matching:
            failures += 1
            print(f"  check: {applied:,} applied, expected {matching:,}: FAILED")
        missed = [name for name, met in targets.items() if not met]
        summary: dict[str, Any] = {"preview_s": round(preview_s, 3), "rows_per_s": round(rate)}
        summary |= {"baseline_rows_per_s": round(base_rate), "ratio": round(ratio, 3), "peak_mb": round(peak)}
        summary |= {"checks_failed": failures, "missed": missed}
        print(json.dumps(summary))
        return 1 if failures or missed else 0
    finally:
        await engine.dispose()
        await scratch.drop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
