"""billingForecast keeps its decline rate's counts per closed hour

``decline_hours`` holds, per currency and closed UTC hour, how many
scheduled renewals had their first attempt in that hour and how many of
those failed. The forecast's "expected after declines" reads the last 90
days: the closed hours from this table (each counted from the charges once),
the open ends from the charges themselves. It starts empty: the first
forecast in a currency counts and keeps the hours it needs.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "decline_hours",
        sa.Column("currency", postgresql.CHAR(length=3), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempted", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("failed", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("currency", "hour", name=op.f("pk_decline_hours")),
    )


def downgrade() -> None:
    op.drop_table("decline_hours")
