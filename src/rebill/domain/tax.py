"""Which tax applies to an invoice, and what it is per line (DOMAIN.md "Tax and shipping").

A rate is a percentage for a country, or for one region of it (ISO 3166-2,
``US-CA``); the customer's billing address picks it (the shipping address
when there is no billing address), the region's rate before the country's.
An exempt customer's invoices carry a zero "rate" with the reason, so the
document says why no tax was charged. Tax is computed line by line on what
the line bills after discounts and rounded half-even to the minor unit; an
inclusive rate's tax is the part of the amount that is tax, an exclusive
one's is added on top. The per-rate summary is the sum of the lines, so the
lines, the summary and the totals add up by construction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from rebill.domain.errors import ValidationError
from rebill.domain.money import Money, round_fraction

_COUNTRY = re.compile(r"[A-Z]{2}")
_SUBDIVISION = re.compile(r"[A-Z0-9]{1,3}")
_PERCENTAGE = re.compile(r"[0-9]{1,3}(\.[0-9]{1,4})?")


@dataclass(frozen=True, slots=True)
class TaxRate:
    """A rate as an invoice line carries it: copied onto the document, so a later archive changes nothing issued.

    ``exempt_reason`` set means the customer is exempt: the percentage is zero and the reason is shown.
    """

    id: int | None
    name: str
    percentage: Decimal
    inclusive: bool = False
    country: str | None = None
    region: str | None = None
    exempt_reason: str | None = None

    @property
    def key(self) -> tuple[Any, ...]:
        """What makes two lines' rates one entry of the per-rate summary."""
        return (self.id, self.name, self.percentage, self.inclusive, self.exempt_reason)

    def tax_on(self, base: int) -> int:
        """The tax on ``base`` minor units: inside it for an inclusive rate, on top of it otherwise."""
        if not self.percentage or not base:
            return 0
        pct = Fraction(self.percentage)
        share = pct / (100 + pct) if self.inclusive else pct / 100
        return round_fraction(base * share)


def exempt(reason: str) -> TaxRate:
    return TaxRate(None, "Tax exempt", Decimal(0), exempt_reason=reason)


def parse_percentage(text: object) -> Decimal:
    """A rate's percentage from its decimal string: "20" or "8.875", 0 to 100, at most four decimals."""
    raw = str(text).strip() if text is not None else ""
    if not _PERCENTAGE.fullmatch(raw):
        raise ValidationError(
            f"percentage must be a decimal string from 0 to 100 with at most 4 decimals, such as '20' or '8.875',"
            f" not {text!r}",
            code="INVALID_TAX_RATE",
            field=["percentage"],
        )
    try:
        value = Decimal(raw)
    except InvalidOperation as error:  # pragma: no cover - the pattern admits only plain decimals
        raise ValidationError(f"{text!r} is not a number", code="INVALID_TAX_RATE", field=["percentage"]) from error
    if value > 100:
        raise ValidationError(
            f"percentage must be at most 100, not {raw}", code="INVALID_TAX_RATE", field=["percentage"]
        )
    return value.normalize() if value else Decimal(0)


def percentage_text(value: Decimal) -> str:
    """The percentage as API.md shows it: "20", "8.875" (no exponent, no trailing zeros)."""
    text = format(value.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def country_code(text: object, field: str = "country") -> str:
    """An ISO 3166-1 alpha-2 code, upper-cased."""
    raw = str(text or "").strip().upper()
    if not _COUNTRY.fullmatch(raw):
        raise ValidationError(
            f"{field} must be an ISO 3166-1 alpha-2 code such as 'US' or 'DE', not {text!r}",
            code="INVALID_TAX_RATE",
            field=[field],
        )
    return raw


def region_code(country: str, text: object) -> str | None:
    """An ISO 3166-2 code (``US-CA``) for ``country``; ``CA`` alone is read as ``US-CA``. None: no region."""
    if text is None or not str(text).strip():
        return None
    raw = str(text).strip().upper()
    prefix, dash, subdivision = raw.partition("-")
    if not dash:
        prefix, subdivision = country, raw
    if prefix != country or not _SUBDIVISION.fullmatch(subdivision):
        raise ValidationError(
            f"region must be an ISO 3166-2 code of {country} such as '{country}-CA', not {text!r}",
            code="INVALID_TAX_RATE",
            field=["region"],
        )
    return f"{country}-{subdivision}"


def place_of(address: Mapping[str, Any] | None) -> tuple[str, str | None] | None:
    """The country and ISO 3166-2 region of an address (None: no usable country)."""
    if not address:
        return None
    country = str(address.get("country") or "").strip().upper()
    if not _COUNTRY.fullmatch(country):
        return None
    raw = str(address.get("region") or "").strip().upper()
    if not raw:
        return country, None
    prefix, dash, _ = raw.partition("-")
    if not dash:
        return country, f"{country}-{raw}"
    return country, raw if prefix == country else None


def rate_for(
    billing_address: Mapping[str, Any] | None,
    shipping_address: Mapping[str, Any] | None,
    rates: Iterable[TaxRate],
) -> TaxRate | None:
    """The active rate for the address that decides (billing, else shipping): the region's, else the country's."""
    place = place_of(billing_address) if billing_address else place_of(shipping_address)
    if place is None:
        return None
    country, region = place
    national = None
    for rate in rates:
        if rate.country != country:
            continue
        if rate.region is None:
            national = national or rate
        elif region is not None and rate.region == region:
            return rate
    return national


def taxation(
    *,
    exempt_reason: str | None,
    billing_address: Mapping[str, Any] | None,
    shipping_address: Mapping[str, Any] | None,
    rates: Iterable[TaxRate],
) -> TaxRate | None:
    """What an invoice of this customer is taxed at: exempt, the address's rate, or nothing."""
    if exempt_reason is not None:
        return exempt(exempt_reason)
    return rate_for(billing_address, shipping_address, rates)


# -- per line ------------------------------------------------------------------------


def tax_lines(lines: Sequence[Any], rate: TaxRate | None) -> tuple[Any, ...]:
    """``lines`` (``domain.invoice.DocLine``) with their tax at ``rate``.

    Each line is taxed on what it bills after discounts: an item line on its
    ``taxable`` amount (its total less its share of the coupons, which the
    bill computed), a discount line on nothing (its amount is already inside
    the items'), every other line (shipping, proration, a one-off line, a
    fee) on its own amount. Every line carries the rate, so the summary of a
    rate is the sum of its lines.
    """
    if rate is None:
        return tuple(replace(line, tax_amount=None, tax_rate=None, taxable=None) for line in lines)
    out = []
    for line in lines:
        base = line.taxable_base
        out.append(replace(line, tax_rate=rate, tax_amount=Money(rate.tax_on(base.minor), line.amount.currency)))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class TaxSummary:
    """One rate's entry on a document (``InvoiceTax``)."""

    rate: TaxRate
    taxable: Money
    amount: Money


def summary(lines: Sequence[Any], currency: str) -> tuple[TaxSummary, ...]:
    """The per-rate summary of ``lines``: for each rate, the amount taxed (net of an inclusive rate's tax) and the tax.

    Lines without a rate are left out; the summaries' tax adds up to the lines' tax exactly.
    """
    groups: dict[tuple[Any, ...], list[Any]] = {}
    rates: dict[tuple[Any, ...], TaxRate] = {}
    for line in lines:
        rate = line.tax_rate
        if rate is None:
            continue
        groups.setdefault(rate.key, []).append(line)
        rates.setdefault(rate.key, rate)
    out = []
    for key, members in groups.items():
        rate = rates[key]
        tax = sum(line.tax.minor for line in members)
        # Every line of a taxed document carries its rate, discounts too: their amounts add up to what was taxed.
        base = sum(line.amount.minor for line in members)
        taxable = base - tax if rate.inclusive else base
        out.append(TaxSummary(rate, Money(taxable, currency), Money(tax, currency)))
    return tuple(out)
