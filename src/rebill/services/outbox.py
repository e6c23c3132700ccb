"""Outbox rows: the notifications and partner events a change causes.

Every writer (a single mutation, the charge path, the renewal engine, a bulk
run) builds its rows here, so a customer gets the same message whoever made
the change, and a cancellation reaches the merchant too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from rebill.config import Settings
from rebill.db import tables as t
from rebill.domain.renewal import Event
from rebill.domain.subscription import SubscriptionState

OUTBOX = t.table_of(t.OutboxMessage)
CUSTOMERS = t.table_of(t.Customer)

#: Events the merchant is told about as well as the customer (DOMAIN.md "Notifications").
MERCHANT_EVENTS = frozenset({"SUBSCRIPTION_CANCELLED"})
#: Events for partners (webhooks) only: nobody is emailed, so they are born delivered.
PARTNER_ONLY = frozenset(
    {
        "SUBSCRIPTION_CREATED",
        "SUBSCRIPTION_UPDATED",
        "INVOICE_CREATED",
        "INVOICE_FINALIZED",
        "INVOICE_PAID",
        "INVOICE_VOIDED",
        "INVOICE_UNCOLLECTIBLE",
        "CREDIT_NOTE_CREATED",
        "SUBSCRIPTION_CONTRACT_ATTACHED",
        "SUBSCRIPTION_CONTRACT_UPDATED",
        "SUBSCRIPTION_CONTRACT_REMOVED",
        "SUBSCRIPTION_CONTRACT_RENEWED",
        "SUBSCRIPTION_CONTRACT_ENDED",
    }
)


def notification_payload(
    base_url: str, state: SubscriptionState, event: Event, renewal_id: int | None = None
) -> dict[str, Any]:
    """An outbox payload: the event's own, plus ids and the links the customer needs."""
    base = base_url.rstrip("/")
    body: dict[str, Any] = {"subscriptionId": state.id, **event.payload}
    if renewal_id is not None and event.kind in ("RENEWAL_RECEIPT", "PAYMENT_DECLINED"):
        body["renewalId"] = renewal_id
    if event.kind == "PAYMENT_DECLINED":
        body["updatePaymentMethodUrl"] = f"{base}/customers/{state.customer_id}/payment-methods?subscription={state.id}"
    if event.kind in ("AWAITING_REINSTATE", "RENEWAL_REMINDER"):
        body["renewUrl"] = f"{base}/subscriptions/{state.id}/renew"
    return body


def outbox_rows(
    settings: Settings,
    state: SubscriptionState,
    events: Sequence[Event],
    email: str | None,
    now: datetime,
    renewal_id: int | None = None,
) -> list[dict[str, Any]]:
    """The rows for ``events``: one to the customer each, and a copy to the merchant where it applies."""
    rows: list[dict[str, Any]] = []
    for event in events:
        payload = notification_payload(settings.public_base_url, state, event, renewal_id)
        partner_only = event.kind in PARTNER_ONLY
        rows.append(
            {
                "kind": event.kind,
                "subscription_id": state.id,
                "recipient": None if partner_only else email,
                "payload": payload,
                "created_at": now,
                "delivered_at": now if partner_only else None,
            }
        )
        if event.kind in MERCHANT_EVENTS and settings.merchant_email:
            rows.append(
                {
                    "kind": f"MERCHANT_{event.kind}",
                    "subscription_id": state.id,
                    "recipient": settings.merchant_email,
                    "payload": {**payload, "customerEmail": email},
                    "created_at": now,
                    "delivered_at": None,
                }
            )
    return rows


async def customer_email(session: AsyncSession, customer_id: int) -> str | None:
    email = (await session.execute(select(CUSTOMERS.c.email).where(CUSTOMERS.c.id == customer_id))).scalar()
    return str(email) if email is not None else None


async def emit(
    session: AsyncSession,
    settings: Settings,
    state: SubscriptionState,
    events: Sequence[Event],
    now: datetime,
    *,
    renewal_id: int | None = None,
) -> None:
    """Outbox rows for an operation's events, in the caller's transaction."""
    if not events:
        return
    email = await customer_email(session, state.customer_id)
    await session.execute(insert(OUTBOX), outbox_rows(settings, state, events, email, now, renewal_id))
