"""What a printed document says, as text: the one input of the PDF and the HTML renderers.

Built only from what was stored on the document when it was finalized (the
customer's and the seller's details, the lines and the totals), never from
the customer or the settings as they are now, so an issued document reads
the same forever. An invoice is built by :func:`invoice_view`, a credit note
by :func:`credit_note_view`: the same :class:`DocumentView` with its own
title, facts and totals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from rebill.domain.money import Money

TITLES = {"INVOICE": "Invoice", "PRO_FORMA": "Pro forma"}
STATUS_WORDS = {
    "DRAFT": "Draft",
    "OPEN": "Open",
    "PAID": "Paid",
    "VOID": "Void",
    "UNCOLLECTIBLE": "Uncollectible",
}
#: Statuses printed as a stamp across the document, so nobody pays a paid invoice or a void one.
STAMPS = frozenset({"DRAFT", "PAID", "VOID"})


@dataclass(frozen=True, slots=True)
class Party:
    """The seller or the customer, as the document prints them."""

    heading: str
    name: str
    address: tuple[str, ...] = ()
    email: str | None = None
    tax_id: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def lines(self) -> tuple[str, ...]:
        """Everything under the heading, one printed line each."""
        tail = (self.email,) if self.email else ()
        tax = (f"Tax ID: {self.tax_id}",) if self.tax_id else ()
        return (self.name, *self.address, *tail, *tax, *self.notes)


@dataclass(frozen=True, slots=True)
class LineView:
    description: str
    period: str
    quantity: str
    unit_price: str
    amount: str


@dataclass(frozen=True, slots=True)
class Total:
    label: str
    amount: str
    strong: bool = False


@dataclass(frozen=True, slots=True)
class DocumentView:
    """A document ready to print: every value already a string."""

    title: str
    number: str
    status: str
    stamp: str | None
    seller: Party
    customer: Party
    facts: tuple[tuple[str, str], ...]
    memo: str | None
    currency: str
    lines: tuple[LineView, ...]
    totals: tuple[Total, ...]
    #: Names the PDF file: the number, or "draft".
    file_stem: str

    def text(self) -> str:
        """All the words of the document, for choosing the fonts that can print them."""
        parts: list[str] = [self.title, self.number, self.status, self.stamp or "", self.memo or "", self.currency]
        parts += [*self.seller.lines, self.seller.heading, *self.customer.lines, self.customer.heading]
        parts += [value for fact in self.facts for value in fact]
        parts += [v for line in self.lines for v in (line.description, line.period, line.quantity, line.unit_price)]
        parts += [line.amount for line in self.lines]
        parts += [v for total in self.totals for v in (total.label, total.amount)]
        return "\n".join(parts)


def day(value: date | None) -> str:
    """A date as ISO 8601 (2027-03-01): unambiguous wherever the document is read."""
    return value.isoformat() if value is not None else ""


def period(start: date | None, end: date | None) -> str:
    if start is None or end is None:
        return day(start or end)
    return f"{day(start)} to {day(end)}"


def address_lines(raw: Any) -> tuple[str, ...]:
    """An address as printed lines: street lines, "city, region postal code", country."""
    if not raw:
        return ()
    if isinstance(raw, str):
        return tuple(line.strip() for line in raw.splitlines() if line.strip())
    if not isinstance(raw, Mapping):
        return ()

    def text(key: str) -> str:
        value = raw.get(key)
        return str(value).strip() if value is not None else ""

    place = ", ".join(p for p in (text("city"), " ".join(p for p in (text("region"), text("postalCode")) if p)) if p)
    return tuple(p for p in (text("line1"), text("line2"), place, text("country")) if p)


def note_lines(raw: Any) -> tuple[str, ...]:
    """Free-form seller details (``bankDetails``): a string, a list of lines, or labelled values."""
    if not raw:
        return ()
    if isinstance(raw, str):
        return tuple(line.strip() for line in raw.splitlines() if line.strip())
    if isinstance(raw, Mapping):
        return tuple(f"{key}: {value}" for key, value in raw.items() if value not in (None, ""))
    if isinstance(raw, list | tuple):
        return tuple(str(item) for item in raw if item not in (None, ""))
    return (str(raw),)


def seller_party(seller: Mapping[str, Any] | None) -> Party:
    seller = seller or {}
    return Party(
        heading="From",
        name=str(seller.get("name") or ""),
        address=address_lines(seller.get("address")),
        email=_text(seller.get("email")),
        tax_id=_text(seller.get("taxId")),
        notes=note_lines(seller.get("bankDetails")),
    )


def invoice_view(invoice: Mapping[str, Any], lines: Iterable[Mapping[str, Any]]) -> DocumentView:
    """An invoice's document from its stored row and line rows (``invoices``, ``invoice_lines``)."""
    currency = str(invoice["currency"])

    def money(minor: int | None) -> str:
        return Money(int(minor), currency).amount_str if minor is not None else ""

    status = str(invoice["status"])
    number = invoice["number"] or "Draft"
    total, credit, paid = invoice["total_minor"], invoice["credit_applied_minor"], invoice["amount_paid_minor"]
    facts = [
        ("Number", number),
        ("Issue date", day(invoice["issue_date"])),
        ("Due date", day(invoice["due_date"])),
        ("Period", period(invoice["period_start"], invoice["period_end"])),
        ("Purchase order", invoice["purchase_order"] or ""),
        ("Status", STATUS_WORDS.get(status, status.title())),
        ("Currency", currency),
    ]
    return DocumentView(
        title=TITLES.get(str(invoice["document_type"]), "Invoice"),
        number=number,
        status=STATUS_WORDS.get(status, status.title()),
        stamp=status if status in STAMPS else None,
        seller=seller_party(invoice["seller"]),
        customer=Party(
            heading="Bill to",
            name=invoice["customer_name"] or "",
            address=address_lines(invoice["billing_address"]),
            email=invoice["customer_email"],
            tax_id=invoice["customer_tax_id"],
        ),
        facts=tuple((label, value) for label, value in facts if value),
        memo=invoice["memo"] or None,
        currency=currency,
        lines=tuple(_line_view(line, money) for line in lines),
        totals=(
            Total("Subtotal", money(invoice["subtotal_minor"])),
            Total("Includes discounts", money(-invoice["discount_minor"])),
            Total("Includes shipping", money(invoice["shipping_minor"])),
            Total("Tax", money(invoice["tax_minor"])),
            Total("Total", money(total), strong=True),
            Total("Credit applied", money(credit)),
            Total("Amount paid", money(paid)),
            # A voided invoice is forgiven: nothing is due on it any more.
            Total(f"Amount due ({currency})", money(0 if status == "VOID" else total - credit - paid), strong=True),
        ),
        file_stem=_file_stem(invoice["number"]),
    )


#: How a credit note's money went back (``credit_notes.refunded``).
SETTLEMENTS = {True: "Refund to payment method", False: "Credit to customer balance"}


def credit_note_view(
    note: Mapping[str, Any], lines: Iterable[Mapping[str, Any]], *, invoice_number: str | None
) -> DocumentView:
    """A credit note's document from its stored row and line rows (``credit_notes``, ``credit_note_lines``).

    ``invoice_number`` is the number of the invoice it credits: given at that
    invoice's finalization and never changed after, so it is as fixed as what
    the credit note stored itself. Amounts print as stored, positive: the
    title says they are given back.
    """
    currency = str(note["currency"])

    def money(minor: int | None) -> str:
        return Money(int(minor), currency).amount_str if minor is not None else ""

    facts = [
        ("Number", note["number"]),
        ("Issue date", day(note["issue_date"])),
        ("Credits invoice", invoice_number or ""),
        ("Reason", note["reason"] or ""),
        ("Settlement", SETTLEMENTS[bool(note["refunded"])]),
        ("Currency", currency),
    ]
    return DocumentView(
        title="Credit note",
        number=note["number"],
        status="Issued",
        stamp=None,
        seller=seller_party(note["seller"]),
        customer=Party(
            heading="Credit to",
            name=note["customer_name"] or "",
            address=address_lines(note["billing_address"]),
            email=note["customer_email"],
            tax_id=note["customer_tax_id"],
        ),
        facts=tuple((label, value) for label, value in facts if value),
        memo=None,
        currency=currency,
        lines=tuple(_line_view(line, money) for line in lines),
        totals=(
            Total("Subtotal", money(note["subtotal_minor"])),
            Total("Tax", money(note["tax_minor"])),
            Total(f"Total credited ({currency})", money(note["total_minor"]), strong=True),
        ),
        file_stem=_file_stem(note["number"]),
    )


def _line_view(line: Mapping[str, Any], money: Callable[[int | None], str]) -> LineView:
    return LineView(
        description=line["description"],
        period=period(line["period_start"], line["period_end"]),
        quantity=str(line["quantity"]) if line["quantity"] is not None else "",
        unit_price=money(line["unit_price_minor"]),
        amount=money(line["amount_minor"]),
    )


def _text(value: Any) -> str | None:
    return str(value).strip() or None if value is not None else None


def _file_stem(number: str | None) -> str:
    """A number as a file name: prefixes may hold "/" (``REBILL_INVOICE_PREFIX``), file names may not."""
    if not number:
        return "draft"
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "-" for c in number)
