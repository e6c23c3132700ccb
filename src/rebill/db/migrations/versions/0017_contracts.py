"""contract terms on subscriptions

A subscription's contract (its running term, notice, action at the term's
end and early termination fee) in ``subscription_contracts``, one row per
subscription; ``subscriptions.cancellation_date`` for a scheduled
cancellation; and the webhook event types of contract changes in the
outbox's mapping function (the whole map as it stands; rebill.webhooks.events
must agree, a test checks).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017"
down_revision: str | None = "0016"
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
    "INVOICE_CREATED": "invoice.created",
    "INVOICE_FINALIZED": "invoice.finalized",
    "INVOICE_PAID": "invoice.paid",
    "INVOICE_VOIDED": "invoice.voided",
    "INVOICE_UNCOLLECTIBLE": "invoice.uncollectible",
    "CREDIT_NOTE_CREATED": "credit_note.created",
    "SUBSCRIPTION_CONTRACT_ATTACHED": "subscription.contract_attached",
    "SUBSCRIPTION_CONTRACT_UPDATED": "subscription.contract_updated",
    "SUBSCRIPTION_CONTRACT_REMOVED": "subscription.contract_removed",
    "SUBSCRIPTION_CONTRACT_RENEWED": "subscription.contract_renewed",
    "SUBSCRIPTION_CONTRACT_ENDED": "subscription.contract_ended",
}
PREVIOUS = {k: v for k, v in EVENT_TYPES.items() if not k.startswith("SUBSCRIPTION_CONTRACT_")}


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
    op.create_table(
        "subscription_contracts",
        sa.Column("subscription_id", sa.BigInteger(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("term_unit", sa.String(length=8), nullable=False),
        sa.Column("term_count", sa.Integer(), nullable=False),
        sa.Column("notice_days", sa.Integer(), server_default="0", nullable=False),
        sa.Column("action_at_term_end", sa.String(length=16), nullable=False),
        sa.Column("fee_minor", sa.BigInteger(), nullable=True),
        sa.Column("fee_currency", postgresql.CHAR(length=3), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "term_unit IN ('DAY','WEEK','MONTH','YEAR')", name=op.f("ck_subscription_contracts_term_unit")
        ),
        sa.CheckConstraint("term_count >= 1", name=op.f("ck_subscription_contracts_term_count")),
        sa.CheckConstraint("notice_days >= 0", name=op.f("ck_subscription_contracts_notice_days")),
        sa.CheckConstraint(
            "action_at_term_end IN ('RENEW','EVERGREEN','CANCEL')",
            name=op.f("ck_subscription_contracts_action_at_term_end"),
        ),
        sa.CheckConstraint("end_date > start_date", name=op.f("ck_subscription_contracts_term")),
        sa.CheckConstraint(
            "(fee_minor IS NULL) = (fee_currency IS NULL) AND coalesce(fee_minor, 0) >= 0",
            name=op.f("ck_subscription_contracts_fee"),
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name="fk_subscription_contracts_subscription_id_subscriptions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("subscription_id", name="pk_subscription_contracts"),
    )
    op.create_index("ix_subscription_contracts_end", "subscription_contracts", ["end_date"])
    op.add_column("subscriptions", sa.Column("cancellation_date", sa.Date(), nullable=True))
    op.create_index(
        "ix_subscriptions_cancellation_due",
        "subscriptions",
        ["cancellation_date"],
        postgresql_where=sa.text("cancellation_date IS NOT NULL AND status NOT IN ('CANCELLED', 'EXPIRED')"),
    )
    op.execute(_function(EVENT_TYPES))


def downgrade() -> None:
    op.execute(_function(PREVIOUS))
    op.drop_index("ix_subscriptions_cancellation_due", table_name="subscriptions")
    op.drop_column("subscriptions", "cancellation_date")
    op.drop_index("ix_subscription_contracts_end", table_name="subscription_contracts")
    op.drop_table("subscription_contracts")
