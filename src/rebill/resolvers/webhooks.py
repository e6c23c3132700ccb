"""Webhook resolvers (``admin`` scope): parse the input, call ``WebhookService``, build the payload."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from rebill.domain.errors import RebillError
from rebill.ids import decode_id, to_global_id
from rebill.resolvers.auth import _Scope
from rebill.resolvers.pages import NEWEST_FIRST, fetch_page
from rebill.schema.common import ApiError, UserError, page_info
from rebill.schema.webhooks import (
    CreateWebhookEndpointInput,
    CreateWebhookEndpointPayload,
    DeleteWebhookEndpointInput,
    DeleteWebhookEndpointPayload,
    RedeliverWebhookInput,
    RedeliverWebhookPayload,
    RotateWebhookSecretInput,
    RotateWebhookSecretPayload,
    UpdateWebhookEndpointInput,
    UpdateWebhookEndpointPayload,
    WebhookDelivery,
    WebhookDeliveryConnection,
    WebhookDeliveryEdge,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookEndpointConnection,
    WebhookEndpointEdge,
)
from rebill.webhooks.service import DELIVERIES, ENDPOINTS, WebhookService


class CanAdmin(_Scope):
    scope = "admin"


def _service(info: Info) -> WebhookService:
    return WebhookService(info.context.services)


def _id(gid: str, type_name: str, field: str) -> int:
    return decode_id(gid, type_name, [field])


First = Annotated[int | None, strawberry.argument(description="At most this many from the start (100 at most)")]
After = Annotated[str | None, strawberry.argument(description="Start after this cursor")]
Last = Annotated[int | None, strawberry.argument(description="At most this many from the end (100 at most)")]
Before = Annotated[str | None, strawberry.argument(description="End before this cursor")]


async def webhook_endpoints(
    info: Info,
    first: First = None,
    after: After = None,
    last: Last = None,
    before: Before = None,
) -> WebhookEndpointConnection:
    """Every webhook endpoint, oldest first."""
    async with info.context.services.sessions() as session:
        page = await fetch_page(session, ENDPOINTS, [], first, after, last=last, before=before)
    edges = [
        WebhookEndpointEdge(cursor=c, node=WebhookEndpoint.of(r)) for r, c in zip(page.rows, page.cursors, strict=True)
    ]
    return WebhookEndpointConnection(
        edges=edges, page_info=page_info(edges, page.has_next, page.has_previous), total_count=page.total
    )


async def webhook_deliveries(
    info: Info,
    endpoint_id: Annotated[strawberry.ID | None, strawberry.argument(description="Only this endpoint's")] = None,
    status: Annotated[
        list[WebhookDeliveryStatus] | None, strawberry.argument(description="Only deliveries in these statuses")
    ] = None,
    first: First = None,
    after: After = None,
    last: Last = None,
    before: Before = None,
) -> WebhookDeliveryConnection:
    """Deliveries, newest first, of one endpoint or all, in the given statuses."""
    where: list[Any] = []
    if endpoint_id is not None:
        try:
            where.append(DELIVERIES.c.endpoint_id == _id(endpoint_id, "WebhookEndpoint", "endpointId"))
        except RebillError as exc:
            raise ApiError(f"endpointId: {exc.message}", exc.code) from None
    if status:
        where.append(DELIVERIES.c.status.in_([s.value for s in status]))
    async with info.context.services.sessions() as session:
        page = await fetch_page(session, DELIVERIES, where, first, after, last=last, before=before, order=NEWEST_FIRST)
    endpoints = await _service(info).endpoints_by_id(sorted({r.endpoint_id for r in page.rows}))
    edges = [
        WebhookDeliveryEdge(cursor=c, node=WebhookDelivery.of(r, endpoints[r.endpoint_id]))
        for r, c in zip(page.rows, page.cursors, strict=True)
    ]
    return WebhookDeliveryConnection(
        edges=edges, page_info=page_info(edges, page.has_next, page.has_previous), total_count=page.total
    )


async def create_webhook_endpoint(info: Info, input: CreateWebhookEndpointInput) -> CreateWebhookEndpointPayload:
    """A new endpoint; its secret is in this payload and nowhere else."""
    try:
        created = await _service(info).create(input.url, input.events, input.description)
    except RebillError as exc:
        return CreateWebhookEndpointPayload(user_errors=[UserError.of(exc)], endpoint=None, secret=None)
    return CreateWebhookEndpointPayload(
        user_errors=[], endpoint=WebhookEndpoint.of(created.endpoint), secret=created.secret
    )


async def update_webhook_endpoint(info: Info, input: UpdateWebhookEndpointInput) -> UpdateWebhookEndpointPayload:
    """Change an endpoint's URL, events, description, or turn it off and on."""
    changes: dict[str, Any] = {"url": input.url, "enabled": input.enabled}
    if input.events is not strawberry.UNSET:
        changes["events"] = input.events
    if input.description is not strawberry.UNSET:
        changes["description"] = input.description
    try:
        row = await _service(info).update(_id(input.endpoint_id, "WebhookEndpoint", "endpointId"), **changes)
    except RebillError as exc:
        return UpdateWebhookEndpointPayload(user_errors=[UserError.of(exc)], endpoint=None)
    return UpdateWebhookEndpointPayload(user_errors=[], endpoint=WebhookEndpoint.of(row))


async def rotate_webhook_secret(info: Info, input: RotateWebhookSecretInput) -> RotateWebhookSecretPayload:
    """A new secret; deliveries carry signatures of both secrets for the next 24 hours."""
    try:
        created = await _service(info).rotate(_id(input.endpoint_id, "WebhookEndpoint", "endpointId"))
    except RebillError as exc:
        return RotateWebhookSecretPayload(user_errors=[UserError.of(exc)], endpoint=None, secret=None)
    return RotateWebhookSecretPayload(
        user_errors=[], endpoint=WebhookEndpoint.of(created.endpoint), secret=created.secret
    )


async def delete_webhook_endpoint(info: Info, input: DeleteWebhookEndpointInput) -> DeleteWebhookEndpointPayload:
    """Delete an endpoint and its deliveries."""
    try:
        pk = await _service(info).delete(_id(input.endpoint_id, "WebhookEndpoint", "endpointId"))
    except RebillError as exc:
        return DeleteWebhookEndpointPayload(user_errors=[UserError.of(exc)], deleted_endpoint_id=None)
    return DeleteWebhookEndpointPayload(
        user_errors=[], deleted_endpoint_id=strawberry.ID(to_global_id("WebhookEndpoint", pk))
    )


async def redeliver_webhook(info: Info, input: RedeliverWebhookInput) -> RedeliverWebhookPayload:
    """Send a delivery again with the same webhook-id (receivers deduplicate on it)."""
    service = _service(info)
    try:
        row = await service.redeliver(_id(input.delivery_id, "WebhookDelivery", "deliveryId"))
    except RebillError as exc:
        return RedeliverWebhookPayload(user_errors=[UserError.of(exc)], delivery=None)
    endpoints = await service.endpoints_by_id([row.endpoint_id])
    return RedeliverWebhookPayload(user_errors=[], delivery=WebhookDelivery.of(row, endpoints[row.endpoint_id]))


async def webhook_node(info: Info, type_name: str, pk: int) -> WebhookEndpoint | WebhookDelivery | None:
    """``node(id:)`` for webhook objects: only an ``admin`` key sees them."""
    actor = info.context.actor
    if actor is None or not actor.has("admin"):
        return None
    service = _service(info)
    if type_name == "WebhookEndpoint":
        found = await service.endpoints_by_id([pk])
        return WebhookEndpoint.of(found[pk]) if pk in found else None
    row = await service.delivery(pk)
    if row is None:
        return None
    endpoints = await service.endpoints_by_id([row.endpoint_id])
    return WebhookDelivery.of(row, endpoints[row.endpoint_id])
