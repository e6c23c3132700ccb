"""subscriptions keep what their coupons take off the next renewal; payment by transfer is indexed

``subscriptions.discount_minor`` is what the running coupons take off the
next renewal's bill (``amount_minor`` is that bill after them), written by
every path that writes ``amount_minor``. The billing forecast bills
``amount_minor + discount_minor`` once a subscription's coupon runs out,
instead of summing the items of every subscription with a coupon on each
request.

A subscription with no coupon takes nothing off (the default). The others
get theirs from their items (what renews, pending changes and volume tiers
as ``Item.line(pending=True)`` prices them) less the amount they bill, in
one set-based statement over the subscriptions with a coupon.

``ix_payment_methods_offline`` indexes the few payment methods paid by
transfer: the forecast asks whether there are any before it plans its pass
over every subscription, and looks them up.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_QTY = "coalesce(i.pending_quantity, i.quantity)"
_LISTED = "coalesce(i.pending_unit_price_minor, i.unit_price_minor)"
_TIER = f"""(SELECT pt.unit_price_minor FROM product_tiers pt
    WHERE pt.product_id = i.product_id AND (pt.up_to IS NULL OR pt.up_to >= {_QTY}) ORDER BY pt.position LIMIT 1)"""

BACKFILL = f"""
UPDATE subscriptions AS s SET discount_minor = greatest(0, t.subtotal - s.amount_minor)
FROM (
    SELECT i.subscription_id AS id,
        sum({_QTY}::bigint * CASE WHEN i.price_from_tiers THEN coalesce({_TIER}, {_LISTED}) ELSE {_LISTED} END)
            AS subtotal
    FROM subscription_items i
    WHERE i.auto_renew AND i.subscription_id IN (SELECT subscription_id FROM applied_coupons)
    GROUP BY i.subscription_id
) AS t
WHERE t.id = s.id AND t.subtotal > s.amount_minor
"""


def upgrade() -> None:
    op.add_column("subscriptions", sa.Column("discount_minor", sa.BigInteger(), server_default="0", nullable=False))
    op.execute(BACKFILL)
    op.create_index(
        "ix_payment_methods_offline", "payment_methods", ["id"], postgresql_where=sa.text("kind = 'OFFLINE'")
    )


def downgrade() -> None:
    op.drop_index("ix_payment_methods_offline", table_name="payment_methods")
    op.drop_column("subscriptions", "discount_minor")
