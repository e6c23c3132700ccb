"""``GET /docs``: the README, rendered for the browser from the copy shipped with rebill.

Links to other hosts become plain text (the address in brackets) and images
are left out, so the page, like every page of rebill, asks nothing of another
host.
"""

from __future__ import annotations

from functools import cache
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token

SOURCE_README = Path(__file__).resolve().parents[3] / "README.md"


def readme_text() -> str:
    """The README of a source checkout, else the one in the installed package's metadata."""
    if SOURCE_README.is_file():
        return SOURCE_README.read_text(encoding="utf-8")
    try:
        return str(metadata.metadata("rebill").get_payload() or "")  # type: ignore[attr-defined]
    except metadata.PackageNotFoundError:
        return ""


def _local_only(children: list[Token]) -> list[Token]:
    kept: list[Token] = []
    links: list[str | None] = []  # for each open link: its address if it leaves this host
    for token in children:
        if token.type == "image":
            continue
        if token.type == "link_open":
            href = str(token.attrGet("href") or "")
            elsewhere = href if urlsplit(href).scheme not in ("", "http", "https") or urlsplit(href).netloc else None
            links.append(elsewhere)
            if elsewhere is None:
                kept.append(token)
            continue
        if token.type == "link_close":
            elsewhere = links.pop() if links else None
            if elsewhere is None:
                kept.append(token)
            else:
                text = Token("text", "", 0)
                text.content = f" ({elsewhere})"
                kept.append(text)
            continue
        kept.append(token)
    return kept


@cache
def readme_html() -> str:
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(readme_text())
    for token in tokens:
        if token.type == "inline" and token.children:
            token.children = _local_only(token.children)
    return md.renderer.render(tokens, md.options, {})
