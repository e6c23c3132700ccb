"""The migrations that document what was recorded before invoicing existed: invoices (0011), credit notes (0015)."""

from __future__ import annotations

import os

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from rebill.db.migrate import upgrade
from rebill.db.scratch import ScratchDatabase
from tests.ledger import assert_ledger_ok

# A database as 0010 left it: a paid renewal, one in dunning, a voided one, a cancelled subscription's
# declined one, a credit (a negative proration), all recorded before invoices were issued.
OLD_DATA = [
    "INSERT INTO subscription_profiles (name, interval_unit, interval_count) VALUES ('Monthly', 'MONTH', 1)",
    "INSERT INTO customers (email, name) VALUES ('ada@example.com', 'Ada'), ('bob@example.com', '=Bob')",
    """INSERT INTO subscriptions (customer_id, profile_id, currency, status, renewal_type, start_date, anchor_date,
           next_renewal_date, overdue_count, amount_minor, credit_minor, updated_at)
       VALUES (1, 1, 'USD', 'OVERDUE', 'AUTOMATIC', '2025-11-03', '2025-11-03', '2026-02-03', 1, 1500, 200,
               '2026-01-05 10:00+00'),
              (2, 1, 'EUR', 'CANCELLED', 'AUTOMATIC', '2025-12-20', '2025-12-20', NULL, 0, 990, 0,
               '2026-01-20 10:00+00')""",
    """INSERT INTO renewals (subscription_id, cycle, kind, status, period_start, period_end, amount_minor, currency,
           attempts, idempotency_key, paid_at, created_at, next_retry_date, adjustment)
       VALUES (1, 1, 'INITIAL', 'PAID', '2025-11-03', '2025-12-03', 1500, 'USD', 1, 'a1',
               '2025-11-03 10:00+00', '2025-11-03 10:00+00', NULL, false),
              (1, 2, 'SCHEDULED', 'REFUNDED', '2025-12-03', '2026-01-03', 1500, 'USD', 1, 'a2',
               '2025-12-03 10:00+00', '2025-12-03 10:00+00', NULL, false),
              (1, 3, 'SCHEDULED', 'FAILED', '2026-01-03', '2026-02-03', 1500, 'USD', 1, 'a3',
               NULL, '2026-01-03 10:00+00', '2026-01-08', false),
              (1, 3, 'MANUAL', 'PAID', '2026-01-05', '2026-02-03', -200, 'USD', 0, 'credit_1_v4',
               '2026-01-05 10:00+00', '2026-01-05 10:00+00', NULL, true),
              (2, 1, 'INITIAL', 'PAID', '2025-12-20', '2026-01-20', 990, 'EUR', 1, 'b1',
               '2025-12-31 23:30+00', '2025-12-31 23:30+00', NULL, false),
              (2, 2, 'SCHEDULED', 'FAILED', '2026-01-20', '2026-02-20', 990, 'EUR', 3, 'b2',
               NULL, '2026-01-20 10:00+00', NULL, false),
              (2, 2, 'SCHEDULED', 'VOID', '2026-01-20', '2026-02-20', 990, 'EUR', 1, 'b2:void9',
               NULL, '2026-01-19 10:00+00', NULL, false)""",
    """INSERT INTO transactions (renewal_id, subscription_id, kind, gateway_id, amount_minor, currency, status,
           created_at)
       VALUES (2, 1, 'REFUND', 'sandbox', 500, 'USD', 'SUCCEEDED', '2025-12-10 10:00+00'),
              (2, 1, 'REFUND', 'sandbox', 1000, 'USD', 'SUCCEEDED', '2026-01-02 10:00+00'),
              (2, 1, 'REFUND', 'sandbox', 300, 'USD', 'FAILED', '2026-01-03 10:00+00')""",
]


async def test_charges_recorded_before_invoicing_get_their_invoices_numbered_in_order_of_payment():
    scratch = ScratchDatabase("rebill_backfill", os.environ.get("REBILL_TEST_DATABASE_URL"))
    await scratch.create(migrate=False)
    engine = create_async_engine(scratch.url)
    try:
        await upgrade(engine, "0010")
        async with engine.begin() as conn:
            for sql in OLD_DATA:
                await conn.execute(text(sql))
        await upgrade(engine)
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT r.idempotency_key, i.number, i.status, i.total_minor, i.amount_paid_minor, "
                        "i.customer_name, i.issue_date::text AS issued FROM invoices i "
                        "JOIN renewals r ON r.id = i.renewal_id ORDER BY i.number"
                    )
                )
            ).all()
            lines = (await conn.execute(text("SELECT count(*) FROM invoice_lines"))).scalar()
        assert [tuple(r) for r in rows] == [
            ("a1", "INV-2025-000001", "PAID", 1500, 1500, "Ada", "2025-11-03"),
            ("a2", "INV-2025-000002", "PAID", 1500, 1500, "Ada", "2025-12-03"),
            ("b1", "INV-2025-000003", "PAID", 990, 990, "=Bob", "2025-12-31"),
            ("a3", "INV-2026-000001", "OPEN", 1500, 0, "Ada", "2026-01-03"),
            ("b2:void9", "INV-2026-000002", "VOID", 990, 0, "=Bob", "2026-01-19"),
            ("b2", "INV-2026-000003", "UNCOLLECTIBLE", 990, 0, "=Bob", "2026-01-20"),
        ], "paid in order of payment, in the year of issue; the credit has none"
        assert lines == 6
        async with engine.connect() as conn:
            notes = (
                await conn.execute(
                    text(
                        "SELECT c.number, c.total_minor, c.refunded, i.number AS invoice, i.credited_minor "
                        "FROM credit_notes c JOIN invoices i ON i.id = c.invoice_id ORDER BY c.number"
                    )
                )
            ).all()
        assert [tuple(n) for n in notes] == [
            ("CN-2025-000001", 500, True, "INV-2025-000002", 1500),
            ("CN-2026-000001", 1000, True, "INV-2025-000002", 1500),
            ("CN-2026-000002", 200, False, "INV-2025-000001", 200),
        ], "each refund made through a gateway is a credit note; the credit balance one to the balance"
        audit = await assert_ledger_ok(engine)
        assert audit.renewals == 7
    finally:
        await engine.dispose()
        await scratch.drop()
