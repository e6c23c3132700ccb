"""tax rates, shipping profiles and customers' tax exemption

Tax rates (one active per country and region), customers' exemption with
its reason, shipping profiles (ordered rates in currencies) named by
subscription profiles and overridden per subscription, and each invoice or
credit note line's rate as it was when issued. The profiles' old shipping
rate columns, which nothing ever read, are dropped.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LINE_TABLES = ("invoice_lines", "credit_note_lines")


def upgrade() -> None:
    op.create_table(
        "tax_rates",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("percentage", sa.Numeric(7, 4), nullable=False),
        sa.Column("inclusive", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("country", postgresql.CHAR(length=2), nullable=False),
        sa.Column("region", sa.Text(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("percentage >= 0 AND percentage <= 100", name=op.f("ck_tax_rates_percentage")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tax_rates")),
    )
    op.create_index(
        "uq_tax_rates_place",
        "tax_rates",
        ["country", sa.text("coalesce(region, '')")],
        unique=True,
        postgresql_where=sa.text("active"),
    )
    op.create_table(
        "shipping_profiles",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("rates", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shipping_profiles")),
    )
    op.add_column("customers", sa.Column("tax_exempt", sa.Boolean(), server_default=sa.text("false"), nullable=False))
    op.add_column("customers", sa.Column("tax_exempt_reason", sa.Text(), nullable=True))
    for table in ("subscription_profiles", "subscriptions"):
        op.add_column(table, sa.Column("shipping_profile_id", sa.BigInteger(), nullable=True))
        op.create_foreign_key(
            op.f(f"fk_{table}_shipping_profile_id_shipping_profiles"),
            table,
            "shipping_profiles",
            ["shipping_profile_id"],
            ["id"],
        )
    op.create_index(
        "ix_subscriptions_shipping_profile",
        "subscriptions",
        ["shipping_profile_id"],
        postgresql_where=sa.text("shipping_profile_id IS NOT NULL"),
    )
    op.drop_column("subscription_profiles", "shipping_rate_minor")
    op.drop_column("subscription_profiles", "shipping_currency")
    for table in LINE_TABLES:
        op.add_column(table, sa.Column("tax_rate_id", sa.BigInteger(), nullable=True))
        op.add_column(table, sa.Column("tax_name", sa.Text(), nullable=True))
        op.add_column(table, sa.Column("tax_percentage", sa.Numeric(7, 4), nullable=True))
        op.add_column(table, sa.Column("tax_inclusive", sa.Boolean(), nullable=True))
        op.add_column(table, sa.Column("tax_exempt_reason", sa.Text(), nullable=True))
        op.create_foreign_key(op.f(f"fk_{table}_tax_rate_id_tax_rates"), table, "tax_rates", ["tax_rate_id"], ["id"])


def downgrade() -> None:
    for table in LINE_TABLES:
        op.drop_constraint(op.f(f"fk_{table}_tax_rate_id_tax_rates"), table, type_="foreignkey")
        for column in ("tax_exempt_reason", "tax_inclusive", "tax_percentage", "tax_name", "tax_rate_id"):
            op.drop_column(table, column)
    op.add_column("subscription_profiles", sa.Column("shipping_currency", postgresql.CHAR(length=3), nullable=True))
    op.add_column("subscription_profiles", sa.Column("shipping_rate_minor", sa.BigInteger(), nullable=True))
    op.drop_index("ix_subscriptions_shipping_profile", table_name="subscriptions")
    for table in ("subscriptions", "subscription_profiles"):
        op.drop_constraint(op.f(f"fk_{table}_shipping_profile_id_shipping_profiles"), table, type_="foreignkey")
        op.drop_column(table, "shipping_profile_id")
    op.drop_column("customers", "tax_exempt_reason")
    op.drop_column("customers", "tax_exempt")
    op.drop_table("shipping_profiles")
    op.drop_index("uq_tax_rates_place", table_name="tax_rates")
    op.drop_table("tax_rates")
