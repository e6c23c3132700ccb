"""When a scheduled configuration (a phase) takes effect: on its date, after any renewal still owed."""

from __future__ import annotations

from datetime import date

from rebill.domain.cycle import BILLABLE
from rebill.domain.subscription import SubscriptionState


def due_through(state: SubscriptionState, today: date) -> date:
    """The last effective date of the subscription's phases that apply now (``today`` is its local date).

    A phase applies on its date whether or not the subscription renews that
    day, and on a renewal date before the renewal. A renewal still owed from
    an earlier date (a worker that was down, a backdated import) bills the
    settings of its own date: the phases dated after it wait until it is
    billed. Suspended and other unbilled subscriptions owe nothing, so their
    phases apply on their dates.
    """
    owed = state.next_renewal_date
    if state.status in BILLABLE and owed is not None and owed < today:
        return owed
    return today
