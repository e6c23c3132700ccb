"""When phases take effect: on their date, but never before a renewal still owed from an earlier date."""

from __future__ import annotations

from datetime import date

import pytest

from rebill.domain.phasing import due_through
from rebill.domain.status import SubscriptionStatus
from tests.unit.test_cycle import make_state

ACTIVE, SUSPENDED, FUTURE = SubscriptionStatus.ACTIVE, SubscriptionStatus.SUSPENDED, SubscriptionStatus.FUTURE


@pytest.mark.parametrize(
    ("status", "next_renewal", "today", "through"),
    [
        (ACTIVE, date(2026, 2, 15), date(2026, 2, 1), date(2026, 2, 1)),  # between renewals: on its date
        (ACTIVE, date(2026, 2, 15), date(2026, 2, 15), date(2026, 2, 15)),  # renewal date: before the renewal
        (ACTIVE, date(2026, 2, 15), date(2026, 3, 20), date(2026, 2, 15)),  # Feb 15 still owed: it bills first
        (SubscriptionStatus.OVERDUE, date(2026, 2, 15), date(2026, 3, 1), date(2026, 2, 15)),
        (SUSPENDED, date(2026, 2, 15), date(2026, 3, 20), date(2026, 3, 20)),  # owes nothing while suspended
        (FUTURE, date(2026, 3, 1), date(2026, 3, 1), date(2026, 3, 1)),  # starting: all dated up to today
        (SubscriptionStatus.CANCELLED, None, date(2026, 3, 20), date(2026, 3, 20)),
    ],
)
def test_phases_apply_through_today_or_the_renewal_still_owed(
    status: SubscriptionStatus, next_renewal: date | None, today: date, through: date
) -> None:
    assert due_through(make_state(status=status, next_renewal_date=next_renewal), today) == through
