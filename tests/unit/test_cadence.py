"""Renewal dates at month ends, leap days and DST changes, case by case.

Every expected date below was checked against dateutil (one step from the
anchor for ANCHORED, step by step for STICKY) before it was written down.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from rebill.domain.cadence import (
    AnchorPolicy,
    Cadence,
    IntervalUnit,
    Period,
    add_interval,
    following,
    is_due,
    local_today,
    next_renewal_after,
    nth_renewal,
    period_containing,
    renewal_dates,
    start_of_day,
    validate_time_zone,
)
from rebill.domain.errors import ValidationError

A = AnchorPolicy.ANCHORED
S = AnchorPolicy.STICKY
MONTHLY = Cadence(IntervalUnit.MONTH)
QUARTERLY = Cadence(IntervalUnit.MONTH, 3)
HALF_YEARLY = Cadence(IntervalUnit.MONTH, 6)
BIMONTHLY = Cadence(IntervalUnit.MONTH, 2)
YEARLY = Cadence(IntervalUnit.YEAR)
WEEKLY = Cadence(IntervalUnit.WEEK)
FORTNIGHTLY = Cadence(IntervalUnit.WEEK, 2)
EVERY_30_DAYS = Cadence(IntervalUnit.DAY, 30)
d = date

RENEWALS = [
    # Jan 31 monthly, anchored: clamps in February, returns to the 31st.
    (d(2025, 1, 31), MONTHLY, A, 1, d(2025, 2, 28)),
    (d(2024, 1, 31), MONTHLY, A, 1, d(2024, 2, 29)),
    (d(2025, 1, 31), MONTHLY, A, 2, d(2025, 3, 31)),
    (d(2025, 1, 31), MONTHLY, A, 3, d(2025, 4, 30)),
    (d(2025, 1, 31), MONTHLY, A, 12, d(2026, 1, 31)),
    (d(2025, 1, 31), MONTHLY, A, 13, d(2026, 2, 28)),
    # Aug 31 monthly, sticky (seed 004): the 30th until February, then the 28th.
    (d(2025, 8, 31), MONTHLY, S, 0, d(2025, 8, 31)),
    (d(2025, 8, 31), MONTHLY, S, 1, d(2025, 9, 30)),
    (d(2025, 8, 31), MONTHLY, S, 2, d(2025, 10, 30)),
    (d(2025, 8, 31), MONTHLY, S, 3, d(2025, 11, 30)),
    (d(2025, 8, 31), MONTHLY, S, 4, d(2025, 12, 30)),
    (d(2025, 8, 31), MONTHLY, S, 5, d(2026, 1, 30)),
    (d(2025, 8, 31), MONTHLY, S, 6, d(2026, 2, 28)),
    (d(2025, 8, 31), MONTHLY, S, 7, d(2026, 3, 28)),
    (d(2025, 8, 31), MONTHLY, S, 12, d(2026, 8, 28)),
    # The same start, anchored: every month's last day.
    (d(2025, 8, 31), MONTHLY, A, 1, d(2025, 9, 30)),
    (d(2025, 8, 31), MONTHLY, A, 2, d(2025, 10, 31)),
    (d(2025, 8, 31), MONTHLY, A, 3, d(2025, 11, 30)),
    (d(2025, 8, 31), MONTHLY, A, 4, d(2025, 12, 31)),
    (d(2025, 8, 31), MONTHLY, A, 6, d(2026, 2, 28)),
    (d(2025, 8, 31), MONTHLY, A, 7, d(2026, 3, 31)),
    # Starts on the 30th, 29th and 28th.
    (d(2025, 1, 30), MONTHLY, A, 1, d(2025, 2, 28)),
    (d(2025, 1, 30), MONTHLY, A, 2, d(2025, 3, 30)),
    (d(2025, 1, 30), MONTHLY, S, 1, d(2025, 2, 28)),
    (d(2025, 1, 30), MONTHLY, S, 2, d(2025, 3, 28)),
    (d(2024, 1, 29), MONTHLY, A, 1, d(2024, 2, 29)),
    (d(2024, 1, 29), MONTHLY, S, 2, d(2024, 3, 29)),
    (d(2025, 1, 29), MONTHLY, A, 2, d(2025, 3, 29)),
    (d(2025, 1, 29), MONTHLY, S, 2, d(2025, 3, 28)),
    (d(2025, 1, 28), MONTHLY, A, 1, d(2025, 2, 28)),
    (d(2025, 1, 28), MONTHLY, S, 2, d(2025, 3, 28)),
    (d(2025, 2, 28), MONTHLY, A, 1, d(2025, 3, 28)),
    # Feb 29 yearly: anchored returns to the 29th in leap years, sticky never does.
    (d(2024, 2, 29), YEARLY, A, 1, d(2025, 2, 28)),
    (d(2024, 2, 29), YEARLY, A, 2, d(2026, 2, 28)),
    (d(2024, 2, 29), YEARLY, A, 3, d(2027, 2, 28)),
    (d(2024, 2, 29), YEARLY, A, 4, d(2028, 2, 29)),
    (d(2024, 2, 29), YEARLY, A, 8, d(2032, 2, 29)),
    (d(2024, 2, 29), YEARLY, S, 1, d(2025, 2, 28)),
    (d(2024, 2, 29), YEARLY, S, 4, d(2028, 2, 28)),
    (d(2024, 2, 29), YEARLY, S, 8, d(2032, 2, 28)),
    (d(2025, 12, 31), YEARLY, A, 1, d(2026, 12, 31)),
    # Quarterly from Nov 30.
    (d(2025, 11, 30), QUARTERLY, A, 1, d(2026, 2, 28)),
    (d(2025, 11, 30), QUARTERLY, A, 2, d(2026, 5, 30)),
    (d(2025, 11, 30), QUARTERLY, S, 1, d(2026, 2, 28)),
    (d(2025, 11, 30), QUARTERLY, S, 2, d(2026, 5, 28)),
    (d(2023, 11, 30), QUARTERLY, A, 1, d(2024, 2, 29)),
    (d(2023, 11, 30), QUARTERLY, S, 2, d(2024, 5, 29)),
    (d(2023, 11, 30), QUARTERLY, A, 4, d(2024, 11, 30)),
    # Half-yearly from Aug 31.
    (d(2025, 8, 31), HALF_YEARLY, A, 1, d(2026, 2, 28)),
    (d(2025, 8, 31), HALF_YEARLY, A, 2, d(2026, 8, 31)),
    (d(2025, 8, 31), HALF_YEARLY, S, 2, d(2026, 8, 28)),
    (d(2025, 8, 31), HALF_YEARLY, A, 3, d(2027, 2, 28)),
    # Every two months from Dec 31.
    (d(2025, 12, 31), BIMONTHLY, A, 1, d(2026, 2, 28)),
    (d(2025, 12, 31), BIMONTHLY, A, 2, d(2026, 4, 30)),
    (d(2025, 12, 31), BIMONTHLY, A, 4, d(2026, 8, 31)),
    (d(2025, 12, 31), BIMONTHLY, S, 4, d(2026, 8, 28)),
    # Weeks and days cross month and year ends without any clamping.
    (d(2025, 12, 29), WEEKLY, A, 1, d(2026, 1, 5)),
    (d(2025, 12, 29), WEEKLY, S, 1, d(2026, 1, 5)),
    (d(2024, 2, 26), WEEKLY, A, 1, d(2024, 3, 4)),
    (d(2025, 2, 26), FORTNIGHTLY, S, 1, d(2025, 3, 12)),
    (d(2025, 12, 15), EVERY_30_DAYS, A, 1, d(2026, 1, 14)),
    (d(2025, 12, 15), EVERY_30_DAYS, S, 2, d(2026, 2, 13)),
    (d(2024, 1, 31), EVERY_30_DAYS, A, 1, d(2024, 3, 1)),
    (d(2025, 1, 31), EVERY_30_DAYS, S, 1, d(2025, 3, 2)),
]


@pytest.mark.parametrize(
    ("anchor", "cadence", "policy", "n", "expected"),
    RENEWALS,
    ids=[f"{a}-{c.count}x{c.unit.value}-{p.value}-n{n}" for a, c, p, n, _ in RENEWALS],
)
def test_nth_renewal_lands_on_the_expected_day(
    anchor: date, cadence: Cadence, policy: AnchorPolicy, n: int, expected: date
) -> None:
    assert nth_renewal(anchor, cadence, policy, n) == expected


def test_aug_31_sticky_drifts_to_the_30th_then_28th() -> None:
    assert renewal_dates(d(2025, 8, 31), MONTHLY, S, 8) == [
        d(2025, 9, 30),
        d(2025, 10, 30),
        d(2025, 11, 30),
        d(2025, 12, 30),
        d(2026, 1, 30),
        d(2026, 2, 28),
        d(2026, 3, 28),
        d(2026, 4, 28),
    ]


def test_jan_31_anchored_returns_to_the_31st_after_february() -> None:
    assert renewal_dates(d(2025, 1, 31), MONTHLY, A, 4) == [
        d(2025, 2, 28),
        d(2025, 3, 31),
        d(2025, 4, 30),
        d(2025, 5, 31),
    ]


def test_renewal_dates_of_zero_count_is_empty() -> None:
    assert renewal_dates(d(2025, 1, 31), MONTHLY, A, 0) == []


def test_sticky_nth_renewal_far_ahead_matches_stepping_one_interval_at_a_time() -> None:
    anchor = d(2000, 2, 29)
    stepped = anchor
    for _ in range(400):
        stepped = add_interval(stepped, Cadence(IntervalUnit.YEAR, 4), 1)
    assert nth_renewal(anchor, Cadence(IntervalUnit.YEAR, 4), S, 400) == stepped


def test_a_negative_renewal_index_is_refused() -> None:
    with pytest.raises(ValueError):
        nth_renewal(d(2025, 1, 31), MONTHLY, A, -1)


def test_a_policy_given_as_its_name_is_understood() -> None:
    assert nth_renewal(d(2025, 8, 31), MONTHLY, "STICKY", 2) == d(2025, 10, 30)  # type: ignore[arg-type]


def test_an_unknown_policy_is_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        nth_renewal(d(2025, 8, 31), MONTHLY, "SOMETIMES", 2)  # type: ignore[arg-type]
    assert refused.value.code == "INVALID_CADENCE"


# -- add_interval ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "cadence", "n", "expected"),
    [
        (d(2025, 1, 31), MONTHLY, 1, d(2025, 2, 28)),
        (d(2024, 1, 31), MONTHLY, 1, d(2024, 2, 29)),
        (d(2025, 3, 31), MONTHLY, -1, d(2025, 2, 28)),
        (d(2025, 5, 31), QUARTERLY, -1, d(2025, 2, 28)),
        (d(2024, 2, 29), YEARLY, -1, d(2023, 2, 28)),
        (d(2026, 1, 5), WEEKLY, -1, d(2025, 12, 29)),
        (d(2025, 12, 15), EVERY_30_DAYS, 1, d(2026, 1, 14)),
        (d(2025, 1, 31), MONTHLY, 0, d(2025, 1, 31)),
    ],
)
def test_add_interval_clamps_to_the_end_of_a_short_month(start: date, cadence: Cadence, n: int, expected: date) -> None:
    assert add_interval(start, cadence, n) == expected


def test_add_interval_past_year_9999_is_refused_with_a_code() -> None:
    with pytest.raises(ValidationError) as refused:
        add_interval(d(9999, 12, 1), MONTHLY, 1)
    assert refused.value.code == "DATE_OUT_OF_RANGE"


# -- Cadence ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cadence", "shortest", "longest"),
    [
        (MONTHLY, 28, 31),
        (BIMONTHLY, 59, 62),
        (QUARTERLY, 89, 92),
        (HALF_YEARLY, 181, 184),
        (Cadence(IntervalUnit.MONTH, 12), 365, 366),
        (YEARLY, 365, 366),
        (Cadence(IntervalUnit.YEAR, 4), 1460, 1461),
        (WEEKLY, 7, 7),
        (FORTNIGHTLY, 14, 14),
        (EVERY_30_DAYS, 30, 30),
        (Cadence(IntervalUnit.DAY), 1, 1),
    ],
)
def test_cadence_knows_its_shortest_and_longest_period(cadence: Cadence, shortest: int, longest: int) -> None:
    assert (cadence.min_days, cadence.max_days) == (shortest, longest)


@pytest.mark.parametrize("count", [0, -1, 1001, True, 1.0])
def test_cadence_count_outside_1_to_1000_is_refused(count: object) -> None:
    with pytest.raises(ValidationError) as refused:
        Cadence(IntervalUnit.MONTH, count)  # type: ignore[arg-type]
    assert refused.value.code == "INVALID_CADENCE"


def test_cadence_unit_must_be_an_interval_unit_not_a_string() -> None:
    with pytest.raises(ValidationError) as refused:
        Cadence("MONTH")  # type: ignore[arg-type]
    assert refused.value.code == "INVALID_CADENCE"


def test_cadence_accepts_the_bounds_1_and_1000() -> None:
    assert Cadence(IntervalUnit.DAY, 1).count == 1
    assert Cadence(IntervalUnit.DAY, 1000).count == 1000


def test_interval_unit_values_are_their_names() -> None:
    assert [unit.value for unit in IntervalUnit] == [unit.name for unit in IntervalUnit]
    assert [policy.value for policy in AnchorPolicy] == ["ANCHORED", "STICKY"]


# -- following / next_renewal_after / period_containing --------------------------


@pytest.mark.parametrize(
    ("anchor", "cadence", "policy", "current", "expected"),
    [
        (d(2025, 1, 31), MONTHLY, A, d(2025, 1, 31), d(2025, 2, 28)),
        (d(2025, 1, 31), MONTHLY, A, d(2025, 2, 28), d(2025, 3, 31)),
        (d(2024, 2, 29), YEARLY, A, d(2027, 2, 28), d(2028, 2, 29)),
        (d(2025, 8, 31), MONTHLY, S, d(2025, 9, 30), d(2025, 10, 30)),
        (d(2025, 8, 31), MONTHLY, S, d(2026, 2, 28), d(2026, 3, 28)),
        (d(2025, 11, 30), QUARTERLY, A, d(2026, 2, 28), d(2026, 5, 30)),
        (d(2025, 12, 15), EVERY_30_DAYS, A, d(2026, 1, 14), d(2026, 2, 13)),
        (d(2025, 12, 29), WEEKLY, S, d(2026, 1, 5), d(2026, 1, 12)),
    ],
)
def test_following_advances_one_step_of_the_schedule(
    anchor: date, cadence: Cadence, policy: AnchorPolicy, current: date, expected: date
) -> None:
    assert following(anchor, cadence, policy, current) == expected


def test_following_a_date_before_the_anchor_is_the_anchor() -> None:
    assert following(d(2025, 1, 31), MONTHLY, A, d(2025, 1, 1)) == d(2025, 1, 31)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (d(2024, 12, 1), d(2025, 1, 31)),  # before the anchor: the anchor itself
        (d(2025, 1, 31), d(2025, 2, 28)),  # on the anchor: strictly after
        (d(2025, 2, 27), d(2025, 2, 28)),
        (d(2025, 2, 28), d(2025, 3, 31)),
        (d(2025, 3, 1), d(2025, 3, 31)),
        (d(2025, 3, 31), d(2025, 4, 30)),
    ],
)
def test_next_renewal_after_is_the_first_schedule_date_strictly_after_the_day(day: date, expected: date) -> None:
    assert next_renewal_after(d(2025, 1, 31), MONTHLY, A, day) == expected


def test_next_renewal_after_on_a_sticky_schedule_uses_the_drifted_day() -> None:
    assert next_renewal_after(d(2025, 8, 31), MONTHLY, S, d(2026, 3, 29)) == d(2026, 4, 28)
    assert next_renewal_after(d(2025, 8, 31), MONTHLY, S, d(2026, 3, 27)) == d(2026, 3, 28)


@pytest.mark.parametrize(
    ("anchor", "cadence", "policy", "day", "start", "end"),
    [
        (d(2025, 1, 31), MONTHLY, A, d(2025, 1, 31), d(2025, 1, 31), d(2025, 2, 28)),
        (d(2025, 1, 31), MONTHLY, A, d(2025, 2, 28), d(2025, 2, 28), d(2025, 3, 31)),
        (d(2025, 1, 31), MONTHLY, A, d(2025, 3, 30), d(2025, 2, 28), d(2025, 3, 31)),
        (d(2025, 8, 31), MONTHLY, S, d(2026, 3, 1), d(2026, 2, 28), d(2026, 3, 28)),
        (d(2025, 8, 31), MONTHLY, S, d(2026, 3, 28), d(2026, 3, 28), d(2026, 4, 28)),
        (d(2025, 12, 15), EVERY_30_DAYS, A, d(2026, 1, 13), d(2025, 12, 15), d(2026, 1, 14)),
        (d(2024, 2, 29), YEARLY, A, d(2027, 12, 31), d(2027, 2, 28), d(2028, 2, 29)),
    ],
)
def test_period_containing_a_day_runs_between_consecutive_renewals(
    anchor: date,
    cadence: Cadence,
    policy: AnchorPolicy,
    day: date,
    start: date,
    end: date,
) -> None:
    assert period_containing(anchor, cadence, policy, day) == Period(start, end)


def test_period_containing_a_day_before_the_anchor_is_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        period_containing(d(2025, 1, 31), MONTHLY, A, d(2025, 1, 30))
    assert refused.value.code == "DATE_BEFORE_ANCHOR"


# -- Period ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "days"),
    [
        (d(2025, 2, 1), 28),
        (d(2024, 2, 1), 29),
        (d(2025, 4, 1), 30),
        (d(2025, 1, 1), 31),
    ],
)
def test_a_monthly_period_lasts_as_many_days_as_its_month(start: date, days: int) -> None:
    period = Period(start, add_interval(start, MONTHLY))
    assert period.days == days


def test_a_period_contains_its_start_but_not_its_end() -> None:
    period = Period(d(2025, 2, 1), d(2025, 3, 1))
    assert period.contains(d(2025, 2, 1))
    assert period.contains(d(2025, 2, 28))
    assert not period.contains(d(2025, 3, 1))
    assert not period.contains(d(2025, 1, 31))


def test_an_empty_or_backward_period_is_refused() -> None:
    for end in (d(2025, 2, 1), d(2025, 1, 1)):
        with pytest.raises(ValidationError) as refused:
            Period(d(2025, 2, 1), end)
        assert refused.value.code == "INVALID_PERIOD"


# -- time zones --------------------------------------------------------------------

NEW_YORK = "America/New_York"


@pytest.mark.parametrize(
    ("now", "tz", "expected"),
    [
        # 04:30 UTC is 23:30 EST the evening before the March switch.
        (datetime(2026, 3, 8, 4, 30, tzinfo=UTC), NEW_YORK, d(2026, 3, 7)),
        # After the switch (EDT, UTC-4) 04:30 UTC is already 00:30.
        (datetime(2026, 3, 9, 4, 30, tzinfo=UTC), NEW_YORK, d(2026, 3, 9)),
        # Nov 1 00:30 EDT, an hour and a half before clocks fall back.
        (datetime(2026, 11, 1, 4, 30, tzinfo=UTC), NEW_YORK, d(2026, 11, 1)),
        # Nov 2 04:30 UTC is 23:30 EST on Nov 1.
        (datetime(2026, 11, 2, 4, 30, tzinfo=UTC), NEW_YORK, d(2026, 11, 1)),
        (datetime(2026, 1, 1, 23, 30, tzinfo=UTC), "Asia/Tokyo", d(2026, 1, 2)),
        (datetime(2026, 1, 1, 23, 30, tzinfo=UTC), "UTC", d(2026, 1, 1)),
    ],
)
def test_local_today_is_the_calendar_date_in_the_subscriptions_zone(now: datetime, tz: str, expected: date) -> None:
    assert local_today(now, tz) == expected


def test_local_today_defaults_to_utc() -> None:
    assert local_today(datetime(2026, 1, 1, 23, 30, tzinfo=UTC)) == d(2026, 1, 1)


def test_local_today_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError):
        local_today(datetime(2026, 1, 1, 12, 0), NEW_YORK)


@pytest.mark.parametrize("tz", ["Mars/Olympus_Mons", "utc", "", "America", "../etc", "localtime"])
def test_an_unknown_time_zone_is_refused_with_a_code(tz: str) -> None:
    with pytest.raises(ValidationError) as refused:
        validate_time_zone(tz)
    assert refused.value.code == "UNKNOWN_TIME_ZONE"
    with pytest.raises(ValidationError):
        local_today(datetime(2026, 1, 1, tzinfo=UTC), tz)


def test_a_known_time_zone_is_returned_unchanged() -> None:
    assert validate_time_zone("Europe/Paris") == "Europe/Paris"


def _utc_hours_between(start: datetime, end: datetime) -> float:
    return (end.astimezone(UTC) - start.astimezone(UTC)) / timedelta(hours=1)


@pytest.mark.parametrize(
    ("day", "tz", "hours"),
    [
        (d(2026, 3, 8), NEW_YORK, 23),
        (d(2026, 11, 1), NEW_YORK, 25),
        (d(2026, 3, 9), NEW_YORK, 24),
        (d(2026, 3, 29), "Europe/Paris", 23),
        (d(2026, 10, 25), "Europe/Paris", 25),
        # Santiago springs forward at midnight: the day starts at 01:00.
        (d(2024, 9, 8), "America/Santiago", 23),
        (d(2026, 3, 8), "UTC", 24),
    ],
)
def test_the_day_of_a_dst_change_lasts_23_or_25_hours(day: date, tz: str, hours: int) -> None:
    start = start_of_day(day, tz)
    assert _utc_hours_between(start, start_of_day(day + timedelta(days=1), tz)) == hours


def test_start_of_day_is_local_midnight_as_an_aware_datetime() -> None:
    start = start_of_day(d(2026, 3, 8), NEW_YORK)
    assert start.utcoffset() == timedelta(hours=-5)
    assert (start.hour, start.minute) == (0, 0)
    assert start.astimezone(UTC) == datetime(2026, 3, 8, 5, 0, tzinfo=UTC)
    after_switch = start_of_day(d(2026, 3, 9), NEW_YORK)
    assert after_switch.astimezone(UTC) == datetime(2026, 3, 9, 4, 0, tzinfo=UTC)


def test_start_of_day_skipped_by_dst_is_the_instant_the_clocks_jump_to() -> None:
    start = start_of_day(d(2024, 9, 8), "America/Santiago")
    assert start.astimezone(UTC) == datetime(2024, 9, 8, 4, 0, tzinfo=UTC)
    assert start.date() == d(2024, 9, 8)
    a_second_before = start.astimezone(UTC) - timedelta(seconds=1)
    assert a_second_before.astimezone(ZoneInfo("America/Santiago")).date() == d(2024, 9, 7)


@pytest.mark.parametrize(
    ("renewal_date", "now", "due"),
    [
        # 23:30 EST on Mar 7: a Mar 8 renewal is not due yet in New York...
        (d(2026, 3, 8), datetime(2026, 3, 8, 4, 30, tzinfo=UTC), False),
        # ...but is at 00:00 local on Mar 8.
        (d(2026, 3, 8), datetime(2026, 3, 8, 5, 0, tzinfo=UTC), True),
        (d(2026, 3, 7), datetime(2026, 3, 8, 4, 30, tzinfo=UTC), True),
    ],
)
def test_a_renewal_is_due_from_local_midnight_of_its_date(renewal_date: date, now: datetime, due: bool) -> None:
    assert is_due(renewal_date, now, NEW_YORK) is due
