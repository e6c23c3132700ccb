"""What an operation gets and what it returns.

An operation is ``op(state, params, ctx) -> Outcome``: pure, so the GraphQL
mutation, the bulk run and the renewal engine share every rule, and a
what-if is simply an outcome that is not saved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from rebill.domain.errors import ConsentRequired
from rebill.domain.renewal import Charge, Event, Refund, RenewalInfo
from rebill.domain.status import SubscriptionStatus, ensure_changeable
from rebill.domain.subscription import SubscriptionState


@dataclass(frozen=True, slots=True)
class OpContext:
    """The moment an operation runs: ``today`` is the subscription's local date."""

    now: datetime
    today: date


@dataclass(frozen=True, slots=True)
class Outcome:
    state: SubscriptionState
    action: str
    events: tuple[Event, ...] = ()
    charge: Charge | None = None
    refund: Refund | None = None
    # Renewals whose recorded fields change (fulfillment cancelled, …).
    renewal_updates: tuple[tuple[RenewalInfo, dict[str, Any]], ...] = ()
    # A subscription created by the operation (a product change's replacement).
    replacement: SubscriptionState | None = None
    # Extra history lines that are not fields of the subscription.
    notes: tuple[dict[str, Any], ...] = field(default=())


def changeable(state: SubscriptionState, action: str) -> None:
    """Cancelled and expired subscriptions accept no change at all."""
    ensure_changeable(state.status, action)


def require_consent(before: SubscriptionState, after: SubscriptionState, consent_reference: str | None) -> None:
    """Raising what a running subscription bills needs the customer's consent (seed 002)."""
    if after.status in (SubscriptionStatus.CANCELLED, SubscriptionStatus.EXPIRED):
        return
    old, new = before.amount, after.amount
    if new > old and not (consent_reference and consent_reference.strip()):
        raise ConsentRequired(
            f"this raises what the subscription bills from {old.amount_str} to {new.amount_str} "
            f"{new.currency}: pass consentReference (who agreed, when, how)",
            field=["consentReference"],
        )
