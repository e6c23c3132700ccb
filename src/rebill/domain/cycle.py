"""The renewal cycle: what the renewal engine does when a billing date comes.

These are the rules of DOMAIN.md's "Renewal engine and dunning", written as
pure functions so that the worker, ``retryRenewal`` and the tests share
them. The engine supplies the state and the gateway's answer; the rules say
what the subscription becomes and which notifications go out.

Semantics chosen (and relied on by the engine):

* The schedule advances when a cycle's renewal is *created*, paid or not:
  a declined cycle does not hold the next one back, and a retry that
  succeeds later leaves the schedule as it is.
* ``last_cycle`` counts cycles created (``maxOccurrences`` compares with
  it), ``occurrences_billed`` counts cycles paid, ``overdue_count`` counts
  declined renewals not yet paid.
* ``retry_schedule_days`` are the days between attempts of one renewal:
  ``(5, 5)`` makes three attempts (seed 004). When the last one fails, the
  profile's final action runs. An empty schedule means no automatic retry
  and no final action: the renewal stays overdue until it is paid or the
  overdue limit suspends the subscription (seed 003).
* A subscription whose end date has come, or whose last occurrence has
  been billed, expires at its next billing date: a period that starts
  before the end date is billed in full.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from rebill.domain import contract as contract_rules
from rebill.domain.cadence import following, period_containing
from rebill.domain.creation import start_future
from rebill.domain.invoice import period_lines, total_of
from rebill.domain.lifecycle import paid
from rebill.domain.outcome import OpContext, Outcome
from rebill.domain.renewal import Charge, Event, FulfillmentStatus, RenewalInfo, RenewalKind
from rebill.domain.status import Event as StatusEvent
from rebill.domain.status import SubscriptionStatus, transition
from rebill.domain.subscription import FinalFailureAction, RenewalType, SubscriptionState
from rebill.domain.updates import apply_pending

#: Statuses the engine bills. A suspended subscription is never renewed; one
#: awaiting reinstatement waits for the customer to pay (``renewNow``).
BILLABLE = frozenset({SubscriptionStatus.TRIAL, SubscriptionStatus.ACTIVE, SubscriptionStatus.OVERDUE})
#: Statuses a declined charge puts into dunning: a reinstatement whose payment
#: is declined is owed like any other renewal.
DUNNABLE = BILLABLE | {SubscriptionStatus.AWAITING_REINSTATE}


def collects_manually(state: SubscriptionState) -> bool:
    """Manual renewal is never charged by the engine (seed 002): nothing is billed until the customer renews.

    An automatic subscription paid offline (by transfer) is billed on its
    date like any other: its invoice is issued and its payment awaited.
    """
    if state.renewal_type is RenewalType.MANUAL:
        return True
    return not any(item.auto_renew for item in state.items)


def is_due(state: SubscriptionState, today: date) -> bool:
    if state.status is SubscriptionStatus.FUTURE:
        return state.start_date <= today
    return state.status in BILLABLE and state.next_renewal_date is not None and state.next_renewal_date <= today


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d is not None else None


def _final(state: SubscriptionState, status: SubscriptionStatus, ctx: OpContext) -> SubscriptionState:
    """A final status: nothing is scheduled any more."""
    return state.evolve(
        status=status,
        next_renewal_date=None,
        next_retry_date=None,
        renew_due=False,
        cancel_at_period_end=False,
        cancelled_at=ctx.now if status is SubscriptionStatus.CANCELLED else state.cancelled_at,
    )


def begin_cycle(state: SubscriptionState, ctx: OpContext) -> Outcome | None:
    """What happens on the subscription's billing date, or None when nothing is due.

    In order: a cancellation at period end takes effect at the boundary; a
    subscription past its end date or its last occurrence expires; a
    manual-renewal or offline-payment one ends its period unpaid
    (``AWAITING_REINSTATE``); any other is billed: pending changes apply,
    the renewal of cycle ``last_cycle + 1`` is to be charged for the period
    from the billing date to the next one, and the schedule moves on.
    """
    if not is_due(state, ctx.today):
        return None
    if state.status is SubscriptionStatus.FUTURE:
        return start_future(state, ctx)
    due = state.next_renewal_date
    assert due is not None
    if state.cancel_at_period_end:
        new = _final(state, transition(state.status, StatusEvent.CANCEL), ctx)
        event = Event("SUBSCRIPTION_CANCELLED", {"reason": "cancelled_at_period_end", "effective": due.isoformat()})
        return Outcome(new, "cancelled_at_period_end", events=(event,))
    ends = _contract_end(state, due, ctx)
    if ends is not None:
        return ends
    max_occurrences = state.profile.max_occurrences
    ended = state.end_date is not None and due >= state.end_date
    if ended or (max_occurrences is not None and state.last_cycle >= max_occurrences):
        new = _final(state, transition(state.status, StatusEvent.EXPIRE), ctx)
        reason = "end_date" if ended else "max_occurrences"
        event = Event("SUBSCRIPTION_EXPIRED", {"reason": reason, "effective": due.isoformat()})
        return Outcome(new, "expired", events=(event,))
    if collects_manually(state):
        new = state.evolve(status=transition(state.status, StatusEvent.PERIOD_ENDED_UNPAID), renew_due=False)
        event = Event(
            "AWAITING_REINSTATE",
            {"periodEnd": due.isoformat(), "amount": state.amount.amount_str, "currency": state.currency},
        )
        return Outcome(new, "period_ended_unpaid", events=(event,))
    return _schedule_charge(state, ctx, due)


def _contract_end(state: SubscriptionState, due: date, ctx: OpContext) -> Outcome | None:
    """A scheduled cancellation, or a contract that cancels at its term's end, by the billing date ``due``:
    the subscription is cancelled instead of billed (the worker's contract pass usually got there first)."""
    if state.cancellation_date is not None and due >= state.cancellation_date:
        new = _final(state, transition(state.status, StatusEvent.CANCEL), ctx)
        effective = state.cancellation_date.isoformat()
        reason = contract_rules.scheduled_reason(state)
        event = Event("SUBSCRIPTION_CANCELLED", {"reason": reason, "effective": effective})
        action = "cancelled_as_scheduled" if reason == "scheduled" else "cancelled_at_period_end"
        return Outcome(new, action, events=(event,))
    term = state.contract
    if term is not None and term.action is contract_rules.TermEndAction.CANCEL and due >= term.end_date:
        return contract_rules.term_ended(state, ctx)
    return None


#: Statuses whose next renewal date bills nothing (API.md: ``upcomingInvoice`` is null).
NOT_COMING = frozenset(
    {
        SubscriptionStatus.CANCELLED,
        SubscriptionStatus.EXPIRED,
        SubscriptionStatus.SUSPENDED,
        SubscriptionStatus.AWAITING_REINSTATE,
    }
)


def upcoming_charge(state: SubscriptionState, ctx: OpContext) -> Charge | None:
    """What the next renewal will bill (Stripe's upcoming invoice), or None when no renewal is coming.

    The charge the engine would record on the next renewal date, as the
    subscription is configured now: pending changes applied, credit used.
    """
    due = state.next_renewal_date
    if due is None or state.status in NOT_COMING or state.status is SubscriptionStatus.FUTURE:
        return None
    if state.cancel_at_period_end or (state.end_date is not None and state.end_date <= due):
        return None
    if state.cancellation_date is not None and state.cancellation_date <= due:
        return None
    term = state.contract
    if term is not None and term.action is contract_rules.TermEndAction.CANCEL and term.end_date <= due:
        return None
    max_occurrences = state.profile.max_occurrences
    if max_occurrences is not None and state.last_cycle >= max_occurrences:
        return None
    return _schedule_charge(state, ctx, due).charge


def _schedule_charge(state: SubscriptionState, ctx: OpContext, due: date) -> Outcome:
    policy, cadence, anchor = state.profile.anchor_policy, state.cadence, state.anchor_date
    start = due
    if state.renew_due and ctx.today >= anchor:
        # Activated after a suspension (seed 003): bill the period running
        # today, not the periods that passed while it was suspended.
        start = max(due, period_containing(anchor, cadence, policy, ctx.today).start)
    end = following(anchor, cadence, policy, start)
    base = apply_pending(state)
    lines = period_lines(base, start, end)
    amount = total_of(lines, base.currency)
    credit = state.credit
    if credit is not None and credit.is_positive and amount.is_positive:
        used = credit if credit <= amount else amount
        amount = amount - used
        credit = credit - used
    status = state.status
    if status is SubscriptionStatus.TRIAL:
        status = transition(status, StatusEvent.TRIAL_ENDED)
    cycle = state.last_cycle + 1
    new = base.evolve(
        status=status,
        next_renewal_date=end,
        current_period_start=start,
        current_period_end=end,
        last_cycle=cycle,
        renew_due=False,
        credit=credit if credit is not None and not credit.is_zero else None,
    )
    fulfillment = FulfillmentStatus.PENDING if state.shipping_address else FulfillmentStatus.NONE
    charge = Charge(RenewalKind.SCHEDULED, cycle, start, end, amount, fulfillment=fulfillment, lines=lines)
    return Outcome(new, "renewal_created", charge=charge)


def catch_up(state: SubscriptionState, ctx: OpContext, limit: int = 10_000) -> list[Outcome]:
    """Every cycle due by ``ctx.today``, in order, as if each was paid: one renewal per period.

    The engine does the same one cycle at a time; this is its model (used by
    the tests and by previews).
    """
    outcomes: list[Outcome] = []
    while len(outcomes) < limit:
        outcome = begin_cycle(state, ctx)
        if outcome is None:
            break
        outcomes.append(outcome)
        state = outcome.state
        if outcome.charge is not None:
            state = paid(state, outcome.charge, None)
    return outcomes


# -- the charge's answer -----------------------------------------------------


def _receipt(charge: Charge, gateway: str | None) -> Event:
    return Event(
        "RENEWAL_RECEIPT",
        {
            "cycle": charge.cycle,
            "kind": charge.kind.value,
            "amount": charge.amount.amount_str,
            "currency": charge.amount.currency,
            "periodStart": charge.period_start.isoformat(),
            "periodEnd": charge.period_end.isoformat(),
            "gateway": gateway,
        },
    )


def cycle_paid(
    state: SubscriptionState,
    charge: Charge,
    gateway: str | None,
    *,
    retry: bool = False,
    other_retry: date | None = None,
) -> Outcome:
    """A renewal was paid: the occurrence counts, a trial or an overdue subscription is active again.

    ``retry`` settles a renewal that had been declined: one renewal fewer is
    overdue. ``other_retry`` is the earliest retry still due for the
    subscription's other declined renewals. The schedule does not move.
    """
    if retry:
        state = state.evolve(overdue_count=max(state.overdue_count - 1, 0))
    new = paid(state, charge, gateway)
    new = new.evolve(next_retry_date=other_retry if new.status is SubscriptionStatus.OVERDUE else None)
    action = "renewal_retry_paid" if retry else "renewal_paid"
    return Outcome(new, action, events=(_receipt(charge, gateway),))


@dataclass(frozen=True, slots=True)
class Dunning:
    """A declined renewal's consequences: the subscription's outcome and the renewal's next retry."""

    outcome: Outcome
    retry_date: date | None
    final: bool = False


def next_retry(state: SubscriptionState, attempts: int, today: date) -> date | None:
    """When attempt ``attempts + 1`` of a renewal is due, or None when there is none."""
    schedule = state.profile.retry_schedule_days
    if attempts < 1 or attempts > len(schedule):
        return None
    return today + timedelta(days=schedule[attempts - 1])


def cycle_failed(
    state: SubscriptionState,
    renewal: RenewalInfo,
    ctx: OpContext,
    *,
    decline_code: str | None = None,
    other_retry: date | None = None,
) -> Dunning:
    """The first charge of a cycle was declined (seed 003, 004).

    The renewal is FAILED, the subscription OVERDUE with one more overdue
    renewal, the customer is told (with a link, added by the engine) and a
    retry is scheduled. Reaching the profile's overdue limit suspends it.
    """
    return _declined(state, renewal, ctx, decline_code, other_retry, newly_overdue=True)


def retry_failed(
    state: SubscriptionState,
    renewal: RenewalInfo,
    ctx: OpContext,
    *,
    decline_code: str | None = None,
    other_retry: date | None = None,
) -> Dunning:
    """A scheduled retry was declined: the next one is scheduled, or, after the last, the final action runs."""
    return _declined(state, renewal, ctx, decline_code, other_retry, newly_overdue=False)


def salvage_failed(
    state: SubscriptionState,
    renewal: RenewalInfo,
    ctx: OpContext,
    *,
    decline_code: str | None = None,
    previous_retry: date | None = None,
    other_retry: date | None = None,
) -> Dunning:
    """A retry asked for by hand (seed 003's salvage, a new card, a force bill) was declined.

    The decline is recorded and told; the dunning schedule stays as it was:
    the renewal keeps its next scheduled retry, and no final action runs. A
    renewal that had none any more (its subscription was suspended
    meanwhile, or activated again) gets the schedule's first one.
    """
    attempts = max(renewal.attempts, 1)
    retry_date = previous_retry
    status = state.status
    if state.status in DUNNABLE:
        if retry_date is None and state.profile.retry_schedule_days:
            retry_date = ctx.today + timedelta(days=state.profile.retry_schedule_days[0])
        status = transition(state.status, StatusEvent.PAYMENT_FAILED)
    else:
        retry_date = None
    overdue = max(state.overdue_count, 1) if status is SubscriptionStatus.OVERDUE else state.overdue_count
    new = state.evolve(
        status=status,
        overdue_count=overdue,
        next_retry_date=earliest((other_retry, retry_date)) if status is SubscriptionStatus.OVERDUE else None,
    )
    notice = {
        "cycle": renewal.cycle,
        "amount": renewal.amount.amount_str,
        "currency": renewal.amount.currency,
        "declineCode": decline_code,
        "attempt": attempts,
        "nextRetryDate": _iso(retry_date),
        "final": False,
    }
    return Dunning(Outcome(new, "renewal_retry_failed", events=(Event("PAYMENT_DECLINED", notice),)), retry_date)


def earliest(dates: Iterable[date | None]) -> date | None:
    """The earliest of the dates that are known, or None."""
    known = [d for d in dates if d is not None]
    return min(known) if known else None


def _declined(
    state: SubscriptionState,
    renewal: RenewalInfo,
    ctx: OpContext,
    decline_code: str | None,
    other_retry: date | None,
    *,
    newly_overdue: bool,
) -> Dunning:
    attempts = max(renewal.attempts, 1)
    notice = {
        "cycle": renewal.cycle,
        "amount": renewal.amount.amount_str,
        "currency": renewal.amount.currency,
        "declineCode": decline_code,
        "attempt": attempts,
    }
    if state.status not in DUNNABLE:
        # Suspended, cancelled or expired while the charge was on its way:
        # the decline is recorded, dunning does not run.
        declined = Event("PAYMENT_DECLINED", {**notice, "nextRetryDate": None})
        action = "renewal_failed" if newly_overdue else "renewal_retry_failed"
        return Dunning(Outcome(state, action, events=(declined,)), None)
    profile = state.profile
    retry_date = next_retry(state, attempts, ctx.today)
    exhausted = bool(profile.retry_schedule_days) and retry_date is None
    overdue = state.overdue_count + (1 if newly_overdue else 0)
    new = state.evolve(
        status=transition(state.status, StatusEvent.PAYMENT_FAILED),
        overdue_count=overdue,
        next_retry_date=earliest((other_retry, retry_date)),
        renew_due=False,
    )
    events = [Event("PAYMENT_DECLINED", {**notice, "nextRetryDate": _iso(retry_date), "final": exhausted})]
    action = "renewal_failed" if newly_overdue else "renewal_retry_failed"
    if exhausted:
        if profile.final_failure_action is FinalFailureAction.CANCEL:
            new = _final(new, transition(new.status, StatusEvent.CANCEL), ctx)
            events.append(Event("SUBSCRIPTION_CANCELLED", {"reason": "payment_failed", "attempts": attempts}))
            return Dunning(Outcome(new, "cancelled_after_failed_payment", events=tuple(events)), None, True)
        new = new.evolve(status=transition(new.status, StatusEvent.SUSPEND), next_retry_date=None)
        events.append(Event("SUBSCRIPTION_SUSPENDED", {"reason": "payment_failed", "attempts": attempts}))
        return Dunning(Outcome(new, "suspended_after_failed_payment", events=tuple(events)), None, True)
    if profile.overdue_limit > 0 and overdue >= profile.overdue_limit:
        new = new.evolve(status=transition(new.status, StatusEvent.SUSPEND), next_retry_date=None)
        events.append(Event("SUBSCRIPTION_SUSPENDED", {"reason": "overdue_limit", "overdueCount": overdue}))
        return Dunning(Outcome(new, "suspended_overdue_limit", events=tuple(events)), None, True)
    return Dunning(Outcome(new, action, events=tuple(events)), retry_date)


# -- reminders ---------------------------------------------------------------


def reminder(state: SubscriptionState, ctx: OpContext) -> Event | None:
    """The payment reminder a manual or offline subscription gets before its billing date (seed 002).

    Sent from ``reminder_days_before`` days ahead until the day before; the
    engine sends it once per cycle.
    """
    days = state.profile.reminder_days_before
    due = state.next_renewal_date
    if days <= 0 or due is None or state.status not in BILLABLE or not collects_manually(state):
        return None
    if not due - timedelta(days=days) <= ctx.today < due:
        return None
    return Event(
        "RENEWAL_REMINDER",
        {
            "cycle": state.last_cycle + 1,
            "billingDate": due.isoformat(),
            "amount": state.amount.amount_str,
            "currency": state.currency,
        },
    )
