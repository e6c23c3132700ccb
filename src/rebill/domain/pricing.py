"""What a subscription bills for one period: lines, volume tiers and coupons.

One function, :func:`bill`, turns lines and discounts into amounts, so the
renewal engine, the previews of a bulk run and the API's "next bill" all
agree to the cent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from types import MappingProxyType

from rebill.domain.errors import MoneyError, ValidationError
from rebill.domain.money import Money, Rounding, sum_money


@dataclass(frozen=True, slots=True)
class PriceTier:
    """Quantities up to ``up_to`` (inclusive) cost ``unit_price`` each; None has no bound."""

    up_to: int | None
    unit_price: Money

    def __post_init__(self) -> None:
        if self.up_to is not None and (
            isinstance(self.up_to, bool) or not isinstance(self.up_to, int) or self.up_to < 0
        ):
            raise ValidationError(
                f"a tier's upper bound must be a non-negative integer or None, not {self.up_to!r}",
                code="INVALID_TIERS",
            )
        if not isinstance(self.unit_price, Money):
            raise ValidationError("a tier's unit price must be Money", code="INVALID_TIERS")


def validate_tiers(tiers: Sequence[PriceTier]) -> None:
    """Refuse a tier table that leaves a quantity without a price or gives it two.

    An empty table is valid: the product simply has no volume pricing.
    """
    if not tiers:
        return
    currency = tiers[0].unit_price.currency
    previous: int | None = None
    for index, tier in enumerate(tiers):
        last = index == len(tiers) - 1
        if tier.unit_price.currency != currency:
            raise ValidationError(
                f"all tiers must be priced in {currency}, tier {index + 1} is in {tier.unit_price.currency}",
                code="INVALID_TIERS",
            )
        if tier.unit_price.is_negative:
            raise ValidationError(
                f"tier {index + 1} has a negative unit price ({tier.unit_price})",
                code="INVALID_TIERS",
            )
        if tier.up_to is None:
            if not last:
                raise ValidationError("only the last tier may be unbounded (up_to None)", code="INVALID_TIERS")
            continue
        if last:
            raise ValidationError(
                "the last tier must be unbounded (up_to None) so every quantity has a price",
                code="INVALID_TIERS",
            )
        if previous is not None and tier.up_to <= previous:
            raise ValidationError(
                f"tier bounds must increase strictly: {tier.up_to} follows {previous}",
                code="INVALID_TIERS",
            )
        previous = tier.up_to


def _check_quantity(quantity: int) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
        raise ValidationError(
            f"quantity must be a non-negative integer, not {quantity!r}",
            code="INVALID_QUANTITY",
        )


def tier_unit_price(tiers: Sequence[PriceTier], quantity: int) -> Money:
    """Volume pricing: the tier the whole quantity falls into prices every unit.

    (Seed 002: 800 licences are all billed at the 500-999 price.)
    """
    _check_quantity(quantity)
    validate_tiers(tiers)
    for tier in tiers:
        if tier.up_to is None or quantity <= tier.up_to:
            return tier.unit_price
    raise ValidationError("no price tiers to price the quantity with", code="INVALID_TIERS")


@dataclass(frozen=True, slots=True)
class Line:
    """One billed item: a product at a unit price (or tier table) times a quantity."""

    key: str
    product_id: int | None
    unit_price: Money
    quantity: int
    tiers: tuple[PriceTier, ...] = ()

    def __post_init__(self) -> None:
        _check_quantity(self.quantity)
        if not isinstance(self.unit_price, Money):
            raise ValidationError("a line's unit price must be Money", code="INVALID_PRICE")
        if self.unit_price.is_negative:
            raise ValidationError(
                f"a unit price cannot be negative ({self.unit_price}); use a coupon",
                code="INVALID_PRICE",
            )
        if not isinstance(self.tiers, tuple):
            object.__setattr__(self, "tiers", tuple(self.tiers))
        validate_tiers(self.tiers)
        if self.tiers and self.tiers[0].unit_price.currency != self.unit_price.currency:
            raise MoneyError(
                f"line {self.key!r} is priced in {self.unit_price.currency} but its tiers"
                f" in {self.tiers[0].unit_price.currency}",
                code="CURRENCY_MISMATCH",
            )

    @property
    def currency(self) -> str:
        return self.unit_price.currency

    @property
    def effective_unit_price(self) -> Money:
        return tier_unit_price(self.tiers, self.quantity) if self.tiers else self.unit_price

    @property
    def total(self) -> Money:
        return self.effective_unit_price * self.quantity


class CouponDuration(StrEnum):
    ONCE = "ONCE"
    FOREVER = "FOREVER"
    REPEATING = "REPEATING"


@dataclass(frozen=True, slots=True)
class Discount:
    """A coupon as applied to one bill: a percentage or a fixed amount, not both.

    Empty ``product_ids`` discounts the whole subscription; otherwise only the
    lines of those products.
    """

    key: str
    percent: Decimal | None = None
    amount: Money | None = None
    product_ids: frozenset[int] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if (self.percent is None) == (self.amount is None):
            raise ValidationError(
                f"coupon {self.key!r} needs exactly one of a percentage or an amount",
                code="INVALID_COUPON",
            )
        if self.percent is not None and (
            not isinstance(self.percent, Decimal)
            or not self.percent.is_finite()
            or not Decimal(0) < self.percent <= Decimal(100)
        ):
            raise ValidationError(
                f"coupon {self.key!r}: a percentage is a Decimal above 0 and at most 100, not {self.percent!r}",
                code="INVALID_COUPON",
            )
        if self.amount is not None and (not isinstance(self.amount, Money) or not self.amount.is_positive):
            raise ValidationError(
                f"coupon {self.key!r}: a fixed discount is a positive amount, not {self.amount}",
                code="INVALID_COUPON",
            )
        if not isinstance(self.product_ids, frozenset):
            object.__setattr__(self, "product_ids", frozenset(self.product_ids))

    def applies_to(self, line: Line) -> bool:
        return not self.product_ids or line.product_id in self.product_ids


def coupon_active(duration: CouponDuration, cycles: int | None, cycles_used: int) -> bool:
    """Whether a coupon still discounts the next bill, after ``cycles_used`` bills."""
    if cycles_used < 0:
        raise ValueError(f"cycles_used must be >= 0, not {cycles_used}")
    if duration is CouponDuration.ONCE:
        return cycles_used < 1
    if duration is CouponDuration.FOREVER:
        return True
    if duration is CouponDuration.REPEATING:
        if cycles is None or cycles < 1:
            raise ValidationError(
                f"a repeating coupon needs a number of cycles of at least 1, not {cycles!r}",
                code="INVALID_COUPON",
            )
        return cycles_used < cycles
    raise ValidationError(f"unknown coupon duration {duration!r}", code="INVALID_COUPON")


@dataclass(frozen=True, slots=True)
class Bill:
    """Amounts of one bill. ``discount`` is the sum of ``discounts``; total never < 0."""

    currency: str
    subtotal: Money
    discount: Money
    total: Money
    line_totals: Mapping[str, Money]
    discounts: Mapping[str, Money]
    # Each line's total after the discounts took their share of it (what tax is computed on).
    net_totals: Mapping[str, Money] = field(default_factory=lambda: MappingProxyType({}))


def _take(remaining: dict[str, int], keys: list[str], wanted: Money) -> Money:
    """Take up to ``wanted`` from the lines ``keys`` and return what was taken.

    The amount is spread over the lines in proportion to what is left of each
    (largest remainder), so no line is ever discounted below zero and a later
    coupon sees exactly what an earlier one left.
    """
    available = sum(remaining[key] for key in keys)
    taken = Money(min(wanted.minor, available), wanted.currency)
    if not taken.is_positive:
        return Money.zero(wanted.currency)
    for key, share in zip(keys, taken.allocate([remaining[key] for key in keys]), strict=True):
        remaining[key] -= share.minor
    return taken


def bill(lines: Sequence[Line], discounts: Sequence[Discount], currency: str) -> Bill:
    """Price lines and apply discounts, in a fixed order.

    1. Each line's total is its quantity times its unit price (or the unit
       price of the volume tier its quantity falls into).
    2. Percentage discounts, in the order given: each is ``percent`` of the
       totals of the lines it applies to (before any discount, so two coupons
       of 10 % make 20 %), rounded half-even to the minor unit.
    3. Fixed-amount discounts, in the order given.

    A discount never takes more than is left of the lines it applies to, so
    no line and no bill goes below zero; what a discount could not take is
    simply not applied (``discounts`` records what was).
    """
    Money.zero(currency)  # refuses an unknown currency
    totals: dict[str, Money] = {}
    by_key: dict[str, Line] = {}
    for line in lines:
        if line.currency != currency:
            raise MoneyError(
                f"line {line.key!r} is in {line.currency}, the bill in {currency}",
                code="CURRENCY_MISMATCH",
            )
        if line.key in totals:
            raise ValidationError(f"two lines share the key {line.key!r}", code="DUPLICATE_LINE")
        totals[line.key] = line.total
        by_key[line.key] = line
    seen: set[str] = set()
    for discount in discounts:
        if discount.amount is not None and discount.amount.currency != currency:
            raise MoneyError(
                f"coupon {discount.key!r} is in {discount.amount.currency}, the bill in {currency}",
                code="CURRENCY_MISMATCH",
            )
        if discount.key in seen:
            raise ValidationError(f"coupon {discount.key!r} is applied twice", code="DUPLICATE_COUPON")
        seen.add(discount.key)

    remaining = {key: total.minor for key, total in totals.items()}
    applied: dict[str, Money] = {}
    ordered = [d for d in discounts if d.percent is not None] + [d for d in discounts if d.amount is not None]
    for discount in ordered:
        keys = [key for key, line in by_key.items() if discount.applies_to(line)]
        if discount.percent is not None:
            base = sum_money((totals[key] for key in keys), currency)
            wanted = base.multiply(Fraction(discount.percent) / 100, Rounding.HALF_EVEN)
        else:
            assert discount.amount is not None
            wanted = discount.amount
        applied[discount.key] = _take(remaining, keys, wanted)

    # Integer minor units of one currency (each line and coupon was checked to be in it).
    subtotal = sum(total.minor for total in totals.values())
    discount_total = sum(taken.minor for taken in applied.values())
    line_totals = MappingProxyType(totals)
    return Bill(
        currency=currency,
        subtotal=Money(subtotal, currency),
        discount=Money(discount_total, currency),
        total=Money(subtotal - discount_total, currency),
        line_totals=line_totals,
        discounts=MappingProxyType({d.key: applied[d.key] for d in discounts}),
        # Nothing discounted (most bills): each line's net is its total.
        net_totals=MappingProxyType({key: Money(minor, currency) for key, minor in remaining.items()})
        if discount_total
        else line_totals,
    )
