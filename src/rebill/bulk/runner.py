"""Executing bulk runs: chunk by chunk, resumable, never twice on one subscription.

A run is worked on by whoever holds its advisory lock (a session lock on a
connection of its own, so a worker that dies releases it with its
connection). Each chunk is one transaction: the next ``chunk`` candidates
after the run's cursor, in id order, locked ``FOR UPDATE``; the domain
operations in memory (a move of the next renewal without building states,
``setbased``); set-based writes of subscriptions, children, history,
outbox and run items; and the run's cursor and counters — guarded by the
cursor it started from. A worker that dies loses only the chunks it had
not committed, and the next one continues from the last committed cursor.

Runs of one plan may overlap (two operators, or a new run beside a resumed
one): a subscription is changed at most once per plan whatever they do. The
candidates leave out what the plan's other runs had applied when the chunk
began, but that read comes before the row locks; so once its rows are
locked, the chunk asks again (``DONE_BY_OTHERS``, a statement of its own and
so a snapshot taken after the locks were granted). An item of another run
is written in the transaction that holds the subscription's row lock, so it
is either committed and seen here, or written after this chunk commits, by
a run that then sees this one's item. Those subscriptions are ``SKIPPED``
with ``ALREADY_APPLIED`` and the run that changed them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from rebill.bulk import setbased, writes
from rebill.bulk.actions import apply_actions, consent_of
from rebill.bulk.plan import Plan, References, load_references, parse_plan
from rebill.bulk.preview import op_context
from rebill.bulk.selection import candidates, runs_of_plan, segment_case
from rebill.bulk.status import ACTIVE, RunView, load_run
from rebill.db import tables as t
from rebill.db.repositories import Catalog, SubscriptionRepository, any_of
from rebill.domain.cadence import local_today
from rebill.domain.errors import RebillError
from rebill.domain.outcome import OpContext
from rebill.domain.renewal import Event
from rebill.domain.status import SubscriptionStatus
from rebill.domain.subscription import SubscriptionState, diff_and_delta
from rebill.invoicing.follow import drop_drafts, follow_renewals
from rebill.services.runtime import Services

logger = logging.getLogger(__name__)

S = t.table_of(t.Subscription)
RUNS = t.table_of(t.BulkRun)
ITEMS = t.table_of(t.BulkRunItem)

LOCK_SPACE = 71420  # pg_advisory_lock(LOCK_SPACE, run id): who works on a run
WRITES_IN_FLIGHT = 2  # chunks written while the next one is read and worked out
COLLECT_EVERY = 64  # chunks between two garbage collections while a run is worked on

ChunkCallback = Callable[[Any], Any]

# Which of a chunk's locked subscriptions another real run of the same plan has changed: asked after the
# row locks are granted. For a run alone it finds nothing in one probe of the run items' subscription index
# (its own items are behind its cursor): about a millisecond per chunk of 2000.
DONE_BY_OTHERS = (
    "SELECT i.subscription_id, i.run_id FROM bulk_run_items AS i WHERE i.run_id = ANY(ARRAY("
    "SELECT r.id FROM bulk_runs AS r WHERE r.plan_hash = $1 AND r.id <> $2 AND NOT r.dry_run))"
    " AND i.subscription_id = ANY($3::bigint[]) AND i.outcome = 'APPLIED'"
)

# A chunk's last step before its commit: the run's cursor and counters, from where the previous chunk left them.
MOVE_ON = (
    'UPDATE bulk_runs SET "cursor" = $3, processed = processed + $4, applied = applied + $5, skipped = skipped + $6,'
    ' failed = failed + $7, conflicts = conflicts + $8, heartbeat_at = $9 WHERE id = $1 AND "cursor" = $2'
)


async def _fetch(session: AsyncSession, stmt: Any) -> list[Any]:
    """Rows of ``stmt`` fetched by asyncpg directly: its records are read by name several times
    cheaper than result rows, and a chunk reads thousands of them."""
    compiled = stmt.compile(dialect=session.get_bind().dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    values = [params[name] for name in compiled.positiontup or ()]
    return list(await (await writes.raw(session)).fetch(str(compiled), *values))


def actor_name(run_id: int) -> str:
    return f"bulk-run:{run_id}"


@contextlib.asynccontextmanager
async def run_lock(services: Services, run_id: int) -> AsyncIterator[bool]:
    """Hold the run's advisory lock for the block; yields False when another worker has it."""
    async with services.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        got = bool(await conn.scalar(select(func.pg_try_advisory_lock(LOCK_SPACE, run_id))))
        try:
            yield got
        finally:
            if got:
                with contextlib.suppress(Exception):
                    await conn.scalar(select(func.pg_advisory_unlock(LOCK_SPACE, run_id)))


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Run chunks with the cyclic garbage collector off; the run collects every ``COLLECT_EVERY`` chunks.

    A chunk allocates a few hundred thousand objects that reference counting
    frees once it is written. Automatic collections would walk every one of
    them (and every module, class and cache of the process) again and again,
    which cost a run a third of its time; the few cycles a chunk leaves are
    collected at once every few chunks instead. The objects that existed
    before the run are frozen out of those collections, and the collector is
    restored when the run ends.
    """
    was_enabled = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        gc.unfreeze()


@dataclass
class _Chunk:
    """What one chunk decided, before it is written."""

    records: list[dict[str, Any]] = field(default_factory=list)  # its run items, as writes.RUN_RECORD
    changed: list[tuple[SubscriptionState, SubscriptionState, dict[str, Any]]] = field(default_factory=list)
    events: list[tuple[SubscriptionState, Event]] = field(default_factory=list)
    moves: list[dict[str, Any]] = field(default_factory=list)  # setbased.record of what moves without a state
    counts: dict[str, int] = field(default_factory=lambda: {"APPLIED": 0, "SKIPPED": 0, "FAILED": 0, "CONFLICT": 0})
    last_id: int = 0
    children_changed: bool = False  # items or applied coupons changed somewhere in the chunk

    @property
    def processed(self) -> int:
        return sum(self.counts.values())

    def left(self, state_id: int, segment: str, outcome: str, reason: str) -> None:
        """A subscription the chunk leaves as it is, and why."""
        self.counts[outcome] += 1
        self.records.append({"id": state_id, "segment": segment, "outcome": outcome, "reason": reason})


class RunWorker:
    """Works one run to its end (or its cancellation) while holding its lock."""

    def __init__(self, services: Services, run: Any, on_chunk: ChunkCallback | None = None) -> None:
        self.services = services
        self.run_id: int = run.id
        self.plan: Plan = parse_plan(run.plan)
        self.plan_hash: str = run.plan_hash
        self.dry_run: bool = run.dry_run
        self.limit: int | None = run.limit
        self.as_of: datetime = run.as_of
        self.applied: int = run.applied
        self.cursor: int = run.cursor
        self.on_chunk = on_chunk
        self.refs = References()
        self.catalog_cache: Catalog | None = None
        self.chunk_size = max(1, services.settings.bulk_chunk_size)
        self.cancelled = False
        self.consents = {s.name: consent_of(s.actions) for s in self.plan.segments}
        # Segments whose move of the next renewal the database applies itself (not in dry runs, which write none).
        self.date_moves = [None if self.dry_run else setbased.date_move(s.actions) for s in self.plan.segments]

    # -- the loop -----------------------------------------------------------

    async def work(self) -> str:
        """Chunk after chunk until done, cancelled or at the limit.

        Chunks overlap: while up to ``WRITES_IN_FLIGHT`` chunks are written
        and committed, the next one is read, locked and worked out in memory.
        Commits stay in order: a chunk moves the run's cursor only from where
        the previous chunk left it, after that chunk committed.
        """
        async with self.services.sessions() as session:
            self.refs = await load_references(session, self.plan, self.services.gateways.names)
        writing: collections.deque[asyncio.Task[None]] = collections.deque()
        chunks = 0
        try:
            while True:
                if self.limit is not None and self.applied >= self.limit:
                    status = "COMPLETED"
                    break
                read = await self._read()
                if read is None:
                    status = "CANCELLED" if self.cancelled else "COMPLETED"
                    break
                session, chunk, now = read
                previous, cursor = writing[-1] if writing else None, self.cursor
                self.cursor = chunk.last_id
                self.applied += chunk.counts["APPLIED"]
                writing.append(asyncio.create_task(self._write(session, chunk, cursor, previous, now)))
                chunks += 1
                if chunks % COLLECT_EVERY == 0:
                    gc.collect()
                if len(writing) > WRITES_IN_FLIGHT:
                    await writing.popleft()
                    await self._report()
            while writing:
                await writing.popleft()
                await self._report()
        finally:
            if writing:  # failing: let the chunks in flight roll back before the run is marked
                await asyncio.gather(*writing, return_exceptions=True)
        return await self._finish(status)

    async def _report(self) -> None:
        if self.on_chunk is not None:
            result = self.on_chunk(await self.view())
            if asyncio.iscoroutine(result):
                await result

    async def view(self) -> RunView:
        async with self.services.sessions() as session:
            return RunView.of(await load_run(session, self.run_id))

    async def _finish(self, status: str) -> str:
        now = self.services.clock.now()
        async with self.services.sessions() as session, session.begin():
            values: dict[str, Any] = {"status": status, "finished_at": now, "heartbeat_at": now}
            if status == "COMPLETED":
                values["total"] = RUNS.c.processed
            await session.execute(update(RUNS).where(RUNS.c.id == self.run_id).values(**values))
        await self._report()
        return status

    # -- one chunk ----------------------------------------------------------

    async def _select(self, session: AsyncSession) -> list[Any]:
        """The chunk's candidates, locked: whole rows, or only the dates a move reads when the plan moves dates
        (``_whole_rows`` reads the rest for the few the domain works on)."""
        others = await runs_of_plan(session, self.plan_hash, but=self.run_id)
        columns = [S.c[name] for name in setbased.COLUMNS] if any(self.date_moves) else [S]
        stmt = (
            select(*columns, segment_case(self.plan).label("bulk_segment"))
            .where(S.c.id > self.cursor, *candidates(self.plan, others))
            .order_by(S.c.id)
            .limit(self.chunk_size)
        )
        if not self.dry_run:
            stmt = stmt.with_for_update(of=S)
        return await _fetch(session, stmt)

    async def _whole_rows(self, session: AsyncSession, rows: list[Any]) -> list[Any]:
        """``rows`` as whole rows (the chunk holds their locks), for the domain; in the same order."""
        if not rows or not any(self.date_moves):  # ``_select`` read whole rows
            return rows
        return await _fetch(session, select(S).where(any_of(S.c.id, [r["id"] for r in rows])).order_by(S.c.id))

    def _repo(self, session: AsyncSession) -> SubscriptionRepository:
        catalog = Catalog(session)
        if self.catalog_cache is not None:
            catalog.profiles = self.catalog_cache.profiles
            catalog.products = self.catalog_cache.products
            catalog.payment_methods = self.catalog_cache.payment_methods
        self.catalog_cache = catalog
        return SubscriptionRepository(session, catalog)

    async def _done_by_others(self, db: Any, rows: list[Any]) -> dict[int, int]:
        """The chunk's subscriptions another run of the plan applied to (under this chunk's row locks): run ids."""
        if self.dry_run or not rows:
            return {}
        found = await db.fetch(DONE_BY_OTHERS, self.plan_hash, self.run_id, [r["id"] for r in rows])
        return {r["subscription_id"]: r["run_id"] for r in found}

    def moves(self, rows: list[Any], now: datetime, done_by_others: dict[int, int] | None = None) -> dict[int, Any]:
        """The new next renewal date of each row the database can move itself (``setbased``), by id.

        Rows another run applied, or changed after the preview, are left to ``decide``.
        """
        if not any(self.date_moves):
            return {}
        done = done_by_others or {}
        todays: dict[str, Any] = {}  # one "today" per time zone in the chunk
        out = {}
        for row in rows:
            move = self.date_moves[row["bulk_segment"]]
            if move is None or row["id"] in done or (row["updated_at"] is not None and row["updated_at"] > self.as_of):
                continue
            zone = row["time_zone"]
            today = todays.get(zone)
            if today is None:
                today = todays[zone] = local_today(now, zone)
            new = move.target(row["status"], row["next_renewal_date"], today)
            if new is not None:
                out[row["id"]] = new
        return out

    def decide(
        self,
        rows: list[Any],
        states: list[SubscriptionState],
        now: datetime,
        done_by_others: dict[int, int] | None = None,
        moves: dict[int, Any] | None = None,
    ) -> _Chunk:
        """Run the segment's actions on every state of the chunk, in memory.

        ``states`` are those of the rows not in ``moves`` (``moves``: the new dates the database
        sets itself), in the same order.
        """
        out = _Chunk()
        done = done_by_others or {}
        moves = moves or {}
        applied = self.applied
        contexts: dict[str, OpContext] = {}  # one "today" per time zone in the chunk
        next_state = iter(states).__next__
        for row in rows:
            if self.limit is not None and applied >= self.limit:
                break
            segment = self.plan.segments[row["bulk_segment"]]
            new_date = moves.get(row["id"])
            if new_date is not None:
                out.last_id = row["id"]
                applied += 1
                out.counts["APPLIED"] += 1
                out.moves.append(setbased.record(row, new_date, segment.name))
                continue
            state = next_state()
            assert state.id is not None and state.id == row["id"]
            out.last_id = state.id
            if done and state.id in done:
                reason = f"ALREADY_APPLIED: bulk run {done[state.id]} of the same plan changed it; left as it is"
                out.left(state.id, segment.name, "SKIPPED", reason)
                continue
            if state.updated_at is not None and state.updated_at > self.as_of:
                reason = (
                    f"CONFLICT: changed at {state.updated_at.isoformat()}, after the preview of "
                    f"{self.as_of.isoformat()}; left as it is"
                )
                out.left(state.id, segment.name, "CONFLICT", reason)
                continue
            try:
                ctx = contexts.get(state.time_zone)
                if ctx is None:
                    ctx = contexts[state.time_zone] = op_context(state, now)
                outcome = apply_actions(state, ctx, segment.actions, self.refs)
                changes, before = diff_and_delta(state, outcome.state)
            except RebillError as exc:
                out.left(state.id, segment.name, "SKIPPED", f"{exc.code}: {exc.message}")
                continue
            except Exception as exc:  # a bug for this subscription: record it, keep the run going
                logger.exception("bulk run %s: subscription %s failed", self.run_id, state.id)
                out.left(state.id, segment.name, "FAILED", f"INTERNAL_ERROR: {type(exc).__name__}: {exc}")
                continue
            if not changes:
                out.left(state.id, segment.name, "SKIPPED", "NO_CHANGE: the actions leave this subscription as it is")
                continue
            applied += 1
            out.counts["APPLIED"] += 1
            record = {
                "id": state.id,
                "segment": segment.name,
                "outcome": "APPLIED",
                "action": outcome.action,
                "changes": changes,
            }
            consent = self.consents[segment.name]
            if consent is not None:
                record["consent"] = consent
            out.records.append(record)
            if self.dry_run:
                continue
            record["before"] = before
            out.changed.append((state, outcome.state, record))
            if "items" in before or "coupons" in before:
                out.children_changed = True
            if outcome.events:
                out.events.extend((outcome.state, e) for e in outcome.events)
        return out

    async def _read(self) -> tuple[AsyncSession, _Chunk, datetime] | None:
        """Open the chunk's transaction: lock the next candidates and decide their outcomes.

        None when the run is done, or cancelled (``self.cancelled``).
        """
        now = self.services.clock.now()
        session = self.services.sessions()
        try:
            await session.begin()
            db = await writes.raw(session)
            if await db.fetchval("SELECT cancel_requested FROM bulk_runs WHERE id = $1", self.run_id):
                self.cancelled = True
                await session.close()
                return None
            rows = await self._select(session)
            done = await self._done_by_others(db, rows)
            moves = self.moves(rows, now, done)
            whole = await self._whole_rows(session, [r for r in rows if r["id"] not in moves])
            states = await self._repo(session).states_from_rows(whole)
            chunk = self.decide(rows, states, now, done, moves) if rows else None
            if chunk is None or chunk.processed == 0:
                await session.close()
                return None
            return session, chunk, now
        except BaseException:
            await session.close()
            raise

    async def _write(
        self,
        session: AsyncSession,
        chunk: _Chunk,
        cursor: int,
        previous: asyncio.Task[None] | None,
        now: datetime,
    ) -> None:
        """Write the chunk; once the previous chunk committed, move the cursor on and commit."""
        try:
            db = await writes.raw(session)
            await writes.write_run_chunk(
                db,
                chunk.records,
                chunk.changed,
                run_id=self.run_id,
                actor=actor_name(self.run_id),
                now=now,
                moves=chunk.moves,
            )
            if chunk.children_changed:
                await writes.save_children(db, [(before, after) for before, after, _ in chunk.changed], now)
            moved_status = [(b, a) for b, a, _ in chunk.changed if a.status is not b.status and a.id is not None]
            if moved_status:
                # Out of dunning (cancelled, suspended): their declined renewals are retried no more, as when
                # the one path cancels; what their open invoices are follows, and a final status ends drafts.
                await session.execute(
                    text(
                        "UPDATE renewals SET next_retry_date = NULL, updated_at = :now "
                        "WHERE subscription_id = ANY(CAST(:ids AS bigint[])) AND status = 'FAILED' "
                        "AND next_retry_date IS NOT NULL"
                    ),
                    {"ids": [a.id for _, a in moved_status if a.status is not SubscriptionStatus.OVERDUE], "now": now},
                )
                await follow_renewals(session, self.services.settings, [a.id or 0 for _, a in moved_status], now)
                await drop_drafts(session, [a.id or 0 for b, a in moved_status if a.is_final and not b.is_final])
            await writes.insert_outbox(db, chunk.events, now, base_url=self.services.settings.public_base_url)
            if previous is not None:
                await previous
            counts = chunk.counts
            moved = await db.execute(
                MOVE_ON,
                self.run_id,
                cursor,
                chunk.last_id,
                chunk.processed,
                counts["APPLIED"],
                counts["SKIPPED"],
                counts["FAILED"],
                counts["CONFLICT"],
                now,
            )
            if moved != "UPDATE 1":
                raise RuntimeError(f"bulk run {self.run_id} moved on under this worker (cursor {cursor})")
            await session.commit()
        finally:
            await session.close()


async def _start(services: Services, run: Any) -> None:
    """QUEUED → RUNNING, with the number of subscriptions it will look at."""
    plan = parse_plan(run.plan)
    now = services.clock.now()
    async with services.sessions() as session, session.begin():
        others = await runs_of_plan(session, run.plan_hash, but=run.id)
        total = (
            await session.execute(select(func.count()).select_from(S).where(*candidates(plan, others)))
        ).scalar_one()
        if run.limit is not None:
            total = min(total, run.limit)
        await session.execute(
            update(RUNS)
            .where(RUNS.c.id == run.id, RUNS.c.status == "QUEUED")
            .values(status="RUNNING", total=total, started_at=now, heartbeat_at=now)
        )


async def process_run(services: Services, run_id: int, on_chunk: ChunkCallback | None = None) -> str | None:
    """Work ``run_id`` to its end if no other worker has it; its final status, or None when it was busy."""
    async with run_lock(services, run_id) as got:
        if not got:
            return None
        async with services.sessions() as session:
            run = await load_run(session, run_id)
        if run is None or run.status not in ACTIVE:
            return run.status if run is not None else None
        try:
            if run.status == "QUEUED":
                if run.cancel_requested:
                    return await _mark(services, run_id, "CANCELLED")
                await _start(services, run)
                async with services.sessions() as session:
                    run = await load_run(session, run_id)
            with collector_paused():
                return await RunWorker(services, run, on_chunk).work()
        except Exception as exc:
            logger.exception("bulk run %s failed", run_id)
            await _mark(services, run_id, "FAILED", error=f"{type(exc).__name__}: {exc}")
            return "FAILED"


async def _mark(services: Services, run_id: int, status: str, error: str | None = None) -> str:
    now = services.clock.now()
    async with services.sessions() as session, session.begin():
        await session.execute(
            update(RUNS)
            .where(RUNS.c.id == run_id)
            .values(status=status, error=error, finished_at=now, heartbeat_at=now)
        )
    return status


async def process_queued_runs(services: Services) -> int:
    """Work every queued run, and every running one whose worker is gone, to the end; how many were worked."""
    worked = 0
    seen: set[int] = set()
    while True:
        async with services.sessions() as session:
            ids = list(
                (
                    await session.execute(select(RUNS.c.id).where(RUNS.c.status.in_(ACTIVE)).order_by(RUNS.c.id))
                ).scalars()
            )
        fresh = [i for i in ids if i not in seen]
        if not fresh:
            return worked
        for run_id in fresh:
            seen.add(run_id)
            if await process_run(services, run_id) is not None:
                worked += 1


_wake: asyncio.Event | None = None


def wake() -> None:
    """Tell the server's runner that a run was queued (it also polls)."""
    if _wake is not None:
        _wake.set()


async def _loop(services: Services) -> None:
    """The server's loop: work queued runs as they come, until cancelled."""
    global _wake
    _wake = asyncio.Event()
    poll = max(0.2, services.settings.worker_poll_seconds)
    while True:
        try:
            await process_queued_runs(services)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("bulk runner: unexpected error; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_wake.wait(), timeout=poll)
        _wake.clear()


# What ``rebill serve`` runs beside the app (``create_app(services, background=[background_runner])``).
background_runner: Callable[[Services], Coroutine[Any, Any, None]] = _loop
