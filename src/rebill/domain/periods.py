"""The calendar periods a report is cut into: days, weeks or months between two dates.

Revenue metrics and the billing forecast both answer "one point per period
from ``from`` to ``to``": the periods are calendar ones (a week starts on
Monday, a month on its first day), clipped to the range, so the first and
last points may cover part of a period. The number of points is known
before any is made, so an over-long range is refused without building it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, timedelta

from rebill.domain.errors import ValidationError

MAX_POINTS = 400


class MetricsInterval(enum.StrEnum):
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"


@dataclass(frozen=True, slots=True)
class Period:
    """One point's days, both included."""

    start: date
    end: date


def _period_start(day: date, interval: MetricsInterval) -> date:
    if interval is MetricsInterval.WEEK:
        return day - timedelta(days=day.weekday())
    if interval is MetricsInterval.MONTH:
        return day.replace(day=1)
    return day


def point_count(start: date, end: date, interval: MetricsInterval) -> int:
    """How many periods ``start``..``end`` spans (``end`` included)."""
    if interval is MetricsInterval.DAY:
        return (end - start).days + 1
    if interval is MetricsInterval.WEEK:
        return (_period_start(end, interval) - _period_start(start, interval)).days // 7 + 1
    return (end.year - start.year) * 12 + end.month - start.month + 1


def periods(start: date, end: date, interval: MetricsInterval, *, limit: int = MAX_POINTS) -> list[Period]:
    """The periods from ``start`` to ``end`` (both included), each clipped to the range.

    Refused (``INVALID_INPUT`` naming the field) when ``start`` is after ``end``
    or when there would be more than ``limit`` points.
    """
    if start > end:
        raise ValidationError(f"from ({start}) is after to ({end})", field=["from"])
    count = point_count(start, end, interval)
    if count > limit:
        raise ValidationError(
            f"{start} to {end} by {interval.value} is {count} points; at most {limit} are allowed: "
            "ask for a shorter range or a longer interval",
            field=["to"],
            details={"points": count, "limit": limit},
        )
    first = _period_start(start, interval)
    return [Period(max(_nth(first, interval, n), start), min(_last_day(first, interval, n), end)) for n in range(count)]


def _nth(first: date, interval: MetricsInterval, n: int) -> date:
    """The first day of the ``n``-th period after the one starting on ``first``."""
    if interval is MetricsInterval.DAY:
        return first + timedelta(days=n)
    if interval is MetricsInterval.WEEK:
        return first + timedelta(weeks=n)
    years, month0 = divmod(first.month - 1 + n, 12)
    return date(first.year + years, month0 + 1, 1)


def _last_day(first: date, interval: MetricsInterval, n: int) -> date:
    """The last day of the ``n``-th period (the calendar's last day when the next one is past it)."""
    try:
        return _nth(first, interval, n + 1) - timedelta(days=1)
    except (OverflowError, ValueError):
        return date.max
