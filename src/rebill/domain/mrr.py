"""Monthly recurring revenue: what one subscription brings in a month, and how it moves.

A subscription's MRR is what its next renewal bills for its items (coupons
that will still apply included, items that do not renew left out; never
shipping or tax: ``SubscriptionState.amount``), brought to a month: x 1
monthly, / 12 yearly, x 52 / 12 weekly, x 365 / 12 daily, divided by the
cadence's count, and rounded half-even to the minor unit once. Only
``ACTIVE`` and ``OVERDUE`` subscriptions count (manual renewal too): a trial,
a future start, a suspension, one awaiting reinstatement and a final status
bring nothing.

Every change of a subscription's MRR is a movement, classified by
:func:`classify`. The database keeps a movement for every change, written
by the same statement that saves the subscription (``rebill_mrr`` and the
trigger of migration 0019 mirror this module; tests hold the two together),
so the figures of any period add up: end = start + new + reactivation +
expansion - contraction - churned.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from rebill.domain.cadence import Cadence, IntervalUnit
from rebill.domain.money import Money, Rounding, round_fraction
from rebill.domain.status import SubscriptionStatus
from rebill.domain.subscription import SubscriptionState

# The statuses whose subscriptions bring revenue (and count as active).
COUNTED: frozenset[SubscriptionStatus] = frozenset({SubscriptionStatus.ACTIVE, SubscriptionStatus.OVERDUE})

# Periods of each unit in a month: the year has 12 months, 52 weeks and 365 days.
_PER_MONTH = {
    IntervalUnit.MONTH: Fraction(1),
    IntervalUnit.YEAR: Fraction(1, 12),
    IntervalUnit.WEEK: Fraction(52, 12),
    IntervalUnit.DAY: Fraction(365, 12),
}


def per_month(cadence: Cadence) -> Fraction:
    """How many periods of ``cadence`` a month holds (a quarter: 1/3)."""
    return _PER_MONTH[cadence.unit] / cadence.count


def monthly(amount: Money, cadence: Cadence) -> Money:
    """``amount`` billed once per ``cadence``, as a month's worth, rounded half-even."""
    return Money(round_fraction(amount.minor * per_month(cadence), Rounding.HALF_EVEN), amount.currency)


def counts(status: SubscriptionStatus) -> bool:
    return status in COUNTED


def mrr(state: SubscriptionState) -> Money:
    """The subscription's MRR in its currency (zero unless it is ``ACTIVE`` or ``OVERDUE``)."""
    if not counts(state.status):
        return Money.zero(state.currency)
    return monthly(state.amount, state.cadence)


class MovementKind(enum.StrEnum):
    NEW = "NEW"
    EXPANSION = "EXPANSION"
    CONTRACTION = "CONTRACTION"
    CHURNED = "CHURNED"
    REACTIVATION = "REACTIVATION"


def classify(before: int, after: int, *, had_mrr: bool) -> MovementKind | None:
    """The kind of a change of MRR from ``before`` to ``after`` (minor units); None when it did not move.

    ``had_mrr``: the subscription (with the subscriptions it replaced, for a
    product change) brought revenue at some time before. Leaving 0 is new the
    first time and a reactivation after that.
    """
    if before == after:
        return None
    if before == 0:
        return MovementKind.REACTIVATION if had_mrr else MovementKind.NEW
    if after == 0:
        return MovementKind.CHURNED
    return MovementKind.EXPANSION if after > before else MovementKind.CONTRACTION


@dataclass(frozen=True, slots=True)
class Movement:
    """One change of a subscription's MRR, in minor units of one currency."""

    before: int
    after: int
    kind: MovementKind | None


@dataclass
class Movements:
    """The movements of a period, each as the (positive) amount it moved MRR by."""

    new: int = 0
    expansion: int = 0
    contraction: int = 0
    churned: int = 0
    reactivation: int = 0

    def add(self, movement: Movement) -> None:
        step = movement.after - movement.before
        if movement.kind is MovementKind.NEW:
            self.new += step
        elif movement.kind is MovementKind.REACTIVATION:
            self.reactivation += step
        elif movement.kind is MovementKind.EXPANSION:
            self.expansion += step
        elif movement.kind is MovementKind.CONTRACTION:
            self.contraction -= step
        elif movement.kind is MovementKind.CHURNED:
            self.churned -= step

    @property
    def net(self) -> int:
        return self.new + self.reactivation + self.expansion - self.contraction - self.churned


def track(values: Iterable[int]) -> list[Movement]:
    """The movements of one subscription whose MRR takes ``values`` in turn, starting from 0."""
    out: list[Movement] = []
    previous, had = 0, False
    for value in values:
        kind = classify(previous, value, had_mrr=had)
        if kind is not None:
            out.append(Movement(previous, value, kind))
        had = had or value != 0
        previous = value
    return out
