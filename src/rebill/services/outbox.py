"""Outbox rows: the notifications and partner events a change causes.

Every writer (a single mutation, the charge path, the renewal engine, a bulk
run) builds its rows here, so a customer gets the same message whoever made
the change, and a cancellation reaches the merchant too.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from rebill.config import Settings
from rebill.db import tables as t
from rebill.db.sets import insert_rows
from rebill.domain.renewal import Event
from rebill.domain.subscription import SubscriptionState

OUTBOX = t.table_of(t.OutboxMessage)
CUSTOMERS = t.table_of(t.Customer)
TOKENS = t.table_of(t.PortalToken)
PORTAL_SETTINGS = t.table_of(t.PortalSettings)

#: The portal section each kind of e-mail opens; any other opens the subscription, or the invoice it names.
LINK_FLOWS = {"PAYMENT_DECLINED": "PAYMENT_METHOD", "AWAITING_REINSTATE": "RENEW", "RENEWAL_REMINDER": "RENEW"}
#: Where links point and how long they work when ``rebill serve`` never stored it (the trigger's defaults).
DEFAULT_LINK_BASE = "http://127.0.0.1:8000"
DEFAULT_LINK_TTL = 604800

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


async def add_portal_links(
    session: AsyncSession, rows: Sequence[dict[str, Any]], owners: Sequence[int | None], now: datetime
) -> None:
    """Give each row addressed to its subscription's customer (``owners``: that customer, else None) its
    one-use portal link, with one statement for the whole batch.

    The outbox trigger (migrations 0004 and 0018) does the same for any row
    inserted without ``portalUrl``, one row at a time: batch writers (the
    renewal engine, the charge path) come here first, so the trigger finds
    the link made and passes. The rule is the trigger's: the flow by kind,
    the invoice a receipt or an issued invoice names, the lifetime and base
    URL ``rebill serve`` stored.
    """
    wanted = [
        (row, owner)
        for row, owner in zip(rows, owners, strict=True)
        if owner is not None and isinstance(row["payload"], dict) and "portalUrl" not in row["payload"]
    ]
    if not wanted:
        return
    stored = (await session.execute(select(PORTAL_SETTINGS.c.base_url, PORTAL_SETTINGS.c.email_link_ttl))).first()
    base = stored.base_url if stored is not None and stored.base_url is not None else DEFAULT_LINK_BASE
    ttl = stored.email_link_ttl if stored is not None and stored.email_link_ttl is not None else DEFAULT_LINK_TTL
    tokens: list[dict[str, Any]] = []
    for row, owner in wanted:
        at = row.get("created_at") or now
        flow = LINK_FLOWS.get(row["kind"], "OVERVIEW")
        invoice = row["payload"].get("invoiceId")
        secret = secrets.token_hex(32)
        tokens.append(
            {
                "customer_id": owner,
                "kind": "LINK",
                "token_hash": hashlib.sha256(secret.encode()).hexdigest(),
                "flow": flow,
                "subscription_id": row["subscription_id"],
                "invoice_id": invoice if flow == "OVERVIEW" and type(invoice) is int else None,
                "source": "EMAIL",
                "created_at": at,
                "expires_at": at + timedelta(seconds=ttl),
            }
        )
        row["payload"] = {**row["payload"], "portalUrl": f"{base}/portal/start/{secret}"}
    await insert_rows(session, TOKENS, tokens)
