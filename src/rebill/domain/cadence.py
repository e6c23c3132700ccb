"""Billing dates: how often a subscription renews, and on which calendar day.

Every rule about renewal dates lives here so that the renewal engine, the
GraphQL previews and the bulk editor can never disagree on a date. Dates are
local calendar dates in the subscription's time zone; turning an instant into
such a date is done once, by :func:`local_today`.

Two anchor policies exist because real platforms disagree (see DOMAIN.md):

* ``ANCHORED`` remembers the anchor's day of month. The n-th renewal is
  computed from the anchor in one step, so a short month clamps one date and
  the next month returns to the anchor's day (Jan 31 → Feb 28 → Mar 31).
* ``STICKY`` steps from the previous renewal, so a clamp is permanent
  (Aug 31 → Sep 30 → Oct 30 → … → Feb 28 → Mar 28, seed 004).

Month arithmetic follows ``dateutil.relativedelta`` (a day that does not exist
in the target month becomes that month's last day); the hot paths use an
equivalent integer computation, which the property tests hold to
``relativedelta``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import cache, lru_cache
from zoneinfo import ZoneInfo, available_timezones

from dateutil.relativedelta import relativedelta

from rebill.domain.errors import ValidationError

MAX_INTERVAL_COUNT = 1000

_MONTH_LENGTHS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# 400 Gregorian years repeat exactly, leap days included.
_CYCLE_MONTHS = 400 * 12


class IntervalUnit(StrEnum):
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"
    YEAR = "YEAR"


class AnchorPolicy(StrEnum):
    ANCHORED = "ANCHORED"
    STICKY = "STICKY"


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def days_in_month(year: int, month: int) -> int:
    if month == 2 and _is_leap(year):
        return 29
    return _MONTH_LENGTHS[month - 1]


def _out_of_range(error: Exception) -> ValidationError:
    return ValidationError(
        f"billing date out of the supported calendar range: {error}",
        code="DATE_OUT_OF_RANGE",
    )


def _shift_months(d: date, months: int) -> date:
    """``d + relativedelta(months=months)``, without relativedelta's overhead."""
    years, month0 = divmod(d.month - 1 + months, 12)
    year = d.year + years
    try:
        return date(year, month0 + 1, min(d.day, days_in_month(year, month0 + 1)))
    except ValueError as error:
        raise _out_of_range(error) from None


def _shift_days(d: date, days: int) -> date:
    try:
        return d + timedelta(days=days)
    except OverflowError as error:
        raise _out_of_range(error) from None


@lru_cache(maxsize=256)
def _month_span_bounds(months: int) -> tuple[int, int]:
    """Shortest and longest period of ``months`` months, over every start and policy.

    A period runs from day D of one month to day D of the month ``months``
    later, each clamped to its month's end (D ≥ 28 is all that can differ).
    This covers ANCHORED periods (D is the anchor's day) and STICKY ones (D
    is the current day). The calendar repeats every 400 years, so one cycle
    of start months is enough.
    """
    shortest, longest = math.inf, 0
    for start in range(_CYCLE_MONTHS):
        y0, m0 = divmod(start, 12)
        y1, m1 = divmod(start + months, 12)
        first = date(2000 + y0, m0 + 1, 1)
        last = date(2000 + y1, m1 + 1, 1)
        base = (last - first).days
        len0 = days_in_month(first.year, first.month)
        len1 = days_in_month(last.year, last.month)
        for day in (28, 29, 30, 31):
            length = base + min(day, len1) - min(day, len0)
            shortest = min(shortest, length)
            longest = max(longest, length)
    return int(shortest), longest


@dataclass(frozen=True, slots=True)
class Cadence:
    """How often a subscription renews: ``count`` x ``unit`` (MONTH x 3 is quarterly)."""

    unit: IntervalUnit
    count: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.unit, IntervalUnit):
            raise ValidationError(
                f"interval unit must be one of DAY, WEEK, MONTH, YEAR, not {self.unit!r}",
                code="INVALID_CADENCE",
            )
        if isinstance(self.count, bool) or not isinstance(self.count, int) or not 1 <= self.count <= MAX_INTERVAL_COUNT:
            raise ValidationError(
                f"interval count must be an integer from 1 to {MAX_INTERVAL_COUNT}, not {self.count!r}",
                code="INVALID_CADENCE",
            )

    @property
    def months(self) -> int:
        """Months per interval; 0 for day-based cadences."""
        if self.unit is IntervalUnit.MONTH:
            return self.count
        if self.unit is IntervalUnit.YEAR:
            return 12 * self.count
        return 0

    @property
    def days(self) -> int:
        """Days per interval; 0 for month-based cadences."""
        if self.unit is IntervalUnit.DAY:
            return self.count
        if self.unit is IntervalUnit.WEEK:
            return 7 * self.count
        return 0

    def delta(self, n: int = 1) -> relativedelta:
        """``n`` intervals as a relativedelta, to be added in one step."""
        if self.unit is IntervalUnit.DAY:
            return relativedelta(days=n * self.count)
        if self.unit is IntervalUnit.WEEK:
            return relativedelta(weeks=n * self.count)
        if self.unit is IntervalUnit.MONTH:
            return relativedelta(months=n * self.count)
        return relativedelta(years=n * self.count)

    @property
    def min_days(self) -> int:
        """The shortest period this cadence can produce, e.g. 28 for monthly."""
        if self.months:
            return _month_span_bounds(self.months)[0]
        return self.days

    @property
    def max_days(self) -> int:
        """The longest period this cadence can produce, e.g. 31 for monthly."""
        if self.months:
            return _month_span_bounds(self.months)[1]
        return self.days

    def __str__(self) -> str:
        return f"{self.count} x {self.unit.value}"


def _check_policy(policy: AnchorPolicy) -> AnchorPolicy:
    if policy.__class__ is AnchorPolicy:
        return policy
    try:
        return AnchorPolicy(policy)
    except ValueError:
        raise ValidationError(
            f"anchor policy must be ANCHORED or STICKY, not {policy!r}",
            code="INVALID_CADENCE",
        ) from None


def add_interval(d: date, cadence: Cadence, n: int = 1) -> date:
    """``d`` plus ``n`` intervals (negative goes back), clamped to the month's end.

    Exactly ``d + cadence.delta(n)`` as dateutil computes it (the property
    tests hold it to that), with integer arithmetic because the renewal
    engine calls it for every subscription it advances.
    """
    months = cadence.months
    if months:
        return _shift_months(d, n * months)
    return _shift_days(d, n * cadence.days)


@dataclass(frozen=True, slots=True)
class Period:
    """A billing period: from ``start`` included to ``end`` (the next renewal) excluded."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise ValidationError(
                f"a period must end after it starts ({self.start} to {self.end})",
                code="INVALID_PERIOD",
            )

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def contains(self, d: date) -> bool:
        return self.start <= d < self.end


def _sticky_after(anchor: date, months: int, n: int) -> date:
    """The STICKY schedule's n-th date without building the dates in between.

    Each step clamps the day to the month it lands in, so the day of the
    n-th date is the smallest of the anchor's day and the lengths of the
    months visited. Once the day is no longer than any month the schedule
    can visit, it can never change again and the walk stops.
    """
    start = anchor.year * 12 + anchor.month - 1
    visited = {(anchor.month - 1 + j * months) % 12 for j in range(1, 13)}
    floor = min(_MONTH_LENGTHS[m] for m in visited)
    day = anchor.day
    for j in range(1, n + 1):
        if day <= floor:
            break
        year, month0 = divmod(start + j * months, 12)
        day = min(day, days_in_month(year, month0 + 1))
    year, month0 = divmod(start + n * months, 12)
    try:
        return date(year, month0 + 1, min(day, days_in_month(year, month0 + 1)))
    except ValueError as error:
        raise _out_of_range(error) from None


def nth_renewal(anchor: date, cadence: Cadence, policy: AnchorPolicy, n: int) -> date:
    """The n-th date of the schedule that starts on ``anchor`` (n = 0 is the anchor)."""
    if n < 0:
        raise ValueError(f"renewal index must be >= 0, not {n}")
    policy = _check_policy(policy)
    months = cadence.months
    if not months:
        return _shift_days(anchor, n * cadence.days)
    if policy is AnchorPolicy.ANCHORED:
        return _shift_months(anchor, n * months)
    return _sticky_after(anchor, months, n)


def _index_at_or_before(anchor: date, cadence: Cadence, day: date) -> int:
    """An index k whose date is at most one step away from ``day``.

    For day cadences nth(k) <= day < nth(k+1) exactly. For month cadences
    nth(k) falls in the same month as ``day`` or earlier, so it is either the
    answer or one step after it: schedule dates only clamp within a month.
    """
    months = cadence.months
    if not months:
        return (day - anchor).days // cadence.days
    return ((day.year - anchor.year) * 12 + day.month - anchor.month) // months


def _step(anchor: date, cadence: Cadence, policy: AnchorPolicy, k: int, current: date) -> date:
    """nth(k + 1) given ``current`` == nth(k)."""
    months = cadence.months
    if not months:
        return _shift_days(current, cadence.days)
    if policy is AnchorPolicy.ANCHORED:
        return _shift_months(anchor, (k + 1) * months)
    return _shift_months(current, months)


def next_renewal_after(anchor: date, cadence: Cadence, policy: AnchorPolicy, day: date) -> date:
    """The first schedule date strictly after ``day`` (the anchor itself for earlier days)."""
    policy = _check_policy(policy)
    if day < anchor:
        return anchor
    k = _index_at_or_before(anchor, cadence, day)
    months = cadence.months
    if months and (day.year * 12 + day.month - anchor.year * 12 - anchor.month) % months == 0:
        candidate = nth_renewal(anchor, cadence, policy, k)
        if candidate > day:
            return candidate
        return _step(anchor, cadence, policy, k, candidate)
    # nth(k) is on or before ``day`` (in an earlier month, for month cadences).
    return nth_renewal(anchor, cadence, policy, k + 1)


def following(anchor: date, cadence: Cadence, policy: AnchorPolicy, current: date) -> date:
    """The renewal after ``current``, a date of the schedule: one step of the engine.

    ANCHORED recomputes from the anchor (arithmetically, no loop) so that a
    clamped February never pulls later dates off the anchor's day; STICKY is
    defined as one interval after the previous date. Written out flat because
    the renewal engine calls it once per subscription per run.
    """
    if policy is not AnchorPolicy.ANCHORED and _check_policy(policy) is AnchorPolicy.STICKY:
        return add_interval(current, cadence, 1)
    if current < anchor:
        return anchor
    unit = cadence.unit
    if unit is IntervalUnit.MONTH or unit is IntervalUnit.YEAR:
        months = cadence.count if unit is IntervalUnit.MONTH else 12 * cadence.count
        k, offset = divmod((current.year - anchor.year) * 12 + current.month - anchor.month, months)
        if offset == 0:
            # nth(k) falls in current's month; it is the answer if still ahead.
            day = min(anchor.day, days_in_month(current.year, current.month))
            if day > current.day:
                return current.replace(day=day)
        return _shift_months(anchor, (k + 1) * months)
    step = cadence.days
    return _shift_days(anchor, ((current - anchor).days // step + 1) * step)


def period_containing(anchor: date, cadence: Cadence, policy: AnchorPolicy, day: date) -> Period:
    """The billing period [nth(k), nth(k + 1)) that ``day`` falls in."""
    policy = _check_policy(policy)
    if day < anchor:
        raise ValidationError(
            f"{day} is before the schedule's anchor {anchor}: no billing period contains it",
            code="DATE_BEFORE_ANCHOR",
        )
    k = _index_at_or_before(anchor, cadence, day)
    start = nth_renewal(anchor, cadence, policy, k)
    if start <= day:
        return Period(start, _step(anchor, cadence, policy, k, start))
    return Period(nth_renewal(anchor, cadence, policy, k - 1), start)


def renewal_dates(anchor: date, cadence: Cadence, policy: AnchorPolicy, count: int) -> list[date]:
    """The first ``count`` renewals after the anchor (nth 1 … count)."""
    if count < 0:
        raise ValueError(f"count must be >= 0, not {count}")
    policy = _check_policy(policy)
    dates: list[date] = []
    current = anchor
    for k in range(count):
        current = _step(anchor, cadence, policy, k, current)
        dates.append(current)
    return dates


# -- time zones ----------------------------------------------------------------

# Names that zoneinfo resolves but that are not zones a subscription can live in:
# "localtime" is whatever the host is set to, "Factory" means "not configured".
_NOT_ZONES = frozenset({"localtime", "Factory", "posixrules"})


@cache
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones()) - _NOT_ZONES


@lru_cache(maxsize=1024)
def _zone(tz: str) -> ZoneInfo:
    if tz not in _known_zones():
        raise ValidationError(
            f"unknown time zone {tz!r}: expected an IANA name such as 'Europe/Paris'",
            code="UNKNOWN_TIME_ZONE",
            details={"timeZone": tz},
        )
    return ZoneInfo(tz)


def validate_time_zone(tz: str) -> str:
    """Return ``tz`` if it is an IANA time zone name, else refuse it."""
    if not isinstance(tz, str):
        raise ValidationError(f"a time zone is an IANA name, not {type(tz).__name__}", code="UNKNOWN_TIME_ZONE")
    _zone(tz)
    return tz


def local_today(now: datetime, tz: str = "UTC") -> date:
    """The calendar date in ``tz`` at the instant ``now``.

    A naive ``now`` is refused: guessing its zone would shift renewals by a
    day for every subscription far from the server's clock.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    return now.astimezone(_zone(validate_time_zone(tz))).date()


def start_of_day(d: date, tz: str = "UTC") -> datetime:
    """The first instant of the local day ``d`` in ``tz``, as an aware datetime.

    Usually local midnight; where a DST change skips midnight (some zones
    switch at 00:00) it is the instant the clocks jump to. Subtract two of
    these after converting to UTC: Python subtracts datetimes that share a
    tzinfo by wall clock, which hides the 23- and 25-hour days.
    """
    zone = _zone(validate_time_zone(tz))
    wall = datetime.combine(d, time(0), tzinfo=zone)
    instants = [wall.astimezone(UTC), wall.replace(fold=1).astimezone(UTC)]
    naive = wall.replace(tzinfo=None)
    real = [u for u in instants if u.astimezone(zone).replace(tzinfo=None) == naive]
    if real:
        return min(real).astimezone(zone)
    # Midnight falls in a gap: find the first instant whose local date is d.
    low, high = min(instants), max(instants)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).date() >= d:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0).astimezone(zone)


def is_due(renewal_date: date, now: datetime, tz: str) -> bool:
    """Whether a renewal dated ``renewal_date`` may be billed at ``now`` in ``tz``."""
    return renewal_date <= local_today(now, tz)
