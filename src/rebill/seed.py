"""Demo data: ``rebill seed --subscriptions N``.

Realistic enough to click through and to benchmark against: a dozen plans
(monthly anchored and sticky, every 30 days, quarterly, yearly, weekly, a
trial, a manual annual licence, an instalment plan, a plan that suspends after
two overdue renewals, a coffee club that ships), products with volume tiers,
coupons, customers in several time zones paying by card, outside the
gateways or by invoice, and subscriptions in every status (a few signed up to
start later: ``FUTURE``, as the creation rule leaves them).

Every subscription is built as a domain ``SubscriptionState`` and its history
is simulated with the domain's rules (cadence functions for every date, the
pricing function for every amount, coupons using up a cycle per paid
renewal), then written with ``COPY`` through the same row mappings the
repository uses. Rows are written in batches, one transaction per batch, so
100,000 subscriptions take seconds rather than the hours a mutation per
subscription would.

Each subscription's history has its "created" entry (the same diff the
service writes) and one entry per status change (declined first charge,
suspension, cancellation, expiry, unpaid period end); the renewals it went
through are rows of ``renewals`` and ``transactions``, without a history
entry each.

The generator is deterministic for a given ``--seed``, database state and
"today" (``REBILL_NOW``). ``seed()`` is the entry point the benchmarks reuse.
"""

from __future__ import annotations

import asyncio
import json
import random
import time as _time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Annotated, Any

import typer
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from rebill.cli_support import console, fail, open_services, out, run, settings_or_exit
from rebill.db import repositories
from rebill.db import tables as t
from rebill.db.repositories import coupon_from_row, item_row, profile_from_row, profile_values, subscription_values
from rebill.db.revenue import SKIP_MOVEMENTS, backfill_movements, forget_days
from rebill.domain.cadence import AnchorPolicy, Cadence, IntervalUnit, following, local_today
from rebill.domain.creation import NewItem, start_subscription
from rebill.domain.money import Money
from rebill.domain.outcome import OpContext
from rebill.domain.pricing import CouponDuration, PriceTier, tier_unit_price
from rebill.domain.renewal import FulfillmentStatus, RenewalKind, RenewalStatus
from rebill.domain.status import SubscriptionStatus
from rebill.domain.subscription import (
    AppliedCoupon,
    CouponInfo,
    FinalFailureAction,
    GatewayMode,
    Item,
    PaymentKind,
    PaymentMethodInfo,
    ProductInfo,
    ProductKind,
    ProfileTerms,
    RenewalType,
    SubscriptionState,
    diff,
)
from rebill.invoicing.backfill import backfill_invoices
from rebill.services.runtime import Services

ACTOR = "seed"
REASON = "demo data (rebill seed)"
DEFAULT_BATCH = 10_000

Progress = Callable[[int], None]
"""Called with the number of subscriptions just written."""

S = SubscriptionStatus


# -- the catalog ---------------------------------------------------------------


@dataclass(frozen=True)
class _ProfileSpec:
    key: str
    terms: ProfileTerms
    weight: int
    # How far back a running subscription of this plan may have started.
    horizon_days: int
    main: tuple[str, ...]  # products a subscription of this plan is built around
    price_factor: Decimal  # list prices are monthly; a yearly plan bills about ten months
    ships: bool = False


def _profile(name: str, unit: IntervalUnit, count: int = 1, **terms: Any) -> ProfileTerms:
    return ProfileTerms(id=None, name=name, cadence=Cadence(unit, count), **terms)


PROFILES: tuple[_ProfileSpec, ...] = (
    _ProfileSpec(
        "monthly",
        _profile("Monthly", IntervalUnit.MONTH, description="Billed every month on the day you started"),
        30,
        365,
        ("starter", "pro", "team", "business", "editor-seat"),
        Decimal(1),
    ),
    _ProfileSpec(
        "monthly-sticky",
        _profile(
            "Monthly (sticky day)",
            IntervalUnit.MONTH,
            anchor_policy=AnchorPolicy.STICKY,
            description="One month after the previous renewal; a short month moves the day for good",
        ),
        8,
        365,
        ("starter", "pro", "team"),
        Decimal(1),
    ),
    _ProfileSpec(
        "every-30-days",
        _profile("Every 30 days", IntervalUnit.DAY, 30, reminder_days_before=3),
        8,
        300,
        ("starter", "pro", "api-calls"),
        Decimal(1),
    ),
    _ProfileSpec(
        "quarterly",
        _profile("Quarterly", IntervalUnit.MONTH, 3, reminder_days_before=14),
        8,
        540,
        ("pro", "team", "business"),
        Decimal(3),
    ),
    _ProfileSpec(
        "yearly",
        _profile("Yearly", IntervalUnit.YEAR, reminder_days_before=30, retry_schedule_days=(3, 7, 7)),
        12,
        900,
        ("pro", "team", "business", "desktop-licence"),
        Decimal(10),
    ),
    _ProfileSpec(
        "weekly",
        _profile("Weekly", IntervalUnit.WEEK, reminder_days_before=1, retry_schedule_days=(2, 2)),
        4,
        120,
        ("meal-box",),
        Decimal(1),
        ships=True,
    ),
    _ProfileSpec(
        "monthly-trial",
        _profile("Monthly, 14-day free trial", IntervalUnit.MONTH, trial_days=14),
        8,
        300,
        ("starter", "pro", "team"),
        Decimal(1),
    ),
    _ProfileSpec(
        "annual-manual",
        _profile(
            "Annual licence (manual renewal)",
            IntervalUnit.YEAR,
            default_renewal_type=RenewalType.MANUAL,
            reminder_days_before=60,
            description="Renewed by the customer each year; reminders start two months before",
        ),
        6,
        365,
        ("desktop-licence",),
        Decimal(10),
    ),
    _ProfileSpec(
        "instalments-6",
        _profile(
            "6 monthly instalments",
            IntervalUnit.MONTH,
            max_occurrences=6,
            description="Six payments, then the subscription expires",
        ),
        4,
        150,
        ("business", "hardware-bundle"),
        Decimal(1),
    ),
    _ProfileSpec(
        "monthly-overdue-limit",
        _profile(
            "Monthly, suspend after 2 overdue",
            IntervalUnit.MONTH,
            overdue_limit=2,
            retry_schedule_days=(3, 4, 7),
            final_failure_action=FinalFailureAction.SUSPEND,
        ),
        5,
        365,
        ("pro", "team"),
        Decimal(1),
    ),
    _ProfileSpec(
        "coffee-club",
        _profile(
            "Coffee club (ships monthly)",
            IntervalUnit.MONTH,
            force_last_gateway=True,
            description="A bag of beans every month; the card's last successful gateway is used",
        ),
        4,
        365,
        ("coffee-beans",),
        Decimal(1),
        ships=True,
    ),
    _ProfileSpec(
        "yearly-trial",
        _profile("Yearly, 30-day trial", IntervalUnit.YEAR, trial_days=30, reminder_days_before=30),
        3,
        800,
        ("pro", "team"),
        Decimal(10),
    ),
)


@dataclass(frozen=True)
class _ProductSpec:
    key: str
    name: str
    kind: ProductKind
    # Monthly list price in minor units per currency.
    prices: dict[str, int]
    tiers: tuple[tuple[int | None, int], ...] = ()
    tier_currency: str = "EUR"
    quantity: tuple[int, int] = (1, 1)


PRODUCTS: tuple[_ProductSpec, ...] = (
    _ProductSpec("starter", "Starter plan", ProductKind.STANDARD, {"USD": 900, "EUR": 900, "GBP": 800}),
    _ProductSpec("pro", "Pro plan", ProductKind.STANDARD, {"USD": 2900, "EUR": 2700, "GBP": 2400}),
    _ProductSpec("team", "Team plan", ProductKind.STANDARD, {"USD": 9900, "EUR": 9200, "GBP": 7900}),
    _ProductSpec("business", "Business plan", ProductKind.STANDARD, {"USD": 24900, "EUR": 23000, "GBP": 19900}),
    # Seed 002's per-desktop annual licence: the whole quantity is billed at its tier's price.
    _ProductSpec(
        "desktop-licence",
        "Anti-virus desktop licence",
        ProductKind.SEAT,
        {"USD": 300, "EUR": 300, "GBP": 260},
        tiers=((99, 3000), (499, 2500), (999, 2000), (4999, 1500), (None, 1000)),
        tier_currency="EUR",
        quantity=(1, 1500),
    ),
    _ProductSpec(
        "editor-seat",
        "Editor seat",
        ProductKind.SEAT,
        {"USD": 1200, "EUR": 1100, "GBP": 1000},
        tiers=((9, 1200), (49, 1000), (None, 800)),
        tier_currency="USD",
        quantity=(1, 80),
    ),
    _ProductSpec(
        "api-calls", "API calls (per 1,000)", ProductKind.USAGE, {"USD": 40, "EUR": 40, "GBP": 35}, quantity=(10, 900)
    ),
    _ProductSpec(
        "sms", "SMS bundle (per 100)", ProductKind.USAGE, {"USD": 150, "EUR": 140, "GBP": 120}, quantity=(1, 40)
    ),
    _ProductSpec("support", "Priority support", ProductKind.STANDARD, {"USD": 1900, "EUR": 1800, "GBP": 1500}),
    _ProductSpec("storage", "Extra storage, 100 GB", ProductKind.STANDARD, {"USD": 499, "EUR": 499, "GBP": 449}),
    _ProductSpec("coffee-beans", "Coffee beans, 1 kg", ProductKind.STANDARD, {"USD": 2450, "EUR": 2290, "GBP": 1990}),
    _ProductSpec("meal-box", "Meal box for two", ProductKind.STANDARD, {"USD": 5990, "EUR": 5490, "GBP": 4790}),
    _ProductSpec(
        "hardware-bundle",
        "Point-of-sale hardware bundle",
        ProductKind.STANDARD,
        {"USD": 4500, "EUR": 4200, "GBP": 3600},
    ),
)
ADD_ONS = ("support", "storage", "api-calls", "sms")


@dataclass(frozen=True)
class _CouponSpec:
    code: str
    name: str
    percent: str | None = None
    amount: tuple[int, str] | None = None
    duration: CouponDuration = CouponDuration.FOREVER
    cycles: int | None = None
    products: tuple[str, ...] = ()


COUPONS: tuple[_CouponSpec, ...] = (
    _CouponSpec("WELCOME10", "10% off the first bill", percent="10", duration=CouponDuration.ONCE),
    _CouponSpec("LOYAL15", "15% off, for good", percent="15"),
    _CouponSpec("SPRING20", "20% off for three bills", percent="20", duration=CouponDuration.REPEATING, cycles=3),
    _CouponSpec("SAVE5USD", "5 USD off every bill", amount=(500, "USD")),
    _CouponSpec("TENEUR", "10 EUR off the first bill", amount=(1000, "EUR"), duration=CouponDuration.ONCE),
    _CouponSpec(
        "FIVERGBP", "5 GBP off for six bills", amount=(500, "GBP"), duration=CouponDuration.REPEATING, cycles=6
    ),
    _CouponSpec(
        "SEATS25",
        "25% off seats for six bills",
        percent="25",
        duration=CouponDuration.REPEATING,
        cycles=6,
        products=("desktop-licence", "editor-seat"),
    ),
    _CouponSpec("SAVEASALE", "Save-a-sale: 30% off, for good", percent="30"),
)


@dataclass(frozen=True)
class _Region:
    country: str
    currency: str
    zones: tuple[str, ...]
    cities: tuple[str, ...]
    weight: int


REGIONS: tuple[_Region, ...] = (
    _Region("US", "USD", ("UTC",), ("New York", "Austin", "Denver"), 40),
    _Region(
        "US",
        "USD",
        ("America/New_York", "America/Chicago", "America/Los_Angeles"),
        ("Boston", "Chicago", "Seattle", "San Diego"),
        25,
    ),
    _Region("GB", "GBP", ("Europe/London",), ("London", "Leeds", "Bristol"), 8),
    _Region("FR", "EUR", ("Europe/Paris",), ("Paris", "Lyon", "Nantes"), 8),
    _Region("DE", "EUR", ("Europe/Berlin",), ("Berlin", "Hamburg", "Munich"), 7),
    _Region("JP", "USD", ("Asia/Tokyo",), ("Tokyo", "Osaka"), 4),
    _Region("AU", "USD", ("Australia/Sydney",), ("Sydney", "Melbourne"), 4),
    _Region("NZ", "USD", ("Pacific/Auckland",), ("Auckland", "Wellington"), 2),
    _Region("US", "USD", ("Pacific/Honolulu",), ("Honolulu",), 2),
)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST_NAMES = _words(
    "Ada Alan Grace Linus Margaret Dennis Barbara Ken Frances Edsger Radia Tim Hedy Claude Katherine John "
    "Sophie Karen Niklaus Donald Anita Leslie Mary Guido Yukihiro Bjarne Rasmus Larry Brian Joan Ines Omar"
)
LAST_NAMES = _words(
    "Lovelace Turing Hopper Torvalds Hamilton Ritchie Liskov Thompson Allen Dijkstra Perlman Berners-Lee "
    "Lamarr Shannon Johnson McCarthy Wilson Jones Wirth Knuth Borg Lamport Shaw Rossum Matsumoto Stroustrup "
    "Lerdorf Wall Kernighan Clarke Duarte Haddad"
)
STREETS = ("Market Street", "High Street", "Rue de Rivoli", "Hauptstrasse", "Ocean Avenue", "King Road")
CHANNELS = ("web", "web", "web", "partner", "call-centre", "import")

# (kind, token, weight): sandbox test cards (DOMAIN.md) and payments outside the gateways.
PAYMENT_MIX: tuple[tuple[PaymentKind, str | None, int], ...] = (
    (PaymentKind.CARD, "4242424242424242", 58),
    (PaymentKind.CARD, "5555555555554444", 8),
    (PaymentKind.CARD, "4000000000000002", 5),
    (PaymentKind.CARD, "4000000000009995", 1),
    (PaymentKind.EXTERNAL, None, 14),
    (PaymentKind.OFFLINE, None, 14),
)
DECLINE_CODES = {"4000000000000002": "card_declined", "4000000000009995": "insufficient_funds"}

# (gateway, mode, weight) for subscriptions paying by a card that works.
GATEWAY_MIX: tuple[tuple[str | None, GatewayMode | None, int], ...] = (
    (None, None, 86),
    ("sandbox-b", GatewayMode.PREFERRED, 6),
    ("sandbox-b", GatewayMode.FORCED, 4),
    ("sandbox", GatewayMode.FORCED, 2),
    ("sandbox", GatewayMode.PREFERRED, 2),
)


@dataclass
class SeedCatalog:
    """The seeded profiles, products and coupons as domain values (with ids)."""

    profiles: dict[str, ProfileTerms]
    products: dict[str, ProductInfo]
    coupons: dict[str, CouponInfo]


P_TABLE = t.table_of(t.Profile)
PR_TABLE = t.table_of(t.Product)
PT_TABLE = t.table_of(t.ProductTier)
C_TABLE = t.table_of(t.Coupon)


async def ensure_catalog(session: AsyncSession, now: datetime) -> SeedCatalog:
    """Create the demo profiles, products and coupons, or reuse those a previous seed created."""
    profiles: dict[str, ProfileTerms] = {}
    for spec in PROFILES:
        row = (
            await session.execute(
                select(P_TABLE)
                .where(P_TABLE.c.name == spec.terms.name, P_TABLE.c.custom.is_(False))
                .order_by(P_TABLE.c.id)
                .limit(1)
            )
        ).first()
        if row is None:
            row = (
                await session.execute(
                    P_TABLE.insert()
                    .values(**profile_values(spec.terms), created_at=now, updated_at=now)
                    .returning(P_TABLE)
                )
            ).one()
        profiles[spec.key] = profile_from_row(row)

    products: dict[str, ProductInfo] = {}
    for pspec in PRODUCTS:
        sku = f"SEED-{pspec.key.upper()}"
        pid = (await session.execute(select(PR_TABLE.c.id).where(PR_TABLE.c.sku == sku))).scalar()
        tiers = tuple(PriceTier(up_to, Money(price, pspec.tier_currency)) for up_to, price in pspec.tiers)
        if pid is None:
            pid = (
                await session.execute(
                    PR_TABLE.insert()
                    .values(name=pspec.name, sku=sku, kind=pspec.kind.value, created_at=now)
                    .returning(PR_TABLE.c.id)
                )
            ).scalar_one()
            if tiers:
                await session.execute(
                    PT_TABLE.insert(),
                    [
                        {
                            "product_id": pid,
                            "position": n,
                            "up_to": tier.up_to,
                            "unit_price_minor": tier.unit_price.minor,
                            "currency": tier.unit_price.currency,
                        }
                        for n, tier in enumerate(tiers)
                    ],
                )
        else:
            stored = await session.execute(
                select(PT_TABLE).where(PT_TABLE.c.product_id == pid).order_by(PT_TABLE.c.position)
            )
            tiers = tuple(PriceTier(r.up_to, Money(r.unit_price_minor, r.currency)) for r in stored)
        products[pspec.key] = ProductInfo(pid, pspec.name, sku, pspec.kind, tiers)

    coupons: dict[str, CouponInfo] = {}
    for cspec in COUPONS:
        row = (await session.execute(select(C_TABLE).where(C_TABLE.c.code == cspec.code))).first()
        if row is None:
            row = (
                await session.execute(
                    C_TABLE.insert()
                    .values(
                        code=cspec.code,
                        name=cspec.name,
                        percent_off=Decimal(cspec.percent) if cspec.percent else None,
                        amount_off_minor=cspec.amount[0] if cspec.amount else None,
                        currency=cspec.amount[1] if cspec.amount else None,
                        duration=cspec.duration.value,
                        duration_cycles=cspec.cycles,
                        product_ids=[products[k].id for k in cspec.products],
                        created_at=now,
                    )
                    .returning(C_TABLE)
                )
            ).one()
        coupons[cspec.code] = coupon_from_row(row)
    return SeedCatalog(profiles, products, coupons)


# -- plans: every random choice, drawn up front --------------------------------


@dataclass(frozen=True, slots=True)
class _SubPlan:
    profile: str
    currency: str
    status: SubscriptionStatus
    renewal_type: RenewalType
    items: tuple[tuple[str, int | None, int], ...]  # product key, unit price (None: from tiers), quantity
    coupons: tuple[str, ...]
    gateway: tuple[str, GatewayMode] | None
    draws: tuple[float, float, float]
    channel: str | None
    hour: int


@dataclass(frozen=True, slots=True)
class _CustomerPlan:
    first: str
    last: str
    region: _Region
    zone: str
    city: str
    street: int
    methods: tuple[tuple[PaymentKind, str | None, int, int], ...]  # kind, token, exp month, exp year
    subscriptions: tuple[_SubPlan, ...]


def _weighted(rng: random.Random, options: Sequence[Any], weights: Sequence[int]) -> Any:
    return rng.choices(options, weights)[0]


_PROFILE_KEYS = [p.key for p in PROFILES]
_PROFILE_WEIGHTS = [p.weight for p in PROFILES]
_SPECS = {p.key: p for p in PROFILES}
_PRODUCT_SPECS = {p.key: p for p in PRODUCTS}


def _status_for(rng: random.Random, spec: _ProfileSpec, kind: PaymentKind, token: str | None) -> SubscriptionStatus:
    """A plausible status for a subscription of this plan paid this way."""
    terms = spec.terms
    roll = rng.random()
    if roll >= 0.98:
        return S.FUTURE  # signed up to start later
    if token in DECLINE_CODES:
        if terms.trial_days and roll < 0.4:
            return S.TRIAL
        if roll < 0.8:
            return S.OVERDUE
        return S.SUSPENDED if terms.final_failure_action is FinalFailureAction.SUSPEND else S.CANCELLED
    if terms.trial_days:
        return S.TRIAL if roll < 0.35 else S.ACTIVE if roll < 0.9 else S.CANCELLED
    if terms.default_renewal_type is RenewalType.MANUAL or kind is PaymentKind.OFFLINE:
        return S.ACTIVE if roll < 0.75 else S.AWAITING_REINSTATE if roll < 0.93 else S.CANCELLED
    if terms.max_occurrences:
        return S.ACTIVE if roll < 0.6 else S.EXPIRED if roll < 0.95 else S.CANCELLED
    return S.ACTIVE if roll < 0.86 else S.SUSPENDED if roll < 0.9 else S.CANCELLED


def _price(rng: random.Random, spec: _ProductSpec, currency: str, factor: Decimal) -> int:
    """A list price, sometimes a grandfathered or negotiated one."""
    base = int(spec.prices[currency] * factor)
    roll = rng.random()
    if roll < 0.08:
        return base * 80 // 100
    if roll < 0.15:
        return base * 90 // 100
    return base


def _plan_subscription(rng: random.Random, kind: PaymentKind, token: str | None, region: _Region) -> _SubPlan:
    spec = _SPECS[_weighted(rng, _PROFILE_KEYS, _PROFILE_WEIGHTS)]
    currency = region.currency
    main_key = rng.choice(spec.main)
    main = _PRODUCT_SPECS[main_key]
    low, high = main.quantity
    quantity = low if low == high else min(high, max(low, int(low + (high - low) * rng.random() ** 3)))
    unit: int | None
    if main.tiers and main.tier_currency == currency and rng.random() < 0.85:
        unit = None  # priced by the product's volume tiers
    else:
        unit = _price(rng, main, currency, spec.price_factor)
    items: list[tuple[str, int | None, int]] = [(main_key, unit, quantity)]
    extra = rng.random()
    wanted = 2 if extra < 0.08 else 1 if extra < 0.40 else 0
    if spec.ships or main.kind is ProductKind.USAGE:
        wanted = min(wanted, 1)
    for add_on in rng.sample(ADD_ONS, wanted):
        if add_on == main_key:
            continue
        a = _PRODUCT_SPECS[add_on]
        lo, hi = a.quantity
        qty = lo if lo == hi else rng.randint(lo, hi)
        items.append((add_on, _price(rng, a, currency, spec.price_factor), qty))

    coupons: list[str] = []
    if rng.random() < 0.14:
        eligible = [
            c
            for c in COUPONS
            if (c.amount is None or c.amount[1] == currency)
            and (not c.products or any(k in c.products for k, _, _ in items))
        ]
        coupons.append(rng.choice(eligible).code)
        others = [c.code for c in eligible if c.code not in coupons]
        if others and rng.random() < 0.12:
            coupons.append(rng.choice(others))

    status = _status_for(rng, spec, kind, token)
    renewal_type = spec.terms.default_renewal_type
    if renewal_type is RenewalType.AUTOMATIC and status is S.ACTIVE and rng.random() < 0.03:
        renewal_type = RenewalType.MANUAL  # auto-renewal turned off (seed 002)

    gateway: tuple[str, GatewayMode] | None = None
    if kind is PaymentKind.CARD and token not in DECLINE_CODES:
        gw, mode, _ = _weighted(rng, GATEWAY_MIX, [g[2] for g in GATEWAY_MIX])
        if gw is not None and mode is not None:
            gateway = (gw, mode)
    return _SubPlan(
        profile=spec.key,
        currency=currency,
        status=status,
        renewal_type=renewal_type,
        items=tuple(items),
        coupons=tuple(coupons),
        gateway=gateway,
        draws=(rng.random(), rng.random(), rng.random()),
        channel=rng.choice(CHANNELS) if rng.random() < 0.7 else None,
        hour=rng.randint(0, 23),
    )


def _plan_customers(rng: random.Random, subscriptions: int) -> list[_CustomerPlan]:
    customers: list[_CustomerPlan] = []
    left = subscriptions
    region_weights = [r.weight for r in REGIONS]
    pay_weights = [p[2] for p in PAYMENT_MIX]
    while left > 0:
        region: _Region = _weighted(rng, REGIONS, region_weights)
        kind, token, _ = _weighted(rng, PAYMENT_MIX, pay_weights)
        methods = [(kind, token, rng.randint(1, 12), rng.randint(2027, 2031))]
        if kind is PaymentKind.CARD and rng.random() < 0.12:
            methods.append((PaymentKind.EXTERNAL, None, 0, 0))
        roll = rng.random()
        count = min(left, 1 if roll < 0.72 else 2 if roll < 0.92 else 3)
        left -= count
        customers.append(
            _CustomerPlan(
                first=rng.choice(FIRST_NAMES),
                last=rng.choice(LAST_NAMES),
                region=region,
                zone=rng.choice(region.zones),
                city=rng.choice(region.cities),
                street=rng.randint(1, 400),
                methods=tuple(methods),
                subscriptions=tuple(_plan_subscription(rng, kind, token, region) for _ in range(count)),
            )
        )
    return customers


# -- building rows from plans ----------------------------------------------------


CUSTOMER_COLUMNS = ("id", "email", "name", "time_zone", "billing_address", "created_at")
PM_COLUMNS = ("id", "customer_id", "kind", "gateway_token", "brand", "last4", "exp_month", "exp_year", "created_at")
_SUB_VALUE_KEYS = tuple(
    subscription_values(
        SubscriptionState(
            id=1,
            customer_id=1,
            currency="USD",
            status=S.ACTIVE,
            renewal_type=RenewalType.AUTOMATIC,
            profile=ProfileTerms(1, "x", Cadence(IntervalUnit.MONTH)),
            items=(),
            start_date=date(2000, 1, 1),
            anchor_date=date(2000, 1, 1),
            next_renewal_date=None,
        )
    )
)
SUBSCRIPTION_COLUMNS = ("id", *_SUB_VALUE_KEYS, "version", "created_at", "updated_at")
_JSON_SUB_COLUMNS = frozenset({"shipping_address", "metadata"})
ITEM_COLUMNS = ("id", *repositories.ITEM_COLUMNS, "created_at")
COUPON_COLUMNS = ("subscription_id", "coupon_id", "cycles_used", "applied_at")
RENEWAL_COLUMNS = (
    "subscription_id",
    "cycle",
    "kind",
    "adjustment",
    "status",
    "period_start",
    "period_end",
    "amount_minor",
    "currency",
    "refunded_minor",
    "attempts",
    "next_retry_date",
    "fulfillment",
    "gateway_id",
    "payment_method_id",
    "payment_kind",
    "idempotency_key",
    "created_at",
    "updated_at",
    "paid_at",
)
HISTORY_COLUMNS = ("subscription_id", "occurred_at", "actor", "action", "reason", "bulk_run_id", "changes")


@dataclass
class _Ids:
    customers: list[int]
    payment_methods: list[int]
    subscriptions: list[int]
    items: list[int]


@dataclass
class _Rows:
    customers: list[tuple[Any, ...]] = field(default_factory=list)
    payment_methods: list[tuple[Any, ...]] = field(default_factory=list)
    defaults: tuple[list[int], list[int]] = field(default_factory=lambda: ([], []))
    subscriptions: list[tuple[Any, ...]] = field(default_factory=list)
    items: list[tuple[Any, ...]] = field(default_factory=list)
    coupons: list[tuple[Any, ...]] = field(default_factory=list)
    renewals: list[tuple[Any, ...]] = field(default_factory=list)
    history: list[tuple[Any, ...]] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class _World:
    catalog: SeedCatalog
    now: datetime
    seed: int
    default_gateway: str
    gateways: frozenset[str]
    _today: dict[str, date] = field(default_factory=dict)

    def today(self, zone: str) -> date:
        """The customer's local date: what "today" means for a subscription in ``zone``."""
        if zone not in self._today:
            self._today[zone] = local_today(self.now, zone)
        return self._today[zone]


def _at(day: date, hour: int, now: datetime) -> datetime:
    """An instant on ``day`` (UTC), never after ``now``."""
    instant = datetime.combine(day, time(hour, (hour * 7) % 60), tzinfo=UTC)
    return min(instant, now - timedelta(minutes=1))


def _route(world: _World, state: SubscriptionState) -> str:
    """The gateway a working card is charged through (GatewayRegistry.route, first choice)."""
    if state.gateway_id in world.gateways and state.gateway_mode is not None:
        return state.gateway_id
    return world.default_gateway


@dataclass
class _Billed:
    """A billed (or attempted) period, before it becomes a renewal row."""

    cycle: int
    kind: RenewalKind
    start: date
    end: date
    amount: Money
    status: RenewalStatus
    attempts: int = 1
    next_retry: date | None = None


# The seed asks for a state's next bill many times (each renewal, the row, each history
# snapshot). The bill depends only on the currency, the items' prices and quantities and
# the active coupons, and seeded subscriptions share a few thousand of those, so each
# distinct one is priced once by the domain and remembered for the run.
_AMOUNTS: dict[tuple[Any, ...], Money] = {}


def _amount(state: SubscriptionState, coupons: tuple[AppliedCoupon, ...]) -> Money:
    key = (
        state.currency,
        tuple(
            (i.product.id, i.unit_price.minor, i.quantity, i.price_from_tiers, i.auto_renew, i.pending_unit_price)
            for i in state.items
        ),
        tuple(c.coupon.id for c in coupons if c.active),
    )
    found = _AMOUNTS.get(key)
    if found is None:
        priced = state if coupons is state.coupons else state.evolve(coupons=coupons)
        found = _AMOUNTS[key] = priced.next_bill().total
    return found


class _SeedState(SubscriptionState):
    """A ``SubscriptionState`` whose ``amount`` is memoized (see ``_amount``)."""

    __slots__ = ()

    @property
    def amount(self) -> Money:
        return _amount(self, self.coupons)


def _bill(
    state: SubscriptionState, periods: Sequence[tuple[date, date, RenewalKind]], first_cycle: int = 1
) -> tuple[SubscriptionState, list[_Billed]]:
    """Bill ``periods`` in order as paid renewals: what ``lifecycle.paid`` does after each charge.

    The amount of each renewal is the state's next bill at that moment; each
    paid renewal counts an occurrence and uses up a cycle of every coupon
    still active (a ONCE coupon discounts the first bill only).
    """
    billed: list[_Billed] = []
    coupons = state.coupons
    cycle = first_cycle
    for start, end, kind in periods:
        billed.append(_Billed(cycle, kind, start, end, _amount(state, coupons), RenewalStatus.PAID))
        cycle += 1
        if coupons:
            coupons = tuple(replace(c, cycles_used=c.cycles_used + 1) if c.active else c for c in coupons)
    last_start, last_end, _ = periods[-1]
    after = state.evolve(
        coupons=coupons,
        occurrences_billed=state.occurrences_billed + len(billed),
        last_cycle=cycle - 1,
        current_period_start=last_start,
        current_period_end=last_end,
        next_renewal_date=last_end,
    )
    return after, billed


def _periods(
    state: SubscriptionState, first: date, first_kind: RenewalKind, cutoff: date, limit: int | None
) -> list[tuple[date, date, RenewalKind]]:
    """The periods of ``state``'s schedule from ``first`` whose start is before ``cutoff`` (the first always)."""
    anchor, cadence, policy = state.anchor_date, state.cadence, state.profile.anchor_policy
    periods = [(first, following(anchor, cadence, policy, first), first_kind)]
    while periods[-1][1] < cutoff and (limit is None or len(periods) < limit):
        start = periods[-1][1]
        periods.append((start, following(anchor, cadence, policy, start), RenewalKind.SCHEDULED))
    return periods


@dataclass
class _Event:
    action: str
    day: date
    before: SubscriptionState
    after: SubscriptionState


def _simulate(
    plan: _SubPlan, base: SubscriptionState, today: date, rng_draws: tuple[float, float, float]
) -> tuple[SubscriptionState, SubscriptionState, list[_Billed], list[_Event]]:
    """Start ``base`` on a date chosen for ``plan.status`` and play its life until today.

    Returns the state as created, the state today, the renewals and the
    status changes to record in the history.
    """
    u1, u2, u3 = rng_draws
    profile = base.profile
    cadence = profile.cadence
    spec = _SPECS[plan.profile]
    trial = profile.trial_days
    retry = profile.retry_schedule_days or (5,)
    status = plan.status
    max_occ = profile.max_occurrences
    manual_like = base.renewal_type is RenewalType.MANUAL or (
        base.payment_method is not None and base.payment_method.kind is PaymentKind.OFFLINE
    )
    events: list[_Event] = []

    if status is S.FUTURE:
        # Starts within two months: nothing billed yet; the worker starts it on its start date.
        created = _created_future(base, today + timedelta(days=1 + int(u1 * 60)), today)
        return created, created, [], events

    def created_on(start: date, *, with_trial: bool) -> SubscriptionState:
        """As ``creation.start_subscription`` leaves it (last_cycle 1 when the first period is billed now)."""
        if with_trial:
            end = start + timedelta(days=trial)
            return base.evolve(
                status=S.TRIAL,
                start_date=start,
                anchor_date=end,
                trial_end_date=end,
                next_renewal_date=end,
                current_period_start=start,
                current_period_end=end,
            )
        first_end = following(start, cadence, profile.anchor_policy, start)
        return base.evolve(
            start_date=start,
            anchor_date=start,
            next_renewal_date=first_end,
            current_period_start=start,
            current_period_end=first_end,
            last_cycle=1,  # the first period is billed at once
        )

    def initial_and_after(
        created: SubscriptionState, cutoff: date, limit: int | None
    ) -> tuple[SubscriptionState, list[_Billed]]:
        periods = _periods(created, created.start_date, RenewalKind.INITIAL, cutoff, limit)
        return _bill(created, periods)

    if status is S.TRIAL:
        start = today - timedelta(days=int(u1 * (trial + 1)))
        created = created_on(start, with_trial=True)
        return created, created, [], events

    if status is S.OVERDUE or (
        status in (S.SUSPENDED, S.CANCELLED)
        and base.payment_method is not None
        and base.payment_method.gateway_token in DECLINE_CODES
    ):
        # The first charge was declined (seed 003, 004): retried on the profile's schedule.
        if status is S.OVERDUE:
            attempts = 1 if u2 < 0.6 or len(retry) < 2 else 2
            waited = sum(retry[: attempts - 1])
            start = today - timedelta(days=waited + int(u1 * retry[attempts - 1]))
            next_retry: date | None = start + timedelta(days=waited + retry[attempts - 1])
        else:
            attempts = 1 + len(retry)
            start = today - timedelta(days=sum(retry) + 1 + int(u1 * 90))
            next_retry = None
        created = created_on(start, with_trial=False)
        assert created.current_period_end is not None
        failed = _Billed(
            1,
            RenewalKind.INITIAL,
            start,
            created.current_period_end,
            created.amount,
            RenewalStatus.FAILED,
            attempts,
            next_retry,
        )
        overdue = created.evolve(status=S.OVERDUE, overdue_count=1, next_retry_date=start + timedelta(days=retry[0]))
        events.append(_Event("initial_charge_failed", start, created, overdue))
        if status is S.OVERDUE:
            final = overdue.evolve(next_retry_date=next_retry)
            return created, final, [failed], events
        gave_up = start + timedelta(days=sum(retry))
        if status is S.SUSPENDED:
            final = overdue.evolve(status=S.SUSPENDED, next_retry_date=None)
            events.append(_Event("suspended", gave_up, overdue, final))
        else:
            final = overdue.evolve(
                status=S.CANCELLED,
                next_renewal_date=None,
                next_retry_date=None,
                cancelled_at=_at(gave_up, 6, datetime.combine(today, time(23), tzinfo=UTC)),
            )
            events.append(_Event("cancelled", gave_up, overdue, final))
        return created, final, [failed], events

    if status is S.AWAITING_REINSTATE:
        # A manual or invoiced subscription whose first period ended unpaid (seed 002).
        start = today - timedelta(days=cadence.max_days + 1 + int(u1 * 45))
        created = created_on(start, with_trial=False)
        after, billed = initial_and_after(created, start, 1)
        assert after.next_renewal_date is not None
        final = after.evolve(status=S.AWAITING_REINSTATE)
        events.append(_Event("period_ended_unpaid", after.next_renewal_date, after, final))
        return created, final, billed, events

    if status is S.EXPIRED:
        assert max_occ is not None
        start = today - timedelta(days=max_occ * cadence.max_days + 1 + int(u1 * 120))
        created = created_on(start, with_trial=False)
        after, billed = initial_and_after(created, today, max_occ)
        assert after.next_renewal_date is not None and after.next_renewal_date <= today
        final = after.evolve(status=S.EXPIRED, next_renewal_date=None)
        events.append(_Event("expired", after.next_renewal_date, after, final))
        return created, final, billed, events

    # ACTIVE, SUSPENDED and CANCELLED: a running subscription, renewed on schedule until today
    # (or until it was cancelled).
    cutoff = today
    if status is S.CANCELLED:
        cutoff = today - timedelta(days=1 + int(u2 * 150))
    horizon = spec.horizon_days
    limit = None
    if manual_like:
        horizon, limit = cadence.min_days - 1, 1  # renewed by hand: still in its first period
    elif max_occ is not None:
        horizon, limit = min(horizon, (max_occ - 1) * cadence.min_days - 1), max_occ - 1
    age = int(u1**2 * horizon)

    # The engine never charges a manual or invoiced subscription, so one of those that is running
    # paid its first period up front: it was created without a trial.
    if trial and not manual_like:
        if status is S.CANCELLED and u3 < 0.5:
            # Cancelled during the trial: nothing was ever billed.
            start = cutoff - timedelta(days=int(u1 * trial))
            created = created_on(start, with_trial=True)
            final = created.evolve(
                status=S.CANCELLED, next_renewal_date=None, cancelled_at=_at(cutoff, plan.hour, _end_of(today))
            )
            events.append(_Event("cancelled", cutoff, created, final))
            return created, final, [], events
        start = cutoff - timedelta(days=trial + 1 + age)
        created = created_on(start, with_trial=True)
        assert created.trial_end_date is not None
        periods = _periods(created, created.trial_end_date, RenewalKind.SCHEDULED, cutoff, limit)
        after, billed = _bill(created, periods)
        after = after.evolve(status=S.ACTIVE)  # TRIAL -> ACTIVE on the first payment
    else:
        start = cutoff - timedelta(days=age)
        created = created_on(start, with_trial=False)
        after, billed = initial_and_after(created, cutoff, limit)

    if status is S.ACTIVE:
        return created, after, billed, events
    if status is S.SUSPENDED:
        assert after.current_period_start is not None
        span = max((today - after.current_period_start).days, 0)
        day = today - timedelta(days=int(u2 * (span + 1)))
        final = after.evolve(status=S.SUSPENDED)
        events.append(_Event("suspended", day, after, final))
        return created, final, billed, events
    final = after.evolve(
        status=S.CANCELLED,
        next_renewal_date=None,
        next_retry_date=None,
        cancelled_at=_at(cutoff, plan.hour, _end_of(today)),
    )
    events.append(_Event("cancelled", cutoff, after, final))
    return created, final, billed, events


def _created_future(base: SubscriptionState, start: date, today: date) -> SubscriptionState:
    """``base`` as ``creation.start_subscription`` leaves a subscription whose start date is after today."""
    ruled = start_subscription(
        OpContext(now=datetime.combine(today, time(12), tzinfo=UTC), today=today),
        customer_id=base.customer_id,
        profile=base.profile,
        items=[NewItem(i.product, None if i.price_from_tiers else i.unit_price, i.quantity) for i in base.items],
        start_date=start,
        payment_method=base.payment_method,
        renewal_type=base.renewal_type,
        time_zone=base.time_zone,
        currency=base.currency,
    ).state
    assert ruled.status is S.FUTURE and ruled.last_cycle == 0
    return base.evolve(
        status=ruled.status,
        start_date=ruled.start_date,
        anchor_date=ruled.anchor_date,
        trial_end_date=ruled.trial_end_date,
        next_renewal_date=ruled.next_renewal_date,
        current_period_start=ruled.current_period_start,
        current_period_end=ruled.current_period_end,
    )


def _end_of(day: date) -> datetime:
    return datetime.combine(day, time(23, 59), tzinfo=UTC)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def build_rows(world: _World, customers: Sequence[_CustomerPlan], ids: _Ids) -> _Rows:
    """Turn plans into rows, with the ids already allocated from the tables' sequences."""
    rows = _Rows()
    now = world.now
    c_ids, pm_ids, s_ids, i_ids = (
        iter(ids.customers),
        iter(ids.payment_methods),
        iter(ids.subscriptions),
        iter(ids.items),
    )
    defaults_c, defaults_pm = rows.defaults
    for cplan in customers:
        cid = next(c_ids)
        today = world.today(cplan.zone)
        region = cplan.region
        address = {
            "line1": f"{cplan.street} {STREETS[cplan.street % len(STREETS)]}",
            "city": cplan.city,
            "postalCode": f"{10000 + (cid * 7919) % 89999}",
            "country": region.country,
        }
        first_plan = cplan.subscriptions[0]
        first_age = int(first_plan.draws[0] ** 2 * _SPECS[first_plan.profile].horizon_days) + 200
        customer_created = _at(today - timedelta(days=first_age), first_plan.hour, now)
        rows.customers.append(
            (
                cid,
                f"{cplan.first}.{cplan.last}.{cid}@example.com".lower(),
                f"{cplan.first} {cplan.last}",
                cplan.zone,
                _json(address),
                customer_created,
            )
        )
        methods: list[PaymentMethodInfo] = []
        for kind, token, exp_month, exp_year in cplan.methods:
            pm_id = next(pm_ids)
            card = kind is PaymentKind.CARD and token is not None
            rows.payment_methods.append(
                (
                    pm_id,
                    cid,
                    kind.value,
                    token,
                    ("visa" if token.startswith("4") else "mastercard") if card and token else None,
                    token[-4:] if card and token else None,
                    exp_month if card else None,
                    exp_year if card else None,
                    customer_created,
                )
            )
            methods.append(PaymentMethodInfo(pm_id, cid, kind, token))
        defaults_c.append(cid)
        defaults_pm.append(methods[0].id)
        for splan in cplan.subscriptions:
            _build_subscription(world, rows, splan, next(s_ids), i_ids, cid, methods[0], cplan.zone, address, today)
    return rows


def _build_subscription(
    world: _World,
    rows: _Rows,
    plan: _SubPlan,
    sid: int,
    item_ids: Any,
    customer_id: int,
    pm: PaymentMethodInfo,
    zone: str,
    address: dict[str, Any],
    today: date,
) -> None:
    catalog, now = world.catalog, world.now
    profile = catalog.profiles[plan.profile]
    spec = _SPECS[plan.profile]
    currency = plan.currency  # tiers are only used when they are in this currency
    items: list[Item] = []
    for key, unit, quantity in plan.items:
        product = catalog.products[key]
        if unit is None:
            price = tier_unit_price(product.tiers, quantity)
            items.append(Item(next(item_ids), product, price, quantity, price_from_tiers=True))
        else:
            items.append(Item(next(item_ids), product, Money(unit, currency), quantity))
    coupons = tuple(AppliedCoupon(None, catalog.coupons[code]) for code in plan.coupons)
    metadata = {"channel": plan.channel} if plan.channel else None
    base = _SeedState(
        id=sid,
        customer_id=customer_id,
        currency=currency,
        status=S.ACTIVE,
        renewal_type=plan.renewal_type,
        profile=profile,
        items=tuple(items),
        coupons=coupons,
        start_date=today,
        anchor_date=today,
        next_renewal_date=None,
        payment_method=pm,
        gateway_id=plan.gateway[0] if plan.gateway else None,
        gateway_mode=plan.gateway[1] if plan.gateway else None,
        shipping_address=address if spec.ships else None,
        metadata=metadata,
        time_zone=zone,
    )
    created, final, billed, events = _simulate(plan, base, today, plan.draws)

    card = pm.kind is PaymentKind.CARD
    gateway = _route(world, created) if card else None
    paid = [b for b in billed if b.status is RenewalStatus.PAID]
    if card and paid:
        final = final.evolve(last_gateway_id=gateway)
    created_at = _at(created.start_date, plan.hour, now)
    updated_at = created_at
    for b in billed:
        when = created_at if b.kind is RenewalKind.INITIAL else _at(b.start, 3, now)
        updated_at = max(updated_at, when)
        shipped = spec.ships and (b is not billed[-1] or (today - b.start).days > 3)
        fulfillment = (
            (FulfillmentStatus.SHIPPED if shipped else FulfillmentStatus.PENDING)
            if spec.ships and b.status is RenewalStatus.PAID
            else FulfillmentStatus.NONE
        )
        rows.renewals.append(
            (
                sid,
                b.cycle,
                b.kind.value,
                False,
                b.status.value,
                b.start,
                b.end,
                b.amount.minor,
                b.amount.currency,
                0,
                b.attempts if card else (0 if b.status is RenewalStatus.PAID else 1),
                b.next_retry,
                fulfillment.value,
                gateway if b.status is RenewalStatus.PAID else None,  # the gateway that took the money
                pm.id,
                pm.kind.value,
                f"rnw_{sid}_{b.cycle}_seed{world.seed}",
                when,
                when,
                when if b.status is RenewalStatus.PAID else None,
            )
        )
    history = [(sid, created_at, ACTOR, "created", REASON, None, _json(diff(None, created)))]
    for event in events:
        when = max(_at(event.day, 4, now), created_at)
        updated_at = max(updated_at, when)
        history.append((sid, when, ACTOR, event.action, REASON, None, _json(diff(event.before, event.after))))
    rows.history.extend(history)

    # One save per change, as the service counts versions: the first charge, each renewal, each event.
    version = 1 + len(paid) + len(events)
    values = subscription_values(final)
    rows.subscriptions.append(
        (
            sid,
            *(_json(values[k]) if k in _JSON_SUB_COLUMNS else values[k] for k in _SUB_VALUE_KEYS),
            version,
            created_at,
            updated_at,
        )
    )
    for position, item in enumerate(final.items):
        rows.items.append((item.id, *item_row(sid, position, item), created_at))
    for applied in final.coupons:
        rows.coupons.append((sid, applied.coupon.id, applied.cycles_used, created_at))
    rows.statuses[final.status.value] += 1


# -- writing -----------------------------------------------------------------


@dataclass
class SeedReport:
    """What a seed run wrote, for the summary table and the benchmarks."""

    subscriptions: int = 0
    customers: int = 0
    payment_methods: int = 0
    items: int = 0
    applied_coupons: int = 0
    renewals: int = 0
    transactions: int = 0
    history_entries: int = 0
    invoices: int = 0
    profiles: int = 0
    products: int = 0
    coupons: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    subscription_ids: tuple[int, int] | None = None  # lowest and highest id written

    def add(self, rows: _Rows, transactions: int) -> None:
        self.subscriptions += len(rows.subscriptions)
        self.customers += len(rows.customers)
        self.payment_methods += len(rows.payment_methods)
        self.items += len(rows.items)
        self.applied_coupons += len(rows.coupons)
        self.renewals += len(rows.renewals)
        self.transactions += transactions
        self.history_entries += len(rows.history)
        self.statuses.update(rows.statuses)
        if rows.subscriptions:
            ids = [r[0] for r in rows.subscriptions]
            low, high = min(ids), max(ids)
            if self.subscription_ids is not None:
                low, high = min(low, self.subscription_ids[0]), max(high, self.subscription_ids[1])
            self.subscription_ids = (low, high)

    @property
    def rate(self) -> float:
        return self.subscriptions / self.seconds if self.seconds else 0.0


async def _allocate(session: AsyncSession, counts: dict[str, int]) -> dict[str, list[int]]:
    """Ids from each table's own sequence, so concurrent writers never collide with the seed."""
    parts = ", ".join(
        f"ARRAY(SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, :{table}))"
        for table in counts
    )
    row = (await session.execute(text(f"SELECT {parts}"), counts)).one()
    return {table: list(values) for table, values in zip(counts, row, strict=True)}


TRANSACTIONS_SQL = """
INSERT INTO transactions (renewal_id, subscription_id, kind, gateway_id, amount_minor, currency,
                          status, decline_code, gateway_reference, created_at)
SELECT r.id, r.subscription_id, 'CHARGE',
       CASE WHEN r.payment_kind = 'CARD' THEN coalesce(r.gateway_id, :default_gateway) END,
       r.amount_minor, r.currency,
       CASE WHEN r.status = 'FAILED' THEN 'FAILED' ELSE 'SUCCEEDED' END,
       CASE WHEN r.status = 'FAILED' THEN
            CASE pm.gateway_token WHEN '4000000000009995' THEN 'insufficient_funds' ELSE 'card_declined' END
       END,
       CASE WHEN r.payment_kind = 'CARD' THEN 'sb_ch_' || left(md5(r.idempotency_key || ':' || a.n), 16) END,
       CASE WHEN a.n = 1 THEN r.created_at ELSE least(:now, r.created_at + make_interval(days => (
           -- a retry happens on the profile's schedule (default: 5 days, then 5 more)
           SELECT sum(d)::int FROM subscriptions s
           JOIN subscription_profiles p ON p.id = s.profile_id
           CROSS JOIN unnest(p.retry_schedule_days[1:a.n - 1]) AS d
           WHERE s.id = r.subscription_id)))
       END
FROM renewals r
JOIN payment_methods pm ON pm.id = r.payment_method_id
CROSS JOIN LATERAL generate_series(1, greatest(r.attempts, 1)) AS a(n)
WHERE r.subscription_id = ANY(:ids)
"""

DEFAULTS_SQL = """
UPDATE customers SET default_payment_method_id = u.pm
FROM unnest(CAST(:customers AS bigint[]), CAST(:methods AS bigint[])) AS u(cid, pm)
WHERE customers.id = u.cid
"""


async def _write(session: AsyncSession, rows: _Rows, world: _World) -> int:
    """COPY one batch's rows, in dependency order, inside the session's transaction."""
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection

    async def copy(table: str, columns: Sequence[str], records: list[tuple[Any, ...]]) -> None:
        if records:
            await driver.copy_records_to_table(table, records=records, columns=list(columns))

    # The subscriptions arrive in their final state: their revenue movements come from their history, below.
    await session.execute(text(SKIP_MOVEMENTS))
    await copy("customers", CUSTOMER_COLUMNS, rows.customers)
    await copy("payment_methods", PM_COLUMNS, rows.payment_methods)
    await session.execute(text(DEFAULTS_SQL), {"customers": rows.defaults[0], "methods": rows.defaults[1]})
    await copy("subscriptions", SUBSCRIPTION_COLUMNS, rows.subscriptions)
    await copy("subscription_items", ITEM_COLUMNS, rows.items)
    await copy("applied_coupons", COUPON_COLUMNS, rows.coupons)
    await copy("renewals", RENEWAL_COLUMNS, rows.renewals)
    ids = [r[0] for r in rows.subscriptions]
    result = await session.execute(
        text(TRANSACTIONS_SQL), {"ids": ids, "default_gateway": world.default_gateway, "now": world.now}
    )
    await copy("history_entries", HISTORY_COLUMNS, rows.history)
    await backfill_movements(session, ids)
    return int(result.rowcount)  # type: ignore[attr-defined]


async def seed(
    services: Services,
    n: int,
    *,
    seed: int = 1,
    progress: Progress | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> SeedReport:
    """Write ``n`` subscriptions (with their customers, payment methods and renewals).

    The catalog (profiles, products, coupons) is created once and reused by
    later runs. Each batch of ``batch_size`` subscriptions is one transaction.
    """
    if n < 0:
        raise ValueError("the number of subscriptions must be zero or more")
    started = _time.perf_counter()
    rng = random.Random(seed)
    now = services.clock.now()
    report = SeedReport()
    async with services.sessions() as session, session.begin():
        catalog = await ensure_catalog(session, now)
    report.profiles, report.products, report.coupons = (
        len(catalog.profiles),
        len(catalog.products),
        len(catalog.coupons),
    )
    world = _World(
        catalog,
        now,
        seed,
        services.gateways.default,
        frozenset(services.gateways.names),
    )
    sizes = [min(batch_size, n - done) for done in range(0, n, batch_size)]
    _AMOUNTS.clear()

    async def prepare(size: int) -> tuple[list[_CustomerPlan], _Ids]:
        """Draw a batch's plans (in order, so the run is deterministic) and reserve its ids."""
        plans = _plan_customers(rng, size)
        subs = [s for c in plans for s in c.subscriptions]
        counts = {
            "customers": len(plans),
            "payment_methods": sum(len(c.methods) for c in plans),
            "subscriptions": len(subs),
            "subscription_items": sum(len(s.items) for s in subs),
        }
        async with services.sessions() as session:
            allocated = await _allocate(session, counts)
        ids = _Ids(
            allocated["customers"],
            allocated["payment_methods"],
            allocated["subscriptions"],
            allocated["subscription_items"],
        )
        return plans, ids

    def start_building(plans: list[_CustomerPlan], ids: _Ids) -> asyncio.Task[_Rows]:
        # Building rows is pure Python; COPY mostly waits on PostgreSQL. Building the next
        # batch in a thread while this one is written keeps both of the machine's cores busy.
        return asyncio.ensure_future(asyncio.to_thread(build_rows, world, plans, ids))

    building: asyncio.Task[_Rows] | None = None
    try:
        if sizes:
            building = start_building(*await prepare(sizes[0]))
        for index, size in enumerate(sizes):
            assert building is not None
            rows = await building
            building = None
            if index + 1 < len(sizes):
                building = start_building(*await prepare(sizes[index + 1]))
            async with services.sessions() as session, session.begin():
                transactions = await _write(session, rows, world)
            report.add(rows, transactions)
            if progress is not None:
                progress(size)
    finally:
        if building is not None:
            # A thread cannot be cancelled: let it finish before the caller moves on.
            await asyncio.gather(building, return_exceptions=True)
        _AMOUNTS.clear()
    # Every seeded charge is documented, as the migration documents charges from before invoicing.
    async with services.engine.begin() as conn:
        report.invoices = await backfill_invoices(conn, services.settings)
        await forget_days(conn)  # the past changed: revenue metrics sum it again
    report.seconds = _time.perf_counter() - started
    return report


# -- the command -----------------------------------------------------------------

# Everything but API keys: a reset must not lock the operator out.
RESET_TABLES = tuple(name for name in t.TABLES if name != "api_keys")


async def reset_data(services: Services) -> None:
    names = ", ".join(f'"{name}"' for name in RESET_TABLES)
    async with services.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


def _summary(report: SeedReport) -> Any:
    from rich.table import Table

    table = Table(title=f"rebill seed: {report.subscriptions:,} subscriptions in {report.seconds:.1f} s")
    table.add_column("rows", style="bold")
    table.add_column("count", justify="right")
    for label, count in (
        ("subscriptions", report.subscriptions),
        ("customers", report.customers),
        ("payment methods", report.payment_methods),
        ("subscription items", report.items),
        ("coupons applied", report.applied_coupons),
        ("renewals", report.renewals),
        ("transactions", report.transactions),
        ("history entries", report.history_entries),
        ("invoices", report.invoices),
        ("profiles / products / coupons", None),
    ):
        if count is None:
            table.add_row(label, f"{report.profiles} / {report.products} / {report.coupons}")
        else:
            table.add_row(label, f"{count:,}")
    table.add_section()
    for status in SubscriptionStatus:
        count = report.statuses.get(status.value, 0)
        share = count / report.subscriptions if report.subscriptions else 0.0
        table.add_row(status.value, f"{count:,} ({share:.1%})")
    table.add_section()
    table.add_row("subscriptions per second", f"{report.rate:,.0f}")
    return table


#: ``rebill seed``, added to the top level of ``rebill`` by ``rebill.cli``.
seed_app = typer.Typer()


@seed_app.command("seed")
def seed_command(
    subscriptions: Annotated[
        int, typer.Option("--subscriptions", "-n", min=0, help="How many subscriptions to create.")
    ] = 1000,
    seed_value: Annotated[
        int,
        typer.Option(
            "--seed", help="Seed of the random generator: the same seed on an empty database gives the same data."
        ),
    ] = 1,
    reset: Annotated[
        bool, typer.Option("--reset", help="Delete all data first (TRUNCATE every table but the API keys).")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation before --reset.")] = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=100, help="Subscriptions written per transaction.")
    ] = DEFAULT_BATCH,
) -> None:
    """Fill the database with realistic demo data: plans, products, coupons, customers, subscriptions.

    Each subscription gets 1 to 3 items, its renewals and history; dates follow its plan's cadence.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    settings = settings_or_exit()
    if reset and not yes:
        where = "DATABASE_URL" if settings.database_url else f"the embedded database in {settings.data_dir}"
        if not typer.confirm(
            f"--reset deletes every subscription, customer, renewal and plan in {where} (API keys are kept). Continue?"
        ):
            fail("nothing was deleted")

    async def main() -> SeedReport:
        async with open_services(settings) as services:
            if reset:
                await reset_data(services)
                console.print("deleted all data (API keys kept)")
            with Progress(
                TextColumn("[bold]seeding[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("subscriptions"),
                TimeElapsedColumn(),
                console=console,
                transient=False,
            ) as bar:
                task = bar.add_task("seed", total=subscriptions)
                return await seed(
                    services,
                    subscriptions,
                    seed=seed_value,
                    batch_size=batch_size,
                    progress=lambda advance: bar.update(task, advance=advance),
                )

    report = run(main)
    out.print(_summary(report))
