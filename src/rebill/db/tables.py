"""Tables: one declarative model per entity of DOMAIN.md.

Money is ``BIGINT`` minor units beside a ``CHAR(3)`` currency; instants are
``timestamptz``; billing days are ``date``. Relationships are
``lazy="raise"``: every read says what it loads, so nothing is N+1 by
accident. Hot paths (the renewal worker, bulk runs) use the ``__table__``
objects with Core statements.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, CHAR, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from rebill.db import schedule

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _pk() -> Mapped[int]:
    return mapped_column(BigInteger, primary_key=True, autoincrement=True)


def _created() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = _pk()
    name: Mapped[str] = mapped_column(Text, unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    created_at: Mapped[datetime] = _created()
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = _pk()
    email: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    time_zone: Mapped[str] = mapped_column(Text, server_default="UTC")
    billing_address: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    tax_id: Mapped[str | None] = mapped_column(Text)
    # Exempt customers' invoices show a zero rate with the reason (reverse charge, …; DOMAIN.md "Tax and shipping").
    tax_exempt: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    tax_exempt_reason: Mapped[str | None] = mapped_column(Text)
    default_payment_method_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("payment_methods.id", use_alter=True, ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = _created()

    __table_args__ = (
        Index("ix_customers_email_lower", func.lower(text("email"))),
        # customers(filter: { emailContains, search }): substring matches (pg_trgm, migration 0005).
        Index("ix_customers_email_trgm", text("lower(email) gin_trgm_ops"), postgresql_using="gin"),
        Index("ix_customers_name_trgm", text("lower(coalesce(name, '')) gin_trgm_ops"), postgresql_using="gin"),
    )


class PaymentMethod(Base):
    __tablename__ = "payment_methods"

    id: Mapped[int] = _pk()
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # CARD | EXTERNAL | OFFLINE
    gateway_token: Mapped[str | None] = mapped_column(Text)
    brand: Mapped[str | None] = mapped_column(Text)
    last4: Mapped[str | None] = mapped_column(String(4))
    exp_month: Mapped[int | None] = mapped_column(Integer)
    exp_year: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = _created()

    __table_args__ = (
        CheckConstraint("kind IN ('CARD','EXTERNAL','OFFLINE')", name="kind"),
        # The few paid by transfer: the billing forecast asks whether there are any, and looks them up (0020).
        Index("ix_payment_methods_offline", "id", postgresql_where=text("kind = 'OFFLINE'")),
    )


class Product(Base):
    __tablename__ = "products"

    id: Mapped[int] = _pk()
    name: Mapped[str] = mapped_column(Text)
    sku: Mapped[str] = mapped_column(Text, unique=True)
    kind: Mapped[str] = mapped_column(String(16), server_default="STANDARD")
    created_at: Mapped[datetime] = _created()

    tiers: Mapped[list[ProductTier]] = relationship(
        lazy="raise", order_by="ProductTier.position", cascade="all, delete-orphan"
    )

    __table_args__ = (CheckConstraint("kind IN ('STANDARD','SEAT','USAGE')", name="kind"),)


class ProductTier(Base):
    """Volume price tiers: the whole quantity is billed at its tier's price."""

    __tablename__ = "product_tiers"

    id: Mapped[int] = _pk()
    product_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("products.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    up_to: Mapped[int | None] = mapped_column(Integer)
    unit_price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(CHAR(3))


class TaxRate(Base):
    """A named rate for a country or one of its regions (ISO 3166-2); archived rates stay on what they taxed."""

    __tablename__ = "tax_rates"

    id: Mapped[int] = _pk()
    name: Mapped[str] = mapped_column(Text)
    percentage: Mapped[Decimal] = mapped_column(Numeric(7, 4))
    inclusive: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    country: Mapped[str] = mapped_column(CHAR(2))
    region: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = _created()
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("percentage >= 0 AND percentage <= 100", name="percentage"),
        # One active rate per place: the refusal holds under concurrent creations too.
        Index(
            "uq_tax_rates_place",
            "country",
            text("coalesce(region, '')"),
            unique=True,
            postgresql_where=text("active"),
        ),
    )


class ShippingProfile(Base):
    """Ordered shipping rates, one currency each: "the first rate listed … will be used" (seed 003)."""

    __tablename__ = "shipping_profiles"

    id: Mapped[int] = _pk()
    name: Mapped[str] = mapped_column(Text)
    # [{"name", "amountMinor", "currency"}] in the order listed.
    rates: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class Profile(Base):
    __tablename__ = "subscription_profiles"

    id: Mapped[int] = _pk()
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    interval_unit: Mapped[str] = mapped_column(String(8))
    interval_count: Mapped[int] = mapped_column(Integer)
    anchor_policy: Mapped[str] = mapped_column(String(16), server_default="ANCHORED")
    trial_days: Mapped[int] = mapped_column(Integer, server_default="0")
    max_occurrences: Mapped[int | None] = mapped_column(Integer)
    overdue_limit: Mapped[int] = mapped_column(Integer, server_default="0")
    retry_schedule_days: Mapped[list[int]] = mapped_column(ARRAY(Integer), server_default="{5,5}")
    final_failure_action: Mapped[str] = mapped_column(String(16), server_default="CANCEL")
    default_renewal_type: Mapped[str] = mapped_column(String(16), server_default="AUTOMATIC")
    force_last_gateway: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    custom: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    reminder_days_before: Mapped[int] = mapped_column(Integer, server_default="7")
    shipping_profile_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("shipping_profiles.id"))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()

    __table_args__ = (
        CheckConstraint("interval_unit IN ('DAY','WEEK','MONTH','YEAR')", name="interval_unit"),
        CheckConstraint("interval_count >= 1", name="interval_count"),
        CheckConstraint("anchor_policy IN ('ANCHORED','STICKY')", name="anchor_policy"),
        CheckConstraint("final_failure_action IN ('CANCEL','SUSPEND')", name="final_failure_action"),
    )


class Coupon(Base):
    __tablename__ = "coupons"

    id: Mapped[int] = _pk()
    code: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str | None] = mapped_column(Text)
    percent_off: Mapped[Decimal | None] = mapped_column(Numeric(7, 4))
    amount_off_minor: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(CHAR(3))
    duration: Mapped[str] = mapped_column(String(16), server_default="FOREVER")
    duration_cycles: Mapped[int | None] = mapped_column(Integer)
    product_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), server_default="{}")
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = _created()

    __table_args__ = (
        CheckConstraint("(percent_off IS NULL) <> (amount_off_minor IS NULL)", name="one_discount"),
        CheckConstraint("duration IN ('ONCE','FOREVER','REPEATING')", name="duration"),
    )


class Subscription(Base):
    __tablename__ = "subscriptions"

    id: Mapped[int] = _pk()
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id"))
    profile_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("subscription_profiles.id"))
    currency: Mapped[str] = mapped_column(CHAR(3))
    status: Mapped[str] = mapped_column(String(24))
    renewal_type: Mapped[str] = mapped_column(String(16))
    time_zone: Mapped[str] = mapped_column(Text, server_default="UTC")
    start_date: Mapped[date] = mapped_column(Date)
    anchor_date: Mapped[date] = mapped_column(Date)
    # While in TRIAL the next renewal date is the trial end, so one indexed
    # column answers "what renews between X and Y" for trials too.
    next_renewal_date: Mapped[date | None] = mapped_column(Date)
    trial_end_date: Mapped[date | None] = mapped_column(Date)
    current_period_start: Mapped[date | None] = mapped_column(Date)
    current_period_end: Mapped[date | None] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    occurrences_billed: Mapped[int] = mapped_column(Integer, server_default="0")
    # The highest cycle number a renewal was created for.
    last_cycle: Mapped[int] = mapped_column(Integer, server_default="0")
    overdue_count: Mapped[int] = mapped_column(Integer, server_default="0")
    next_retry_date: Mapped[date | None] = mapped_column(Date)
    gateway_id: Mapped[str | None] = mapped_column(Text)
    gateway_mode: Mapped[str | None] = mapped_column(String(16))
    last_gateway_id: Mapped[str | None] = mapped_column(Text)
    payment_method_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("payment_methods.id"))
    # Pinned by setPaymentMethod; otherwise the subscription follows its customer's default.
    payment_method_pinned: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    shipping_address: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Its own shipping profile, over its profile's (``setShippingProfile``); null: the profile's.
    shipping_profile_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("shipping_profiles.id"))
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)
    # What the next renewal bills, coupons applied: kept by every write so
    # lists, filters and bulk previews can sum and compare it in SQL.
    amount_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # What its running coupons take off that renewal (``amount_minor + discount_minor`` is what its items add
    # up to): the billing forecast bills that sum once the coupons run out (migration 0020).
    discount_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    credit_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    renew_due: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # Invoicing settings (DOMAIN.md "Invoices"; ``domain.invoice.InvoicingTerms``), applied to
    # invoices issued after a change: purchaseOrder, memo, documentType, draftInvoices, draftDays,
    # paymentTermsDays. Null: the defaults.
    invoicing: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    replaces_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("subscriptions.id"))
    replaced_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("subscriptions.id"))
    # When a scheduled cancellation takes effect (a contract's term end, or the period end; migration 0017).
    cancellation_date: Mapped[date | None] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()

    __table_args__ = (
        CheckConstraint(
            "status IN ('FUTURE','TRIAL','ACTIVE','OVERDUE','SUSPENDED','AWAITING_REINSTATE','CANCELLED','EXPIRED')",
            name="status",
        ),
        CheckConstraint("renewal_type IN ('AUTOMATIC','MANUAL')", name="renewal_type"),
        CheckConstraint("gateway_mode IS NULL OR gateway_mode IN ('FORCED','PREFERRED')", name="gateway_mode"),
        CheckConstraint("version >= 1", name="version"),
        # The list filters and the renewal worker's "what is due" query.
        Index("ix_subscriptions_status_next_renewal", "status", "next_renewal_date", "id"),
        Index("ix_subscriptions_profile", "profile_id", "id"),
        Index("ix_subscriptions_customer", "customer_id", "id"),
        # The subscriptions billingForecast does not count by their schedules' tallies (0023).
        Index("ix_subscriptions_untallied", "id", postgresql_where=text(f"NOT {schedule.plain('subscriptions')}")),
        Index(
            "ix_subscriptions_shipping_profile",
            "shipping_profile_id",
            postgresql_where=text("shipping_profile_id IS NOT NULL"),
        ),
        Index("ix_subscriptions_gateway", "gateway_id", "gateway_mode"),
        Index(
            "ix_subscriptions_due",
            "next_renewal_date",
            "id",
            # Every subscription that has a next renewal (final ones have none):
            # the worker's due query and next-renewal ranges without a status.
            postgresql_where=text("next_renewal_date IS NOT NULL"),
        ),
        Index(
            "ix_subscriptions_retry_due",
            "next_retry_date",
            postgresql_where=text("status = 'OVERDUE'"),
        ),
        # One per subscriptions(orderBy:) field: keyset pages are index range scans (migration 0005).
        Index("ix_subscriptions_order_created", "created_at", "id"),
        Index("ix_subscriptions_order_updated", "updated_at", "id"),
        Index("ix_subscriptions_order_amount", "amount_minor", "id"),
        Index("ix_subscriptions_order_next_renewal", text("COALESCE(next_renewal_date, 'infinity'::date)"), "id"),
        # The worker's pass over scheduled cancellations (migration 0017).
        Index(
            "ix_subscriptions_cancellation_due",
            "cancellation_date",
            postgresql_where=text("cancellation_date IS NOT NULL AND status NOT IN ('CANCELLED', 'EXPIRED')"),
        ),
    )


class SubscriptionItem(Base):
    __tablename__ = "subscription_items"

    id: Mapped[int] = _pk()
    subscription_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("subscriptions.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("products.id"), index=True)
    position: Mapped[int] = mapped_column(Integer, server_default="0")
    unit_price_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(CHAR(3))
    quantity: Mapped[int] = mapped_column(Integer)
    price_from_tiers: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    auto_renew: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    # A change scheduled for the next renewal (effective NEXT_RENEWAL).
    pending_unit_price_minor: Mapped[int | None] = mapped_column(BigInteger)
    pending_quantity: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = _created()

    __table_args__ = (
        CheckConstraint("quantity >= 0", name="quantity"),
        Index("ix_subscription_items_subscription", "subscription_id", "position"),
    )


class AppliedCoupon(Base):
    __tablename__ = "applied_coupons"

    id: Mapped[int] = _pk()
    subscription_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("subscriptions.id", ondelete="CASCADE"))
    coupon_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("coupons.id"))
    cycles_used: Mapped[int] = mapped_column(Integer, server_default="0")
    applied_at: Mapped[datetime] = _created()

    __table_args__ = (
        UniqueConstraint("subscription_id", "coupon_id"),
        Index("ix_applied_coupons_subscription", "subscription_id"),
    )


class Phase(Base):
    """A scheduled configuration, applied by the renewal engine when due."""

    __tablename__ = "phases"

    id: Mapped[int] = _pk()
    subscription_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("subscriptions.id", ondelete="CASCADE"))
    effective_date: Mapped[date] = mapped_column(Date)
    changes: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), server_default="PENDING")
    created_by: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    applied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("status IN ('PENDING','APPLIED','CANCELLED','FAILED')", name="status"),
        Index("ix_phases_due", "effective_date", postgresql_where=text("status = 'PENDING'")),
        Index("ix_phases_subscription", "subscription_id"),
    )


class SubscriptionContract(Base):
    """A subscription's contract terms (DOMAIN.md "Contract terms"): its running term, one per subscription."""

    __tablename__ = "subscription_contracts"

    subscription_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("subscriptions.id", ondelete="CASCADE"), primary_key=True
    )
    # The running term: from start_date to end_date (a billing date, excluded).
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    term_unit: Mapped[str] = mapped_column(String(8))
    term_count: Mapped[int] = mapped_column(Integer)
    notice_days: Mapped[int] = mapped_column(Integer, server_default="0")
    action_at_term_end: Mapped[str] = mapped_column(String(16))
    fee_minor: Mapped[int | None] = mapped_column(BigInteger)
    fee_currency: Mapped[str | None] = mapped_column(CHAR(3))
    updated_at: Mapped[datetime] = _created()

    __table_args__ = (
        CheckConstraint("term_unit IN ('DAY','WEEK','MONTH','YEAR')", name="term_unit"),
        CheckConstraint("term_count >= 1", name="term_count"),
        CheckConstraint("notice_days >= 0", name="notice_days"),
        CheckConstraint("action_at_term_end IN ('RENEW','EVERGREEN','CANCEL')", name="action_at_term_end"),
        CheckConstraint("end_date > start_date", name="term"),
        CheckConstraint("(fee_minor IS NULL) = (fee_currency IS NULL) AND coalesce(fee_minor, 0) >= 0", name="fee"),
        # The worker's term-end pass: contracts whose term has ended.
        Index("ix_subscription_contracts_end", "end_date"),
    )


class Renewal(Base):
    __tablename__ = "renewals"

    id: Mapped[int] = _pk()
    subscription_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("subscriptions.id", ondelete="CASCADE"))
    cycle: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    # Proration charges and credits belong to a cycle without being one.
    adjustment: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    status: Mapped[str] = mapped_column(String(24), server_default="PENDING")
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(CHAR(3))
    refunded_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_retry_date: Mapped[date | None] = mapped_column(Date)
    fulfillment: Mapped[str] = mapped_column(String(16), server_default="NONE")
    gateway_id: Mapped[str | None] = mapped_column(Text)
    payment_method_id: Mapped[int | None] = mapped_column(BigInteger)
    payment_kind: Mapped[str | None] = mapped_column(String(16))
    idempotency_key: Mapped[str] = mapped_column(Text, unique=True)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("kind IN ('INITIAL','SCHEDULED','MANUAL','EARLY','FORCED')", name="kind"),
        CheckConstraint("status IN ('PENDING','PAID','FAILED','REFUNDED','PARTIALLY_REFUNDED','VOID')", name="status"),
        CheckConstraint("fulfillment IN ('NONE','PENDING','SHIPPED','CANCELLED')", name="fulfillment"),
        CheckConstraint("refunded_minor >= 0", name="refunded"),
        # Exactly once: one renewal per subscription and billing cycle (a VOID one billed nothing).
        Index(
            "uq_renewals_subscription_cycle",
            "subscription_id",
            "cycle",
            unique=True,
            postgresql_where=text("NOT adjustment AND status <> 'VOID'"),
        ),
        Index("ix_renewals_subscription", "subscription_id", "id"),
        Index("ix_renewals_status", "status", "id"),
        # What the forecast reads of each declined renewal to retry, without visiting its row.
        Index(
            "ix_renewals_retry_due",
            "next_retry_date",
            postgresql_where=text("status = 'FAILED'"),
            postgresql_include=["id", "subscription_id", "currency", "amount_minor", "payment_kind"],
        ),
    )


class Invoice(Base):
    """A document for a charge (DOMAIN.md "Invoices"): what was billed, as it was at finalization.

    Amounts are totals of its lines, written once at finalization; a trigger
    (migration 0010) refuses to change them, its number or its lines once it
    is no longer a draft.
    """

    __tablename__ = "invoices"

    id: Mapped[int] = _pk()
    # ``{prefix}{year}-{counter}`` from ``document_counters``; null while DRAFT.
    number: Mapped[str | None] = mapped_column(Text, unique=True)
    document_type: Mapped[str] = mapped_column(String(16), server_default="INVOICE")
    status: Mapped[str] = mapped_column(String(16))
    subscription_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("subscriptions.id"))
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id"))
    renewal_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("renewals.id"))
    currency: Mapped[str] = mapped_column(CHAR(3))
    issue_date: Mapped[date | None] = mapped_column(Date)
    due_date: Mapped[date | None] = mapped_column(Date)
    period_start: Mapped[date | None] = mapped_column(Date)
    period_end: Mapped[date | None] = mapped_column(Date)
    subtotal_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    discount_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    shipping_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    tax_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    total_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    credit_applied_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    amount_paid_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    credited_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    purchase_order: Mapped[str | None] = mapped_column(Text)
    memo: Mapped[str | None] = mapped_column(Text)
    customer_name: Mapped[str | None] = mapped_column(Text)
    customer_email: Mapped[str | None] = mapped_column(Text)
    billing_address: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    customer_tax_id: Mapped[str | None] = mapped_column(Text)
    seller: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # A draft's renewal-to-be: cycle, kind, fulfillment, and finalizeOn (the day the worker finalizes it).
    draft: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # A final invoice issued for a paid pro forma points at it.
    pro_forma_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("invoices.id"))
    void_reason: Mapped[str | None] = mapped_column(Text)
    payment_reference: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    finalized_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paid_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    voided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = _created()

    __table_args__ = (
        CheckConstraint("status IN ('DRAFT','OPEN','PAID','VOID','UNCOLLECTIBLE')", name="status"),
        CheckConstraint("document_type IN ('INVOICE','PRO_FORMA')", name="document_type"),
        CheckConstraint("(number IS NULL) = (status = 'DRAFT')", name="numbered"),
        CheckConstraint("credit_applied_minor >= 0 AND credit_applied_minor <= total_minor", name="credit_applied"),
        CheckConstraint("credited_minor >= 0 AND credited_minor <= total_minor", name="credited"),
        # Every charge has exactly one invoice (and, for a pro forma, one pro forma).
        Index(
            "uq_invoices_renewal_type",
            "renewal_id",
            "document_type",
            unique=True,
            postgresql_where=text("renewal_id IS NOT NULL"),
        ),
        Index("ix_invoices_subscription", "subscription_id", "id"),
        Index("ix_invoices_customer", "customer_id", "id"),
        Index("ix_invoices_issue_date", "issue_date", "id"),
        # The worker's drafts to finalize, and "at most one draft per subscription" (``draft`` is set on
        # drafts only; an index on ``status`` would make every settlement's status change a non-HOT update).
        Index(
            "uq_invoices_draft_subscription",
            "subscription_id",
            unique=True,
            postgresql_where=text("draft IS NOT NULL"),
        ),
        # revenueMetrics' billed, read from the index alone (no column a settlement changes).
        Index(
            "ix_invoices_billed",
            "currency",
            "issue_date",
            postgresql_include=["total_minor"],
            postgresql_where=text("document_type = 'INVOICE' AND number IS NOT NULL"),
        ),
    )


class InvoiceLine(Base):
    __tablename__ = "invoice_lines"

    id: Mapped[int] = _pk()
    invoice_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("invoices.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text)
    product_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("products.id"))
    quantity: Mapped[int | None] = mapped_column(Integer)
    unit_price_minor: Mapped[int | None] = mapped_column(BigInteger)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    period_start: Mapped[date | None] = mapped_column(Date)
    period_end: Mapped[date | None] = mapped_column(Date)
    tax_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # The rate as it was when the document was issued (null: untaxed); an exempt customer's has a reason.
    tax_rate_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("tax_rates.id"))
    tax_name: Mapped[str | None] = mapped_column(Text)
    tax_percentage: Mapped[Decimal | None] = mapped_column(Numeric(7, 4))
    tax_inclusive: Mapped[bool | None] = mapped_column(Boolean)
    tax_exempt_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("kind IN ('ITEM','PRORATION','DISCOUNT','SHIPPING','ONE_OFF','FEE')", name="kind"),
        Index("ix_invoice_lines_invoice", "invoice_id", "position"),
    )


class CreditNote(Base):
    """Money given back against an invoice (DOMAIN.md "Credit notes"): refunded, or to the customer's balance.

    Written once with its number and lines; a trigger (migration 0012)
    refuses any later change.
    """

    __tablename__ = "credit_notes"

    id: Mapped[int] = _pk()
    number: Mapped[str] = mapped_column(Text, unique=True)
    invoice_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("invoices.id"))
    subscription_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("subscriptions.id"))
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id"))
    currency: Mapped[str] = mapped_column(CHAR(3))
    issue_date: Mapped[date] = mapped_column(Date)
    subtotal_minor: Mapped[int] = mapped_column(BigInteger)
    tax_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    total_minor: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(Text)
    # True: the money went back through the gateway (``transaction_id``); false: to the customer's balance.
    refunded: Mapped[bool] = mapped_column(Boolean)
    transaction_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("transactions.id"))
    customer_name: Mapped[str | None] = mapped_column(Text)
    customer_email: Mapped[str | None] = mapped_column(Text)
    billing_address: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    customer_tax_id: Mapped[str | None] = mapped_column(Text)
    seller: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _created()

    __table_args__ = (
        CheckConstraint("total_minor > 0", name="positive"),
        Index("ix_credit_notes_invoice", "invoice_id", "id"),
        Index("ix_credit_notes_issue_date", "issue_date", "id"),
    )


class CreditNoteLine(Base):
    __tablename__ = "credit_note_lines"

    id: Mapped[int] = _pk()
    credit_note_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("credit_notes.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text)
    product_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("products.id"))
    quantity: Mapped[int | None] = mapped_column(Integer)
    unit_price_minor: Mapped[int | None] = mapped_column(BigInteger)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    period_start: Mapped[date | None] = mapped_column(Date)
    period_end: Mapped[date | None] = mapped_column(Date)
    tax_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    # The rate as it was when the document was issued (null: untaxed); an exempt customer's has a reason.
    tax_rate_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("tax_rates.id"))
    tax_name: Mapped[str | None] = mapped_column(Text)
    tax_percentage: Mapped[Decimal | None] = mapped_column(Numeric(7, 4))
    tax_inclusive: Mapped[bool | None] = mapped_column(Boolean)
    tax_exempt_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_credit_note_lines_note", "credit_note_id", "position"),)


class DocumentCounter(Base):
    """The last number given in one series (prefix and year): gapless, unlike a sequence.

    Taking numbers updates this row, so they are given in commit order and a
    rolled-back (or killed) transaction gives its numbers back.
    """

    __tablename__ = "document_counters"

    prefix: Mapped[str] = mapped_column(Text, primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_number: Mapped[int] = mapped_column(BigInteger)


class Transaction(Base):
    __tablename__ = "transactions"

    id: Mapped[int] = _pk()
    renewal_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("renewals.id", ondelete="CASCADE"), index=True)
    subscription_id: Mapped[int] = mapped_column(BigInteger, index=True)
    kind: Mapped[str] = mapped_column(String(16))  # CHARGE | REFUND | CREDIT
    gateway_id: Mapped[str | None] = mapped_column(Text)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(CHAR(3))
    status: Mapped[str] = mapped_column(String(16))  # SUCCEEDED | FAILED
    decline_code: Mapped[str | None] = mapped_column(Text)
    gateway_reference: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()

    # revenueMetrics' collected, failed and recovered payments (transactions are never updated).
    __table_args__ = (
        Index(
            "ix_transactions_charged",
            "currency",
            "created_at",
            postgresql_include=["amount_minor", "renewal_id"],
            postgresql_where=text("kind = 'CHARGE' AND status = 'SUCCEEDED'"),
        ),
        Index(
            "ix_transactions_declined",
            "currency",
            "created_at",
            postgresql_include=["renewal_id"],
            postgresql_where=text("kind = 'CHARGE' AND status = 'FAILED'"),
        ),
    )


class HistoryEntry(Base):
    __tablename__ = "history_entries"

    id: Mapped[int] = _pk()
    # No foreign key: the audit trail is append-only and written by the
    # hundred thousand in bulk runs, where a per-row key check costs more than
    # it protects (subscriptions are never deleted).
    subscription_id: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    bulk_run_id: Mapped[int | None] = mapped_column(BigInteger)
    changes: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")
    # The evidence of consent for a price increase this change made (seed 002).
    consent_reference: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_history_subscription", "subscription_id", "id"),)


class RevenueMovement(Base):
    """A change of one subscription's MRR, or of whether it counts as active or trialing.

    Written by triggers on ``subscriptions`` (migration 0019) in the statement
    that saves the change, whichever path saves it (a mutation, the renewal
    worker, a bulk run), so revenue metrics are sums over these rows. A
    product change's replacement continues its predecessor's chain: the two
    rows of that change are one movement of the chain.
    """

    __tablename__ = "revenue_movements"

    id: Mapped[int] = _pk()
    subscription_id: Mapped[int] = mapped_column(BigInteger)  # no foreign key, as history_entries
    # The first subscription of a line of product changes (the subscription itself when it replaced none).
    chain_id: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(CHAR(3))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    mrr_before_minor: Mapped[int] = mapped_column(BigInteger)
    mrr_after_minor: Mapped[int] = mapped_column(BigInteger)
    # NEW | EXPANSION | CONTRACTION | CHURNED | REACTIVATION; NULL when only the counts moved.
    kind: Mapped[str | None] = mapped_column(String(16))
    # +1 / -1 when the subscription starts or stops counting as active (ACTIVE, OVERDUE) or trialing (TRIAL).
    active_step: Mapped[int] = mapped_column(Integer, server_default="0")
    trialing_step: Mapped[int] = mapped_column(Integer, server_default="0")

    __table_args__ = (
        CheckConstraint(
            "kind IN ('NEW','EXPANSION','CONTRACTION','CHURNED','REACTIVATION')",
            name="kind",
        ),
        Index("ix_revenue_movements_currency_at", "currency", "occurred_at"),
        Index("ix_revenue_movements_chain", "chain_id", "id"),
        Index(
            "ix_revenue_movements_churned",
            "currency",
            "occurred_at",
            postgresql_include=["chain_id"],
            postgresql_where=text("kind = 'CHURNED'"),
        ),
    )


class RevenueDay(Base):
    """The sums revenueMetrics reads for one closed day of the seller's calendar, in one currency.

    A day's rows are never rewritten once it is over (each is dated by the clock when written), so its
    sums are kept (``services.revenue``); a day with nothing has no row. Columns as ``revenue.Totals``.
    """

    __tablename__ = "revenue_days"

    currency: Mapped[str] = mapped_column(CHAR(3), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    step_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    new_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    expansion_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    contraction_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    churned_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    reactivation_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    active_step: Mapped[int] = mapped_column(BigInteger, server_default="0")
    trialing_step: Mapped[int] = mapped_column(BigInteger, server_default="0")
    new_subscriptions: Mapped[int] = mapped_column(BigInteger, server_default="0")
    billed_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    collected_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    refunded_minor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    failed_payments: Mapped[int] = mapped_column(BigInteger, server_default="0")
    recovered_payments: Mapped[int] = mapped_column(BigInteger, server_default="0")


class RevenueDaysKept(Base):
    """Per currency: every day before ``kept_until`` has its sums in ``revenue_days`` (days of ``time_zone``)."""

    __tablename__ = "revenue_days_kept"

    currency: Mapped[str] = mapped_column(CHAR(3), primary_key=True)
    kept_until: Mapped[date] = mapped_column(Date)
    time_zone: Mapped[str] = mapped_column(Text)


class DeclineHour(Base):
    """billingForecast's decline rate, kept per closed UTC hour and currency: how many scheduled renewals had
    their first attempt in that hour, and how many of those failed.

    An hour's charges are never rewritten once it is over (each is dated by the clock when written), so its
    counts are kept (``services.forecast``); an hour kept with no attempt has zeros.
    """

    __tablename__ = "decline_hours"

    currency: Mapped[str] = mapped_column(CHAR(3), primary_key=True)
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    attempted: Mapped[int] = mapped_column(BigInteger, server_default="0")
    failed: Mapped[int] = mapped_column(BigInteger, server_default="0")


class ScheduleTally(Base):
    """billingForecast's plain subscriptions, counted per schedule by every write (``db.schedule``): each row is
    how many subscriptions joined (or, negative, left) a schedule and their amounts; a schedule's tally is the
    sum of its rows."""

    __tablename__ = "schedule_tallies"

    id: Mapped[int] = _pk()
    currency: Mapped[str] = mapped_column(CHAR(3))
    next_renewal_date: Mapped[date | None] = mapped_column(Date)
    anchor_date: Mapped[date | None] = mapped_column(Date)
    time_zone: Mapped[str | None] = mapped_column(Text)
    profile_id: Mapped[int | None] = mapped_column(BigInteger)
    last_cycle: Mapped[int | None] = mapped_column(Integer)
    offline: Mapped[bool] = mapped_column(Boolean)
    subscriptions: Mapped[int] = mapped_column(BigInteger)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    # Summed (by the migration or a compaction) rather than added by a write.
    kept: Mapped[bool] = mapped_column(Boolean, server_default="false")


class OutboxMessage(Base):
    __tablename__ = "outbox"

    id: Mapped[int] = _pk()
    kind: Mapped[str] = mapped_column(String(40))
    subscription_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    recipient: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    dedupe_key: Mapped[str | None] = mapped_column(Text, unique=True)
    created_at: Mapped[datetime] = _created()
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_outbox_undelivered", "id", postgresql_where=text("delivered_at IS NULL")),)


class BulkRun(Base):
    __tablename__ = "bulk_runs"

    id: Mapped[int] = _pk()
    plan: Mapped[dict[str, Any]] = mapped_column(JSONB)
    plan_hash: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), server_default="QUEUED")
    dry_run: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    limit: Mapped[int | None] = mapped_column("limit", Integer)
    as_of: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(Text)
    # The API key that started the run (null from the command line): other keys need admin.
    api_key_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("api_keys.id", ondelete="SET NULL"))
    total: Mapped[int] = mapped_column(Integer, server_default="0")
    processed: Mapped[int] = mapped_column(Integer, server_default="0")
    applied: Mapped[int] = mapped_column(Integer, server_default="0")
    skipped: Mapped[int] = mapped_column(Integer, server_default="0")
    failed: Mapped[int] = mapped_column(Integer, server_default="0")
    conflicts: Mapped[int] = mapped_column(Integer, server_default="0")
    cursor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    error: Mapped[str | None] = mapped_column(Text)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reverted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("status IN ('QUEUED','RUNNING','COMPLETED','FAILED','CANCELLED','REVERTED')", name="status"),
    )


class BulkRunItem(Base):
    __tablename__ = "bulk_run_items"

    id: Mapped[int] = _pk()
    run_id: Mapped[int] = mapped_column(BigInteger)  # written per subscription: no per-row key check
    subscription_id: Mapped[int] = mapped_column(BigInteger)
    segment: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    changes: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")
    # What undoing this item takes: the values before the run of the fields it changed.
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    version_after: Mapped[int | None] = mapped_column(Integer)
    consent_reference: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()

    __table_args__ = (
        UniqueConstraint("run_id", "subscription_id"),
        CheckConstraint("outcome IN ('APPLIED','SKIPPED','FAILED','CONFLICT','REVERTED')", name="outcome"),
        Index("ix_bulk_run_items_subscription", "subscription_id"),
    )


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_records"

    id: Mapped[int] = _pk()
    api_key_id: Mapped[int] = mapped_column(BigInteger, server_default="0")
    key: Mapped[str] = mapped_column(Text)
    operation: Mapped[str] = mapped_column(Text)
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("api_key_id", "key"),
        Index("ix_idempotency_expires", "expires_at"),
    )


class SandboxCharge(Base):
    """The sandbox gateway's own ledger: what a real gateway keeps on its side.

    It is written in its own transaction, like a remote call, so a crash of
    rebill between charge and commit leaves the charge here, and a retry with
    the same idempotency key finds it instead of charging twice.
    """

    __tablename__ = "sandbox_charges"

    id: Mapped[int] = _pk()
    gateway: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    token: Mapped[str | None] = mapped_column(Text)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(CHAR(3))
    succeeded: Mapped[bool] = mapped_column(Boolean)
    decline_code: Mapped[str | None] = mapped_column(Text)
    reference: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()

    __table_args__ = (UniqueConstraint("gateway", "idempotency_key", "kind"),)


class WebhookEndpoint(Base):
    """Where partner events are pushed; the secret signs them (the previous one too, for a day after a rotation)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = _pk()
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    # Partner event types; empty means every event.
    events: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(Text)
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class WebhookDelivery(Base):
    """One outbox event for one endpoint; rows are inserted by the outbox trigger (migration 0003)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = _pk()
    endpoint_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    outbox_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("outbox.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(Text)
    # Deliveries of one subscription go out to an endpoint in event order.
    subscription_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), server_default="PENDING")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    # Attempts since the delivery was created or redelivered: the step of the retry schedule.
    round_attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    # NULL: due at once.
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created()
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The worker sending it, and until when (real time): a lease, so no transaction stays open during the send.
    claim_token: Mapped[str | None] = mapped_column(Text)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("endpoint_id", "outbox_id"),
        CheckConstraint("status IN ('PENDING','SUCCEEDED','FAILED')", name="status"),
        Index("ix_webhook_deliveries_pending", "id", postgresql_where=text("status = 'PENDING'")),
        Index(
            "ix_webhook_deliveries_pending_order",
            "endpoint_id",
            "subscription_id",
            "id",
            postgresql_where=text("status = 'PENDING'"),
        ),
        Index("ix_webhook_deliveries_outbox", "outbox_id"),
    )


class PortalSettings(Base):
    """One row: what the outbox trigger needs to build portal links (written when the server starts)."""

    __tablename__ = "portal_settings"

    id: Mapped[bool] = mapped_column(Boolean, primary_key=True, server_default=text("true"))
    base_url: Mapped[str] = mapped_column(Text)
    email_link_ttl: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = _created()

    __table_args__ = (CheckConstraint("id", name="one_row"),)


class PortalToken(Base):
    """A secret that opens the customer portal; only its SHA-256 is stored.

    ``LINK`` tokens are in URLs (e-mails, ``createCustomerPortalSession``) and
    work once; ``API`` tokens are bearer tokens with the ``customer`` scope
    until they expire.
    """

    __tablename__ = "portal_tokens"

    id: Mapped[int] = _pk()
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    flow: Mapped[str] = mapped_column(String(16), server_default="OVERVIEW")
    subscription_id: Mapped[int | None] = mapped_column(BigInteger)
    # The invoice an e-mail link opens (a receipt's, an issued invoice's).
    invoice_id: Mapped[int | None] = mapped_column(BigInteger)
    return_url: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("kind IN ('LINK','API')", name="kind"),
        CheckConstraint("source IN ('API','EMAIL')", name="source"),
    )


class PortalSession(Base):
    """A signed-in portal browser: the cookie holds a secret whose SHA-256 is ``session_hash``."""

    __tablename__ = "portal_sessions"

    id: Mapped[int] = _pk()
    customer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    return_url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApiRateLimit(Base):
    """An API key's leaky bucket of query-cost points, shared by every API process on the database."""

    __tablename__ = "api_rate_limits"

    bucket: Mapped[str] = mapped_column(Text, primary_key=True)
    available: Mapped[float] = mapped_column(Float)
    granted: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    updated_at: Mapped[datetime] = _created()


TABLES = [t.name for t in Base.metadata.sorted_tables]


def table_of(model: type[Base]) -> Table:
    """The Core table of a model, typed as one (for Core statements on hot paths)."""
    return cast(Table, model.__table__)
