"""Set-based saves for a chunk of subscriptions: a few statements whatever the chunk size.

``SubscriptionRepository.save`` writes one subscription; a bulk run's chunk
writes thousands with one statement fed by one JSON document (subscriptions,
history entries and run items), a revert with ``UPDATE … FROM
json_to_recordset(…)`` and ``COPY`` for history, and items and coupons that
changed with ``unnest``. Only the columns that changed somewhere in the chunk
are sent, and the version guard (``version = before.version``) is the same
as the repository's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from rebill.bulk import setbased
from rebill.db.repositories import ITEM_COLUMNS, item_row
from rebill.domain.errors import VersionConflict
from rebill.domain.renewal import Event
from rebill.domain.subscription import SubscriptionState, delta_fields
from rebill.domain.subscription import changed_fields as state_changes
from rebill.services.subscriptions import notification_payload

Pair = tuple[SubscriptionState, SubscriptionState]


def dumps(value: Any) -> str:
    """Compact JSON text; orjson, because a run encodes two documents per subscription."""
    return orjson.dumps(value, default=str).decode()


def _json(value: Any) -> dict[str, Any] | None:
    return dict(value) if value is not None else None


def _enum(value: Any) -> str | None:
    return value.value if value is not None else None


# field of SubscriptionState -> (column, SQL type, value of the column)
_COLUMNS: dict[str, tuple[str, str, Callable[[SubscriptionState], Any]]] = {
    "customer_id": ("customer_id", "bigint", lambda s: s.customer_id),
    "profile": ("profile_id", "bigint", lambda s: s.profile.id),
    "currency": ("currency", "text", lambda s: s.currency),
    "status": ("status", "text", lambda s: s.status.value),
    "renewal_type": ("renewal_type", "text", lambda s: s.renewal_type.value),
    "time_zone": ("time_zone", "text", lambda s: s.time_zone),
    "start_date": ("start_date", "date", lambda s: s.start_date),
    "anchor_date": ("anchor_date", "date", lambda s: s.anchor_date),
    "next_renewal_date": ("next_renewal_date", "date", lambda s: s.next_renewal_date),
    "trial_end_date": ("trial_end_date", "date", lambda s: s.trial_end_date),
    "current_period_start": ("current_period_start", "date", lambda s: s.current_period_start),
    "current_period_end": ("current_period_end", "date", lambda s: s.current_period_end),
    "end_date": ("end_date", "date", lambda s: s.end_date),
    "occurrences_billed": ("occurrences_billed", "int", lambda s: s.occurrences_billed),
    "last_cycle": ("last_cycle", "int", lambda s: s.last_cycle),
    "overdue_count": ("overdue_count", "int", lambda s: s.overdue_count),
    "next_retry_date": ("next_retry_date", "date", lambda s: s.next_retry_date),
    "gateway_id": ("gateway_id", "text", lambda s: s.gateway_id),
    "gateway_mode": ("gateway_mode", "text", lambda s: _enum(s.gateway_mode)),
    "last_gateway_id": ("last_gateway_id", "text", lambda s: s.last_gateway_id),
    "payment_method": ("payment_method_id", "bigint", lambda s: s.payment_method.id if s.payment_method else None),
    "shipping_address": ("shipping_address", "jsonb", lambda s: _json(s.shipping_address)),
    "metadata": ("metadata", "jsonb", lambda s: _json(s.metadata)),
    "invoicing": ("invoicing", "jsonb", lambda s: _json(s.invoicing)),
    "credit": ("credit_minor", "bigint", lambda s: s.credit.minor if s.credit is not None else 0),
    "cancel_at_period_end": ("cancel_at_period_end", "bool", lambda s: s.cancel_at_period_end),
    "cancelled_at": ("cancelled_at", "timestamptz", lambda s: s.cancelled_at),
    "renew_due": ("renew_due", "bool", lambda s: s.renew_due),
    "replaces_id": ("replaces_id", "bigint", lambda s: s.replaces_id),
    "replaced_by_id": ("replaced_by_id", "bigint", lambda s: s.replaced_by_id),
    "shipping_override": (
        "shipping_profile_id",
        "bigint",
        lambda s: s.shipping_override.id if s.shipping_override else None,
    ),
    "cancellation_date": ("cancellation_date", "date", lambda s: s.cancellation_date),
}
_AMOUNT = ("amount_minor", "bigint", lambda s: s.amount.minor)
_DISCOUNT = ("discount_minor", "bigint", lambda s: s.next_bill().discount.minor)
# What the billed amount depends on: when none of these changed, amount_minor (and discount_minor) did not either.
_PRICED = ("items", "coupons", "currency")


def changed_fields(before: SubscriptionState, after: SubscriptionState) -> set[str]:
    """The row's changed columns: its own fields, and ``amount`` when what it bills depends on changed."""
    return _row_fields(state_changes(before, after))


def _row_fields(changed: set[str]) -> set[str]:
    """The columns (named by field) that change with the state fields ``changed``."""
    out = changed & _COLUMNS.keys()
    if not changed.isdisjoint(_PRICED):
        out.add("amount")
    return out


def column_values(state: SubscriptionState) -> dict[str, Any]:
    """The subscription row as these writes send it: ``subscription_values``, column for column."""
    values = {column: get(state) for column, _, get in _COLUMNS.values()}
    values["amount_minor"] = state.amount.minor
    values["discount_minor"] = state.next_bill().discount.minor
    return values


async def raw(session: AsyncSession) -> Any:
    """The asyncpg connection under the session, inside the session's transaction."""
    conn = await session.connection()
    dbapi = await conn.get_raw_connection()
    return dbapi.driver_connection


class _Statement:
    """Numbers ``$n`` parameters while a statement is put together."""

    def __init__(self) -> None:
        self.args: list[Any] = []

    def arg(self, value: Any, cast: str) -> str:
        self.args.append(value)
        return f"${len(self.args)}::{cast}"

    def unnest(self, columns: Sequence[list[Any]], types: Sequence[str]) -> str:
        return "unnest(" + ", ".join(self.arg(c, f"{t}[]") for c, t in zip(columns, types, strict=True)) + ")"

    def recordset(self, names: Sequence[str], types: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
        """Rows as one JSON document expanded by ``json_to_recordset``, aliased ``v``.

        Encoding a chunk is then one orjson call instead of asyncpg converting
        every array element. Values of ``jsonb`` columns are JSON values.
        """
        records = [dict(zip(names, row, strict=True)) for row in rows]
        document = orjson.dumps(records, default=str).decode()
        spec = ", ".join(f"{n} {t}" for n, t in zip(names, types, strict=True))
        return f"json_to_recordset({self.arg(document, 'json')}) AS v({spec})"


def _subscriptions_update(st: _Statement, pairs: Sequence[Pair], now: datetime) -> str:
    """``UPDATE subscriptions … RETURNING s.id``: the columns that changed anywhere in the chunk."""
    specs = _changed_columns(pairs)
    rows = ([b.id, b.version, *[get(a) for _, _, get in specs]] for b, a in pairs)
    types = ["bigint", "int", *[t for _, t, _ in specs]]
    names = ["id", "version", *[c for c, _, _ in specs]]
    sets = [f"{c} = v.{c}" for c, _, _ in specs]
    sets += ["version = s.version + 1", f"updated_at = {st.arg(now, 'timestamptz')}"]
    return (
        f"UPDATE subscriptions AS s SET {', '.join(sets)} FROM {st.recordset(names, types, rows)} "
        "WHERE s.id = v.id AND s.version = v.version RETURNING s.id"
    )


HISTORY_COLUMNS = ("subscription_id", "occurred_at", "actor", "action", "reason", "bulk_run_id", "changes")

# A run chunk's document: one record per subscription the chunk looked at (its run item), plus
# the row's version and changed columns when the subscription is changed. Missing keys are NULL.
RUN_RECORD = {
    "id": "bigint",
    "segment": "text",
    "outcome": "text",
    "reason": "text",
    "action": "text",
    "changes": "jsonb",
    "before": "jsonb",
    "version": "int",
    "consent": "text",  # the consent reference the segment's price actions were given
}


_Column = tuple[str, str, Callable[[SubscriptionState], Any]]


def _changed_columns(pairs: Sequence[Pair]) -> list[_Column]:
    """The columns that changed anywhere in ``pairs`` (and ``amount_minor``, ``discount_minor`` when what it bills
    did)."""
    changed: set[str] = set()
    for before, after in pairs:
        changed |= changed_fields(before, after)
    return _columns_of(changed)


def _columns_of(changed: set[str]) -> list[_Column]:
    specs = [_COLUMNS[name] for name in _COLUMNS if name in changed]
    if "amount" in changed:
        specs += (_AMOUNT, _DISCOUNT)
    return specs


async def write_run_chunk(
    db: Any,
    records: Sequence[dict[str, Any]],
    changed: Sequence[tuple[SubscriptionState, SubscriptionState, dict[str, Any]]],
    *,
    run_id: int,
    actor: str,
    now: datetime,
    moves: Sequence[dict[str, Any]] = (),
) -> None:
    """A bulk run's chunk in one statement: its run items, and for every changed subscription its row
    (version guarded, version + 1) and its history entry.

    ``records`` are the run items (``RUN_RECORD`` keys, ``changes`` and ``before`` as JSON values);
    ``changed`` pairs each changed subscription's states with its record. The chunk travels as one
    JSON document, read once by ``json_to_recordset`` and shared by the three writes: one orjson
    call on this side, one parse on the server's, one round trip that keeps the database busy with
    this chunk while the next one is worked out in memory. ``moves`` are ``setbased.record``s of the
    chunk's subscriptions whose next renewal moves without a state: a document of their own, the
    four dates updated; their run items and history entries are written with the others, in
    subscription order.
    """
    if not records and not moves:
        return
    undone: set[str] = set()  # what the undo deltas hold is what changed
    for _, _, record in changed:
        undone.update(record["before"])
    specs = _columns_of(_row_fields(delta_fields(undone)))
    for before, after, record in changed:
        record["version"] = before.version
        for column, _, get in specs:
            record[column] = get(after)
    st = _Statement()
    document = st.arg(orjson.dumps(records, default=str).decode(), "json")
    at, run = st.arg(now, "timestamptz"), st.arg(run_id, "bigint")
    spec = ", ".join(f"{name} {kind}" for name, kind in (*RUN_RECORD.items(), *((c, k) for c, k, _ in specs)))
    parts = [f"d AS MATERIALIZED (SELECT * FROM json_to_recordset({document}) AS v({spec}))"]
    items = "SELECT id, segment, outcome, reason, changes, before, version, consent FROM d"
    logged = "SELECT id, action, segment, changes, consent FROM d WHERE version IS NOT NULL"
    expected = {"items": len(records), "moved": len(changed), "logged": len(changed)}
    if moves:
        moved = st.arg(orjson.dumps(moves).decode(), "json")
        moved_spec = ", ".join(f"{name} {kind}" for name, kind in setbased.RECORD.items())
        parts.append(f"f AS MATERIALIZED (SELECT * FROM json_to_recordset({moved}) AS v({moved_spec}))")
        parts.append(f"shifted AS ({setbased.MOVE.format(now=at)})")
        items += " UNION ALL SELECT id, segment, 'APPLIED', NULL, changes, before, version, NULL FROM f"
        logged += f" UNION ALL SELECT id, '{setbased.ACTION}', segment, changes, NULL FROM f"
        expected |= {"items": len(records) + len(moves), "shifted": len(moves), "logged": len(changed) + len(moves)}
    parts.append(
        "items AS (INSERT INTO bulk_run_items (run_id, subscription_id, segment, outcome, reason, changes, before, "
        f"version_after, consent_reference, created_at) SELECT {run}, id, segment, outcome, reason, "
        f"coalesce(changes, '[]'), before, version + 1, consent, {at} FROM ({items}) AS x ORDER BY id RETURNING 1)"
    )
    if changed:
        sets = ", ".join([*(f"{c} = d.{c}" for c, _, _ in specs), "version = s.version + 1", f"updated_at = {at}"])
        parts.append(
            f"moved AS (UPDATE subscriptions AS s SET {sets} FROM d "
            "WHERE d.version IS NOT NULL AND s.id = d.id AND s.version = d.version RETURNING 1)"
        )
    if changed or moves:
        parts.append(
            "logged AS (INSERT INTO history_entries (subscription_id, occurred_at, actor, action, reason, "
            f"bulk_run_id, changes, consent_reference) SELECT id, {at}, {st.arg(actor, 'text')}, action, "
            f"'bulk run ' || {run} || ', segment ' || segment, {run}, changes, consent FROM ({logged}) AS x "
            "ORDER BY id RETURNING 1)"
        )
    names = [part.split(" ", 1)[0] for part in parts if part.split(" ", 1)[0] in expected]
    sql = "WITH " + ", ".join(parts) + " SELECT " + ", ".join(f"(SELECT count(*) FROM {n})" for n in names)
    counts = await db.fetchrow(sql, *st.args)
    for name, got in zip(names, counts, strict=True):
        if got != expected[name]:
            raise VersionConflict(f"{name}: {got} rows written, {expected[name]} expected; the chunk is rolled back")


async def update_subscriptions(db: Any, pairs: Sequence[Pair], now: datetime) -> None:
    """``after`` over ``before`` for every pair: the changed columns, version + 1, updated_at."""
    if not pairs:
        return
    st = _Statement()
    rows = await db.fetch(_subscriptions_update(st, pairs, now), *st.args)
    if len(rows) != len(pairs):
        raise VersionConflict("a subscription of this chunk changed while the chunk was being written")


@dataclass
class _Children:
    item_updates: list[tuple[Any, ...]]
    item_inserts: list[tuple[Any, ...]]
    item_deletes: list[int]
    coupon_inserts: list[tuple[Any, ...]]
    coupon_updates: list[tuple[int, int]]
    coupon_deletes: list[int]


def _children(pairs: Sequence[Pair]) -> _Children:
    out = _Children([], [], [], [], [], [])
    for before, after in pairs:
        sid = after.id
        assert sid is not None  # saved subscriptions only
        if after.items is not before.items:
            old = {i.id: (n, i) for n, i in enumerate(before.items) if i.id is not None}
            kept = set()
            for position, item in enumerate(after.items):
                row = item_row(sid, position, item)
                if item.id is None or item.id not in old:
                    out.item_inserts.append((item.id, *row))
                    continue
                kept.add(item.id)
                was_position, was = old[item.id]
                if was != item or was_position != position:
                    out.item_updates.append((item.id, *row))
            out.item_deletes.extend(i for i in old if i not in kept)
        if after.coupons is not before.coupons:
            old_c = {c.id: c for c in before.coupons if c.id is not None}
            kept_c = set()
            for applied in after.coupons:
                if applied.id is None or applied.id not in old_c:
                    out.coupon_inserts.append((applied.id, sid, applied.coupon.id, applied.cycles_used))
                    continue
                kept_c.add(applied.id)
                if old_c[applied.id].cycles_used != applied.cycles_used:
                    out.coupon_updates.append((applied.id, applied.cycles_used))
            out.coupon_deletes.extend(c for c in old_c if c not in kept_c)
    return out


_ITEM_TYPES = ("bigint", "bigint", "int", "bigint", "text", "int", "bool", "bool", "bigint", "int")


def _columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(col) for col in zip(*rows, strict=True)]


async def save_children(db: Any, pairs: Sequence[Pair], now: datetime) -> None:
    """Items and applied coupons that changed, came or went (their ids kept when a revert restores them)."""
    c = _children(pairs)
    if c.item_deletes:
        await db.execute("DELETE FROM subscription_items WHERE id = ANY($1::bigint[])", c.item_deletes)
    if c.coupon_deletes:
        await db.execute("DELETE FROM applied_coupons WHERE id = ANY($1::bigint[])", c.coupon_deletes)
    if c.item_updates:
        st = _Statement()
        source = st.unnest(_columns(c.item_updates), ("bigint", *_ITEM_TYPES))
        sets = ", ".join(f"{col} = v.{col}" for col in ITEM_COLUMNS[1:])
        await db.execute(
            f"UPDATE subscription_items AS i SET {sets} FROM {source} AS v(id, {', '.join(ITEM_COLUMNS)}) "
            "WHERE i.id = v.id AND i.subscription_id = v.subscription_id",
            *st.args,
        )
    if c.coupon_updates:
        await db.execute(
            "UPDATE applied_coupons AS a SET cycles_used = v.cycles FROM unnest($1::bigint[], $2::int[]) "
            "AS v(id, cycles) WHERE a.id = v.id",
            *_columns(c.coupon_updates),
        )
    coupon_columns = ("subscription_id", "coupon_id", "cycles_used")
    for table, rows, names, types in (
        ("subscription_items", c.item_inserts, ITEM_COLUMNS, _ITEM_TYPES),
        ("applied_coupons", c.coupon_inserts, coupon_columns, ("bigint", "bigint", "int")),
    ):
        for with_id in (True, False):
            chosen = [r if with_id else r[1:] for r in rows if (r[0] is not None) == with_id]
            if not chosen:
                continue
            st = _Statement()
            all_names = ("id", *names) if with_id else tuple(names)
            source = st.unnest(_columns(chosen), ("bigint", *types) if with_id else types)
            extra, value = (
                ("", "") if table == "subscription_items" else (", applied_at", f", {st.arg(now, 'timestamptz')}")
            )
            await db.execute(
                f"INSERT INTO {table} ({', '.join(all_names)}{extra}) SELECT *{value} FROM {source}", *st.args
            )


async def copy_history(db: Any, rows: Sequence[tuple[Any, ...]]) -> None:
    """History rows (``HISTORY_COLUMNS``, changes as JSON text) in one COPY."""
    if rows:
        await db.copy_records_to_table("history_entries", records=rows, columns=HISTORY_COLUMNS)


async def insert_outbox(
    db: Any, events: Sequence[tuple[SubscriptionState, Event]], now: datetime, *, base_url: str
) -> None:
    """Outbox rows for the operations' events, addressed to each subscription's customer.

    The payloads are those ``emit`` writes for a single mutation (``notification_payload``).
    """
    if not events:
        return
    await db.execute(
        "INSERT INTO outbox (kind, subscription_id, recipient, payload, created_at) "
        "SELECT v.kind, v.sid, c.email, v.payload::jsonb, $4 FROM unnest($1::text[], $2::bigint[], $3::text[]) "
        "AS v(kind, sid, payload) JOIN subscriptions s ON s.id = v.sid JOIN customers c ON c.id = s.customer_id",
        [e.kind for _, e in events],
        [state.id for state, _ in events],
        [dumps(notification_payload(base_url, state, e)) for state, e in events],
        now,
    )
