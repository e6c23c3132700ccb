"""money safety: future subscriptions, pinned payment methods, stored consent

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_STATUSES = "'TRIAL','ACTIVE','OVERDUE','SUSPENDED','AWAITING_REINSTATE','CANCELLED','EXPIRED'"
_NEW_STATUSES = "'FUTURE'," + _OLD_STATUSES


def upgrade() -> None:
    op.drop_constraint(op.f("ck_subscriptions_status"), "subscriptions", type_="check")
    op.create_check_constraint(op.f("ck_subscriptions_status"), "subscriptions", f"status IN ({_NEW_STATUSES})")
    # A subscription follows its customer's default card unless one was pinned to it.
    op.add_column(
        "subscriptions",
        sa.Column("payment_method_pinned", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.add_column("history_entries", sa.Column("consent_reference", sa.Text(), nullable=True))
    op.add_column("bulk_run_items", sa.Column("consent_reference", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("bulk_run_items", "consent_reference")
    op.drop_column("history_entries", "consent_reference")
    op.drop_column("subscriptions", "payment_method_pinned")
    op.drop_constraint(op.f("ck_subscriptions_status"), "subscriptions", type_="check")
    op.create_check_constraint(op.f("ck_subscriptions_status"), "subscriptions", f"status IN ({_OLD_STATUSES})")
