"""The billing forecast's rules: what the worker will charge, on which of the seller's days, and after declines.

The forecast (API.md "Revenue insight") is what the renewal worker would
charge if nothing changed but the calendar: each renewal and trial end at
the prices the subscription has today, with its scheduled phases applied
from their dates, stopped by an end date, a scheduled cancellation, a
contract that cancels at its term's end or the last occurrence. It is the
engine's own rules (``cycle.begin_cycle`` then ``lifecycle.paid``) run
forward, so a coupon that runs out or a pending change shows where the
worker would bill it.

Dates are the seller's: a renewal dated D in the subscription's time zone is
charged from the first instant of D there, which may be the day before or
after on the seller's calendar. A renewal the worker still owes is charged
at its next pass, today. An invoice paid by transfer is expected on its due
date (its payment terms after issue), a draft when it is finalized.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction

from rebill.domain.cadence import local_today, start_of_day
from rebill.domain.cycle import BILLABLE, begin_cycle
from rebill.domain.invoice import terms_of
from rebill.domain.lifecycle import paid
from rebill.domain.money import Money, round_fraction
from rebill.domain.outcome import OpContext
from rebill.domain.status import SubscriptionStatus
from rebill.domain.subscription import PaymentKind, SubscriptionState

#: How far back the decline rate looks (API.md: "in the last 90 days").
DECLINE_WINDOW = timedelta(days=90)


def seller_day(local: date, time_zone: str, seller_zone: str) -> date:
    """The seller's date at the first instant of the subscription's local day ``local``."""
    return local_today(start_of_day(local, time_zone), seller_zone)


def delay_days(state: SubscriptionState, default_terms_days: int) -> int:
    """Days between a billing date and the money: the draft days, then the payment terms of a transfer."""
    terms = terms_of(state.invoicing)
    days = terms.draft_days if terms.draft_invoices else 0
    pm = state.payment_method
    if pm is not None and pm.kind is PaymentKind.OFFLINE:
        days += terms.payment_terms_days if terms.payment_terms_days is not None else default_terms_days
    return days


def charge_day(billing_date: date, time_zone: str, seller_zone: str, seller_today: date, delay: int = 0) -> date:
    """The seller's day a charge of ``billing_date`` is expected: owed ones today, then the delay."""
    return max(seller_day(billing_date, time_zone, seller_zone), seller_today) + timedelta(days=delay)


def next_billing_date(state: SubscriptionState) -> date | None:
    """The local date the worker next acts on: the start of a ``FUTURE`` one, else its next renewal."""
    if state.status is SubscriptionStatus.FUTURE:
        return state.start_date
    if state.status not in BILLABLE:
        return None
    return state.next_renewal_date


@dataclass(frozen=True, slots=True)
class Expected:
    """One charge the worker would make: its local billing date and amount, and the state after it was paid."""

    billing_date: date
    amount: Money
    state: SubscriptionState


def worker_step(state: SubscriptionState, today: date) -> tuple[date, Expected | None, SubscriptionState] | None:
    """What the worker does on the subscription's next billing date, as if the charge was paid.

    Returns the date, the charge (None when the date charges nothing: a
    trial that starts, for example) and the state after; None when nothing
    more will ever be billed (cancelled, expired, manual, suspended).
    """
    due = next_billing_date(state)
    if due is None:
        return None
    ctx = OpContext(now=datetime.combine(max(due, today), datetime.min.time(), tzinfo=UTC), today=max(due, today))
    outcome = begin_cycle(state, ctx)
    if outcome is None:
        return None
    new = outcome.state
    charge = outcome.charge
    if charge is None:
        return (due, None, new) if new.status in BILLABLE else None
    new = paid(new, charge, None)
    return due, Expected(due, charge.amount, new), new


def scheduled_charges(state: SubscriptionState, today: date, until: date, *, limit: int = 10_000) -> Iterator[Expected]:
    """The charges of the subscription's billing dates up to ``until`` (local dates), in order."""
    for _ in range(limit):
        due = next_billing_date(state)
        if due is None or due > until:
            return
        step = worker_step(state, today)
        if step is None:
            return
        _, expected, state = step
        if expected is not None:
            yield expected


def decline_share(failed: int, attempted: int) -> Fraction:
    """The share of first attempts that failed (0 when nothing was attempted)."""
    if attempted <= 0:
        return Fraction(0)
    return Fraction(min(max(failed, 0), attempted), attempted)


def after_declines(expected: Money, share: Fraction) -> Money:
    """``expected`` * (1 - ``share``), rounded half-even to the minor unit."""
    return Money(round_fraction(expected.minor * (1 - share)), expected.currency)
