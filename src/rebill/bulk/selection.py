"""Which subscriptions a plan takes, and into which segment: SQL shared by previews and runs.

The plan's filter is the list query's filter (``compile_filter``); segments
are further filters, the first that matches wins. SQL's three-valued logic
would let a NULL column slip past "NOT earlier segment", so every segment
condition is compared with ``IS TRUE``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, case, exists, false, literal, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import Case

from rebill.bulk.plan import Plan
from rebill.db import tables as t
from rebill.services.filters import combined, compile_filter

S = t.table_of(t.Subscription)
RUNS = t.table_of(t.BulkRun)
ITEMS = t.table_of(t.BulkRunItem)


def segment_condition(plan: Plan, index: int) -> ColumnElement[bool]:
    """Rows that fall into segment ``index``: its own ``when`` and none of the earlier ones."""
    earlier = [_when(plan, n).is_not(True) for n in range(index)]
    return and_(_when(plan, index).is_(True), *earlier)


def _when(plan: Plan, index: int) -> ColumnElement[bool]:
    when = plan.segments[index].when
    return combined(compile_filter(when)) if when is not None else true()


def segment_case(plan: Plan) -> Case[int]:
    """The index of the first matching segment, NULL when none matches (unsegmented)."""
    return case(*[(_when(plan, n).is_(True), literal(n)) for n in range(len(plan.segments))], else_=None)


def in_some_segment(plan: Plan) -> ColumnElement[bool]:
    if any(s.when is None for s in plan.segments):
        return true()
    return or_(*[_when(plan, n).is_(True) for n in range(len(plan.segments))])


def unsegmented(plan: Plan) -> ColumnElement[bool]:
    return and_(*[_when(plan, n).is_not(True) for n in range(len(plan.segments))])


def already_applied(run_ids: Sequence[int]) -> ColumnElement[bool]:
    """Changed by one of ``run_ids`` (and not reverted since)."""
    if not run_ids:
        return false()
    return exists(
        select(ITEMS.c.id).where(
            ITEMS.c.run_id.in_(list(run_ids)),
            ITEMS.c.subscription_id == S.c.id,
            ITEMS.c.outcome == "APPLIED",
        )
    )


async def runs_of_plan(session: AsyncSession, plan_hash: str, but: int | None = None) -> list[int]:
    """The real (not dry) runs of the same plan: what they changed, a later run leaves alone."""
    stmt = select(RUNS.c.id).where(RUNS.c.plan_hash == plan_hash, RUNS.c.dry_run.is_(False))
    if but is not None:
        stmt = stmt.where(RUNS.c.id != but)
    return list((await session.execute(stmt.order_by(RUNS.c.id))).scalars())


def matched(plan: Plan) -> list[ColumnElement[bool]]:
    """The plan's filter as WHERE clauses."""
    return compile_filter(plan.filter)


def candidates(plan: Plan, other_runs: Sequence[int]) -> Sequence[ColumnElement[bool]]:
    """What a run (or a preview of one) works on: matched, in a segment, not done by another run of the plan."""
    return [*matched(plan), in_some_segment(plan), ~already_applied(other_runs)]
