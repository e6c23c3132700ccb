"""``GET /invoices/{id}.pdf``, ``GET /invoices/{id}`` and the same under ``/credit-notes``: a PDF and a page.

Who may read one (API.md "Invoices and credit notes"): an API key with the
``read`` scope (``Authorization: Bearer``), or the document's own customer
through a portal session (its cookie) or a portal bearer token (``rbp_…``).
Customers see finalized invoices only; a draft is staff's until it is
issued (a credit note is issued when it is written). Everyone else, and
every id that is malformed or unknown, gets the same 404: a 403 would
confirm that the document exists.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from rebill.db import tables as t
from rebill.db.engine import is_database_outage
from rebill.documents import links
from rebill.documents.page import render_html
from rebill.documents.pdf import render_pdf
from rebill.documents.view import DocumentView, credit_note_view, invoice_view
from rebill.domain.errors import RebillError
from rebill.ids import decode_id
from rebill.portal.sessions import current_session
from rebill.portal.tokens import API_PREFIX as PORTAL_TOKEN_PREFIX
from rebill.portal.tokens import customer_for_bearer
from rebill.services.apikeys import authenticate
from rebill.services.runtime import Services

logger = logging.getLogger(__name__)

INVOICES = t.table_of(t.Invoice)
LINES = t.table_of(t.InvoiceLine)
NOTES = t.table_of(t.CreditNote)
NOTE_LINES = t.table_of(t.CreditNoteLine)

COMMON_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
NOT_FOUND = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Not found</title></head>'
    "<body><h1>Not found</h1><p>There is no such document, or it is not yours to see.</p></body></html>"
)
UNAVAILABLE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Try again shortly</title></head>'
    "<body><h1>Try again shortly</h1><p>The document cannot be read right now.</p></body></html>"
)


@dataclass(frozen=True)
class Reader:
    """Who asks: staff (an API key with ``read``), or the customers whose session or token came along."""

    staff: bool = False
    customers: frozenset[int] = frozenset()

    def may_read(self, customer_id: int, *, issued: bool = True) -> bool:
        """Staff read every document; a customer reads their own once it is issued."""
        if self.staff:
            return True
        return customer_id in self.customers and issued


async def reader_of(services: Services, request: Request) -> Reader:
    customers: set[int] = set()
    scheme, _, secret = request.headers.get("authorization", "").strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() == "bearer" and secret:
        actor = await authenticate(services.engine, secret)
        if actor is not None and actor.has("read"):
            return Reader(staff=True)
        if actor is None and secret.startswith(PORTAL_TOKEN_PREFIX):
            customer = await customer_for_bearer(services.engine, secret, services.clock.now())
            if customer is not None:
                customers.add(customer)
    session = await current_session(services, request)
    if session is not None:
        customers.add(session.customer_id)
    return Reader(customers=frozenset(customers))


def _not_found() -> Response:
    return HTMLResponse(NOT_FOUND, status_code=404, headers=COMMON_HEADERS)


Endpoint = Callable[[Request], Awaitable[Response]]


def _answering_outages(endpoint: Endpoint) -> Endpoint:
    """A database outage is a 503 with ``Retry-After``, as for the API, never a 500."""

    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except Exception as exc:
            if not is_database_outage(exc):
                raise
            logger.warning("database unavailable while serving a document: %s", type(exc).__name__)
            return HTMLResponse(UNAVAILABLE, status_code=503, headers={**COMMON_HEADERS, "Retry-After": "5"})

    return wrapped


@dataclass(frozen=True, slots=True)
class Printable:
    """A document its reader may see: what it says, and when it was made (which dates its PDF file)."""

    view: DocumentView
    made_at: datetime


#: Reads document ``pk`` for ``reader``: None when there is none, or it is not theirs.
Loader = Callable[[AsyncConnection, int, Reader], Awaitable[Printable | None]]


async def load_invoice(conn: AsyncConnection, pk: int, reader: Reader) -> Printable | None:
    invoice: Any = (await conn.execute(select(INVOICES).where(INVOICES.c.id == pk))).first()
    if invoice is None or not reader.may_read(invoice.customer_id, issued=invoice.status != "DRAFT"):
        return None
    lines: Any = await conn.execute(
        select(LINES).where(LINES.c.invoice_id == pk).order_by(LINES.c.position, LINES.c.id)
    )
    view = invoice_view(invoice._mapping, [line._mapping for line in lines])
    return Printable(view, invoice.finalized_at or invoice.created_at)


async def load_credit_note(conn: AsyncConnection, pk: int, reader: Reader) -> Printable | None:
    note: Any = (
        await conn.execute(
            select(NOTES, INVOICES.c.number.label("invoice_number"))
            .join(INVOICES, INVOICES.c.id == NOTES.c.invoice_id)
            .where(NOTES.c.id == pk)
        )
    ).first()
    if note is None or not reader.may_read(note.customer_id):
        return None
    lines: Any = await conn.execute(
        select(NOTE_LINES).where(NOTE_LINES.c.credit_note_id == pk).order_by(NOTE_LINES.c.position, NOTE_LINES.c.id)
    )
    view = credit_note_view(note._mapping, [line._mapping for line in lines], invoice_number=note.invoice_number)
    return Printable(view, note.created_at)


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of document served: where, the node type its ids name, and how it is read."""

    collection: str
    type_name: str
    load: Loader


KINDS = (
    Kind(links.INVOICES, "Invoice", load_invoice),
    Kind(links.CREDIT_NOTES, "CreditNote", load_credit_note),
)


class Documents:
    def __init__(self, services: Services) -> None:
        self.services = services

    def routes(self) -> list[BaseRoute]:
        # The PDF's route first: ``{id}`` alone would also match "<id>.pdf".
        routes: list[BaseRoute] = []
        for kind in KINDS:
            routes += [
                Route(links.pdf_path(kind.collection, "{id}"), _answering_outages(self.pdf(kind)), methods=["GET"]),
                Route(links.page_path(kind.collection, "{id}"), _answering_outages(self.page(kind)), methods=["GET"]),
            ]
        return routes

    async def _printable(self, kind: Kind, request: Request) -> Printable | None:
        """The document, when the id is one of ``kind``'s and the caller may read it."""
        found = await self._read(kind, request)
        return found[0] if found else None

    async def _read(self, kind: Kind, request: Request) -> tuple[Printable, Reader] | None:
        try:
            pk = decode_id(request.path_params["id"], kind.type_name)
        except RebillError:
            return None
        reader = await reader_of(self.services, request)
        if not reader.staff and not reader.customers:
            return None
        async with self.services.engine.connect() as conn:
            printable = await kind.load(conn, pk, reader)
        return (printable, reader) if printable is not None else None

    def pdf(self, kind: Kind) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            found = await self._printable(kind, request)
            if found is None:
                return _not_found()
            # Rendering takes a CPU for a fraction of a second: off the event loop.
            body = await run_in_threadpool(render_pdf, found.view, created_at=found.made_at)
            return Response(
                body,
                media_type="application/pdf",
                headers={**COMMON_HEADERS, "Content-Disposition": f'inline; filename="{found.view.file_stem}.pdf"'},
            )

        return endpoint

    def page(self, kind: Kind) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            read = await self._read(kind, request)
            if read is None:
                return _not_found()
            found, reader = read
            nonce = secrets.token_urlsafe(16)
            # Relative, so the links work under whatever prefix a proxy serves rebill at.
            pdf_href = links.pdf_path(".", request.path_params["id"])
            portal_href = None if reader.staff else "../portal"  # a customer, signed in: back to their account
            html = render_html(found.view, pdf_href=pdf_href, nonce=nonce, portal_href=portal_href)
            return HTMLResponse(
                html,
                headers={
                    **COMMON_HEADERS,
                    "Content-Security-Policy": (
                        f"default-src 'none'; style-src 'nonce-{nonce}'; img-src 'none'; form-action 'none'; "
                        "frame-ancestors 'none'; base-uri 'none'"
                    ),
                    "X-Frame-Options": "DENY",
                },
            )

        return endpoint


def document_routes(services: Services) -> list[BaseRoute]:
    return Documents(services).routes()
