"""webhooks: endpoints, deliveries, and the fan-out of outbox events

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

Every outbox row whose kind is a partner event becomes one delivery per
enabled endpoint that subscribes to it, inserted by a statement-level
trigger in the transaction that wrote the outbox row: whichever code path
writes the outbox (single mutations, the renewal engine's set-based
inserts, bulk runs' ``INSERT … SELECT``), a committed change has its
deliveries and a rolled-back one has none.

Bulk runs write no outbox row of their own when they finish; a trigger on
their status adds ``BULK_RUN_COMPLETED`` / ``BULK_RUN_FAILED`` (partner
events only: they carry no email, so they are written as delivered).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Outbox kinds → partner event types (DOMAIN.md "Partner events"). Kinds
# that only notify the customer (reminders, payment due, awaiting
# reinstatement) have no partner event. Frozen here as the migration
# wrote it; rebill.webhooks.events.EVENT_TYPES must agree (a test checks).
EVENT_TYPES = {
    "SUBSCRIPTION_CREATED": "subscription.created",
    "SUBSCRIPTION_UPDATED": "subscription.updated",
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
}


def _event_type_function() -> str:
    cases = "\n".join(f"        WHEN '{kind}' THEN '{event}'" for kind, event in EVENT_TYPES.items())
    return f"""
CREATE FUNCTION rebill_webhook_event_type(kind text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE kind
{cases}
    END
$$;
"""


FAN_OUT = """
CREATE FUNCTION rebill_webhook_fan_out() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled) THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_deliveries (endpoint_id, outbox_id, event_id, event_type, subscription_id, created_at)
    SELECT e.id, o.id, 'evt_' || o.id, m.event_type, o.subscription_id, o.created_at
      FROM inserted o
      CROSS JOIN LATERAL (SELECT rebill_webhook_event_type(o.kind) AS event_type) m
      JOIN webhook_endpoints e
        ON e.enabled AND (cardinality(e.events) = 0 OR m.event_type = ANY (e.events))
     WHERE m.event_type IS NOT NULL
     ORDER BY o.id, e.id;
    RETURN NULL;
END
$$;
"""

FAN_OUT_TRIGGER = """
CREATE TRIGGER outbox_webhook_fan_out
    AFTER INSERT ON outbox
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION rebill_webhook_fan_out();
"""

BULK_RUN_EVENTS = """
CREATE FUNCTION rebill_bulk_run_event() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    at timestamptz := coalesce(NEW.finished_at, now());
BEGIN
    INSERT INTO outbox (kind, subscription_id, recipient, payload, created_at, delivered_at)
    VALUES (
        CASE NEW.status WHEN 'COMPLETED' THEN 'BULK_RUN_COMPLETED' ELSE 'BULK_RUN_FAILED' END,
        NULL,
        NULL,
        jsonb_build_object(
            'bulkRunId', NEW.id,
            'status', NEW.status,
            'dryRun', NEW.dry_run,
            'total', NEW.total,
            'processed', NEW.processed,
            'applied', NEW.applied,
            'skipped', NEW.skipped,
            'failed', NEW.failed,
            'conflicts', NEW.conflicts,
            'error', NEW.error
        ),
        at,
        at
    );
    RETURN NULL;
END
$$;
"""

BULK_RUN_TRIGGER = """
CREATE TRIGGER bulk_runs_partner_event
    AFTER UPDATE OF status ON bulk_runs
    FOR EACH ROW
    WHEN (NEW.status IN ('COMPLETED', 'FAILED') AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION rebill_bulk_run_event();
"""


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("events", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("previous_secret", sa.Text(), nullable=True),
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("endpoint_id", sa.BigInteger(), nullable=False),
        sa.Column("outbox_id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("subscription_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="PENDING", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("round_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('PENDING','SUCCEEDED','FAILED')", name=op.f("ck_webhook_deliveries_status")),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["outbox_id"], ["outbox.id"], name=op.f("fk_webhook_deliveries_outbox_id_outbox"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("endpoint_id", "outbox_id", name=op.f("uq_webhook_deliveries_endpoint_id")),
    )
    op.create_index(
        "ix_webhook_deliveries_pending",
        "webhook_deliveries",
        ["id"],
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.create_index(
        "ix_webhook_deliveries_pending_order",
        "webhook_deliveries",
        ["endpoint_id", "subscription_id", "id"],
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.create_index("ix_webhook_deliveries_outbox", "webhook_deliveries", ["outbox_id"])
    op.execute(_event_type_function())
    for statement in (FAN_OUT, FAN_OUT_TRIGGER, BULK_RUN_EVENTS, BULK_RUN_TRIGGER):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS bulk_runs_partner_event ON bulk_runs")
    op.execute("DROP FUNCTION IF EXISTS rebill_bulk_run_event()")
    op.execute("DROP TRIGGER IF EXISTS outbox_webhook_fan_out ON outbox")
    op.execute("DROP FUNCTION IF EXISTS rebill_webhook_fan_out()")
    op.execute("DROP FUNCTION IF EXISTS rebill_webhook_event_type(text)")
    op.drop_index("ix_webhook_deliveries_outbox", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_pending_order", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_pending", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
