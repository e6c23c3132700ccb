"""The subscription lifecycle as one table.

Every status change, whoever asks for it (an agent, a bulk run, the renewal
engine, a payment webhook), goes through :func:`transition`, so a transition
that is not in :data:`TRANSITIONS` cannot happen anywhere. ``CANCELLED`` and
``EXPIRED`` are final: nothing un-cancels a subscription (seed 003).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from rebill.domain.errors import InvalidStatus


class SubscriptionStatus(StrEnum):
    FUTURE = "FUTURE"
    TRIAL = "TRIAL"
    ACTIVE = "ACTIVE"
    OVERDUE = "OVERDUE"
    SUSPENDED = "SUSPENDED"
    AWAITING_REINSTATE = "AWAITING_REINSTATE"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


FINAL: frozenset[SubscriptionStatus] = frozenset({SubscriptionStatus.CANCELLED, SubscriptionStatus.EXPIRED})


class Event(StrEnum):
    PAYMENT_SUCCEEDED = "PAYMENT_SUCCEEDED"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    SUSPEND = "SUSPEND"
    ACTIVATE = "ACTIVATE"
    PERIOD_ENDED_UNPAID = "PERIOD_ENDED_UNPAID"
    REINSTATE = "REINSTATE"
    CANCEL = "CANCEL"
    EXPIRE = "EXPIRE"
    TRIAL_ENDED = "TRIAL_ENDED"
    START = "START"
    START_TRIAL = "START_TRIAL"


_S = SubscriptionStatus
_E = Event

TRANSITIONS: Mapping[tuple[SubscriptionStatus, Event], SubscriptionStatus] = MappingProxyType(
    {
        (_S.TRIAL, _E.PAYMENT_SUCCEEDED): _S.ACTIVE,
        (_S.ACTIVE, _E.PAYMENT_SUCCEEDED): _S.ACTIVE,
        (_S.OVERDUE, _E.PAYMENT_SUCCEEDED): _S.ACTIVE,
        (_S.AWAITING_REINSTATE, _E.PAYMENT_SUCCEEDED): _S.ACTIVE,
        (_S.TRIAL, _E.PAYMENT_FAILED): _S.OVERDUE,
        (_S.ACTIVE, _E.PAYMENT_FAILED): _S.OVERDUE,
        (_S.OVERDUE, _E.PAYMENT_FAILED): _S.OVERDUE,
        (_S.AWAITING_REINSTATE, _E.PAYMENT_FAILED): _S.OVERDUE,
        (_S.TRIAL, _E.SUSPEND): _S.SUSPENDED,
        (_S.ACTIVE, _E.SUSPEND): _S.SUSPENDED,
        (_S.OVERDUE, _E.SUSPEND): _S.SUSPENDED,
        (_S.AWAITING_REINSTATE, _E.SUSPEND): _S.SUSPENDED,
        (_S.SUSPENDED, _E.ACTIVATE): _S.ACTIVE,
        (_S.TRIAL, _E.PERIOD_ENDED_UNPAID): _S.AWAITING_REINSTATE,
        (_S.ACTIVE, _E.PERIOD_ENDED_UNPAID): _S.AWAITING_REINSTATE,
        (_S.OVERDUE, _E.PERIOD_ENDED_UNPAID): _S.AWAITING_REINSTATE,
        (_S.AWAITING_REINSTATE, _E.REINSTATE): _S.ACTIVE,
        (_S.TRIAL, _E.TRIAL_ENDED): _S.ACTIVE,
        (_S.FUTURE, _E.START): _S.ACTIVE,
        (_S.FUTURE, _E.START_TRIAL): _S.TRIAL,
        **{(status, _E.CANCEL): _S.CANCELLED for status in _S if status not in FINAL},
        **{(status, _E.EXPIRE): _S.EXPIRED for status in _S if status not in FINAL},
    }
)

# How a refusal names the event: "cannot <verb> a subscription that is ACTIVE".
_VERBS: Mapping[Event, str] = MappingProxyType(
    {
        _E.PAYMENT_SUCCEEDED: "record a successful payment for",
        _E.PAYMENT_FAILED: "record a failed payment for",
        _E.SUSPEND: "suspend",
        _E.ACTIVATE: "activate",
        _E.PERIOD_ENDED_UNPAID: "end the unpaid period of",
        _E.REINSTATE: "reinstate",
        _E.CANCEL: "cancel",
        _E.EXPIRE: "expire",
        _E.TRIAL_ENDED: "end the trial of",
        _E.START: "start",
        _E.START_TRIAL: "start the trial of",
    }
)


def transition(status: SubscriptionStatus, event: Event) -> SubscriptionStatus:
    """The status after ``event``, or InvalidStatus naming what was refused."""
    status, event = SubscriptionStatus(status), Event(event)
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        message = f"cannot {_VERBS[event]} a subscription that is {status.value}"
        if status in FINAL:
            message += ": cancelled and expired subscriptions are final"
        raise InvalidStatus(message, details={"status": status.value, "event": event.value}) from None


def allowed_events(status: SubscriptionStatus) -> frozenset[Event]:
    status = SubscriptionStatus(status)
    return frozenset(event for (source, event) in TRANSITIONS if source is status)


def ensure_changeable(status: SubscriptionStatus, action: str) -> None:
    """Refuse any local update of a cancelled or expired subscription."""
    status = SubscriptionStatus(status)
    if status in FINAL:
        raise InvalidStatus(
            f"cannot {action}: subscription is {status.value}: cancelled and expired subscriptions accept no changes",
            details={"status": status.value, "action": action},
        )
