"""billingForecast's plain subscriptions are counted per schedule by every write

``schedule_tallies`` holds, per schedule (currency, next renewal, anchor, time
zone, profile, last cycle, paid by transfer or not), how many plain
subscriptions renew on it and their amounts, as rows of changes that add up
(``rebill.db.schedule``). Statement triggers on ``subscriptions`` add each
statement's changes in its own transaction (and empty it on ``TRUNCATE``); the existing subscriptions
are counted here. The forecast reads the schedules instead of grouping every
plain subscription on each request.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from rebill.db.schedule import BACKFILL, FUNCTION, TRIGGERS, plain

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "schedule_tallies",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("currency", postgresql.CHAR(length=3), nullable=False),
        sa.Column("next_renewal_date", sa.Date(), nullable=True),
        sa.Column("anchor_date", sa.Date(), nullable=True),
        sa.Column("time_zone", sa.Text(), nullable=True),
        sa.Column("profile_id", sa.BigInteger(), nullable=True),
        sa.Column("last_cycle", sa.Integer(), nullable=True),
        sa.Column("offline", sa.Boolean(), nullable=False),
        sa.Column("subscriptions", sa.BigInteger(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("kept", sa.Boolean(), server_default="false", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schedule_tallies")),
    )
    op.execute(FUNCTION)
    # The triggers first: they lock the subscriptions against writes until this migration commits, so no write
    # falls between the count below and the first change they add.
    for statement in TRIGGERS:
        op.execute(statement)
    op.get_bind().execute(sa.text(BACKFILL))
    # The others, which the forecast reads one by one.
    op.create_index(
        "ix_subscriptions_untallied", "subscriptions", ["id"], postgresql_where=sa.text(f"NOT {plain('subscriptions')}")
    )


def downgrade() -> None:
    op.drop_index("ix_subscriptions_untallied", table_name="subscriptions")
    for trigger in (
        "schedule_tallies_inserted",
        "schedule_tallies_updated",
        "schedule_tallies_deleted",
        "schedule_tallies_truncated",
    ):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON subscriptions")
    op.execute("DROP FUNCTION IF EXISTS rebill_tally_schedules()")
    op.drop_table("schedule_tallies")
