"""api conventions: an index per subscription sort, customer search, API rate-limit buckets

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25

Each ``subscriptions(orderBy:)`` field has a btree on (key, id), so a page is
an index range scan whatever the sort and however deep the cursor: keyset
cursors compare ``(key, id)`` row values. Final subscriptions have no next
renewal date; they sort as if it were ``infinity`` through the same
``COALESCE`` expression the queries use. ``customers(filter:)`` matches parts
of e-mails and names with trigram indexes (``pg_trgm``, a trusted extension).
``api_rate_limits`` holds each API key's leaky bucket, shared by every API
process on the database.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_subscriptions_order_created", "subscriptions", ["created_at", "id"])
    op.create_index("ix_subscriptions_order_updated", "subscriptions", ["updated_at", "id"])
    op.create_index("ix_subscriptions_order_amount", "subscriptions", ["amount_minor", "id"])
    op.create_index(
        "ix_subscriptions_order_next_renewal",
        "subscriptions",
        [sa.text("COALESCE(next_renewal_date, 'infinity'::date)"), "id"],
    )
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_index(
        "ix_customers_email_trgm",
        "customers",
        [sa.text("lower(email) gin_trgm_ops")],
        postgresql_using="gin",
    )
    op.create_index(
        "ix_customers_name_trgm",
        "customers",
        [sa.text("lower(coalesce(name, '')) gin_trgm_ops")],
        postgresql_using="gin",
    )
    op.create_table(
        "api_rate_limits",
        sa.Column("bucket", sa.Text(), nullable=False),
        sa.Column("available", sa.Float(), nullable=False),
        sa.Column("granted", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", name=op.f("pk_api_rate_limits")),
    )


def downgrade() -> None:
    op.drop_table("api_rate_limits")
    op.drop_index("ix_customers_name_trgm", table_name="customers")
    op.drop_index("ix_customers_email_trgm", table_name="customers")
    op.drop_index("ix_subscriptions_order_next_renewal", table_name="subscriptions")
    op.drop_index("ix_subscriptions_order_amount", table_name="subscriptions")
    op.drop_index("ix_subscriptions_order_updated", table_name="subscriptions")
    op.drop_index("ix_subscriptions_order_created", table_name="subscriptions")
