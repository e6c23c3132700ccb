"""Contract terms' dates (domain/contract.py): a term ends on a billing date, and a cancellation takes effect
at the term's end before the notice period, at the next term's end inside it (when the contract renews)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rebill.domain.cadence import AnchorPolicy, Cadence, IntervalUnit, add_interval, nth_renewal, period_containing
from rebill.domain.contract import (
    Contract,
    Schedule,
    TermEndAction,
    align,
    binds,
    cancellation_effective_date,
    current_term,
    term_end,
)

anchors = st.dates(min_value=date(2000, 1, 1), max_value=date(2060, 12, 31))
cadences = st.builds(
    Cadence,
    st.sampled_from(list(IntervalUnit)),
    st.integers(min_value=1, max_value=6),
)
schedules = st.builds(Schedule, anchors, cadences, st.sampled_from(list(AnchorPolicy)))
terms = st.builds(Cadence, st.sampled_from(list(IntervalUnit)), st.integers(min_value=1, max_value=24))


def is_billing_date(day: date, schedule: Schedule) -> bool:
    return (
        day == schedule.anchor
        or period_containing(schedule.anchor, schedule.cadence, schedule.policy, day).start == day
    )


@given(schedules, terms, st.integers(min_value=0, max_value=400))
def test_a_term_ends_on_the_first_billing_date_on_or_after_its_last_day(schedule, term, offset):
    start = schedule.anchor + timedelta(days=offset)
    end = term_end(start, term, schedule)
    raw = add_interval(start, term, 1)
    assert is_billing_date(end, schedule)
    assert end >= raw
    # No billing date lies between the term's own end and the date it is moved to.
    assert end == raw or not is_billing_date(raw, schedule)
    assert end - raw < timedelta(days=schedule.cadence.max_days)


@given(schedules, terms, st.integers(min_value=0, max_value=60), st.sampled_from(list(TermEndAction)), st.data())
def test_a_cancellation_takes_effect_at_the_term_end_unless_given_inside_the_notice_period(
    schedule, term, notice, action, data
):
    start = schedule.anchor
    contract = Contract(start, term_end(start, term, schedule), term, notice, action)
    today = data.draw(st.dates(min_value=start, max_value=contract.end_date - timedelta(days=1)))
    effective = cancellation_effective_date(contract, schedule, today)
    assert effective is not None and effective > today
    assert is_billing_date(effective, schedule)
    if today < contract.end_date - timedelta(days=notice) or action is not TermEndAction.RENEW:
        assert effective == contract.end_date
    else:
        assert effective == term_end(contract.end_date, term, schedule) > contract.end_date


@given(schedules, terms, st.integers(min_value=0, max_value=2000))
def test_a_renewing_contract_always_commits_and_a_final_one_stops_at_its_end(schedule, term, days):
    start = schedule.anchor
    renewing = Contract(start, term_end(start, term, schedule), term, 0, TermEndAction.RENEW)
    today = start + timedelta(days=days)
    running = current_term(renewing, schedule, today)
    assert running.start_date <= today < running.end_date
    assert binds(renewing, schedule, today) == running
    ending = Contract(start, renewing.end_date, term, 0, TermEndAction.CANCEL)
    assert (binds(ending, schedule, today) is None) == (today >= ending.end_date)


@pytest.mark.parametrize(
    ("anchor", "start", "term", "end"),
    [
        # Twelve months from the anchor: already a billing date.
        (date(2026, 1, 15), date(2026, 1, 15), Cadence(IntervalUnit.MONTH, 12), date(2027, 1, 15)),
        # 45 days from Jan 15 is Mar 1, in the period Feb 15 to Mar 15.
        (date(2026, 1, 15), date(2026, 1, 15), Cadence(IntervalUnit.DAY, 45), date(2026, 3, 15)),
        # A month-end anchor: Jan 31 + 1 month is Feb 28, the clamped billing date itself.
        (date(2026, 1, 31), date(2026, 1, 31), Cadence(IntervalUnit.MONTH, 1), date(2026, 2, 28)),
        # Attached mid-period (Jan 20): one month later (Feb 20) ends with the period on Mar 15.
        (date(2026, 1, 15), date(2026, 1, 20), Cadence(IntervalUnit.MONTH, 1), date(2026, 3, 15)),
    ],
)
def test_term_ends_worked_out_by_hand(anchor, start, term, end):
    schedule = Schedule(anchor, Cadence(IntervalUnit.MONTH, 1))
    assert term_end(start, term, schedule) == end
    assert align(end, schedule) == end
    assert nth_renewal(anchor, schedule.cadence, schedule.policy, 0) == anchor
