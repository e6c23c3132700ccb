"""Where a document is served: ``/invoices/{id}`` (its page) and ``/invoices/{id}.pdf``, ``{id}`` its global id.

Credit notes the same under ``/credit-notes``.

The API's ``pdfUrl`` and ``hostedUrl`` and the routes take their shapes from
here, so a link handed out always names a route that serves it.
"""

from __future__ import annotations

INVOICES = "/invoices"
CREDIT_NOTES = "/credit-notes"


def page_path(collection: str, global_id: str) -> str:
    return f"{collection}/{global_id}"


def pdf_path(collection: str, global_id: str) -> str:
    return f"{collection}/{global_id}.pdf"


def absolute(base_url: str, path: str) -> str:
    """``path`` under ``REBILL_PUBLIC_BASE_URL`` (which may itself end in a path, behind a proxy)."""
    return base_url.rstrip("/") + path
