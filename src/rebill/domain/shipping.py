"""Shipping profiles (seed 003): what a renewal bills for delivery.

A profile is an ordered list of rates, each in a currency; "the first rate
listed in the shipping profile will be used", the first in the
subscription's currency. A subscription profile may name one, and a
subscription may override it. A profile without a rate in a subscription's
currency cannot be assigned to it (``CURRENCY_MISMATCH``), on any path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rebill.domain.errors import ValidationError
from rebill.domain.money import Money

MAX_RATES = 50
MAX_NAME = 200


@dataclass(frozen=True, slots=True)
class ShippingRate:
    name: str
    amount: Money


@dataclass(frozen=True, slots=True)
class ShippingProfile:
    id: int | None
    name: str
    rates: tuple[ShippingRate, ...]
    active: bool = True

    def rate_in(self, currency: str) -> ShippingRate | None:
        """The rate a subscription in ``currency`` is billed: the first listed in that currency."""
        for rate in self.rates:
            if rate.amount.currency == currency:
                return rate
        return None

    @property
    def currencies(self) -> frozenset[str]:
        return frozenset(rate.amount.currency for rate in self.rates)


def check_active(profile: ShippingProfile, field: str = "shippingProfileId") -> None:
    """An archived profile is assigned to nothing new."""
    if not profile.active:
        raise ValidationError(
            f"shipping profile {profile.name!r} is archived: it cannot be assigned", code="ARCHIVED", field=[field]
        )


def check_serves(profile: ShippingProfile | None, currency: str, field: str = "shippingProfileId") -> None:
    """Refuse assigning ``profile`` to a subscription in ``currency`` when it has no rate in it."""
    if profile is None:
        return
    check_active(profile, field)
    if profile.rate_in(currency) is None:
        have = ", ".join(sorted(profile.currencies)) or "none"
        raise ValidationError(
            f"shipping profile {profile.name!r} has no rate in {currency} (it has: {have})",
            code="CURRENCY_MISMATCH",
            field=[field],
        )


def clean_name(text: object, field: str = "name") -> str:
    cleaned = str(text or "").strip()
    if not cleaned or len(cleaned) > MAX_NAME:
        raise ValidationError(
            f"{field} must be 1 to {MAX_NAME} characters", code="INVALID_SHIPPING_PROFILE", field=[field]
        )
    return cleaned


def clean_rates(rates: Sequence[tuple[str, Money]]) -> tuple[ShippingRate, ...]:
    """The rates of a profile, in the order given: at least one, at most 50, none negative."""
    if not rates:
        raise ValidationError(
            "a shipping profile needs at least one rate", code="INVALID_SHIPPING_PROFILE", field=["rates"]
        )
    if len(rates) > MAX_RATES:
        raise ValidationError(
            f"a shipping profile has at most {MAX_RATES} rates", code="INVALID_SHIPPING_PROFILE", field=["rates"]
        )
    out = []
    for index, (name, amount) in enumerate(rates):
        if amount.is_negative:
            raise ValidationError(
                f"rate {index + 1} is negative ({amount}): shipping is never a discount",
                code="INVALID_SHIPPING_PROFILE",
                field=["rates", str(index), "amount"],
            )
        out.append(ShippingRate(clean_name(name, "rates.name"), amount))
    return tuple(out)


def to_json(profile: ShippingProfile | None) -> dict[str, Any] | None:
    if profile is None:
        return None
    return {
        "id": profile.id,
        "name": profile.name,
        "active": profile.active,
        "rates": [
            {"name": r.name, "amount": r.amount.amount_str, "currency": r.amount.currency} for r in profile.rates
        ],
    }


def from_json(raw: Mapping[str, Any] | None) -> ShippingProfile | None:
    if not raw:
        return None
    return ShippingProfile(
        raw.get("id"),
        raw["name"],
        tuple(ShippingRate(r["name"], Money.parse(r["amount"], r["currency"])) for r in raw.get("rates") or ()),
        bool(raw.get("active", True)),
    )


def rates_from_rows(rows: Iterable[Mapping[str, Any]]) -> tuple[ShippingRate, ...]:
    """Stored rates (``[{name, amountMinor, currency}]``) as the rules see them."""
    return tuple(ShippingRate(r["name"], Money(r["amountMinor"], r["currency"])) for r in rows)


def rates_to_rows(rates: Iterable[ShippingRate]) -> list[dict[str, Any]]:
    return [{"name": r.name, "amountMinor": r.amount.minor, "currency": r.amount.currency} for r in rates]
