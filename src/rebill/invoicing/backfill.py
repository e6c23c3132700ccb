"""Invoices for renewals recorded without one, credit notes for refunds and credit balances recorded without
one: data from before invoicing, imports and seeds.

One set-based statement, so a database of millions of renewals is documented
in minutes: every renewal that charges (amount of zero or more) and has no
invoice gets one, numbered in the order its money came in (paid, else
recorded), in the series of its year of issue, after the numbers already
given. Its status is what its renewal says, as ``invoicing.follow`` derives
it; its one line is the renewal's period and amount (the items it billed
were not recorded then). The same statement serves the migration that
introduced invoices, ``rebill seed`` and the tests that write renewals with
SQL.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text

from rebill.invoicing.follow import status_of_renewal

#: ``{prefix}{year}-{counter}`` in SQL, as ``domain.invoice.number_of`` writes it (six digits at least).
_NUMBER = (
    ":prefix || n.year || '-' || CASE WHEN n.base + n.n < 1000000 "
    "THEN lpad((n.base + n.n)::text, 6, '0') ELSE (n.base + n.n)::text END"
)


def _numbered(order: str) -> str:
    """The CTEs that number ``todo``'s documents (an ``issue_date`` each) in their year's series, in ``order``:
    each year's counter is moved on by its count at once, and ``n`` counts from just after where it stood."""
    return f"""years AS (
    SELECT extract(year FROM issue_date)::int AS year, count(*) AS how_many FROM todo GROUP BY 1
),
counters AS (
    INSERT INTO document_counters (prefix, year, last_number)
    SELECT :prefix, year, how_many FROM years
    ON CONFLICT (prefix, year) DO UPDATE SET last_number = document_counters.last_number + EXCLUDED.last_number
    RETURNING year, last_number
),
numbered AS (
    SELECT t.*, y.year, c.last_number - y.how_many AS base,
           row_number() OVER (PARTITION BY y.year ORDER BY {order}) AS n
    FROM todo t
    JOIN years y ON y.year = extract(year FROM t.issue_date)::int
    JOIN counters c ON c.year = y.year
),"""


BACKFILL = text(
    f"""
WITH todo AS MATERIALIZED (
    SELECT r.id, r.subscription_id, r.status, r.amount_minor, r.currency, r.period_start, r.period_end,
           r.paid_at, r.next_retry_date, r.created_at, s.customer_id, s.status AS sub_status, s.invoicing,
           coalesce(r.paid_at, r.created_at) AS issued_at,
           (coalesce(r.paid_at, r.created_at) AT TIME ZONE :tz)::date AS issue_date
    FROM renewals r
    JOIN subscriptions s ON s.id = r.subscription_id
    WHERE r.amount_minor >= 0
      AND NOT EXISTS (SELECT 1 FROM invoices i WHERE i.renewal_id = r.id)
),
{_numbered("t.issued_at, t.id")}
issued AS (
    INSERT INTO invoices (
        number, document_type, status, subscription_id, customer_id, renewal_id, currency,
        issue_date, due_date, period_start, period_end,
        subtotal_minor, discount_minor, shipping_minor, tax_minor, total_minor, credit_applied_minor,
        amount_paid_minor, credited_minor, purchase_order, memo,
        customer_name, customer_email, billing_address, customer_tax_id, seller,
        created_at, finalized_at, paid_at, voided_at, void_reason, updated_at
    )
    SELECT {_NUMBER}, 'INVOICE',
           {status_of_renewal("n.status", "n.next_retry_date", "n.sub_status")},
           n.subscription_id, n.customer_id, n.id, n.currency,
           n.issue_date, n.issue_date + coalesce((n.invoicing ->> 'paymentTermsDays')::int, :terms),
           n.period_start, n.period_end,
           n.amount_minor, 0, 0, 0, n.amount_minor, 0,
           CASE WHEN n.status IN ('PAID', 'REFUNDED', 'PARTIALLY_REFUNDED') THEN n.amount_minor ELSE 0 END,
           0, n.invoicing ->> 'purchaseOrder', n.invoicing ->> 'memo',
           c.name, c.email, c.billing_address, c.tax_id, CAST(:seller AS jsonb),
           n.issued_at, n.issued_at,
           CASE WHEN n.status IN ('PAID', 'REFUNDED', 'PARTIALLY_REFUNDED') THEN n.paid_at END,
           CASE WHEN n.status = 'VOID' THEN n.issued_at END,
           CASE WHEN n.status = 'VOID' THEN 'the charge was never sent to the gateway: nothing was collected' END,
           n.issued_at
    FROM numbered n
    JOIN customers c ON c.id = n.customer_id
    RETURNING id, period_start, period_end, total_minor
),
lines AS (
    INSERT INTO invoice_lines (invoice_id, position, kind, description, amount_minor, period_start, period_end)
    SELECT id, 0, 'ITEM', 'Subscription ' || period_start || ' to ' || period_end, total_minor,
           period_start, period_end
    FROM issued
    RETURNING 1
)
SELECT (SELECT count(*) FROM issued) AS invoices, (SELECT count(*) FROM lines) AS lines
"""
)


#: Every refund that went through a gateway before credit notes existed gets its credit note (refunded),
#: against its renewal's invoice, numbered in the order the refunds were made.
BACKFILL_REFUNDS = text(
    f"""
WITH todo AS MATERIALIZED (
    SELECT t.id AS transaction_id, t.amount_minor, t.created_at, i.id AS invoice_id, i.subscription_id,
           i.customer_id, i.currency, i.customer_name, i.customer_email, i.billing_address, i.customer_tax_id,
           (t.created_at AT TIME ZONE :tz)::date AS issue_date
    FROM transactions t
    JOIN invoices i ON i.renewal_id = t.renewal_id AND i.document_type = 'INVOICE'
    WHERE t.kind = 'REFUND' AND t.status = 'SUCCEEDED' AND t.amount_minor > 0
      AND NOT EXISTS (SELECT 1 FROM credit_notes c WHERE c.transaction_id = t.id)
),
{_numbered("t.created_at, t.transaction_id")}
notes AS (
    INSERT INTO credit_notes (
        number, invoice_id, subscription_id, customer_id, currency, issue_date, subtotal_minor, tax_minor,
        total_minor, reason, refunded, transaction_id, customer_name, customer_email, billing_address,
        customer_tax_id, seller, created_at
    )
    SELECT {_NUMBER}, n.invoice_id, n.subscription_id, n.customer_id, n.currency, n.issue_date,
           n.amount_minor, 0, n.amount_minor, 'refund', true, n.transaction_id, n.customer_name,
           n.customer_email, n.billing_address, n.customer_tax_id, CAST(:seller AS jsonb), n.created_at
    FROM numbered n
    RETURNING id, invoice_id, total_minor
),
lines AS (
    INSERT INTO credit_note_lines (credit_note_id, position, kind, description, amount_minor)
    SELECT id, 0, 'ITEM', 'Refund', total_minor FROM notes
    RETURNING 1
),
credited AS (
    UPDATE invoices i SET credited_minor = i.credited_minor + s.total
    FROM (SELECT invoice_id, sum(total_minor) AS total FROM notes GROUP BY invoice_id) s
    WHERE i.id = s.invoice_id
    RETURNING 1
)
SELECT (SELECT count(*) FROM notes) AS notes, (SELECT count(*) FROM lines) AS lines,
       (SELECT count(*) FROM credited) AS invoices
"""
)


#: A credit balance from before credit notes (proration credits) becomes one credit note to the balance, against
#: the subscription's newest paid invoice that can take it; a subscription that has one such note already is left.
BACKFILL_BALANCES = text(
    f"""
WITH todo AS MATERIALIZED (
    SELECT s.id AS subscription_id, s.credit_minor AS amount, i.id AS invoice_id, i.customer_id, i.currency,
           i.customer_name, i.customer_email, i.billing_address, i.customer_tax_id,
           (s.updated_at AT TIME ZONE :tz)::date AS issue_date, s.updated_at AS created_at
    FROM subscriptions s
    CROSS JOIN LATERAL (
        SELECT * FROM invoices i
        WHERE i.subscription_id = s.id AND i.document_type = 'INVOICE' AND i.status = 'PAID'
          AND i.currency = s.currency AND i.total_minor - i.credited_minor >= s.credit_minor
        ORDER BY i.id DESC LIMIT 1
    ) i
    WHERE s.credit_minor > 0
      AND NOT EXISTS (SELECT 1 FROM credit_notes c WHERE c.subscription_id = s.id AND NOT c.refunded)
),
{_numbered("t.created_at, t.subscription_id")}
notes AS (
    INSERT INTO credit_notes (
        number, invoice_id, subscription_id, customer_id, currency, issue_date, subtotal_minor, tax_minor,
        total_minor, reason, refunded, customer_name, customer_email, billing_address, customer_tax_id, seller,
        created_at
    )
    SELECT {_NUMBER}, n.invoice_id, n.subscription_id, n.customer_id, n.currency, n.issue_date, n.amount, 0,
           n.amount, 'credit balance from before credit notes', false, n.customer_name, n.customer_email,
           n.billing_address, n.customer_tax_id, CAST(:seller AS jsonb), n.created_at
    FROM numbered n
    RETURNING id, invoice_id, total_minor
),
lines AS (
    INSERT INTO credit_note_lines (credit_note_id, position, kind, description, amount_minor)
    SELECT id, 0, 'PRORATION', 'Credit to the balance', total_minor FROM notes
    RETURNING 1
),
credited AS (
    UPDATE invoices i SET credited_minor = i.credited_minor + s.total
    FROM (SELECT invoice_id, sum(total_minor) AS total FROM notes GROUP BY invoice_id) s
    WHERE i.id = s.invoice_id
    RETURNING 1
)
SELECT (SELECT count(*) FROM notes) AS notes, (SELECT count(*) FROM lines) AS lines,
       (SELECT count(*) FROM credited) AS invoices
"""
)


def backfill_params(prefix: str, time_zone: str, payment_terms_days: int, seller: dict[str, Any]) -> dict[str, Any]:
    return {"prefix": prefix, "tz": time_zone, "terms": payment_terms_days, "seller": json.dumps(seller)}


async def backfill_invoices(conn: Any, settings: Any) -> int:
    """Invoice every renewal that has none, and credit note every refund and credit balance that has none, in
    ``conn``'s transaction; how many invoices were issued."""
    params = backfill_params(
        settings.invoice_prefix, settings.seller_time_zone, settings.payment_terms_days, dict(settings.seller)
    )
    row = (await conn.execute(BACKFILL, params)).one()
    credits = refund_params(settings)
    await conn.execute(BACKFILL_REFUNDS, credits)
    await conn.execute(BACKFILL_BALANCES, credits)
    return int(row.invoices)


def refund_params(settings: Any) -> dict[str, Any]:
    """The parameters of the credit note statements (refunds and balances)."""
    return {
        "prefix": settings.credit_note_prefix,
        "tz": settings.seller_time_zone,
        "seller": json.dumps(dict(settings.seller)),
    }
