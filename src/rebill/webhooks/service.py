"""Webhook endpoints and deliveries: the use cases behind the GraphQL mutations and queries."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from rebill.db import tables as t
from rebill.domain.errors import NotFound, UrlNotAllowed, ValidationError
from rebill.services.runtime import Services
from rebill.webhooks.delivery import ROTATION_OVERLAP
from rebill.webhooks.destinations import (
    DEFAULT_PORTS,
    LOOKUP_SECONDS,
    DestinationRefused,
    NotResolved,
    Resolver,
    literal_address,
    resolve_checked,
    system_resolver,
    url_refusal,
    valid_host_name,
)
from rebill.webhooks.events import PARTNER_EVENTS
from rebill.webhooks.signing import new_secret

ENDPOINTS = t.table_of(t.WebhookEndpoint)
DELIVERIES = t.table_of(t.WebhookDelivery)

_UNSET: Any = object()


@dataclass(frozen=True)
class Created:
    """An endpoint and its secret, which is shown only once."""

    endpoint: Any
    secret: str


async def check_url(
    url: str,
    field: Sequence[str] = ("url",),
    *,
    allow_private: bool = False,
    resolver: Resolver = system_resolver,
) -> str:
    """A URL webhooks may be sent to: http(s), no credentials, a host that is not, and does not resolve to, a
    loopback, private or otherwise non-public address (unless ``allow_private``).

    A name that does not resolve now is accepted: it may be created later, or
    this machine may have no DNS; every delivery checks it again anyway.
    """
    url = url.strip()
    if len(url) > 2000:
        raise ValidationError("the URL is longer than 2,000 characters", code="INVALID_URL", field=list(field))
    parts = urlsplit(url)
    if not parts.scheme:
        raise ValidationError(f"{url!r} is not an http(s) URL", code="INVALID_URL", field=list(field))
    refusal = url_refusal(parts)
    if refusal:
        raise UrlNotAllowed(f"{url!r} is not allowed: {refusal}", field=list(field))
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or (literal_address(host) is None and not valid_host_name(host)):
        raise ValidationError(f"{url!r} is not an http(s) URL", code="INVALID_URL", field=list(field))
    if allow_private:
        return url
    try:
        async with asyncio.timeout(LOOKUP_SECONDS):
            await resolve_checked(host, port or DEFAULT_PORTS[parts.scheme.lower()], resolver, allow_private=False)
    except DestinationRefused as exc:
        raise UrlNotAllowed(f"{url!r} is not allowed: {exc}", field=list(field)) from None
    except (NotResolved, TimeoutError):
        pass
    return url


def check_events(events: Sequence[str] | None, field: Sequence[str] = ("events",)) -> list[str]:
    """The event types an endpoint subscribes to; none means all of them."""
    chosen: list[str] = []
    for i, name in enumerate(events or []):
        if name not in PARTNER_EVENTS:
            raise ValidationError(
                f"{name!r} is not an event type; use one of {', '.join(PARTNER_EVENTS)}",
                code="UNKNOWN_EVENT_TYPE",
                field=[*field, str(i)],
            )
        if name not in chosen:
            chosen.append(name)
    return chosen


class WebhookService:
    def __init__(self, services: Services, resolver: Resolver = system_resolver) -> None:
        self.services = services
        self.resolver = resolver

    async def _checked_url(self, url: str) -> str:
        allow_private = self.services.settings.webhook_allow_private
        return await check_url(url, allow_private=allow_private, resolver=self.resolver)

    async def _endpoint(self, session: AsyncSession, endpoint_id: int, *, lock: bool = False) -> Any:
        stmt = select(ENDPOINTS).where(ENDPOINTS.c.id == endpoint_id)
        if lock:
            stmt = stmt.with_for_update()
        row = (await session.execute(stmt)).first()
        if row is None:
            raise NotFound(f"no webhook endpoint {endpoint_id}", field=["endpointId"])
        return row

    async def create(self, url: str, events: Sequence[str] | None, description: str | None) -> Created:
        secret = new_secret()
        checked = await self._checked_url(url)
        values = {"url": checked, "events": check_events(events), "description": description, "secret": secret}
        now = self.services.clock.now()
        async with self.services.sessions() as session, session.begin():
            row = (
                await session.execute(
                    insert(ENDPOINTS).values(**values, created_at=now, updated_at=now).returning(ENDPOINTS)
                )
            ).one()
        return Created(row, secret)

    async def update(
        self,
        endpoint_id: int,
        *,
        url: str | None = None,
        events: Sequence[str] | None = _UNSET,
        description: str | None = _UNSET,
        enabled: bool | None = None,
    ) -> Any:
        """Change what is given; enabling an endpoint clears the reason it was disabled."""
        values: dict[str, Any] = {}
        if url is not None:
            values["url"] = await self._checked_url(url)
        if events is not _UNSET:
            values["events"] = check_events(events)
        if description is not _UNSET:
            values["description"] = description
        if enabled is not None:
            values["enabled"] = enabled
            if enabled:
                values["disabled_reason"] = None
            else:
                values["disabled_reason"] = "disabled through the API"
        async with self.services.sessions() as session, session.begin():
            await self._endpoint(session, endpoint_id, lock=True)
            values["updated_at"] = self.services.clock.now()
            return (
                await session.execute(
                    update(ENDPOINTS).where(ENDPOINTS.c.id == endpoint_id).values(**values).returning(ENDPOINTS)
                )
            ).one()

    async def rotate(self, endpoint_id: int) -> Created:
        """A new secret; the current one keeps signing beside it for 24 hours (rebill's clock)."""
        now = self.services.clock.now()
        secret = new_secret()
        async with self.services.sessions() as session, session.begin():
            current = await self._endpoint(session, endpoint_id, lock=True)
            row = (
                await session.execute(
                    update(ENDPOINTS)
                    .where(ENDPOINTS.c.id == endpoint_id)
                    .values(
                        secret=secret,
                        previous_secret=current.secret,
                        previous_secret_expires_at=now + ROTATION_OVERLAP,
                        updated_at=now,
                    )
                    .returning(ENDPOINTS)
                )
            ).one()
        return Created(row, secret)

    async def delete(self, endpoint_id: int) -> int:
        """Delete an endpoint and its deliveries; nothing more is sent to it."""
        async with self.services.sessions() as session, session.begin():
            await self._endpoint(session, endpoint_id, lock=True)
            await session.execute(delete(ENDPOINTS).where(ENDPOINTS.c.id == endpoint_id))
        return endpoint_id

    async def redeliver(self, delivery_id: int) -> Any:
        """Send a delivery again, with the same ``webhook-id``, restarting its retry schedule."""
        async with self.services.sessions() as session, session.begin():
            found = (
                await session.execute(select(DELIVERIES.c.id).where(DELIVERIES.c.id == delivery_id).with_for_update())
            ).first()
            if found is None:
                raise NotFound(f"no webhook delivery {delivery_id}", field=["deliveryId"])
            return (
                await session.execute(
                    update(DELIVERIES)
                    .where(DELIVERIES.c.id == delivery_id)
                    .values(status="PENDING", round_attempts=0, next_attempt_at=None)
                    .returning(DELIVERIES)
                )
            ).one()

    async def endpoints_by_id(self, ids: Sequence[int]) -> dict[int, Any]:
        async with self.services.sessions() as session:
            rows = await session.execute(select(ENDPOINTS).where(ENDPOINTS.c.id.in_(list(ids))))
            return {r.id: r for r in rows}

    async def delivery(self, delivery_id: int) -> Any:
        async with self.services.sessions() as session:
            return (await session.execute(select(DELIVERIES).where(DELIVERIES.c.id == delivery_id))).first()
