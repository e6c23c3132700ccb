"""The document renderers, without a database: what the PDF's text and the page say about a stored invoice."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import pytest

from rebill.documents.page import render_html
from rebill.documents.pdf import needs_fallback, render_pdf
from rebill.documents.view import credit_note_view, invoice_view
from tests.pdftext import pdf_text


def stored_invoice(**changes: Any) -> dict[str, Any]:
    """An ``invoices`` row as finalization writes it: a coupon, shipping, and a credit applied."""
    return {
        "number": "INV-2027-000042",
        "document_type": "INVOICE",
        "status": "VOID",
        "currency": "EUR",
        "issue_date": date(2027, 3, 1),
        "due_date": date(2027, 3, 31),
        "period_start": date(2027, 3, 1),
        "period_end": date(2027, 4, 1),
        "subtotal_minor": 9499,
        "discount_minor": 1000,
        "shipping_minor": 500,
        "tax_minor": 0,
        "total_minor": 9499,
        "credit_applied_minor": 499,
        "amount_paid_minor": 0,
        "purchase_order": "PO-7781",
        "memo": "Deliver to <the back door>",
        "customer_name": "Ελένη Παπαδοπούλου 山田",
        "customer_email": "eleni@example.com",
        "billing_address": {"line1": "Odos 1", "city": "Athina", "postalCode": "105 57", "country": "GR"},
        "customer_tax_id": "EL123456789",
        "seller": {"name": "Acme Roasters GmbH", "bankDetails": {"IBAN": "DE02 1203 0000 0000 2020 51"}},
        **changes,
    }


LINES = [
    {
        "description": "Coffee beans",
        "period_start": date(2027, 3, 1),
        "period_end": date(2027, 4, 1),
        "quantity": 3,
        "unit_price_minor": 3333,
        "amount_minor": 9999,
    },
    {
        "description": "Coupon TENOFF",
        "period_start": None,
        "period_end": None,
        "quantity": None,
        "unit_price_minor": None,
        "amount_minor": -1000,
    },
    {
        "description": "Shipping",
        "period_start": None,
        "period_end": None,
        "quantity": None,
        "unit_price_minor": None,
        "amount_minor": 500,
    },
]


def test_the_pdf_text_reads_back_every_part_of_the_invoice():
    view = invoice_view(stored_invoice(), LINES)
    printed = pdf_text(render_pdf(view, created_at=datetime(2027, 3, 1, tzinfo=UTC)))
    assert printed.lstrip().startswith("Invoice"), printed[:200]
    for words in ["VOID", "Ελένη Παπαδοπούλου 山田", "Acme Roasters GmbH", "IBAN: DE02 1203 0000 0000 2020 51"]:
        assert words in printed, words
    for pattern in [
        r"Number\s+INV-2027-000042",
        r"Issue date\s+2027-03-01",
        r"Due date\s+2027-03-31",
        r"Period\s+2027-03-01 to 2027-04-01",
        r"Purchase order\s+PO-7781",
        r"Status\s+Void",
        r"Coffee beans\s+2027-03-01 to 2027-04-01\s+3\s+33\.33\s+99\.99",
        r"Coupon TENOFF\s+-10\.00",
        r"Shipping\s+5\.00",
        r"Subtotal\s+94\.99",
        r"Includes discounts\s+-10\.00",
        r"Includes shipping\s+5\.00",
        r"Credit applied\s+4\.99",
        r"Amount due \(EUR\)\s+0\.00",  # forgiven: a void invoice asks nothing
        r"Deliver to <the back door>",
        r"Athina, 105 57",
    ]:
        assert re.search(pattern, printed), pattern


def test_the_page_says_the_same_and_escapes_what_customers_typed():
    view = invoice_view(stored_invoice(status="PAID"), LINES)
    page = render_html(view, pdf_href="./abc.pdf", nonce="n0nce")
    assert '<style nonce="n0nce">' in page
    assert "Deliver to &lt;the back door&gt;" in page and "<the back door>" not in page
    assert '<div class="stamp stamp-PAID" role="status">PAID</div>' in page
    assert '<a href="./abc.pdf" download="INV-2027-000042.pdf">Download PDF</a>' in page
    assert "<dt>Purchase order</dt><dd>PO-7781</dd>" in page
    assert '<th scope="row">Amount due (EUR)</th><td class="num">90.00</td>' in page


@pytest.mark.parametrize(
    ("changes", "title", "number", "stem"),
    [
        ({"status": "DRAFT", "number": None, "issue_date": None}, "Invoice", "Draft", "draft"),
        ({"document_type": "PRO_FORMA", "number": "PF/2027-000001"}, "Pro forma", "PF/2027-000001", "PF-2027-000001"),
    ],
)
def test_a_draft_has_no_number_and_a_pro_forma_says_what_it_is(changes, title, number, stem):
    view = invoice_view(stored_invoice(**changes), LINES)
    assert (view.title, view.number, view.file_stem) == (title, number, stem)
    assert ("Issue date" in dict(view.facts)) is (changes.get("issue_date", True) is not None)


def test_only_text_beyond_dejavu_loads_the_cjk_fallback_font():
    assert not needs_fallback("Łukasz Żółć, Ελένη, Дмитрий, Hauptstraße")
    assert needs_fallback("東京") and needs_fallback("山田")


def test_a_credit_note_to_the_balance_says_so_and_prints_only_the_facts_it_has():
    stored_at_issue = ("currency", "issue_date", "customer_name", "customer_email", "billing_address", "seller")
    note = {
        **{key: stored_invoice()[key] for key in (*stored_at_issue, "customer_tax_id")},
        "number": "CN/2027-000003",
        "reason": None,
        "refunded": False,
        "subtotal_minor": 1000,
        "tax_minor": 0,
        "total_minor": 1000,
    }
    view = credit_note_view(note, LINES[:1], invoice_number="INV-2027-000042")
    assert (view.title, view.stamp, view.file_stem) == ("Credit note", None, "CN-2027-000003")
    assert dict(view.facts) == {
        "Number": "CN/2027-000003",
        "Issue date": "2027-03-01",
        "Credits invoice": "INV-2027-000042",
        "Settlement": "Credit to customer balance",
        "Currency": "EUR",
    }
    assert view.totals[-1].amount == "10.00" and view.totals[-1].strong
