"""What an invoice says: its lines and the totals they add up to (DOMAIN.md "Invoices").

Pure arithmetic, no storage. Item lines carry their gross amount (quantity
times the unit price their quantity falls into); each coupon is a negative
discount line; a proration is one line of its own. ``subtotal`` is the sum
of every line, ``total`` adds exclusive tax, ``amount_due`` takes off the
customer's credit and what was paid. Every amount is an integer of minor
units, so the totals add up exactly by construction, and :func:`check`
refuses a document whose totals would not.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from fractions import Fraction
from typing import Any, NamedTuple

from rebill.domain.errors import ValidationError
from rebill.domain.money import Money, round_fraction
from rebill.domain.pricing import Bill, Discount, Line, bill
from rebill.domain.status import Event as StatusEvent
from rebill.domain.status import SubscriptionStatus, transition
from rebill.domain.subscription import SubscriptionState
from rebill.domain.tax import TaxRate, TaxSummary, summary, tax_lines


class LineKind(enum.StrEnum):
    ITEM = "ITEM"
    PRORATION = "PRORATION"
    DISCOUNT = "DISCOUNT"
    SHIPPING = "SHIPPING"
    ONE_OFF = "ONE_OFF"
    FEE = "FEE"


class InvoiceStatus(enum.StrEnum):
    DRAFT = "DRAFT"
    OPEN = "OPEN"
    PAID = "PAID"
    VOID = "VOID"
    UNCOLLECTIBLE = "UNCOLLECTIBLE"


class DocumentType(enum.StrEnum):
    INVOICE = "INVOICE"
    PRO_FORMA = "PRO_FORMA"


#: Which status may follow which (DOMAIN.md "Invoices": Status).
TRANSITIONS: dict[InvoiceStatus, frozenset[InvoiceStatus]] = {
    InvoiceStatus.DRAFT: frozenset({InvoiceStatus.OPEN}),
    InvoiceStatus.OPEN: frozenset({InvoiceStatus.PAID, InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE}),
    InvoiceStatus.UNCOLLECTIBLE: frozenset({InvoiceStatus.PAID, InvoiceStatus.VOID}),
    InvoiceStatus.PAID: frozenset(),
    InvoiceStatus.VOID: frozenset(),
}


def can_move(current: InvoiceStatus, to: InvoiceStatus) -> bool:
    return to in TRANSITIONS[current]


@dataclass(frozen=True, slots=True)
class DocLine:
    """One line of an invoice or credit note. ``amount`` is before exclusive tax; a discount is negative."""

    kind: LineKind
    description: str
    amount: Money
    product_id: int | None = None
    quantity: int | None = None
    unit_price: Money | None = None
    period_start: date | None = None
    period_end: date | None = None
    tax_amount: Money | None = None
    # The rate the line is taxed at (None: untaxed), and for an item line what it bills after coupons.
    tax_rate: TaxRate | None = None
    taxable: Money | None = None

    @property
    def tax(self) -> Money:
        return self.tax_amount if self.tax_amount is not None else Money.zero(self.amount.currency)

    @property
    def taxable_base(self) -> Money:
        """What the line's tax is computed on: a discount is inside its items' ``taxable`` already."""
        if self.kind is LineKind.DISCOUNT:
            return Money.zero(self.amount.currency)
        return self.taxable if self.taxable is not None else self.amount

    @property
    def exclusive_tax(self) -> int:
        """The tax this line adds on top of its amount (an inclusive rate's is inside it)."""
        rate = self.tax_rate
        if self.tax_amount is None or (rate is not None and rate.inclusive):
            return 0
        return self.tax_amount.minor


class Sums(NamedTuple):
    """A document's totals in minor units (``Document.sums``): each equals its ``Document`` property."""

    subtotal: int
    discount: int
    shipping: int
    tax: int
    total: int
    credit: int


@dataclass(frozen=True, slots=True)
class Document:
    """An invoice's content: lines, the credit applied to it and what was paid.

    A line taxed at an inclusive rate has its tax inside its amount (it adds
    nothing to the total); an exclusive rate's tax is added.
    """

    currency: str
    lines: tuple[DocLine, ...]
    period_start: date | None = None
    period_end: date | None = None
    credit_applied: Money | None = None
    amount_paid: Money | None = None

    def _sum(self, values: Iterable[Money]) -> Money:
        # Integer minor units of one currency (each line was checked to be in it): no rounding, no Money per step.
        return Money(sum(value.minor for value in values), self.currency)

    @property
    def subtotal(self) -> Money:
        return self._sum(line.amount for line in self.lines)

    @property
    def discount_total(self) -> Money:
        """The discounts, as a positive amount."""
        return -self._sum(line.amount for line in self.lines if line.kind is LineKind.DISCOUNT)

    @property
    def shipping_total(self) -> Money:
        return self._sum(line.amount for line in self.lines if line.kind is LineKind.SHIPPING)

    @property
    def tax_total(self) -> Money:
        return self._sum(line.tax for line in self.lines)

    @property
    def taxes(self) -> tuple[TaxSummary, ...]:
        """The per-rate summary (``Invoice.taxes``): it adds up to ``tax_total``."""
        return summary(self.lines, self.currency)

    @property
    def total(self) -> Money:
        return Money(self.subtotal.minor + sum(line.exclusive_tax for line in self.lines), self.currency)

    @property
    def credit(self) -> Money:
        return self.credit_applied or Money.zero(self.currency)

    def sums(self) -> Sums:
        """Every total of the document in minor units, from one pass over its lines (what is stored)."""
        subtotal = discount = shipping = tax = exclusive = 0
        for line in self.lines:
            minor = line.amount.minor
            subtotal += minor
            if line.kind is LineKind.DISCOUNT:
                discount -= minor
            elif line.kind is LineKind.SHIPPING:
                shipping += minor
            if line.tax_amount is not None:
                tax += line.tax_amount.minor
                if line.tax_rate is None or not line.tax_rate.inclusive:
                    exclusive += line.tax_amount.minor
        credit = self.credit_applied.minor if self.credit_applied is not None else 0
        return Sums(subtotal, discount, shipping, tax, subtotal + exclusive, credit)

    @property
    def paid(self) -> Money:
        return self.amount_paid or Money.zero(self.currency)

    @property
    def amount_due(self) -> Money:
        return self.total - self.credit - self.paid

    @property
    def charge_amount(self) -> Money:
        """What the renewal charges: the total less the credit applied."""
        return self.total - self.credit


def check(document: Document) -> Document:
    """Refuse a document that cannot be issued: a line in another currency, a credit beyond the total."""
    for line in document.lines:
        if line.amount.currency != document.currency:
            raise ValidationError(
                f"line {line.description!r} is in {line.amount.currency}, the invoice in {document.currency}",
                code="CURRENCY_MISMATCH",
            )
    sums = document.sums()
    if sums.credit < 0 or sums.credit > sums.total:
        raise ValidationError(
            f"the credit applied ({document.credit}) must be between 0 and the total ({document.total})",
            code="CREDIT_EXCEEDS_INVOICE",
        )
    return document


# -- lines of a subscription's bill ------------------------------------------------


def bill_lines(
    items: Sequence[tuple[str, int | None, Line]],
    discounts: Sequence[Discount],
    currency: str,
    period_start: date | None,
    period_end: date | None,
    *,
    priced: Bill | None = None,
) -> tuple[DocLine, ...]:
    """The item and discount lines of a bill: ``items`` are ``(name, product_id, line)``.

    They add up to ``pricing.bill(...).total`` exactly: the item lines are the
    bill's line totals and each discount line what that coupon took.
    ``priced`` is that bill when the caller has it already.
    """
    if priced is None:
        priced = bill([line for _, _, line in items], discounts, currency)
    out: list[DocLine] = [
        DocLine(
            LineKind.ITEM,
            name,
            priced.line_totals[line.key],
            product_id=product_id,
            quantity=line.quantity,
            unit_price=line.effective_unit_price,
            period_start=period_start,
            period_end=period_end,
            taxable=priced.net_totals.get(line.key),
        )
        for name, product_id, line in items
    ]
    for discount in discounts:
        taken = priced.discounts[discount.key]
        if taken.is_positive:
            out.append(
                DocLine(
                    LineKind.DISCOUNT,
                    f"Discount {discount.key}",
                    -taken,
                    period_start=period_start,
                    period_end=period_end,
                )
            )
    return tuple(out)


def subscription_lines(
    state: SubscriptionState, period_start: date | None, period_end: date | None, *, pending: bool = True
) -> tuple[DocLine, ...]:
    """The lines of what ``state`` bills for a period: what ``state.next_bill()`` adds up, line by line.

    ``pending=False`` prices the items as they are now, without changes scheduled for the next renewal
    (a draft refreshed during the period it bills).
    """
    items = [
        (item.product.name, item.product.id, item.line(pending=pending)) for item in state.items if item.auto_renew
    ]
    discounts = [c.coupon.discount() for c in state.coupons if c.active]
    # The state's own next bill is these lines priced already (and cached): price them once.
    priced = state.next_bill() if pending else None
    return bill_lines(items, discounts, state.currency, period_start, period_end, priced=priced)


def shipping_line(name: str, amount: Money, period_start: date | None, period_end: date | None) -> DocLine:
    return DocLine(
        LineKind.SHIPPING,
        f"Shipping: {name}",
        amount,
        quantity=1,
        unit_price=amount,
        period_start=period_start,
        period_end=period_end,
    )


def period_lines(
    state: SubscriptionState, period_start: date | None, period_end: date | None, *, pending: bool = True
) -> tuple[DocLine, ...]:
    """Everything a renewal of a period bills (DOMAIN.md "Tax and shipping"): the items and coupons,
    shipping when the subscription ships, and the tax of each line at the customer's rate."""
    lines = subscription_lines(state, period_start, period_end, pending=pending)
    rate = state.shipping_rate
    if rate is not None and rate.amount.is_positive:
        lines = (*lines, shipping_line(rate.name, rate.amount, period_start, period_end))
    return taxed(lines, state.tax_rate)


def taxed(lines: Sequence[DocLine], rate: TaxRate | None) -> tuple[DocLine, ...]:
    """``lines`` with their tax at ``rate`` (as they are when there is no tax)."""
    return tax_lines(lines, rate) if rate is not None else tuple(lines)


def total_of(lines: Sequence[DocLine], currency: str) -> Money:
    """What ``lines`` add up to with their exclusive tax: what the invoice of a charge totals."""
    return Money(sum(line.amount.minor + line.exclusive_tax for line in lines), currency)


def proration_line(amount: Money, period_start: date, period_end: date, what: str = "Proration") -> DocLine:
    """A mid-period change's charge: one line for the rest of the period."""
    return DocLine(
        LineKind.PRORATION,
        f"{what} {period_start.isoformat()} to {period_end.isoformat()}",
        amount,
        period_start=period_start,
        period_end=period_end,
    )


def for_charge(
    lines: Sequence[DocLine],
    charged: Money,
    period_start: date | None,
    period_end: date | None,
) -> Document:
    """The document of a charge of ``charged`` whose lines are ``lines``.

    What the lines bill beyond the charge is credit the customer had on
    balance (applied before charging); lines billing less than the charge
    would mean the charge bills something no line explains, which is a bug.
    """
    currency = charged.currency
    lines = tuple(lines)
    total = total_of(lines, currency)
    credit = total - charged
    if credit.is_negative:
        raise ValidationError(
            f"the charge of {charged} is more than its invoice lines add up to ({total})",
            code="INVOICE_MISMATCH",
        )
    return check(Document(currency, lines, period_start, period_end, credit_applied=credit))


def number_of(prefix: str, year: int, counter: int) -> str:
    """``{prefix}{year}-{counter}``: six digits at least, so numbers sort as they were given."""
    if counter < 1:
        raise ValueError(f"a document counter starts at 1, not {counter}")
    return f"{prefix}{year}-{counter:06d}"


# -- voiding ---------------------------------------------------------------------


def forgive(state: SubscriptionState, *, was_declined: bool, other_retry: date | None) -> SubscriptionState:
    """The subscription once an invoice is voided: its period is forgiven, the schedule goes on.

    A declined renewal's invoice counted as overdue: one fewer is now, and
    with none left the subscription is active again (DOMAIN.md "Invoices":
    voiding "leaves OVERDUE when nothing else is owed"). ``other_retry`` is
    the earliest retry still due of the subscription's other declined
    renewals.
    """
    if not was_declined:
        return state
    overdue = max(state.overdue_count - 1, 0)
    status = state.status
    if status is SubscriptionStatus.OVERDUE and overdue == 0:
        status = transition(status, StatusEvent.PAYMENT_SUCCEEDED)
    return state.evolve(
        overdue_count=overdue,
        status=status,
        next_retry_date=other_retry if status is SubscriptionStatus.OVERDUE else None,
    )


# -- invoicing settings -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InvoicingTerms:
    """A subscription's invoicing settings (seed 001): applied to invoices issued after they change.

    ``payment_terms_days`` None means the seller's default (``REBILL_PAYMENT_TERMS_DAYS``).
    """

    purchase_order: str | None = None
    memo: str | None = None
    document_type: DocumentType = DocumentType.INVOICE
    draft_invoices: bool = False
    draft_days: int = 0
    payment_terms_days: int | None = None

    def to_json(self) -> dict[str, Any] | None:
        """The stored form: only what differs from the defaults (None when nothing does)."""
        out: dict[str, Any] = {}
        if self.purchase_order is not None:
            out["purchaseOrder"] = self.purchase_order
        if self.memo is not None:
            out["memo"] = self.memo
        if self.document_type is not DocumentType.INVOICE:
            out["documentType"] = self.document_type.value
        if self.draft_invoices:
            out["draftInvoices"] = True
        if self.draft_days:
            out["draftDays"] = self.draft_days
        if self.payment_terms_days is not None:
            out["paymentTermsDays"] = self.payment_terms_days
        return out or None


#: The settings of a subscription that set none (most): one immutable value shared by all.
DEFAULT_TERMS = InvoicingTerms()


def terms_of(raw: Mapping[str, Any] | None) -> InvoicingTerms:
    """The settings a subscription's stored ``invoicing`` JSON says (the defaults for None)."""
    if not raw:
        return DEFAULT_TERMS
    return InvoicingTerms(
        purchase_order=raw.get("purchaseOrder"),
        memo=raw.get("memo"),
        document_type=DocumentType(raw.get("documentType") or "INVOICE"),
        draft_invoices=bool(raw.get("draftInvoices", False)),
        draft_days=int(raw.get("draftDays") or 0),
        payment_terms_days=raw.get("paymentTermsDays"),
    )


#: Longest purchase order and memo, and the most days of drafts and of payment terms.
MAX_PURCHASE_ORDER = 200
MAX_MEMO = 2000
MAX_DAYS = 365

#: The keys of an ``invoicing`` change (API.md ``InvoicingSettingsInput``) and their domain names.
INVOICING_KEYS = {
    "purchaseOrder": "purchase_order",
    "memo": "memo",
    "documentType": "document_type",
    "draftInvoices": "draft_invoices",
    "draftDays": "draft_days",
    "paymentTermsDays": "payment_terms_days",
}


def invoicing_changes(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A stored ``invoicing`` change as ``domain.invoice.change_terms`` takes it (keys absent: unchanged)."""
    return {INVOICING_KEYS[key]: value for key, value in raw.items() if key in INVOICING_KEYS}


#: Settings an invoicing change may name (the rest keep their value).
UNSET: Any = object()


def change_terms(
    current: InvoicingTerms,
    *,
    purchase_order: Any = UNSET,
    memo: Any = UNSET,
    document_type: Any = UNSET,
    draft_invoices: Any = UNSET,
    draft_days: Any = UNSET,
    payment_terms_days: Any = UNSET,
) -> InvoicingTerms:
    """``current`` with the settings given (None clears a purchase order, a memo or the terms)."""

    def text(value: Any, limit: int, name: str) -> str | None:
        if value is None:
            return None
        cleaned = str(value).strip()
        if len(cleaned) > limit:
            raise ValidationError(f"{name} is at most {limit} characters", code="INVALID_INVOICING", field=[name])
        return cleaned or None

    def days(value: Any, name: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_DAYS:
            raise ValidationError(
                f"{name} must be a number of days from 0 to {MAX_DAYS}, not {value!r}",
                code="INVALID_INVOICING",
                field=[name],
            )
        return value

    new = current
    if purchase_order is not UNSET:
        new = replace(new, purchase_order=text(purchase_order, MAX_PURCHASE_ORDER, "purchaseOrder"))
    if memo is not UNSET:
        new = replace(new, memo=text(memo, MAX_MEMO, "memo"))
    if document_type is not UNSET and document_type is not None:
        new = replace(new, document_type=DocumentType(document_type))
    if draft_invoices is not UNSET and draft_invoices is not None:
        new = replace(new, draft_invoices=bool(draft_invoices))
    if draft_days is not UNSET and draft_days is not None:
        new = replace(new, draft_days=days(draft_days, "draftDays"))
    if payment_terms_days is not UNSET:
        new = replace(
            new, payment_terms_days=None if payment_terms_days is None else days(payment_terms_days, "paymentTermsDays")
        )
    return new


# -- credit notes ------------------------------------------------------------------


def credit_split(lines: Sequence[DocLine], amount: Money, *, credited: Money, total: Money) -> tuple[DocLine, ...]:
    """The lines of a credit note of ``amount`` against an invoice with ``lines`` (DOMAIN.md "Credit notes").

    The amount is split over the invoice's charging lines (discounts are
    already inside what the others add up to) in proportion to what each
    billed with its tax, each share rounded half-even and the remainder put
    on the largest line; each share is then split into its line's amount and
    tax in the line's own proportion. The credit note's lines add up to
    ``amount`` exactly. ``credited`` is what earlier credit notes took: the
    credited total never exceeds the invoice's ``total``.
    """
    if not amount.is_positive:
        raise ValidationError(f"a credit note is for a positive amount, not {amount}", code="INVALID_AMOUNT")
    if amount.currency != total.currency:
        raise ValidationError(
            f"the credit is in {amount.currency}, the invoice in {total.currency}", code="CURRENCY_MISMATCH"
        )
    if credited + amount > total:
        raise ValidationError(
            f"{amount} more would credit {credited + amount} of an invoice of {total}",
            code="CREDIT_EXCEEDS_INVOICE",
            field=["amount"],
        )
    charging = [line for line in lines if line.kind is not LineKind.DISCOUNT and line.amount.is_positive]
    if not charging:
        return (DocLine(LineKind.ONE_OFF, "Credit", amount),)
    # What each line billed with its tax (an inclusive rate's tax is inside the amount already).
    gross = [line.amount.minor + line.exclusive_tax for line in charging]
    whole = sum(gross)
    shares = [round_fraction(Fraction(amount.minor * g, whole)) for g in gross]
    largest = max(range(len(charging)), key=lambda i: (gross[i], -i))
    shares[largest] += amount.minor - sum(shares)
    out: list[DocLine] = []
    for line, g, share in zip(charging, gross, shares, strict=True):
        if share == 0:
            continue
        tax = round_fraction(Fraction(share * line.tax.minor, g)) if g else 0
        inclusive = line.tax_rate is not None and line.tax_rate.inclusive
        out.append(
            DocLine(
                line.kind,
                line.description,
                Money(share if inclusive else share - tax, amount.currency),
                product_id=line.product_id,
                period_start=line.period_start,
                period_end=line.period_end,
                tax_amount=Money(tax, amount.currency),
                tax_rate=line.tax_rate,
            )
        )
    return tuple(out)


# -- drafts -------------------------------------------------------------------------


def one_off_line(description: str, unit_price: Money, quantity: int) -> DocLine:
    """A line staff add to a draft: a negative unit price makes it a discount of their own."""
    cleaned = description.strip()
    if not cleaned or len(cleaned) > 500:
        raise ValidationError(
            "a line needs a description of 1 to 500 characters", code="INVALID_LINE", field=["description"]
        )
    if not 1 <= quantity <= 1_000_000:
        raise ValidationError(
            f"quantity must be from 1 to 1,000,000, not {quantity}", code="INVALID_LINE", field=["quantity"]
        )
    if unit_price.is_zero:
        raise ValidationError("a line of nothing bills nothing", code="INVALID_LINE", field=["unitPrice"])
    return DocLine(LineKind.ONE_OFF, cleaned, unit_price * quantity, quantity=quantity, unit_price=unit_price)


def refreshed(current: Sequence[DocLine], from_subscription: Sequence[DocLine]) -> tuple[DocLine, ...]:
    """A draft's lines recomputed: the subscription's lines as it is now, then the one-off lines kept."""
    return (*from_subscription, *(line for line in current if line.kind is LineKind.ONE_OFF))


def finalized_charge_amount(document: Document, balance: Money | None) -> tuple[Money, Money]:
    """What a finalized draft charges, and the balance left: the customer's credit is applied first."""
    credit = balance if balance is not None and balance.is_positive else Money.zero(document.currency)
    total = document.total
    if not total.is_positive:
        return Money.zero(document.currency), credit
    used = credit if credit <= total else total
    return total - used, credit - used
