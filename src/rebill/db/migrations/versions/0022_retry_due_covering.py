"""the declined renewals to retry are indexed with what the billing forecast reads of them

``ix_renewals_retry_due`` (the renewals ``FAILED`` with a retry date) now
carries each renewal's id, subscription, currency, amount and payment kind:
``billingForecast`` lists the retries to come from the index alone instead of
visiting tens of thousands of renewal rows scattered over the table. The
worker claims its retries through the same index, as before.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHERE = sa.text("status = 'FAILED'")


def upgrade() -> None:
    op.drop_index("ix_renewals_retry_due", table_name="renewals")
    op.create_index(
        "ix_renewals_retry_due",
        "renewals",
        ["next_retry_date"],
        postgresql_where=_WHERE,
        postgresql_include=["id", "subscription_id", "currency", "amount_minor", "payment_kind"],
    )


def downgrade() -> None:
    op.drop_index("ix_renewals_retry_due", table_name="renewals")
    op.create_index("ix_renewals_retry_due", "renewals", ["next_retry_date"], postgresql_where=_WHERE)
