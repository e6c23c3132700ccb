"""The accountant's export without a database: formula escaping and the shape of a row."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
from sqlalchemy.dialects import postgresql

from rebill.domain.money import Money
from rebill.ids import to_global_id
from rebill.invoicing.export import COLUMNS, ExportRow, csv_fields, escape_formula, export_statement


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ('=HYPERLINK("x")', '\'=HYPERLINK("x")'),
        ("+33 1 23 45 67 89", "'+33 1 23 45 67 89"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("Ada Lovelace", "Ada Lovelace"),
        ("a=b", "a=b"),
        (" =1", " =1"),
        ("'quoted", "'quoted"),
        ("", ""),
        (None, ""),
    ],
)
def test_text_that_a_spreadsheet_would_run_gets_a_leading_quote(text, written):
    assert escape_formula(text) == written


def row(**changes) -> ExportRow:
    fields = {
        "number": "INV-2026-000001",
        "document_type": "INVOICE",
        "status": "PAID",
        "issue_date": date(2026, 1, 15),
        "customer_id": 7,
        "customer_name": "=cmd",
        "customer_email": "-ada@example.com",
        "tax_id": "+FR123",
        "country": "@FR",
        "net": Money(-12550, "USD"),
        "tax_rate": "0",
        "tax": Money(-50, "USD"),
        "paid_at": datetime(2026, 1, 15, 23, 30, tzinfo=UTC),
        **changes,
    }
    return ExportRow(**fields)


def test_a_row_has_every_column_in_order_with_amounts_in_major_units_and_text_escaped():
    cells = csv_fields(row())
    assert len(cells) == len(COLUMNS) == 15
    assert dict(zip(COLUMNS, cells, strict=True)) == {
        "number": "INV-2026-000001",
        "type": "INVOICE",
        "status": "PAID",
        "issue_date": "2026-01-15",
        "customer_id": to_global_id("Customer", 7),
        "customer_name": "'=cmd",
        "customer_email": "'-ada@example.com",
        "tax_id": "'+FR123",
        "country": "'@FR",
        "net": "-125.50",  # a number written here: negative, never escaped
        "tax_rate": "0",
        "tax": "-0.50",
        "total": "-126.00",
        "currency": "USD",
        "paid_at": "2026-01-15",
    }


def test_missing_text_is_an_empty_cell_and_amounts_follow_the_currency_exponent():
    cells = dict(
        zip(
            COLUMNS,
            csv_fields(
                row(
                    customer_name=None,
                    tax_id=None,
                    country=None,
                    paid_at=None,
                    net=Money(1500, "JPY"),
                    tax=Money(0, "JPY"),
                )
            ),
            strict=True,
        )
    )
    assert (cells["customer_name"], cells["tax_id"], cells["country"], cells["paid_at"]) == ("", "", "", "")
    assert (cells["net"], cells["tax"], cells["total"], cells["currency"]) == ("1500", "0", "1500", "JPY")


def test_the_payment_date_is_the_sellers():
    paid_late = row(paid_at=datetime(2026, 1, 15, 23, 30, tzinfo=UTC))
    assert csv_fields(paid_late, "Europe/Paris")[COLUMNS.index("paid_at")] == "2026-01-16"


def test_the_export_never_reads_drafts_and_orders_by_issue_date_invoices_first_then_number():
    sql = str(export_statement(date(2026, 1, 1), date(2026, 1, 31)).compile(dialect=postgresql.dialect()))
    assert "invoices.status IN" in sql
    assert "FROM credit_notes LEFT OUTER JOIN credit_note_lines" in sql
    order = sql.rstrip().rpartition("ORDER BY ")[2]
    assert re.fullmatch(
        r"documents\.issue_date, documents\.document_type = \S+, documents\.number, documents\.tax_rate", order
    ), order
