"""Mid-period changes: the customer pays for the days they actually get."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rebill.domain.cadence import Period
from rebill.domain.errors import MoneyError, ValidationError
from rebill.domain.money import Money
from rebill.domain.proration import Proration, prorate

APRIL = Period(date(2025, 4, 1), date(2025, 5, 1))  # 30 days


def usd(amount: str) -> Money:
    return Money.parse(amount, "USD")


def test_an_upgrade_halfway_through_a_30_day_period_charges_half_the_difference() -> None:
    charge = prorate(usd("10"), usd("40"), APRIL, date(2025, 4, 16), Proration.PRORATED)
    assert charge == usd("15")


def test_a_downgrade_halfway_through_credits_half_the_difference() -> None:
    credit = prorate(usd("40"), usd("10"), APRIL, date(2025, 4, 16), Proration.PRORATED)
    assert credit == usd("-15")


def test_a_change_on_the_first_day_is_worth_the_full_difference() -> None:
    assert prorate(usd("10"), usd("40"), APRIL, APRIL.start, Proration.PRORATED) == usd("30")


def test_seed_002_users_from_10_to_15_on_september_4_prorates_11_of_31_days() -> None:
    # Aug 15 to Sep 15 is 31 days; from Sep 4, 11 days remain. $25 x 11/31 = $8.870...
    period = Period(date(2025, 8, 15), date(2025, 9, 15))
    assert prorate(usd("100"), usd("125"), period, date(2025, 9, 4), Proration.PRORATED) == usd("8.87")


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        (date(2025, 2, 1), date(2025, 3, 1), 28),
        (date(2024, 2, 1), date(2024, 3, 1), 29),
        (date(2025, 4, 1), date(2025, 5, 1), 30),
        (date(2025, 1, 1), date(2025, 2, 1), 31),
    ],
)
def test_a_change_on_the_last_day_is_worth_one_day_of_the_difference(start: date, end: date, days: int) -> None:
    period = Period(start, end)
    difference = Money(days * 100, "USD")  # one dollar a day
    last_day = end - timedelta(days=1)
    assert prorate(usd("0"), difference, period, last_day, Proration.PRORATED) == usd("1")
    assert prorate(usd("0"), difference, period, start, Proration.PRORATED) == difference


def test_a_prorated_amount_is_rounded_half_even_once() -> None:
    two_days = Period(date(2025, 1, 1), date(2025, 1, 3))
    on = date(2025, 1, 2)  # one day of two remains
    assert prorate(usd("0"), usd("0.01"), two_days, on, Proration.PRORATED) == usd("0")
    assert prorate(usd("0"), usd("0.03"), two_days, on, Proration.PRORATED) == usd("0.02")
    assert prorate(usd("0.03"), usd("0"), two_days, on, Proration.PRORATED) == usd("-0.02")


def test_full_proration_charges_the_whole_difference_whatever_the_day() -> None:
    assert prorate(usd("10"), usd("40"), APRIL, date(2025, 4, 30), Proration.FULL) == usd("30")
    assert prorate(usd("40"), usd("10"), APRIL, date(2025, 4, 30), Proration.FULL) == usd("-30")


def test_no_proration_charges_nothing() -> None:
    assert prorate(usd("10"), usd("40"), APRIL, date(2025, 4, 16), Proration.NONE) == usd("0")


@pytest.mark.parametrize("on", [date(2025, 3, 31), date(2025, 5, 1), date(2025, 6, 1)])
@pytest.mark.parametrize("mode", list(Proration))
def test_a_day_outside_the_period_is_refused(on: date, mode: Proration) -> None:
    with pytest.raises(ValidationError) as refused:
        prorate(usd("10"), usd("40"), APRIL, on, mode)
    assert refused.value.code == "DATE_OUTSIDE_PERIOD"


def test_prorating_between_currencies_is_refused() -> None:
    with pytest.raises(MoneyError) as refused:
        prorate(usd("10"), Money.parse("40", "EUR"), APRIL, APRIL.start, Proration.PRORATED)
    assert refused.value.code == "CURRENCY_MISMATCH"


@given(
    st.integers(-(10**9), 10**9),
    st.integers(-(10**9), 10**9),
    st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)),
    st.integers(1, 400),
    st.data(),
)
def test_a_prorated_amount_never_exceeds_the_difference_and_keeps_its_sign(
    old: int, new: int, start: date, days: int, data: st.DataObject
) -> None:
    period = Period(start, start + timedelta(days=days))
    on = start + timedelta(days=data.draw(st.integers(0, days - 1)))
    difference = Money(new - old, "USD")
    charge = prorate(Money(old, "USD"), Money(new, "USD"), period, on, Proration.PRORATED)
    assert abs(charge) <= abs(difference)
    assert charge.minor * difference.minor >= 0
