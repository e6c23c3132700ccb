"""webhooks: a resumed subscription (its scheduled cancellation or end date undone) is subscription.updated

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25

Replaces the mapping function of 0003 with the whole map as it stands;
rebill.webhooks.events.EVENT_TYPES must agree (a test checks).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENT_TYPES = {
    "SUBSCRIPTION_CREATED": "subscription.created",
    "SUBSCRIPTION_UPDATED": "subscription.updated",
    "SUBSCRIPTION_RESUMED": "subscription.updated",
    "SUBSCRIPTION_CANCELLED": "subscription.cancelled",
    "SUBSCRIPTION_SUSPENDED": "subscription.suspended",
    "SUBSCRIPTION_ACTIVATED": "subscription.activated",
    "SUBSCRIPTION_STARTED": "subscription.activated",
    "SUBSCRIPTION_EXPIRED": "subscription.expired",
    "RENEWAL_RECEIPT": "renewal.paid",
    "PAYMENT_DECLINED": "renewal.failed",
    "RENEWAL_REFUNDED": "renewal.refunded",
    "BULK_RUN_COMPLETED": "bulk_run.completed",
    "BULK_RUN_FAILED": "bulk_run.failed",
}


def _function(mapping: dict[str, str]) -> str:
    cases = "\n".join(f"        WHEN '{kind}' THEN '{event}'" for kind, event in mapping.items())
    return f"""
CREATE OR REPLACE FUNCTION rebill_webhook_event_type(kind text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE kind
{cases}
    END
$$;
"""


def upgrade() -> None:
    op.execute(_function(EVENT_TYPES))


def downgrade() -> None:
    op.execute(_function({k: v for k, v in EVENT_TYPES.items() if k != "SUBSCRIPTION_RESUMED"}))
