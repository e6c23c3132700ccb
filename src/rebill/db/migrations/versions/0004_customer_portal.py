"""customer portal: link and bearer tokens, browser sessions, a portal link in every customer e-mail

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

Customer notifications are written to the outbox from several places (a
single mutation, the renewal engine's set-based inserts, bulk runs). Rather
than teach each writer about portal links, a ``BEFORE INSERT`` trigger on
``outbox`` gives every row addressed to a subscription's customer its own
single-use link: it creates a ``portal_tokens`` row (a random secret of 244
bits from two ``gen_random_uuid()``; only its SHA-256 is stored) and sets
``payload.portalUrl``. The base URL and the link lifetime come from the
one-row ``portal_settings`` table, which the server writes when it starts
(``REBILL_PUBLIC_BASE_URL``, ``REBILL_PORTAL_EMAIL_LINK_TTL``); the defaults
below apply until it has. Rows for anybody else (the merchant, partner
events) are left alone, and so is a payload that has a ``portalUrl``
already. The trigger only touches the row being inserted, so it is
independent of the other outbox triggers whatever their names.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PORTAL_LINK = """
CREATE FUNCTION rebill_outbox_portal_link() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    owner bigint;
    secret text;
    base text;
    ttl integer;
    at timestamptz := coalesce(NEW.created_at, now());
BEGIN
    IF NEW.recipient IS NULL OR NEW.subscription_id IS NULL
       OR jsonb_typeof(NEW.payload) IS DISTINCT FROM 'object' OR NEW.payload ? 'portalUrl' THEN
        RETURN NEW;
    END IF;
    SELECT c.id INTO owner
      FROM subscriptions s JOIN customers c ON c.id = s.customer_id
     WHERE s.id = NEW.subscription_id AND lower(c.email) = lower(NEW.recipient);
    IF owner IS NULL THEN
        RETURN NEW;
    END IF;
    SELECT p.base_url, p.email_link_ttl INTO base, ttl FROM portal_settings p LIMIT 1;
    secret := replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', '');
    INSERT INTO portal_tokens (customer_id, kind, token_hash, flow, subscription_id, source, created_at, expires_at)
    VALUES (
        owner, 'LINK', encode(sha256(convert_to(secret, 'UTF8')), 'hex'),
        CASE NEW.kind
            WHEN 'PAYMENT_DECLINED' THEN 'PAYMENT_METHOD'
            WHEN 'AWAITING_REINSTATE' THEN 'RENEW'
            WHEN 'RENEWAL_REMINDER' THEN 'RENEW'
            ELSE 'OVERVIEW'
        END,
        NEW.subscription_id, 'EMAIL', at, at + make_interval(secs => coalesce(ttl, 604800))
    );
    NEW.payload := NEW.payload
        || jsonb_build_object('portalUrl', coalesce(base, 'http://127.0.0.1:8000') || '/portal/start/' || secret);
    RETURN NEW;
END
$$
"""

PORTAL_LINK_TRIGGER = """
CREATE TRIGGER outbox_portal_link
    BEFORE INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION rebill_outbox_portal_link()
"""


def upgrade() -> None:
    op.create_table(
        "portal_settings",
        sa.Column("id", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("base_url", sa.Text(), nullable=False),
        sa.Column("email_link_ttl", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("id", name=op.f("ck_portal_settings_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_settings")),
    )
    op.create_table(
        "portal_tokens",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("flow", sa.String(length=16), server_default="OVERVIEW", nullable=False),
        sa.Column("subscription_id", sa.BigInteger(), nullable=True),
        sa.Column("return_url", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('LINK','API')", name=op.f("ck_portal_tokens_kind")),
        sa.CheckConstraint("source IN ('API','EMAIL')", name=op.f("ck_portal_tokens_source")),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_portal_tokens_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_portal_tokens_token_hash")),
    )
    op.create_index(op.f("ix_portal_tokens_customer_id"), "portal_tokens", ["customer_id"])
    op.create_index(op.f("ix_portal_tokens_expires_at"), "portal_tokens", ["expires_at"])
    op.create_table(
        "portal_sessions",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("session_hash", sa.String(length=64), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("return_url", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_portal_sessions_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_sessions")),
        sa.UniqueConstraint("session_hash", name=op.f("uq_portal_sessions_session_hash")),
    )
    op.create_index(op.f("ix_portal_sessions_customer_id"), "portal_sessions", ["customer_id"])
    op.execute(PORTAL_LINK)
    op.execute(PORTAL_LINK_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS outbox_portal_link ON outbox")
    op.execute("DROP FUNCTION IF EXISTS rebill_outbox_portal_link()")
    op.drop_table("portal_sessions")
    op.drop_table("portal_tokens")
    op.drop_table("portal_settings")
