"""invoices for the charges recorded before invoicing

Every renewal recorded before 0010 gets its invoice: paid ones numbered in
the order they were paid, those in dunning open, voided ones void (see
``rebill.invoicing.backfill``, which ``rebill seed`` uses too). One
set-based statement: a million renewals take minutes, not hours. Prefixes,
the seller's time zone and payment terms come from the environment as for
``rebill serve``.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

from rebill.config import Settings
from rebill.invoicing.backfill import BACKFILL, backfill_params

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    settings = Settings.from_env()
    params = backfill_params(
        settings.invoice_prefix, settings.seller_time_zone, settings.payment_terms_days, dict(settings.seller)
    )
    op.get_bind().execute(BACKFILL, params)


def downgrade() -> None:
    # The invoices of 0010 go with its tables; nothing to undo here on its own.
    pass
