"""webhook claims: a delivery being sent is leased to one worker, not locked for the whole send

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25

A worker claims due deliveries (``FOR UPDATE SKIP LOCKED``) by writing its
claim token and a lease in a short transaction, sends them, then records
the answers. No transaction stays open while an endpoint takes its time, so
a slow endpoint holds back only its own deliveries; a worker that dies
leaves its leases to expire, after which the deliveries are sent again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("webhook_deliveries", sa.Column("claim_token", sa.Text(), nullable=True))
    op.add_column("webhook_deliveries", sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("webhook_deliveries", "claimed_until")
    op.drop_column("webhook_deliveries", "claim_token")
