"""draft invoices: the renewal a draft will record, and at most one draft per subscription

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("invoices", sa.Column("draft", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.create_index(
        "uq_invoices_draft_subscription",
        "invoices",
        ["subscription_id"],
        unique=True,
        postgresql_where=sa.text("status = 'DRAFT'"),
    )


def downgrade() -> None:
    op.drop_index("uq_invoices_draft_subscription", table_name="invoices")
    op.drop_column("invoices", "draft")
