"""credit notes, and partner events for invoices and credit notes

Credit notes and their lines (never changed once written: a trigger
refuses it), and the webhook event types ``invoice.created``,
``invoice.finalized``, ``invoice.paid``, ``invoice.voided``,
``invoice.uncollectible`` and ``credit_note.created`` in the outbox's
mapping function (the whole map as it stands; rebill.webhooks.events
must agree, a test checks).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
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
}
PREVIOUS = {k: v for k, v in EVENT_TYPES.items() if not k.startswith(("INVOICE_", "CREDIT_NOTE_"))}


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


FROZEN = """
CREATE FUNCTION rebill_credit_note_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a credit note is never edited or deleted (issue another one)' USING ERRCODE = 'check_violation';
END
$$"""


def upgrade() -> None:
    op.create_table(
        "credit_notes",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("number", sa.Text(), nullable=False),
        sa.Column("invoice_id", sa.BigInteger(), nullable=False),
        sa.Column("subscription_id", sa.BigInteger(), nullable=True),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("currency", postgresql.CHAR(length=3), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("subtotal_minor", sa.BigInteger(), nullable=False),
        sa.Column("tax_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("refunded", sa.Boolean(), nullable=False),
        sa.Column("transaction_id", sa.BigInteger(), nullable=True),
        sa.Column("customer_name", sa.Text(), nullable=True),
        sa.Column("customer_email", sa.Text(), nullable=True),
        sa.Column("billing_address", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("customer_tax_id", sa.Text(), nullable=True),
        sa.Column("seller", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("total_minor > 0", name=op.f("ck_credit_notes_positive")),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"], name=op.f("fk_credit_notes_invoice_id_invoices")),
        sa.ForeignKeyConstraint(
            ["subscription_id"], ["subscriptions.id"], name=op.f("fk_credit_notes_subscription_id_subscriptions")
        ),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_credit_notes_customer_id_customers")),
        sa.ForeignKeyConstraint(
            ["transaction_id"], ["transactions.id"], name=op.f("fk_credit_notes_transaction_id_transactions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_notes")),
        sa.UniqueConstraint("number", name=op.f("uq_credit_notes_number")),
    )
    op.create_index("ix_credit_notes_invoice", "credit_notes", ["invoice_id", "id"])
    op.create_index("ix_credit_notes_issue_date", "credit_notes", ["issue_date", "id"])
    op.create_table(
        "credit_note_lines",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("credit_note_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=True),
        sa.Column("unit_price_minor", sa.BigInteger(), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=True),
        sa.Column("period_end", sa.Date(), nullable=True),
        sa.Column("tax_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["credit_note_id"],
            ["credit_notes.id"],
            ondelete="CASCADE",
            name=op.f("fk_credit_note_lines_credit_note_id_credit_notes"),
        ),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name=op.f("fk_credit_note_lines_product_id_products")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_note_lines")),
    )
    op.create_index("ix_credit_note_lines_note", "credit_note_lines", ["credit_note_id", "position"])
    op.execute(FROZEN)
    for table in ("credit_notes", "credit_note_lines"):
        op.execute(
            f"CREATE TRIGGER {table}_frozen BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION rebill_credit_note_frozen()"
        )
    op.execute(_function(EVENT_TYPES))


def downgrade() -> None:
    op.execute(_function(PREVIOUS))
    for table in ("credit_note_lines", "credit_notes"):
        op.execute(f"DROP TRIGGER IF EXISTS {table}_frozen ON {table}")
    op.execute("DROP FUNCTION IF EXISTS rebill_credit_note_frozen()")
    op.drop_table("credit_note_lines")
    op.drop_table("credit_notes")
