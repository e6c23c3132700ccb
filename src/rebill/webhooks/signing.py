"""Secrets and signatures of Standard Webhooks, through the ``standardwebhooks`` package."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh ``whsec_…`` secret: 32 random bytes, base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


@lru_cache(maxsize=1024)
def _signer(secret: str) -> Webhook:
    return Webhook(secret)


def signature(secrets_: Sequence[str], msg_id: str, timestamp: datetime, body: bytes) -> str:
    """The ``webhook-signature`` header: one ``v1,…`` signature per secret, space separated.

    After a rotation both the new and the previous secret sign, so a
    receiver still configured with either verifies the delivery.
    """
    text = body.decode()
    stamp = timestamp.astimezone(UTC)
    return " ".join(_signer(s).sign(msg_id, stamp, text) for s in secrets_)


def headers(secrets_: Sequence[str], msg_id: str, timestamp: datetime, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers (and the content type) for one attempt."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature(secrets_, msg_id, timestamp, body),
    }
