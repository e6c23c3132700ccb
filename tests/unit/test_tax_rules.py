"""Tax and shipping on a document: lines, the per-rate summary and the totals always add up (DOMAIN.md "Tax and shipping")."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rebill.domain import invoice, tax
from rebill.domain.errors import ValidationError
from rebill.domain.invoice import Document, LineKind
from rebill.domain.money import Money, round_fraction
from rebill.domain.pricing import Discount, Line, bill
from rebill.domain.tax import TaxRate


def usd(minor: int) -> Money:
    return Money(minor, "USD")


items = st.lists(st.tuples(st.integers(1, 500_000), st.integers(1, 50)), min_size=1, max_size=5)
coupons = st.lists(
    st.one_of(
        st.decimals(Decimal("0.01"), Decimal(100), places=2).map(lambda p: ("pct", p)),
        st.integers(1, 2_000_000).map(lambda a: ("amt", a)),
    ),
    max_size=3,
)
rates = st.one_of(
    st.none(),
    st.builds(
        lambda pct, inclusive: TaxRate(7, "Tax", pct, inclusive),
        st.decimals(Decimal(0), Decimal(100), places=4),
        st.booleans(),
    ),
    st.just(tax.exempt("Reverse charge")),
)


@given(items, coupons, st.one_of(st.none(), st.integers(0, 100_000)), rates)
def test_lines_shipping_tax_and_totals_add_up_for_any_mix(raw_items, raw_coupons, shipping, rate):
    lines = [Line(f"i{n}", n, usd(price), quantity) for n, (price, quantity) in enumerate(raw_items)]
    discounts = [
        Discount(f"c{n}", value if kind == "pct" else None, usd(value) if kind == "amt" else None)
        for n, (kind, value) in enumerate(raw_coupons)
    ]
    priced = bill(lines, discounts, "USD")
    doc_lines = invoice.bill_lines([(line.key, line.product_id, line) for line in lines], discounts, "USD", None, None)
    if shipping:
        doc_lines = (*doc_lines, invoice.shipping_line("Standard", usd(shipping), None, None))
    taxed = invoice.taxed(doc_lines, rate)
    document = Document("USD", taxed)

    assert document.subtotal.minor == priced.total.minor + (shipping or 0)
    assert document.shipping_total.minor == (shipping or 0)
    assert document.discount_total == priced.discount
    assert invoice.total_of(taxed, "USD") == document.total
    added = sum(line.tax.minor for line in taxed if rate is None or not rate.inclusive)
    assert document.total.minor == document.subtotal.minor + added
    summaries = document.taxes
    assert sum(s.amount.minor for s in summaries) == document.tax_total.minor
    if rate is None:
        assert summaries == () and document.tax_total.is_zero
        return
    [summary] = summaries
    net = document.subtotal.minor - (document.tax_total.minor if rate.inclusive else 0)
    assert summary.taxable.minor == net
    share = Fraction(rate.percentage) / (100 + Fraction(rate.percentage) if rate.inclusive else 100)
    for line in taxed:
        base = 0 if line.kind is LineKind.DISCOUNT else line.taxable_base.minor
        assert line.tax.minor == round_fraction(base * share), "each line is taxed on what it bills after coupons"
    if rate.exempt_reason is not None:
        assert document.tax_total.is_zero and summary.rate.exempt_reason == "Reverse charge"
    if document.total.is_positive:
        split = invoice.credit_split(taxed, document.total, credited=usd(0), total=document.total)
        assert sum(line.amount.minor + line.exclusive_tax for line in split) == document.total.minor


def test_an_item_is_taxed_after_its_coupon_and_the_discount_line_carries_no_tax():
    lines = [Line("a", 1, usd(6296), 2)]
    doc_lines = invoice.bill_lines([("Coffee", 1, lines[0])], [Discount("TEN", Decimal(10), None)], "USD", None, None)
    taxed = invoice.taxed(doc_lines, TaxRate(1, "CA", Decimal("8.875")))
    assert [(line.kind, line.amount.minor, line.tax.minor) for line in taxed] == [
        (LineKind.ITEM, 12592, 1006),
        (LineKind.DISCOUNT, -1259, 0),
    ]


@pytest.mark.parametrize(
    ("billing", "shipping", "expected"),
    [
        ({"country": "US", "region": "CA"}, None, "US-CA"),
        ({"country": "us", "region": "us-ca"}, None, "US-CA"),
        ({"country": "US", "region": "NY"}, None, "US"),
        ({"country": "US"}, None, "US"),
        (None, {"country": "US", "region": "CA"}, "US-CA"),
        ({"country": "DE"}, {"country": "US", "region": "CA"}, None),
        (None, None, None),
        ({"country": "USA"}, None, None),
    ],
)
def test_the_region_rate_wins_over_the_country_and_the_billing_address_over_shipping(billing, shipping, expected):
    rates = [
        TaxRate(1, "US", Decimal(5), country="US"),
        TaxRate(2, "CA", Decimal("7.25"), country="US", region="US-CA"),
    ]
    found = tax.rate_for(billing, shipping, rates)
    assert (None if found is None else (found.region or found.country)) == expected


@pytest.mark.parametrize("text", ["", "abc", "1e2", "-1", "100.00001", "101", "20.12345", " "])
def test_a_percentage_is_a_plain_decimal_from_0_to_100(text):
    with pytest.raises(ValidationError):
        tax.parse_percentage(text)


def test_percentages_are_shown_as_given():
    assert [tax.percentage_text(tax.parse_percentage(t)) for t in ("20", "8.875", "0", "100", "7.50")] == [
        "20",
        "8.875",
        "0",
        "100",
        "7.5",
    ]
