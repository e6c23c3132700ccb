"""What a plan would do, written nowhere.

Counts and totals come from SQL (:mod:`rebill.bulk.simulate`), in one
read-only snapshot; the sample rows, the example message of every refusal
code, and the few subscriptions SQL cannot price run through the domain
operations themselves (:func:`evaluate`), exactly as a run would.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from rebill.bulk.actions import apply_actions, billed, charged
from rebill.bulk.plan import Action, Plan, References
from rebill.bulk.selection import already_applied, matched, runs_of_plan, segment_condition, unsegmented
from rebill.bulk.simulate import segment_sql
from rebill.db import tables as t
from rebill.db.repositories import SubscriptionRepository, any_of
from rebill.domain.cadence import local_today
from rebill.domain.errors import RebillError
from rebill.domain.money import Money
from rebill.domain.mrr import mrr
from rebill.domain.outcome import OpContext, Outcome
from rebill.domain.subscription import SubscriptionState, diff

logger = logging.getLogger(__name__)

S = t.table_of(t.Subscription)
TR = t.table_of(t.TaxRate)
EVALUATE_CHUNK = 1000


@dataclass
class Evaluated:
    """One subscription through the domain: its state before and the outcome or refusal."""

    before: SubscriptionState
    outcome: Outcome | None = None
    error: RebillError | None = None

    @property
    def after(self) -> SubscriptionState:
        return self.outcome.state if self.outcome is not None else self.before

    @property
    def refused(self) -> bool:
        return self.error is not None


def op_context(state: SubscriptionState, now: datetime) -> OpContext:
    return OpContext(now=now, today=local_today(now, state.time_zone))


def evaluate_states(
    states: Sequence[SubscriptionState], actions: Sequence[Action], refs: References, now: datetime
) -> list[Evaluated]:
    out = []
    for state in states:
        try:
            out.append(Evaluated(state, outcome=apply_actions(state, op_context(state, now), actions, refs)))
        except RebillError as exc:
            out.append(Evaluated(state, error=exc))
    return out


async def evaluate(
    session: AsyncSession, ids: Sequence[int], actions: Sequence[Action], refs: References, now: datetime
) -> list[Evaluated]:
    """Load ``ids`` as states (a chunk at a time) and run the actions on them in memory."""
    out: list[Evaluated] = []
    repo = SubscriptionRepository(session)
    for start in range(0, len(ids), EVALUATE_CHUNK):
        chunk = list(ids[start : start + EVALUATE_CHUNK])
        rows = list(await session.execute(select(S).where(any_of(S.c.id, chunk)).order_by(S.c.id)))
        states = await repo.states_from_rows(rows)
        out.extend(evaluate_states(states, actions, refs, now))
    return out


@dataclass
class Refusal:
    code: str
    count: int
    example_id: int
    message: str


@dataclass
class SampleRow:
    subscription_id: int
    refused: bool
    code: str | None
    reason: str | None
    changes: list[dict[str, Any]]


@dataclass
class SegmentPreview:
    name: str
    matched: int = 0
    billed_before: dict[str, int] = field(default_factory=dict)
    billed_after: dict[str, int] = field(default_factory=dict)
    # What the next invoices would charge, with shipping and tax (billed is the items after discounts).
    charged_before: dict[str, int] = field(default_factory=dict)
    charged_after: dict[str, int] = field(default_factory=dict)
    # MRR (``domain.mrr``) of the segment's subscriptions before and after the plan.
    mrr_before: dict[str, int] = field(default_factory=dict)
    mrr_after: dict[str, int] = field(default_factory=dict)
    refusals: list[Refusal] = field(default_factory=list)
    sample: list[SampleRow] = field(default_factory=list)

    @property
    def refused(self) -> int:
        return sum(r.count for r in self.refusals)


@dataclass
class Preview:
    previewed_at: datetime
    plan_hash: str
    matched: int
    unsegmented: int
    already_applied: int
    segments: list[SegmentPreview]

    def total(self, which: str) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for segment in self.segments:
            for currency, minor in getattr(segment, which).items():
                out[currency] += minor
        return dict(sorted(out.items()))


def money_list(totals: dict[str, int]) -> list[Money]:
    return [Money(minor, currency) for currency, minor in sorted(totals.items())]


def _sample_row(e: Evaluated) -> SampleRow:
    assert e.before.id is not None
    if e.error is not None:
        return SampleRow(e.before.id, True, e.error.code, e.error.message, [])
    return SampleRow(e.before.id, False, None, None, diff(e.before, e.after))


class _Tally:
    def __init__(self) -> None:
        self.matched = 0
        self.before: dict[str, int] = defaultdict(int)
        self.after: dict[str, int] = defaultdict(int)
        self.charged_before: dict[str, int] = defaultdict(int)
        self.charged_after: dict[str, int] = defaultdict(int)
        self.mrr_before: dict[str, int] = defaultdict(int)
        self.mrr_after: dict[str, int] = defaultdict(int)
        self.refused: dict[str, int] = defaultdict(int)
        self.examples: dict[str, int] = {}

    def add_sql(self, row: Any) -> None:
        self.matched += row.n
        self.before[row.currency] += int(row.before or 0)
        self.after[row.currency] += int(row.after or 0)
        self.charged_before[row.currency] += int(row.charged_before or 0)
        self.charged_after[row.currency] += int(row.charged_after or 0)
        self.mrr_before[row.currency] += int(row.mrr_before or 0)
        self.mrr_after[row.currency] += int(row.mrr_after or 0)
        if row.code is not None:
            self.refused[row.code] += row.n
            self.examples[row.code] = min(self.examples.get(row.code, row.example), row.example)

    def add_domain(self, e: Evaluated) -> None:
        assert e.before.id is not None
        self.matched += 1
        before = billed(e.before)
        self.before[before.currency] += before.minor
        after = billed(e.after)
        self.after[after.currency] += after.minor
        self.charged_before[before.currency] += charged(e.before).minor
        # A refused subscription stays as it was.
        self.charged_after[after.currency] += charged(e.before if e.error is not None else e.after).minor
        self.mrr_before[before.currency] += mrr(e.before).minor
        self.mrr_after[after.currency] += mrr(e.before if e.error is not None else e.after).minor
        if e.error is not None:
            self.refused[e.error.code] += 1
            self.examples[e.error.code] = min(self.examples.get(e.error.code, e.before.id), e.before.id)


async def preview(
    session: AsyncSession,
    plan: Plan,
    refs: References,
    now: datetime,
    *,
    sample: int = 20,
    engine: str = "sql",
) -> Preview:
    """Per segment: matched, billed before and after, refusals by code, and sample rows.

    ``engine="domain"`` evaluates every matched subscription through the
    domain in chunks: slow, and what the SQL figures are tested against.
    The caller runs it in one read-only snapshot (see ``runs.BulkService.preview``).
    """
    plan_hash = plan.hash
    done = already_applied(await runs_of_plan(session, plan_hash))
    where = matched(plan)
    counts = (
        await session.execute(
            select(
                func.count().filter(~done),
                func.count().filter(done),
                func.count().filter(and_(~done, unsegmented(plan))),
            )
            .select_from(S)
            .where(*where)
        )
    ).one()
    # Without an active tax rate, no row needs its customer's address looked up.
    taxed = bool(await session.scalar(select(exists().where(TR.c.active))))
    segments = []
    for index, segment in enumerate(plan.segments):
        seg_where = [*where, segment_condition(plan, index), ~done]
        tally = _Tally()
        domain_ids: list[int] = []
        if engine == "domain":
            domain_ids = list((await session.execute(select(S.c.id).where(*seg_where).order_by(S.c.id))).scalars())
        else:
            sql = segment_sql(segment.actions, refs, now, seg_where, taxed=taxed)
            priced_by_domain = False
            for row in await session.execute(sql.query):
                if row.complex:
                    priced_by_domain = True
                    continue
                tally.add_sql(row)
            if priced_by_domain:
                domain_ids = list((await session.execute(sql.complex_ids())).scalars())
        for e in await evaluate(session, domain_ids, segment.actions, refs, now):
            tally.add_domain(e)

        examples = await evaluate(session, sorted(set(tally.examples.values())), segment.actions, refs, now)
        by_id = {e.before.id: e for e in examples}
        refusals = []
        for code, count in sorted(tally.refused.items(), key=lambda kv: (-kv[1], kv[0])):
            example = by_id[tally.examples[code]]
            message = example.error.message if example.error is not None else ""
            if example.error is None or example.error.code != code:
                logger.warning(
                    "bulk preview: SQL says %s for subscription %s, the domain says %s",
                    code,
                    tally.examples[code],
                    example.error.code if example.error else "no refusal",
                )
            refusals.append(Refusal(code, count, tally.examples[code], message))

        rows: list[SampleRow] = []
        if sample > 0:
            sample_ids = list(
                (await session.execute(select(S.c.id).where(*seg_where).order_by(S.c.id).limit(sample))).scalars()
            )
            rows = [_sample_row(e) for e in await evaluate(session, sample_ids, segment.actions, refs, now)]
        segments.append(
            SegmentPreview(
                name=segment.name,
                matched=tally.matched,
                billed_before=dict(sorted(tally.before.items())),
                billed_after=dict(sorted(tally.after.items())),
                charged_before=dict(sorted(tally.charged_before.items())),
                charged_after=dict(sorted(tally.charged_after.items())),
                mrr_before=dict(sorted(tally.mrr_before.items())),
                mrr_after=dict(sorted(tally.mrr_after.items())),
                refusals=refusals,
                sample=rows,
            )
        )
    return Preview(
        previewed_at=now,
        plan_hash=plan_hash,
        matched=int(counts[0]),
        unsegmented=int(counts[2]),
        already_applied=int(counts[1]),
        segments=segments,
    )
