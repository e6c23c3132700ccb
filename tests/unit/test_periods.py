"""Report periods: calendar days, weeks (from Monday) and months, clipped to the range asked."""

from __future__ import annotations

from datetime import date

import pytest

from rebill.domain.errors import ValidationError
from rebill.domain.periods import MAX_POINTS, MetricsInterval, Period, periods, point_count

D = date
DAY, WEEK, MONTH = MetricsInterval.DAY, MetricsInterval.WEEK, MetricsInterval.MONTH


@pytest.mark.parametrize(
    ("start", "end", "interval", "expected"),
    [
        (D(2027, 1, 1), D(2027, 1, 3), DAY, [(D(2027, 1, d), D(2027, 1, d)) for d in (1, 2, 3)]),
        # 2027-01-15 is a Friday: the first week is cut to Friday..Sunday.
        (
            D(2027, 1, 15),
            D(2027, 1, 30),
            WEEK,
            [(D(2027, 1, 15), D(2027, 1, 17)), (D(2027, 1, 18), D(2027, 1, 24)), (D(2027, 1, 25), D(2027, 1, 30))],
        ),
        (
            D(2027, 12, 15),
            D(2028, 3, 10),
            MONTH,
            [
                (D(2027, 12, 15), D(2027, 12, 31)),
                (D(2028, 1, 1), D(2028, 1, 31)),
                (D(2028, 2, 1), D(2028, 2, 29)),
                (D(2028, 3, 1), D(2028, 3, 10)),
            ],
        ),
        (D(2027, 5, 9), D(2027, 5, 9), MONTH, [(D(2027, 5, 9), D(2027, 5, 9))]),
        (D(9999, 12, 1), D(9999, 12, 31), MONTH, [(D(9999, 12, 1), D(9999, 12, 31))]),
    ],
)
def test_periods_are_calendar_periods_clipped_to_the_range(start, end, interval, expected):
    got = periods(start, end, interval)
    assert got == [Period(a, b) for a, b in expected]
    assert point_count(start, end, interval) == len(expected)


def test_four_hundred_points_are_allowed_and_four_hundred_and_one_refused():
    assert len(periods(D(2027, 1, 1), D(2028, 2, 4), DAY)) == MAX_POINTS
    with pytest.raises(ValidationError, match="401 points; at most 400"):
        periods(D(2027, 1, 1), D(2028, 2, 5), DAY)
    with pytest.raises(ValidationError, match="points"):
        periods(D(1, 1, 1), D(9999, 12, 31), MONTH)


def test_a_range_that_ends_before_it_starts_is_refused():
    with pytest.raises(ValidationError, match="after"):
        periods(D(2027, 2, 1), D(2027, 1, 31), MONTH)
