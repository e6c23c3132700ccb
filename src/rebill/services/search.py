"""Finding customers by words typed into a search box.

One definition for ``customers(filter: { search })`` and the subscription
filter's ``customerSearch``, so a word finds the same customers in both.
Matching is literal (LIKE's wildcards typed by a person are escaped) and
case-insensitive, on the same lower-cased expressions the trigram indexes
are built on.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, literal

from rebill.db import tables as t

MAX_SEARCH_LENGTH = 320

C = t.table_of(t.Customer)

lower_email: ColumnElement[str] = func.lower(C.c.email)
lower_name: ColumnElement[str] = func.lower(func.coalesce(C.c.name, ""))


def contains(column: Any, text: str) -> ColumnElement[bool]:
    """``column`` contains ``text`` literally (LIKE's wildcards in it are escaped); the trigram index serves it."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(literal(f"%{escaped}%"), escape="\\")


def customer_words(text: str) -> list[ColumnElement[bool]]:
    """One clause per whitespace-separated word: it occurs in the customer's name or e-mail, in any letter case.

    No words (an empty or blank text) gives no clauses, which narrows nothing.
    """
    return [contains(lower_name, word) | contains(lower_email, word) for word in text.lower().split()]
