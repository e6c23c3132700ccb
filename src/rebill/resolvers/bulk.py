"""Bulk resolvers: convert the plan input to plan JSON, call ``BulkService``, build the payload."""

from __future__ import annotations

import strawberry
from sqlalchemy import select, update
from strawberry.types import Info

from rebill.bulk.plan import validation_errors
from rebill.bulk.runs import BulkService
from rebill.db import tables as t
from rebill.domain.errors import Collected, RebillError
from rebill.schema.bulk import (
    BulkPlanInput,
    BulkPreview,
    BulkRun,
    BulkRunConnection,
    BulkRunEdge,
    BulkRunItem,
    BulkRunStatus,
    CancelBulkRunInput,
    CancelBulkRunPayload,
    RevertBulkRunInput,
    RevertBulkRunPayload,
    StartBulkRunInput,
    StartBulkRunPayload,
    plan_json,
)
from rebill.schema.common import ApiError, UserError, decode_id, page_info
from rebill.services.runtime import Actor


def _service(info: Info) -> BulkService:
    return BulkService(info.context.services)


def _actor(info: Info) -> Actor:
    actor = info.context.actor
    assert actor is not None  # CanBulk ran first
    return actor


RUNS = t.table_of(t.BulkRun)
ITEMS = t.table_of(t.BulkRunItem)


async def _owner(info: Info, run_id: int) -> tuple[bool, int | None]:
    """Whether the run exists, and the API key that started it."""
    async with info.context.services.sessions() as session:
        row = (await session.execute(select(RUNS.c.api_key_id).where(RUNS.c.id == run_id))).first()
    return (row is not None, row.api_key_id if row is not None else None)


async def _may_touch(info: Info, run_id: int) -> bool:
    """A run belongs to the key that started it; other keys (and runs from the CLI) need ``admin``."""
    actor = info.context.actor
    exists, owner = await _owner(info, run_id)
    if not exists or actor is None:
        return False
    return "admin" in actor.scopes or (owner is not None and owner == actor.api_key_id)


def _not_yours(run_id: int, verb: str) -> RebillError:
    return RebillError(
        f"bulk run {run_id} belongs to another API key; to {verb} it needs the 'admin' scope",
        code="FORBIDDEN",
        field=["runId"],
    )


def _user_errors(exc: RebillError) -> list[UserError]:
    """Every problem of a plan (its fields under ``plan``), or the one refusal."""
    if not isinstance(exc, Collected):
        return [UserError.of(exc)]
    return [UserError(field=["plan", *(e.field or [])], code=e.code, message=e.message) for e in exc.errors]


async def bulk_preview(info: Info, plan: BulkPlanInput, sample: int = 20) -> BulkPreview:
    """What the plan would do, per segment; writes nothing."""
    try:
        preview = await _service(info).preview(plan_json(plan), sample=sample)
    except RebillError as exc:
        errors = validation_errors(exc)
        if not isinstance(exc, Collected):
            raise ApiError(exc.message, exc.code) from None
        error = ApiError(
            f"the plan has {len(errors)} problem{'s' if len(errors) != 1 else ''}: "
            + "; ".join(e.message for e in errors),
            "INVALID_PLAN",
        )
        error.extensions = {
            **(error.extensions or {}),
            "errors": [{"field": e.field, "code": e.code, "message": e.message} for e in errors],
        }
        raise error from None
    return BulkPreview.of(preview)


async def bulk_run(info: Info, id: strawberry.ID) -> BulkRun | None:
    """A run by its id (also behind ``node(id:)``, where only the ``bulk`` scope sees runs)."""
    actor = info.context.actor
    if actor is None or not actor.has("bulk"):
        return None
    try:
        pk = decode_id(id, "BulkRun")
    except RebillError:
        return None
    if not await _may_touch(info, pk):
        return None
    run = await _service(info).get(pk)
    return BulkRun.of(run) if run is not None else None


async def bulk_run_item(info: Info, pk: int) -> BulkRunItem | None:
    """A run's item behind ``node(id:)``: seen by whoever may see its run (the ``bulk`` scope and its key, or admin)."""
    actor = info.context.actor
    if actor is None or not actor.has("bulk"):
        return None
    async with info.context.services.sessions() as session:
        row = (await session.execute(select(ITEMS).where(ITEMS.c.id == pk))).first()
    if row is None or not await _may_touch(info, row.run_id):
        return None
    return BulkRunItem.of_row(row)


async def bulk_runs(
    info: Info,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    status: list[BulkRunStatus] | None = None,
) -> BulkRunConnection:
    """Past and current runs, newest first: the key's own, or every run for an ``admin`` key."""
    from rebill.bulk.runs import RunView
    from rebill.resolvers.pages import fetch_page

    actor = _actor(info)
    where = []
    if "admin" not in actor.scopes:
        where.append(RUNS.c.api_key_id == (actor.api_key_id or 0))
    if status:
        where.append(RUNS.c.status.in_([s.value for s in status]))
    async with info.context.services.sessions() as session:
        page = await fetch_page(session, RUNS, where, first, after, last=last, before=before, descending=True)
    edges = [
        BulkRunEdge(cursor=c, node=BulkRun.of(RunView.of(r))) for r, c in zip(page.rows, page.cursors, strict=True)
    ]
    return BulkRunConnection(
        edges=edges, page_info=page_info(edges, page.has_next, page.has_previous), total_count=page.total
    )


async def start_bulk_run(info: Info, input: StartBulkRunInput) -> StartBulkRunPayload:
    """Queue a run; the background worker executes it. Watch it with bulkRun(id)."""
    try:
        run = await _service(info).start(
            _actor(info),
            plan_json(input.plan),
            limit=input.limit,
            dry_run=bool(input.dry_run),
            as_of=input.as_of,
        )
    except RebillError as exc:
        return StartBulkRunPayload(user_errors=_user_errors(exc), run=None, dry_run=bool(input.dry_run))
    async with info.context.services.sessions() as session, session.begin():
        await session.execute(update(RUNS).where(RUNS.c.id == run.id).values(api_key_id=_actor(info).api_key_id))
    return StartBulkRunPayload(user_errors=[], run=BulkRun.of(run), dry_run=run.dry_run)


async def cancel_bulk_run(info: Info, input: CancelBulkRunInput) -> CancelBulkRunPayload:
    """Stop a run once the chunks in progress are committed (a queued run never starts)."""
    try:
        pk = decode_id(input.run_id, "BulkRun", ["runId"])
        if not await _may_touch(info, pk) and (await _owner(info, pk))[0]:
            raise _not_yours(pk, "cancel")
        run = await _service(info).cancel(_actor(info), pk)
    except RebillError as exc:
        return CancelBulkRunPayload(user_errors=[UserError.of(exc)], run=None)
    return CancelBulkRunPayload(user_errors=[], run=BulkRun.of(run))


async def revert_bulk_run(info: Info, input: RevertBulkRunInput) -> RevertBulkRunPayload:
    """Put back every subscription the run changed that nobody changed since; list the others."""
    try:
        pk = decode_id(input.run_id, "BulkRun", ["runId"])
        if not await _may_touch(info, pk) and (await _owner(info, pk))[0]:
            raise _not_yours(pk, "revert")
        result = await _service(info).revert(_actor(info), pk)
    except RebillError as exc:
        return RevertBulkRunPayload(user_errors=[UserError.of(exc)], run=None)
    return RevertBulkRunPayload(
        user_errors=[],
        run=BulkRun.of(result.run),
        reverted=result.reverted,
        not_reverted=[BulkRunItem.of(i) for i in result.not_reverted],
    )
