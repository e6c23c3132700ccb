"""e-mail links land on the invoice they name

A notification whose payload names an invoice (``invoiceId``: receipts,
``INVOICE_ISSUED``) gets a portal link that opens that invoice's page
after signing the customer in; ``portal_tokens.invoice_id`` keeps which.
Links of other flows (a decline's payment method, a renewal) are unchanged.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PORTAL_LINK = """
CREATE OR REPLACE FUNCTION rebill_outbox_portal_link() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    owner bigint;
    secret text;
    base text;
    ttl integer;
    link_flow text;
    invoice bigint;
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
    link_flow := CASE NEW.kind
        WHEN 'PAYMENT_DECLINED' THEN 'PAYMENT_METHOD'
        WHEN 'AWAITING_REINSTATE' THEN 'RENEW'
        WHEN 'RENEWAL_REMINDER' THEN 'RENEW'
        ELSE 'OVERVIEW'
    END;
    IF link_flow = 'OVERVIEW' AND jsonb_typeof(NEW.payload -> 'invoiceId') = 'number' THEN
        invoice := (NEW.payload ->> 'invoiceId')::bigint;
    END IF;
    SELECT p.base_url, p.email_link_ttl INTO base, ttl FROM portal_settings p LIMIT 1;
    secret := replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', '');
    INSERT INTO portal_tokens (customer_id, kind, token_hash, flow, subscription_id, invoice_id, source,
                               created_at, expires_at)
    VALUES (
        owner, 'LINK', encode(sha256(convert_to(secret, 'UTF8')), 'hex'), link_flow,
        NEW.subscription_id, invoice, 'EMAIL', at, at + make_interval(secs => coalesce(ttl, 604800))
    );
    NEW.payload := NEW.payload
        || jsonb_build_object('portalUrl', coalesce(base, 'http://127.0.0.1:8000') || '/portal/start/' || secret);
    RETURN NEW;
END
$$
"""

PREVIOUS = """
CREATE OR REPLACE FUNCTION rebill_outbox_portal_link() RETURNS trigger
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


def upgrade() -> None:
    # No foreign key: a link outlives nothing it names (issued invoices are never deleted), and the
    # page it opens checks the reader anyway.
    op.add_column("portal_tokens", sa.Column("invoice_id", sa.BigInteger(), nullable=True))
    op.execute(PORTAL_LINK)


def downgrade() -> None:
    op.execute(PREVIOUS)
    op.drop_column("portal_tokens", "invoice_id")
