"""The accountant's export: a year of invoices through ``rebill invoices export`` in constant memory.

    .venv/bin/python bench/export.py [--invoices 1000000]

Uses ``DATABASE_URL`` when set (a scratch database is created on that server
and dropped afterwards), otherwise a fresh embedded PostgreSQL in a
temporary directory. Seeds N invoices issued over 2026 with set-based SQL
(one item line each, a discount line on every fifth; mostly paid, some
open, void or uncollectible, 1 % drafts, which the export leaves out; a
customer name in fifty is a formula), then:

* baseline: the export's own query as ``COPY … TO STDOUT (FORMAT csv)``
  read by the client and thrown away, the floor for any export;
* ``rebill invoices export --from 2026-01-01 --to 2026-12-31 --out
  /dev/null`` in a separate process, whose peak resident memory is read
  from the kernel when it exits (``wait4``).

Prints rows/s of both and their ratio, the peak memory beside the 200 MB
target, and exits 1 when the export fails, writes the wrong number of rows
or misses the target.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from rebill.db.scratch import ScratchDatabase  # noqa: E402
from rebill.invoicing.export import export_statement  # noqa: E402

FROM, TO = date(2026, 1, 1), date(2026, 12, 31)
TARGET_PEAK_MB = 200

SEED = [
    """INSERT INTO customers (email, name, tax_id, billing_address)
       SELECT 'bench' || n || '@example.com',
              CASE WHEN n % 50 = 0 THEN '=HYPERLINK("http://x/' || n || '")' ELSE 'Bench ' || n END,
              CASE WHEN n % 3 = 0 THEN 'FR' || lpad(n::text, 11, '0') END,
              jsonb_build_object('line1', n || ' Main Street', 'city', 'Lyon',
                                 'country', (ARRAY['FR', 'DE', 'US', 'GB'])[1 + n % 4])
       FROM generate_series(1, :customers) AS n""",
    # Invoice n is issued on day n * 365 / N of 2026, so numbers grow with dates as they do in a real year.
    """INSERT INTO invoices (number, document_type, status, customer_id, currency, issue_date, due_date,
           subtotal_minor, discount_minor, total_minor, amount_paid_minor, customer_name, customer_email,
           billing_address, customer_tax_id, finalized_at, paid_at, created_at, updated_at)
       SELECT CASE WHEN n % 100 = 0 THEN NULL
                   ELSE 'INV-2026-' || CASE WHEN n < 1000000 THEN lpad(n::text, 6, '0') ELSE n::text END END,
              'INVOICE',
              CASE WHEN n % 100 = 0 THEN 'DRAFT' WHEN n % 37 = 0 THEN 'VOID' WHEN n % 41 = 0 THEN 'UNCOLLECTIBLE'
                   WHEN n % 13 = 0 THEN 'OPEN' ELSE 'PAID' END,
              c.id, 'EUR', d.day, d.day,
              amount, discount, amount - discount, CASE WHEN n % 13 = 0 OR n % 37 = 0 THEN 0 ELSE amount - discount END,
              c.name, c.email, c.billing_address, c.tax_id,
              d.day + time '09:00', CASE WHEN n % 100 <> 0 AND n % 13 <> 0 AND n % 37 <> 0 AND n % 41 <> 0
                                         THEN d.day + time '09:00' END,
              now(), now()
       FROM generate_series(1, :n) AS n
       CROSS JOIN LATERAL (SELECT DATE '2026-01-01' + ((n - 1) * 365 / :n)::int AS day,
                                  1000 + n % 9000 AS amount,
                                  CASE WHEN n % 5 = 0 THEN 100 ELSE 0 END AS discount) AS d
       JOIN customers c ON c.id = 1 + n % :customers""",
    """INSERT INTO invoice_lines (invoice_id, position, kind, description, quantity, unit_price_minor, amount_minor)
       SELECT id, 0, 'ITEM', 'Coffee', 1, subtotal_minor, subtotal_minor FROM invoices""",
    """INSERT INTO invoice_lines (invoice_id, position, kind, description, amount_minor)
       SELECT id, 1, 'DISCOUNT', 'Coupon', -discount_minor FROM invoices WHERE discount_minor > 0""",
    "UPDATE invoices SET subtotal_minor = subtotal_minor - discount_minor WHERE status = 'DRAFT'",
]


async def scalar(engine: AsyncEngine, sql: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(sql))).scalar_one())


async def seed(engine: AsyncEngine, n: int) -> float:
    started = time.perf_counter()
    params = {"n": n, "customers": max(1, min(n // 10, 100_000))}
    async with engine.begin() as conn:
        for sql in SEED:
            await conn.execute(text(sql), params)
    async with engine.connect() as conn:
        await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(text("ANALYZE"))
    return time.perf_counter() - started


async def baseline(engine: AsyncEngine) -> float:
    """The export's query, as CSV made by the server and read by the client: the floor."""
    query = str(
        export_statement(FROM, TO).compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    )
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None

        async def discard(chunk: bytes) -> None:
            pass

        started = time.perf_counter()
        await raw.copy_from_query(query, output=discard, format="csv", header=True)
        return time.perf_counter() - started


def run_export(url: str) -> tuple[float, float, int, str]:
    """Wall time, peak resident MB, exit code and stderr of one export to /dev/null."""
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT / "src")}
    command = [
        sys.executable,
        "-c",
        "from rebill.cli import main; main()",
        *("invoices", "export", "--from", FROM.isoformat(), "--to", TO.isoformat(), "--out", os.devnull),
    ]
    with tempfile.TemporaryFile("w+") as stderr:
        started = time.perf_counter()
        proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak, not any other's
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        stderr.seek(0)
        return elapsed, usage.ru_maxrss / 1024, proc.returncode, stderr.read()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invoices", type=int, default=1_000_000)
    args = parser.parse_args()

    scratch = ScratchDatabase("rebill_bench", os.environ.get("DATABASE_URL"))
    url = await scratch.create()
    engine = create_async_engine(url)
    try:
        n = args.invoices
        seeded = await seed(engine, n)
        expected = await scalar(engine, "SELECT count(*) FROM invoices WHERE status <> 'DRAFT'")
        lines = await scalar(engine, "SELECT count(*) FROM invoice_lines")
        print(f"seeded {n:,} invoices ({n - expected:,} drafts) with {lines:,} lines over 2026 in {seeded:.1f}s")
        floor = await baseline(engine)
        print(f"baseline: COPY of the export's query as CSV: {floor:.2f}s ({expected / floor:,.0f} rows/s)")

        elapsed, peak_mb, code, stderr = run_export(url)
        if code != 0:
            print(f"the export failed (exit {code}):\n{stderr}")
            return 1
        print(f"export: {stderr.strip().splitlines()[-1]}")
        written = re.search(r"wrote ([\d,]+) rows?", stderr)
        rows = int(written.group(1).replace(",", "")) if written else -1
        rate = rows / elapsed
        print(f"  {rows:,} rows in {elapsed:.1f}s wall clock (process start included): {rate:,.0f} rows/s")
        print(f"  ratio to the COPY baseline: {elapsed / floor:,.1f}x the time")
        met = peak_mb < TARGET_PEAK_MB
        print(
            f"  peak resident memory: {peak_mb:.0f} MB (target: under {TARGET_PEAK_MB} MB: {'met' if met else 'NOT met'})"
        )
        failures = 0
        if rows != expected:
            failures += 1
            print(f"  check: {rows:,} rows written, expected {expected:,} (one per finalized invoice): FAILED")
        return 1 if failures or not met else 0
    finally:
        await engine.dispose()
        await scratch.drop()


def _interrupted(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # so the scratch database and server are removed


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _interrupted)
    sys.exit(asyncio.run(main()))
