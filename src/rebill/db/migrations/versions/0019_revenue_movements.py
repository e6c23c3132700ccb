"""revenue movements: every change of a subscription's MRR, recorded as it is saved

``revenue_movements`` holds one row per change of a subscription's MRR (or
of whether it counts as active or trialing): before, after, the kind of
movement and the instant, in the subscription's currency. Triggers on
``subscriptions`` write them in the statement that saves the change, so
every path that saves a subscription (the repository, the renewal worker's
batched update, bulk runs' set-based writes) records them in its own
transaction without knowing of them; a trigger on ``subscription_profiles``
records the movements of a cadence change. ``rebill_mrr`` is
``rebill.domain.mrr.mrr`` in SQL (tests hold the two together).

Existing subscriptions get their movements from their history
(``rebill.db.revenue.BACKFILL``, one set-based statement): each status they
went through, at its time, priced at today's amount and cadence (the history
does not keep what a subscription billed at each time), and a last step to
what each is now, so that the movements of every subscription add up
exactly to its MRR today.

``revenue_days`` keeps revenueMetrics' sums of each closed day of the
seller's calendar (``revenue_days_kept`` says up to which day, per currency);
it starts empty and fills on the first request.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from rebill.db.revenue import BACKFILL

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTED = "('ACTIVE', 'OVERDUE')"

# What revenueMetrics keeps of each closed day (``revenue.Totals``).
DAY_SUMS = (
    "step_minor",
    "new_minor",
    "expansion_minor",
    "contraction_minor",
    "churned_minor",
    "reactivation_minor",
    "active_step",
    "trialing_step",
    "new_subscriptions",
    "billed_minor",
    "collected_minor",
    "refunded_minor",
    "failed_payments",
    "recovered_payments",
)

# A month's worth of what one renewal bills: x1 monthly, /12 yearly, x52/12 weekly, x365/12 daily, / count,
# rounded half to even (exact: numeric integer division, the remainder decides; a negative amount's quotient
# floored first, as domain.money.round_fraction does), for ACTIVE and OVERDUE only. One expression, no
# subquery, so the planner inlines the function into the statements that call it (a call it cannot inline
# costs some 65 microseconds a row).
_N = "(amount_minor::numeric * CASE unit WHEN 'WEEK' THEN 52 WHEN 'DAY' THEN 365 ELSE 1 END)"
_D = "((CASE unit WHEN 'MONTH' THEN 1 ELSE 12 END * count)::numeric)"
_Q = f"(div({_N}, {_D}) - CASE WHEN mod({_N}, {_D}) < 0 THEN 1 ELSE 0 END)"
_R = f"(mod({_N}, {_D}) + CASE WHEN mod({_N}, {_D}) < 0 THEN {_D} ELSE 0 END)"
MRR = f"""
CREATE OR REPLACE FUNCTION rebill_mrr(amount_minor bigint, status text, unit text, count integer) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN status IN {COUNTED} AND count >= 1 AND unit IN ('DAY', 'WEEK', 'MONTH', 'YEAR')
        THEN ({_Q} + CASE WHEN 2 * {_R} > {_D} OR (2 * {_R} = {_D} AND mod({_Q}, 2) <> 0) THEN 1 ELSE 0 END)::bigint
        ELSE 0 END
$$;
"""

CHAIN = """
CREATE OR REPLACE FUNCTION rebill_chain_of(subscription bigint, replaces bigint) RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE
    chain bigint := subscription;
    up bigint := replaces;
BEGIN
    -- the first subscription of a line of product changes
    WHILE up IS NOT NULL LOOP
        chain := up;
        SELECT s.replaces_id INTO up FROM subscriptions s WHERE s.id = chain;
    END LOOP;
    RETURN chain;
END
$$;
"""

RECORD = """
CREATE OR REPLACE FUNCTION rebill_record_movement(
    subscription bigint, replaces bigint, cur text, at timestamptz,
    before_mrr bigint, after_mrr bigint, active_step integer, trialing_step integer
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    chain bigint := rebill_chain_of(subscription, replaces);
    ended record;
    kind text;
BEGIN
    IF replaces IS NOT NULL AND before_mrr = 0 THEN
        -- A replacement starting: its predecessor ended at the same instant (a product change), and the
        -- two are one movement of their chain (an upgrade is expansion, not churn and new).
        SELECT m.id, m.subscription_id, m.occurred_at, m.mrr_before_minor, m.mrr_after_minor, m.active_step,
               m.trialing_step
        INTO ended FROM revenue_movements m WHERE m.chain_id = chain ORDER BY m.id DESC LIMIT 1;
        IF FOUND AND ended.subscription_id = replaces AND ended.occurred_at = at AND ended.mrr_after_minor = 0 THEN
            DELETE FROM revenue_movements WHERE id = ended.id;
            before_mrr := ended.mrr_before_minor;
            active_step := active_step + ended.active_step;
            trialing_step := trialing_step + ended.trialing_step;
        END IF;
    END IF;
    IF before_mrr = after_mrr AND active_step = 0 AND trialing_step = 0 THEN
        RETURN;
    END IF;
    kind := CASE
        WHEN before_mrr = after_mrr THEN NULL
        WHEN before_mrr = 0 THEN CASE
            WHEN EXISTS (SELECT 1 FROM revenue_movements m WHERE m.chain_id = chain AND m.kind IS NOT NULL)
            THEN 'REACTIVATION' ELSE 'NEW' END
        WHEN after_mrr = 0 THEN 'CHURNED'
        WHEN after_mrr > before_mrr THEN 'EXPANSION'
        ELSE 'CONTRACTION' END;
    INSERT INTO revenue_movements (subscription_id, chain_id, currency, occurred_at, mrr_before_minor,
                                   mrr_after_minor, kind, active_step, trialing_step)
    VALUES (subscription, chain, cur, at, before_mrr, after_mrr, kind, active_step, trialing_step);
END
$$;
"""

# Inserted subscriptions, a statement at a time (a COPY of thousands is one INSERT … SELECT here).
INSERTED = f"""
CREATE OR REPLACE FUNCTION rebill_revenue_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('rebill.revenue_movements', true) = 'off' THEN
        RETURN NULL;
    END IF;
    PERFORM rebill_record_movement(i.id, i.replaces_id, i.currency, i.created_at, 0,
                                   rebill_mrr(i.amount_minor, i.status, p.interval_unit, p.interval_count),
                                   CASE WHEN i.status IN {COUNTED} THEN 1 ELSE 0 END,
                                   CASE WHEN i.status = 'TRIAL' THEN 1 ELSE 0 END)
    FROM inserted i JOIN subscription_profiles p ON p.id = i.profile_id
    WHERE i.replaces_id IS NOT NULL;
    INSERT INTO revenue_movements (subscription_id, chain_id, currency, occurred_at, mrr_before_minor,
                                   mrr_after_minor, kind, active_step, trialing_step)
    SELECT i.id, i.id, i.currency, i.created_at, 0, m.mrr, CASE WHEN m.mrr <> 0 THEN 'NEW' END,
           CASE WHEN i.status IN {COUNTED} THEN 1 ELSE 0 END, CASE WHEN i.status = 'TRIAL' THEN 1 ELSE 0 END
    FROM inserted i
    JOIN subscription_profiles p ON p.id = i.profile_id
    CROSS JOIN LATERAL (SELECT rebill_mrr(i.amount_minor, i.status, p.interval_unit, p.interval_count) AS mrr) m
    WHERE i.replaces_id IS NULL AND (m.mrr <> 0 OR i.status IN {COUNTED} OR i.status = 'TRIAL')
    ORDER BY i.id;
    RETURN NULL;
END
$$;
"""

UPDATED = f"""
CREATE OR REPLACE FUNCTION rebill_revenue_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    was bigint;
    now_mrr bigint;
    active_step integer := (NEW.status IN {COUNTED})::integer - (OLD.status IN {COUNTED})::integer;
    trialing_step integer := (NEW.status = 'TRIAL')::integer - (OLD.status = 'TRIAL')::integer;
BEGIN
    IF current_setting('rebill.revenue_movements', true) = 'off' THEN
        RETURN NULL;
    END IF;
    SELECT rebill_mrr(OLD.amount_minor, OLD.status, o.interval_unit, o.interval_count),
           rebill_mrr(NEW.amount_minor, NEW.status, n.interval_unit, n.interval_count)
    INTO was, now_mrr
    FROM subscription_profiles o, subscription_profiles n WHERE o.id = OLD.profile_id AND n.id = NEW.profile_id;
    was := coalesce(was, 0);
    now_mrr := coalesce(now_mrr, 0);
    IF was = now_mrr AND active_step = 0 AND trialing_step = 0 THEN
        RETURN NULL;  -- a trial's price, a suspended subscription's quantity: nothing moves
    END IF;
    IF NEW.replaces_id IS NULL AND was <> 0 THEN
        -- the common moves (a price, a quantity, a churn) need neither the chain nor its past
        INSERT INTO revenue_movements (subscription_id, chain_id, currency, occurred_at, mrr_before_minor,
                                       mrr_after_minor, kind, active_step, trialing_step)
        VALUES (NEW.id, NEW.id, NEW.currency, NEW.updated_at, was, now_mrr,
                CASE WHEN now_mrr = was THEN NULL WHEN now_mrr = 0 THEN 'CHURNED'
                     WHEN now_mrr > was THEN 'EXPANSION' ELSE 'CONTRACTION' END,
                active_step, trialing_step);
        RETURN NULL;
    END IF;
    PERFORM rebill_record_movement(NEW.id, NEW.replaces_id, NEW.currency, NEW.updated_at, was, now_mrr,
                                   active_step, trialing_step);
    RETURN NULL;
END
$$;
"""

# A profile's new cadence changes the MRR of its counted subscriptions, from the instant it is saved.
RECADENCED = f"""
CREATE OR REPLACE FUNCTION rebill_revenue_recadenced() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('rebill.revenue_movements', true) = 'off' THEN
        RETURN NULL;
    END IF;
    PERFORM rebill_record_movement(s.id, s.replaces_id, s.currency, NEW.updated_at,
                                   rebill_mrr(s.amount_minor, s.status, OLD.interval_unit, OLD.interval_count),
                                   rebill_mrr(s.amount_minor, s.status, NEW.interval_unit, NEW.interval_count), 0, 0)
    FROM subscriptions s
    WHERE s.profile_id = NEW.id AND s.status IN {COUNTED}
    ORDER BY s.id;
    RETURN NULL;
END
$$;
"""

# Only what can move MRR or the counts wakes the update trigger: a renewal moving dates, or a decline
# moving ACTIVE to OVERDUE, costs the WHEN test alone.
UPDATE_WHEN = (
    "OLD.amount_minor IS DISTINCT FROM NEW.amount_minor OR OLD.profile_id IS DISTINCT FROM NEW.profile_id "
    f"OR (OLD.status IS DISTINCT FROM NEW.status AND NOT (OLD.status IN {COUNTED} AND NEW.status IN {COUNTED}))"
)

# What revenueMetrics reads of a year of invoices and charges, as index-only scans. None of them names a column
# that changes after the row is written (an invoice's status, paid amount), so settlements stay HOT updates.
READ_BY_METRICS = (
    (
        "ix_invoices_billed",
        "invoices",
        ["currency", "issue_date"],
        ["total_minor"],
        "document_type = 'INVOICE' AND number IS NOT NULL",
    ),
    (
        "ix_transactions_charged",
        "transactions",
        ["currency", "created_at"],
        ["amount_minor", "renewal_id"],
        "kind = 'CHARGE' AND status = 'SUCCEEDED'",
    ),
    (
        "ix_transactions_declined",
        "transactions",
        ["currency", "created_at"],
        ["renewal_id"],
        "kind = 'CHARGE' AND status = 'FAILED'",
    ),
    (
        "ix_revenue_movements_churned",
        "revenue_movements",
        ["currency", "occurred_at"],
        ["chain_id"],
        "kind = 'CHURNED'",
    ),
)

TRIGGERS = (
    "CREATE TRIGGER revenue_inserted AFTER INSERT ON subscriptions REFERENCING NEW TABLE AS inserted "
    "FOR EACH STATEMENT EXECUTE FUNCTION rebill_revenue_inserted()",
    "CREATE TRIGGER revenue_updated AFTER UPDATE OF amount_minor, profile_id, status ON subscriptions "
    f"FOR EACH ROW WHEN ({UPDATE_WHEN}) EXECUTE FUNCTION rebill_revenue_updated()",
    "CREATE TRIGGER revenue_recadenced AFTER UPDATE OF interval_unit, interval_count ON subscription_profiles "
    "FOR EACH ROW WHEN (OLD.interval_unit IS DISTINCT FROM NEW.interval_unit "
    "OR OLD.interval_count IS DISTINCT FROM NEW.interval_count) EXECUTE FUNCTION rebill_revenue_recadenced()",
)


def upgrade() -> None:
    op.create_table(
        "revenue_movements",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.BigInteger(), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("currency", postgresql.CHAR(length=3), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("mrr_before_minor", sa.BigInteger(), nullable=False),
        sa.Column("mrr_after_minor", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=True),
        sa.Column("active_step", sa.Integer(), server_default="0", nullable=False),
        sa.Column("trialing_step", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint(
            "kind IN ('NEW','EXPANSION','CONTRACTION','CHURNED','REACTIVATION')",
            name=op.f("ck_revenue_movements_kind"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revenue_movements")),
    )
    op.create_table(
        "revenue_days",
        sa.Column("currency", postgresql.CHAR(length=3), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        *(sa.Column(name, sa.BigInteger(), server_default="0", nullable=False) for name in DAY_SUMS),
        sa.PrimaryKeyConstraint("currency", "day", name=op.f("pk_revenue_days")),
    )
    op.create_table(
        "revenue_days_kept",
        sa.Column("currency", postgresql.CHAR(length=3), nullable=False),
        sa.Column("kept_until", sa.Date(), nullable=False),
        sa.Column("time_zone", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("currency", name=op.f("pk_revenue_days_kept")),
    )
    for statement in (MRR, CHAIN, RECORD, INSERTED, UPDATED, RECADENCED):
        op.execute(statement)
    op.get_bind().execute(sa.text(BACKFILL))
    op.create_index("ix_revenue_movements_currency_at", "revenue_movements", ["currency", "occurred_at"])
    op.create_index("ix_revenue_movements_chain", "revenue_movements", ["chain_id", "id"])
    for name, table, columns, include, where in READ_BY_METRICS:
        op.create_index(name, table, columns, postgresql_include=include, postgresql_where=sa.text(where))
    for statement in TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    for name, table, *_ in READ_BY_METRICS:
        op.drop_index(name, table_name=table)
    op.execute("DROP TRIGGER IF EXISTS revenue_recadenced ON subscription_profiles")
    op.execute("DROP TRIGGER IF EXISTS revenue_updated ON subscriptions")
    op.execute("DROP TRIGGER IF EXISTS revenue_inserted ON subscriptions")
    for function in (
        "rebill_revenue_recadenced()",
        "rebill_revenue_updated()",
        "rebill_revenue_inserted()",
        "rebill_record_movement(bigint, bigint, text, timestamptz, bigint, bigint, integer, integer)",
        "rebill_chain_of(bigint, bigint)",
        "rebill_mrr(bigint, text, text, integer)",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
    op.drop_table("revenue_days_kept")
    op.drop_table("revenue_days")
    op.drop_table("revenue_movements")
