"""billingForecast at scale: 90 days, one point a day, over 1M subscriptions.

    .venv/bin/python bench/forecast.py [--subscriptions 1000000] [--repeat 5] [--keep | --existing URL]

Uses ``DATABASE_URL`` when set (a scratch database is created on that server and dropped afterwards,
or kept with ``--keep``, which prints its URL), otherwise a fresh embedded PostgreSQL in a temporary
directory. ``--existing URL`` measures a database seeded by an earlier ``--keep`` run, without seeding. Seeds with set-based SQL a mix close
to ``rebill seed``'s: monthly (ANCHORED, some on month ends), monthly STICKY, every 30 days, weekly,
quarterly and yearly plans, customers in four time zones, 5 % in trial, a few cancelled, 14 % with a
coupon (a third of them running out), one or two items, a few thousand declined renewals awaiting a
retry. Then asks the forecast ``--repeat`` times and prints the best and the range beside the target
(under 1 s at 1M subscriptions), and the best of as many runs of a bare ``GROUP BY`` of the subscriptions
renewing in the window (``bench/metrics.py``'s baseline) with the ratio; exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from rebill.clock import Clock  # noqa: E402
from rebill.config import Settings  # noqa: E402
from rebill.db.scratch import ScratchDatabase  # noqa: E402
from rebill.domain.periods import MetricsInterval  # noqa: E402
from rebill.services.forecast import ForecastService  # noqa: E402
from rebill.services.runtime import Services  # noqa: E402

NOW_AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
TODAY = date(2026, 3, 1)
TARGET_S = 1.0
# The least a forecast has to do: read the subscriptions renewing in the window and sum them by day.
BASELINE = """SELECT next_renewal_date, count(*), sum(amount_minor) FROM subscriptions
    WHERE currency = 'USD' AND status IN ('ACTIVE', 'TRIAL', 'OVERDUE', 'FUTURE')
      AND next_renewal_date BETWEEN :today AND :end GROUP BY 1"""

SEED = [
    """INSERT INTO subscription_profiles (name, interval_unit, interval_count, anchor_policy) VALUES
       ('Monthly', 'MONTH', 1, 'ANCHORED'), ('Sticky', 'MONTH', 1, 'STICKY'), ('30 days', 'DAY', 30, 'ANCHORED'),
       ('Weekly', 'WEEK', 1, 'ANCHORED'), ('Quarterly', 'MONTH', 3, 'ANCHORED'), ('Yearly', 'YEAR', 1, 'ANCHORED')""",
    "INSERT INTO products (name, sku) VALUES ('Coffee', 'bench-coffee'), ('Tea', 'bench-tea')",
    """INSERT INTO coupons (code, percent_off, duration, duration_cycles) VALUES
       ('ONCE10', 10, 'ONCE', NULL), ('REP3', 20, 'REPEATING', 3), ('ALWAYS15', 15, 'FOREVER', NULL)""",
    """INSERT INTO customers (email, name, time_zone)
       SELECT 'bench' || n || '@example.com', 'Bench ' || n,
              (ARRAY['UTC', 'Europe/Paris', 'America/New_York', 'Asia/Tokyo'])[1 + n % 4]
       FROM generate_series(1, :customers) AS n""",
    """INSERT INTO payment_methods (customer_id, kind, gateway_token, brand, last4)
       SELECT id, 'CARD', '4242424242424242', 'visa', '4242' FROM customers""",
    "UPDATE customers c SET default_payment_method_id = pm.id FROM payment_methods pm WHERE pm.customer_id = c.id",
    """INSERT INTO subscriptions (customer_id, profile_id, currency, status, renewal_type, time_zone, start_date,
           anchor_date, next_renewal_date, trial_end_date, occurrences_billed, last_cycle, payment_method_id,
           amount_minor, created_at, updated_at)
       SELECT c, p, 'USD',
              CASE WHEN n % 20 = 0 THEN 'TRIAL' WHEN n % 97 = 0 THEN 'CANCELLED' WHEN n % 89 = 0 THEN 'OVERDUE'
                   ELSE 'ACTIVE' END,
              'AUTOMATIC', (ARRAY['UTC', 'Europe/Paris', 'America/New_York', 'Asia/Tokyo'])[1 + c % 4],
              d - 30, d, CASE WHEN n % 97 = 0 THEN NULL ELSE d END, CASE WHEN n % 20 = 0 THEN d END, 1, 1, c,
              (500 + (n % 50) * 100) * (1 + n % 3), CAST(:now AS timestamptz), CAST(:now AS timestamptz)
       FROM (SELECT n, 1 + n % :customers AS c,
                    (SELECT min(id) FROM subscription_profiles) + (ARRAY[0, 0, 0, 0, 1, 2, 3, 4, 5, 5])[1 + n % 10] AS p,
                    CASE WHEN n % 31 = 0 THEN DATE '2026-03-31' ELSE CAST(:today AS date) + 1 + n % 60 END AS d
             FROM generate_series(1, :n) AS n) AS g
       ORDER BY n""",
    """INSERT INTO subscription_items (subscription_id, product_id, position, unit_price_minor, currency, quantity)
       SELECT s.id, (SELECT min(id) FROM products), 0, 500 + (s.id % 50) * 100, 'USD', 1 + s.id % 3
       FROM subscriptions s ORDER BY s.id""",
    """INSERT INTO subscription_items (subscription_id, product_id, position, unit_price_minor, currency, quantity)
       SELECT s.id, (SELECT max(id) FROM products), 1, 250, 'USD', 1 FROM subscriptions s WHERE s.id % 4 = 0""",
    "UPDATE subscriptions SET amount_minor = amount_minor + 250 WHERE id % 4 = 0",
    """INSERT INTO applied_coupons (subscription_id, coupon_id, cycles_used)
       SELECT s.id, (SELECT min(id) FROM coupons) + s.id % 3, 0 FROM subscriptions s WHERE s.id % 7 = 0""",
    """UPDATE subscriptions s SET amount_minor = s.amount_minor - round(s.amount_minor * c.percent_off / 100),
           discount_minor = round(s.amount_minor * c.percent_off / 100)
       FROM applied_coupons ac JOIN coupons c ON c.id = ac.coupon_id WHERE ac.subscription_id = s.id""",
    """INSERT INTO renewals (subscription_id, cycle, kind, status, period_start, period_end, amount_minor, currency,
           attempts, next_retry_date, payment_kind, idempotency_key, created_at, updated_at)
       SELECT id, 1, 'SCHEDULED', 'FAILED', next_renewal_date - 30, next_renewal_date, amount_minor, 'USD', 1,
              CAST(:today AS date) + (id % 5)::int, 'CARD', 'bench-' || id, CAST(:now AS timestamptz) - interval '2 days',
              CAST(:now AS timestamptz)
       FROM subscriptions WHERE status = 'OVERDUE'""",
    """INSERT INTO transactions (renewal_id, subscription_id, kind, amount_minor, currency, status, created_at)
       SELECT id, subscription_id, 'CHARGE', amount_minor, 'USD', 'FAILED', created_at FROM renewals""",
]


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscriptions", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the seeded database and print its URL")
    parser.add_argument("--existing", metavar="URL", help="measure a database seeded by an earlier --keep run")
    args = parser.parse_args()
    if args.keep and not os.environ.get("DATABASE_URL"):
        parser.error("--keep needs DATABASE_URL (an embedded server goes with its temporary directory)")
    scratch = None
    if args.existing:
        url = args.existing
    else:
        scratch = ScratchDatabase("rebill_bench_forecast", os.environ.get("DATABASE_URL"))
        url = await scratch.create()
    engine = create_async_engine(url)
    try:
        if scratch is not None:
            started = time.perf_counter()
            params = {
                "n": args.subscriptions,
                "customers": max(1, args.subscriptions // 2),
                "today": TODAY,
                "now": NOW_AT,
            }
            async with engine.begin() as conn:
                for sql in SEED:
                    await conn.execute(text(sql), params)
            async with engine.connect() as conn:
                await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(text("VACUUM ANALYZE"))
            print(f"seeded {args.subscriptions:,} subscriptions in {time.perf_counter() - started:.1f}s")
            if args.keep:
                print(f"kept: --existing {url}")
        async with engine.connect() as conn:
            subscriptions = (await conn.execute(text("SELECT count(*) FROM subscriptions"))).scalar_one()
        services = Services(engine, Settings(database_url=url), Clock(NOW_AT))
        timings = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            result = await ForecastService(services).forecast(
                "USD", TODAY, TODAY + timedelta(days=args.days - 1), MetricsInterval.DAY
            )
            timings.append(time.perf_counter() - started)
        baseline = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            async with engine.connect() as conn:
                await conn.execute(text(BASELINE), {"today": TODAY, "end": TODAY + timedelta(days=args.days - 1)})
            baseline.append(time.perf_counter() - started)
        charges = sum(p.subscriptions for p in result.points)
        total = sum(p.expected.minor for p in result.points)
        met = min(timings) < TARGET_S
        print(
            f"forecast of {args.days} days over {subscriptions:,} subscriptions: {charges:,} charges, "
            f"{total / 100:,.2f} USD expected (the domain priced {result.priced_by_domain}); "
            f"best of {args.repeat}: {min(timings):.2f} s (runs {min(timings):.2f}-{max(timings):.2f} s); "
            f"target under {TARGET_S:.0f} s: {'met' if met else 'NOT met'}; a bare GROUP BY of the subscriptions "
            f"renewing in the window: best {min(baseline):.2f} s (runs {min(baseline):.2f}-{max(baseline):.2f} s), "
            f"{min(timings) / min(baseline):.1f}x"
        )
        return 0 if met else 1
    finally:
        await engine.dispose()
        if scratch is not None and not args.keep:
            await scratch.drop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
