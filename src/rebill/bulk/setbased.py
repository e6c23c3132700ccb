"""Moving next renewals a whole chunk at a time, in SQL, where the domain's outcome is certain.

A segment whose only action moves the next renewal (``shiftNextRenewal``,
``setNextRenewalDate``) changes four dates a subscription: the rule of
``updates.change_next_renewal_date``, which the runner would otherwise run
on a state it builds for every subscription (its items, coupons, profile,
contract…), then diff for the history and the undo. Here the runner only
works out the new date per subscription, with the domain's own ``Shift``,
from the row it locked, and the database writes the rest for the whole
chunk in the statement that writes the chunk's run items: the dates, the
version, the history entry and the run item with the same changes and undo
delta the domain path writes.

The new date is taken only when the domain certainly applies it: the
subscription is neither final nor future, has a next renewal, and the new
date differs from it, is in the supported range and is not in the past.
Anything else (a refusal with its message, a change that moves only the
anchor) goes through the domain as before, so a refusal reads the same on
either path. ``tests/integration/test_bulk_setbased.py`` holds the two
paths to the same rows, history and run items on a mixed data set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from rebill.bulk.plan import Action, SetNextRenewalDate, ShiftNextRenewal
from rebill.domain.errors import RebillError
from rebill.domain.status import FINAL, SubscriptionStatus
from rebill.domain.updates import MAX_DATE, MIN_DATE, Shift

# What ``change_next_renewal_date`` calls its outcome (the history's action).
ACTION = "next_renewal_date_changed"
_NOT_MOVABLE = frozenset(s.value for s in (*FINAL, SubscriptionStatus.FUTURE))


@dataclass(frozen=True)
class DateMove:
    """A segment's move of the next renewal: by ``shift``, or to ``to``."""

    shift: Shift | None = None
    to: date | None = None

    def target(self, status: str, next_renewal: date | None, today: date) -> date | None:
        """The date ``change_next_renewal_date`` sets for this row, when it certainly applies it; else None."""
        if next_renewal is None or status in _NOT_MOVABLE:
            return None
        if self.shift is not None:
            new = self.shift.apply(next_renewal)
        else:
            assert self.to is not None
            new = self.to
        if new == next_renewal or new < today or not MIN_DATE <= new <= MAX_DATE:
            return None
        return new


def date_move(actions: Sequence[Action]) -> DateMove | None:
    """The segment's actions as a ``DateMove`` when they are one move of the next renewal; else None."""
    if len(actions) != 1:
        return None
    action = actions[0]
    if isinstance(action, SetNextRenewalDate):
        return DateMove(to=action.date)
    if isinstance(action, ShiftNextRenewal):
        try:
            return DateMove(shift=Shift(action.unit, action.count))
        except RebillError:  # refused by the domain, for every subscription, with its message
            return None
    return None


@dataclass
class Moves:
    """A chunk's subscriptions whose next renewal the database moves: id, new date, segment name."""

    ids: list[int]
    dates: list[date]
    segments: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, subscription_id: int, new: date, segment: str) -> None:
        self.ids.append(subscription_id)
        self.dates.append(new)
        self.segments.append(segment)


def _entry(field: str, before: str, after: str) -> str:
    return (
        f"CASE WHEN {before} IS DISTINCT FROM {after} THEN jsonb_build_array(jsonb_build_object("
        f"'field', '{field}', 'before', {before}, 'after', {after})) ELSE '[]'::jsonb END"
    )


def _undo(key: str, before: str, after: str) -> str:
    return (
        f"CASE WHEN {before} IS DISTINCT FROM {after} THEN jsonb_build_object('{key}', {before}) ELSE '{{}}'::jsonb END"
    )


# The changes in the order ``subscription.diff`` lists them, and the undo delta ``delta_to_json`` keeps.
_CHANGES = " || ".join(
    [
        _entry("nextRenewalDate", "m.next_renewal_date", "m.new_date"),
        _entry("trialEndDate", "m.trial_end_date", "m.new_trial_end"),
        _entry("anchorDate", "m.anchor_date", "m.new_date"),
        _entry("currentPeriodEnd", "m.current_period_end", "m.new_period_end"),
    ]
)
_BEFORE = " || ".join(
    [
        _undo("nextRenewalDate", "m.next_renewal_date", "m.new_date"),
        _undo("trialEndDate", "m.trial_end_date", "m.new_trial_end"),
        _undo("anchorDate", "m.anchor_date", "m.new_date"),
        _undo("currentPeriodEnd", "m.current_period_end", "m.new_period_end"),
    ]
)


def moved_rows(ids: str, dates: str, segments: str) -> str:
    """``SELECT`` of the moved subscriptions as the run item and history need them (``id``, ``segment``,
    ``version``, the new ``next_renewal_date``, ``trial_end_date`` and ``current_period_end``, ``changes``
    and ``before``), read before the update from rows this chunk holds locked. The new values are
    ``change_next_renewal_date``'s: the date is the anchor, a trial ends on it, and a current period ends
    on it (never before it starts).
    """
    return (
        "SELECT m.id, m.segment, m.version, m.new_date, m.new_trial_end, m.new_period_end, "
        f"{_CHANGES} AS changes, {_BEFORE} AS before FROM ("
        "SELECT s.id, v.segment, s.version, s.next_renewal_date, s.anchor_date, s.trial_end_date, "
        "s.current_period_end, v.new_date, "
        "CASE WHEN s.status = 'TRIAL' THEN v.new_date ELSE s.trial_end_date END AS new_trial_end, "
        "CASE WHEN s.current_period_start IS NOT NULL AND s.current_period_end IS NOT NULL "
        "THEN greatest(v.new_date, s.current_period_start) ELSE s.current_period_end END AS new_period_end "
        f"FROM unnest({ids}, {dates}, {segments}) AS v(id, new_date, segment) "
        "JOIN subscriptions AS s ON s.id = v.id) AS m"
    )


MOVE = (
    "UPDATE subscriptions AS s SET next_renewal_date = f.new_date, anchor_date = f.new_date, "
    "trial_end_date = f.new_trial_end, current_period_end = f.new_period_end, version = s.version + 1, "
    "updated_at = {now} FROM f WHERE s.id = f.id AND s.version = f.version RETURNING 1"
)


TYPES = ("bigint[]", "date[]", "text[]")


def arguments(moves: Moves) -> list[Any]:
    """The values of ``moved_rows``'s three arrays, of ``TYPES``."""
    return [moves.ids, moves.dates, moves.segments]
