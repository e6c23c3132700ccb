from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from rebill.bulk.actions import apply_actions, billed, consent_of
from rebill.bulk.plan import (
    AdjustPrice,
    Cancel,
    References,
    SetNextRenewalDate,
    SetQuantity,
    SetUnitPrice,
    ShiftNextRenewal,
    Suspend,
)
from rebill.bulk.writes import changed_fields, column_values
from rebill.db.repositories import subscription_values
from rebill.domain.cadence import Cadence, IntervalUnit
from rebill.domain.errors import RebillError
from rebill.domain.money import Money
from rebill.domain.outcome import OpContext
from rebill.domain.pricing import PriceTier
from rebill.domain.status import SubscriptionStatus
from rebill.domain.subscription import (
    AppliedCoupon,
    CouponInfo,
    GatewayMode,
    Item,
    PaymentKind,
    PaymentMethodInfo,
    ProductInfo,
    ProductKind,
    ProfileTerms,
    RenewalType,
    SubscriptionState,
    delta_to_json,
    diff,
    diff_and_delta,
    state_from_json,
    state_to_json,
    undo,
)

NOW = datetime(2026, 1, 15, 9, tzinfo=UTC)
CTX = OpContext(NOW, date(2026, 1, 15))
REFS = References(gateways=("sandbox", "sandbox-b"))
COFFEE = ProductInfo(1, "Coffee", "coffee")
METER = ProductInfo(2, "Meter", "meter", ProductKind.USAGE)
SEATS = ProductInfo(
    3, "Seats", "seats", ProductKind.SEAT, (PriceTier(10, Money(1000, "USD")), PriceTier(None, Money(800, "USD")))
)


def state(*prices: str, status: SubscriptionStatus = SubscriptionStatus.ACTIVE, **fields) -> SubscriptionState:
    items = tuple(Item(n + 1, COFFEE, Money.parse(p, "USD"), 1) for n, p in enumerate(prices or ("10.00",)))
    base = SubscriptionState(
        id=7,
        customer_id=1,
        currency="USD",
        status=status,
        renewal_type=RenewalType.AUTOMATIC,
        profile=ProfileTerms(1, "Monthly", Cadence(IntervalUnit.MONTH, 1)),
        items=items,
        start_date=date(2026, 1, 1),
        anchor_date=date(2026, 2, 1),
        next_renewal_date=date(2026, 2, 1),
        current_period_start=date(2026, 1, 1),
        current_period_end=date(2026, 2, 1),
    )
    return replace(base, **fields)


def test_shifting_a_trial_moves_its_trial_end_too():
    trial = state(status=SubscriptionStatus.TRIAL, trial_end_date=date(2026, 2, 1))
    after = apply_actions(trial, CTX, [ShiftNextRenewal(IntervalUnit.DAY, 14)], REFS).state
    assert (after.next_renewal_date, after.trial_end_date, after.status) == (
        date(2026, 2, 15),
        date(2026, 2, 15),
        SubscriptionStatus.TRIAL,
    )
    set_date = apply_actions(trial, CTX, [SetNextRenewalDate(date(2026, 3, 3))], REFS).state
    assert set_date.trial_end_date == date(2026, 3, 3)


def test_a_percent_cut_rounds_each_unit_price_half_to_even():
    after = apply_actions(state("10.05", "10.15", "10.25"), CTX, [AdjustPrice(percent=Decimal("-10"))], REFS).state
    assert [i.unit_price.amount_str for i in after.items] == ["9.04", "9.14", "9.22"]


def test_a_rise_needs_consent_for_the_whole_action():
    with pytest.raises(RebillError) as refused:
        apply_actions(state("10.00"), CTX, [AdjustPrice(percent=Decimal("5"))], REFS)
    assert refused.value.code == "CONSENT_REQUIRED"
    consented = apply_actions(state("10.00"), CTX, [AdjustPrice(percent=Decimal("5"), consent_reference="call")], REFS)
    assert consented.state.amount.amount_str == "10.50"
    # one item up, one down, the bill lower in all: no consent needed
    mixed = apply_actions(state("10.00", "20.00"), CTX, [SetUnitPrice(Money(1200, "USD"))], REFS)
    assert mixed.state.amount.amount_str == "24.00"


@pytest.mark.parametrize(
    ("subscription", "actions", "code"),
    [
        (state(status=SubscriptionStatus.CANCELLED), [ShiftNextRenewal(IntervalUnit.DAY, 1)], "INVALID_STATUS"),
        (state(), [ShiftNextRenewal(IntervalUnit.MONTH, -1)], "DATE_IN_PAST"),
        (state(), [SetUnitPrice(Money(900, "EUR"))], "CURRENCY_MISMATCH"),
        (state(), [AdjustPrice(amount=Money(-1100, "USD"))], "INVALID_AMOUNT"),
        (state(), [SetQuantity(2, product_id=99)], "NOT_FOUND"),
        (state(status=SubscriptionStatus.SUSPENDED), [Suspend()], "INVALID_STATUS"),
        (state(), [Suspend(), Suspend()], "INVALID_STATUS"),
    ],
)
def test_refusals_are_the_domains_own_codes(subscription, actions, code):
    with pytest.raises(RebillError) as refused:
        apply_actions(subscription, CTX, actions, REFS)
    assert refused.value.code == code


def test_a_usage_quantity_cannot_be_set():
    metered = state(items=(Item(1, METER, Money(10, "USD"), 100),))
    with pytest.raises(RebillError) as refused:
        apply_actions(metered, CTX, [SetQuantity(3)], REFS)
    assert refused.value.code == "QUANTITY_NOT_CHANGEABLE"


def test_what_a_renewal_bills_is_nothing_once_final_or_ending():
    assert billed(state("10.00")) == Money(1000, "USD")
    assert billed(state("10.00", cancel_at_period_end=True)) == Money(0, "USD")
    ended = apply_actions(state("10.00"), CTX, [Cancel()], REFS).state
    assert billed(ended) == Money(0, "USD")


def test_set_based_writes_send_the_same_row_as_the_repository():
    rich = state(
        "12.34",
        "5.00",
        coupons=(AppliedCoupon(3, CouponInfo(9, "TENOFF", percent_off=Decimal(10))),),
        gateway_id="sandbox",
        gateway_mode=GatewayMode.FORCED,
        payment_method=PaymentMethodInfo(4, 1, PaymentKind.CARD, "4242"),
        metadata={"a": [1, 2]},
        shipping_address={"line1": "1 Main St", "city": "Town", "country": "NZ"},
        credit=Money(150, "USD"),
        cancelled_at=NOW,
        replaces_id=3,
    )
    assert column_values(rich) == subscription_values(rich)


def test_only_the_fields_that_changed_are_written():
    before = state("10.00")
    moved = apply_actions(before, CTX, [ShiftNextRenewal(IntervalUnit.DAY, 3)], REFS).state
    assert changed_fields(before, moved) == {"next_renewal_date", "anchor_date", "current_period_end"}
    cheaper = apply_actions(before, CTX, [AdjustPrice(percent=Decimal("-50"))], REFS).state
    assert changed_fields(before, cheaper) == {"amount"}


def test_a_final_subscription_is_refused_for_its_status_before_anything_else():
    with pytest.raises(RebillError) as refused:
        apply_actions(state(status=SubscriptionStatus.EXPIRED), CTX, [SetQuantity(2, product_id=99)], REFS)
    assert refused.value.code == "INVALID_STATUS"


@pytest.mark.parametrize(
    "actions",
    [
        [ShiftNextRenewal(IntervalUnit.DAY, 3)],
        [AdjustPrice(percent=Decimal("-50"))],
        [SetNextRenewalDate(date(2026, 3, 1)), AdjustPrice(percent=Decimal("-10"))],
        [Cancel(at_period_end=True)],
        [Suspend()],
    ],
)
def test_a_change_reads_the_same_whether_or_not_its_states_share_values(actions):
    """History and undo compare what ``evolve`` replaced; a state rebuilt field by field gives the same."""
    before = state("10.00", "4.00", status=SubscriptionStatus.TRIAL, trial_end_date=date(2026, 2, 1))
    after = apply_actions(before, CTX, actions, REFS).state
    rebuilt = state_from_json(state_to_json(after))
    assert rebuilt == after and rebuilt.next_renewal_date is not after.next_renewal_date
    assert diff(before, after) == diff(before, rebuilt) != []
    assert diff_and_delta(before, after) == (diff(before, rebuilt), delta_to_json(before, rebuilt))
    assert undo(after, delta_to_json(before, after)) == before


def pending(unit: str, scheduled: str) -> SubscriptionState:
    """A subscription of one item at ``unit`` with a change to ``scheduled`` from the next renewal."""
    item = Item(1, COFFEE, Money.parse(unit, "USD"), 1, pending_unit_price=Money.parse(scheduled, "USD"))
    return state(items=(item,))


def test_a_rise_adjusts_a_consented_pending_rise_instead_of_dropping_it():
    rising = pending("10.00", "12.00")
    with pytest.raises(RebillError) as refused:
        apply_actions(rising, CTX, [AdjustPrice(percent=Decimal("10"))], REFS)
    assert refused.value.code == "CONSENT_REQUIRED"  # 12.00 → 13.20 at the next renewal
    after = apply_actions(rising, CTX, [AdjustPrice(percent=Decimal("10"), consent_reference="mail 7")], REFS).state
    item = after.items[0]
    assert (item.unit_price.amount_str, item.pending_unit_price, after.amount.amount_str) == (
        "11.00",
        Money(1320, "USD"),
        "13.20",
    )


def test_a_cut_on_a_pending_cut_needs_no_consent_and_keeps_the_cut():
    falling = pending("10.00", "8.00")
    after = apply_actions(falling, CTX, [AdjustPrice(percent=Decimal("-10"))], REFS).state
    item = after.items[0]
    assert (item.unit_price.amount_str, item.pending_unit_price, after.amount.amount_str) == (
        "9.00",
        Money(720, "USD"),
        "7.20",
    )
    minus_one = apply_actions(falling, CTX, [AdjustPrice(amount=Money(-100, "USD"))], REFS).state
    assert minus_one.amount.amount_str == "7.00"


def test_an_amount_that_takes_a_pending_price_below_zero_is_refused():
    with pytest.raises(RebillError) as refused:
        apply_actions(pending("10.00", "3.00"), CTX, [AdjustPrice(amount=Money(-500, "USD"))], REFS)
    assert refused.value.code == "INVALID_AMOUNT"


def test_a_price_is_set_against_what_the_next_renewal_bills():
    falling = pending("10.00", "8.00")
    with pytest.raises(RebillError) as refused:  # 8.00 at the next renewal, 9.00 after: a rise
        apply_actions(falling, CTX, [SetUnitPrice(Money(900, "USD"))], REFS)
    assert refused.value.code == "CONSENT_REQUIRED"
    lower = apply_actions(falling, CTX, [SetUnitPrice(Money(700, "USD"))], REFS).state
    assert (lower.items[0].pending_unit_price, lower.amount.amount_str) == (None, "7.00")


def test_an_adjustment_follows_a_pending_quantity_into_its_tier():
    seats = Item(1, SEATS, Money(1000, "USD"), 5, price_from_tiers=True, pending_quantity=20)
    growing = state(items=(seats,))
    assert growing.amount.amount_str == "160.00"  # 20 seats at 8.00 from the next renewal
    after = apply_actions(growing, CTX, [AdjustPrice(percent=Decimal("-10"))], REFS).state
    item = after.items[0]
    assert (item.unit_price.amount_str, item.pending_unit_price, item.pending_quantity) == (
        "9.00",
        Money(720, "USD"),
        20,
    )
    assert after.amount.amount_str == "144.00"


def test_a_segment_keeps_the_consent_its_price_actions_were_given():
    assert consent_of([ShiftNextRenewal(IntervalUnit.DAY, 1)]) is None
    assert consent_of([AdjustPrice(percent=Decimal("5"), consent_reference=" call 12 ")]) == "call 12"
    assert (
        consent_of(
            [
                SetUnitPrice(Money(100, "USD"), consent_reference="a"),
                SetQuantity(2, consent_reference="b"),
                AdjustPrice(percent=Decimal("1"), consent_reference="a"),
            ]
        )
        == "a; b"
    )


def test_undoing_an_adjustment_brings_back_the_pending_price_it_moved():
    before = pending("10.00", "12.00")
    after = apply_actions(before, CTX, [AdjustPrice(percent=Decimal("10"), consent_reference="call")], REFS).state
    changes, delta = diff_and_delta(before, after)
    assert changes and undo(after, delta) == before
