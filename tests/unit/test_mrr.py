"""MRR: one subscription's month of revenue, and movements that always add up."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rebill.domain.cadence import Cadence, IntervalUnit
from rebill.domain.money import Money
from rebill.domain.mrr import Movement, MovementKind, Movements, classify, monthly, mrr, per_month, track
from rebill.domain.pricing import CouponDuration
from rebill.domain.status import SubscriptionStatus
from rebill.domain.subscription import (
    AppliedCoupon,
    CouponInfo,
    Item,
    ProductInfo,
    ProfileTerms,
    RenewalType,
    SubscriptionState,
)

DAY, WEEK, MONTH, YEAR = IntervalUnit.DAY, IntervalUnit.WEEK, IntervalUnit.MONTH, IntervalUnit.YEAR
COFFEE, MUG = ProductInfo(1, "Coffee", "coffee"), ProductInfo(2, "Mug", "mug")


def usd(amount: str) -> Money:
    return Money.parse(amount, "USD")


def state(
    *items: Item,
    cadence: Cadence = Cadence(MONTH),
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE,
    coupons: tuple[AppliedCoupon, ...] = (),
) -> SubscriptionState:
    return SubscriptionState(
        id=1,
        customer_id=1,
        currency=items[0].unit_price.currency if items else "USD",
        status=status,
        renewal_type=RenewalType.AUTOMATIC,
        profile=ProfileTerms(1, "Plan", cadence),
        items=items,
        coupons=coupons,
        start_date=date(2027, 1, 1),
        anchor_date=date(2027, 1, 1),
        next_renewal_date=date(2027, 2, 1),
    )


@pytest.mark.parametrize(
    ("amount", "cadence", "expected"),
    [
        ("29.00", Cadence(MONTH), "29.00"),
        ("100.00", Cadence(MONTH, 3), "33.33"),  # a quarter: 3333.33 cents
        ("120.00", Cadence(YEAR), "10.00"),
        ("100.00", Cadence(YEAR), "8.33"),
        ("250.00", Cadence(YEAR, 2), "10.42"),  # 25000 / 24 = 1041.67
        ("10.00", Cadence(WEEK), "43.33"),  # 1000 x 52 / 12 = 4333.33
        ("10.00", Cadence(WEEK, 2), "21.67"),  # 2166.67
        ("30.00", Cadence(DAY, 30), "30.42"),  # 3000 x 365 / 360 = 3041.67
        ("1.00", Cadence(DAY), "30.42"),  # 100 x 365 / 12 = 3041.67
        # Half to even on the minor unit: 6/12, 18/12 and 30/12 cents.
        ("0.06", Cadence(YEAR), "0.00"),
        ("0.18", Cadence(YEAR), "0.02"),
        ("0.30", Cadence(YEAR), "0.02"),
        ("0.00", Cadence(MONTH), "0.00"),
    ],
)
def test_an_amount_is_brought_to_a_month_and_rounded_half_even(amount, cadence, expected):
    assert monthly(usd(amount), cadence) == usd(expected)


def test_a_currency_without_minor_units_rounds_to_whole_units():
    assert monthly(Money(1000, "JPY"), Cadence(WEEK)) == Money(4333, "JPY")
    assert monthly(Money(5, "JPY"), Cadence(MONTH, 2)) == Money(2, "JPY")  # 2.5 -> 2


@pytest.mark.parametrize("status", list(SubscriptionStatus))
def test_only_active_and_overdue_subscriptions_bring_revenue(status):
    counted = status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.OVERDUE)
    got = mrr(state(Item(1, COFFEE, usd("20.00"), 2), status=status))
    assert got == (usd("40.00") if counted else usd("0"))


def test_mrr_is_what_the_next_renewal_bills_without_items_that_do_not_renew_and_after_coupons():
    loyal = CouponInfo(1, "LOYAL10", percent_off=Decimal("10"))
    once = CouponInfo(2, "WELCOME", amount_off=usd("5.00"), duration=CouponDuration.ONCE)
    s = state(
        Item(1, COFFEE, usd("30.00"), 1),
        Item(2, MUG, usd("12.00"), 1, auto_renew=False),  # a one-off: never renewed
        Item(3, MUG, usd("10.00"), 1, pending_quantity=3),  # the next renewal bills 3
        cadence=Cadence(MONTH, 2),
        coupons=(AppliedCoupon(1, loyal), AppliedCoupon(2, once, cycles_used=1)),  # the welcome coupon is used up
    )
    # (30 + 3 x 10) = 60.00, less 10 % = 54.00 every two months: 27.00 a month.
    assert s.amount == usd("54.00")
    assert mrr(s) == usd("27.00")


def test_per_month_is_exact():
    assert per_month(Cadence(WEEK, 4)) * 4 * 12 == 52
    assert per_month(Cadence(DAY, 365)) * 12 == 1


@pytest.mark.parametrize(
    ("before", "after", "had", "kind"),
    [
        (0, 0, False, None),
        (500, 500, True, None),
        (0, 500, False, MovementKind.NEW),
        (0, 500, True, MovementKind.REACTIVATION),
        (500, 700, True, MovementKind.EXPANSION),
        (700, 500, True, MovementKind.CONTRACTION),
        (500, 0, True, MovementKind.CHURNED),
    ],
)
def test_a_change_of_mrr_is_classified(before, after, had, kind):
    assert classify(before, after, had_mrr=had) is kind


def test_a_life_of_trial_conversion_upgrade_suspension_and_return():
    # trial (0), converted (2900), upgraded (9900), quantity down (4950), suspended (0), back (4950)
    moves = track([0, 2900, 9900, 4950, 0, 4950])
    assert [m.kind for m in moves] == [
        MovementKind.NEW,
        MovementKind.EXPANSION,
        MovementKind.CONTRACTION,
        MovementKind.CHURNED,
        MovementKind.REACTIVATION,
    ]
    tally = Movements()
    for m in moves:
        tally.add(m)
    assert (tally.new, tally.expansion, tally.contraction, tally.churned, tally.reactivation) == (
        2900,
        7000,
        4950,
        4950,
        4950,
    )
    assert tally.net == 4950


lives = st.lists(
    st.lists(st.one_of(st.just(0), st.integers(min_value=1, max_value=10**9)), max_size=12), min_size=1, max_size=8
)


@given(lives, st.data())
def test_movements_of_any_period_reconcile_start_and_end(subscriptions, data):
    """For any subscriptions' lives cut anywhere: end = start + new + reactivation + expansion - contraction - churned."""
    for values in subscriptions:
        moves = track(values)
        cut = data.draw(st.integers(min_value=0, max_value=len(moves)))
        stop = data.draw(st.integers(min_value=cut, max_value=len(moves)))
        start = moves[cut - 1].after if cut else 0
        end = moves[stop - 1].after if stop else 0
        period = Movements()
        for m in moves[cut:stop]:
            period.add(m)
        assert end == start + period.net
        assert min(period.new, period.expansion, period.contraction, period.churned, period.reactivation) >= 0
        # Leaving 0 is new once in a life; every later return is a reactivation.
        assert sum(m.kind is MovementKind.NEW for m in moves) == (1 if any(values) else 0)
        for m in moves:
            assert isinstance(m, Movement) and m.before != m.after
