"""Moving next renewals a whole chunk at a time, where the domain's outcome is certain.

A segment whose only action moves the next renewal (``shiftNextRenewal``,
``setNextRenewalDate``) changes four dates of a subscription:
``updates.change_next_renewal_date``, which the runner would otherwise run
on a state it builds for every subscription (its items, coupons, profile,
contract…), then diff for the history and the undo. Here the runner reads
the dates from the row it locked, works out the new date with the domain's
own ``Shift`` and the fields it sets with the domain's
``next_renewal_changes``, and writes the history's changes and the undo
delta as ``subscription.diff`` and ``delta_to_json`` would; the chunk's
statement applies them with its other writes.

The new date is taken only when the domain certainly applies it: the
subscription is neither final nor future, has a next renewal, and the new
date differs from it, is in the supported range and is not in the past.
Anything else (a refusal with its message, a change that moves only the
anchor) goes through the domain as before, so a refusal reads the same on
either path. ``tests/integration/test_bulk_setbased.py`` holds the two
paths to the same rows, history, run items and reverts on a mixed data set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from rebill.bulk.plan import Action, SetNextRenewalDate, ShiftNextRenewal
from rebill.domain.errors import RebillError
from rebill.domain.status import FINAL, SubscriptionStatus
from rebill.domain.updates import MAX_DATE, MIN_DATE, Shift, next_renewal_changes

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


# What a chunk reads of a row to move its next renewal.
COLUMNS = (
    "id",
    "version",
    "status",
    "time_zone",
    "updated_at",
    "next_renewal_date",
    "anchor_date",
    "trial_end_date",
    "current_period_start",
    "current_period_end",
)
# The fields a move sets, in the order the history lists them (``subscription.diff``), with their keys.
_SHOWN = (
    ("nextRenewalDate", "next_renewal_date"),
    ("trialEndDate", "trial_end_date"),
    ("anchorDate", "anchor_date"),
    ("currentPeriodEnd", "current_period_end"),
)


def record(row: Any, new: date, segment: str) -> dict[str, Any]:
    """The run item of moving ``row``'s next renewal to ``new``, with the row's new dates.

    ``changes`` as the history shows them and ``before`` (what the undo puts back) as the domain path
    writes them; dates stay ``date`` objects, which the chunk's JSON encodes as ISO dates.
    """
    after = next_renewal_changes(
        new,
        in_trial=row["status"] == SubscriptionStatus.TRIAL.value,
        period_start=row["current_period_start"],
        period_end=row["current_period_end"],
    )
    out: dict[str, Any] = {"id": row["id"], "segment": segment, "version": row["version"]}
    changes, before = [], {}
    for key, name in _SHOWN:
        was = row[name]
        now = out[name] = after.get(name, was)
        if now != was:
            changes.append({"field": key, "before": was, "after": now})
            before[key] = was
    out["changes"], out["before"] = changes, before
    return out


# One record per moved subscription, read by ``json_to_recordset``.
RECORD = {
    "id": "bigint",
    "segment": "text",
    "version": "int",
    "next_renewal_date": "date",
    "anchor_date": "date",
    "trial_end_date": "date",
    "current_period_end": "date",
    "changes": "jsonb",
    "before": "jsonb",
}

# The moved subscriptions' update (``f``: their records), version guarded as every bulk write is.
MOVE = (
    "UPDATE subscriptions AS s SET next_renewal_date = f.next_renewal_date, anchor_date = f.anchor_date, "
    "trial_end_date = f.trial_end_date, current_period_end = f.current_period_end, version = s.version + 1, "
    "updated_at = {now} FROM f WHERE s.id = f.id AND s.version = f.version RETURNING 1"
)
