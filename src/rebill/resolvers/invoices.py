"""Invoice queries and mutations: a few lines each over ``invoicing`` and the schema types."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from sqlalchemy import select
from strawberry.types import Info

from rebill.db import tables as t
from rebill.domain.errors import RebillError
from rebill.ids import decode_id
from rebill.resolvers.mutations import actor_of, errors_of, pk
from rebill.resolvers.pages import fetch_page
from rebill.schema.inputs import Payload
from rebill.schema.invoices import Invoice, InvoiceConnection, InvoiceFilter, invoice_connection
from rebill.schema.ordering import chronological
from rebill.services import invoices as use_cases
from rebill.services.runtime import Common

INVOICES = t.table_of(t.Invoice)


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
    return VoidInvoicePayload(
        user_errors=errors_of(result),
        invoice=Invoice.of(row) if row is not None else None,
        dry_run=result.dry_run,
    )


def errors_of_exc(exc: RebillError) -> list[Any]:
    from rebill.schema.common import UserError

    return [UserError.of(exc)]
