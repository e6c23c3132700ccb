"""Portal tokens: the secrets that open the portal for one customer.

A token is 256 random bits; only its SHA-256 is stored, so the table is
useless to whoever reads it. Two kinds:

- ``LINK``: in a URL (``/portal/start/<secret>``), from an e-mail (made by
  the outbox trigger of migration 0004) or from
  ``createCustomerPortalSession``. It works once: the ``POST`` behind the
  start page consumes it and opens a browser session.
- ``API``: a bearer token (``rbp_…``) for a store's own account pages, with
  the ``customer`` scope until it expires. It is never in a URL.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from rebill.db import tables as t
from rebill.domain.errors import NotFound, ValidationError
from rebill.ids import to_global_id
from rebill.services.customers import Flow, customer_actor
from rebill.services.runtime import Actor, Services

T = t.table_of(t.PortalToken)
SETTINGS = t.table_of(t.PortalSettings)
CU = t.table_of(t.Customer)
S = t.table_of(t.Subscription)

API_PREFIX = "rbp_"


#: The section of a subscription's page each flow opens at.
ANCHORS = {
    Flow.OVERVIEW: "",
    Flow.PAYMENT_METHOD: "#payment-method",
    Flow.POSTPONE: "#postpone",
    Flow.CANCEL: "#cancel",
    Flow.RENEW: "#renew",
}


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


async def write_settings(services: Services) -> None:
    """What the outbox trigger builds e-mail links from: the public base URL and their lifetime."""
    settings = services.settings
    values = {
        "id": True,
        "base_url": settings.public_base_url.rstrip("/"),
        "email_link_ttl": settings.portal_email_link_ttl,
        "updated_at": services.clock.now(),
    }
    statement = pg_insert(SETTINGS).values(**values)
    async with services.engine.begin() as conn:
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=[SETTINGS.c.id],
                set_={k: statement.excluded[k] for k in ("base_url", "email_link_ttl", "updated_at")},
            )
        )


def check_return_url(url: str | None) -> str | None:
    """A store's page to come back to: an absolute http(s) URL, or nothing."""
    if url is None or not url.strip():
        return None
    clean = url.strip()
    parts = urlsplit(clean)
    if (
        len(clean) > 2000
        or parts.scheme not in ("http", "https")
        or not parts.netloc
        or any(c in clean for c in "\r\n")
    ):
        raise ValidationError(
            "returnUrl must be an absolute http or https URL of at most 2000 characters",
            code="INVALID_URL",
            field=["returnUrl"],
        )
    return clean


@dataclass(frozen=True)
class PortalSession:
    """What ``createCustomerPortalSession`` hands a store: a one-time link and a bearer token."""

    url: str
    token: str
    expires_at: datetime


async def create_portal_session(
    services: Services,
    customer_id: int,
    *,
    flow: Flow = Flow.OVERVIEW,
    return_url: str | None = None,
    subscription_id: int | None = None,
) -> PortalSession:
    """A link (works once) and a bearer token (works until it expires), both valid ``REBILL_PORTAL_LINK_TTL``."""
    back = check_return_url(return_url)
    now = services.clock.now()
    expires = now + timedelta(seconds=services.settings.portal_link_ttl)
    link, api = new_secret(), new_secret()
    async with services.engine.begin() as conn:
        exists = (await conn.execute(select(CU.c.id).where(CU.c.id == customer_id))).scalar()
        if exists is None:
            raise NotFound(f"customer {to_global_id('Customer', customer_id)} does not exist", field=["customerId"])
        if subscription_id is not None:
            owner = (await conn.execute(select(S.c.customer_id).where(S.c.id == subscription_id))).scalar()
            if owner != customer_id:
                raise NotFound(
                    f"subscription {to_global_id('Subscription', subscription_id)} does not exist",
                    field=["subscriptionId"],
                )
        common = {
            "customer_id": customer_id,
            "flow": flow.value,
            "subscription_id": subscription_id,
            "return_url": back,
            "source": "API",
            "created_at": now,
            "expires_at": expires,
        }
        await conn.execute(
            insert(T),
            [
                {**common, "kind": "LINK", "token_hash": hash_secret(link)},
                {**common, "kind": "API", "token_hash": hash_secret(api)},
            ],
        )
    base = services.settings.public_base_url.rstrip("/")
    return PortalSession(url=f"{base}/portal/start/{link}", token=API_PREFIX + api, expires_at=expires)


class LinkStatus(enum.StrEnum):
    VALID = "VALID"
    USED = "USED"
    EXPIRED = "EXPIRED"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class Link:
    status: LinkStatus
    customer_id: int | None = None
    flow: Flow = Flow.OVERVIEW
    subscription_id: int | None = None
    return_url: str | None = None
    invoice_id: int | None = None


def _plausible(secret: str) -> bool:
    return 16 <= len(secret) <= 128 and secret.isascii() and all(c.isalnum() or c in "-_" for c in secret)


def _link(row: object, status: LinkStatus) -> Link:
    return Link(
        status,
        customer_id=row.customer_id,  # type: ignore[attr-defined]
        flow=Flow(row.flow),  # type: ignore[attr-defined]
        subscription_id=row.subscription_id,  # type: ignore[attr-defined]
        return_url=row.return_url,  # type: ignore[attr-defined]
        invoice_id=row.invoice_id,  # type: ignore[attr-defined]
    )


async def peek_link(engine: AsyncEngine, secret: str, now: datetime) -> Link:
    """What a link is, without using it (a mail scanner's ``GET`` must not burn it)."""
    if not _plausible(secret):
        return Link(LinkStatus.UNKNOWN)
    async with engine.connect() as conn:
        row = (await conn.execute(select(T).where(T.c.token_hash == hash_secret(secret), T.c.kind == "LINK"))).first()
    if row is None:
        return Link(LinkStatus.UNKNOWN)
    if row.used_at is not None:
        return _link(row, LinkStatus.USED)
    if row.expires_at <= now:
        return _link(row, LinkStatus.EXPIRED)
    return _link(row, LinkStatus.VALID)


async def consume_link(engine: AsyncEngine, secret: str, now: datetime) -> Link:
    """Use a link: exactly one of several concurrent uses gets ``VALID``."""
    if not _plausible(secret):
        return Link(LinkStatus.UNKNOWN)
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                update(T)
                .where(
                    T.c.token_hash == hash_secret(secret),
                    T.c.kind == "LINK",
                    T.c.used_at.is_(None),
                    T.c.expires_at > now,
                )
                .values(used_at=now)
                .returning(T)
            )
        ).first()
    if row is not None:
        return _link(row, LinkStatus.VALID)
    return await peek_link(engine, secret, now)


async def customer_for_bearer(engine: AsyncEngine, secret: str, now: datetime) -> int | None:
    """The customer a bearer token (``rbp_…``) acts for, until it expires; None otherwise."""
    if not secret.startswith(API_PREFIX) or not _plausible(secret[len(API_PREFIX) :]):
        return None
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(T.c.customer_id).where(
                    T.c.token_hash == hash_secret(secret[len(API_PREFIX) :]), T.c.kind == "API", T.c.expires_at > now
                )
            )
        ).first()
    return int(row.customer_id) if row is not None else None


async def bearer_actor(services: Services, secret: str) -> Actor | None:
    """The ``customer`` actor of a portal bearer token, or None when it is not one (or no longer valid)."""
    customer_id = await customer_for_bearer(services.engine, secret, services.clock.now())
    return customer_actor(customer_id) if customer_id is not None else None
