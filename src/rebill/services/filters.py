"""The subscription filter, compiled to SQL: one definition for the list query and bulk plans.

A subscription in trial keeps its trial end in ``next_renewal_date``, so the
next-renewal range matches trials by their trial end with the same index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from sqlalchemy import ColumnElement, and_, exists, false, func, or_, select, true

from rebill.db import tables as t
from rebill.domain.errors import RebillError, ValidationError
from rebill.domain.money import CURRENCY_EXPONENTS, Money, Rounding, currency_exponent
from rebill.domain.status import SubscriptionStatus
from rebill.domain.subscription import GatewayMode, RenewalType
from rebill.services.search import MAX_SEARCH_LENGTH, customer_words

S = t.table_of(t.Subscription)
I = t.table_of(t.SubscriptionItem)  # noqa: E741
CU = t.table_of(t.Customer)


@dataclass(frozen=True)
class SubscriptionFilter:
    ids: tuple[int, ...] | None = None
    status: tuple[SubscriptionStatus, ...] | None = None
    renewal_type: RenewalType | None = None
    profile_ids: tuple[int, ...] | None = None
    product_ids: tuple[int, ...] | None = None
    customer_email: str | None = None
    customer_search: str | None = None
    next_renewal_from: date | None = None
    next_renewal_to: date | None = None
    in_trial: bool | None = None
    amount_min: str | None = None
    amount_max: str | None = None
    currency: str | None = None
    gateway_mode: tuple[GatewayMode, ...] | None = None
    gateway_ids: tuple[str, ...] | None = None
    has_gateway: bool | None = None


def _amount_clause(text_amount: str, op: str, currency: str | None, field: str) -> ColumnElement[bool]:
    """Compare the billed amount exactly, for each currency exponent (no floats)."""
    try:
        if currency is not None:
            minor = Money.parse(text_amount, currency).minor
            return S.c.amount_minor >= minor if op == ">=" else S.c.amount_minor <= minor
        groups: dict[int, list[str]] = {}
        for code, exp in CURRENCY_EXPONENTS.items():
            groups.setdefault(exp, []).append(code)
        clauses = []
        for codes in groups.values():
            probe = codes[0]
            try:
                minor = Money.parse(text_amount, probe).minor
            except RebillError:
                # More decimals than this exponent holds: compare on the bound rounded inwards.
                rounding = Rounding.CEILING if op == ">=" else Rounding.FLOOR
                minor = Money.from_decimal(Decimal(text_amount), probe, rounding).minor
            cmp = S.c.amount_minor >= minor if op == ">=" else S.c.amount_minor <= minor
            clauses.append(and_(S.c.currency.in_(codes), cmp))
        return or_(*clauses)
    except (RebillError, ArithmeticError, InvalidOperation, ValueError) as exc:
        raise ValidationError(
            f"{field} {text_amount!r} is not a decimal amount", code="INVALID_AMOUNT", field=[field]
        ) from exc


def _customer_search(text: str) -> list[ColumnElement[bool]]:
    """Subscriptions of customers whose name or e-mail holds every word, as ``customers(filter: { search })``."""
    if len(text) > MAX_SEARCH_LENGTH:
        raise ValidationError(
            f"customerSearch may be at most {MAX_SEARCH_LENGTH} characters (got {len(text)})",
            field=["customerSearch"],
        )
    words = customer_words(text)
    return [S.c.customer_id.in_(select(CU.c.id).where(*words))] if words else []


def compile_filter(f: SubscriptionFilter) -> list[ColumnElement[bool]]:
    """WHERE clauses for a filter (ANDed). Empty lists in the filter match nothing."""
    where: list[ColumnElement[bool]] = []
    if f.ids is not None:
        where.append(S.c.id.in_(f.ids) if f.ids else false())
    if f.status is not None:
        where.append(S.c.status.in_([s.value for s in f.status]) if f.status else false())
    if f.renewal_type is not None:
        where.append(S.c.renewal_type == f.renewal_type.value)
    if f.profile_ids is not None:
        where.append(S.c.profile_id.in_(f.profile_ids) if f.profile_ids else false())
    if f.product_ids is not None:
        where.append(
            exists(select(I.c.id).where(I.c.subscription_id == S.c.id, I.c.product_id.in_(f.product_ids)))
            if f.product_ids
            else false()
        )
    if f.customer_email is not None:
        where.append(
            S.c.customer_id.in_(select(CU.c.id).where(func.lower(CU.c.email) == f.customer_email.strip().lower()))
        )
    if f.customer_search is not None:
        where.extend(_customer_search(f.customer_search))
    if f.next_renewal_from is not None:
        where.append(S.c.next_renewal_date >= f.next_renewal_from)
    if f.next_renewal_to is not None:
        where.append(S.c.next_renewal_date <= f.next_renewal_to)
    if f.in_trial is not None:
        where.append(S.c.status == "TRIAL" if f.in_trial else S.c.status != "TRIAL")
    if f.currency is not None:
        currency_exponent(f.currency)
        where.append(S.c.currency == f.currency)
    if f.amount_min is not None:
        where.append(_amount_clause(f.amount_min, ">=", f.currency, "amountMin"))
    if f.amount_max is not None:
        where.append(_amount_clause(f.amount_max, "<=", f.currency, "amountMax"))
    if f.gateway_mode is not None:
        where.append(S.c.gateway_mode.in_([m.value for m in f.gateway_mode]) if f.gateway_mode else false())
    if f.gateway_ids is not None:
        where.append(S.c.gateway_id.in_(f.gateway_ids) if f.gateway_ids else false())
    if f.has_gateway is not None:
        where.append(S.c.gateway_id.is_not(None) if f.has_gateway else S.c.gateway_id.is_(None))
    return where


def combined(clauses: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    return and_(*clauses) if clauses else true()
