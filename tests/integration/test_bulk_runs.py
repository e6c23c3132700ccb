import asyncio
import os
import signal
import sys
from dataclasses import replace
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from rebill.bulk.runner import process_queued_runs, process_run
from rebill.db import tables as t
from rebill.domain.errors import RebillError
from rebill.services.runtime import Services
from tests.conftest import DEFAULT_NOW
from tests.integration.test_bulk_preview import THREE_SEGMENTS, three_segment_shop
from tests.integration.test_bulk_support import ADMIN, OPERATOR, Shop

CUT = {"segments": [{"name": "all", "actions": [{"adjustPrice": {"percent": "-10"}}]}]}
HISTORY = t.table_of(t.HistoryEntry)
ITEMS = t.table_of(t.BulkRunItem)


async def run_history(services, run_id: int) -> dict[int, int]:
    """How many history entries the run wrote, per subscription."""
    async with services.sessions() as session:
        rows = await session.execute(
            select(HISTORY.c.subscription_id, func.count())
            .where(HISTORY.c.bulk_run_id == run_id, HISTORY.c.action != "bulk_revert")
            .group_by(HISTORY.c.subscription_id)
        )
        return dict(rows.all())


async def items_of(shop, run_id: int) -> dict[int, tuple[str, str | None]]:
    page = await shop.bulk.items(run_id, first=100, after=None, outcome=None)
    return {i.subscription_id: (i.outcome, i.code) for i in page.items}


async def test_a_three_segment_run_applies_every_segment_and_writes_history_as_the_run(services):
    shop, ids = await three_segment_shop(services)
    run = await shop.run(THREE_SEGMENTS)

    assert (run.status, run.total, run.processed, run.applied, run.skipped, run.conflicts) == (
        "COMPLETED",
        6,
        6,
        6,
        0,
        0,
    )
    assert run.created_by == OPERATOR.name
    states = await shop.states(list(ids.values()))
    assert states[ids["trial-a"]].trial_end_date == date(2026, 2, 12)
    assert states[ids["trial-a"]].next_renewal_date == date(2026, 2, 12)
    assert (states[ids["forced"]].gateway_id, states[ids["forced"]].gateway_mode.value) == ("sandbox-b", "PREFERRED")
    assert states[ids["plain"]].amount.amount_str == "9.00"
    assert states[ids["two-items"]].amount.amount_str == "10.53"
    assert states[ids["odd-cents"]].amount.amount_str == "9.04"
    assert states[ids["cancelled"]].version == 2  # created, then cancelled; the run left it alone

    entry = (await shop.history(ids["plain"]))[-1]
    assert (entry.actor, entry.bulk_run_id, entry.action) == (f"bulk-run:{run.id}", run.id, "item_updated")
    assert {c["field"]: (c["before"], c["after"]) for c in entry.changes}["amount"] == ("10.00", "9.00")
    assert await run_history(services, run.id) == {sid: 1 for name, sid in ids.items() if name != "cancelled"}

    page = await shop.bulk.items(run.id, first=10, after=None, outcome="APPLIED")
    assert page.total == 6
    segments = {i.subscription_id: i.segment for i in page.items}
    assert segments[ids["trial-b"]] == "trials" and segments[ids["forced"]] == "forced-gateway"
    assert segments[ids["odd-cents"]] == "everyone-else"


async def test_a_run_moves_a_trial_end_with_the_next_renewal_date(services):
    shop = await Shop(services).open()
    trial = await shop.subscribe("20.00", profile="trial-monthly")
    active = await shop.subscribe("20.00")
    plan = {"segments": [{"name": "all", "actions": [{"setNextRenewalDate": {"date": "2026-03-01"}}]}]}
    await shop.run(plan)
    moved, renewing = await shop.state(trial), await shop.state(active)
    assert (moved.status.value, moved.trial_end_date, moved.next_renewal_date) == (
        "TRIAL",
        date(2026, 3, 1),
        date(2026, 3, 1),
    )
    assert (renewing.trial_end_date, renewing.next_renewal_date) == (None, date(2026, 3, 1))


async def test_a_limit_of_two_changes_two_and_the_next_run_of_the_plan_the_rest(services):
    shop = await Shop(services).open()
    ids = [await shop.subscribe("10.00") for _ in range(5)]

    first = await shop.run(CUT, limit=2)
    assert (first.status, first.applied, first.processed, first.total) == ("COMPLETED", 2, 2, 2)
    assert [(await shop.state(i)).amount.amount_str for i in ids] == ["9.00", "9.00", "10.00", "10.00", "10.00"]
    preview = await shop.bulk.preview(CUT)
    assert (preview.matched, preview.already_applied) == (3, 2)

    rest = await shop.run(CUT)
    assert (rest.applied, rest.total) == (3, 3)
    assert [(await shop.state(i)).amount.amount_str for i in ids] == ["9.00"] * 5
    assert sorted(await items_of(shop, rest.id)) == ids[2:]
    assert await run_history(services, first.id) == {ids[0]: 1, ids[1]: 1}


async def test_a_dry_run_records_every_would_be_outcome_and_changes_nothing(services):
    shop, ids = await three_segment_shop(services)
    before = await shop.states(list(ids.values()))
    dry = await shop.run(THREE_SEGMENTS, dry_run=True)
    assert (dry.status, dry.dry_run, dry.applied, dry.processed) == ("COMPLETED", True, 6, 6)
    after = await shop.states(list(ids.values()))
    assert {k: s.version for k, s in before.items()} == {k: s.version for k, s in after.items()}
    assert await run_history(services, dry.id) == {}
    item = next(i for i in (await shop.bulk.items(dry.id, first=10, after=None, outcome=None)).items)
    assert item.changes  # what would have changed
    # a dry run does not count as done: the real run still takes everyone
    assert (await shop.run(THREE_SEGMENTS)).applied == 6
    with pytest.raises(RebillError) as refused:
        await shop.bulk.revert(ADMIN, dry.id)
    assert refused.value.code == "INVALID_STATUS"


async def test_a_subscription_changed_after_the_preview_is_a_conflict_not_overwritten(services, clock):
    shop = await Shop(services).open()
    ids = [await shop.subscribe("10.00") for _ in range(3)]
    preview = await shop.bulk.preview(CUT)
    clock.set(DEFAULT_NOW + timedelta(hours=1))
    await shop.do("set_metadata", ids[1], metadata={"note": "agent changed it"})

    run = await shop.run(CUT, as_of=preview.previewed_at)
    assert (run.applied, run.conflicts) == (2, 1)
    assert (await items_of(shop, run.id))[ids[1]] == ("CONFLICT", "CONFLICT")
    changed = await shop.state(ids[1])
    assert (changed.amount.amount_str, changed.metadata) == ("10.00", {"note": "agent changed it"})


async def test_cancel_stops_a_run_after_the_current_chunk(services, engine, settings, clock):
    small = Services(engine, replace(settings, bulk_chunk_size=2), clock)
    shop = await Shop(small).open()
    ids = [await shop.subscribe("10.00") for _ in range(8)]
    run = await shop.bulk.start(OPERATOR, CUT)
    reports = []

    async def cancel_after_first(view):
        reports.append(view.processed)
        if len(reports) == 1:
            await shop.bulk.cancel(OPERATOR, run.id)

    assert await process_run(small, run.id, on_chunk=cancel_after_first) == "CANCELLED"
    view = await shop.bulk.get(run.id)
    assert view.status == "CANCELLED" and view.finished_at is not None
    assert 0 < view.processed < 8 and view.processed % 2 == 0
    changed = [i for i in ids if (await shop.state(i)).amount.amount_str == "9.00"]
    assert changed == ids[: view.processed]

    queued = await shop.bulk.start(OPERATOR, CUT)
    assert (await shop.bulk.cancel(OPERATOR, queued.id)).status == "CANCELLED"
    await process_queued_runs(small)
    assert (await shop.bulk.get(queued.id)).processed == 0


WORKER = """
import asyncio, sys
from rebill.bulk.runner import process_run
from rebill.config import Settings
from rebill.db.engine import make_engine
from rebill.services.runtime import Services

async def main():
    settings = Settings.from_env()
    services = Services(make_engine(settings.database_url), settings)

    async def slowly(view):
        print(view.processed, flush=True)
        await asyncio.sleep(0.3)

    await process_run(services, int(sys.argv[1]), on_chunk=slowly)

asyncio.run(main())
"""


async def test_a_run_whose_worker_dies_resumes_and_changes_every_subscription_exactly_once(services, database_url):
    shop = await Shop(services).open()
    ids = [await shop.subscribe("10.00") for _ in range(12)]
    run = await shop.bulk.start(OPERATOR, CUT)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REBILL_NOW": DEFAULT_NOW.isoformat(),
        "REBILL_BULK_CHUNK_SIZE": "2",
    }
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WORKER, str(run.id), env=env, stdout=asyncio.subprocess.PIPE
    )
    assert worker.stdout is not None
    while True:  # let it commit a few chunks, then kill it without warning
        line = await asyncio.wait_for(worker.stdout.readline(), timeout=30)
        if int(line) >= 4:
            break
    worker.send_signal(signal.SIGKILL)
    await worker.wait()
    killed_at = await shop.bulk.get(run.id)
    assert killed_at.status == "RUNNING" and 4 <= killed_at.processed < 12

    for _ in range(50):  # the database notices the dead connection and frees the run
        if await process_queued_runs(services):
            break
        await asyncio.sleep(0.1)
    done = await shop.bulk.get(run.id)
    assert (done.status, done.processed, done.applied) == ("COMPLETED", 12, 12)
    assert await run_history(services, run.id) == dict.fromkeys(ids, 1)
    states = await shop.states(ids)
    assert {s.amount.amount_str for s in states.values()} == {"9.00"}
    assert {s.version for s in states.values()} == {2}
    async with services.sessions() as session:
        assert (await session.execute(select(func.count()).where(ITEMS.c.run_id == run.id))).scalar_one() == 12


async def test_revert_puts_back_what_nobody_changed_since_and_reports_the_rest(services, clock):
    shop = await Shop(services).open()
    ids = [await shop.subscribe("10.00") for _ in range(3)]
    plan = {
        "segments": [
            {"name": "all", "actions": [{"adjustPrice": {"percent": "-10"}}, {"applyCoupon": {"code": "FIVER"}}]}
        ]
    }
    run = await shop.run(plan)
    assert run.applied == 3
    clock.set(DEFAULT_NOW + timedelta(hours=2))
    await shop.do("set_metadata", ids[1], metadata={"vip": True})

    result = await shop.bulk.revert(ADMIN, run.id)
    assert result.reverted == 2
    assert [i.subscription_id for i in result.not_reverted] == [ids[1]]
    assert result.not_reverted[0].reason.startswith("NOT_REVERTED")
    assert result.run.status == "REVERTED" and result.run.reverted_at is not None

    for sid in (ids[0], ids[2]):
        state = await shop.state(sid)
        assert (state.amount.amount_str, state.coupons, state.version) == ("10.00", (), 3)
        last = (await shop.history(sid))[-1]
        assert (last.action, last.actor, last.bulk_run_id) == ("bulk_revert", ADMIN.name, run.id)
        assert {c["field"]: c["after"] for c in last.changes}["amount"] == "10.00"
    kept = await shop.state(ids[1])
    assert (kept.amount.amount_str, [c.coupon.code for c in kept.coupons]) == ("4.00", ["FIVER"])
    assert await items_of(shop, run.id) == {
        ids[0]: ("REVERTED", None),
        ids[1]: ("APPLIED", "NOT_REVERTED"),
        ids[2]: ("REVERTED", None),
    }
    # what was reverted is no longer "done": the plan can run again on it
    assert (await shop.run(plan)).applied == 2
    with pytest.raises(RebillError):
        await shop.bulk.revert(ADMIN, run.id)


async def test_a_plan_raising_prices_without_consent_is_refused_per_subscription(services):
    shop = await Shop(services).open()
    ids = [await shop.subscribe(p) for p in ("10.00", "20.00")]
    raise_ = {"segments": [{"name": "all", "actions": [{"adjustPrice": {"percent": "5"}}]}]}
    run = await shop.run(raise_)
    assert (run.status, run.applied, run.skipped) == ("COMPLETED", 0, 2)
    assert await items_of(shop, run.id) == {
        ids[0]: ("SKIPPED", "CONSENT_REQUIRED"),
        ids[1]: ("SKIPPED", "CONSENT_REQUIRED"),
    }
    assert [(await shop.state(i)).amount.amount_str for i in ids] == ["10.00", "20.00"]
    assert await run_history(services, run.id) == {}


async def test_a_malformed_plan_never_becomes_a_run(services):
    shop = await Shop(services).open()
    with pytest.raises(RebillError) as refused:
        await shop.bulk.start(OPERATOR, {"segments": [{"name": "x", "actions": [{"adjustPrice": {}}]}], "limit": 0})
    assert len(refused.value.errors) == 2  # type: ignore[attr-defined]
    async with services.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(t.table_of(t.BulkRun)))).scalar_one() == 0


async def test_revert_brings_back_a_removed_coupon_and_the_old_prices(services):
    shop = await Shop(services).open()
    sid = await shop.subscribe(items=[("coffee", "5.00", 2), ("tea", "3.00", 1)])
    original = await shop.coupon(sid, "TENOFF")
    plan = {
        "segments": [
            {"name": "all", "actions": [{"removeCoupon": {"code": "TENOFF"}}, {"setQuantity": {"quantity": 1}}]}
        ]
    }
    run = await shop.run(plan)
    changed = await shop.state(sid)
    assert (changed.coupons, [i.quantity for i in changed.items]) == ((), [1, 1])

    await shop.bulk.revert(ADMIN, run.id)
    restored = await shop.state(sid)
    assert [(c.id, c.coupon.code) for c in restored.coupons] == [(original.coupons[0].id, "TENOFF")]
    assert [i.quantity for i in restored.items] == [2, 1]
    assert restored.amount == original.amount
