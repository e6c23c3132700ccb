"""What a mid-period change of a recurring amount costs or credits.

Seeds 001 and 002 let a change take effect immediately and be charged
``PRORATED`` (by days remaining), ``FULL`` or not at all. The ratio is kept
exact and rounded half-even once, so that splitting a change into steps can
never bill more than the change itself.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from fractions import Fraction

from rebill.domain.cadence import Period
from rebill.domain.errors import MoneyError, ValidationError
from rebill.domain.money import Money, Rounding


class Proration(StrEnum):
    PRORATED = "PRORATED"
    FULL = "FULL"
    NONE = "NONE"


def remaining_fraction(period: Period, on: date) -> Fraction:
    """Share of ``period`` still ahead on day ``on``, counting ``on`` itself."""
    if not period.contains(on):
        raise ValidationError(
            f"{on} is outside the billing period {period.start} to {period.end}",
            code="DATE_OUTSIDE_PERIOD",
        )
    return Fraction((period.end - on).days, period.days)


def prorate(old: Money, new: Money, period: Period, on: date, mode: Proration) -> Money:
    """Charge (positive) or credit (negative) for moving from ``old`` to ``new`` on ``on``.

    A change on the period's first day is worth the whole difference, one on
    its last day 1/days of it: the customer pays for the days they get.
    """
    if old.currency != new.currency:
        raise MoneyError(f"cannot prorate from {old.currency} to {new.currency}", code="CURRENCY_MISMATCH")
    share = remaining_fraction(period, on)
    difference = new - old
    if mode is Proration.PRORATED:
        return difference.multiply(share, Rounding.HALF_EVEN)
    if mode is Proration.FULL:
        return difference
    if mode is Proration.NONE:
        return Money.zero(old.currency)
    raise ValidationError(f"unknown proration mode {mode!r}", code="INVALID_PRORATION")
