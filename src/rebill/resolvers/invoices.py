"""Invoice queries and mutations: a few lines each over ``invoicing`` and the schema types."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated, Any, TypeVar

import strawberry
from sqlalchemy import select
from strawberry.types import Info

from rebill.db import tables as t
from rebill.domain.errors import RebillError, ValidationError
from rebill.ids import decode_id
from rebill.resolvers.mutations import actor_of, errors_of, money, pk
from rebill.resolvers.pages import fetch_page
from rebill.schema.common import MoneyInput, to_global_id
from rebill.schema.inputs import Payload
from rebill.schema.invoices import (
    CreditNote,
    CreditNoteConnection,
    Invoice,
    InvoiceConnection,
    InvoiceFilter,
    InvoicePreview,
    credit_note_connection,
    invoice_connection,
)
from rebill.schema.ordering import chronological
from rebill.schema.subscriptions import Renewal
from rebill.services import invoices as use_cases
from rebill.services.runtime import Common, Result

INVOICES = t.table_of(t.Invoice)
NOTES = t.table_of(t.CreditNote)


async def invoice(
    info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The invoice's global id")]
) -> Invoice | None:
    try:
        key = decode_id(id, "Invoice")
    except RebillError:
        return None
    return await invoice_by_pk(info, key)


async def invoice_by_pk(info: Info, key: int) -> Invoice | None:
    async with info.context.services.sessions() as session:
        row = (await session.execute(select(INVOICES).where(INVOICES.c.id == key))).first()
    return Invoice.of(row) if row is not None else None


async def final_invoice_of(info: Info, pro_forma: int) -> Invoice | None:
    async with info.context.services.sessions() as session:
        row = (await session.execute(select(INVOICES).where(INVOICES.c.pro_forma_id == pro_forma))).first()
    return Invoice.of(row) if row is not None else None


async def invoices(
    info: Info,
    filter: InvoiceFilter | None = None,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> InvoiceConnection:
    where: list[Any] = []
    if filter is not None:
        if filter.subscription_id is not None:
            where.append(INVOICES.c.subscription_id == pk(filter.subscription_id, "Subscription", "subscriptionId"))
        if filter.customer_id is not None:
            where.append(INVOICES.c.customer_id == pk(filter.customer_id, "Customer", "customerId"))
        if filter.status:
            where.append(INVOICES.c.status.in_([s.value for s in filter.status]))
        if filter.document_type is not None:
            where.append(INVOICES.c.document_type == filter.document_type.value)
        if filter.number is not None:
            where.append(INVOICES.c.number == filter.number)
        if filter.issued_from is not None:
            where.append(INVOICES.c.issue_date >= filter.issued_from)
        if filter.issued_to is not None:
            where.append(INVOICES.c.issue_date <= filter.issued_to)
    async with info.context.services.sessions() as session:
        page = await fetch_page(
            session, INVOICES, where, first, after, last=last, before=before, order=chronological(None)
        )
    return invoice_connection(page)


async def credit_note(
    info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The credit note's global id")]
) -> CreditNote | None:
    try:
        key = decode_id(id, "CreditNote")
    except RebillError:
        return None
    return await credit_note_by_pk(info, key)


async def credit_note_by_pk(info: Info, key: int) -> CreditNote | None:
    async with info.context.services.sessions() as session:
        row = (await session.execute(select(NOTES).where(NOTES.c.id == key))).first()
    return CreditNote.of(row) if row is not None else None


async def credit_notes(
    info: Info,
    invoice_id: Annotated[strawberry.ID | None, strawberry.argument(description="Of this invoice")] = None,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
) -> CreditNoteConnection:
    where: list[Any] = []
    if invoice_id is not None:
        where.append(NOTES.c.invoice_id == pk(invoice_id, "Invoice", "invoiceId"))
    async with info.context.services.sessions() as session:
        page = await fetch_page(
            session, NOTES, where, first, after, last=last, before=before, order=chronological(None)
        )
    return credit_note_connection(page)


# -- mutations -----------------------------------------------------------------------


@strawberry.input(description="Forgive an open or uncollectible invoice: nothing more is collected for its period.")
class VoidInvoiceInput:
    invoice_id: strawberry.ID = strawberry.field(description="The invoice")
    reason: str | None = strawberry.field(default=None, description="Why it is forgiven (kept on the invoice)")
    idempotency_key: str | None = strawberry.field(
        default=None, description="A retry with the same key and input replays the first response"
    )
    dry_run: bool | None = strawberry.field(default=False, description="Check and compute everything, store nothing")


@strawberry.type(description="The invoice as the mutation left it.")
class InvoicePayload(Payload):
    invoice: Invoice | None = strawberry.field(description="The invoice")
    dry_run: bool = strawberry.field(default=False, description="Nothing was stored")


@strawberry.type(description="The voided invoice.")
class VoidInvoicePayload(InvoicePayload):
    pass


async def void_invoice(info: Info, input: VoidInvoiceInput) -> VoidInvoicePayload:
    common = Common(reason=input.reason, idempotency_key=input.idempotency_key, dry_run=bool(input.dry_run))
    try:
        key = pk(input.invoice_id, "Invoice", "invoiceId")
        result = await use_cases.void_invoice(info.context.services, actor_of(info), common, key, input)
    except RebillError as exc:
        return VoidInvoicePayload(user_errors=errors_of_exc(exc), invoice=None)
    row = result.extra.get("invoice")
    shown = Invoice.of(row) if row is not None else await invoice_by_pk(info, key) if result.ok else None
    return VoidInvoicePayload(user_errors=errors_of(result), invoice=shown, dry_run=result.dry_run)


def errors_of_exc(exc: RebillError) -> list[Any]:
    from rebill.schema.common import UserError

    return [UserError.of(exc)]


@strawberry.input(description="A staff correction: credit part of an invoice to the balance, or refund it.")
class CreateCreditNoteInput:
    invoice_id: strawberry.ID = strawberry.field(description="The invoice to credit")
    amount: MoneyInput = strawberry.field(description="How much, tax included; never beyond what is left to credit")
    reason: str | None = strawberry.field(default=None, description="Why (printed on the credit note)")
    refund: bool = strawberry.field(
        default=False, description="Send the money back through the gateway; otherwise it goes to the balance"
    )
    idempotency_key: str | None = strawberry.field(
        default=None, description="A retry with the same key and input replays the first response"
    )
    dry_run: bool | None = strawberry.field(default=False, description="Check and compute everything, store nothing")


@strawberry.type(description="The credit note issued, and the subscription whose balance or renewal it changed.")
class CreateCreditNotePayload(Payload):
    credit_note: CreditNote | None = strawberry.field(
        description="The credit note (on a dry run: as it would be issued, number and lines; nothing is stored)"
    )
    dry_run: bool = strawberry.field(default=False, description="Nothing was stored")


async def create_credit_note(info: Info, input: CreateCreditNoteInput) -> CreateCreditNotePayload:
    common = Common(reason=input.reason, idempotency_key=input.idempotency_key, dry_run=bool(input.dry_run))
    try:
        key = pk(input.invoice_id, "Invoice", "invoiceId")
        amount = money(input.amount, "amount")
        assert amount is not None
        result = await use_cases.create_credit_note(
            info.context.services, actor_of(info), common, key, input, amount=amount, refund=input.refund
        )
    except RebillError as exc:
        return CreateCreditNotePayload(user_errors=errors_of_exc(exc), credit_note=None)
    ids = result.extra.get("creditNoteIds") or []
    preview = result.extra.get("creditNotePreview")
    shown: CreditNote | None = None
    if preview is not None and result.ok:
        row, lines = preview
        shown = CreditNote.of(row)
        shown.held_lines = lines
    elif ids and result.ok and not result.dry_run:
        shown = await credit_note_by_pk(info, ids[-1])
    return CreateCreditNotePayload(user_errors=errors_of(result), credit_note=shown, dry_run=result.dry_run)


# -- drafts -------------------------------------------------------------------------

InvoicePayloadT = TypeVar("InvoicePayloadT", bound="InvoicePayload")


@strawberry.input(description="An invoice action: which invoice, and why.")
class InvoiceActionInput:
    invoice_id: strawberry.ID = strawberry.field(description="The invoice")
    reason: str | None = strawberry.field(default=None, description="Why (kept in the subscription's history)")
    idempotency_key: str | None = strawberry.field(
        default=None, description="A retry with the same key and input replays the first response"
    )
    dry_run: bool | None = strawberry.field(default=False, description="Check and compute everything, store nothing")


@strawberry.input(description="Finalize a draft now: refreshed, numbered, and charged through the one charge path.")
class FinalizeInvoiceInput(InvoiceActionInput):
    pass


@strawberry.input(description="Recompute a draft from the subscription as it is now; one-off lines are kept.")
class RefreshInvoiceInput(InvoiceActionInput):
    pass


@strawberry.input(description="Delete a draft: its period is skipped and nothing is billed for it.")
class DeleteDraftInvoiceInput(InvoiceActionInput):
    pass


@strawberry.input(description="Add a one-off line to a draft (a negative unit price is a discount).")
class AddInvoiceLineInput(InvoiceActionInput):
    description: str = strawberry.field(default="", description="What the customer reads")
    unit_price: MoneyInput | None = strawberry.field(default=None, description="The price of one unit")
    quantity: int = strawberry.field(default=1, description="How many units")


@strawberry.input(description="Remove a line from a draft.")
class RemoveInvoiceLineInput(InvoiceActionInput):
    line_id: strawberry.ID = strawberry.field(default=strawberry.ID(""), description="The line (InvoiceLine.id)")


@strawberry.type(description="The draft as it is now.")
class RefreshInvoicePayload(InvoicePayload):
    pass


@strawberry.type(description="The invoice the draft became (its status follows the charge).")
class FinalizeInvoicePayload(InvoicePayload):
    invoice_preview: InvoicePreview | None = strawberry.field(
        default=None, description="What the finalized invoice bills, refreshed (on a dry run: what it would)"
    )


@strawberry.type(description="The draft that was deleted, as it was.")
class DeleteDraftInvoicePayload(InvoicePayload):
    pass


@strawberry.type(description="The draft with its new line.")
class AddInvoiceLinePayload(InvoicePayload):
    pass


@strawberry.type(description="The draft without the line.")
class RemoveInvoiceLinePayload(InvoicePayload):
    pass


def _common(input: InvoiceActionInput) -> Common:
    return Common(reason=input.reason, idempotency_key=input.idempotency_key, dry_run=bool(input.dry_run))


async def _invoice_payload(
    info: Info, cls: type[InvoicePayloadT], input: InvoiceActionInput, call: Callable[[int], Awaitable[Result]]
) -> InvoicePayloadT:
    try:
        key = pk(input.invoice_id, "Invoice", "invoiceId")
        result = await call(key)
    except RebillError as exc:
        return cls(user_errors=errors_of_exc(exc), invoice=None)
    row = result.extra.get("invoice")
    shown: Invoice | None
    if row is not None and (result.dry_run or cls is DeleteDraftInvoicePayload):
        shown = Invoice.of(row)
        shown.held_lines = result.extra.get("lines")
    else:
        shown = await invoice_by_pk(info, key) if result.ok else None
    return cls(user_errors=errors_of(result), invoice=shown, dry_run=result.dry_run)


async def finalize_invoice(info: Info, input: FinalizeInvoiceInput) -> FinalizeInvoicePayload:
    services, actor = info.context.services, actor_of(info)
    held: dict[str, Result] = {}

    async def call(key: int) -> Result:
        held["result"] = await use_cases.finalize_invoice(services, actor, _common(input), key, input)
        return held["result"]

    payload = await _invoice_payload(info, FinalizeInvoicePayload, input, call)
    document = held["result"].invoice_preview if "result" in held else None
    if document is not None:
        payload.invoice_preview = InvoicePreview.of(document)
    return payload


async def refresh_invoice(info: Info, input: RefreshInvoiceInput) -> RefreshInvoicePayload:
    services, actor = info.context.services, actor_of(info)
    return await _invoice_payload(
        info,
        RefreshInvoicePayload,
        input,
        lambda key: use_cases.refresh_invoice(services, actor, _common(input), key, input),
    )


async def delete_draft_invoice(info: Info, input: DeleteDraftInvoiceInput) -> DeleteDraftInvoicePayload:
    services, actor = info.context.services, actor_of(info)
    return await _invoice_payload(
        info,
        DeleteDraftInvoicePayload,
        input,
        lambda key: use_cases.delete_draft_invoice(services, actor, _common(input), key, input),
    )


async def add_invoice_line(info: Info, input: AddInvoiceLineInput) -> AddInvoiceLinePayload:
    services, actor = info.context.services, actor_of(info)

    async def call(key: int) -> Result:
        price = money(input.unit_price, "unitPrice")
        if price is None:
            raise ValidationError("unitPrice is required", code="INVALID_LINE", field=["unitPrice"])
        return await use_cases.add_invoice_line(
            services,
            actor,
            _common(input),
            key,
            input,
            description=input.description,
            unit_price=price,
            quantity=input.quantity,
        )

    return await _invoice_payload(info, AddInvoiceLinePayload, input, call)


async def remove_invoice_line(info: Info, input: RemoveInvoiceLineInput) -> RemoveInvoiceLinePayload:
    services, actor = info.context.services, actor_of(info)

    async def call(key: int) -> Result:
        try:
            line_id = int(str(input.line_id))
        except ValueError:
            raise ValidationError("lineId is an invoice line's id", code="INVALID_ID", field=["lineId"]) from None
        return await use_cases.remove_invoice_line(services, actor, _common(input), key, input, line_id=line_id)

    return await _invoice_payload(info, RemoveInvoiceLinePayload, input, call)


@strawberry.input(description="Record a payment made outside the gateways (a bank transfer): it pays the invoice.")
class MarkInvoicePaidInput(InvoiceActionInput):
    paid_at: date | None = strawberry.field(default=None, description="The day the money arrived (default: today)")
    reference: str | None = strawberry.field(default=None, description="The payment's reference (a transfer's id)")


@strawberry.type(description="The paid invoice and the renewal it paid.")
class MarkInvoicePaidPayload(InvoicePayload):
    renewal_pk: strawberry.Private[int | None] = None

    @strawberry.field(description="The renewal the payment settled")
    async def renewal(self, info: Info) -> Renewal | None:
        if self.renewal_pk is None:
            return None
        from rebill.resolvers.queries import renewal as renewal_by_id

        return await renewal_by_id(info, strawberry.ID(to_global_id("Renewal", self.renewal_pk)))


async def mark_invoice_paid(info: Info, input: MarkInvoicePaidInput) -> MarkInvoicePaidPayload:
    services, actor = info.context.services, actor_of(info)

    async def call(key: int) -> Result:
        if input.reference is not None and len(input.reference) > 200:
            raise ValidationError("reference is at most 200 characters", code="INVALID_INPUT", field=["reference"])
        paid_on = input.paid_at or services.clock.today(services.settings.seller_time_zone)
        return await use_cases.mark_invoice_paid(
            services, actor, _common(input), key, input, paid_on=paid_on, reference=input.reference
        )

    payload = await _invoice_payload(info, MarkInvoicePaidPayload, input, call)
    if payload.invoice is not None:
        payload.renewal_pk = payload.invoice.renewal_pk
    return payload
