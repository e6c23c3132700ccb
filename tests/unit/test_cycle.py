"""The renewal cycle's rules, without a database: what a billing date does to a subscription."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rebill.domain import cycle
from rebill.domain.cadence import AnchorPolicy, Cadence, IntervalUnit, add_interval, nth_renewal
from rebill.domain.money import Money
from rebill.domain.outcome import OpContext
from rebill.domain.renewal import Charge, RenewalInfo, RenewalKind, RenewalStatus
from rebill.domain.status import SubscriptionStatus
from rebill.domain.subscription import (
    FinalFailureAction,
    Item,
    PaymentKind,
    PaymentMethodInfo,
    ProductInfo,
    ProfileTerms,
    RenewalType,
    SubscriptionState,
)

USD = "USD"
MONTHLY = ProfileTerms(id=1, name="Monthly", cadence=Cadence(IntervalUnit.MONTH, 1))
CARD = PaymentMethodInfo(1, 1, PaymentKind.CARD, "4242424242424242")
PRODUCT = ProductInfo(1, "Coffee", "coffee")


def usd(amount: str) -> Money:
    return Money.parse(amount, USD)


def ctx(day: date) -> OpContext:
    return OpContext(now=datetime(day.year, day.month, day.day, 9, tzinfo=UTC), today=day)


def make_state(**changes: object) -> SubscriptionState:
    """A monthly subscription started on Jan 15 whose first period is paid."""
    state = SubscriptionState(
        id=7,
        customer_id=1,
        currency=USD,
        status=SubscriptionStatus.ACTIVE,
        renewal_type=RenewalType.AUTOMATIC,
        profile=MONTHLY,
        items=(Item(11, PRODUCT, usd("10.00"), 1),),
        start_date=date(2026, 1, 15),
        anchor_date=date(2026, 1, 15),
        next_renewal_date=date(2026, 2, 15),
        current_period_start=date(2026, 1, 15),
        current_period_end=date(2026, 2, 15),
        occurrences_billed=1,
        last_cycle=1,
        payment_method=CARD,
    )
    return state.evolve(**changes)


def profile(**changes: object) -> ProfileTerms:
    return replace(MONTHLY, **changes)  # type: ignore[arg-type]


def renewal(attempts: int, cycle_: int = 2) -> RenewalInfo:
    return RenewalInfo(
        id=99,
        subscription_id=7,
        cycle=cycle_,
        kind=RenewalKind.SCHEDULED,
        status=RenewalStatus.FAILED,
        period_start=date(2026, 2, 15),
        period_end=date(2026, 3, 15),
        amount=usd("10.00"),
        refunded=usd("0"),
        attempts=attempts,
    )


# -- what is due -------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "today"),
    [
        ({}, date(2026, 2, 14)),
        ({"status": SubscriptionStatus.SUSPENDED}, date(2026, 3, 1)),
        ({"status": SubscriptionStatus.AWAITING_REINSTATE}, date(2026, 3, 1)),
        ({"status": SubscriptionStatus.CANCELLED, "next_renewal_date": None}, date(2026, 3, 1)),
        ({"status": SubscriptionStatus.EXPIRED}, date(2026, 3, 1)),
    ],
    ids=["before-the-date", "suspended", "awaiting-reinstate", "cancelled", "expired"],
)
def test_nothing_happens_before_the_billing_date_or_to_a_subscription_that_does_not_renew(changes, today):
    assert cycle.begin_cycle(make_state(**changes), ctx(today)) is None


def test_a_due_subscription_gets_the_renewal_of_its_next_cycle_for_the_coming_period():
    outcome = cycle.begin_cycle(make_state(), ctx(date(2026, 2, 15)))
    assert outcome is not None and outcome.charge is not None
    charge = outcome.charge
    assert (charge.kind, charge.cycle) == (RenewalKind.SCHEDULED, 2)
    assert (charge.period_start, charge.period_end) == (date(2026, 2, 15), date(2026, 3, 15))
    assert charge.amount == usd("10.00")
    new = outcome.state
    assert new.next_renewal_date == date(2026, 3, 15)
    assert (new.current_period_start, new.current_period_end) == (date(2026, 2, 15), date(2026, 3, 15))
    assert new.last_cycle == 2
    assert new.occurrences_billed == 1, "an occurrence counts once it is paid"


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (
            AnchorPolicy.STICKY,
            ["2026-09-30", "2026-10-30", "2026-11-30", "2026-12-30", "2027-01-30", "2027-02-28", "2027-03-28"],
        ),
        (
            AnchorPolicy.ANCHORED,
            ["2026-09-30", "2026-10-31", "2026-11-30", "2026-12-31", "2027-01-31", "2027-02-28", "2027-03-31"],
        ),
    ],
)
def test_a_subscription_started_on_august_31_renews_by_its_anchor_policy(policy, expected):
    start = date(2026, 8, 31)
    state = make_state(
        profile=profile(anchor_policy=policy),
        start_date=start,
        anchor_date=start,
        next_renewal_date=date(2026, 9, 30),
        current_period_start=start,
        current_period_end=date(2026, 9, 30),
    )
    outcomes = cycle.catch_up(state, ctx(date(2027, 3, 31)))
    assert [o.charge.period_start.isoformat() for o in outcomes if o.charge] == expected


def test_a_thirty_day_profile_adds_thirty_days_each_time():
    state = make_state(profile=profile(cadence=Cadence(IntervalUnit.DAY, 30)), next_renewal_date=date(2026, 2, 14))
    outcomes = cycle.catch_up(state, ctx(date(2026, 5, 1)))
    starts = [o.charge.period_start for o in outcomes if o.charge]
    assert starts == [date(2026, 2, 14), date(2026, 3, 16), date(2026, 4, 15)]


def test_pending_changes_take_effect_in_the_renewal_that_bills_them():
    access = Item(11, PRODUCT, usd("50.00"), 1)
    users = Item(12, ProductInfo(2, "Users", "users"), usd("5.00"), 10, pending_quantity=15)
    outcome = cycle.begin_cycle(make_state(items=(access, users)), ctx(date(2026, 2, 15)))
    assert outcome is not None and outcome.charge is not None
    assert outcome.charge.amount == usd("125.00")
    assert [i.quantity for i in outcome.state.items] == [1, 15]
    assert all(i.pending_quantity is None for i in outcome.state.items)


def test_a_trial_ends_into_its_first_charge():
    trial_end = date(2026, 1, 29)
    state = make_state(
        status=SubscriptionStatus.TRIAL,
        trial_end_date=trial_end,
        anchor_date=trial_end,
        next_renewal_date=trial_end,
        current_period_end=trial_end,
        last_cycle=0,
        occurrences_billed=0,
    )
    outcome = cycle.begin_cycle(state, ctx(trial_end))
    assert outcome is not None and outcome.charge is not None
    assert outcome.charge.cycle == 1
    assert (outcome.charge.period_start, outcome.charge.period_end) == (trial_end, date(2026, 2, 28))
    assert outcome.state.status is SubscriptionStatus.ACTIVE
    assert outcome.state.trial_end_date == trial_end


@pytest.mark.parametrize(
    ("credit", "charged", "left"),
    [("4.00", "6.00", None), ("10.00", "0.00", None), ("15.00", "0.00", "5.00")],
)
def test_a_credit_balance_is_used_by_the_next_charge(credit, charged, left):
    outcome = cycle.begin_cycle(make_state(credit=usd(credit)), ctx(date(2026, 2, 15)))
    assert outcome is not None and outcome.charge is not None
    assert outcome.charge.amount == usd(charged)
    assert outcome.state.credit == (usd(left) if left else None)


@pytest.mark.parametrize(
    ("changes", "status", "action", "event"),
    [
        (
            {"cancel_at_period_end": True, "end_date": date(2026, 2, 15)},
            "CANCELLED",
            "cancelled_at_period_end",
            "SUBSCRIPTION_CANCELLED",
        ),
        ({"end_date": date(2026, 2, 15)}, "EXPIRED", "expired", "SUBSCRIPTION_EXPIRED"),
        ({"end_date": date(2026, 2, 1)}, "EXPIRED", "expired", "SUBSCRIPTION_EXPIRED"),
        ({"profile": profile(max_occurrences=1)}, "EXPIRED", "expired", "SUBSCRIPTION_EXPIRED"),
        ({"renewal_type": RenewalType.MANUAL}, "AWAITING_REINSTATE", "period_ended_unpaid", "AWAITING_REINSTATE"),
        (
            {"items": (Item(11, PRODUCT, usd("10.00"), 1, auto_renew=False),)},
            "AWAITING_REINSTATE",
            "period_ended_unpaid",
            "AWAITING_REINSTATE",
        ),
    ],
    ids=["cancel-at-period-end", "end-date", "past-end-date", "max-occurrences", "manual", "no-auto-items"],
)
def test_a_billing_date_that_bills_nothing(changes, status, action, event):
    outcome = cycle.begin_cycle(make_state(**changes), ctx(date(2026, 2, 20)))
    assert outcome is not None
    assert outcome.charge is None
    assert outcome.state.status.value == status
    assert outcome.action == action
    assert [e.kind for e in outcome.events] == [event]
    if status != "AWAITING_REINSTATE":
        assert outcome.state.next_renewal_date is None


def test_the_last_occurrence_is_billed_and_the_next_billing_date_expires_the_subscription():
    state = make_state(profile=profile(max_occurrences=3))
    outcomes = cycle.catch_up(state, ctx(date(2026, 6, 1)))
    assert [o.action for o in outcomes] == ["renewal_created", "renewal_created", "expired"]
    assert outcomes[-1].events[0].payload["effective"] == "2026-04-15"


def test_activation_after_a_suspension_bills_the_current_period_not_the_missed_ones():
    state = make_state(renew_due=True)
    outcome = cycle.begin_cycle(state, ctx(date(2026, 5, 20)))
    assert outcome is not None and outcome.charge is not None
    assert (outcome.charge.period_start, outcome.charge.period_end) == (date(2026, 5, 15), date(2026, 6, 15))
    assert outcome.charge.cycle == 2
    assert cycle.begin_cycle(outcome.state, ctx(date(2026, 5, 20))) is None


# -- the charge's answer -----------------------------------------------------


def scheduled(cycle_: int = 2) -> Charge:
    return Charge(RenewalKind.SCHEDULED, cycle_, date(2026, 2, 15), date(2026, 3, 15), usd("10.00"))


def test_a_paid_renewal_counts_the_occurrence_and_sends_a_receipt():
    outcome = cycle.cycle_paid(make_state(last_cycle=2), scheduled(), "sandbox")
    assert outcome.state.occurrences_billed == 2
    assert outcome.state.last_gateway_id == "sandbox"
    assert [e.kind for e in outcome.events] == ["RENEWAL_RECEIPT"]


def test_a_declined_renewal_makes_the_subscription_overdue_and_schedules_a_retry_in_five_days():
    today = date(2026, 2, 15)
    dunning = cycle.cycle_failed(make_state(last_cycle=2), renewal(1), ctx(today), decline_code="card_declined")
    new = dunning.outcome.state
    assert new.status is SubscriptionStatus.OVERDUE
    assert new.overdue_count == 1
    assert dunning.retry_date == new.next_retry_date == date(2026, 2, 20)
    declined = dunning.outcome.events[0]
    assert declined.kind == "PAYMENT_DECLINED"
    assert declined.payload["declineCode"] == "card_declined"
    assert declined.payload["nextRetryDate"] == "2026-02-20"


@pytest.mark.parametrize(
    ("attempts", "action", "status", "retry", "events"),
    [
        (2, "renewal_retry_failed", "OVERDUE", date(2026, 2, 25), ["PAYMENT_DECLINED"]),
        (3, "cancelled_after_failed_payment", "CANCELLED", None, ["PAYMENT_DECLINED", "SUBSCRIPTION_CANCELLED"]),
    ],
)
def test_retries_follow_the_schedule_and_the_last_failure_cancels(attempts, action, status, retry, events):
    state = make_state(status=SubscriptionStatus.OVERDUE, overdue_count=1, last_cycle=2)
    dunning = cycle.retry_failed(state, renewal(attempts), ctx(date(2026, 2, 20)))
    assert dunning.outcome.action == action
    assert dunning.outcome.state.status.value == status
    assert dunning.retry_date == retry
    assert [e.kind for e in dunning.outcome.events] == events
    assert dunning.outcome.state.overdue_count == 1


def test_the_final_action_may_suspend_instead_of_cancelling():
    state = make_state(
        status=SubscriptionStatus.OVERDUE,
        overdue_count=1,
        profile=profile(final_failure_action=FinalFailureAction.SUSPEND),
    )
    dunning = cycle.retry_failed(state, renewal(3), ctx(date(2026, 2, 25)))
    assert dunning.outcome.state.status is SubscriptionStatus.SUSPENDED
    assert dunning.outcome.state.next_retry_date is None
    assert [e.kind for e in dunning.outcome.events] == ["PAYMENT_DECLINED", "SUBSCRIPTION_SUSPENDED"]


def test_without_a_retry_schedule_a_decline_waits_and_the_overdue_limit_suspends():
    terms = profile(cadence=Cadence(IntervalUnit.DAY, 30), retry_schedule_days=(), overdue_limit=2)
    first = cycle.cycle_failed(make_state(profile=terms), renewal(1), ctx(date(2026, 2, 15)))
    assert first.outcome.state.status is SubscriptionStatus.OVERDUE
    assert first.retry_date is None and not first.final
    second = cycle.cycle_failed(first.outcome.state, renewal(1, 3), ctx(date(2026, 3, 17)))
    assert second.outcome.state.status is SubscriptionStatus.SUSPENDED
    assert second.outcome.state.overdue_count == 2
    assert second.outcome.events[-1].payload == {"reason": "overdue_limit", "overdueCount": 2}


def test_a_successful_retry_returns_the_subscription_to_active_with_its_schedule_unchanged():
    state = make_state(
        status=SubscriptionStatus.OVERDUE,
        overdue_count=1,
        next_retry_date=date(2026, 2, 20),
        next_renewal_date=date(2026, 3, 15),
        last_cycle=2,
    )
    outcome = cycle.cycle_paid(state, scheduled(), "sandbox", retry=True)
    assert outcome.state.status is SubscriptionStatus.ACTIVE
    assert outcome.state.overdue_count == 0
    assert outcome.state.next_retry_date is None
    assert outcome.state.next_renewal_date == date(2026, 3, 15)


def test_a_paid_retry_keeps_the_subscription_overdue_while_another_renewal_is_unpaid():
    state = make_state(status=SubscriptionStatus.OVERDUE, overdue_count=2, last_cycle=3)
    outcome = cycle.cycle_paid(state, scheduled(), "sandbox", retry=True, other_retry=date(2026, 3, 20))
    assert outcome.state.status is SubscriptionStatus.OVERDUE
    assert outcome.state.overdue_count == 1
    assert outcome.state.next_retry_date == date(2026, 3, 20)


def test_a_decline_for_a_subscription_suspended_meanwhile_starts_no_dunning():
    dunning = cycle.cycle_failed(make_state(status=SubscriptionStatus.SUSPENDED), renewal(1), ctx(date(2026, 2, 15)))
    assert dunning.outcome.state.status is SubscriptionStatus.SUSPENDED
    assert dunning.retry_date is None


# -- reminders ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "today", "sent"),
    [
        ({"renewal_type": RenewalType.MANUAL}, date(2026, 2, 8), True),
        ({"renewal_type": RenewalType.MANUAL}, date(2026, 2, 14), True),
        ({"renewal_type": RenewalType.MANUAL}, date(2026, 2, 7), False),
        ({"renewal_type": RenewalType.MANUAL}, date(2026, 2, 15), False),
        # Paid by transfer: invoiced on the billing date instead, reminded once it is overdue.
        ({"payment_method": PaymentMethodInfo(2, 1, PaymentKind.OFFLINE)}, date(2026, 2, 10), False),
        ({}, date(2026, 2, 10), False),
        ({"renewal_type": RenewalType.MANUAL, "profile": profile(reminder_days_before=0)}, date(2026, 2, 14), False),
    ],
    ids=["seven-days-before", "day-before", "too-early", "on-the-day", "offline", "automatic-card", "turned-off"],
)
def test_manual_subscriptions_are_reminded_before_the_billing_date(changes, today, sent):
    event = cycle.reminder(make_state(**changes), ctx(today))
    assert (event is not None) is sent
    if event is not None:
        assert event.kind == "RENEWAL_REMINDER"
        assert event.payload["cycle"] == 2
        assert event.payload["billingDate"] == "2026-02-15"


# -- catching up -------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    anchor=st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)),
    unit=st.sampled_from(list(IntervalUnit)),
    count=st.integers(min_value=1, max_value=3),
    policy=st.sampled_from(list(AnchorPolicy)),
    behind=st.integers(min_value=0, max_value=14),
    slack=st.integers(min_value=0, max_value=27),
)
def test_catching_up_k_periods_bills_k_consecutive_cycles_for_consecutive_periods(
    anchor, unit, count, policy, behind, slack
):
    cadence = Cadence(unit, count)
    first = add_interval(anchor, cadence, 1)
    state = make_state(
        profile=profile(cadence=cadence, anchor_policy=policy),
        start_date=anchor,
        anchor_date=anchor,
        next_renewal_date=first,
        current_period_start=anchor,
        current_period_end=first,
    )
    # Today falls in the period that starts `behind` periods after the first renewal date.
    due = nth_renewal(anchor, cadence, policy, behind + 1)
    following_due = nth_renewal(anchor, cadence, policy, behind + 2)
    today = due + timedelta(days=min(slack, (following_due - due).days - 1))
    outcomes = cycle.catch_up(state, ctx(today))
    charges = [o.charge for o in outcomes if o.charge is not None]
    assert len(charges) == len(outcomes) == behind + 1
    assert [c.cycle for c in charges] == list(range(2, behind + 3))
    assert charges[0].period_start == first
    for earlier, later in pairwise(charges):
        assert earlier.period_end == later.period_start
    assert all(c.period_start <= today for c in charges)
    assert charges[-1].period_end > today
    assert outcomes[-1].state.next_renewal_date == charges[-1].period_end


def test_a_subscription_paid_by_transfer_is_billed_on_its_date():
    outcome = cycle.begin_cycle(
        make_state(payment_method=PaymentMethodInfo(2, 1, PaymentKind.OFFLINE)), ctx(date(2026, 2, 15))
    )
    assert outcome is not None and outcome.charge is not None
    assert outcome.charge.kind.value == "SCHEDULED"
