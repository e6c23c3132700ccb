"""Shared GraphQL pieces: Money, user errors, pages (global ids live in ``rebill.ids``)."""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable, Sequence
from functools import lru_cache
from operator import itemgetter
from typing import Any, TypeVar, cast

import strawberry
from asyncpg import Record  # type: ignore[import-untyped]
from graphql import GraphQLError
from strawberry.scalars import JSON

from rebill.domain.errors import RebillError
from rebill.domain.money import Money as DomainMoney
from rebill.ids import decode_id, from_global_id, globalize, to_global_id

C = TypeVar("C")
T = TypeVar("T")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "DEFAULT_PAGE",
    "MAX_PAGE",
    "ApiError",
    "FieldChange",
    "Money",
    "MoneyInput",
    "Node",
    "PageInfo",
    "RowBacked",
    "UserError",
    "changes_of",
    "columns",
    "decode_cursor",
    "decode_id",
    "encode_cursor",
    "from_global_id",
    "held",
    "mapping_of",
    "page_info",
    "page_size",
    "read_from_row",
    "to_global_id",
    "when_loaded",
]

MAX_PAGE = 100
DEFAULT_PAGE = 50


class ApiError(GraphQLError):
    """A top-level error we mean to show (never masked): limits, bad ids, auth."""

    def __init__(self, message: str, code: str = "BAD_USER_INPUT") -> None:
        super().__init__(message, extensions={"code": code})


def encode_cursor(pk: int) -> str:
    return base64.urlsafe_b64encode(f"c:{pk}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode()
        prefix, _, pk = raw.partition(":")
        if prefix != "c":
            raise ValueError
        return int(pk)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ApiError(f"invalid cursor {cursor!r}") from None


def page_size(first: int | None) -> int:
    if first is None:
        return DEFAULT_PAGE
    if first < 0:
        raise ApiError("first may not be negative")
    if first > MAX_PAGE:
        raise ApiError(f"first may not exceed {MAX_PAGE} (asked for {first}); page with after instead")
    return first


@strawberry.interface(description="An object with a global, opaque id; node(id:) resolves any of them.")
class Node:
    id: strawberry.ID


@strawberry.type(description="An amount of money: a decimal string in major units, and its ISO 4217 currency.")
class Money:
    amount: str
    currency: str

    @classmethod
    def of(cls, money: DomainMoney) -> Money:
        return cls(amount=money.amount_str, currency=money.currency)

    @staticmethod
    @lru_cache(maxsize=4096)
    def of_minor(minor: int, currency: str) -> Money:
        """The amount a row stores (minor units and currency), one object per amount: a page of items
        at a few prices builds and answers each price once. Never changed once built."""
        return Money.of(DomainMoney(minor, currency))


@strawberry.input(description='An amount as a decimal string in major units ("62.96"), never a float.')
class MoneyInput:
    amount: str
    currency: str

    def parse(self) -> DomainMoney:
        return DomainMoney.parse(self.amount, self.currency)


@strawberry.type(description="Why a mutation refused: a stable code, a message, and the input path it concerns.")
class UserError:
    field: list[str] | None
    code: str
    message: str

    @classmethod
    def of(cls, error: RebillError) -> UserError:
        return cls(field=error.field, code=error.code, message=error.message)


@strawberry.type(
    description="Where a page sits in its list (Relay): whether more lies either way, and its end cursors."
)
class PageInfo:
    has_next_page: bool = strawberry.field(
        description="More rows follow this page (with last/before: true when rows follow the before cursor)"
    )
    has_previous_page: bool = strawberry.field(
        description="Rows precede this page (with first/after: true when rows precede the after cursor)"
    )
    start_cursor: str | None = strawberry.field(
        description="The first edge's cursor; pass it as before for the page before"
    )
    end_cursor: str | None = strawberry.field(description="The last edge's cursor; pass it as after for the page after")


@strawberry.type(description="A field's value before and after a change.")
class FieldChange:
    field: str
    before: JSON | None
    after: JSON | None


class RowBacked:
    """A node read from a row, each of its fields computed from the row (by column name) when first read.

    A page of fifty subscriptions asked for their id and status builds those two
    fields, not the thirty the type has. ``FROM_ROW`` maps a field to how the row
    gives it; ``__getattr__`` (called only for an attribute not set yet) computes
    it and keeps it. Nodes built otherwise (``of`` from a domain value) set every
    field at once and never get here.
    """

    FROM_ROW: dict[str, Callable[[Any], Any]] = {}  # each type sets its own (read_from_row)

    @classmethod
    def from_row(cls, row: Any, **held: Any) -> Any:
        """A node of ``row``, a mapping of its columns by name (``mapping_of``)."""
        node = cls.__new__(cls)
        node.__dict__.update(held, row=row)
        return node

    def __getattr__(self, name: str) -> Any:
        compute = type(self).FROM_ROW.get(name)
        row = self.__dict__.get("row")
        if compute is None or row is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        value = compute(row)
        self.__dict__[name] = value
        return value


def mapping_of(row: Any) -> Any:
    """A row's columns by name: the driver's record as it is, a SQLAlchemy row's mapping."""
    return row if isinstance(row, Record) else row._mapping


def read_from_row(cls: type[RowBacked], fields: dict[str, Callable[[Any], Any]]) -> None:
    """Set ``cls.FROM_ROW``, refusing a field with a default on the class: ``__getattr__`` would never
    see it, and the default would be read instead of the row's value."""
    shadowed = sorted(name for name in fields if hasattr(cls, name))
    if shadowed:
        raise TypeError(f"{cls.__name__}: {shadowed} have class-level defaults; set them in from_row instead")
    cls.FROM_ROW = fields


def columns(*names: str) -> dict[str, Callable[[Any], Any]]:
    """``FROM_ROW`` entries for fields that are the row's columns of the same name, as they are."""
    return {name: itemgetter(name) for name in names}


def held(attribute: str) -> Callable[[F], F]:
    """Marks a resolver whose answer a page's resolver may have put on the node ahead, in its
    ``attribute`` (``rebill.resolvers.lookahead``): compiled plans (``rebill.schema.execution``) read it
    there and call the resolver only when it is not there (None). The resolver reads it too."""

    def mark(resolver: F) -> F:
        resolver.__held__ = attribute  # type: ignore[attr-defined]
        return resolver

    return mark


def when_loaded(value: Awaitable[T], build: Callable[[T], R]) -> Any:
    """``build`` of what a DataLoader's ``load`` gives: at once when the loader holds it already
    (a page's resolver loads what its selection asks for first), else an awaitable of it.

    A field resolved at once costs no task and no await (``rebill.schema.execution``); either
    way GraphQL execution gives the field ``R``, which is what a resolver returning this declares.
    """
    if isinstance(value, asyncio.Future) and value.done():
        return build(value.result())

    async def later() -> R:
        return build(await value)

    return later()


def page_info(edges: Sequence[Any], has_next: bool, has_previous: bool = False) -> PageInfo:
    """The page info of a page of edges (each with a ``cursor``)."""
    return PageInfo(
        has_next_page=has_next,
        has_previous_page=has_previous,
        start_cursor=edges[0].cursor if edges else None,
        end_cursor=edges[-1].cursor if edges else None,
    )


def connection(page: Any, edge: Any, connection_type: type[C], node: Any) -> C:
    """A page (``rows``, ``cursors``, ``has_next``, ``has_previous``, ``total``) as a Relay connection:
    each row made a node by ``node`` and wrapped in an ``edge``."""
    edges = [edge(cursor=c, node=node(r)) for r, c in zip(page.rows, page.cursors, strict=True)]
    return connection_type(  # type: ignore[call-arg]
        edges=edges, page_info=page_info(edges, page.has_next, page.has_previous), total_count=page.total
    )


#: History fields whose values are ids, and the type of object they name.
_ID_FIELDS = {
    "profileId": "SubscriptionProfile",
    "paymentMethodId": "PaymentMethod",
    "replacedById": "Subscription",
    "replacesId": "Subscription",
    "customerId": "Customer",
}
#: History field paths that name an object by id (``renewals.17.status``).
_ID_PATHS = {"renewals": "Renewal", "phases": "Phase", "items": "SubscriptionItem"}


def _global(type_name: str, value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return to_global_id(type_name, value)
    if isinstance(value, str) and value.isdigit():
        return to_global_id(type_name, value)
    return value


def _global_path(path: str) -> str:
    head, _, rest = path.partition(".")
    type_name = _ID_PATHS.get(head)
    if type_name is None or not rest:
        return path
    key, dot, tail = rest.partition(".")
    if not key.isdigit():  # items not yet saved are named by their position (``items.new1``)
        return path
    return f"{head}.{to_global_id(type_name, key)}{dot}{tail}"


def changes_of(raw: Any) -> list[FieldChange]:
    """History changes as clients see them: every id in them a global id."""
    out = []
    for c in raw or []:
        name = c["field"]
        before, after = c.get("before"), c.get("after")
        type_name = _ID_FIELDS.get(name)
        if type_name is not None:
            before, after = _global(type_name, before), _global(type_name, after)
        # Snapshots (an item, a renewal, a phase's settings) name other objects by id too.
        before = globalize(before) if isinstance(before, dict) else before
        after = globalize(after) if isinstance(after, dict) else after
        out.append(FieldChange(field=_global_path(name), before=cast(JSON, before), after=cast(JSON, after)))
    return out
