"""Global ids: the opaque ``Type:pk`` strings every client sees.

Kept below the schema so that services, bulk plans, billing and notification
payloads encode and decode ids the same way as the GraphQL API does.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

from rebill.domain.errors import RebillError

#: The largest primary key PostgreSQL's BIGINT holds; a bigger one is no id of ours.
MAX_PK = 2**63 - 1


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def urlsafe_b64(raw: str) -> str:
    """``raw`` in unpadded URL-safe base64 (global ids, page cursors): ``base64.urlsafe_b64encode`` in one
    call, as one is written for every node of every page."""
    return binascii.b2a_base64(raw.encode(), newline=False).translate(_URLSAFE).decode().rstrip("=")


def to_global_id(type_name: str, pk: int | str) -> str:
    return urlsafe_b64(f"{type_name}:{pk}")


def from_global_id(gid: str) -> tuple[str, str]:
    """The type name and the raw key inside a global id (``INVALID_ID`` otherwise)."""
    try:
        padded = gid + "=" * (-len(gid) % 4)
        type_name, _, pk = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise RebillError(f"{_shown(gid)} is not a rebill id", code="INVALID_ID") from None
    if not type_name or not pk:
        raise RebillError(f"{_shown(gid)} is not a rebill id", code="INVALID_ID")
    return type_name, pk


def decode_id(gid: str, expected: str, field: Sequence[str] = ()) -> int:
    """The primary key inside a global id of the expected type (``INVALID_ID`` otherwise)."""
    try:
        type_name, pk = from_global_id(gid)
    except RebillError as exc:
        exc.field = list(field) or None
        raise
    digits = pk.removeprefix("-")
    if type_name != expected or not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
        raise RebillError(f"{_shown(gid)} is not the id of a {expected}", code="INVALID_ID", field=list(field) or None)
    value = int(pk)
    if not -MAX_PK <= value <= MAX_PK:
        raise RebillError(f"{_shown(gid)} is not the id of a {expected}", code="INVALID_ID", field=list(field) or None)
    return value


def _shown(gid: str) -> str:
    """The id as an error message quotes it: at most 80 characters."""
    return repr(gid if len(gid) <= 80 else gid[:77] + "...")


#: Keys of notification payloads and history values that hold a raw id, and the type it names.
ID_KEYS = {
    "subscriptionId": "Subscription",
    "renewalId": "Renewal",
    "customerId": "Customer",
    "bulkRunId": "BulkRun",
    "runId": "BulkRun",
    "paymentMethodId": "PaymentMethod",
    "productId": "Product",
    "profileId": "SubscriptionProfile",
    "phaseId": "Phase",
    "replacedById": "Subscription",
    "replacesId": "Subscription",
    "invoiceId": "Invoice",
    "creditNoteId": "CreditNote",
}


def globalize(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A stored payload as clients see it: each raw id under a known key becomes its global id."""
    out: dict[str, Any] = {}
    for key, value in payload.items():
        type_name = ID_KEYS.get(key)
        if type_name is not None and isinstance(value, int) and not isinstance(value, bool):
            out[key] = to_global_id(type_name, value)
        else:
            out[key] = value
    return out
