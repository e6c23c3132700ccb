"""Bulk use cases for every caller (GraphQL, CLI): preview, start, cancel, revert, read.

A run is a row in ``bulk_runs``, read as :class:`rebill.bulk.status.RunView`;
the work itself happens in :mod:`rebill.bulk.runner`. Revert puts back,
chunk by chunk and set-based, every subscription the run changed whose
version is still the one the run left, and reports the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from rebill.bulk import runner, writes
from rebill.bulk.plan import Plan, load_references, parse_plan, plan_to_json
from rebill.bulk.preview import Preview, preview
from rebill.bulk.status import ACTIVE, RunView, load_run
from rebill.db import tables as t
from rebill.db.repositories import SubscriptionRepository, any_of
from rebill.domain.errors import NotFound, RebillError, SubscriptionError, ValidationError
from rebill.domain.subscription import SubscriptionState, diff, undo
from rebill.services.runtime import Actor, Services

S = t.table_of(t.Subscription)
RUNS = t.table_of(t.BulkRun)
ITEMS = t.table_of(t.BulkRunItem)

MAX_SAMPLE = 100
OUTCOMES = ("APPLIED", "SKIPPED", "FAILED", "CONFLICT", "REVERTED")


@dataclass
class ItemView:
    id: int
    subscription_id: int
    segment: str | None
    outcome: str
    reason: str | None
    changes: list[dict[str, Any]]
    version_after: int | None
    consent_reference: str | None = None

    @property
    def code(self) -> str | None:
        if not self.reason:
            return None
        head, sep, _ = self.reason.partition(":")
        return head if sep and head.isupper() else None


@dataclass
class ItemPage:
    items: list[ItemView]
    has_next: bool
    total: int


@dataclass
class RevertResult:
    run: RunView
    reverted: int = 0
    not_reverted: list[ItemView] = field(default_factory=list)


class BulkService:
    def __init__(self, services: Services) -> None:
        self.services = services

    # -- plans -----------------------------------------------------------

    async def _checked(self, session: AsyncSession, data: Any) -> tuple[Plan, Any]:
        plan = parse_plan(data)
        refs = await load_references(session, plan, self.services.gateways.names)
        return plan, refs

    async def preview(self, data: Any, *, sample: int = 20, engine: str = "sql") -> Preview:
        """What the plan would do; writes nothing. Raises ``Collected`` for a malformed plan."""
        if sample < 0 or sample > MAX_SAMPLE:
            raise ValidationError(f"sample must be from 0 to {MAX_SAMPLE}", code="INVALID_SAMPLE", field=["sample"])
        now = self.services.clock.now()
        async with self.services.sessions() as session, session.begin():
            conn = await session.connection()
            await conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            # A preview aggregates the whole selection at once: let it hash in memory rather than on disk.
            await conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
            # It groups the subscriptions by kind (``simulate.segment_sql``): the planner cannot tell how few
            # kinds there are, takes each for a few subscriptions, and would sort them all rather than hash.
            await conn.exec_driver_sql("SET LOCAL enable_sort = off")
            await conn.exec_driver_sql("SET LOCAL enable_incremental_sort = off")
            plan, refs = await self._checked(session, data)
            return await preview(session, plan, refs, now, sample=sample, engine=engine)

    # -- runs ------------------------------------------------------------

    async def start(
        self,
        actor: Actor,
        data: Any,
        *,
        limit: int | None = None,
        dry_run: bool = False,
        as_of: datetime | None = None,
    ) -> RunView:
        """Queue a run of the plan. ``as_of`` is when the operator previewed it (default: now)."""
        now = self.services.clock.now()
        if limit is not None and limit < 1:
            raise ValidationError("limit must be at least 1", code="INVALID_LIMIT", field=["limit"])
        if as_of is not None and as_of.tzinfo is None:
            raise ValidationError("asOf needs a time zone offset", code="INVALID_INPUT", field=["asOf"])
        async with self.services.sessions() as session, session.begin():
            plan, _ = await self._checked(session, data)
            stored = plan_to_json(plan)
            if limit is not None:
                stored["limit"] = limit
            run_id = (
                await session.execute(
                    insert(RUNS)
                    .values(
                        plan=stored,
                        plan_hash=plan.hash,
                        status="QUEUED",
                        dry_run=dry_run,
                        limit=stored["limit"],
                        as_of=min(as_of, now) if as_of is not None else now,
                        created_by=actor.name,
                        created_at=now,
                    )
                    .returning(RUNS.c.id)
                )
            ).scalar_one()
            row = await load_run(session, run_id)
        runner.wake()
        return RunView.of(row)

    async def overlapping(self, run: RunView) -> list[RunView]:
        """The other real runs of the same plan still queued or running: what they change, ``run`` leaves alone."""
        if run.dry_run:
            return []
        async with self.services.sessions() as session:
            rows = await session.execute(
                select(RUNS)
                .where(
                    RUNS.c.plan_hash == run.plan_hash,
                    RUNS.c.id != run.id,
                    RUNS.c.dry_run.is_(False),
                    RUNS.c.status.in_(ACTIVE),
                )
                .order_by(RUNS.c.id)
            )
            return [RunView.of(r) for r in rows]

    async def get(self, run_id: int) -> RunView | None:
        async with self.services.sessions() as session:
            row = await load_run(session, run_id)
        return RunView.of(row) if row is not None else None

    async def _require(self, session: AsyncSession, run_id: int) -> Any:
        row = await load_run(session, run_id)
        if row is None:
            raise NotFound(f"bulk run {run_id} does not exist", field=["runId"])
        return row

    async def cancel(self, actor: Actor, run_id: int) -> RunView:
        """A queued run is cancelled at once; a running one stops once the chunks in progress are committed."""
        now = self.services.clock.now()
        async with self.services.sessions() as session, session.begin():
            row = await self._require(session, run_id)
            if row.status not in ACTIVE:
                raise SubscriptionError(
                    f"bulk run {run_id} is {row.status}: only a queued or running run can be cancelled",
                    code="INVALID_STATUS",
                    field=["runId"],
                )
            values: dict[str, Any] = {"cancel_requested": True}
            if row.status == "QUEUED":
                values.update(status="CANCELLED", finished_at=now)
            await session.execute(update(RUNS).where(RUNS.c.id == run_id).values(**values))
            row = await load_run(session, run_id)
        return RunView.of(row)

    async def items(self, run_id: int, *, first: int, after: int | None, outcome: str | None) -> ItemPage:
        where = [ITEMS.c.run_id == run_id]
        if outcome is not None:
            where.append(ITEMS.c.outcome == outcome)
        async with self.services.sessions() as session:
            stmt = select(ITEMS).where(*where)
            if after is not None:
                stmt = stmt.where(ITEMS.c.id > after)
            rows = list(await session.execute(stmt.order_by(ITEMS.c.id).limit(first + 1)))
            total = (await session.execute(select(func.count()).select_from(ITEMS).where(*where))).scalar_one()
        return ItemPage([_item(r) for r in rows[:first]], len(rows) > first, total)

    # -- revert ----------------------------------------------------------

    async def revert(self, actor: Actor, run_id: int) -> RevertResult:
        """Put back what the run changed, where nobody changed it since; report the rest."""
        async with runner.run_lock(self.services, run_id) as got:
            async with self.services.sessions() as session:
                row = await self._require(session, run_id)
            if not got or row.status in ACTIVE:
                raise SubscriptionError(
                    f"bulk run {run_id} is {row.status}: cancel it or let it finish before reverting",
                    code="INVALID_STATUS",
                    field=["runId"],
                )
            if row.dry_run:
                raise SubscriptionError(
                    f"bulk run {run_id} was a dry run: it changed nothing", code="INVALID_STATUS", field=["runId"]
                )
            if row.status == "REVERTED":
                raise SubscriptionError(
                    f"bulk run {run_id} is already reverted", code="INVALID_STATUS", field=["runId"]
                )
            reverted = 0
            cursor = 0
            while True:
                done, cursor = await self._revert_chunk(actor, run_id, cursor)
                if cursor == 0:
                    break
                reverted += done
            now = self.services.clock.now()
            async with self.services.sessions() as session, session.begin():
                await session.execute(
                    update(RUNS).where(RUNS.c.id == run_id).values(status="REVERTED", reverted_at=now)
                )
                row = await load_run(session, run_id)
                kept = [
                    _item(r)
                    for r in await session.execute(
                        select(ITEMS)
                        .where(ITEMS.c.run_id == run_id, ITEMS.c.outcome == "APPLIED")
                        .order_by(ITEMS.c.subscription_id)
                    )
                ]
        return RevertResult(RunView.of(row), reverted, kept)

    async def _revert_chunk(self, actor: Actor, run_id: int, cursor: int) -> tuple[int, int]:
        """One transaction: the next applied items after ``cursor``; (how many reverted, new cursor or 0)."""
        now = self.services.clock.now()
        size = max(1, self.services.settings.bulk_chunk_size)
        async with self.services.sessions() as session, session.begin():
            items = list(
                await session.execute(
                    select(ITEMS.c.id, ITEMS.c.subscription_id, ITEMS.c.before, ITEMS.c.version_after)
                    .where(ITEMS.c.run_id == run_id, ITEMS.c.outcome == "APPLIED", ITEMS.c.subscription_id > cursor)
                    .order_by(ITEMS.c.subscription_id)
                    .limit(size)
                )
            )
            if not items:
                return 0, 0
            ids = [i.subscription_id for i in items]
            rows = list(await session.execute(select(S).where(any_of(S.c.id, ids)).order_by(S.c.id).with_for_update()))
            current = {s.id: s for s in await SubscriptionRepository(session).states_from_rows(rows)}
            pairs: list[tuple[SubscriptionState, SubscriptionState]] = []
            history: list[tuple[Any, ...]] = []
            reverted_items: list[int] = []
            kept: list[tuple[int, str]] = []
            for item in items:
                state = current.get(item.subscription_id)
                if state is None:
                    kept.append((item.id, "NOT_REVERTED: the subscription no longer exists"))
                    continue
                if state.version != item.version_after or item.before is None:
                    kept.append(
                        (
                            item.id,
                            f"NOT_REVERTED: changed since the run (now version {state.version}, "
                            f"the run left version {item.version_after})",
                        )
                    )
                    continue
                restored = undo(state, item.before)
                pairs.append((state, restored))
                history.append(
                    (
                        state.id,
                        now,
                        actor.name,
                        "bulk_revert",
                        f"revert of bulk run {run_id}",
                        run_id,
                        writes.dumps(diff(state, restored)),
                    )
                )
                reverted_items.append(item.id)
            db = await writes.raw(session)
            await writes.update_subscriptions(db, pairs, now)
            await writes.save_children(db, pairs, now)
            await writes.copy_history(db, history)
            if reverted_items:
                await db.execute(
                    "UPDATE bulk_run_items SET outcome = 'REVERTED' WHERE id = ANY($1::bigint[])", reverted_items
                )
            if kept:
                await db.execute(
                    "UPDATE bulk_run_items AS i SET reason = v.reason FROM unnest($1::bigint[], $2::text[]) "
                    "AS v(id, reason) WHERE i.id = v.id",
                    [k for k, _ in kept],
                    [r for _, r in kept],
                )
        return len(reverted_items), items[-1].subscription_id


def _item(row: Any) -> ItemView:
    return ItemView(
        id=row.id,
        subscription_id=row.subscription_id,
        segment=row.segment,
        outcome=row.outcome,
        reason=row.reason,
        changes=row.changes or [],
        version_after=row.version_after,
        consent_reference=row.consent_reference,
    )


def plan_errors(exc: RebillError) -> list[RebillError]:
    from rebill.bulk.plan import validation_errors

    return validation_errors(exc)
