"""credit notes for the refunds and credit balances recorded before credit notes

Every refund a gateway made before 0012 gets its credit note (refunded, in
the CN- series, numbered in the order the refunds were made) against its
renewal's invoice, whose credited total grows by it; every credit balance
(proration credits) becomes one credit note to the balance against the
subscription's newest paid invoice that can take it. Set-based statements
(``rebill.invoicing.backfill``, which ``rebill seed`` uses too).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

from rebill.config import Settings
from rebill.invoicing.backfill import BACKFILL_BALANCES, BACKFILL_REFUNDS, refund_params

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    params = refund_params(Settings.from_env())
    op.get_bind().execute(BACKFILL_REFUNDS, params)
    op.get_bind().execute(BACKFILL_BALANCES, params)


def downgrade() -> None:
    # The credit notes of 0012 go with its tables; nothing to undo here on its own.
    pass
