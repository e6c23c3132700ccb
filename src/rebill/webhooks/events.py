"""Partner events: which outbox kinds they come from, and the body a partner receives.

The fan-out itself is a trigger on ``outbox`` (migration 0003), so every
writer of the outbox (mutations, the renewal engine, bulk runs) feeds
webhooks without knowing about them. The trigger maps kinds with the SQL
function ``rebill_webhook_event_type``, written by the migrations from
``EVENT_TYPES`` below (last by 0017); a test checks they agree. A new kind
takes a migration that replaces the function.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from rebill.ids import ID_KEYS, to_global_id

# Outbox kind → partner event type (DOMAIN.md "Partner events"). The kinds
# RENEWAL_REMINDER, PAYMENT_DUE, AWAITING_REINSTATE and the MERCHANT_… copies only notify people.
EVENT_TYPES: dict[str, str] = {
    "SUBSCRIPTION_CREATED": "subscription.created",
    "SUBSCRIPTION_UPDATED": "subscription.updated",
    # A scheduled cancellation or end date undone (resumeSubscription).
    "SUBSCRIPTION_RESUMED": "subscription.updated",
    "SUBSCRIPTION_CANCELLED": "subscription.cancelled",
    "SUBSCRIPTION_SUSPENDED": "subscription.suspended",
    "SUBSCRIPTION_ACTIVATED": "subscription.activated",
    # A subscription with a future start date starts.
    "SUBSCRIPTION_STARTED": "subscription.activated",
    "SUBSCRIPTION_EXPIRED": "subscription.expired",
    "RENEWAL_RECEIPT": "renewal.paid",
    "PAYMENT_DECLINED": "renewal.failed",
    "RENEWAL_REFUNDED": "renewal.refunded",
    "BULK_RUN_COMPLETED": "bulk_run.completed",
    "BULK_RUN_FAILED": "bulk_run.failed",
    # Invoices and credit notes (migration 0012).
    "INVOICE_CREATED": "invoice.created",
    "INVOICE_FINALIZED": "invoice.finalized",
    "INVOICE_PAID": "invoice.paid",
    "INVOICE_VOIDED": "invoice.voided",
    "INVOICE_UNCOLLECTIBLE": "invoice.uncollectible",
    "CREDIT_NOTE_CREATED": "credit_note.created",
    # Contract terms (migration 0017).
    "SUBSCRIPTION_CONTRACT_ATTACHED": "subscription.contract_attached",
    "SUBSCRIPTION_CONTRACT_UPDATED": "subscription.contract_updated",
    "SUBSCRIPTION_CONTRACT_REMOVED": "subscription.contract_removed",
    "SUBSCRIPTION_CONTRACT_RENEWED": "subscription.contract_renewed",
    "SUBSCRIPTION_CONTRACT_ENDED": "subscription.contract_ended",
}

PARTNER_EVENTS: tuple[str, ...] = tuple(dict.fromkeys(EVENT_TYPES.values()))


def partner_data(payload: Mapping[str, Any]) -> dict[str, Any]:
    """An outbox payload as partners see it: global ids only.

    Raw ids under the keys ``rebill.ids`` knows become global ids; other
    ``…Id`` values and the customer's links (which carry raw ids in their
    paths) are left out.
    """
    data: dict[str, Any] = {}
    for key, value in payload.items():
        type_name = ID_KEYS.get(key)
        if type_name is not None:
            if isinstance(value, int) and not isinstance(value, bool):
                data[key] = to_global_id(type_name, value)
            elif isinstance(value, str) and not value.isdigit():
                data[key] = value  # already a global id
            continue
        if key.endswith("Id") or key.endswith("Url"):
            continue
        data[key] = value
    return data


def body(event_type: str, occurred_at: datetime, payload: Mapping[str, Any]) -> bytes:
    """The JSON body of a delivery: ``{"type", "timestamp", "data"}``; the same bytes on every attempt."""
    stamp = occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return orjson.dumps({"type": event_type, "timestamp": stamp, "data": partner_data(payload)})
