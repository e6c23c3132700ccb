"""Invoices: the document of every charge, as the API shows it (API.md "Invoices and credit notes")."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from rebill.documents import links
from rebill.domain import invoice as doc
from rebill.domain.money import Money as DomainMoney
from rebill.domain.tax import TaxSummary, percentage_text
from rebill.domain.tax import summary as tax_summary
from rebill.schema.catalog import Address, Product
from rebill.schema.common import Money, Node, PageInfo, connection, to_global_id

if TYPE_CHECKING:
    from rebill.resolvers.pages import Page
    from rebill.schema.catalog import Customer
    from rebill.schema.subscriptions import Renewal, Subscription
    from rebill.schema.taxes import TaxRate


@strawberry.enum(description="Where an invoice is: DRAFT → OPEN → PAID; OPEN → VOID or UNCOLLECTIBLE → PAID or VOID.")
class InvoiceStatus(enum.Enum):
    DRAFT = strawberry.enum_value("DRAFT", description="Being reviewed: no number, nothing charged yet")
    OPEN = strawberry.enum_value("OPEN", description="Finalized and numbered; payment is awaited or in dunning")
    PAID = strawberry.enum_value("PAID", description="Paid in full")
    VOID = strawberry.enum_value("VOID", description="Forgiven or never charged; nothing more is collected")
    UNCOLLECTIBLE = strawberry.enum_value(
        "UNCOLLECTIBLE",
        description="Dunning ended unpaid or the subscription was cancelled; a later payment settles it",
    )


@strawberry.enum(description="What a document is: an invoice, or a pro forma asking for payment before it.")
class DocumentType(enum.Enum):
    INVOICE = strawberry.enum_value("INVOICE", description="An invoice (INV- series)")
    PRO_FORMA = strawberry.enum_value("PRO_FORMA", description="A pro forma (PF- series); the invoice follows payment")


@strawberry.enum(description="What an invoice line bills.")
class InvoiceLineKind(enum.Enum):
    ITEM = strawberry.enum_value("ITEM", description="A subscription item for the period")
    PRORATION = strawberry.enum_value("PRORATION", description="A mid-period change, for the rest of the period")
    DISCOUNT = strawberry.enum_value("DISCOUNT", description="A coupon (negative)")
    SHIPPING = strawberry.enum_value("SHIPPING", description="Shipping")
    ONE_OFF = strawberry.enum_value("ONE_OFF", description="A line added by staff to a draft")
    FEE = strawberry.enum_value("FEE", description="A fee, such as an early termination fee")


def _money(minor: int | None, currency: str) -> Money | None:
    return Money.of(DomainMoney(minor, currency)) if minor is not None else None


@strawberry.type(description="One line of an invoice: what it bills, for which period, and its tax.")
class InvoiceLine:
    id: strawberry.ID = strawberry.field(description="The line's id (unique within its invoice)")
    kind: InvoiceLineKind = strawberry.field(description="What the line bills")
    description: str = strawberry.field(description="What the customer reads")
    quantity: int | None = strawberry.field(description="How many units, for an item")
    unit_price: Money | None = strawberry.field(description="The price of one unit, for an item")
    amount: Money = strawberry.field(description="The line's amount before exclusive tax; a discount is negative")
    period_start: date | None = strawberry.field(description="First day of the period the line bills")
    period_end: date | None = strawberry.field(description="Day the period the line bills ends (exclusive)")
    tax_amount: Money = strawberry.field(description="The tax on this line")
    product_pk: strawberry.Private[int | None]
    tax_rate_pk: strawberry.Private[int | None] = None

    @strawberry.field(description="The rate the line was taxed at (null: untaxed, or the customer is exempt)")
    async def tax_rate(self, info: Info) -> Annotated[TaxRate, strawberry.lazy("rebill.schema.taxes")] | None:
        return await _tax_rate(info, self.tax_rate_pk)

    @strawberry.field(description="The product of an item line")
    async def product(self, info: Info) -> Product | None:
        if self.product_pk is None:
            return None
        from rebill.db.repositories import SubscriptionRepository

        async with info.context.services.sessions() as session:
            loaded = await SubscriptionRepository(session).catalog.load_products([self.product_pk])
        return Product.of(loaded[self.product_pk]) if self.product_pk in loaded else None

    @classmethod
    def of_row(cls, row: Any, currency: str) -> InvoiceLine:
        return cls(
            id=strawberry.ID(str(row.id)),
            kind=InvoiceLineKind(row.kind),
            description=row.description,
            quantity=row.quantity,
            unit_price=_money(row.unit_price_minor, currency),
            amount=Money.of(DomainMoney(row.amount_minor, currency)),
            period_start=row.period_start,
            period_end=row.period_end,
            tax_amount=Money.of(DomainMoney(row.tax_minor, currency)),
            product_pk=row.product_id,
            tax_rate_pk=row.tax_rate_id,
        )

    @classmethod
    def of_line(cls, position: int, line: doc.DocLine) -> InvoiceLine:
        return cls(
            id=strawberry.ID(str(position + 1)),
            kind=InvoiceLineKind(line.kind.value),
            description=line.description,
            quantity=line.quantity,
            unit_price=Money.of(line.unit_price) if line.unit_price is not None else None,
            amount=Money.of(line.amount),
            period_start=line.period_start,
            period_end=line.period_end,
            tax_amount=Money.of(line.tax),
            product_pk=line.product_id,
            tax_rate_pk=line.tax_rate.id if line.tax_rate is not None else None,
        )


@strawberry.type(description="What an invoice or a charge's what-if would bill; computed, never stored.")
class InvoicePreview:
    currency: str = strawberry.field(description="The subscription's currency")
    issue_date: date | None = strawberry.field(description="When it would be issued")
    period_start: date | None = strawberry.field(description="First day of the period billed")
    period_end: date | None = strawberry.field(description="Day the period billed ends (exclusive)")
    lines: list[InvoiceLine] = strawberry.field(description="Its lines, in order")
    subtotal: Money = strawberry.field(description="The sum of the lines (discounts are negative)")
    discount_total: Money = strawberry.field(description="The discounts, as a positive amount")
    shipping_total: Money = strawberry.field(description="The shipping lines")
    tax_total: Money = strawberry.field(description="The tax of every line")
    total: Money = strawberry.field(description="Subtotal plus exclusive tax")
    credit_applied: Money = strawberry.field(description="The customer's credit balance applied before charging")
    amount_due: Money = strawberry.field(description="What would be charged: total less credit applied")
    taxes: list[InvoiceTax] = strawberry.field(description="The tax per rate; it adds up to taxTotal")

    @classmethod
    def of(cls, document: doc.Document, issue_date: date | None = None) -> InvoicePreview:
        return cls(
            taxes=[InvoiceTax.of(summary) for summary in document.taxes],
            currency=document.currency,
            issue_date=issue_date,
            period_start=document.period_start,
            period_end=document.period_end,
            lines=[InvoiceLine.of_line(n, line) for n, line in enumerate(document.lines)],
            subtotal=Money.of(document.subtotal),
            discount_total=Money.of(document.discount_total),
            shipping_total=Money.of(document.shipping_total),
            tax_total=Money.of(document.tax_total),
            total=Money.of(document.total),
            credit_applied=Money.of(document.credit),
            amount_due=Money.of(document.charge_amount),
        )

    @classmethod
    def of_invoice(cls, row: Any, lines: list[Any]) -> InvoicePreview:
        c = row.currency

        def m(minor: int) -> Money:
            return Money.of(DomainMoney(minor, c))

        return cls(
            taxes=taxes_of(lines, c),
            currency=c,
            issue_date=row.issue_date,
            period_start=row.period_start,
            period_end=row.period_end,
            lines=[InvoiceLine.of_row(r, c) for r in lines],
            subtotal=m(row.subtotal_minor),
            discount_total=m(row.discount_minor),
            shipping_total=m(row.shipping_minor),
            tax_total=m(row.tax_minor),
            total=m(row.total_minor),
            credit_applied=m(row.credit_applied_minor),
            amount_due=m(row.total_minor - row.credit_applied_minor),
        )


@strawberry.type(description="The document of a charge: numbered lines and totals, as they were at finalization.")
class Invoice(Node):
    number: str | None = strawberry.field(description="{prefix}{year}-{counter}, gapless per series; null while DRAFT")
    status: InvoiceStatus = strawberry.field(description="Where the invoice is")
    document_type: DocumentType = strawberry.field(description="Invoice or pro forma")
    currency: str = strawberry.field(description="The subscription's currency")
    issue_date: date | None = strawberry.field(description="When it was finalized, in the seller's time zone")
    due_date: date | None = strawberry.field(description="When payment is due (issue date plus the payment terms)")
    period_start: date | None = strawberry.field(description="First day of the period billed")
    period_end: date | None = strawberry.field(description="Day the period billed ends (exclusive)")
    subtotal: Money = strawberry.field(description="The sum of the lines (discounts are negative)")
    discount_total: Money = strawberry.field(description="The discounts, as a positive amount")
    shipping_total: Money = strawberry.field(description="The shipping lines")
    tax_total: Money = strawberry.field(description="The tax of every line")
    total: Money = strawberry.field(description="Subtotal plus exclusive tax")
    credit_applied: Money = strawberry.field(description="The customer's credit balance applied before charging")
    amount_paid: Money = strawberry.field(description="What was paid")
    amount_due: Money = strawberry.field(description="What is left to pay: total less credit applied and paid")
    credited_total: Money = strawberry.field(description="What credit notes gave back against this invoice")
    purchase_order: str | None = strawberry.field(description="The subscription's purchase order at finalization")
    memo: str | None = strawberry.field(description="The subscription's invoice memo at finalization")
    billing_address: Address | None = strawberry.field(description="The customer's billing address at finalization")
    customer_tax_id: str | None = strawberry.field(description="The customer's tax id at finalization")
    seller: JSON | None = strawberry.field(description="REBILL_SELLER as it was at finalization")
    void_reason: str | None = strawberry.field(description="Why it was voided")
    created_at: datetime = strawberry.field(description="When it was created")
    finalized_at: datetime | None = strawberry.field(description="When it was finalized and numbered")
    paid_at: datetime | None = strawberry.field(description="When it was paid")
    voided_at: datetime | None = strawberry.field(description="When it was voided")
    pk: strawberry.Private[int]
    subscription_pk: strawberry.Private[int | None]
    customer_pk: strawberry.Private[int]
    renewal_pk: strawberry.Private[int | None]
    pro_forma_pk: strawberry.Private[int | None]
    customer_name: strawberry.Private[str | None]
    customer_email: strawberry.Private[str | None]
    # A dry run's lines, read before its rollback (the stored ones are what it would not change).
    held_lines: strawberry.Private[list[Any] | None] = None

    @classmethod
    def of(cls, row: Any) -> Invoice:
        c = row.currency

        def m(minor: int) -> Money:
            return Money.of(DomainMoney(minor, c))

        return cls(
            id=strawberry.ID(to_global_id("Invoice", row.id)),
            number=row.number,
            status=InvoiceStatus(row.status),
            document_type=DocumentType(row.document_type),
            currency=c,
            issue_date=row.issue_date,
            due_date=row.due_date,
            period_start=row.period_start,
            period_end=row.period_end,
            subtotal=m(row.subtotal_minor),
            discount_total=m(row.discount_minor),
            shipping_total=m(row.shipping_minor),
            tax_total=m(row.tax_minor),
            total=m(row.total_minor),
            credit_applied=m(row.credit_applied_minor),
            amount_paid=m(row.amount_paid_minor),
            # A voided invoice is forgiven: nothing is due on it any more.
            amount_due=m(
                0 if row.status == "VOID" else row.total_minor - row.credit_applied_minor - row.amount_paid_minor
            ),
            credited_total=m(row.credited_minor),
            purchase_order=row.purchase_order,
            memo=row.memo,
            billing_address=Address.of(row.billing_address),
            customer_tax_id=row.customer_tax_id,
            seller=row.seller,
            void_reason=row.void_reason,
            created_at=row.created_at,
            finalized_at=row.finalized_at,
            paid_at=row.paid_at,
            voided_at=row.voided_at,
            pk=row.id,
            subscription_pk=row.subscription_id,
            customer_pk=row.customer_id,
            renewal_pk=row.renewal_id,
            pro_forma_pk=row.pro_forma_id,
            customer_name=row.customer_name,
            customer_email=row.customer_email,
        )

    @strawberry.field(description="The invoice as a PDF (absolute URL): for an API key with read, or its customer")
    def pdf_url(self, info: Info) -> str:
        return links.absolute(info.context.services.settings.public_base_url, links.pdf_path(links.INVOICES, self.id))

    @strawberry.field(description="The invoice as a web page (absolute URL), with a link to its PDF; same readers")
    def hosted_url(self, info: Info) -> str:
        return links.absolute(info.context.services.settings.public_base_url, links.page_path(links.INVOICES, self.id))

    @strawberry.field(description="Its lines, in order")
    async def lines(self, info: Info) -> list[InvoiceLine]:
        rows = self.held_lines
        if rows is None:
            rows = await info.context.loaders.invoice_lines_by_invoice.load(self.pk)
        return [InvoiceLine.of_row(r, self.currency) for r in rows]

    @strawberry.field(description="The pro forma that asked for the payment this invoice documents")
    async def pro_forma(self, info: Info) -> Invoice | None:
        if self.pro_forma_pk is None:
            return None
        from rebill.resolvers.invoices import invoice_by_pk

        return await invoice_by_pk(info, self.pro_forma_pk)

    @strawberry.field(description="A paid pro forma's invoice")
    async def final_invoice(self, info: Info) -> Invoice | None:
        if self.document_type is not DocumentType.PRO_FORMA:
            return None
        from rebill.resolvers.invoices import final_invoice_of

        return await final_invoice_of(info, self.pk)

    @strawberry.field(description="The credit notes issued against it, oldest first")
    async def credit_notes(self, info: Info) -> list[CreditNote]:
        rows = await info.context.loaders.credit_notes_by_invoice.load(self.pk)
        return [CreditNote.of(r) for r in rows]

    @strawberry.field(description="The tax per rate: what each rate was applied to, and the tax it gave")
    async def taxes(self, info: Info) -> list[InvoiceTax]:
        rows = self.held_lines
        if rows is None:
            rows = await info.context.loaders.invoice_lines_by_invoice.load(self.pk)
        return taxes_of(rows, self.currency)

    @strawberry.field(description="The subscription billed")
    async def subscription(
        self, info: Info
    ) -> Annotated[Subscription, strawberry.lazy("rebill.schema.subscriptions")] | None:
        from rebill.schema.subscriptions import Subscription

        if self.subscription_pk is None:
            return None
        state = await info.context.loaders.subscription_by_id.load(self.subscription_pk)
        return Subscription.of(state) if state is not None else None

    @strawberry.field(description="The customer billed")
    async def customer(self, info: Info) -> Annotated[Customer, strawberry.lazy("rebill.schema.catalog")]:
        from rebill.schema.catalog import Customer

        row = await info.context.loaders.customer_by_id.load(self.customer_pk)
        return Customer.of(row)

    @strawberry.field(description="The renewal this invoice documents")
    async def renewal(self, info: Info) -> Annotated[Renewal, strawberry.lazy("rebill.schema.subscriptions")] | None:
        from rebill.db import tables as t
        from rebill.db.repositories import renewal_from_row
        from rebill.schema.subscriptions import Renewal

        if self.renewal_pk is None:
            return None
        table = t.table_of(t.Renewal)
        async with info.context.services.sessions() as session:
            row = (await session.execute(table.select().where(table.c.id == self.renewal_pk))).first()
        return Renewal.of(renewal_from_row(row)) if row is not None else None


@strawberry.type(description="The tax of one rate on an invoice: what it was applied to and what it came to.")
class InvoiceTax:
    name: str = strawberry.field(description="The rate's name, as it was when the invoice was issued")
    percentage: str = strawberry.field(description="The rate, as a decimal string (0 for an exempt customer)")
    inclusive: bool = strawberry.field(description="Whether the tax is inside the line amounts")
    taxable_amount: Money = strawberry.field(description="What the rate applied to, net of its tax")
    amount: Money = strawberry.field(description="The tax")
    exempt_reason: str | None = strawberry.field(description="Why the customer pays no tax, when exempt")
    tax_rate_pk: strawberry.Private[int | None] = None

    @strawberry.field(description="The rate (null for an exempt customer's zero rate)")
    async def tax_rate(self, info: Info) -> Annotated[TaxRate, strawberry.lazy("rebill.schema.taxes")] | None:
        return await _tax_rate(info, self.tax_rate_pk)

    @classmethod
    def of(cls, summary: TaxSummary) -> InvoiceTax:
        rate = summary.rate
        return cls(
            name=rate.name,
            percentage=percentage_text(rate.percentage),
            inclusive=rate.inclusive,
            taxable_amount=Money.of(summary.taxable),
            amount=Money.of(summary.amount),
            exempt_reason=rate.exempt_reason,
            tax_rate_pk=rate.id,
        )


def taxes_of(rows: list[Any], currency: str) -> list[InvoiceTax]:
    """The per-rate summary of stored lines (of an invoice or a credit note)."""
    from rebill.invoicing.issue import line_of

    return [InvoiceTax.of(summary) for summary in tax_summary([line_of(r, currency) for r in rows], currency)]


async def _tax_rate(info: Info, key: int | None) -> TaxRate | None:
    if key is None:
        return None
    from rebill.schema.taxes import TaxRate

    row = await info.context.loaders.tax_rate_by_id.load(key)
    return TaxRate.of(row) if row is not None else None


@strawberry.type(description="An edge of a page of invoices.")
class InvoiceEdge:
    cursor: str = strawberry.field(description="Pass as after or before to page from here")
    node: Invoice = strawberry.field(description="The invoice")


@strawberry.type(description="A page of invoices, newest first.")
class InvoiceConnection:
    edges: list[InvoiceEdge] = strawberry.field(description="The invoices of this page")
    page_info: PageInfo = strawberry.field(description="Where this page is")
    total_count: int = strawberry.field(description="How many invoices match, in all pages")


def invoice_connection(page: Page) -> InvoiceConnection:
    return connection(page, InvoiceEdge, InvoiceConnection, Invoice.of)


@strawberry.input(description="Which invoices to list; every field given must match.")
class InvoiceFilter:
    subscription_id: strawberry.ID | None = strawberry.field(default=None, description="Of this subscription")
    customer_id: strawberry.ID | None = strawberry.field(default=None, description="Of this customer")
    status: list[InvoiceStatus] | None = strawberry.field(default=None, description="In one of these statuses")
    document_type: DocumentType | None = strawberry.field(default=None, description="Of this document type")
    number: str | None = strawberry.field(default=None, description="With this number")
    issued_from: date | None = strawberry.field(default=None, description="Issued on or after this day")
    issued_to: date | None = strawberry.field(default=None, description="Issued on or before this day")


@strawberry.type(description="A subscription's invoicing settings; a change applies to invoices issued after it.")
class InvoicingSettings:
    purchase_order: str | None = strawberry.field(description="Printed on every invoice issued after it is set")
    memo: str | None = strawberry.field(description="A note printed on every invoice")
    document_type: DocumentType = strawberry.field(description="What a charge issues: an invoice or a pro forma")
    draft_invoices: bool = strawberry.field(description="Whether scheduled renewals wait in a draft for review")
    draft_days: int = strawberry.field(description="How many days a draft waits before it is finalized")
    payment_terms_days: int = strawberry.field(description="Days after issue an invoice is due")

    @classmethod
    def of(cls, raw: Any, default_terms: int) -> InvoicingSettings:
        terms = doc.terms_of(raw)
        return cls(
            purchase_order=terms.purchase_order,
            memo=terms.memo,
            document_type=DocumentType(terms.document_type.value),
            draft_invoices=terms.draft_invoices,
            draft_days=terms.draft_days,
            payment_terms_days=terms.payment_terms_days if terms.payment_terms_days is not None else default_terms,
        )


@strawberry.input(description="Invoicing settings to change; fields left out keep their value, null clears one.")
class InvoicingSettingsInput:
    purchase_order: str | None = strawberry.field(default=strawberry.UNSET, description="A purchase order (null: none)")
    memo: str | None = strawberry.field(default=strawberry.UNSET, description="A memo (null: none)")
    document_type: DocumentType | None = strawberry.field(default=strawberry.UNSET, description="INVOICE or PRO_FORMA")
    draft_invoices: bool | None = strawberry.field(default=strawberry.UNSET, description="Review renewals as drafts")
    draft_days: int | None = strawberry.field(default=strawberry.UNSET, description="Days a draft waits (0 to 365)")
    payment_terms_days: int | None = strawberry.field(
        default=strawberry.UNSET, description="Days after issue an invoice is due (0 to 365; null: the default)"
    )

    def changes(self) -> dict[str, Any]:
        """The settings given, keyed as stored (``documentType`` as its name)."""
        out: dict[str, Any] = {}
        for key, value in (
            ("purchaseOrder", self.purchase_order),
            ("memo", self.memo),
            ("documentType", self.document_type.value if isinstance(self.document_type, DocumentType) else None),
            ("draftInvoices", self.draft_invoices),
            ("draftDays", self.draft_days),
            ("paymentTermsDays", self.payment_terms_days),
        ):
            if key == "documentType" and self.document_type is strawberry.UNSET:
                continue
            if value is not strawberry.UNSET:
                out[key] = value
        return out


@strawberry.type(description="Money given back against an invoice: refunded through the gateway, or to the balance.")
class CreditNote(Node):
    number: str = strawberry.field(description="{prefix}{year}-{counter} in the credit note series, gapless")
    currency: str = strawberry.field(description="The invoice's currency")
    issue_date: date = strawberry.field(description="When it was issued, in the seller's time zone")
    total: Money = strawberry.field(description="What it credits, tax included")
    tax_total: Money = strawberry.field(description="The tax it gives back")
    reason: str | None = strawberry.field(description="Why it was issued")
    refunded: bool = strawberry.field(
        description="True: refunded through the gateway; false: to the customer's balance"
    )
    created_at: datetime = strawberry.field(description="When it was issued")
    pk: strawberry.Private[int]
    invoice_pk: strawberry.Private[int]
    # A dry run's credit note was never stored: its lines come along.
    held_lines: strawberry.Private[list[Any] | None] = None

    @classmethod
    def of(cls, row: Any) -> CreditNote:
        c = row.currency
        return cls(
            id=strawberry.ID(to_global_id("CreditNote", row.id)),
            number=row.number,
            currency=c,
            issue_date=row.issue_date,
            total=Money.of(DomainMoney(row.total_minor, c)),
            tax_total=Money.of(DomainMoney(row.tax_minor, c)),
            reason=row.reason,
            refunded=row.refunded,
            created_at=row.created_at,
            pk=row.id,
            invoice_pk=row.invoice_id,
        )

    @strawberry.field(description="The invoice it credits")
    async def invoice(self, info: Info) -> Invoice:
        from rebill.resolvers.invoices import invoice_by_pk

        found = await invoice_by_pk(info, self.invoice_pk)
        assert found is not None  # a credit note's invoice is never deleted
        return found

    @strawberry.field(description="Its lines: the invoice's lines it credits, pro rata")
    async def lines(self, info: Info) -> list[InvoiceLine]:
        rows = self.held_lines
        if rows is None:
            rows = await info.context.loaders.credit_note_lines_by_note.load(self.pk)
        return [InvoiceLine.of_row(r, self.currency) for r in rows]

    @strawberry.field(description="The credit note as a PDF (absolute URL): for an API key with read, or its customer")
    def pdf_url(self, info: Info) -> str:
        return links.absolute(
            info.context.services.settings.public_base_url, links.pdf_path(links.CREDIT_NOTES, self.id)
        )

    @strawberry.field(description="The credit note as a web page (absolute URL), with a link to its PDF; same readers")
    def hosted_url(self, info: Info) -> str:
        return links.absolute(
            info.context.services.settings.public_base_url, links.page_path(links.CREDIT_NOTES, self.id)
        )


@strawberry.type(description="An edge of a page of credit notes.")
class CreditNoteEdge:
    cursor: str = strawberry.field(description="Pass as after or before to page from here")
    node: CreditNote = strawberry.field(description="The credit note")


@strawberry.type(description="A page of credit notes, newest first.")
class CreditNoteConnection:
    edges: list[CreditNoteEdge] = strawberry.field(description="The credit notes of this page")
    page_info: PageInfo = strawberry.field(description="Where this page is")
    total_count: int = strawberry.field(description="How many credit notes match, in all pages")


def credit_note_connection(page: Page) -> CreditNoteConnection:
    return connection(page, CreditNoteEdge, CreditNoteConnection, CreditNote.of)
