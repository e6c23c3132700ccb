"""The accountant's export (DOMAIN.md "Invoices"): finalized documents of a date range as CSV rows.

One row per document and tax rate, in fixed columns, ordered by issue date,
then invoices before credit notes (a credit note never reads before the
invoice it credits, whatever the series' prefixes), then number. Each kind
of document is a *source*: a ``SELECT`` that groups its lines per document
and rate under the same labels (:func:`invoice_groups`,
:func:`credit_note_groups`, whose sums are negated), and a ``COUNT`` of its
documents. The sources are read as one ordered ``UNION ALL`` through a
server-side cursor, a batch at a time, so a year of invoices never sits in
memory.

Text that comes from the database is escaped against spreadsheet formulas
(:func:`escape_formula`); numbers and dates written here are not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select, String, and_, case, func, literal, null, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from rebill.db import tables as t
from rebill.domain.cadence import local_today
from rebill.domain.invoice import InvoiceStatus
from rebill.domain.money import Money
from rebill.ids import to_global_id

INVOICES = t.table_of(t.Invoice)
LINES = t.table_of(t.InvoiceLine)
NOTES = t.table_of(t.CreditNote)
NOTE_LINES = t.table_of(t.CreditNoteLine)

#: The header row: DOMAIN.md's columns, in order.
COLUMNS = (
    "number",
    "type",
    "status",
    "issue_date",
    "customer_id",
    "customer_name",
    "customer_email",
    "tax_id",
    "country",
    "net",
    "tax_rate",
    "tax",
    "total",
    "currency",
    "paid_at",
)

#: Finalized documents: everything but drafts.
EXPORTED_STATUSES = tuple(s.value for s in InvoiceStatus if s is not InvoiceStatus.DRAFT)

#: A credit note's ``type``, and its ``status``: it is final when written and has no other state.
CREDIT_NOTE = "CREDIT_NOTE"
CREDIT_NOTE_STATUS = "ISSUED"

#: Characters that make a spreadsheet read a cell as a formula when they lead it (OWASP "CSV Injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def escape_formula(text: str | None) -> str:
    """A text cell that no spreadsheet runs: a leading formula character gets a single quote before it."""
    if not text:
        return ""
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


class ExportRow(NamedTuple):
    """One document and tax rate. A credit note's amounts are negative.

    A tuple, not a frozen dataclass: a year of invoices builds a million of them.
    """

    number: str
    document_type: str
    status: str
    issue_date: date
    customer_id: int
    customer_name: str | None
    customer_email: str | None
    tax_id: str | None
    country: str | None
    net: Money
    tax_rate: str  # a percentage, as a decimal string ("20", "8.875")
    tax: Money
    paid_at: datetime | None

    @property
    def total(self) -> Money:
        # Line amounts are before exclusive tax. An inclusive rate (none exists yet) has its tax inside
        # the line amounts: its source will report the net without it, so net + tax stays the total.
        return Money(self.net.minor + self.tax.minor, self.net.currency)


def csv_fields(row: ExportRow, time_zone: str = "UTC") -> list[str]:
    """The CSV cells of ``row``, in :data:`COLUMNS` order; ``paid_at`` is the payment's date in ``time_zone``."""
    return [
        escape_formula(row.number),
        escape_formula(row.document_type),
        escape_formula(row.status),
        row.issue_date.isoformat(),
        escape_formula(to_global_id("Customer", row.customer_id)),
        escape_formula(row.customer_name),
        escape_formula(row.customer_email),
        escape_formula(row.tax_id),
        escape_formula(row.country),
        row.net.amount_str,
        row.tax_rate,
        row.tax.amount_str,
        row.total.amount_str,
        escape_formula(row.net.currency),
        local_today(row.paid_at, time_zone).isoformat() if row.paid_at is not None else "",
    ]


# -- sources ---------------------------------------------------------------------
#
# Every source selects these labels, in this order, one row per document and tax rate:
# number, document_type, status, issue_date, customer_id, customer_name, customer_email,
# tax_id, country, currency, net_minor, tax_rate, tax_minor, paid_at.


def _invoice_range(start: date, end: date) -> ColumnElement[bool]:
    return and_(
        INVOICES.c.status.in_(EXPORTED_STATUSES),
        INVOICES.c.issue_date >= start,
        INVOICES.c.issue_date <= end,
    )


def invoice_groups(start: date, end: date) -> Select[Any]:
    """Finalized invoices and pro formas issued from ``start`` to ``end`` (inclusive), per tax rate of their lines.

    Lines carry no tax rate yet, so each invoice is one group at rate 0; when
    they do, the rate joins the ``GROUP BY``. An invoice without lines (none
    is written so) still appears, with its own totals, so that no number is
    missing from the export.
    """
    return (
        select(
            INVOICES.c.number,
            INVOICES.c.document_type,
            INVOICES.c.status,
            INVOICES.c.issue_date,
            INVOICES.c.customer_id,
            INVOICES.c.customer_name,
            INVOICES.c.customer_email,
            INVOICES.c.customer_tax_id.label("tax_id"),
            INVOICES.c.billing_address["country"].astext.label("country"),
            INVOICES.c.currency,
            func.coalesce(func.sum(LINES.c.amount_minor), INVOICES.c.subtotal_minor).label("net_minor"),
            literal("0", String).label("tax_rate"),
            func.coalesce(func.sum(LINES.c.tax_minor), INVOICES.c.tax_minor).label("tax_minor"),
            INVOICES.c.paid_at,
        )
        .select_from(INVOICES.outerjoin(LINES, LINES.c.invoice_id == INVOICES.c.id))
        .where(_invoice_range(start, end))
        .group_by(INVOICES.c.id)
    )


def invoice_count(start: date, end: date) -> Select[Any]:
    """How many invoices :func:`invoice_groups` exports (documents, not rows)."""
    return select(func.count()).select_from(INVOICES).where(_invoice_range(start, end))


def _credit_note_range(start: date, end: date) -> ColumnElement[bool]:
    return and_(NOTES.c.issue_date >= start, NOTES.c.issue_date <= end)


def credit_note_groups(start: date, end: date) -> Select[Any]:
    """Credit notes issued from ``start`` to ``end`` (inclusive), per tax rate of their lines, negated.

    Type ``CREDIT_NOTE``, status ``ISSUED`` (a credit note is final when
    written); the customer's details are the ones it stored at issue.
    ``paid_at`` is when the money went back for a refund (the credit note
    is written in the refund's transaction, so it is the issue date), and
    empty for a credit to the customer's balance: no money was paid out,
    and a later invoice applies it.
    """
    return (
        select(
            NOTES.c.number,
            literal(CREDIT_NOTE, String).label("document_type"),
            literal(CREDIT_NOTE_STATUS, String).label("status"),
            NOTES.c.issue_date,
            NOTES.c.customer_id,
            NOTES.c.customer_name,
            NOTES.c.customer_email,
            NOTES.c.customer_tax_id.label("tax_id"),
            NOTES.c.billing_address["country"].astext.label("country"),
            NOTES.c.currency,
            (-func.coalesce(func.sum(NOTE_LINES.c.amount_minor), NOTES.c.subtotal_minor)).label("net_minor"),
            literal("0", String).label("tax_rate"),
            (-func.coalesce(func.sum(NOTE_LINES.c.tax_minor), NOTES.c.tax_minor)).label("tax_minor"),
            case((NOTES.c.refunded, NOTES.c.created_at), else_=null()).label("paid_at"),
        )
        .select_from(NOTES.outerjoin(NOTE_LINES, NOTE_LINES.c.credit_note_id == NOTES.c.id))
        .where(_credit_note_range(start, end))
        .group_by(NOTES.c.id)
    )


def credit_note_count(start: date, end: date) -> Select[Any]:
    """How many credit notes :func:`credit_note_groups` exports."""
    return select(func.count()).select_from(NOTES).where(_credit_note_range(start, end))


@dataclass(frozen=True, slots=True)
class Source:
    """One kind of document in the export: its rows per document and rate, and a count of its documents."""

    groups: Callable[[date, date], Select[Any]]
    count: Callable[[date, date], Select[Any]]


#: Every kind of document exported.
SOURCES: Sequence[Source] = (
    Source(invoice_groups, invoice_count),
    Source(credit_note_groups, credit_note_count),
)


# -- reading ---------------------------------------------------------------------


def export_statement(start: date, end: date, sources: Sequence[Source] = SOURCES) -> Select[Any]:
    """Every source's rows as one statement, ordered by issue date, invoices before credit notes, number, tax rate."""
    merged = union_all(*(source.groups(start, end) for source in sources)).subquery("documents")
    return select(merged).order_by(
        merged.c.issue_date, merged.c.document_type == CREDIT_NOTE, merged.c.number, merged.c.tax_rate
    )


async def count_documents(conn: AsyncConnection, start: date, end: date, sources: Sequence[Source] = SOURCES) -> int:
    """How many documents the export of ``start`` to ``end`` holds (rows can be more: one per tax rate)."""
    total = 0
    for source in sources:
        total += int((await conn.execute(source.count(start, end))).scalar_one())
    return total


async def export_rows(
    conn: AsyncConnection,
    start: date,
    end: date,
    *,
    batch_size: int = 2000,
    sources: Sequence[Source] = SOURCES,
) -> AsyncIterator[ExportRow]:
    """The export's rows, in order, read ``batch_size`` at a time through a server-side cursor."""
    result = await conn.stream(export_statement(start, end, sources), execution_options={"yield_per": batch_size})
    async for batch in result.partitions():
        for (
            number,
            document_type,
            status,
            issue_date,
            customer_id,
            customer_name,
            customer_email,
            tax_id,
            country,
            currency,
            net_minor,
            tax_rate,
            tax_minor,
            paid_at,
        ) in batch:
            yield ExportRow(
                number,
                document_type,
                status,
                issue_date,
                customer_id,
                customer_name,
                customer_email,
                tax_id,
                country,
                Money(int(net_minor), currency),
                tax_rate,
                Money(int(tax_minor), currency),
                paid_at,
            )
