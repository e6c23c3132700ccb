"""Properties every schedule must keep, whatever the anchor, cadence and policy.

The table in test_cadence.py pins the famous cases; these properties look for
the ones nobody thought of, and hold the fast integer arithmetic to dateutil.
"""

from __future__ import annotations

from datetime import date, timedelta
from itertools import pairwise

from dateutil.relativedelta import relativedelta
from hypothesis import given, settings
from hypothesis import strategies as st

from rebill.domain.cadence import (
    AnchorPolicy,
    Cadence,
    IntervalUnit,
    add_interval,
    following,
    next_renewal_after,
    nth_renewal,
    period_containing,
    renewal_dates,
)

anchors = st.dates(min_value=date(1900, 1, 1), max_value=date(2300, 12, 31))
# Month ends are where everything goes wrong: draw them often.
month_end_anchors = st.builds(
    lambda year, month, day: date(year, month, min(day, _last_day(year, month))),
    st.integers(1900, 2300),
    st.integers(1, 12),
    st.integers(27, 31),
)
any_anchor = st.one_of(anchors, month_end_anchors)
cadences = st.builds(Cadence, st.sampled_from(list(IntervalUnit)), st.integers(1, 12))
policies = st.sampled_from(list(AnchorPolicy))
steps = st.integers(0, 24)


def _last_day(year: int, month: int) -> int:
    return ((date(year, month, 28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)).day


def _dateutil_delta(cadence: Cadence, n: int) -> relativedelta:
    """The reference: dateutil's own idea of n intervals, written out per unit."""
    if cadence.unit is IntervalUnit.DAY:
        return relativedelta(days=n * cadence.count)
    if cadence.unit is IntervalUnit.WEEK:
        return relativedelta(weeks=n * cadence.count)
    if cadence.unit is IntervalUnit.MONTH:
        return relativedelta(months=n * cadence.count)
    return relativedelta(years=n * cadence.count)


@given(any_anchor, cadences, policies)
def test_renewal_dates_strictly_increase(anchor: date, cadence: Cadence, policy: AnchorPolicy) -> None:
    dates = [anchor, *renewal_dates(anchor, cadence, policy, 24)]
    assert all(earlier < later for earlier, later in pairwise(dates))


@given(any_anchor, cadences, steps)
def test_anchored_dates_never_drift_from_the_anchor(anchor: date, cadence: Cadence, n: int) -> None:
    expected = anchor + _dateutil_delta(cadence, n)
    assert nth_renewal(anchor, cadence, AnchorPolicy.ANCHORED, n) == expected
    assert anchor + cadence.delta(n) == expected


@given(any_anchor, cadences, steps)
def test_sticky_dates_step_one_dateutil_interval_at_a_time(anchor: date, cadence: Cadence, n: int) -> None:
    expected = anchor
    for _ in range(n):
        expected = expected + _dateutil_delta(cadence, 1)
    assert nth_renewal(anchor, cadence, AnchorPolicy.STICKY, n) == expected


@given(any_anchor, cadences, st.integers(-60, 60))
def test_add_interval_agrees_with_dateutil(anchor: date, cadence: Cadence, n: int) -> None:
    assert add_interval(anchor, cadence, n) == anchor + cadence.delta(n)


@given(any_anchor, cadences, policies)
def test_every_period_lasts_between_the_cadences_shortest_and_longest(
    anchor: date, cadence: Cadence, policy: AnchorPolicy
) -> None:
    dates = [anchor, *renewal_dates(anchor, cadence, policy, 24)]
    for start, end in pairwise(dates):
        assert cadence.min_days <= (end - start).days <= cadence.max_days


@given(any_anchor, cadences, policies, steps)
def test_following_a_schedule_date_is_the_next_schedule_date(
    anchor: date, cadence: Cadence, policy: AnchorPolicy, k: int
) -> None:
    current = nth_renewal(anchor, cadence, policy, k)
    assert following(anchor, cadence, policy, current) == nth_renewal(anchor, cadence, policy, k + 1)


@given(any_anchor, cadences, st.integers(0, 12), st.integers(0, 12))
def test_an_anchored_schedule_restarted_from_one_of_its_dates_is_unchanged_below_the_29th(
    anchor: date, cadence: Cadence, k: int, m: int
) -> None:
    # From the 29th on, a clamped date (Feb 28) would carry a smaller day of
    # month into the new anchor, which is exactly what moving the anchor means.
    if anchor.day > 28:
        anchor = anchor.replace(day=28)
    policy = AnchorPolicy.ANCHORED
    moved = nth_renewal(anchor, cadence, policy, k)
    assert nth_renewal(moved, cadence, policy, m) == nth_renewal(anchor, cadence, policy, k + m)


@given(any_anchor, cadences, st.integers(0, 12), st.integers(0, 12))
def test_a_sticky_schedule_restarted_from_one_of_its_dates_is_unchanged(
    anchor: date, cadence: Cadence, k: int, m: int
) -> None:
    policy = AnchorPolicy.STICKY
    moved = nth_renewal(anchor, cadence, policy, k)
    assert nth_renewal(moved, cadence, policy, m) == nth_renewal(anchor, cadence, policy, k + m)


@given(any_anchor, cadences, policies, st.integers(0, 3000))
def test_the_period_containing_a_day_runs_between_consecutive_schedule_dates(
    anchor: date, cadence: Cadence, policy: AnchorPolicy, offset: int
) -> None:
    day = anchor + timedelta(days=offset)
    period = period_containing(anchor, cadence, policy, day)
    assert period.contains(day)
    # start is a schedule date: the anchor, or the date that follows the day before it.
    assert period.start == anchor or (
        next_renewal_after(anchor, cadence, policy, period.start - timedelta(days=1)) == period.start
    )
    # end is the very next one.
    assert period.end == following(anchor, cadence, policy, period.start)
    assert period.end == next_renewal_after(anchor, cadence, policy, day)


@settings(max_examples=50)
@given(any_anchor, cadences, policies, st.integers(0, 3000))
def test_next_renewal_after_matches_a_walk_along_the_schedule(
    anchor: date, cadence: Cadence, policy: AnchorPolicy, offset: int
) -> None:
    day = anchor + timedelta(days=offset - 40)
    k = 0
    while nth_renewal(anchor, cadence, policy, k) <= day:
        k += 1
    assert next_renewal_after(anchor, cadence, policy, day) == nth_renewal(anchor, cadence, policy, k)
