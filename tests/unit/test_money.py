"""Money: strict parsing, exact arithmetic, named rounding and fair splits."""

from __future__ import annotations

import decimal
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rebill.domain.errors import MoneyError
from rebill.domain.money import (
    CURRENCY_EXPONENTS,
    MAX_MINOR,
    Money,
    Rounding,
    currency_exponent,
    round_fraction,
    sum_money,
)


def usd(minor: int) -> Money:
    return Money(minor, "USD")


# -- currencies --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "exponent"),
    [
        ("JPY", 0),
        ("KRW", 0),
        ("CLP", 0),
        ("USD", 2),
        ("EUR", 2),
        ("GBP", 2),
        ("BHD", 3),
        ("KWD", 3),
        ("JOD", 3),
        ("OMR", 3),
        ("TND", 3),
        ("IQD", 3),
        ("LYD", 3),
        ("CLF", 4),
        ("UYW", 4),
    ],
)
def test_currency_exponent_follows_iso_4217(code: str, exponent: int) -> None:
    assert currency_exponent(code) == exponent
    assert CURRENCY_EXPONENTS[code] == exponent


@pytest.mark.parametrize("code", ["usd", "Usd", "US", "USDD", "XXX", "XAU", "ABC", "", 840])
def test_an_unknown_or_lower_case_currency_is_refused(code: object) -> None:
    with pytest.raises(MoneyError) as refused:
        currency_exponent(code)  # type: ignore[arg-type]
    assert refused.value.code == "UNKNOWN_CURRENCY"


def test_every_listed_currency_is_three_upper_case_letters_with_a_small_exponent() -> None:
    assert len(CURRENCY_EXPONENTS) > 150
    for code, exponent in CURRENCY_EXPONENTS.items():
        assert len(code) == 3 and code.isascii() and code.isupper()
        assert exponent in (0, 2, 3, 4)


def test_money_refuses_an_unknown_currency() -> None:
    with pytest.raises(MoneyError) as refused:
        Money(100, "usd")
    assert refused.value.code == "UNKNOWN_CURRENCY"


@pytest.mark.parametrize("minor", [1.5, 100.0, Decimal("1"), Fraction(1), True, "100", None])
def test_money_holds_only_an_int_of_minor_units(minor: object) -> None:
    with pytest.raises(MoneyError) as refused:
        Money(minor, "USD")  # type: ignore[arg-type]
    assert refused.value.code == "INVALID_AMOUNT"


# -- parsing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("62.96", "USD", 6296),
        ("-5", "USD", -500),
        ("0.5", "USD", 50),
        ("1000.00", "USD", 100000),
        ("0", "USD", 0),
        ("-0", "USD", 0),
        ("007.10", "EUR", 710),
        ("100", "JPY", 100),
        ("-100", "JPY", -100),
        ("1.234", "BHD", 1234),
        ("1.2", "BHD", 1200),
        ("0.0001", "CLF", 1),
        ("92233720368547758.07", "USD", MAX_MINOR),
    ],
)
def test_parse_reads_a_decimal_string_in_major_units(text: str, currency: str, minor: int) -> None:
    assert Money.parse(text, currency) == Money(minor, currency)


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("12.345", "USD"),
        ("12.340", "USD"),
        ("100.5", "JPY"),
        ("100.0", "JPY"),
        ("1.2345", "BHD"),
        ("", "USD"),
        (" ", "USD"),
        (" 1.00", "USD"),
        ("1.00 ", "USD"),
        ("1e3", "USD"),
        ("1E3", "USD"),
        ("NaN", "USD"),
        ("Infinity", "USD"),
        ("-Infinity", "USD"),
        ("1,000.00", "USD"),
        ("1 000", "USD"),
        ("1_000", "USD"),
        ("+-1", "USD"),
        ("--1", "USD"),
        ("+1", "USD"),
        (".5", "USD"),
        ("5.", "USD"),
        ("1.2.3", "USD"),
        ("٣", "USD"),
        ("$5", "USD"),
        ("92233720368547758.08", "USD"),
        ("1" * 5000, "USD"),
    ],
)
def test_parse_refuses_anything_but_a_plain_decimal(text: str, currency: str) -> None:
    with pytest.raises(MoneyError) as refused:
        Money.parse(text, currency)
    assert refused.value.code == "INVALID_AMOUNT"


def test_too_many_decimals_names_what_the_currency_allows() -> None:
    with pytest.raises(MoneyError) as refused:
        Money.parse("12.345", "USD")
    assert "USD allows 2 decimals" in refused.value.message
    with pytest.raises(MoneyError) as refused:
        Money.parse("100.5", "JPY")
    assert "JPY" in refused.value.message


@pytest.mark.parametrize("value", [12.5, Decimal("12.50"), 1250, None, b"12.50"])
def test_parse_refuses_a_value_that_is_not_a_string(value: object) -> None:
    with pytest.raises(MoneyError) as refused:
        Money.parse(value, "USD")  # type: ignore[arg-type]
    assert refused.value.code == "INVALID_AMOUNT"


def test_parse_refuses_an_unknown_currency_before_reading_the_amount() -> None:
    with pytest.raises(MoneyError) as refused:
        Money.parse("1.00", "usd")
    assert refused.value.code == "UNKNOWN_CURRENCY"


# -- display -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("money", "text"),
    [
        (Money(6296, "USD"), "62.96"),
        (Money(100, "JPY"), "100"),
        (Money(-50, "USD"), "-0.50"),
        (Money(-5, "USD"), "-0.05"),
        (Money(0, "USD"), "0.00"),
        (Money(1234, "BHD"), "1.234"),
        (Money(1, "CLF"), "0.0001"),
        (Money(1600000, "EUR"), "16000.00"),
    ],
)
def test_amount_str_has_exactly_the_currencys_decimals(money: Money, text: str) -> None:
    assert money.amount_str == text
    assert Money.parse(text, money.currency) == money


def test_str_shows_amount_and_currency() -> None:
    assert str(Money(6296, "USD")) == "62.96 USD"
    assert str(Money(100, "JPY")) == "100 JPY"


def test_to_decimal_is_exact_in_major_units() -> None:
    assert Money(6296, "USD").to_decimal() == Decimal("62.96")
    assert str(Money(-50, "USD").to_decimal()) == "-0.50"
    assert str(Money(100, "JPY").to_decimal()) == "100"
    big = Money(MAX_MINOR, "USD").to_decimal()
    assert big == Decimal("92233720368547758.07")


def test_zero_and_sign_properties() -> None:
    assert Money.zero("EUR") == Money(0, "EUR")
    assert Money.zero("EUR").is_zero
    assert usd(-1).is_negative and not usd(-1).is_positive
    assert usd(1).is_positive and not usd(1).is_zero


# -- arithmetic --------------------------------------------------------------------


def test_same_currency_amounts_add_subtract_and_negate() -> None:
    assert usd(150) + usd(25) == usd(175)
    assert usd(150) - usd(200) == usd(-50)
    assert -usd(150) == usd(-150)
    assert abs(usd(-150)) == usd(150)


@pytest.mark.parametrize(
    "operation",
    [
        lambda a, b: a + b,
        lambda a, b: a - b,
        lambda a, b: a < b,
        lambda a, b: a <= b,
        lambda a, b: a > b,
        lambda a, b: a >= b,
    ],
)
def test_mixing_currencies_is_refused(operation: object) -> None:
    with pytest.raises(MoneyError) as refused:
        operation(Money(100, "USD"), Money(100, "EUR"))  # type: ignore[operator]
    assert refused.value.code == "CURRENCY_MISMATCH"


def test_amounts_of_different_currencies_are_simply_not_equal() -> None:
    assert Money(100, "USD") != Money(100, "EUR")
    assert Money(100, "USD") == Money(100, "USD")


def test_comparisons_order_same_currency_amounts() -> None:
    assert usd(1) < usd(2) <= usd(2) < usd(3)
    assert usd(3) > usd(2) >= usd(2)
    assert max(usd(1), usd(7), usd(3)) == usd(7)


def test_multiplying_by_an_int_scales_exactly() -> None:
    assert usd(500) * 10 == usd(5000)
    assert 15 * usd(500) == usd(7500)


@pytest.mark.parametrize("factor", [1.5, Decimal("1.5"), Fraction(3, 2), True, "2"])
def test_multiplying_by_anything_but_an_int_is_a_type_error(factor: object) -> None:
    with pytest.raises(TypeError):
        usd(100) * factor  # type: ignore[operator]
    with pytest.raises(TypeError):
        factor * usd(100)  # type: ignore[operator]


def test_adding_a_number_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        usd(100) + 1  # type: ignore[operator]


def test_sum_money_adds_one_currency_and_is_zero_when_empty() -> None:
    assert sum_money([usd(1), usd(2), usd(3)], "USD") == usd(6)
    assert sum_money([], "JPY") == Money(0, "JPY")
    with pytest.raises(MoneyError) as refused:
        sum_money([usd(1), Money(1, "EUR")], "USD")
    assert refused.value.code == "CURRENCY_MISMATCH"


# -- rounding ------------------------------------------------------------------------


def test_rounding_names_map_to_the_decimal_modules_constants() -> None:
    assert Rounding.HALF_EVEN.value == decimal.ROUND_HALF_EVEN
    assert Rounding.HALF_UP.value == decimal.ROUND_HALF_UP
    assert Rounding.HALF_DOWN.value == decimal.ROUND_HALF_DOWN
    assert Rounding.UP.value == decimal.ROUND_UP
    assert Rounding.DOWN.value == decimal.ROUND_DOWN
    assert Rounding.FLOOR.value == decimal.ROUND_FLOOR
    assert Rounding.CEILING.value == decimal.ROUND_CEILING


@pytest.mark.parametrize(
    ("value", "rounding", "minor"),
    [
        ("2.345", Rounding.HALF_EVEN, 234),
        ("2.355", Rounding.HALF_EVEN, 236),
        ("2.345", Rounding.HALF_UP, 235),
        ("2.345", Rounding.HALF_DOWN, 234),
        ("2.3451", Rounding.HALF_DOWN, 235),
        ("2.341", Rounding.UP, 235),
        ("2.349", Rounding.DOWN, 234),
        ("2.349", Rounding.FLOOR, 234),
        ("2.341", Rounding.CEILING, 235),
        ("-2.345", Rounding.HALF_EVEN, -234),
        ("-2.345", Rounding.HALF_UP, -235),
        ("-2.345", Rounding.HALF_DOWN, -234),
        ("-2.341", Rounding.UP, -235),
        ("-2.349", Rounding.DOWN, -234),
        ("-2.341", Rounding.FLOOR, -235),
        ("-2.349", Rounding.CEILING, -234),
        ("2.34", Rounding.UP, 234),
    ],
)
def test_from_decimal_rounds_once_with_the_named_rule(value: str, rounding: Rounding, minor: int) -> None:
    assert Money.from_decimal(Decimal(value), "USD", rounding) == usd(minor)


def test_from_decimal_rounds_half_even_by_default() -> None:
    assert Money.from_decimal(Decimal("0.125"), "USD") == usd(12)
    assert Money.from_decimal(Decimal("0.5"), "JPY") == Money(0, "JPY")
    assert Money.from_decimal(Decimal("1.5"), "JPY") == Money(2, "JPY")


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")])
def test_from_decimal_refuses_non_finite_values(value: Decimal) -> None:
    with pytest.raises(MoneyError):
        Money.from_decimal(value, "USD")


def test_from_decimal_refuses_a_float() -> None:
    with pytest.raises(TypeError):
        Money.from_decimal(1.5, "USD")  # type: ignore[arg-type]


def test_multiply_uses_exact_ratios_and_rounds_once() -> None:
    assert usd(100).multiply(Fraction(1, 3)) == usd(33)
    assert usd(200).multiply(Fraction(1, 3)) == usd(67)
    assert usd(100).multiply(Fraction(1, 3), Rounding.CEILING) == usd(34)
    assert usd(1999).multiply(Decimal("0.5")) == usd(1000)  # 999.5 -> even
    assert usd(1997).multiply(Decimal("0.5")) == usd(998)  # 998.5 -> even
    assert usd(-1999).multiply(2) == usd(-3998)


def test_multiply_refuses_a_float() -> None:
    with pytest.raises(TypeError):
        usd(100).multiply(0.5)  # type: ignore[arg-type]


def test_percent_takes_a_percentage_not_a_fraction() -> None:
    assert usd(1000).percent(Decimal("10")) == usd(100)
    assert usd(1000).percent(Decimal("12.5")) == usd(125)
    assert usd(25).percent(Decimal("10")) == usd(2)  # 2.5 cents, half-even
    assert usd(35).percent(Decimal("10")) == usd(4)  # 3.5 cents, half-even
    assert usd(25).percent(Decimal("10"), Rounding.HALF_UP) == usd(3)


# -- allocation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "weights", "parts"),
    [
        (100, [1, 1, 1], [34, 33, 33]),
        (-100, [1, 1, 1], [-34, -33, -33]),
        (101, [1, 1], [51, 50]),
        (5, [0, 0], [3, 2]),
        (100, [0, 1], [0, 100]),
        (100, [3, 7], [30, 70]),
        (10, [1, 2, 2], [2, 4, 4]),
        (11, [1, 2, 2], [2, 5, 4]),
        (0, [1, 2], [0, 0]),
        (7, [5], [7]),
    ],
)
def test_allocate_splits_exactly_by_largest_remainder(total: int, weights: list[int], parts: list[int]) -> None:
    assert usd(total).allocate(weights) == [usd(part) for part in parts]


def test_allocate_refuses_no_weights_and_negative_weights() -> None:
    with pytest.raises(ValueError):
        usd(100).allocate([])
    with pytest.raises(ValueError):
        usd(100).allocate([1, -1])


# -- properties ----------------------------------------------------------------------

currencies = st.sampled_from(sorted(CURRENCY_EXPONENTS))
minors = st.integers(-(10**15), 10**15)
moneys = st.builds(Money, minors, currencies)


@given(moneys)
def test_parse_of_amount_str_round_trips(money: Money) -> None:
    assert Money.parse(money.amount_str, money.currency) == money
    assert Money.from_decimal(money.to_decimal(), money.currency) == money


@given(minors, minors, currencies)
def test_adding_then_subtracting_gives_back_the_amount(a: int, b: int, currency: str) -> None:
    first, second = Money(a, currency), Money(b, currency)
    assert first + second - second == first
    assert first + second == second + first


@given(minors, st.lists(st.integers(0, 1000), min_size=1, max_size=12))
def test_allocated_parts_add_up_and_stay_within_one_unit_of_their_share(total: int, weights: list[int]) -> None:
    parts = usd(total).allocate(weights)
    assert sum_money(parts, "USD") == usd(total)
    effective = weights if any(weights) else [1] * len(weights)
    for part, weight in zip(parts, effective, strict=True):
        share = Fraction(total * weight, sum(effective))
        assert abs(part.minor - share) < 1


@given(st.integers(-(10**12), 10**12), st.integers(0, 6), st.sampled_from(list(Rounding)))
def test_round_fraction_agrees_with_decimal_quantize(numerator: int, places: int, rounding: Rounding) -> None:
    exact = Decimal(numerator).scaleb(-places)
    expected = int(exact.quantize(Decimal(1), rounding=rounding.value))
    assert round_fraction(Fraction(numerator, 10**places), rounding) == expected
