"""The lifecycle table: what each status accepts, and how a refusal reads."""

from __future__ import annotations

import itertools

import pytest

from rebill.domain.errors import InvalidStatus
from rebill.domain.status import (
    FINAL,
    TRANSITIONS,
    Event,
    SubscriptionStatus,
    allowed_events,
    ensure_changeable,
    transition,
)

S = SubscriptionStatus
E = Event
LIVE = [status for status in S if status not in FINAL]

# Written out again from the specification, so the table in status.py is
# checked against an independent copy rather than against itself.
EXPECTED = {
    (S.TRIAL, E.PAYMENT_SUCCEEDED): S.ACTIVE,
    (S.ACTIVE, E.PAYMENT_SUCCEEDED): S.ACTIVE,
    (S.OVERDUE, E.PAYMENT_SUCCEEDED): S.ACTIVE,
    (S.AWAITING_REINSTATE, E.PAYMENT_SUCCEEDED): S.ACTIVE,
    (S.TRIAL, E.PAYMENT_FAILED): S.OVERDUE,
    (S.ACTIVE, E.PAYMENT_FAILED): S.OVERDUE,
    (S.OVERDUE, E.PAYMENT_FAILED): S.OVERDUE,
    (S.AWAITING_REINSTATE, E.PAYMENT_FAILED): S.OVERDUE,
    (S.TRIAL, E.SUSPEND): S.SUSPENDED,
    (S.ACTIVE, E.SUSPEND): S.SUSPENDED,
    (S.OVERDUE, E.SUSPEND): S.SUSPENDED,
    (S.AWAITING_REINSTATE, E.SUSPEND): S.SUSPENDED,
    (S.SUSPENDED, E.ACTIVATE): S.ACTIVE,
    (S.ACTIVE, E.PERIOD_ENDED_UNPAID): S.AWAITING_REINSTATE,
    (S.TRIAL, E.PERIOD_ENDED_UNPAID): S.AWAITING_REINSTATE,
    (S.OVERDUE, E.PERIOD_ENDED_UNPAID): S.AWAITING_REINSTATE,
    (S.AWAITING_REINSTATE, E.REINSTATE): S.ACTIVE,
    (S.TRIAL, E.TRIAL_ENDED): S.ACTIVE,
    (S.FUTURE, E.START): S.ACTIVE,
    (S.FUTURE, E.START_TRIAL): S.TRIAL,
    **{(status, E.CANCEL): S.CANCELLED for status in LIVE},
    **{(status, E.EXPIRE): S.EXPIRED for status in LIVE},
}


def test_the_transition_table_is_exactly_the_specified_one() -> None:
    assert dict(TRANSITIONS) == EXPECTED


@pytest.mark.parametrize(
    ("status", "event"),
    list(itertools.product(S, E)),
    ids=[f"{s.value}-{e.value}" for s, e in itertools.product(S, E)],
)
def test_every_status_and_event_either_follows_the_table_or_is_refused(
    status: SubscriptionStatus, event: Event
) -> None:
    if (status, event) in EXPECTED:
        assert transition(status, event) is EXPECTED[(status, event)]
        assert event in allowed_events(status)
    else:
        with pytest.raises(InvalidStatus) as refused:
            transition(status, event)
        assert refused.value.code == "INVALID_STATUS"
        assert status.value in refused.value.message
        assert event not in allowed_events(status)


def test_a_refusal_reads_as_a_sentence() -> None:
    with pytest.raises(InvalidStatus) as refused:
        transition(S.ACTIVE, E.ACTIVATE)
    assert refused.value.message == "cannot activate a subscription that is ACTIVE"
    assert refused.value.details == {"status": "ACTIVE", "event": "ACTIVATE"}


@pytest.mark.parametrize("status", sorted(FINAL))
def test_cancelled_and_expired_subscriptions_accept_no_event(status: SubscriptionStatus) -> None:
    assert allowed_events(status) == frozenset()
    for event in E:
        with pytest.raises(InvalidStatus):
            transition(status, event)


@pytest.mark.parametrize("status", sorted(FINAL))
def test_cancelled_and_expired_subscriptions_accept_no_change(status: SubscriptionStatus) -> None:
    with pytest.raises(InvalidStatus) as refused:
        ensure_changeable(status, "change the quantity")
    assert refused.value.code == "INVALID_STATUS"
    assert f"subscription is {status.value}" in refused.value.message
    assert "cancelled and expired subscriptions accept no changes" in refused.value.message


@pytest.mark.parametrize("status", LIVE)
def test_every_other_status_can_be_changed(status: SubscriptionStatus) -> None:
    ensure_changeable(status, "change the quantity")


def test_any_live_subscription_can_be_cancelled_or_expired() -> None:
    for status in LIVE:
        assert {E.CANCEL, E.EXPIRE} <= allowed_events(status)


def test_a_status_given_by_name_is_understood() -> None:
    assert transition("SUSPENDED", "ACTIVATE") is S.ACTIVE  # type: ignore[arg-type]
