"""Relay pages over any table: keyset cursors on (sort key, id), forwards and backwards, plus the total count.

A cursor names the row it was taken from by its sort key and id, never by an
offset, so it stays valid while rows are added or removed around it: the next
page starts right after that position whatever happened before it. A cursor
also names its sort, and one taken from another sort is refused rather than
silently read as something else.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from operator import attrgetter, itemgetter
from typing import Any

from asyncpg import Record  # type: ignore[import-untyped]
from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Integer,
    Select,
    bindparam,
    func,
    literal,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession

from rebill.db.driver import Prepared, Reads, json_as_text
from rebill.ids import urlsafe_b64
from rebill.schema.common import DEFAULT_PAGE, MAX_PAGE, ApiError


@dataclass
class Page:
    rows: list[Any]
    has_next: bool
    total: int
    has_previous: bool = False
    cursors: list[str] = field(default_factory=list)


# -- sorts -------------------------------------------------------------------------

Parse = Callable[[Any], Any]


def _to_date(raw: Any) -> date:
    return date.max if raw == "infinity" else date.fromisoformat(raw)


def _from_date(value: date) -> str:
    return "infinity" if value == date.max else value.isoformat()


def _to_datetime(raw: Any) -> datetime:
    return datetime.fromisoformat(raw)


def _from_datetime(value: datetime) -> str:
    return value.isoformat()


def _to_int(raw: Any) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise ValueError
    return raw


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True, eq=False)
class Order:
    """How a list is sorted: a key column (or expression), then the id; ascending or descending.

    ``name`` is written into cursors. ``key`` is None for the id alone, whose
    cursors keep the short ``c:<id>`` form every earlier cursor had.
    """

    name: str = "id"
    key: Any = None
    descending: bool = False
    parse: Parse = _same
    dump: Parse = _same

    def reversed(self) -> Order:
        return Order(self.name, self.key, not self.descending, self.parse, self.dump)


BY_ID = Order()
NEWEST_FIRST = Order(descending=True)


def date_order(name: str, key: Any, descending: bool = False) -> Order:
    return Order(name, key, descending, _to_date, _from_date)


def datetime_order(name: str, key: Any, descending: bool = False) -> Order:
    return Order(name, key, descending, _to_datetime, _from_datetime)


def int_order(name: str, key: Any, descending: bool = False) -> Order:
    return Order(name, key, descending, _to_int, _same)


# -- cursors -----------------------------------------------------------------------


def encode(order: Order, key: Any, pk: int) -> str:
    if order.key is None:
        return urlsafe_b64(f"c:{pk}")
    return urlsafe_b64("k:" + json.dumps([order.name, order.dump(key), pk], separators=(",", ":")))


def decode(cursor: str | None, order: Order, argument: str) -> tuple[Any, int] | None:
    """The (key, id) position a cursor names; ``key`` is None for the id order."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode()
        prefix, _, rest = raw.partition(":")
        if prefix == "c":
            name, key, pk = "id", None, int(rest)
        elif prefix == "k":
            name, key_raw, pk = json.loads(rest)
            key = None if order.name != name else order.parse(key_raw)
        else:
            raise ValueError
        if not isinstance(pk, int) or isinstance(pk, bool) or not -(2**63) <= pk < 2**63:
            raise ValueError
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        raise ApiError(f"{argument}: invalid cursor {cursor!r}") from None
    if name != order.name:
        raise ApiError(
            f"{argument}: this cursor comes from a list sorted by {name}, not {order.name}; "
            "page a list with the cursors it returned"
        )
    return key, pk


# -- windows -----------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """What a connection's first/after/last/before ask for, checked. Hashable: a DataLoader key part."""

    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None

    def __post_init__(self) -> None:
        if self.first is not None and self.last is not None:
            raise ApiError("pass first (with after) or last (with before), not both")
        for name, value in (("first", self.first), ("last", self.last)):
            if value is None:
                continue
            if value < 0:
                raise ApiError(f"{name} may not be negative")
            if value > MAX_PAGE:
                raise ApiError(f"{name} may not exceed {MAX_PAGE} (asked for {value}); page with cursors instead")

    @property
    def backwards(self) -> bool:
        return self.last is not None

    @property
    def size(self) -> int:
        if self.last is not None:
            return self.last
        return DEFAULT_PAGE if self.first is None else self.first


def _sort_key(table: Any, order: Order) -> Any:
    return table.c.id if order.key is None else order.key


def _after(table: Any, order: Order, position: tuple[Any, int], descending: bool) -> ColumnElement[bool]:
    """Rows strictly after ``position`` in the order ``descending`` says."""
    key, pk = position
    if order.key is None:
        return table.c.id < pk if descending else table.c.id > pk
    row = tuple_(order.key, table.c.id)
    value = tuple_(_typed(order.key, key), pk)
    return row < value if descending else row > value


def _typed(column: Any, value: Any) -> Any:
    return value if isinstance(value, BindParameter) else literal(value, type_=column.type)


def keyset(table: Any, order: Order, win: Window) -> tuple[list[ColumnElement[bool]], list[Any]]:
    """The cursor clauses and the ORDER BY; with ``last`` the scan runs backwards (``_finish`` turns it round)."""
    clauses: list[ColumnElement[bool]] = []
    after = decode(win.after, order, "after")
    before = decode(win.before, order, "before")
    if after is not None:
        clauses.append(_after(table, order, after, order.descending))
    if before is not None:
        clauses.append(_after(table, order, before, not order.descending))
    return clauses, _order_by(table, order, win)


def _order_by(table: Any, order: Order, win: Window) -> list[Any]:
    scan_descending = order.descending != win.backwards
    key = _sort_key(table, order)
    columns = [key] if order.key is None else [key, table.c.id]
    return [c.desc() if scan_descending else c.asc() for c in columns]


def _finish(
    rows: list[Any], order: Order, win: Window, total: int, key_of: Callable[[Any], Any], pk_of: Any = None
) -> Page:
    size = win.size
    more = len(rows) > size
    rows = rows[:size]
    if win.backwards:
        rows.reverse()
        has_next, has_previous = win.before is not None, more
    else:
        has_next, has_previous = more, win.after is not None
    pk_of = pk_of or attrgetter("id")
    if order.key is None:  # the id order's cursors, without a key to look at
        cursors = [urlsafe_b64(f"c:{pk_of(r)}") for r in rows]
    else:
        cursors = [encode(order, key_of(r), pk_of(r)) for r in rows]
    return Page(rows, has_next, total, has_previous, cursors)


def _key_of(order: Order) -> Callable[[Any], Any]:
    if order.key is None:
        return lambda row: None
    return lambda row: row.sort_key


def _statements(
    table: Any,
    where: Sequence[ColumnElement[bool]],
    win: Window,
    order: Order,
    base: Select[Any] | None,
) -> Select[Any]:
    """The page's statement: ``size + 1`` rows, to tell whether more follow."""
    stmt = base if base is not None else select(table)
    if order.key is not None:
        stmt = stmt.add_columns(order.key.label("sort_key"))
    for clause in where:
        stmt = stmt.where(clause)
    clauses, order_by = keyset(table, order, win)
    for clause in clauses:
        stmt = stmt.where(clause)
    return stmt.order_by(*order_by).limit(win.size + 1)


def _count_statement(table: Any, where: Sequence[ColumnElement[bool]]) -> Select[Any]:
    count_stmt = select(func.count()).select_from(table)
    for clause in where:
        count_stmt = count_stmt.where(clause)
    return count_stmt


async def fetch_page(
    session: AsyncSession,
    table: Any,
    where: Sequence[ColumnElement[bool]],
    first: int | None,
    after: str | None,
    *,
    base: Select[Any] | None = None,
    descending: bool = False,
    last: int | None = None,
    before: str | None = None,
    order: Order | None = None,
) -> Page:
    """One page of ``table`` under ``where``, sorted by ``order`` (the id by default), and the total."""
    win = Window(first, after, last, before)
    order = order or (NEWEST_FIRST if descending else BY_ID)
    stmt = _statements(table, where, win, order, base)
    rows = list(await session.execute(stmt)) if win.size else []
    total = int((await session.execute(_count_statement(table, where))).scalar_one())
    return _finish(rows, order, win, total, _key_of(order))


@dataclass
class LazyPage(Page):
    """A page whose total is counted only when asked for (``count``), by a statement of its own."""

    counter: Callable[[], Awaitable[int]] | None = None

    async def count(self) -> int:
        if self.counter is not None:
            self.total, self.counter = await self.counter(), None
        return self.total


#: Statements of pages of a whole table (no filter), by table, sort, direction and the cursors given.
_UNFILTERED: dict[tuple[Any, ...], Prepared] = {}


def _unfiltered(table: Any, order: Order, win: Window) -> tuple[Prepared, dict[str, Any]]:
    """A page of the whole table, the commonest list: its statement prepared once per shape, its cursors'
    positions and size bound to it."""
    after = decode(win.after, order, "after")
    before = decode(win.before, order, "before")
    shape = (table, order.name, order.descending, win.backwards, after is not None, before is not None)
    prepared = _UNFILTERED.get(shape)
    if prepared is None:
        stmt = select(*json_as_text(table))
        if order.key is not None:
            stmt = stmt.add_columns(order.key.label("sort_key"))
        sides = (("after", after, order.descending), ("before", before, not order.descending))
        for name, position, descending in sides:
            if position is not None:
                key = bindparam(f"{name}_key", type_=order.key.type) if order.key is not None else None
                bound: Any = (key, bindparam(f"{name}_id", type_=BigInteger))
                stmt = stmt.where(_after(table, order, bound, descending))
        stmt = stmt.order_by(*_order_by(table, order, win)).limit(bindparam("size", type_=Integer))
        prepared = _UNFILTERED[shape] = Prepared(stmt)
    values: dict[str, Any] = {"size": win.size + 1}
    for name, position in (("after", after), ("before", before)):
        if position is not None:
            values[f"{name}_key"], values[f"{name}_id"] = position
    return prepared, values


async def read_page(
    reads: Reads,
    table: Any,
    where: Sequence[ColumnElement[bool]],
    window: Window,
    order: Order = BY_ID,
) -> LazyPage:
    """``fetch_page`` for the read API: on the request's connection (``rebill.db.driver.Reads``), the
    total counted on demand, JSON columns read as text (``rebill.db.driver.json_as_text``)."""
    if not window.size:
        rows: list[Any] = []
    elif where:
        rows = list(await reads.fetch(_statements(table, where, window, order, select(*json_as_text(table)))))
    else:
        prepared, values = _unfiltered(table, order, window)
        rows = list(await reads.fetch(prepared, **values))

    async def count() -> int:
        return int(await reads.value(_count_statement(table, where)))

    # The driver's records are read by key (a SQLAlchemy row, from a statement it ran, by attribute).
    by_key = bool(rows) and isinstance(rows[0], Record)
    key_of = itemgetter("sort_key") if by_key and order.key is not None else _key_of(order)
    page = _finish(rows, order, window, 0, key_of, itemgetter("id") if by_key else None)
    return LazyPage(page.rows, page.has_next, 0, page.has_previous, page.cursors, count)


GroupKey = tuple[int, Window, Order]


async def fetch_grouped_pages(session: AsyncSession, table: Any, parent: Any, keys: Sequence[GroupKey]) -> list[Page]:
    """Pages of each parent's rows (a subscription's renewals, say) for many parents at once.

    Keys asking for the same page shape share one windowed query, and one
    count query serves them all, so a list of parents costs the same number
    of statements whatever its length.
    """
    parents = sorted({k[0] for k in keys})
    shapes: dict[tuple[Window, Order], list[int]] = {}
    for pid, win, order in keys:
        shapes.setdefault((win, order), []).append(pid)
    totals: dict[int, int] = dict(
        (await session.execute(select(parent, func.count()).where(parent.in_(parents)).group_by(parent))).all()
    )
    pages: dict[tuple[int, Window, Order], Page] = {}
    for (win, order), pids in shapes.items():
        clauses, order_by = keyset(table, order, win)
        columns: list[Any] = [table]
        if order.key is not None:
            columns.append(order.key.label("sort_key"))
        ranked = select(*columns, func.row_number().over(partition_by=parent, order_by=order_by).label("rn")).where(
            parent.in_(pids), *clauses
        )
        sub = ranked.subquery()
        grouped: dict[int, list[Any]] = {}
        if win.size:
            rows = await session.execute(
                select(sub).where(sub.c.rn <= win.size + 1).order_by(sub.c[parent.name], sub.c.rn)
            )
            for r in rows:
                grouped.setdefault(getattr(r, parent.name), []).append(r)
        for pid in pids:
            pages[(pid, win, order)] = _finish(
                grouped.get(pid, []), order, win, int(totals.get(pid, 0)), _key_of(order)
            )
    return [pages[key] for key in keys]
