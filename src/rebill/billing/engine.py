"""The renewal engine: bills every subscription that is due, exactly once.

Each batch goes through three steps, and no database transaction stays open
while a gateway is called:

1. **Claim and record** (one short transaction). Due subscriptions are
   claimed with ``SELECT … FOR UPDATE SKIP LOCKED``, so concurrent workers
   take disjoint rows. Due phases apply first, then the pure rules of
   :mod:`rebill.domain.cycle` decide; the ``PENDING`` renewal is inserted
   (the partial unique index on ``(subscription_id, cycle)`` makes a second
   renewal of a cycle impossible) and the subscription advances (version,
   history, outbox) before the commit.
2. **Charge** outside any transaction, with the renewal's idempotency key.
3. **Settle** (one short transaction): the renewal becomes ``PAID`` or
   ``FAILED``, the transactions are recorded, and the subscription follows
   the payment or dunning rules.

A worker that dies between 1 and 3 leaves ``PENDING`` renewals. While a
worker works on a renewal it holds a session-level advisory lock on it
(taken before step 1 commits), so another worker can tell an orphan (lock
free) from a renewal in flight (lock held) without any lease or clock. An
orphan is charged again with the same key, and the gateway returns its
first answer: no cycle is billed twice and none is skipped.

Throughput comes from doing each step for a whole batch at once: one claim
query, one query per related table, and one ``INSERT … SELECT FROM unnest``
or ``UPDATE … FROM unnest`` per table written.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import BigInteger, Boolean, Date, DateTime, Integer, Table, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from rebill.billing.gateways import ChargeRequest, GatewayResult, charge_many
from rebill.db import tables as t
from rebill.db.repositories import Catalog, SubscriptionRepository, renewal_from_row
from rebill.domain import cycle
from rebill.domain.cadence import local_today
from rebill.domain.errors import RebillError, VersionConflict
from rebill.domain.money import Money
from rebill.domain.outcome import OpContext, Outcome
from rebill.domain.renewal import Charge, Event, RenewalInfo, RenewalStatus
from rebill.domain.status import SubscriptionStatus
from rebill.domain.subscription import PaymentKind, SubscriptionState, diff
from rebill.services.payments import new_renewal_key
from rebill.services.runtime import ENGINE, Actor, Common, Services
from rebill.services.subscriptions import notification_payload

log = logging.getLogger(__name__)

S = t.table_of(t.Subscription)
R = t.table_of(t.Renewal)
TX = t.table_of(t.Transaction)
HISTORY = t.table_of(t.HistoryEntry)
OUTBOX = t.table_of(t.OutboxMessage)
CUSTOMERS = t.table_of(t.Customer)
AC = t.table_of(t.AppliedCoupon)

#: The advisory-lock class of renewals in flight (``pg_try_advisory_lock(class, id)``).
LOCK_CLASS = 0x52424C  # "RBL"

# The latest and earliest local dates anywhere on earth, for index-friendly bounds.
_AHEAD = timedelta(hours=14)
_BEHIND = timedelta(hours=12)


def attempt_key(renewal_key: str, attempt: int) -> str:
    """The idempotency key of one attempt at a renewal (the same as ``retryRenewal`` uses)."""
    return renewal_key if attempt <= 1 else f"{renewal_key}:retry{attempt}"


@dataclass
class EngineReport:
    """What one run did."""

    renewed: int = 0
    failed: int = 0
    retried: int = 0
    retries_paid: int = 0
    recovered: int = 0
    expired: int = 0
    cancelled: int = 0
    suspended: int = 0
    awaiting_reinstate: int = 0
    reminders: int = 0
    phases: int = 0
    skipped: int = 0
    elapsed: float = 0.0

    @property
    def renewals(self) -> int:
        """Renewals created and charged (paid or declined)."""
        return self.renewed + self.failed

    @property
    def busy(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self) if f.name != "elapsed")

    def summary(self) -> str:
        text = (
            f"renewed {self.renewed}, failed {self.failed}, retried {self.retried} "
            f"({self.retries_paid} paid), recovered {self.recovered}, expired {self.expired}, "
            f"cancelled {self.cancelled}, suspended {self.suspended}, "
            f"awaiting reinstate {self.awaiting_reinstate}, reminders {self.reminders}"
        )
        if self.skipped:
            text += f", skipped after an error {self.skipped} (see the log)"
        return text


@dataclass
class Job:
    """One attempt at charging one renewal, from claim to settlement."""

    renewal_id: int
    charge: Charge
    key: str
    attempts: int
    retry: bool
    state: SubscriptionState
    email: str | None
    recovered: bool = False
    tried: list[tuple[str, GatewayResult]] = field(default_factory=list)
    outside: bool = False
    refused: str | None = None

    @property
    def subscription_id(self) -> int:
        assert self.state.id is not None
        return self.state.id

    @property
    def succeeded(self) -> bool:
        return self.outside or any(result.succeeded for _, result in self.tried)

    @property
    def gateway(self) -> str | None:
        for name, result in self.tried:
            if result.succeeded:
                return name
        return None

    @property
    def decline_code(self) -> str | None:
        if self.refused:
            return self.refused
        failed = [result.decline_code for _, result in self.tried if not result.succeeded]
        return failed[-1] if failed else None


# -- set-based SQL -------------------------------------------------------------


def _pg_type(column: Any) -> str:
    kind = column.type
    if isinstance(kind, JSONB):
        return "jsonb"
    if isinstance(kind, BigInteger):
        return "bigint"
    if isinstance(kind, Integer):
        return "integer"
    if isinstance(kind, Boolean):
        return "boolean"
    if isinstance(kind, DateTime):
        return "timestamptz"
    if isinstance(kind, Date):
        return "date"
    return "text"


def _array(table: Table, name: str) -> str:
    pg = _pg_type(table.c[name])
    return f"CAST(:{name} AS {'text' if pg == 'jsonb' else pg}[])"


def _value(table: Table, name: str) -> str:
    return f'u."{name}"::jsonb' if _pg_type(table.c[name]) == "jsonb" else f'u."{name}"'


@lru_cache(maxsize=64)
def _insert_sql(table: Table, columns: tuple[str, ...], returning: tuple[str, ...], conflict: str | None) -> Any:
    names = ", ".join(f'"{c}"' for c in columns)
    sql = (
        f'INSERT INTO "{table.name}" ({names}) SELECT {", ".join(_value(table, c) for c in columns)} '
        f"FROM unnest({', '.join(_array(table, c) for c in columns)}) AS u({names})"
    )
    if conflict:
        sql += f" ON CONFLICT ({conflict}) DO NOTHING"
    if returning:
        sql += " RETURNING " + ", ".join(f'"{c}"' for c in returning)
    return text(sql)


def _params(table: Table, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    params: dict[str, list[Any]] = {}
    for c in columns:
        values = [row.get(c) for row in rows]
        if _pg_type(table.c[c]) == "jsonb":
            values = [json.dumps(v) if v is not None else None for v in values]
        params[c] = values
    return params


async def insert_rows(
    session: AsyncSession,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    returning: Sequence[str] = (),
    conflict: str | None = None,
) -> list[Any]:
    """Insert many rows with one ``INSERT … SELECT FROM unnest`` (one statement, any batch size)."""
    if not rows:
        return []
    columns = tuple(rows[0])
    statement = _insert_sql(table, columns, tuple(returning), conflict)
    result = await session.execute(statement, _params(table, columns, rows))
    return list(result) if returning else []


@lru_cache(maxsize=64)
def _update_sql(table: Table, key: str, columns: tuple[str, ...], guard: str | None) -> Any:
    names = (key, *((guard,) if guard else ()), *columns)
    sets = [f'"{c}" = {_value(table, c)}' for c in columns]
    where = f'x."{key}" = u."{key}"'
    if guard:
        sets.append(f'"{guard}" = u."{guard}" + 1')
        where += f' AND x."{guard}" = u."{guard}"'
    arrays = ", ".join(_array(table, c) for c in names)
    aliases = ", ".join(f'"{c}"' for c in names)
    return text(
        f'UPDATE "{table.name}" AS x SET {", ".join(sets)} FROM unnest({arrays}) AS u({aliases}) '
        f'WHERE {where} RETURNING x."{key}"'
    )


async def update_rows(
    session: AsyncSession,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    key: str = "id",
    guard: str | None = None,
) -> set[Any]:
    """Update many rows by key with one ``UPDATE … FROM unnest``; ``guard`` is a version column.

    Returns the keys of the rows updated (a guarded row whose version moved is not).
    """
    if not rows:
        return set()
    columns = tuple(c for c in rows[0] if c not in (key, guard))
    statement = _update_sql(table, key, columns, guard)
    names = (key, *((guard,) if guard else ()), *columns)
    result = await session.execute(statement, _params(table, names, rows))
    return {row[0] for row in result}


# Fields of the subscription row the engine's rules change (see domain/cycle.py).
ENGINE_COLUMNS = (
    "status",
    "next_renewal_date",
    "trial_end_date",
    "current_period_start",
    "current_period_end",
    "end_date",
    "occurrences_billed",
    "last_cycle",
    "overdue_count",
    "next_retry_date",
    "last_gateway_id",
    "amount_minor",
    "credit_minor",
    "cancel_at_period_end",
    "cancelled_at",
    "renew_due",
    "updated_at",
)


def _engine_values(state: SubscriptionState, version: int, now: datetime) -> dict[str, Any]:
    return {
        "id": state.id,
        "version": version,
        "status": state.status.value,
        "next_renewal_date": state.next_renewal_date,
        "trial_end_date": state.trial_end_date,
        "current_period_start": state.current_period_start,
        "current_period_end": state.current_period_end,
        "end_date": state.end_date,
        "occurrences_billed": state.occurrences_billed,
        "last_cycle": state.last_cycle,
        "overdue_count": state.overdue_count,
        "next_retry_date": state.next_retry_date,
        "last_gateway_id": state.last_gateway_id,
        "amount_minor": state.amount.minor,
        "credit_minor": state.credit.minor if state.credit is not None else 0,
        "cancel_at_period_end": state.cancel_at_period_end,
        "cancelled_at": state.cancelled_at,
        "renew_due": state.renew_due,
        "updated_at": now,
    }


async def save_states(
    session: AsyncSession,
    repo: SubscriptionRepository,
    pairs: Sequence[tuple[SubscriptionState, SubscriptionState]],
    now: datetime,
) -> list[SubscriptionState]:
    """Save many ``(before, after)`` pairs: one guarded UPDATE for the usual engine changes.

    A change to the items (pending changes taking effect) goes through the
    repository; coupon cycles are counted with one statement.
    """
    saved: list[SubscriptionState] = []
    rows: list[dict[str, Any]] = []
    coupons: list[dict[str, Any]] = []
    for before, after in pairs:
        same_coupons = [c.id for c in before.coupons] == [c.id for c in after.coupons]
        if before.items != after.items or not same_coupons:
            saved.append(await repo.save(before, after, now))
            continue
        rows.append(_engine_values(after, before.version, now))
        for old, new in zip(before.coupons, after.coupons, strict=True):
            if old.cycles_used != new.cycles_used:
                coupons.append({"id": new.id, "cycles_used": new.cycles_used})
        saved.append(after.evolve(version=before.version + 1, updated_at=now))
    updated = await update_rows(session, S, rows, guard="version")
    if len(updated) != len(rows):
        missing = sorted({r["id"] for r in rows} - updated)
        raise VersionConflict(f"subscriptions {missing} changed while the renewal engine was saving them")
    await update_rows(session, AC, coupons)
    return saved


# -- rows ----------------------------------------------------------------------


def _renewal_note(renewal_id: int, charge: Charge, status: RenewalStatus, decline: str | None = None) -> dict[str, Any]:
    after: dict[str, Any] = {
        "cycle": charge.cycle,
        "kind": charge.kind.value,
        "status": status.value,
        "amount": charge.amount.amount_str,
        "periodStart": charge.period_start.isoformat(),
        "periodEnd": charge.period_end.isoformat(),
    }
    if decline:
        after["declineCode"] = decline
    return {"field": f"renewals.{renewal_id}", "before": None, "after": after}


class _Writer:
    """Rows of one transaction, written together at its end."""

    def __init__(self, engine: RenewalEngine, now: datetime) -> None:
        self.engine = engine
        self.now = now
        self.history: list[dict[str, Any]] = []
        self.outbox: list[dict[str, Any]] = []
        self.transactions: list[dict[str, Any]] = []

    def record(
        self,
        before: SubscriptionState,
        outcome: Outcome,
        after: SubscriptionState,
        email: str | None,
        *,
        notes: Sequence[dict[str, Any]] = (),
        renewal_id: int | None = None,
        reason: str | None = None,
    ) -> None:
        self.history.append(
            {
                "subscription_id": after.id,
                "occurred_at": self.now,
                "actor": self.engine.actor.name,
                "action": outcome.action,
                "reason": reason,
                "changes": diff(before, after) + list(notes),
                "bulk_run_id": None,
            }
        )
        for event in outcome.events:
            self.outbox.append(
                {
                    "kind": event.kind,
                    "subscription_id": after.id,
                    "recipient": email,
                    "payload": self.engine.payload(after, event, renewal_id),
                    "created_at": self.now,
                }
            )

    async def flush(self, session: AsyncSession) -> None:
        await insert_rows(session, TX, self.transactions)
        await insert_rows(session, HISTORY, self.history)
        await insert_rows(session, OUTBOX, self.outbox)


# -- the engine ----------------------------------------------------------------


class RenewalEngine:
    """Renews, retries and reminds, as of ``services.clock.now()``."""

    def __init__(self, services: Services, *, batch_size: int | None = None, actor: Actor = ENGINE) -> None:
        self.services = services
        self.settings = services.settings
        self.batch_size = max(1, batch_size or services.settings.worker_batch_size)
        self.actor = actor
        self._locks: AsyncConnection | None = None
        self._skip: set[int] = set()

    # -- entry points ----------------------------------------------------------

    async def run_once(self, limit: int | None = None, *, stop: asyncio.Event | None = None) -> EngineReport:
        """Process everything due as of now (at most ``limit`` renewals and retries), then return."""
        started = time.perf_counter()
        now = self.services.clock.now()
        report = EngineReport()
        self._skip = set()
        async with self._advisory():
            await self._recover(now, report)
            budget = limit
            while stop is None or not stop.is_set():
                size = self.batch_size if budget is None else min(self.batch_size, budget)
                if size <= 0:
                    break
                done = await self._renew_batch(now, report, size)
                if budget is not None:
                    budget -= done
                    size = min(size, budget)
                retried = await self._retry_batch(now, report, size) if size > 0 else 0
                if budget is not None:
                    budget -= retried
                if done + retried == 0:
                    break
            # Renewals orphaned by a worker that died while this one ran.
            await self._recover(now, report)
            if stop is None or not stop.is_set():
                report.reminders += await self._remind(now)
        report.elapsed = time.perf_counter() - started
        return report

    async def renew_subscription(self, subscription_id: int) -> None:
        """Renew one subscription now if it is due (activation after a suspension, seed 003)."""
        now = self.services.clock.now()
        report = EngineReport()
        self._skip = set()
        async with self._advisory():
            for _ in range(10_000):
                if not await self._renew_batch(now, report, 1, only=[subscription_id]):
                    break

    async def run_forever(
        self,
        poll_seconds: float | None = None,
        *,
        stop: asyncio.Event | None = None,
        after_each: Callable[[EngineReport], Awaitable[None]] | None = None,
    ) -> None:
        """Run :meth:`run_once` every ``poll_seconds`` until ``stop`` is set."""
        stop = stop or asyncio.Event()
        poll = self.settings.worker_poll_seconds if poll_seconds is None else poll_seconds
        while not stop.is_set():
            report = await self.run_once(stop=stop)
            if after_each is not None:
                await after_each(report)
            if stop.is_set():
                break
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(poll, 0.0))

    # -- advisory locks ----------------------------------------------------------

    @asynccontextmanager
    async def _advisory(self) -> AsyncIterator[None]:
        if self._locks is not None:  # nested call (renew_subscription inside a run)
            yield
            return
        conn = await self.services.engine.connect()
        try:
            self._locks = await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield
        finally:
            self._locks = None
            try:
                await conn.execute(text("SELECT pg_advisory_unlock_all()"))
            finally:
                await conn.close()

    async def _lock(self, renewal_ids: Sequence[int]) -> set[int]:
        """Take the in-flight locks of renewals; the ids whose lock was free."""
        if not renewal_ids:
            return set()
        assert self._locks is not None
        rows = await self._locks.execute(
            text(
                "SELECT id FROM unnest(CAST(:ids AS bigint[])) AS id "
                "WHERE pg_try_advisory_lock(:cls, (id % 2147483647)::int)"
            ),
            {"ids": list(renewal_ids), "cls": LOCK_CLASS},
        )
        return {row.id for row in rows}

    async def _unlock_all(self) -> None:
        assert self._locks is not None
        await self._locks.execute(text("SELECT pg_advisory_unlock_all()"))

    # -- helpers -----------------------------------------------------------------

    def payload(self, state: SubscriptionState, event: Event, renewal_id: int | None) -> dict[str, Any]:
        return notification_payload(self.settings.public_base_url, state, event, renewal_id)

    def _ctx(self, now: datetime, state: SubscriptionState, cache: dict[str, OpContext]) -> OpContext:
        ctx = cache.get(state.time_zone)
        if ctx is None:
            ctx = cache[state.time_zone] = OpContext(now=now, today=local_today(now, state.time_zone))
        return ctx

    def _unit(self, session: AsyncSession, repo: SubscriptionRepository, now: datetime) -> Any:
        from rebill.services.subscriptions import Unit

        return Unit(session, repo, repo.catalog, self.services, now, self.actor, Common())

    async def _emails(self, session: AsyncSession, subscription_ids: Iterable[int]) -> dict[int, str | None]:
        ids = sorted(set(subscription_ids))
        if not ids:
            return {}
        rows = await session.execute(
            select(S.c.id, CUSTOMERS.c.email).join(CUSTOMERS, CUSTOMERS.c.id == S.c.customer_id).where(S.c.id.in_(ids))
        )
        return {row.id: row.email for row in rows}

    # -- step 1: claim and record ------------------------------------------------

    async def _renew_batch(
        self, now: datetime, report: EngineReport, size: int, *, only: Sequence[int] | None = None
    ) -> int:
        """Claim up to ``size`` due subscriptions and take each one cycle further; how many were claimed."""
        try:
            claimed, jobs = await self._begin(now, report, size, only)
        except (DBAPIError, RebillError) as exc:
            await self._unlock_all()
            if only is not None and len(only) == 1:
                log.error("subscription %s could not be renewed: %s", only[0], exc)
                self._skip.update(only)
                report.skipped += 1
                return 0
            # Find the one that fails: the same batch, a subscription at a time.
            log.warning("a renewal batch failed (%s); retrying it one subscription at a time", exc)
            done = 0
            for sid in await self._due_ids(now, size):
                done += await self._renew_batch(now, report, 1, only=[sid])
            return done
        if jobs:
            await self._charge_and_settle(jobs, now, report)
        return claimed

    async def _due_ids(self, now: datetime, size: int) -> list[int]:
        async with self.services.sessions() as session:
            rows = await session.execute(self._due_query(now, size, None, lock=False))
            return [row.id for row in rows]

    def _due_query(self, now: datetime, size: int, only: Sequence[int] | None, *, lock: bool = True) -> Any:
        stmt = (
            select(S, CUSTOMERS.c.email.label("customer_email"))
            .join(CUSTOMERS, CUSTOMERS.c.id == S.c.customer_id)
            .where(
                # Literal statuses, so the planner can use the partial index of due rows.
                text("subscriptions.status IN ('TRIAL', 'ACTIVE', 'OVERDUE')"),
                S.c.next_renewal_date <= bindparam("latest", (now + _AHEAD).date(), type_=Date),
                S.c.next_renewal_date <= _local_today("subscriptions", now),
                # One cycle of a subscription in flight at a time: its cycles are charged in order.
                text(
                    "NOT EXISTS (SELECT 1 FROM renewals p "
                    "WHERE p.subscription_id = subscriptions.id AND p.status = 'PENDING')"
                ),
            )
            .order_by(S.c.next_renewal_date, S.c.id)
            .limit(size)
        )
        if self._skip:
            stmt = stmt.where(S.c.id.not_in(sorted(self._skip)))
        if only is not None:
            stmt = stmt.where(S.c.id.in_(list(only)))
        if lock:
            stmt = stmt.with_for_update(of=S, skip_locked=True)
        return stmt

    async def _begin(
        self, now: datetime, report: EngineReport, size: int, only: Sequence[int] | None
    ) -> tuple[int, list[Job]]:
        async with self.services.sessions() as session, session.begin():
            rows = list(await session.execute(self._due_query(now, size, only)))
            if not rows:
                return 0, []
            emails = {row.id: row.customer_email for row in rows}
            repo = SubscriptionRepository(session, Catalog(session))
            states = await repo.states_from_rows(rows)
            with_phases = await self._due_phases(session, [s.id for s in states if s.id is not None], now)
            contexts: dict[str, OpContext] = {}
            writer = _Writer(self, now)
            charged: list[tuple[SubscriptionState, Outcome]] = []
            immediate: list[tuple[SubscriptionState, Outcome]] = []
            for state in states:
                assert state.id is not None
                if state.id in with_phases:
                    state = await self._apply_phases(session, repo, state, now)
                    report.phases += 1
                outcome = cycle.begin_cycle(state, self._ctx(now, state, contexts))
                if outcome is None:
                    continue
                (charged if outcome.charge is not None else immediate).append((state, outcome))

            renewal_rows = []
            for state, outcome in charged:
                charge = outcome.charge
                assert charge is not None and state.id is not None
                pm = outcome.state.payment_method
                renewal_rows.append(
                    {
                        "subscription_id": state.id,
                        "cycle": charge.cycle,
                        "kind": charge.kind.value,
                        "adjustment": False,
                        "status": RenewalStatus.PENDING.value,
                        "period_start": charge.period_start,
                        "period_end": charge.period_end,
                        "amount_minor": charge.amount.minor,
                        "currency": charge.amount.currency,
                        "attempts": 1,
                        "fulfillment": charge.fulfillment.value,
                        "payment_method_id": pm.id if pm else None,
                        "payment_kind": pm.kind.value if pm else None,
                        "idempotency_key": new_renewal_key(state.id, charge.cycle),
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            inserted = await insert_rows(
                session, R, renewal_rows, returning=("id", "subscription_id", "idempotency_key")
            )
            renewal_of = {row.subscription_id: (row.id, row.idempotency_key) for row in inserted}
            # In flight from now on: this lock tells other workers these are not orphans.
            await self._lock([row.id for row in inserted])

            pairs = charged + immediate
            saved = await save_states(session, repo, [(before, o.state) for before, o in pairs], now)
            jobs: list[Job] = []
            for (before, outcome), after in zip(pairs, saved, strict=True):
                assert after.id is not None
                email = emails.get(after.id)
                if outcome.charge is None:
                    writer.record(before, outcome, after, email)
                    if after.status is SubscriptionStatus.EXPIRED:
                        report.expired += 1
                    elif after.status is SubscriptionStatus.CANCELLED:
                        report.cancelled += 1
                    else:
                        report.awaiting_reinstate += 1
                    continue
                renewal_id, key = renewal_of[after.id]
                note = _renewal_note(renewal_id, outcome.charge, RenewalStatus.PENDING)
                writer.record(before, outcome, after, email, notes=[note], renewal_id=renewal_id)
                charge = Charge(
                    outcome.charge.kind,
                    outcome.charge.cycle,
                    outcome.charge.period_start,
                    outcome.charge.period_end,
                    outcome.charge.amount,
                    fulfillment=outcome.charge.fulfillment,
                    renewal_id=renewal_id,
                )
                jobs.append(Job(renewal_id, charge, key, 1, False, after, email))
            await writer.flush(session)
        return len(rows), jobs

    async def _due_phases(self, session: AsyncSession, ids: Sequence[int], now: datetime) -> set[int]:
        if not ids:
            return set()
        phases = t.table_of(t.Phase)
        rows = await session.execute(
            select(phases.c.subscription_id)
            .where(
                phases.c.subscription_id.in_(list(ids)),
                phases.c.status == "PENDING",
                phases.c.effective_date <= (now + _AHEAD).date(),
            )
            .distinct()
        )
        return {row.subscription_id for row in rows}

    async def _apply_phases(
        self, session: AsyncSession, repo: SubscriptionRepository, state: SubscriptionState, now: datetime
    ) -> SubscriptionState:
        """Due phases apply before the cycle is billed (seed 001); they save and write their history."""
        try:
            from rebill.services.phases import apply_due_phases
        except ImportError:  # phases not installed in this build
            return state
        applied: SubscriptionState = await apply_due_phases(self._unit(session, repo, now), state)
        return applied

    # -- retries -------------------------------------------------------------------

    async def _retry_batch(self, now: datetime, report: EngineReport, size: int) -> int:
        """Claim up to ``size`` declined renewals whose retry is due, and charge them again."""
        stmt = (
            select(R)
            .join(S, S.c.id == R.c.subscription_id)
            .where(
                text("renewals.status = 'FAILED'"),
                text("subscriptions.status = 'OVERDUE'"),
                R.c.next_retry_date <= bindparam("latest", (now + _AHEAD).date(), type_=Date),
                R.c.next_retry_date <= _local_today("subscriptions", now),
                text(
                    "NOT EXISTS (SELECT 1 FROM renewals p "
                    "WHERE p.subscription_id = renewals.subscription_id AND p.status = 'PENDING')"
                ),
            )
            .order_by(R.c.next_retry_date, R.c.id)
            .limit(size)
            .with_for_update(of=R, skip_locked=True)
        )
        if self._skip:
            stmt = stmt.where(R.c.subscription_id.not_in(sorted(self._skip)))
        async with self.services.sessions() as session, session.begin():
            rows = list(await session.execute(stmt))
            if not rows:
                return 0
            ids = [row.id for row in rows]
            await session.execute(
                R.update()
                .where(R.c.id.in_(ids))
                .values(
                    status=RenewalStatus.PENDING.value,
                    attempts=R.c.attempts + 1,
                    next_retry_date=None,
                    updated_at=now,
                )
            )
            await self._lock(ids)
            jobs = await self._jobs_for(session, rows, attempts_offset=1)
        for job in jobs:
            job.retry = True
        await self._charge_and_settle(jobs, now, report)
        return len(rows)

    async def _jobs_for(self, session: AsyncSession, rows: Sequence[Any], *, attempts_offset: int) -> list[Job]:
        repo = SubscriptionRepository(session, Catalog(session))
        states = await repo.get_many(sorted({row.subscription_id for row in rows}))
        emails = await self._emails(session, list(states))
        jobs = []
        for row in rows:
            attempts = row.attempts + attempts_offset
            info = renewal_from_row(row)
            charge = Charge(
                info.kind,
                info.cycle,
                info.period_start,
                info.period_end,
                info.amount,
                fulfillment=info.fulfillment,
                renewal_id=info.id,
            )
            state = states[row.subscription_id]
            jobs.append(
                Job(
                    row.id,
                    charge,
                    attempt_key(row.idempotency_key, attempts),
                    attempts,
                    attempts > 1,
                    state,
                    emails.get(row.subscription_id),
                )
            )
        return jobs

    # -- recovery ------------------------------------------------------------------

    async def _recover(self, now: datetime, report: EngineReport) -> None:
        """Settle renewals left PENDING by a worker that died (their in-flight lock is free)."""
        after = 0
        while True:
            async with self.services.sessions() as session, session.begin():
                rows = list(
                    await session.execute(
                        select(R)
                        .where(text("renewals.status = 'PENDING'"), R.c.id > after)
                        .order_by(R.c.id)
                        .limit(self.batch_size)
                        .with_for_update(skip_locked=True)
                    )
                )
                if not rows:
                    return
                after = rows[-1].id
                orphans = await self._lock([row.id for row in rows])
                rows = [row for row in rows if row.id in orphans]
                jobs = await self._jobs_for(session, rows, attempts_offset=0) if rows else []
            for job in jobs:
                job.recovered = True
            if jobs:
                log.warning("recovering %d renewals left pending by a stopped worker", len(jobs))
                await self._charge_and_settle(jobs, now, report)
            else:
                await self._unlock_all()

    # -- step 2: charge --------------------------------------------------------------

    async def _charge_and_settle(self, jobs: list[Job], now: datetime, report: EngineReport) -> None:
        try:
            await self._charge(jobs)
            await self._settle(jobs, now, report)
        except (DBAPIError, RebillError, OSError) as exc:
            # The renewals stay PENDING; the next run recovers them with the same keys.
            log.error("settling %d renewals failed, they will be recovered: %s", len(jobs), exc)
            report.skipped += len(jobs)
            self._skip.update(job.subscription_id for job in jobs)
        finally:
            # Settled, or left PENDING for recovery: either way no longer in flight here.
            await self._unlock_all()

    async def _charge(self, jobs: Sequence[Job]) -> None:
        """Send the charges to the gateways, outside any transaction, in batches per gateway."""
        routes: dict[int, list[str]] = {}
        for job in jobs:
            pm = job.state.payment_method
            if job.charge.amount.minor <= 0 or (pm is not None and pm.kind is PaymentKind.EXTERNAL):
                job.outside = True  # nothing to pay, or paid outside rebill
            elif pm is None:
                job.refused = "no_payment_method"
            elif pm.kind is PaymentKind.OFFLINE:
                job.refused = "offline_payment_method"
            else:
                routes[job.renewal_id] = self.services.gateways.route(job.state)
        waiting = [job for job in jobs if job.renewal_id in routes]
        step = 0
        while waiting:
            by_gateway: dict[str, list[Job]] = {}
            for job in waiting:
                route = routes[job.renewal_id]
                if step < len(route):
                    by_gateway.setdefault(route[step], []).append(job)
            for name, batch in by_gateway.items():
                requests = [
                    ChargeRequest(
                        job.state.payment_method.gateway_token if job.state.payment_method else None,
                        job.charge.amount,
                        f"{job.key}:{name}",
                    )
                    for job in batch
                ]
                results = await charge_many(self.services.gateways.get(name), requests)
                for job, result in zip(batch, results, strict=True):
                    job.tried.append((name, result))
            step += 1
            waiting = [
                job for job in waiting if step < len(routes[job.renewal_id]) and job.tried and job.tried[-1][1].cascades
            ]

    # -- step 3: settle ----------------------------------------------------------------

    async def _settle(self, jobs: list[Job], now: datetime, report: EngineReport) -> None:
        async with self.services.sessions() as session, session.begin():
            ids = sorted({job.subscription_id for job in jobs})
            versions = {
                row.id: row.version
                for row in await session.execute(
                    select(S.c.id, S.c.version).where(S.c.id.in_(ids)).order_by(S.c.id).with_for_update()
                )
            }
            pending = {
                row.id
                for row in await session.execute(
                    select(R.c.id)
                    .where(R.c.id.in_([job.renewal_id for job in jobs]), text("renewals.status = 'PENDING'"))
                    .with_for_update()
                )
            }
            jobs = [job for job in jobs if job.renewal_id in pending]
            if not jobs:
                return
            repo = SubscriptionRepository(session, Catalog(session))
            # Reuse the state read before the charge unless someone changed it since.
            stale = sorted(
                {job.subscription_id for job in jobs if job.state.version != versions.get(job.subscription_id)}
            )
            fresh = await repo.get_many(stale) if stale else {}
            other_retry = await self._other_retries(session, ids, [job.renewal_id for job in jobs])

            writer = _Writer(self, now)
            renewal_rows: list[dict[str, Any]] = []
            pairs: list[tuple[SubscriptionState, SubscriptionState]] = []
            contexts: dict[str, OpContext] = {}
            by_sub: dict[int, list[Job]] = {}
            for job in jobs:
                by_sub.setdefault(job.subscription_id, []).append(job)
            for sid, group in by_sub.items():
                first = fresh.get(sid) or group[0].state
                state = first
                retry_dates = [other_retry.get(sid)]
                for job in sorted(group, key=lambda j: j.charge.cycle):
                    ctx = self._ctx(now, state, contexts)
                    earlier = _earliest(retry_dates)
                    renewal_retry: date | None = None
                    if job.succeeded:
                        outcome = cycle.cycle_paid(state, job.charge, job.gateway, retry=job.retry, other_retry=earlier)
                        status = RenewalStatus.PAID
                        if job.retry:
                            report.retries_paid += 1
                        else:
                            report.renewed += 1
                    else:
                        info = _info_of(job)
                        rule = cycle.retry_failed if job.retry else cycle.cycle_failed
                        dunning = rule(state, info, ctx, decline_code=job.decline_code, other_retry=earlier)
                        outcome, renewal_retry = dunning.outcome, dunning.retry_date
                        status = RenewalStatus.FAILED
                        retry_dates.append(renewal_retry)
                        if not job.retry:
                            report.failed += 1
                        if dunning.final:
                            if outcome.state.status is SubscriptionStatus.CANCELLED:
                                report.cancelled += 1
                            else:
                                report.suspended += 1
                    if job.retry:
                        report.retried += 1
                    if job.recovered:
                        report.recovered += 1
                    pm = job.state.payment_method
                    renewal_rows.append(
                        {
                            "id": job.renewal_id,
                            "status": status.value,
                            "next_retry_date": renewal_retry,
                            "gateway_id": job.gateway,
                            "payment_method_id": pm.id if pm else None,
                            "payment_kind": pm.kind.value if pm else None,
                            "paid_at": now if job.succeeded else None,
                            "updated_at": now,
                        }
                    )
                    self._transactions(writer, job, now)
                    note = {
                        "field": f"renewals.{job.renewal_id}.status",
                        "before": RenewalStatus.PENDING.value,
                        "after": status.value,
                    }
                    notes: list[dict[str, Any]] = [note]
                    if job.decline_code and not job.succeeded:
                        notes.append(
                            {
                                "field": f"renewals.{job.renewal_id}.declineCode",
                                "before": None,
                                "after": job.decline_code,
                            }
                        )
                    writer.record(
                        state,
                        outcome,
                        outcome.state,
                        job.email,
                        notes=notes,
                        renewal_id=job.renewal_id,
                        reason=None if job.succeeded else job.decline_code,
                    )
                    state = outcome.state
                pairs.append((first, state))
            await update_rows(session, R, renewal_rows)
            await save_states(session, repo, pairs, now)
            # Dunning is over for subscriptions no longer overdue: their retries are dropped.
            ended = [a.id for _, a in pairs if a.status is not SubscriptionStatus.OVERDUE and a.overdue_count]
            if ended:
                await session.execute(
                    R.update()
                    .where(R.c.subscription_id.in_(ended), text("renewals.status = 'FAILED'"))
                    .where(R.c.next_retry_date.is_not(None))
                    .values(next_retry_date=None, updated_at=now)
                )
            await writer.flush(session)

    async def _other_retries(
        self, session: AsyncSession, subscription_ids: Sequence[int], renewal_ids: Sequence[int]
    ) -> dict[int, date]:
        """The earliest retry due of each subscription's other declined renewals."""
        rows = await session.execute(
            select(R.c.subscription_id, func.min(R.c.next_retry_date).label("earliest"))
            .where(
                R.c.subscription_id.in_(list(subscription_ids)),
                text("renewals.status = 'FAILED'"),
                R.c.next_retry_date.is_not(None),
                R.c.id.not_in(list(renewal_ids)),
            )
            .group_by(R.c.subscription_id)
        )
        return {row.subscription_id: row.earliest for row in rows}

    def _transactions(self, writer: _Writer, job: Job, now: datetime) -> None:
        base = {
            "renewal_id": job.renewal_id,
            "subscription_id": job.subscription_id,
            "kind": "CHARGE",
            "amount_minor": job.charge.amount.minor,
            "currency": job.charge.amount.currency,
            "created_at": now,
        }
        for name, result in job.tried:
            writer.transactions.append(
                {
                    **base,
                    "gateway_id": name,
                    "status": "SUCCEEDED" if result.succeeded else "FAILED",
                    "decline_code": result.decline_code,
                    "gateway_reference": result.reference,
                }
            )
        if job.outside or job.refused:
            writer.transactions.append(
                {
                    **base,
                    "gateway_id": None,
                    "status": "SUCCEEDED" if job.outside else "FAILED",
                    "decline_code": job.refused,
                    "gateway_reference": None,
                }
            )

    # -- reminders ---------------------------------------------------------------------

    async def _remind(self, now: datetime) -> int:
        """Payment reminders for manual-renewal and offline subscriptions, once per cycle (seed 002)."""
        profiles = t.table_of(t.Profile)
        sent = 0
        async with self.services.sessions() as session:
            horizon = (await session.execute(select(func.max(profiles.c.reminder_days_before)))).scalar() or 0
        if horizon <= 0:
            return 0
        params = {
            "earliest": (now - _BEHIND).date(),
            "today": (now + _AHEAD).date(),
            "latest": (now + _AHEAD).date() + timedelta(days=int(horizon)),
            "size": self.batch_size,
        }
        after = 0
        while True:
            async with self.services.sessions() as session, session.begin():
                rows = list(
                    await session.execute(
                        _REMINDER_CANDIDATES,
                        {**params, "after": after},
                    )
                )
                if not rows:
                    return sent
                after = rows[-1].id
                emails = {row.id: row.customer_email for row in rows}
                full = list(await session.execute(select(S).where(S.c.id.in_(list(emails))).order_by(S.c.id)))
                states = await SubscriptionRepository(session, Catalog(session)).states_from_rows(full)
                contexts: dict[str, OpContext] = {}
                outbox = []
                for state in states:
                    event = cycle.reminder(state, self._ctx(now, state, contexts))
                    if event is None:
                        continue
                    assert state.id is not None
                    outbox.append(
                        {
                            "kind": event.kind,
                            "subscription_id": state.id,
                            "recipient": emails.get(state.id),
                            "payload": self.payload(state, event, None),
                            "dedupe_key": f"reminder:{state.id}:{event.payload['cycle']}",
                            "created_at": now,
                        }
                    )
                inserted = await insert_rows(session, OUTBOX, outbox, returning=("id",), conflict="dedupe_key")
                sent += len(inserted)


_REMINDER_CANDIDATES = text(
    """
    SELECT s.id, c.email AS customer_email
    FROM subscriptions s
    JOIN customers c ON c.id = s.customer_id
    JOIN subscription_profiles p ON p.id = s.profile_id
    LEFT JOIN payment_methods pm ON pm.id = s.payment_method_id
    WHERE s.status IN ('TRIAL', 'ACTIVE', 'OVERDUE')
      AND s.next_renewal_date > :earliest AND s.next_renewal_date <= :latest
      AND s.id > :after
      AND p.reminder_days_before > 0
      AND s.next_renewal_date - p.reminder_days_before <= :today
      AND (s.renewal_type = 'MANUAL' OR pm.kind = 'OFFLINE'
           OR NOT EXISTS (SELECT 1 FROM subscription_items i WHERE i.subscription_id = s.id AND i.auto_renew))
      AND NOT EXISTS (
          SELECT 1 FROM outbox o WHERE o.dedupe_key = 'reminder:' || s.id || ':' || (s.last_cycle + 1))
    ORDER BY s.id
    LIMIT :size
    """
)


def _local_today(table: str, now: datetime) -> Any:
    """The subscription's local date at ``now`` (its time zone), in SQL."""
    return text(f"CAST(timezone({table}.time_zone, CAST(:now AS timestamptz)) AS date)").bindparams(now=now)


def _earliest(dates: Iterable[date | None]) -> date | None:
    known = [d for d in dates if d is not None]
    return min(known) if known else None


def _info_of(job: Job) -> RenewalInfo:
    charge = job.charge
    return RenewalInfo(
        id=job.renewal_id,
        subscription_id=job.subscription_id,
        cycle=charge.cycle,
        kind=charge.kind,
        status=RenewalStatus.FAILED,
        period_start=charge.period_start,
        period_end=charge.period_end,
        amount=charge.amount,
        refunded=Money.zero(charge.amount.currency),
        attempts=job.attempts,
        fulfillment=charge.fulfillment,
    )
