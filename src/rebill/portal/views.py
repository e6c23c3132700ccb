"""What the portal pages show, read for one customer: their subscriptions, renewals, cards and addresses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rebill.db import tables as t
from rebill.db.repositories import SubscriptionRepository, renewal_from_row
from rebill.documents import links
from rebill.domain import contract as contract_rules
from rebill.domain.cadence import local_today
from rebill.domain.money import Money
from rebill.domain.subscription import RenewalType, SubscriptionState, SubscriptionStatus
from rebill.ids import to_global_id
from rebill.services.runtime import Services

CU = t.table_of(t.Customer)
PM = t.table_of(t.PaymentMethod)
S = t.table_of(t.Subscription)
R = t.table_of(t.Renewal)
INV = t.table_of(t.Invoice)

FINAL = {SubscriptionStatus.CANCELLED, SubscriptionStatus.EXPIRED}
UNITS = {"DAY": ("day", "days"), "WEEK": ("week", "weeks"), "MONTH": ("month", "months"), "YEAR": ("year", "years")}
STATUS_LABELS = {
    "FUTURE": "Starts later",
    "TRIAL": "In trial",
    "ACTIVE": "Active",
    "OVERDUE": "Payment failed",
    "SUSPENDED": "Paused",
    "AWAITING_REINSTATE": "Waiting for renewal",
    "CANCELLED": "Cancelled",
    "EXPIRED": "Ended",
}
RENEWAL_LABELS = {
    "PENDING": "Pending",
    "PAID": "Paid",
    "FAILED": "Payment failed",
    "REFUNDED": "Refunded",
    "PARTIALLY_REFUNDED": "Partly refunded",
    "VOID": "Void",
}
INVOICE_LABELS = {
    "OPEN": "Awaiting payment",
    "PAID": "Paid",
    "VOID": "Void",
    "UNCOLLECTIBLE": "Unpaid",
}


def money(value: Money) -> str:
    return f"{value.amount_str} {value.currency}"


def frequency(unit: str, count: int) -> str:
    one, many = UNITS.get(unit, (unit.lower(), unit.lower() + "s"))
    return f"Every {one}" if count == 1 else f"Every {count} {many}"


def address_lines(raw: Mapping[str, Any] | None) -> list[str]:
    if not raw:
        return []
    city = " ".join(str(raw[k]) for k in ("postalCode", "city") if raw.get(k))
    lines = [raw.get("line1"), raw.get("line2"), city, raw.get("region"), raw.get("country")]
    return [str(line) for line in lines if line]


def card_label(row: Any | None) -> str:
    if row is None:
        return "No payment method on file"
    if row.kind == "CARD":
        label = f"{(row.brand or 'Card').title()} ending in {row.last4 or '????'}"
        if row.exp_month and row.exp_year:
            label += f", expires {row.exp_month:02d}/{row.exp_year}"
        return label
    return {"EXTERNAL": "Paid outside this store", "OFFLINE": "Invoice or bank transfer"}.get(row.kind, row.kind)


@dataclass
class InvoiceLink:
    """A renewal's invoice as the order history shows it: the document's own routes open it with the session.

    ``shipping`` and ``tax`` are what the invoice charged on top of the price, which the portal shows
    "excluding shipping and taxes".
    """

    number: str
    status: str
    pdf_url: str
    page_url: str
    shipping: str = ""
    tax: str = ""


@dataclass
class RenewalRow:
    period_start: date
    period_end: date
    kind: str
    status: str
    amount: str
    failed: bool
    invoice: InvoiceLink | None = None


@dataclass
class SubscriptionView:
    id: int
    title: str
    status: str
    status_label: str
    next_date: date | None
    price: str
    frequency: str
    manual: bool
    items: list[tuple[str, int, str]]
    shipping: list[str]
    payment: str
    payment_method_id: int | None
    renewals: list[RenewalRow] = field(default_factory=list)
    # Under contract (DOMAIN.md "Contract terms"): the term's end, and when a cancellation given today
    # takes effect; a cancellation already given takes effect on ``cancellation_date``.
    contract_end: date | None = None
    cancels_on: date | None = None
    cancellation_date: date | None = None

    @property
    def final(self) -> bool:
        return self.status in {s.value for s in FINAL}

    @property
    def can_postpone(self) -> bool:
        return not self.final and self.next_date is not None

    @property
    def can_cancel(self) -> bool:
        return not self.final

    @property
    def can_renew(self) -> bool:
        return self.manual and self.status == SubscriptionStatus.AWAITING_REINSTATE.value

    @property
    def overdue(self) -> bool:
        return self.status == SubscriptionStatus.OVERDUE.value


@dataclass
class Account:
    id: int
    email: str
    name: str | None
    billing: list[str]
    billing_raw: Mapping[str, Any]
    default_payment: str
    cards: list[tuple[int, str]]


def _view(
    state: SubscriptionState, cards: Mapping[int, Any], default_pm: int | None, now: datetime | None = None
) -> SubscriptionView:
    assert state.id is not None
    today = local_today(now, state.time_zone) if now is not None else None
    term = contract_rules.commitment(state, today) if today is not None else None
    pm_id = state.payment_method.id if state.payment_method is not None else default_pm
    return SubscriptionView(
        id=state.id,
        title=", ".join(item.product.name for item in state.items) or f"Subscription {state.id}",
        status=state.status.value,
        status_label=STATUS_LABELS.get(state.status.value, state.status.value),
        next_date=state.next_renewal_date if state.status not in FINAL else None,
        price=money(state.amount),
        frequency=frequency(state.cadence.unit.value, state.cadence.count),
        manual=state.renewal_type is RenewalType.MANUAL,
        items=[(item.product.name, item.quantity, money(item.unit_price)) for item in state.items],
        shipping=address_lines(state.shipping_address),
        payment=card_label(cards.get(pm_id) if pm_id is not None else None),
        payment_method_id=pm_id,
        contract_end=term.end_date if term is not None else None,
        cancels_on=contract_rules.effective_date_of(state, today) if term is not None and today is not None else None,
        cancellation_date=state.cancellation_date if state.status not in FINAL else None,
    )


async def account(services: Services, customer_id: int) -> Account:
    async with services.sessions() as session:
        customer = (await session.execute(select(CU).where(CU.c.id == customer_id))).one()
        cards = list(await session.execute(select(PM).where(PM.c.customer_id == customer_id).order_by(PM.c.id)))
    by_id = {c.id: c for c in cards}
    default = by_id.get(customer.default_payment_method_id) if customer.default_payment_method_id else None
    return Account(
        id=customer.id,
        email=customer.email,
        name=customer.name,
        billing=address_lines(customer.billing_address),
        billing_raw=customer.billing_address or {},
        default_payment=card_label(default),
        cards=[(c.id, card_label(c)) for c in cards],
    )


async def subscriptions(services: Services, customer_id: int) -> list[SubscriptionView]:
    """The customer's subscriptions, the running ones first, newest first."""
    async with services.sessions() as session:
        customer = (await session.execute(select(CU).where(CU.c.id == customer_id))).one()
        ids = list((await session.execute(select(S.c.id).where(S.c.customer_id == customer_id))).scalars())
        states = await SubscriptionRepository(session).get_many(ids) if ids else {}
        cards = {c.id: c for c in await session.execute(select(PM).where(PM.c.customer_id == customer_id))}
    now = services.clock.now()
    views = [_view(s, cards, customer.default_payment_method_id, now) for s in states.values()]
    return sorted(views, key=lambda v: (v.final, -v.id))


async def subscription(services: Services, customer_id: int, subscription_id: int) -> SubscriptionView | None:
    """One of the customer's subscriptions with its order history; None when it is not theirs."""
    async with services.sessions() as session:
        owner = (await session.execute(select(S.c.customer_id).where(S.c.id == subscription_id))).scalar()
        if owner is None or owner != customer_id:
            return None
        customer = (await session.execute(select(CU).where(CU.c.id == customer_id))).one()
        state = await SubscriptionRepository(session).get(subscription_id)
        cards = {c.id: c for c in await session.execute(select(PM).where(PM.c.customer_id == customer_id))}
        rows = list(
            await session.execute(
                select(R).where(R.c.subscription_id == subscription_id).order_by(R.c.id.desc()).limit(50)
            )
        )
        invoices = await _renewal_invoices(session, customer_id, [row.id for row in rows])
    view = _view(state, cards, customer.default_payment_method_id, services.clock.now())
    for row in rows:
        info = renewal_from_row(row)
        view.renewals.append(
            RenewalRow(
                period_start=info.period_start,
                period_end=info.period_end,
                kind=info.kind.value.title(),
                status=RENEWAL_LABELS.get(info.status.value, info.status.value),
                amount=money(info.amount),
                failed=info.status.value == "FAILED",
                invoice=invoices.get(row.id),
            )
        )
    return view


async def _renewal_invoices(session: AsyncSession, customer_id: int, renewal_ids: list[int]) -> dict[int, InvoiceLink]:
    """Each renewal's invoice, the final one over its pro forma (as ``Renewal.invoice``); never a draft."""
    if not renewal_ids:
        return {}
    rows = await session.execute(
        select(
            INV.c.id,
            INV.c.renewal_id,
            INV.c.number,
            INV.c.status,
            INV.c.document_type,
            INV.c.currency,
            INV.c.shipping_minor,
            INV.c.tax_minor,
        )
        .where(INV.c.renewal_id.in_(renewal_ids), INV.c.customer_id == customer_id, INV.c.status != "DRAFT")
        .order_by(INV.c.renewal_id, INV.c.id)
    )
    found: dict[int, Any] = {}
    for row in rows:
        if row.renewal_id not in found or row.document_type == "INVOICE":
            found[row.renewal_id] = row
    result: dict[int, InvoiceLink] = {}
    for renewal_id, row in found.items():
        global_id = to_global_id("Invoice", row.id)
        result[renewal_id] = InvoiceLink(
            number=row.number or "",
            status=INVOICE_LABELS.get(row.status, row.status.title()),
            pdf_url=links.pdf_path(links.INVOICES, global_id),
            page_url=links.page_path(links.INVOICES, global_id),
            shipping=money(Money(row.shipping_minor, row.currency)),
            tax=money(Money(row.tax_minor, row.currency)),
        )
    return result
