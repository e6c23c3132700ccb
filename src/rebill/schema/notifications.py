"""Notifications: the outbox rows (emails and partner events) as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from rebill.ids import globalize
from rebill.schema.common import Node, PageInfo, to_global_id
from rebill.schema.enums import NotificationKind


@strawberry.type
class Notification(Node):
    kind: NotificationKind
    recipient: str | None
    created_at: datetime
    delivered_at: datetime | None
    subscription_id: strawberry.ID | None
    raw_payload: strawberry.Private[Any]

    @strawberry.field(
        description=(
            "What the message says; portalUrl (a link that signs the customer in) only for keys with the read"
            " and write scopes, the ones that may create a portal session"
        )
    )
    def payload(self, info: Info) -> JSON:
        actor = info.context.actor
        if not isinstance(self.raw_payload, dict):
            return self.raw_payload
        shown = globalize(self.raw_payload)
        if "portalUrl" in shown and not (actor.has("read") and actor.has("write")):
            del shown["portalUrl"]
        return cast(JSON, shown)

    @classmethod
    def of(cls, row: Any) -> Notification:
        return cls(
            id=strawberry.ID(to_global_id("Notification", row.id)),
            kind=NotificationKind(row.kind),
            recipient=row.recipient,
            created_at=row.created_at,
            delivered_at=row.delivered_at,
            raw_payload=row.payload,
            subscription_id=(
                strawberry.ID(to_global_id("Subscription", row.subscription_id)) if row.subscription_id else None
            ),
        )


@strawberry.type
class NotificationEdge:
    cursor: str
    node: Notification


@strawberry.type
class NotificationConnection:
    edges: list[NotificationEdge]
    page_info: PageInfo
    total_count: int
