"""settling an invoice is a cheap update: the guard decides in its trigger's WHEN clause, and no index covers status

The guard of 0010 ran a PL/pgSQL function for every updated invoice row,
and the worker updates each invoice once more when its charge settles. The
same rule now sits in the triggers' WHEN clauses, which PostgreSQL evaluates
without calling the function; the function runs (and refuses) only for an
update that would change a finalized invoice's frozen columns, or a delete
of one. No index names ``status`` any more (the draft index keys on
``draft``, which only drafts have), so the update of an invoice's status,
amount paid and dates can be a heap-only tuple update.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FROZEN = (
    "number",
    "document_type",
    "subscription_id",
    "customer_id",
    "renewal_id",
    "currency",
    "issue_date",
    "due_date",
    "period_start",
    "period_end",
    "subtotal_minor",
    "discount_minor",
    "shipping_minor",
    "tax_minor",
    "total_minor",
    "credit_applied_minor",
    "purchase_order",
    "memo",
    "customer_name",
    "customer_email",
    "billing_address",
    "customer_tax_id",
    "seller",
)
CHANGED = " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in FROZEN)

REFUSE = """
CREATE OR REPLACE FUNCTION rebill_invoice_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'invoice % is finalized: it is never deleted', OLD.number USING ERRCODE = 'check_violation';
    END IF;
    RAISE EXCEPTION 'invoice % is finalized: it is never edited (issue a credit note)', OLD.number
        USING ERRCODE = 'check_violation';
END
$$"""


def upgrade() -> None:
    op.drop_index("ix_invoices_status", table_name="invoices")
    op.drop_index("uq_invoices_draft_subscription", table_name="invoices")
    # Drafts finalized before this stored JSON null; only drafts have a draft from now on.
    op.execute("UPDATE invoices SET draft = NULL WHERE status <> 'DRAFT' AND draft IS NOT NULL")
    op.create_index(
        "uq_invoices_draft_subscription",
        "invoices",
        ["subscription_id"],
        unique=True,
        postgresql_where=sa.text("draft IS NOT NULL"),
    )
    op.execute("DROP TRIGGER IF EXISTS invoices_frozen ON invoices")
    op.execute(REFUSE)
    op.execute(
        "CREATE TRIGGER invoices_frozen BEFORE UPDATE ON invoices FOR EACH ROW "
        f"WHEN (OLD.status <> 'DRAFT' AND ({CHANGED})) EXECUTE FUNCTION rebill_invoice_frozen()"
    )
    op.execute(
        "CREATE TRIGGER invoices_frozen_delete BEFORE DELETE ON invoices FOR EACH ROW "
        "WHEN (OLD.status <> 'DRAFT') EXECUTE FUNCTION rebill_invoice_frozen()"
    )


def downgrade() -> None:
    op.drop_index("uq_invoices_draft_subscription", table_name="invoices")
    op.create_index(
        "uq_invoices_draft_subscription",
        "invoices",
        ["subscription_id"],
        unique=True,
        postgresql_where=sa.text("status = 'DRAFT'"),
    )
    op.create_index("ix_invoices_status", "invoices", ["status", "id"])
    op.execute("DROP TRIGGER IF EXISTS invoices_frozen_delete ON invoices")
    op.execute("DROP TRIGGER IF EXISTS invoices_frozen ON invoices")
    op.execute(
        f"""CREATE OR REPLACE FUNCTION rebill_invoice_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status <> 'DRAFT' AND ({CHANGED}) THEN
        RAISE EXCEPTION 'invoice % is finalized: it is never edited (issue a credit note)', OLD.number
            USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        IF OLD.status <> 'DRAFT' THEN
            RAISE EXCEPTION 'invoice % is finalized: it is never deleted', OLD.number USING ERRCODE = 'check_violation';
        END IF;
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$"""
    )
    op.execute(
        "CREATE TRIGGER invoices_frozen BEFORE UPDATE OR DELETE ON invoices "
        "FOR EACH ROW EXECUTE FUNCTION rebill_invoice_frozen()"
    )
