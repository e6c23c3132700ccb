"""Revenue movements in the database: written by every path that saves a subscription, and equal to the domain.

``rebill_mrr`` (migration 0019) is ``domain.mrr`` in SQL; the triggers record a movement whichever path
saves a subscription (the repository, the renewal worker's batched update, a bulk run's set-based writes,
a profile's new cadence), and the backfill rebuilds the same totals from history. After each, every
subscription's movements add up to the domain's MRR of its state, and its steps to its status.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from rebill.billing.engine import RenewalEngine
from rebill.bulk.runner import process_queued_runs
from rebill.bulk.runs import BulkService
from rebill.db.repositories import SubscriptionRepository
from rebill.db.revenue import BACKFILL
from rebill.domain.cadence import Cadence, IntervalUnit
from rebill.domain.money import Money
from rebill.domain.mrr import COUNTED, monthly
from rebill.domain.periods import MetricsInterval
from rebill.domain.status import SubscriptionStatus
from rebill.seed import seed
from rebill.services.revenue import RevenueMetrics
from rebill.services.runtime import Actor, Services

RULE = """SELECT rebill_mrr(a, s, u, c) FROM unnest(CAST(:a AS bigint[]), CAST(:s AS text[]), CAST(:u AS text[]),
                                             CAST(:c AS int[])) AS v(a, s, u, c)"""

cases = st.lists(
    st.tuples(
        st.one_of(st.integers(min_value=0, max_value=10_000), st.integers(min_value=0, max_value=2**62)),
        st.sampled_from(list(SubscriptionStatus)),
        st.sampled_from(list(IntervalUnit)),
        st.integers(min_value=1, max_value=120),
    ),
    min_size=1,
    max_size=300,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cases)
async def test_rebill_mrr_is_the_domain_rule(engine, values):
    async with engine.connect() as conn:
        got = list(
            (
                await conn.execute(
                    text(RULE),
                    {
                        "a": [v[0] for v in values],
                        "s": [v[1].value for v in values],
                        "u": [v[2].value for v in values],
                        "c": [v[3] for v in values],
                    },
                )
            ).scalars()
        )
    expected = [
        monthly(Money(a, "USD"), Cadence(unit, count)).minor if status in COUNTED else 0
        for a, status, unit, count in values
    ]
    assert got == expected


async def movements(services: Services) -> int:
    async with services.engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM revenue_movements"))).scalar_one())


async def assert_movements_are_the_domain(services: Services) -> int:
    """Every subscription's movements add up to the domain's MRR of its state and its steps to its status."""
    async with services.sessions() as session:
        ids = list((await session.execute(text("SELECT id FROM subscriptions ORDER BY id"))).scalars())
        states = await SubscriptionRepository(session).get_many(ids)
        sums: dict[int, Any] = {
            row.subscription_id: row
            for row in await session.execute(
                text(
                    "SELECT subscription_id, sum(mrr_after_minor - mrr_before_minor) AS mrr, sum(active_step) AS "
                    "active, sum(trialing_step) AS trialing, count(*) FILTER (WHERE kind = 'NEW') AS new "
                    "FROM revenue_movements GROUP BY subscription_id"
                )
            )
        }
    counted = 0
    for sid, state in states.items():
        row = sums.get(sid)
        got = (int(row.mrr), int(row.active), int(row.trialing)) if row is not None else (0, 0, 0)
        expected_mrr = monthly(state.amount, state.cadence).minor if state.status in COUNTED else 0
        assert got == (
            expected_mrr,
            int(state.status in COUNTED),
            int(state.status is SubscriptionStatus.TRIAL),
        ), (sid, state.status, state.amount, state.cadence)
        assert row is None or row.new <= 1
        counted += int(state.status in COUNTED)
    return counted


async def assert_kept_days_are_the_rows(services: Services, clock: Any) -> None:
    """The sums kept for closed days plus the rows after them are what the rows alone say, as the clock moves
    on, while changes are made, and when it is set back."""
    metrics = RevenueMetrics(services)
    today = clock.now().date()
    for step, days in enumerate((0, 3, 40, -30)):
        clock.set(clock.now() + timedelta(days=days))
        if step == 2:  # changes after some days were kept: renewals, declines, expiries
            await RenewalEngine(services).run_once()
        for first, last, interval in (
            (date(2024, 1, 1), today + timedelta(days=60), MetricsInterval.MONTH),
            (today - timedelta(days=20), today + timedelta(days=45), MetricsInterval.DAY),
            (today - timedelta(days=100), today + timedelta(days=50), MetricsInterval.WEEK),
        ):
            for currency in ("USD", "EUR"):
                kept = await metrics.points(currency, first, last, interval)
                rows = await metrics.points(currency, first, last, interval, kept=False)
                assert kept == rows, (step, currency, interval)
    async with services.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM revenue_days"))).scalar_one() > 50


async def test_every_save_path_records_movements_that_add_up_to_the_domain_and_the_backfill_agrees(services, clock):
    report = await seed(services, 300, seed=11, batch_size=100)
    assert report.subscriptions == 300
    assert await assert_movements_are_the_domain(services) > 100  # the seed's: rebuilt from its history

    seeded = await movements(services)
    clock.set(clock.now() + timedelta(days=35))
    await RenewalEngine(services).run_once()  # batched updates: renewals, trial ends, dunning, expiries
    await assert_movements_are_the_domain(services)
    renewed = await movements(services)
    assert renewed > seeded

    bulk = BulkService(services)
    plan = {
        "filter": {"status": ["ACTIVE", "OVERDUE", "SUSPENDED"]},
        "segments": [
            {
                "name": "dearer",
                "when": {"currency": "USD"},
                "actions": [{"adjustPrice": {"percent": "7", "consentReference": "letter"}}],
            },
            {"name": "resting", "when": {"status": ["ACTIVE"]}, "actions": [{"suspend": True}]},
            {"name": "back", "actions": [{"activate": True}]},
        ],
    }
    run = await bulk.start(Actor("cli:ops", scopes=frozenset({"admin"})), plan)
    await process_queued_runs(services)  # set-based writes of a run's chunks
    view = await bulk.get(run.id)
    assert view is not None and view.applied > 100
    await assert_movements_are_the_domain(services)
    bulked = await movements(services)
    assert bulked > renewed + 100

    async with services.engine.begin() as conn:  # a profile billed twice as often halves what it brings a month
        await conn.execute(
            text(
                "UPDATE subscription_profiles SET interval_count = interval_count * 2, updated_at = :now "
                "WHERE id = (SELECT profile_id FROM subscriptions WHERE status = 'ACTIVE' ORDER BY id LIMIT 1)"
            ),
            {"now": clock.now()},
        )
    await assert_movements_are_the_domain(services)
    assert await movements(services) > bulked

    await assert_kept_days_are_the_rows(services, clock)

    async with services.engine.begin() as conn:  # the migration's backfill, from history alone
        await conn.execute(text("DELETE FROM revenue_movements"))
        await conn.execute(text(BACKFILL))
    await assert_movements_are_the_domain(services)
