"""invoices: a document for every charge, numbered without gaps

Invoices and their lines, the counters that number them (one row per
prefix and year: a number is taken by updating it, so a rolled-back
transaction gives it back), the customer's tax id, and a trigger that keeps
a finalized invoice as it was issued: its number, amounts, customer and
seller details and lines never change once it is no longer a draft.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
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

TRIGGERS = (
    f"""
CREATE FUNCTION rebill_invoice_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status <> 'DRAFT' AND ({" OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in FROZEN)}) THEN
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
$$""",
    "CREATE TRIGGER invoices_frozen BEFORE UPDATE OR DELETE ON invoices "
    "FOR EACH ROW EXECUTE FUNCTION rebill_invoice_frozen()",
    """
CREATE FUNCTION rebill_invoice_line_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    parent text;
BEGIN
    SELECT status INTO parent FROM invoices WHERE id = OLD.invoice_id;
    IF parent IS NOT NULL AND parent <> 'DRAFT' THEN
        RAISE EXCEPTION 'invoice % is finalized: its lines are never edited', OLD.invoice_id
            USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$""",
    "CREATE TRIGGER invoice_lines_frozen BEFORE UPDATE OR DELETE ON invoice_lines "
    "FOR EACH ROW EXECUTE FUNCTION rebill_invoice_line_frozen()",
)


def upgrade() -> None:
    op.add_column("customers", sa.Column("tax_id", sa.Text(), nullable=True))
    op.add_column("subscriptions", sa.Column("invoicing", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.create_table(
        "invoices",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("number", sa.Text(), nullable=True),
        sa.Column("document_type", sa.String(length=16), server_default="INVOICE", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("subscription_id", sa.BigInteger(), nullable=True),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("renewal_id", sa.BigInteger(), nullable=True),
        sa.Column("currency", postgresql.CHAR(length=3), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("period_start", sa.Date(), nullable=True),
        sa.Column("period_end", sa.Date(), nullable=True),
        sa.Column("subtotal_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("discount_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("shipping_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("tax_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("total_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("credit_applied_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("amount_paid_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("credited_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("purchase_order", sa.Text(), nullable=True),
        sa.Column("memo", sa.Text(), nullable=True),
        sa.Column("customer_name", sa.Text(), nullable=True),
        sa.Column("customer_email", sa.Text(), nullable=True),
        sa.Column("billing_address", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("customer_tax_id", sa.Text(), nullable=True),
        sa.Column("seller", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("pro_forma_id", sa.BigInteger(), nullable=True),
        sa.Column("void_reason", sa.Text(), nullable=True),
        sa.Column("payment_reference", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finalized_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("status IN ('DRAFT','OPEN','PAID','VOID','UNCOLLECTIBLE')", name=op.f("ck_invoices_status")),
        sa.CheckConstraint("document_type IN ('INVOICE','PRO_FORMA')", name=op.f("ck_invoices_document_type")),
        sa.CheckConstraint("(number IS NULL) = (status = 'DRAFT')", name=op.f("ck_invoices_numbered")),
        sa.CheckConstraint(
            "credit_applied_minor >= 0 AND credit_applied_minor <= total_minor", name=op.f("ck_invoices_credit_applied")
        ),
        sa.CheckConstraint("credited_minor >= 0 AND credited_minor <= total_minor", name=op.f("ck_invoices_credited")),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_invoices_customer_id_customers")),
        sa.ForeignKeyConstraint(["pro_forma_id"], ["invoices.id"], name=op.f("fk_invoices_pro_forma_id_invoices")),
        sa.ForeignKeyConstraint(["renewal_id"], ["renewals.id"], name=op.f("fk_invoices_renewal_id_renewals")),
        sa.ForeignKeyConstraint(
            ["subscription_id"], ["subscriptions.id"], name=op.f("fk_invoices_subscription_id_subscriptions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("number", name=op.f("uq_invoices_number")),
    )
    op.create_index(
        "uq_invoices_renewal_type",
        "invoices",
        ["renewal_id", "document_type"],
        unique=True,
        postgresql_where=sa.text("renewal_id IS NOT NULL"),
    )
    op.create_index("ix_invoices_subscription", "invoices", ["subscription_id", "id"])
    op.create_index("ix_invoices_customer", "invoices", ["customer_id", "id"])
    op.create_index("ix_invoices_status", "invoices", ["status", "id"])
    op.create_index("ix_invoices_issue_date", "invoices", ["issue_date", "id"])
    op.create_table(
        "invoice_lines",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("invoice_id", sa.BigInteger(), nullable=False),
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
        sa.CheckConstraint(
            "kind IN ('ITEM','PRORATION','DISCOUNT','SHIPPING','ONE_OFF','FEE')", name=op.f("ck_invoice_lines_kind")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], ondelete="CASCADE", name=op.f("fk_invoice_lines_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name=op.f("fk_invoice_lines_product_id_products")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_lines")),
    )
    op.create_index("ix_invoice_lines_invoice", "invoice_lines", ["invoice_id", "position"])
    op.create_table(
        "document_counters",
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("last_number", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("prefix", "year", name=op.f("pk_document_counters")),
    )
    for statement in TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS invoice_lines_frozen ON invoice_lines")
    op.execute("DROP TRIGGER IF EXISTS invoices_frozen ON invoices")
    op.execute("DROP FUNCTION IF EXISTS rebill_invoice_line_frozen()")
    op.execute("DROP FUNCTION IF EXISTS rebill_invoice_frozen()")
    op.drop_table("document_counters")
    op.drop_index("ix_invoice_lines_invoice", table_name="invoice_lines")
    op.drop_table("invoice_lines")
    op.drop_table("invoices")
    op.drop_column("subscriptions", "invoicing")
    op.drop_column("customers", "tax_id")
