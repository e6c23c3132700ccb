"""``GET /invoices/{id}.pdf`` and ``GET /invoices/{id}``: an invoice as a PDF and as a web page.

Who may read one (API.md "Invoices and credit notes"): an API key with the
``read`` scope (``Authorization: Bearer``), or the invoice's own customer
through a portal session (its cookie) or a portal bearer token (``rbp_…``).
Customers see finalized invoices only; a draft is staff's until it is
issued. Everyone else, and every id that is malformed or unknown, gets the
same 404: a 403 would confirm that the invoice exists.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from rebill.db import tables as t
from rebill.db.engine import is_database_outage
from rebill.documents import links
from rebill.documents.page import render_html
from rebill.documents.pdf import render_pdf
from rebill.documents.view import invoice_view
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

    def may_read(self, invoice: Any) -> bool:
        if self.staff:
            return True
        return invoice.customer_id in self.customers and invoice.status != "DRAFT"


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


class Documents:
    def __init__(self, services: Services) -> None:
        self.services = services

    def routes(self) -> list[BaseRoute]:
        # The PDF's route first: ``{id}`` alone would also match "<id>.pdf".
        return [
            Route(links.pdf_path(links.INVOICES, "{id}"), _answering_outages(self.invoice_pdf), methods=["GET"]),
            Route(links.page_path(links.INVOICES, "{id}"), _answering_outages(self.invoice_page), methods=["GET"]),
        ]

    async def _invoice(self, request: Request) -> tuple[Any, list[Any]] | None:
        """The invoice and its lines, when the id is an invoice's and the caller may read it."""
        try:
            pk = decode_id(request.path_params["id"], "Invoice")
        except RebillError:
            return None
        reader = await reader_of(self.services, request)
        if not reader.staff and not reader.customers:
            return None
        async with self.services.engine.connect() as conn:
            invoice = (await conn.execute(select(INVOICES).where(INVOICES.c.id == pk))).first()
            if invoice is None or not reader.may_read(invoice):
                return None
            lines = (
                await conn.execute(select(LINES).where(LINES.c.invoice_id == pk).order_by(LINES.c.position, LINES.c.id))
            ).all()
        return invoice, list(lines)

    async def invoice_pdf(self, request: Request) -> Response:
        found = await self._invoice(request)
        if found is None:
            return _not_found()
        invoice, lines = found
        view = invoice_view(invoice._mapping, [line._mapping for line in lines])
        # Rendering takes a CPU for a fraction of a second: off the event loop.
        body = await run_in_threadpool(render_pdf, view, created_at=invoice.finalized_at or invoice.created_at)
        return Response(
            body,
            media_type="application/pdf",
            headers={**COMMON_HEADERS, "Content-Disposition": f'inline; filename="{view.file_stem}.pdf"'},
        )

    async def invoice_page(self, request: Request) -> Response:
        found = await self._invoice(request)
        if found is None:
            return _not_found()
        invoice, lines = found
        view = invoice_view(invoice._mapping, [line._mapping for line in lines])
        nonce = secrets.token_urlsafe(16)
        # Relative, so the link works under whatever prefix a proxy serves rebill at.
        pdf_href = links.pdf_path(".", request.path_params["id"])
        html = render_html(view, pdf_href=pdf_href, nonce=nonce)
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


def document_routes(services: Services) -> list[BaseRoute]:
    return Documents(services).routes()
