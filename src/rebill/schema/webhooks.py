"""Webhook endpoints and deliveries in GraphQL (API.md "Webhooks")."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import strawberry

from rebill.ids import to_global_id
from rebill.schema.common import Node, PageInfo, UserError


@strawberry.enum(description="Where a delivery stands: waiting to be sent (or retried), accepted, or given up")
class WebhookDeliveryStatus(enum.Enum):
    PENDING = strawberry.enum_value("PENDING", description="Not accepted yet: due now or waiting for its next retry")
    SUCCEEDED = strawberry.enum_value("SUCCEEDED", description="The endpoint answered with a 2xx status")
    FAILED = strawberry.enum_value(
        "FAILED", description="Every attempt of the retry schedule failed, or the endpoint answered 410 Gone"
    )


@strawberry.type(description="A URL that receives partner events, signed as Standard Webhooks says")
class WebhookEndpoint(Node):
    url: str = strawberry.field(description="Where deliveries are POSTed")
    description: str | None = strawberry.field(description="A note for the people who run it")
    events: list[str] = strawberry.field(description="The event types it receives; empty means every event")
    enabled: bool = strawberry.field(description="Whether events are delivered to it")
    disabled_reason: str | None = strawberry.field(description="Why it was disabled (a 410 Gone answer, say)")
    created_at: datetime = strawberry.field(description="When it was created")

    @classmethod
    def of(cls, row: Any) -> WebhookEndpoint:
        return cls(
            id=strawberry.ID(to_global_id("WebhookEndpoint", row.id)),
            url=row.url,
            description=row.description,
            events=list(row.events or []),
            enabled=row.enabled,
            disabled_reason=row.disabled_reason,
            created_at=row.created_at,
        )


@strawberry.type(description="One event sent (or to be sent) to one endpoint, with its attempts")
class WebhookDelivery(Node):
    endpoint_id: strawberry.Private[int]
    endpoint_row: strawberry.Private[Any]
    event_id: str = strawberry.field(description="The webhook-id header: the same on every attempt and redelivery")
    event_type: str = strawberry.field(description="The partner event type, such as renewal.paid")
    status: WebhookDeliveryStatus = strawberry.field(description="Where the delivery stands")
    attempts: int = strawberry.field(description="Attempts made so far, redeliveries included")
    last_status_code: int | None = strawberry.field(description="The HTTP status of the last attempt, if it had one")
    last_error: str | None = strawberry.field(
        description="Why the last attempt failed: its status and timing, a timeout, a connection error or a refused "
        "destination; never what the endpoint answered"
    )
    next_attempt_at: datetime | None = strawberry.field(
        description="When a pending delivery is due (rebill's clock); null once it succeeded or failed"
    )
    created_at: datetime = strawberry.field(description="When the event happened and the delivery was created")
    delivered_at: datetime | None = strawberry.field(description="When the endpoint accepted it")

    @strawberry.field(description="The endpoint it goes to")
    def endpoint(self) -> WebhookEndpoint:
        return WebhookEndpoint.of(self.endpoint_row)

    @classmethod
    def of(cls, row: Any, endpoint: Any) -> WebhookDelivery:
        pending = row.status == "PENDING"
        return cls(
            id=strawberry.ID(to_global_id("WebhookDelivery", row.id)),
            endpoint_id=row.endpoint_id,
            endpoint_row=endpoint,
            event_id=row.event_id,
            event_type=row.event_type,
            status=WebhookDeliveryStatus(row.status),
            attempts=row.attempts,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            next_attempt_at=(row.next_attempt_at or row.created_at) if pending else None,
            created_at=row.created_at,
            delivered_at=row.delivered_at,
        )


@strawberry.type(description="An endpoint in a list, with its cursor")
class WebhookEndpointEdge:
    cursor: str = strawberry.field(description="Pass it as after (or before) to page from here")
    node: WebhookEndpoint = strawberry.field(description="The endpoint")


@strawberry.type(description="A page of webhook endpoints")
class WebhookEndpointConnection:
    edges: list[WebhookEndpointEdge] = strawberry.field(description="The endpoints of this page, oldest first")
    page_info: PageInfo = strawberry.field(description="Cursors and whether more pages follow or precede")
    total_count: int = strawberry.field(description="How many endpoints there are")


@strawberry.type(description="A delivery in a list, with its cursor")
class WebhookDeliveryEdge:
    cursor: str = strawberry.field(description="Pass it as after (or before) to page from here")
    node: WebhookDelivery = strawberry.field(description="The delivery")


@strawberry.type(description="A page of webhook deliveries")
class WebhookDeliveryConnection:
    edges: list[WebhookDeliveryEdge] = strawberry.field(description="The deliveries of this page, newest first")
    page_info: PageInfo = strawberry.field(description="Cursors and whether more pages follow or precede")
    total_count: int = strawberry.field(description="How many deliveries match")


@strawberry.input(description="A new endpoint")
class CreateWebhookEndpointInput:
    url: str = strawberry.field(
        description="An http or https URL that accepts POST, on a public address, without user:password@ "
        "(URL_NOT_ALLOWED otherwise)"
    )
    events: list[str] | None = strawberry.field(
        default=None, description="Event types to receive (subscription.created, renewal.paid, …); empty or absent: all"
    )
    description: str | None = strawberry.field(default=None, description="A note for the people who run it")


@strawberry.input(description="Changes to an endpoint; absent fields stay as they are")
class UpdateWebhookEndpointInput:
    endpoint_id: strawberry.ID = strawberry.field(description="The endpoint to change")
    url: str | None = strawberry.field(default=None, description="A new URL, under the same rules as at creation")
    events: list[str] | None = strawberry.field(default=strawberry.UNSET, description="Event types; empty: all")
    description: str | None = strawberry.field(default=strawberry.UNSET, description="A new note (null clears it)")
    enabled: bool | None = strawberry.field(
        default=None, description="Turn delivery off or back on (clears the disabled reason)"
    )


@strawberry.input(description="The endpoint whose secret to replace")
class RotateWebhookSecretInput:
    endpoint_id: strawberry.ID = strawberry.field(description="The endpoint")


@strawberry.input(description="The endpoint to delete, with its deliveries")
class DeleteWebhookEndpointInput:
    endpoint_id: strawberry.ID = strawberry.field(description="The endpoint")


@strawberry.input(description="The delivery to send again")
class RedeliverWebhookInput:
    delivery_id: strawberry.ID = strawberry.field(description="The delivery")


@strawberry.type(description="The new endpoint, and its secret: shown only here")
class CreateWebhookEndpointPayload:
    user_errors: list[UserError] = strawberry.field(description="Why nothing was created")
    endpoint: WebhookEndpoint | None = strawberry.field(description="The endpoint")
    secret: str | None = strawberry.field(description="The whsec_… signing secret; store it now, it is not shown again")


@strawberry.type(description="The endpoint after the change")
class UpdateWebhookEndpointPayload:
    user_errors: list[UserError] = strawberry.field(description="Why nothing changed")
    endpoint: WebhookEndpoint | None = strawberry.field(description="The endpoint")


@strawberry.type(description="The endpoint and its new secret; the previous one keeps signing for 24 hours")
class RotateWebhookSecretPayload:
    user_errors: list[UserError] = strawberry.field(description="Why nothing changed")
    endpoint: WebhookEndpoint | None = strawberry.field(description="The endpoint")
    secret: str | None = strawberry.field(description="The new whsec_… secret; shown only here")


@strawberry.type(description="Which endpoint was deleted")
class DeleteWebhookEndpointPayload:
    user_errors: list[UserError] = strawberry.field(description="Why nothing was deleted")
    deleted_endpoint_id: strawberry.ID | None = strawberry.field(description="The id of the deleted endpoint")


@strawberry.type(description="The delivery, pending again")
class RedeliverWebhookPayload:
    user_errors: list[UserError] = strawberry.field(description="Why nothing is sent")
    delivery: WebhookDelivery | None = strawberry.field(description="The delivery")
