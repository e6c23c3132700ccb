"""Contract terms: a commitment over one or more billing periods (DOMAIN.md "Contract terms").

A contract has a start, a term (a cadence count: 12 months), a notice
period in days, an action at the term's end and an optional early
termination fee. Its term ends on a billing date: the end of the billing
period the term's last day falls in, so a term never cuts a period in two
and a cancellation that takes effect at a term's end is a renewal date.

Which date a cancellation takes effect on depends on when it is given:
before the notice period (the last ``notice_days`` days of the term) it is
the term's end; inside it, the end of the next term when the contract
renews, else the term's end. The billing schedule the term is aligned to is
the subscription's anchor, cadence and anchor policy (``domain.cadence``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from rebill.domain.cadence import AnchorPolicy, Cadence, IntervalUnit, add_interval, period_containing
from rebill.domain.errors import SubscriptionError, ValidationError
from rebill.domain.invoice import DocLine, LineKind, taxed, total_of
from rebill.domain.money import Money
from rebill.domain.outcome import OpContext, Outcome, changeable
from rebill.domain.renewal import Charge, Event, RenewalKind
from rebill.domain.status import FINAL, transition
from rebill.domain.status import Event as StatusEvent
from rebill.domain.subscription import SubscriptionState

#: The longest notice period accepted (ten years).
MAX_NOTICE_DAYS = 3660


class TermEndAction(enum.StrEnum):
    RENEW = "RENEW"
    EVERGREEN = "EVERGREEN"
    CANCEL = "CANCEL"


@dataclass(frozen=True, slots=True)
class Schedule:
    """The billing schedule a term is aligned to: the subscription's anchor, cadence and policy."""

    anchor: date
    cadence: Cadence
    policy: AnchorPolicy = AnchorPolicy.ANCHORED

    @classmethod
    def of(cls, state: SubscriptionState) -> Schedule:
        return cls(state.anchor_date, state.cadence, state.profile.anchor_policy)


@dataclass(frozen=True, slots=True)
class Contract:
    """The current term of a contract: from ``start_date`` to ``end_date`` (a billing date, excluded)."""

    start_date: date
    end_date: date
    term: Cadence
    notice_days: int = 0
    action: TermEndAction = TermEndAction.RENEW
    early_termination_fee: Money | None = None

    @property
    def notice_start(self) -> date:
        """The first day of the notice period: a cancellation from this day on misses this term's end."""
        return self.end_date - timedelta(days=self.notice_days)


# -- dates -----------------------------------------------------------------------------


def align(day: date, schedule: Schedule) -> date:
    """The first billing date on or after ``day`` (the end of the billing period ``day`` falls in)."""
    if day <= schedule.anchor:
        return schedule.anchor
    period = period_containing(schedule.anchor, schedule.cadence, schedule.policy, day)
    return day if period.start == day else period.end


def term_end(start: date, term: Cadence, schedule: Schedule) -> date:
    """When a term that starts on ``start`` ends: one ``term`` later, moved to the end of its billing period."""
    return align(add_interval(start, term, 1), schedule)


def next_term(contract: Contract, schedule: Schedule) -> Contract:
    """The term that follows ``contract``'s, of the same length (``RENEW``)."""
    start = contract.end_date
    return replace(contract, start_date=start, end_date=term_end(start, contract.term, schedule))


def current_term(contract: Contract, schedule: Schedule, today: date) -> Contract:
    """The term running ``today``: a renewing contract whose term ended (not yet rolled by the worker)
    is in its next term."""
    while contract.action is TermEndAction.RENEW and contract.end_date <= today:
        contract = next_term(contract, schedule)
    return contract


def binds(contract: Contract | None, schedule: Schedule, today: date) -> Contract | None:
    """The term that commits the subscription ``today``, or None when nothing commits it any more."""
    if contract is None:
        return None
    term = current_term(contract, schedule, today)
    return term if today < term.end_date else None


def cancellation_effective_date(contract: Contract, schedule: Schedule, today: date) -> date | None:
    """When a cancellation given ``today`` takes effect; None when the contract no longer commits."""
    term = binds(contract, schedule, today)
    if term is None:
        return None
    if today < term.notice_start or term.action is not TermEndAction.RENEW:
        return term.end_date
    return next_term(term, schedule).end_date


def effective_date_of(state: SubscriptionState, today: date) -> date | None:
    """``cancellation_effective_date`` of the subscription's contract (None without one, or when final)."""
    if state.contract is None or state.status in FINAL:
        return None
    return cancellation_effective_date(state.contract, Schedule.of(state), today)


def commitment(state: SubscriptionState, today: date) -> Contract | None:
    """The term that commits a subscription that is not final, or None."""
    if state.status in FINAL:
        return None
    return binds(state.contract, Schedule.of(state), today)


# -- the terms as given --------------------------------------------------------------------


_UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class Terms:
    """A contract's terms as staff give them (``attachContract``/``updateContract``)."""

    term: Cadence | None = None
    start_date: date | None = None
    notice_days: int | None = None
    action: TermEndAction | None = None
    # ``_UNSET`` keeps the fee on an update; None removes it.
    early_termination_fee: Money | None = _UNSET


def _check(state: SubscriptionState, notice_days: int, fee: Money | None) -> None:
    if isinstance(notice_days, bool) or not 0 <= notice_days <= MAX_NOTICE_DAYS:
        raise ValidationError(
            f"noticeDays must be from 0 to {MAX_NOTICE_DAYS}, not {notice_days}",
            code="INVALID_CONTRACT",
            field=["noticeDays"],
        )
    if fee is not None:
        if fee.currency != state.currency:
            raise SubscriptionError(
                f"the subscription bills in {state.currency}, not {fee.currency}",
                code="CURRENCY_MISMATCH",
                field=["earlyTerminationFee"],
            )
        if fee.is_negative:
            raise ValidationError(
                "an early termination fee cannot be negative", code="INVALID_AMOUNT", field=["earlyTerminationFee"]
            )


def _build(state: SubscriptionState, ctx: OpContext, terms: Terms, base: Contract | None) -> Contract:
    term = terms.term or (base.term if base else None)
    if term is None:
        raise ValidationError("a contract needs a term", code="INVALID_CONTRACT", field=["term"])
    start = terms.start_date or (base.start_date if base else None) or state.current_period_start or state.start_date
    notice = terms.notice_days if terms.notice_days is not None else (base.notice_days if base else 0)
    action = terms.action or (base.action if base else TermEndAction.RENEW)
    fee = terms.early_termination_fee
    if fee is _UNSET:
        fee = base.early_termination_fee if base else None
    if fee is not None and fee.is_zero:
        fee = None
    _check(state, notice, fee)
    schedule = Schedule.of(state)
    contract = Contract(start, term_end(start, term, schedule), term, notice, action, fee)
    if contract.end_date <= ctx.today:
        raise SubscriptionError(
            f"a term of {term.count} {term.unit.value} from {start.isoformat()} ends on "
            f"{contract.end_date.isoformat()}, which is not after today ({ctx.today.isoformat()})",
            code="INVALID_CONTRACT",
            field=["startDate"],
        )
    return contract


def _payload(contract: Contract) -> dict[str, Any]:
    return {
        "startDate": contract.start_date.isoformat(),
        "endDate": contract.end_date.isoformat(),
        "actionAtTermEnd": contract.action.value,
    }


# -- operations ----------------------------------------------------------------------------


def attach(state: SubscriptionState, ctx: OpContext, terms: Terms) -> Outcome:
    """Put a subscription under contract (one contract at a time: update or remove the one it has)."""
    changeable(state, "attach a contract")
    if state.contract is not None:
        raise SubscriptionError(
            f"subscription {state.id} already has a contract: update or remove it",
            code="CONTRACT_EXISTS",
        )
    contract = _build(state, ctx, terms, None)
    event = Event("SUBSCRIPTION_CONTRACT_ATTACHED", _payload(contract))
    return Outcome(state.evolve(contract=contract), "contract_attached", events=(event,))


def _existing(state: SubscriptionState) -> Contract:
    if state.contract is None:
        raise SubscriptionError(f"subscription {state.id} has no contract", code="NO_CONTRACT")
    return state.contract


def update(state: SubscriptionState, ctx: OpContext, terms: Terms) -> Outcome:
    """Change a contract's terms; its end is computed again from its (new) start and term."""
    changeable(state, "update a contract")
    contract = _build(state, ctx, terms, _existing(state))
    event = Event("SUBSCRIPTION_CONTRACT_UPDATED", _payload(contract))
    return Outcome(state.evolve(contract=contract), "contract_updated", events=(event,))


def remove(state: SubscriptionState, ctx: OpContext) -> Outcome:
    """End the commitment now: nothing is billed (an override of a cancellation bills the fee)."""
    changeable(state, "remove a contract")
    contract = _existing(state)
    event = Event("SUBSCRIPTION_CONTRACT_REMOVED", _payload(contract))
    return Outcome(state.evolve(contract=None), "contract_removed", events=(event,))


def _cancelled(state: SubscriptionState, ctx: OpContext) -> SubscriptionState:
    return state.evolve(
        status=transition(state.status, StatusEvent.CANCEL),
        next_renewal_date=None,
        next_retry_date=None,
        cancelled_at=ctx.now,
        renew_due=False,
        cancel_at_period_end=False,
    )


def term_ended(state: SubscriptionState, ctx: OpContext) -> Outcome | None:
    """What the worker does when a term has ended (None when no term has): ``RENEW`` starts the next
    term (as many as passed), ``EVERGREEN`` ends the contract, ``CANCEL`` cancels the subscription."""
    contract = state.contract
    if contract is None or state.status in FINAL or contract.end_date > ctx.today:
        return None
    ended = _payload(contract)
    if contract.action is TermEndAction.RENEW:
        renewed = current_term(contract, Schedule.of(state), ctx.today)
        event = Event("SUBSCRIPTION_CONTRACT_RENEWED", {**_payload(renewed), "previousEndDate": ended["endDate"]})
        return Outcome(state.evolve(contract=renewed), "contract_renewed", events=(event,))
    if contract.action is TermEndAction.EVERGREEN:
        event = Event("SUBSCRIPTION_CONTRACT_ENDED", ended)
        return Outcome(state.evolve(contract=None), "contract_ended", events=(event,))
    events = (
        Event("SUBSCRIPTION_CONTRACT_ENDED", ended),
        Event("SUBSCRIPTION_CANCELLED", {"reason": "contract_ended", "effective": ended["endDate"]}),
    )
    return Outcome(_cancelled(state, ctx), "cancelled_at_term_end", events=events)


def cancellation_due(state: SubscriptionState, today: date) -> bool:
    """Whether a scheduled cancellation takes effect by ``today``."""
    return state.cancellation_date is not None and state.cancellation_date <= today and state.status not in FINAL


def scheduled_cancellation(state: SubscriptionState, ctx: OpContext) -> Outcome | None:
    """A scheduled cancellation on (or after) its date: the subscription is cancelled."""
    if not cancellation_due(state, ctx.today):
        return None
    assert state.cancellation_date is not None
    reason = scheduled_reason(state)
    event = Event("SUBSCRIPTION_CANCELLED", {"reason": reason, "effective": state.cancellation_date.isoformat()})
    return Outcome(_cancelled(state, ctx), _ACTIONS[reason], events=(event,))


_ACTIONS = {"scheduled": "cancelled_as_scheduled", "cancelled_at_period_end": "cancelled_at_period_end"}


def scheduled_reason(state: SubscriptionState) -> str:
    """Why a scheduled cancellation happens: kept for a contract's date, or a plain cancel at period end."""
    return "cancelled_at_period_end" if state.contract is None and state.cancel_at_period_end else "scheduled"


def refuse_commitment(term: Contract, schedule: Schedule, today: date, what: str, field: str) -> SubscriptionError:
    """The refusal of an end before the term's end, saying when a cancellation would take effect."""
    effective = cancellation_effective_date(term, schedule, today)
    fee = term.early_termination_fee
    return SubscriptionError(
        f"the subscription is under contract until {term.end_date.isoformat()}: {what} is refused; a cancellation "
        f"given today takes effect on {effective.isoformat() if effective else term.end_date.isoformat()} "
        "(cancel atPeriodEnd), or pass overrideContract to end it now"
        + (f" and bill the early termination fee of {fee.amount_str} {fee.currency}" if fee else ""),
        code="CONTRACT_COMMITMENT",
        field=[field],
        details={
            "contractEndDate": term.end_date.isoformat(),
            "cancellationEffectiveDate": effective.isoformat() if effective else None,
        },
    )


def termination_fee(state: SubscriptionState, ctx: OpContext, term: Contract) -> Charge | None:
    """The early termination fee's charge, an invoice of its own with one ``FEE`` line; None without a fee."""
    fee = term.early_termination_fee
    if fee is None or not fee.is_positive:
        return None
    start = ctx.today
    end = max(term.end_date, start + timedelta(days=1))
    line = DocLine(
        LineKind.FEE,
        f"Early termination fee (contract until {term.end_date.isoformat()})",
        fee,
        quantity=1,
        unit_price=fee,
        period_start=start,
        period_end=end,
    )
    # Taxed like any line of the customer's invoices.
    lines = taxed((line,), state.tax_rate)
    return Charge(
        kind=RenewalKind.MANUAL,
        cycle=max(state.last_cycle, 1),
        period_start=start,
        period_end=end,
        amount=total_of(lines, fee.currency),
        adjustment=True,
        lines=lines,
    )


def schedule_cancellation(state: SubscriptionState, ctx: OpContext, term: Contract) -> SubscriptionState:
    """A cancellation given today under contract, kept for the date it takes effect."""
    effective = cancellation_effective_date(term, Schedule.of(state), ctx.today)
    return state.evolve(cancellation_date=effective or term.end_date)


# -- JSON (history snapshots, idempotent replays, bulk reverts) -------------------------------


def to_json(contract: Contract | None) -> dict[str, Any] | None:
    if contract is None:
        return None
    fee = contract.early_termination_fee
    return {
        "startDate": contract.start_date.isoformat(),
        "endDate": contract.end_date.isoformat(),
        "termUnit": contract.term.unit.value,
        "termCount": contract.term.count,
        "noticeDays": contract.notice_days,
        "actionAtTermEnd": contract.action.value,
        "earlyTerminationFee": [fee.minor, fee.currency] if fee is not None else None,
    }


def from_json(value: Mapping[str, Any] | None) -> Contract | None:
    if not value:
        return None
    fee = value.get("earlyTerminationFee")
    return Contract(
        start_date=date.fromisoformat(value["startDate"]),
        end_date=date.fromisoformat(value["endDate"]),
        term=Cadence(IntervalUnit(value["termUnit"]), int(value["termCount"])),
        notice_days=int(value["noticeDays"]),
        action=TermEndAction(value["actionAtTermEnd"]),
        early_termination_fee=Money(int(fee[0]), str(fee[1])) if fee else None,
    )


def shown(contract: Contract | None) -> dict[str, Any] | None:
    """The contract as the history shows it."""
    if contract is None:
        return None
    fee = contract.early_termination_fee
    return {
        "startDate": contract.start_date.isoformat(),
        "endDate": contract.end_date.isoformat(),
        "term": f"{contract.term.count} {contract.term.unit.value}",
        "noticeDays": contract.notice_days,
        "actionAtTermEnd": contract.action.value,
        "earlyTerminationFee": fee.amount_str if fee is not None else None,
    }
