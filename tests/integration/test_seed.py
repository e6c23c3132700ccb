"""``rebill seed``: demo data that follows the domain's rules, row for row."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner

from rebill.db import tables as t
from rebill.db.repositories import SubscriptionRepository, renewal_from_row
from rebill.domain import cycle, lifecycle
from rebill.domain.cadence import local_today, nth_renewal
from rebill.domain.outcome import OpContext
from rebill.domain.pricing import CouponDuration
from rebill.domain.renewal import RenewalInfo, RenewalKind, RenewalStatus
from rebill.domain.status import SubscriptionStatus
from rebill.domain.subscription import CouponInfo, SubscriptionState
from rebill.seed import SeedReport, seed
from rebill.services.runtime import Services
from tests.ledger import numbering_gaps
from tests.support import gql

S = t.table_of(t.Subscription)
R = t.table_of(t.Renewal)
H = t.table_of(t.HistoryEntry)

SUBSCRIPTIONS = 500


@pytest.fixture
async def seeded(services: Services) -> SeedReport:
    return await seed(services, SUBSCRIPTIONS, seed=7, batch_size=200)


async def _load(
    services: Services,
) -> tuple[dict[int, SubscriptionState], dict[int, tuple[int, int]], dict[int, list[RenewalInfo]]]:
    """Every seeded subscription as the repository reads it, its stored amount and discount, and its renewals."""
    async with services.sessions() as session:
        stored = {
            r.id: (r.amount_minor, r.discount_minor)
            for r in await session.execute(select(S.c.id, S.c.amount_minor, S.c.discount_minor))
        }
        states = await SubscriptionRepository(session).get_many(sorted(stored))
        renewals: dict[int, list[RenewalInfo]] = {}
        for row in await session.execute(select(R).order_by(R.c.subscription_id, R.c.cycle)):
            renewals.setdefault(row.subscription_id, []).append(renewal_from_row(row))
    return states, stored, renewals


def _cycles_used(bills: int, coupon: CouponInfo) -> int:
    """The cycles a coupon has used after ``bills`` paid bills: each bill uses one while it lasts."""
    if coupon.duration is CouponDuration.ONCE:
        return min(bills, 1)
    if coupon.duration is CouponDuration.REPEATING:
        assert coupon.duration_cycles is not None
        return min(bills, coupon.duration_cycles)
    return bills


async def test_seed_writes_what_it_reports(services: Services, seeded: SeedReport) -> None:
    async with services.engine.connect() as conn:

        async def count(table: str) -> int:
            return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())

        assert await count("subscriptions") == seeded.subscriptions == SUBSCRIPTIONS
        assert await count("customers") == seeded.customers
        assert await count("payment_methods") == seeded.payment_methods
        assert await count("subscription_items") == seeded.items
        assert await count("applied_coupons") == seeded.applied_coupons
        assert await count("renewals") == seeded.renewals
        assert await count("transactions") == seeded.transactions
        assert await count("history_entries") == seeded.history_entries
        # Every seeded charge has its invoice, numbered without gaps.
        charges = await conn.execute(text("SELECT count(*) FROM renewals WHERE amount_minor >= 0"))
        assert await count("invoices") == seeded.invoices == charges.scalar_one() > 0
        assert not await numbering_gaps(services.engine)
        per_subscription = (
            await conn.execute(
                text(
                    """SELECT min(n), max(n) FROM (SELECT count(*) AS n FROM subscription_items
                       GROUP BY subscription_id) AS c"""
                )
            )
        ).one()
        assert tuple(per_subscription) == (1, 3)
        without_default = (
            await conn.execute(text("SELECT count(*) FROM customers WHERE default_payment_method_id IS NULL"))
        ).scalar_one()
        assert without_default == 0
        zones = (await conn.execute(text("SELECT count(DISTINCT time_zone) FROM subscriptions"))).scalar_one()
        assert zones >= 4


async def test_seed_spreads_subscriptions_over_every_status(services: Services, seeded: SeedReport) -> None:
    async with services.sessions() as session:
        by_status = Counter(
            {
                row.status: row.n
                for row in await session.execute(select(S.c.status, func.count().label("n")).group_by(S.c.status))
            }
        )
    assert by_status == seeded.statuses
    assert set(by_status) == {s.value for s in SubscriptionStatus}
    assert by_status["ACTIVE"] > SUBSCRIPTIONS / 2
    async with services.engine.connect() as conn:
        manual_only = (
            await conn.execute(
                text(
                    """SELECT count(*) FROM subscriptions s JOIN payment_methods pm ON pm.id = s.payment_method_id
                       WHERE s.status = 'AWAITING_REINSTATE' AND s.renewal_type <> 'MANUAL' AND pm.kind <> 'OFFLINE'"""
                )
            )
        ).scalar_one()
        modes = {
            row[0]
            for row in await conn.execute(text("SELECT DISTINCT gateway_mode || ':' || gateway_id FROM subscriptions"))
        }
    assert manual_only == 0, "only manual-renewal or invoiced subscriptions wait for reinstatement"
    assert {"FORCED:sandbox-b", "PREFERRED:sandbox-b"} <= modes


async def test_amounts_are_what_the_next_renewal_bills(services: Services, seeded: SeedReport) -> None:
    states, stored, _ = await _load(services)
    assert len(states) == SUBSCRIPTIONS
    billed = {sid: (s.amount.minor, s.next_bill().discount.minor) for sid, s in states.items()}
    wrong = {sid: (stored[sid], billed[sid]) for sid in states if billed[sid] != stored[sid]}
    assert wrong == {}
    assert any(discount for _, discount in stored.values()), "some coupons take something off"
    assert any(s.coupons for s in states.values())
    assert any(i.price_from_tiers for s in states.values() for i in s.items)


async def test_renewal_dates_follow_the_profile_cadence(services: Services, seeded: SeedReport) -> None:
    states, _, renewals = await _load(services)
    today = services.clock.today()
    cadences = set()
    for sid, s in states.items():
        policy = s.profile.anchor_policy
        cadences.add((s.cadence.unit, s.cadence.count, policy))
        if s.is_final:
            assert s.next_renewal_date is None, sid
            continue
        if s.status is SubscriptionStatus.FUTURE:
            # Not started (DOMAIN.md "Start dates"): nothing billed, due on its start date, when the worker starts it.
            assert s.start_date > local_today(services.clock.now(), s.time_zone), sid
            assert s.next_renewal_date == s.start_date, sid
            assert s.anchor_date == (s.trial_end_date or s.start_date), sid
            assert (s.last_cycle, s.occurrences_billed, s.current_period_end) == (0, 0, None), sid
            assert sid not in renewals, sid
            continue
        # The next renewal ends the last cycle billed (cycle 0 is the anchor: a trial's end).
        assert s.next_renewal_date == nth_renewal(s.anchor_date, s.cadence, policy, s.last_cycle), sid
        assert s.current_period_end == s.next_renewal_date, sid
        if s.status is SubscriptionStatus.TRIAL:
            assert s.next_renewal_date == s.trial_end_date == s.anchor_date, sid
            assert s.next_renewal_date >= today, sid
        elif (
            s.status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.OVERDUE) and s.renewal_type.value == "AUTOMATIC"
        ):
            assert s.next_renewal_date >= today, f"{sid} is behind schedule"
        for r in renewals.get(sid, []):
            assert r.period_start == nth_renewal(s.anchor_date, s.cadence, policy, r.cycle - 1), (sid, r.cycle)
            assert r.period_end == nth_renewal(s.anchor_date, s.cadence, policy, r.cycle), (sid, r.cycle)
    assert len(cadences) >= 6


async def test_renewals_are_the_billed_cycles(services: Services, seeded: SeedReport) -> None:
    """Cycles 1..n, each billing what the subscription billed then: coupons use up one cycle per paid bill."""
    states, _, renewals = await _load(services)
    first_kinds: Counter[RenewalKind] = Counter()
    for sid, s in states.items():
        rows = renewals.get(sid, [])
        assert [r.cycle for r in rows] == list(range(1, len(rows) + 1)), sid
        paid = [r for r in rows if r.status is RenewalStatus.PAID]
        assert s.occurrences_billed == len(paid), sid
        if rows:
            assert s.last_cycle == rows[-1].cycle, sid
            first_kinds[rows[0].kind] += 1
        if s.profile.max_occurrences is not None:
            assert s.occurrences_billed <= s.profile.max_occurrences, sid
        for r in rows:
            coupons = tuple(replace(c, cycles_used=_cycles_used(r.cycle - 1, c.coupon)) for c in s.coupons)
            assert r.amount == s.evolve(coupons=coupons).amount, (sid, r.cycle)
        for c in s.coupons:
            assert c.cycles_used == _cycles_used(len(paid), c.coupon), sid
        if s.status is SubscriptionStatus.OVERDUE:
            assert rows[-1].status is RenewalStatus.FAILED and s.overdue_count >= 1 and s.next_retry_date, sid
    assert first_kinds[RenewalKind.INITIAL] > SUBSCRIPTIONS / 2


async def test_active_subscriptions_are_where_the_renewal_engine_would_have_taken_them(
    services: Services, seeded: SeedReport
) -> None:
    """Rewound to their first cycle and replayed by the engine's model, they come back to the seeded rows.

    ``cycle.catch_up`` bills every cycle due, as the renewal engine does, as of
    yesterday: what falls due today is the worker's next run.
    """
    states, _, renewals = await _load(services)
    replayed = 0
    for sid, s in states.items():
        if s.status is not SubscriptionStatus.ACTIVE:
            continue
        rows = renewals[sid]
        first = rows[0]
        policy = s.profile.anchor_policy
        if first.kind is RenewalKind.INITIAL:  # billed at creation: cycle 1 from the start date
            rewound = s.evolve(
                last_cycle=1,
                occurrences_billed=1,
                next_renewal_date=first.period_end,
                current_period_start=first.period_start,
                current_period_end=first.period_end,
                coupons=tuple(replace(c, cycles_used=_cycles_used(1, c.coupon)) for c in s.coupons),
            )
        else:  # a trial: nothing billed before the trial end, the anchor
            assert s.trial_end_date == s.anchor_date == first.period_start, sid
            rewound = s.evolve(
                status=SubscriptionStatus.TRIAL,
                last_cycle=0,
                occurrences_billed=0,
                next_renewal_date=s.anchor_date,
                current_period_start=s.start_date,
                current_period_end=s.anchor_date,
                coupons=tuple(replace(c, cycles_used=0) for c in s.coupons),
            )
        now = services.clock.now()
        yesterday = local_today(now, s.time_zone) - timedelta(days=1)
        outcomes = cycle.catch_up(rewound, OpContext(now=now, today=yesterday))
        charges = [o.charge for o in outcomes]
        expected = [r for r in rows if r.cycle > rewound.last_cycle]
        assert [(c.cycle, c.period_start, c.period_end, c.amount) for c in charges if c is not None] == [
            (r.cycle, r.period_start, r.period_end, r.amount) for r in expected
        ], sid
        final = rewound
        for outcome in outcomes:
            assert outcome.charge is not None and outcome.charge.kind is RenewalKind.SCHEDULED
            final = lifecycle.paid(outcome.state, outcome.charge, s.last_gateway_id)
        assert final.status is SubscriptionStatus.ACTIVE, sid
        assert (final.next_renewal_date, final.current_period_start, final.last_cycle, final.occurrences_billed) == (
            s.next_renewal_date,
            s.current_period_start,
            s.last_cycle,
            s.occurrences_billed,
        ), sid
        assert [c.cycles_used for c in final.coupons] == [c.cycles_used for c in s.coupons], sid
        assert nth_renewal(s.anchor_date, s.cadence, policy, s.last_cycle) == s.next_renewal_date
        replayed += len(outcomes)
    assert replayed > SUBSCRIPTIONS  # many cycles were replayed, not just a few


async def test_each_charge_attempt_is_a_transaction_and_nothing_is_dated_after_now(
    services: Services, seeded: SeedReport
) -> None:
    async with services.engine.connect() as conn:
        mismatched = (
            await conn.execute(
                text(
                    """SELECT count(*) FROM renewals r
                       WHERE (SELECT count(*) FROM transactions t WHERE t.renewal_id = r.id) <> greatest(r.attempts, 1)"""
                )
            )
        ).scalar_one()
        card_without_gateway = (
            await conn.execute(
                text(
                    """SELECT count(*) FROM transactions t JOIN renewals r ON r.id = t.renewal_id
                       WHERE (r.payment_kind = 'CARD') <> (t.gateway_id IS NOT NULL AND t.gateway_reference IS NOT NULL)"""
                )
            )
        ).scalar_one()
        declines = {
            row[0]
            for row in await conn.execute(
                text("SELECT DISTINCT decline_code FROM transactions WHERE status = 'FAILED'")
            )
        }
        latest = (
            await conn.execute(
                text(
                    """SELECT greatest((SELECT max(updated_at) FROM subscriptions), (SELECT max(created_at) FROM customers),
                                      (SELECT max(paid_at) FROM renewals), (SELECT max(created_at) FROM transactions),
                                      (SELECT max(occurred_at) FROM history_entries))"""
                )
            )
        ).scalar_one()
    assert mismatched == 0
    assert card_without_gateway == 0
    assert declines <= {"card_declined", "insufficient_funds"} and "card_declined" in declines
    assert latest <= services.clock.now()


async def test_every_subscription_has_a_created_history_entry(services: Services, seeded: SeedReport) -> None:
    async with services.sessions() as session:
        created = Counter(
            r.subscription_id for r in await session.execute(select(H.c.subscription_id).where(H.c.action == "created"))
        )
        sample = (
            await session.execute(select(H.c.changes).where(H.c.action == "created").order_by(H.c.id).limit(1))
        ).scalar_one()
    assert len(created) == SUBSCRIPTIONS and set(created.values()) == {1}
    fields = {c["field"] for c in sample}
    assert {"status", "nextRenewalDate", "amount", "profileId"} <= fields


async def test_the_same_seed_gives_the_same_data(services: Services) -> None:
    async def fingerprint() -> list[Any]:
        async with services.engine.connect() as conn:
            rows = await conn.execute(
                text(
                    """SELECT status, next_renewal_date, amount_minor, currency, time_zone,
                              (SELECT count(*) FROM renewals r WHERE r.subscription_id = s.id)
                       FROM subscriptions s ORDER BY id"""
                )
            )
            return [tuple(r) for r in rows]

    from rebill.seed import reset_data

    await seed(services, 120, seed=11)
    first = await fingerprint()
    await reset_data(services)
    await seed(services, 120, seed=11)
    assert await fingerprint() == first
    await reset_data(services)
    await seed(services, 120, seed=12)
    assert await fingerprint() != first


async def test_the_list_query_pages_through_seeded_subscriptions(client: Any, services: Services) -> None:
    await seed(services, 230, seed=3)
    query = """query($after: String, $filter: SubscriptionFilter) {
      subscriptions(first: 100, after: $after, filter: $filter) {
        totalCount pageInfo { hasNextPage endCursor }
        edges { node { id status amount { amount currency } items { quantity product { sku } }
                       profile { name } customer { email } paymentMethod { kind } } } } }"""
    seen: list[str] = []
    after = None
    while True:
        page = (await gql(client, query, {"after": after}))["subscriptions"]
        assert page["totalCount"] == 230
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen)) == 230

    async with services.engine.connect() as conn:
        active = (await conn.execute(text("SELECT count(*) FROM subscriptions WHERE status = 'ACTIVE'"))).scalar_one()
    page = (await gql(client, query, {"filter": {"status": ["ACTIVE"]}}))["subscriptions"]
    assert page["totalCount"] == active
    assert {e["node"]["status"] for e in page["edges"]} == {"ACTIVE"}
    assert all(e["node"]["customer"]["email"].endswith("@example.com") for e in page["edges"])


def test_the_seed_command_resets_and_prints_a_summary(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from rebill.cli import app

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REBILL_NOW", "2026-01-15T09:00:00Z")
    runner = CliRunner()
    refused = runner.invoke(app, ["seed", "--subscriptions", "10", "--reset"], input="n\n")
    assert refused.exit_code == 1
    result = runner.invoke(app, ["seed", "--subscriptions", "40", "--seed", "5", "--reset", "--yes"])
    assert result.exit_code == 0, result.output
    assert "subscriptions" in result.stdout and "ACTIVE" in result.stdout

    async def count() -> int:
        engine = create_async_engine(database_url)
        async with engine.connect() as conn:
            n = int((await conn.execute(text("SELECT count(*) FROM subscriptions"))).scalar_one())
        await engine.dispose()
        return n

    assert asyncio.run(count()) == 40
