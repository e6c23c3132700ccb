"""a voided renewal frees its cycle

A renewal that was never sent to the gateway and is voided (its subscription
was suspended or cancelled while it was in flight) bills nothing: the cycle
it was recorded for is billed again later, so the "one renewal per
subscription and cycle" rule counts only renewals that are not VOID.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("uq_renewals_subscription_cycle", table_name="renewals")
    op.create_index(
        "uq_renewals_subscription_cycle",
        "renewals",
        ["subscription_id", "cycle"],
        unique=True,
        postgresql_where=sa.text("NOT adjustment AND status <> 'VOID'"),
    )


def downgrade() -> None:
    op.drop_index("uq_renewals_subscription_cycle", table_name="renewals")
    op.create_index(
        "uq_renewals_subscription_cycle",
        "renewals",
        ["subscription_id", "cycle"],
        unique=True,
        postgresql_where=sa.text("NOT adjustment"),
    )
