"""Amounts of money as integers of minor units.

A float cannot hold 0.10 exactly, and a bill that is off by a cent is a bug
report, so every amount is an ``int`` of the currency's minor unit (cents,
fils, yen) and every ratio is a ``Decimal`` or a ``Fraction``. Rounding happens
once, at the end of a computation, and always with a named rule.
"""

from __future__ import annotations

import decimal
import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from types import MappingProxyType

from rebill.domain.errors import MoneyError

# ISO 4217 list one (published 2026-01-01), minor units per active code.
# Codes whose minor unit is "N.A." (precious metals, bond-market units, SDR,
# XUA, XSU, the testing and "no currency" codes) are left out: nothing is
# billed in them and they have no exponent to round to. Withdrawn codes (HRK,
# BGN, ANG, SLL, CUC, ZWL...) are left out too, so no new amount uses them.
# Each row: a number of minor-unit digits, then codes that use it.
_ISO_4217 = """
0 BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF
2 AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BMD BND BOB BOV BRL BSD BTN BWP
2 BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB
2 EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES
2 KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR
2 MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD
2 RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP
2 TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XAD XCD XCG YER ZAR ZMW ZWG
3 BHD IQD JOD KWD LYD OMR TND
4 CLF UYW
"""


def _read_table(table: str) -> dict[str, int]:
    exponents: dict[str, int] = {}
    for row in table.strip().splitlines():
        digits, *codes = row.split()
        exponents.update(dict.fromkeys(codes, int(digits)))
    return dict(sorted(exponents.items()))


CURRENCY_EXPONENTS: Mapping[str, int] = MappingProxyType(_read_table(_ISO_4217))

# Amounts are stored as signed 64-bit integers (BIGINT); parsing refuses more.
MAX_MINOR = 2**63 - 1

_CODE = re.compile(r"[A-Z]{3}")
# ASCII digits only: ``\d`` would also accept Arabic-Indic and other digits.
_AMOUNT = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")

#: ``Money.zero`` of each currency asked for.
_ZEROS: dict[str, Money] = {}


def currency_exponent(code: str) -> int:
    """Number of decimals of ``code``; unknown or lower-case codes are refused.

    Lower case is refused rather than normalised so that the same currency is
    never stored under two spellings.
    """
    exponent = CURRENCY_EXPONENTS.get(code) if isinstance(code, str) else None
    if exponent is None:
        raise MoneyError(
            f"unknown currency {code!r}: expected an active ISO 4217 code such as 'USD'",
            code="UNKNOWN_CURRENCY",
            details={"currency": code},
        )
    return exponent


class Rounding(enum.Enum):
    """The rounding rules a computation may name, valued as ``decimal``'s constants."""

    HALF_EVEN = decimal.ROUND_HALF_EVEN
    HALF_UP = decimal.ROUND_HALF_UP
    HALF_DOWN = decimal.ROUND_HALF_DOWN
    UP = decimal.ROUND_UP
    DOWN = decimal.ROUND_DOWN
    FLOOR = decimal.ROUND_FLOOR
    CEILING = decimal.ROUND_CEILING


def round_fraction(value: Fraction, rounding: Rounding = Rounding.HALF_EVEN) -> int:
    """Round an exact rational to an integer.

    Done with integers rather than through a ``decimal`` context so that no
    precision limit can round a large amount silently before the named rule
    applies.
    """
    floor, remainder = divmod(value.numerator, value.denominator)
    if remainder == 0:
        return floor
    positive = value > 0
    if rounding is Rounding.FLOOR:
        return floor
    if rounding is Rounding.CEILING:
        return floor + 1
    if rounding is Rounding.DOWN:
        return floor if positive else floor + 1
    if rounding is Rounding.UP:
        return floor + 1 if positive else floor
    twice = 2 * remainder
    if twice < value.denominator:
        return floor
    if twice > value.denominator:
        return floor + 1
    if rounding is Rounding.HALF_UP:
        return floor + 1 if positive else floor
    if rounding is Rounding.HALF_DOWN:
        return floor if positive else floor + 1
    if rounding is Rounding.HALF_EVEN:
        return floor if floor % 2 == 0 else floor + 1
    raise TypeError(f"not a Rounding: {rounding!r}")


#: Significant digits in any decimal rebill reads or computes with.
MAX_DECIMAL_DIGITS = 40
#: Largest power of ten (either way) of any decimal rebill reads: ``1e5000000`` is refused, not computed.
MAX_DECIMAL_EXPONENT = 30
#: Characters in a decimal string.
MAX_DECIMAL_CHARS = 64

_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,6})?")


def check_decimal_bounds(value: decimal.Decimal, what: str = "a number") -> decimal.Decimal:
    """The value itself, if its digits and exponent are within bounds; ``INVALID_AMOUNT`` otherwise.

    Arithmetic on ``Decimal("1e5000000")`` (turning it into a fraction, or
    multiplying by it) builds a five-million-digit integer; the bound is checked
    on the representation, which costs nothing.
    """
    if not value.is_finite():
        raise MoneyError(f"{what} must be a finite number, not {value}", code="INVALID_AMOUNT")
    digits = value.as_tuple().digits
    if value.is_zero():
        return value
    adjusted = value.adjusted()
    if len(digits) > MAX_DECIMAL_DIGITS or not -MAX_DECIMAL_EXPONENT <= adjusted <= MAX_DECIMAL_EXPONENT:
        raise MoneyError(
            f"{what} is out of range: at most {MAX_DECIMAL_DIGITS} significant digits"
            f" and magnitudes between 1e-{MAX_DECIMAL_EXPONENT} and 1e{MAX_DECIMAL_EXPONENT}",
            code="INVALID_AMOUNT",
        )
    return value


def parse_decimal(text: object, what: str = "a number") -> decimal.Decimal:
    """A decimal string ("10", "-2.5", "1e3") read with bounded digits and exponent, before any arithmetic."""
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise MoneyError(f"{what} must be a decimal string, not {type(text).__name__}", code="INVALID_AMOUNT")
    raw = str(text).strip()
    if len(raw) > MAX_DECIMAL_CHARS or not _DECIMAL.fullmatch(raw):
        shown = raw if len(raw) <= MAX_DECIMAL_CHARS else raw[:MAX_DECIMAL_CHARS] + "…"
        raise MoneyError(f"{what} {shown!r} is not a decimal number", code="INVALID_AMOUNT")
    return check_decimal_bounds(decimal.Decimal(raw), what)


def plain_decimal(value: decimal.Decimal) -> str:
    """A decimal as people write it: "10", not "1E+1"; "12.5", not "12.50000"."""
    return format(value.normalize(), "f") if value else "0"


def _to_fraction(value: object, what: str) -> Fraction:
    """Accept exact numbers only: a float has already lost the amount."""
    if isinstance(value, bool) or not isinstance(value, int | decimal.Decimal | Fraction):
        raise TypeError(f"{what} must be an int, Decimal or Fraction, not {type(value).__name__}")
    if isinstance(value, decimal.Decimal):
        check_decimal_bounds(value, what)
    return Fraction(value)


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount: ``minor`` units of ``currency`` (1999 USD cents = 19.99 USD)."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        if type(self.minor) is not int:  # not a bool, float or Decimal: exact minor units only
            raise MoneyError(
                f"an amount is an integer number of minor units, not {type(self.minor).__name__}"
                f" ({self.minor!r}); use Money.parse or Money.from_decimal",
                code="INVALID_AMOUNT",
            )
        if self.currency not in CURRENCY_EXPONENTS:
            currency_exponent(self.currency)  # raises with the explanation

    # -- construction --------------------------------------------------------

    @classmethod
    def parse(cls, amount: str, currency: str) -> Money:
        """Read a plain decimal string in major units ("62.96", "-5", "0.5").

        Strict on purpose: the string comes from users and APIs, and guessing
        what "1,000" or "1e3" meant, or silently rounding "12.345", would bill
        someone an amount nobody typed.
        """
        exponent = currency_exponent(currency)
        if not isinstance(amount, str):
            raise MoneyError(
                f"an amount must be a decimal string, not {type(amount).__name__}",
                code="INVALID_AMOUNT",
            )
        match = _AMOUNT.fullmatch(amount)
        if match is None:
            raise MoneyError(
                f"{amount!r} is not a decimal amount: expected digits with an optional"
                f" leading '-' and decimal point, such as '62.96'",
                code="INVALID_AMOUNT",
                details={"amount": amount, "currency": currency},
            )
        sign, whole, fraction = match.groups()
        fraction = fraction or ""
        if len(fraction) > exponent:
            allowed = f"{exponent} decimal{'s' if exponent != 1 else ''}" if exponent else "none"
            raise MoneyError(
                f"{amount!r} has {len(fraction)} decimals but {currency} allows {allowed}",
                code="INVALID_AMOUNT",
                details={"amount": amount, "currency": currency, "decimals": exponent},
            )
        digits = (whole + fraction.ljust(exponent, "0")).lstrip("0")
        if len(digits) > len(str(MAX_MINOR)) or int(digits or "0") > MAX_MINOR:
            raise MoneyError(
                f"{amount!r} is too large: at most {MAX_MINOR} minor units can be stored",
                code="INVALID_AMOUNT",
                details={"amount": amount, "currency": currency},
            )
        minor = int(digits or "0")
        return cls(-minor if sign else minor, currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        # Immutable: one zero per currency serves every caller (a renewal asks for several).
        zero = _ZEROS.get(currency)
        if zero is None:
            zero = _ZEROS[currency] = cls(0, currency)  # refuses an unknown currency
        return zero

    @classmethod
    def from_decimal(
        cls,
        value: decimal.Decimal,
        currency: str,
        rounding: Rounding = Rounding.HALF_EVEN,
    ) -> Money:
        """Round a major-unit ``Decimal`` to the minor unit with a named rule."""
        if not isinstance(value, decimal.Decimal):
            raise TypeError(f"from_decimal takes a Decimal, not {type(value).__name__}")
        exact = _to_fraction(value, "amount")
        return cls(round_fraction(exact * 10 ** currency_exponent(currency), rounding), currency)

    # -- views ---------------------------------------------------------------

    @property
    def exponent(self) -> int:
        return CURRENCY_EXPONENTS[self.currency]

    def to_decimal(self) -> decimal.Decimal:
        """The exact amount in major units, with exactly ``exponent`` decimals."""
        digits = tuple(int(c) for c in str(abs(self.minor)))
        return decimal.Decimal((1 if self.minor < 0 else 0, digits, -self.exponent))

    @property
    def amount_str(self) -> str:
        """Major units with exactly ``exponent`` decimals: "62.96", "100", "-0.50"."""
        exponent = self.exponent
        sign = "-" if self.minor < 0 else ""
        if exponent == 0:
            return f"{sign}{abs(self.minor)}"
        whole, part = divmod(abs(self.minor), 10**exponent)
        return f"{sign}{whole}.{part:0{exponent}d}"

    def __str__(self) -> str:
        return f"{self.amount_str} {self.currency}"

    @property
    def is_zero(self) -> bool:
        return self.minor == 0

    @property
    def is_negative(self) -> bool:
        return self.minor < 0

    @property
    def is_positive(self) -> bool:
        return self.minor > 0

    # -- arithmetic ------------------------------------------------------------

    def _same(self, other: Money, op: str) -> None:
        if self.currency != other.currency:
            raise MoneyError(
                f"cannot {op} {self.currency} and {other.currency} amounts",
                code="CURRENCY_MISMATCH",
                details={"currencies": [self.currency, other.currency]},
            )

    def __add__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "add")
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: object) -> Money:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "subtract")
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __pos__(self) -> Money:
        return self

    def __abs__(self) -> Money:
        return Money(abs(self.minor), self.currency)

    def __mul__(self, other: object) -> Money:
        # Only whole quantities: a ratio needs a rounding rule, see multiply().
        if isinstance(other, bool) or not isinstance(other, int):
            return NotImplemented
        return Money(self.minor * other, self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "compare")
        return self.minor < other.minor

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "compare")
        return self.minor <= other.minor

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "compare")
        return self.minor > other.minor

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Money):
            return NotImplemented
        self._same(other, "compare")
        return self.minor >= other.minor

    def multiply(
        self,
        factor: decimal.Decimal | int | Fraction,
        rounding: Rounding = Rounding.HALF_EVEN,
    ) -> Money:
        """Scale by an exact factor and round once, so chained ratios never drift."""
        exact = Fraction(self.minor) * _to_fraction(factor, "factor")
        return Money(round_fraction(exact, rounding), self.currency)

    def percent(self, pct: decimal.Decimal, rounding: Rounding = Rounding.HALF_EVEN) -> Money:
        """``pct`` percent of this amount (``Decimal("10")`` is ten percent)."""
        return self.multiply(_to_fraction(pct, "percentage") / 100, rounding)

    def allocate(self, weights: Sequence[int]) -> list[Money]:
        """Split into parts proportional to ``weights`` that add up exactly.

        Rounding every share on its own loses or invents cents; the largest
        remainder method hands the leftover units to the parts that were
        rounded down the most (the earlier part on a tie), so each part is
        within one minor unit of its exact share and nothing is lost.
        """
        weights = list(weights)
        if not weights:
            raise ValueError("allocate needs at least one weight")
        for weight in weights:
            if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
                raise ValueError(f"weights must be non-negative integers, not {weight!r}")
        if not any(weights):
            weights = [1] * len(weights)
        total_weight = sum(weights)
        amount = abs(self.minor)
        shares = [divmod(amount * weight, total_weight) for weight in weights]
        parts = [share for share, _ in shares]
        leftover = amount - sum(parts)
        by_remainder = sorted(range(len(weights)), key=lambda i: (-shares[i][1], i))
        for index in by_remainder[:leftover]:
            parts[index] += 1
        sign = -1 if self.minor < 0 else 1
        return [Money(sign * part, self.currency) for part in parts]


def sum_money(values: Iterable[Money], currency: str) -> Money:
    """Sum amounts of one currency; the currency is given so that an empty sum has one."""
    total = Money.zero(currency)
    for value in values:
        total = total + value
    return total
