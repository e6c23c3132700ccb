"""bulk run owner: the API key that started a run

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25

A run belongs to the key that started it; other keys need ``admin`` to read,
cancel or revert it. Runs started from the command line, and runs from before
this revision, have no owner: only ``admin`` keys see them over the API.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "bulk_runs",
        sa.Column("api_key_id", sa.BigInteger(), sa.ForeignKey("api_keys.id", ondelete="SET NULL"), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("bulk_runs", "api_key_id")
