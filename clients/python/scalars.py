"""The Python types of rebill's scalars, for the generated client.

``Date`` and ``DateTime`` are the ``datetime`` types under the GraphQL names,
so that an input field called ``date`` does not hide its own type. Money
amounts are ``Decimal``: rebill sends and takes them as decimal strings in
major units, never floats.
"""

from datetime import date, datetime
from decimal import Decimal

Date = date
DateTime = datetime


def amount_to_string(amount: Decimal) -> str:
    """``Decimal("62.96")`` as ``"62.96"`` (never in exponent notation)."""
    return format(amount, "f")
