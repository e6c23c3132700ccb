"""A document as a web page: one Jinja2 template, its CSS inline, nothing loaded from anywhere else."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from rebill.documents.view import DocumentView

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_html(view: DocumentView, *, pdf_href: str, nonce: str, portal_href: str | None = None) -> str:
    """The page of ``view``, with a link to its PDF (and, for a customer, back to the portal); ``nonce``
    lets its inline style past the page's CSP."""
    return TEMPLATES.get_template("document.html").render(
        doc=view, pdf_href=pdf_href, nonce=nonce, portal_href=portal_href
    )
