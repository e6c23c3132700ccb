"""Invoice arithmetic: lines, discounts, credit and credit notes always add up to the minor unit."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rebill.domain import invoice
from rebill.domain.errors import ValidationError
from rebill.domain.invoice import DocLine, Document, DocumentType, InvoicingTerms, LineKind
from rebill.domain.money import Money
from rebill.domain.pricing import Discount, Line, bill
from rebill.domain.tax import TaxRate

START, END = date(2026, 1, 15), date(2026, 2, 15)


def usd(minor: int) -> Money:
    return Money(minor, "USD")


items_strategy = st.lists(st.tuples(st.integers(0, 5_000_000), st.integers(0, 500)), min_size=1, max_size=6)
discounts_strategy = st.lists(
    st.one_of(
        st.decimals(min_value=Decimal("0.01"), max_value=Decimal(100), places=2).map(lambda p: ("pct", p)),
        st.integers(1, 10_000_000).map(lambda a: ("amt", a)),
    ),
    max_size=3,
)


def _lines_and_discounts(items, discounts):
    lines = [(f"Item {n}", n, Line(str(n), n, usd(price), quantity)) for n, (price, quantity) in enumerate(items)]
    coupons = [
        Discount(f"C{n}", percent=value) if kind == "pct" else Discount(f"C{n}", amount=usd(value))
        for n, (kind, value) in enumerate(discounts)
    ]
    return lines, coupons


@given(items_strategy, discounts_strategy)
def test_item_and_discount_lines_add_up_to_what_the_bill_charges(items, discounts):
    lines, coupons = _lines_and_discounts(items, discounts)
    doc_lines = invoice.bill_lines(lines, coupons, "USD", START, END)
    priced = bill([line for _, _, line in lines], coupons, "USD")
    document = Document("USD", doc_lines)
    assert document.subtotal == document.total == priced.total
    assert document.discount_total == priced.discount
    assert all(line.amount.is_negative for line in doc_lines if line.kind is LineKind.DISCOUNT)
    assert [line.kind for line in doc_lines].count(LineKind.ITEM) == len(items)


@given(items_strategy, discounts_strategy, st.integers(0, 10_000_000))
def test_a_charge_is_its_lines_less_the_credit_the_customer_had(items, discounts, credit):
    lines, coupons = _lines_and_discounts(items, discounts)
    doc_lines = invoice.bill_lines(lines, coupons, "USD", START, END)
    total = Document("USD", doc_lines).total
    charged = usd(max(total.minor - credit, 0))
    document = invoice.for_charge(doc_lines, charged, START, END)
    assert document.credit + document.charge_amount == document.total
    assert document.charge_amount == charged
    assert document.amount_due == charged
    assert not document.credit.is_negative


def test_a_charge_its_lines_do_not_explain_is_refused():
    with pytest.raises(ValidationError) as caught:
        invoice.for_charge([DocLine(LineKind.ITEM, "Coffee", usd(1000))], usd(1001), START, END)
    assert caught.value.code == "INVOICE_MISMATCH"


charging_lines = st.lists(
    st.tuples(
        st.sampled_from([LineKind.ITEM, LineKind.SHIPPING, LineKind.PRORATION, LineKind.DISCOUNT]),
        st.integers(1, 2_000_000),
        st.integers(0, 400_000),
    ),
    min_size=1,
    max_size=8,
)


@given(charging_lines, st.data())
def test_a_credit_note_is_split_over_the_lines_and_adds_up_exactly(raw, data):
    lines = [
        DocLine(
            kind,
            f"line {n}",
            usd(-amount if kind is LineKind.DISCOUNT else amount),
            tax_amount=usd(0 if kind is LineKind.DISCOUNT else tax),
        )
        for n, (kind, amount, tax) in enumerate(raw)
    ]
    total = Document("USD", tuple(lines)).total
    if not total.is_positive:
        return
    credited = usd(data.draw(st.integers(0, total.minor - 1)))
    amount = usd(data.draw(st.integers(1, total.minor - credited.minor)))
    split = invoice.credit_split(lines, amount, credited=credited, total=total)
    assert sum(line.amount.minor + line.tax.minor for line in split) == amount.minor
    assert all(not line.amount.is_negative and not line.tax.is_negative for line in split)
    assert all(line.kind is not LineKind.DISCOUNT for line in split)


def test_a_partial_credit_puts_the_remainder_on_the_largest_line():
    lines = [DocLine(LineKind.ITEM, "A", usd(100)), DocLine(LineKind.ITEM, "B", usd(200))]
    split = invoice.credit_split(lines, usd(100), credited=usd(0), total=usd(300))
    assert [(line.description, line.amount.minor) for line in split] == [("A", 33), ("B", 67)]


@pytest.mark.parametrize(
    ("credited", "amount"),
    [(0, 301), (250, 51), (300, 1)],
)
def test_a_credit_beyond_the_invoice_is_refused(credited, amount):
    lines = [DocLine(LineKind.ITEM, "A", usd(300))]
    with pytest.raises(ValidationError) as caught:
        invoice.credit_split(lines, usd(amount), credited=usd(credited), total=usd(300))
    assert caught.value.code == "CREDIT_EXCEEDS_INVOICE"


@pytest.mark.parametrize(
    ("counter", "number"),
    [(1, "INV-2027-000001"), (999_999, "INV-2027-999999"), (1_000_000, "INV-2027-1000000")],
)
def test_numbers_are_prefix_year_and_a_counter_of_six_digits_at_least(counter, number):
    assert invoice.number_of("INV-", 2027, counter) == number


@pytest.mark.parametrize(
    ("current", "to", "allowed"),
    [
        ("DRAFT", "OPEN", True),
        ("OPEN", "PAID", True),
        ("OPEN", "VOID", True),
        ("OPEN", "UNCOLLECTIBLE", True),
        ("UNCOLLECTIBLE", "PAID", True),
        ("UNCOLLECTIBLE", "VOID", True),
        ("PAID", "VOID", False),
        ("VOID", "PAID", False),
        ("PAID", "OPEN", False),
        ("DRAFT", "PAID", False),
    ],
)
def test_status_moves_follow_the_invoice_lifecycle(current, to, allowed):
    assert invoice.can_move(invoice.InvoiceStatus(current), invoice.InvoiceStatus(to)) is allowed


@given(
    st.one_of(st.none(), st.text(max_size=200)),
    st.one_of(st.none(), st.text(max_size=50)),
    st.one_of(st.none(), st.integers(0, 365)),
)
def test_invoicing_settings_survive_their_stored_form(purchase_order, memo, terms):
    changed = invoice.change_terms(InvoicingTerms(), purchase_order=purchase_order, memo=memo, payment_terms_days=terms)
    assert invoice.terms_of(changed.to_json()) == changed
    assert changed.document_type is DocumentType.INVOICE


tax_rates = st.one_of(
    st.none(),
    st.builds(
        TaxRate,
        st.none(),
        st.just("VAT"),
        st.decimals(min_value=Decimal(0), max_value=Decimal(30), places=2),
        st.booleans(),
    ),
)
any_lines = st.lists(
    st.builds(
        lambda kind, minor, tax, rate: DocLine(
            kind,
            kind.value,
            usd(-minor if kind is LineKind.DISCOUNT else minor),
            tax_amount=usd(tax) if tax is not None else None,
            tax_rate=rate,
        ),
        st.sampled_from(list(LineKind)),
        st.integers(0, 10_000_000),
        st.one_of(st.none(), st.integers(0, 1_000_000)),
        tax_rates,
    ),
    max_size=8,
)


@given(any_lines, st.one_of(st.none(), st.integers(0, 1_000_000)))
def test_the_stored_totals_are_the_documents_own(lines, credit):
    document = Document("USD", tuple(lines), credit_applied=usd(credit) if credit is not None else None)
    sums = document.sums()
    assert sums.subtotal == document.subtotal.minor
    assert sums.discount == document.discount_total.minor
    assert sums.shipping == document.shipping_total.minor
    assert sums.tax == document.tax_total.minor
    assert sums.total == document.total.minor
    assert sums.credit == document.credit.minor
