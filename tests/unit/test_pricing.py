"""Bills: volume tiers from seed 002, coupons, and the order discounts apply in."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rebill.domain.errors import MoneyError, ValidationError
from rebill.domain.money import Money
from rebill.domain.pricing import (
    Bill,
    CouponDuration,
    Discount,
    Line,
    PriceTier,
    bill,
    coupon_active,
    tier_unit_price,
    validate_tiers,
)


def eur(amount: str) -> Money:
    return Money.parse(amount, "EUR")


def usd(amount: str) -> Money:
    return Money.parse(amount, "USD")


# Seed 002, "Make Renewal Quantity and Quantity-based Price Changes".
DESKTOP_LICENCES = (
    PriceTier(99, eur("30")),
    PriceTier(499, eur("25")),
    PriceTier(999, eur("20")),
    PriceTier(4999, eur("15")),
    PriceTier(None, eur("10")),
)

ACCESS, USERS = 1, 2


def crm(users: int = 10) -> list[Line]:
    """Seed 002's CRM subscription: Access $50 plus Users at $5 each."""
    return [
        Line("access", ACCESS, usd("50"), 1),
        Line("users", USERS, usd("5"), users),
    ]


# -- tiers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "unit_price", "total"),
    [
        (800, "20", "16000.00"),
        (1280, "15", "19200.00"),
        (0, "30", "0.00"),
        (1, "30", "30.00"),
        (99, "30", "2970.00"),
        (100, "25", "2500.00"),
        (499, "25", "12475.00"),
        (500, "20", "10000.00"),
        (999, "20", "19980.00"),
        (1000, "15", "15000.00"),
        (4999, "15", "74985.00"),
        (5000, "10", "50000.00"),
        (12000, "10", "120000.00"),
    ],
)
def test_the_whole_quantity_is_priced_at_the_tier_it_falls_into(quantity: int, unit_price: str, total: str) -> None:
    assert tier_unit_price(DESKTOP_LICENCES, quantity) == eur(unit_price)
    line = Line("licences", 7, eur("30"), quantity, DESKTOP_LICENCES)
    assert line.total == eur(total)


def test_renewing_800_of_1280_licences_bills_16000_euros() -> None:
    before = bill([Line("licences", 7, eur("30"), 1280, DESKTOP_LICENCES)], [], "EUR")
    after = bill([Line("licences", 7, eur("30"), 800, DESKTOP_LICENCES)], [], "EUR")
    assert before.total == eur("19200")
    assert after.total == eur("16000")


def test_an_empty_tier_table_is_valid_but_prices_nothing() -> None:
    validate_tiers([])
    with pytest.raises(ValidationError) as refused:
        tier_unit_price([], 3)
    assert refused.value.code == "INVALID_TIERS"


@pytest.mark.parametrize(
    "tiers",
    [
        [PriceTier(99, eur("30")), PriceTier(99, eur("25")), PriceTier(None, eur("20"))],
        [PriceTier(499, eur("30")), PriceTier(99, eur("25")), PriceTier(None, eur("20"))],
        [PriceTier(99, eur("30")), PriceTier(499, eur("25"))],
        [PriceTier(None, eur("30")), PriceTier(None, eur("25"))],
        [PriceTier(None, eur("30")), PriceTier(99, eur("25"))],
        [PriceTier(99, eur("30")), PriceTier(None, usd("25"))],
        [PriceTier(99, eur("30")), PriceTier(None, eur("-1"))],
    ],
    ids=["repeated", "decreasing", "bounded-last", "two-unbounded", "unbounded-first", "mixed", "neg"],
)
def test_a_tier_table_with_a_gap_overlap_or_odd_price_is_refused(tiers: list[PriceTier]) -> None:
    with pytest.raises(ValidationError) as refused:
        validate_tiers(tiers)
    assert refused.value.code == "INVALID_TIERS"


def test_a_single_unbounded_tier_is_a_flat_price() -> None:
    assert tier_unit_price([PriceTier(None, eur("9"))], 1_000_000) == eur("9")


def test_a_tier_bound_must_be_a_non_negative_integer() -> None:
    with pytest.raises(ValidationError):
        PriceTier(-1, eur("1"))


# -- lines ---------------------------------------------------------------------------


def test_seed_002_crm_bills_access_plus_ten_users_at_100_dollars() -> None:
    result = bill(crm(10), [], "USD")
    assert result.line_totals == {"access": usd("50"), "users": usd("50")}
    assert result.subtotal == result.total == usd("100")


def test_fifteen_users_raise_the_crm_bill_to_125_dollars() -> None:
    assert bill(crm(15), [], "USD").total == usd("125")


def test_a_zero_quantity_line_is_allowed_and_costs_nothing() -> None:
    assert Line("users", USERS, usd("5"), 0).total == usd("0")


@pytest.mark.parametrize("quantity", [-1, 1.5, True])
def test_a_negative_or_fractional_quantity_is_refused(quantity: object) -> None:
    with pytest.raises(ValidationError) as refused:
        Line("users", USERS, usd("5"), quantity)  # type: ignore[arg-type]
    assert refused.value.code == "INVALID_QUANTITY"


def test_a_negative_unit_price_is_refused_in_favour_of_a_coupon() -> None:
    with pytest.raises(ValidationError) as refused:
        Line("users", USERS, usd("-5"), 1)
    assert refused.value.code == "INVALID_PRICE"


def test_a_line_and_its_tiers_share_one_currency() -> None:
    with pytest.raises(MoneyError) as refused:
        Line("licences", 7, usd("30"), 10, DESKTOP_LICENCES)
    assert refused.value.code == "CURRENCY_MISMATCH"


# -- coupons -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("discount", "applied", "total"),
    [
        (Discount("TEN", percent=Decimal("10")), "10", "90"),
        (Discount("HALF", percent=Decimal("50")), "50", "50"),
        (Discount("FREE", percent=Decimal("100")), "100", "0"),
        (Discount("TWENTY", amount=usd("20")), "20", "80"),
        (Discount("HUGE", amount=usd("150")), "100", "0"),
        (Discount("USERS50", percent=Decimal("50"), product_ids=frozenset({USERS})), "25", "75"),
        (Discount("USERS100", amount=usd("100"), product_ids=frozenset({USERS})), "50", "50"),
        (Discount("OTHER", percent=Decimal("50"), product_ids=frozenset({99})), "0", "100"),
        (Discount("BOTH", amount=usd("60"), product_ids=frozenset({ACCESS, USERS})), "60", "40"),
    ],
)
def test_a_coupon_discounts_the_lines_it_applies_to_and_no_more(discount: Discount, applied: str, total: str) -> None:
    result = bill(crm(10), [discount], "USD")
    assert result.discounts == {discount.key: usd(applied)}
    assert result.discount == usd(applied)
    assert result.total == usd(total)
    assert result.subtotal == usd("100")


def test_percent_coupons_apply_before_fixed_ones_whatever_the_order_given() -> None:
    fixed = Discount("FIXED", amount=usd("95"))
    percent = Discount("TEN", percent=Decimal("10"))
    result = bill(crm(10), [fixed, percent], "USD")
    # 10 % of 100 first, then the fixed coupon takes what is left (90, not 95).
    assert result.discounts == {"FIXED": usd("90"), "TEN": usd("10")}
    assert list(result.discounts) == ["FIXED", "TEN"]
    assert result.total == usd("0")


def test_two_percent_coupons_each_take_their_share_of_the_undiscounted_lines() -> None:
    result = bill(crm(10), [Discount("A", percent=Decimal("10")), Discount("B", percent=Decimal("20"))], "USD")
    assert result.discounts == {"A": usd("10"), "B": usd("20")}
    assert result.total == usd("70")


def test_percent_coupons_that_add_up_past_100_stop_at_zero() -> None:
    result = bill(crm(10), [Discount("A", percent=Decimal("60")), Discount("B", percent=Decimal("60"))], "USD")
    assert result.discounts == {"A": usd("60"), "B": usd("40")}
    assert result.total == usd("0")


def test_a_product_coupon_cannot_eat_into_the_other_lines() -> None:
    users_off = Discount("USERS", amount=usd("80"), product_ids=frozenset({USERS}))
    whole = Discount("ALL", amount=usd("30"))
    result = bill(crm(10), [users_off, whole], "USD")
    assert result.discounts == {"USERS": usd("50"), "ALL": usd("30")}
    assert result.total == usd("20")


def test_a_percent_discount_rounds_half_even_to_the_cent() -> None:
    # 10 % of $0.25 is 2.5 cents and of $0.35 is 3.5 cents.
    assert bill([Line("a", 1, usd("0.25"), 1)], [Discount("T", percent=Decimal("10"))], "USD").discount == usd("0.02")
    assert bill([Line("a", 1, usd("0.35"), 1)], [Discount("T", percent=Decimal("10"))], "USD").discount == usd("0.04")


def test_a_bill_with_no_lines_is_zero() -> None:
    result = bill([], [Discount("TEN", percent=Decimal("10"))], "EUR")
    assert result == Bill("EUR", eur("0"), eur("0"), eur("0"), {}, {"TEN": eur("0")})


def test_lines_and_coupons_must_be_in_the_bills_currency() -> None:
    with pytest.raises(MoneyError) as refused:
        bill(crm(10), [], "EUR")
    assert refused.value.code == "CURRENCY_MISMATCH"
    with pytest.raises(MoneyError) as refused:
        bill(crm(10), [Discount("EUROS", amount=eur("5"))], "USD")
    assert refused.value.code == "CURRENCY_MISMATCH"


def test_duplicate_line_keys_are_refused() -> None:
    with pytest.raises(ValidationError):
        bill([Line("a", 1, usd("1"), 1), Line("a", 2, usd("1"), 1)], [], "USD")


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"percent": Decimal("10"), "amount": Money.parse("1", "USD")},
        {"percent": Decimal("0")},
        {"percent": Decimal("-5")},
        {"percent": Decimal("100.01")},
        {"percent": Decimal("NaN")},
        {"percent": 10.0},
        {"amount": Money.parse("0", "USD")},
        {"amount": Money.parse("-5", "USD")},
    ],
)
def test_a_coupon_is_a_percentage_or_a_positive_amount(arguments: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as refused:
        Discount("BAD", **arguments)  # type: ignore[arg-type]
    assert refused.value.code == "INVALID_COUPON"


@pytest.mark.parametrize(
    ("duration", "cycles", "used", "active"),
    [
        (CouponDuration.ONCE, None, 0, True),
        (CouponDuration.ONCE, None, 1, False),
        (CouponDuration.FOREVER, None, 0, True),
        (CouponDuration.FOREVER, None, 1000, True),
        (CouponDuration.REPEATING, 3, 0, True),
        (CouponDuration.REPEATING, 3, 2, True),
        (CouponDuration.REPEATING, 3, 3, False),
        (CouponDuration.REPEATING, 1, 1, False),
    ],
)
def test_a_coupon_stays_active_for_its_duration(
    duration: CouponDuration, cycles: int | None, used: int, active: bool
) -> None:
    assert coupon_active(duration, cycles, used) is active


def test_a_repeating_coupon_needs_a_number_of_cycles() -> None:
    with pytest.raises(ValidationError) as refused:
        coupon_active(CouponDuration.REPEATING, None, 0)
    assert refused.value.code == "INVALID_COUPON"


# -- property ------------------------------------------------------------------------

lines = st.lists(
    st.builds(
        lambda product, cents, quantity: (product, Money(cents, "USD"), quantity),
        st.integers(1, 4),
        st.integers(0, 100_000),
        st.integers(0, 50),
    ),
    max_size=6,
)
discounts = st.lists(
    st.one_of(
        st.builds(
            lambda pct, products: ("percent", Decimal(pct) / 100, products),
            st.integers(1, 10_000),
            st.frozensets(st.integers(1, 5), max_size=2),
        ),
        st.builds(
            lambda cents, products: ("amount", Money(cents, "USD"), products),
            st.integers(1, 500_000),
            st.frozensets(st.integers(1, 5), max_size=2),
        ),
    ),
    max_size=5,
)


@given(lines, discounts)
def test_a_bill_is_never_negative_and_never_more_than_its_subtotal(
    raw_lines: list[tuple[int, Money, int]], raw_discounts: list[tuple[str, object, frozenset[int]]]
) -> None:
    priced = [Line(f"l{i}", product, price, qty) for i, (product, price, qty) in enumerate(raw_lines)]
    coupons = [
        Discount(f"d{i}", product_ids=products, **{kind: value})  # type: ignore[arg-type]
        for i, (kind, value, products) in enumerate(raw_discounts)
    ]
    result = bill(priced, coupons, "USD")
    assert usd("0") <= result.total <= result.subtotal
    assert result.total == result.subtotal - result.discount
    assert sum(d.minor for d in result.discounts.values()) == result.discount.minor
    assert all(not d.is_negative for d in result.discounts.values())
