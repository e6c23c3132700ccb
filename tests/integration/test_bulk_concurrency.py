"""Runs of one plan that overlap change each subscription once: two operators, or a new run beside a resumed one.

The runs are real processes (``rebill bulk run``, and a worker that dies and
one that resumes it). To make them meet on the same rows every time, the test
holds every subscription's row lock until both are waiting for it, then lets
them go at once.
"""

import asyncio
import json
import os
import signal
import sys
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from rebill.db import tables as t
from tests.conftest import DEFAULT_NOW
from tests.integration.test_bulk_support import OPERATOR, Shop

pytestmark = pytest.mark.slow

SHIFT = {"segments": [{"name": "all", "actions": [{"shiftNextRenewal": {"unit": "DAY", "count": 14}}]}]}
HISTORY = t.table_of(t.HistoryEntry)
RUNS = t.table_of(t.BulkRun)
ITEMS = t.table_of(t.BulkRunItem)
SUBSCRIPTIONS = 24


def environment(database_url: str, chunk: int) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REBILL_NOW": DEFAULT_NOW.isoformat(),
        "REBILL_BULK_CHUNK_SIZE": str(chunk),
        "COLUMNS": "200",
    }


async def cli(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from rebill.cli import main; main()",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def finished(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode or 0, out.decode()


class RowGate:
    """Holds every subscription's row lock in a transaction of its own until ``release``."""

    def __init__(self, engine) -> None:
        self.engine = engine

    async def __aenter__(self) -> "RowGate":
        self.conn = await self.engine.connect()
        self.tx = await self.conn.begin()
        await self.conn.execute(text("SELECT id FROM subscriptions ORDER BY id FOR UPDATE"))
        return self

    async def wait_for_waiters(self, count: int, *procs: asyncio.subprocess.Process) -> None:
        """Until ``count`` other transactions wait for a subscription's row lock."""
        async with self.engine.connect() as probe:
            for _ in range(600):
                for proc in procs:
                    if proc.returncode is not None:
                        code, out = await finished(proc)
                        raise AssertionError(f"a run ended before it met the other one ({code}):\n{out}")
                waiting = (
                    await probe.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                            "AND datname = current_database() AND pid <> pg_backend_pid()"
                        )
                    )
                ).scalar_one()
                await probe.commit()  # the next look is a fresh one: activity is read once per transaction
                if waiting >= count:
                    return
                await asyncio.sleep(0.1)
        outs = []
        for proc in procs:
            proc.kill()
            outs.append(await finished(proc))
        raise AssertionError(f"{count} runs never waited for the subscriptions: {outs}")

    async def release(self) -> None:
        if self.tx.is_active:
            await self.tx.commit()

    async def __aexit__(self, *exc: object) -> None:
        await self.release()
        await self.conn.close()


async def shop_of(services) -> tuple[Shop, list[int]]:
    shop = await Shop(services).open()
    return shop, [await shop.subscribe("10.00") for _ in range(SUBSCRIPTIONS)]


async def assert_each_changed_once(services, shop: Shop, ids: list[int], originals: dict[int, object]) -> None:
    """One history entry of the plan per subscription, version 2, and the date moved by 14 days, not 28."""
    async with services.sessions() as session:
        entries = dict(
            (
                await session.execute(
                    select(HISTORY.c.subscription_id, func.count())
                    .where(HISTORY.c.bulk_run_id.is_not(None))
                    .group_by(HISTORY.c.subscription_id)
                )
            ).all()
        )
        applied = dict(
            (
                await session.execute(
                    select(ITEMS.c.subscription_id, func.count())
                    .where(ITEMS.c.outcome == "APPLIED")
                    .group_by(ITEMS.c.subscription_id)
                )
            ).all()
        )
    assert entries == dict.fromkeys(ids, 1)
    assert applied == dict.fromkeys(ids, 1)
    states = await shop.states(ids)
    assert {sid: s.version for sid, s in states.items()} == dict.fromkeys(ids, 2)
    assert {sid: s.next_renewal_date for sid, s in states.items()} == {
        sid: originals[sid] + timedelta(days=14)  # type: ignore[operator]
        for sid in ids
    }


async def runs(services) -> list[object]:
    async with services.sessions() as session:
        return list(await session.execute(select(RUNS).order_by(RUNS.c.id)))


async def test_two_runs_of_one_plan_started_at_once_change_every_subscription_once(
    services, engine, database_url, tmp_path
):
    shop, ids = await shop_of(services)
    originals = {sid: s.next_renewal_date for sid, s in (await shop.states(ids)).items()}
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(SHIFT))
    env = environment(database_url, chunk=4)

    async with RowGate(engine) as gate:
        first = await cli(env, "bulk", "run", str(plan))
        second = await cli(env, "bulk", "run", str(plan))
        await gate.wait_for_waiters(2, first, second)
        await gate.release()
        (code1, out1), (code2, out2) = await finished(first), await finished(second)

    assert (code1, code2) == (0, 0), out1 + out2
    assert "COMPLETED" in out1 and "COMPLETED" in out2
    await assert_each_changed_once(services, shop, ids, originals)
    done = await runs(services)
    assert len(done) == 2 and sum(r.applied for r in done) == SUBSCRIPTIONS
    assert all(r.status == "COMPLETED" for r in done)
    # what one run found done by the other is reported, naming that run
    async with services.sessions() as session:
        skipped = list(await session.execute(select(ITEMS).where(ITEMS.c.outcome == "SKIPPED")))
    for item in skipped:
        other = next(r.id for r in done if r.id != item.run_id)
        assert item.reason.startswith(f"ALREADY_APPLIED: bulk run {other} of the same plan")


KILLABLE = """
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

# What ``rebill serve`` does beside the API: work every queued run, and resume every running one whose worker
# is gone, until the run given is finished.
RESUMER = """
import asyncio, sys
from rebill.bulk.runner import process_queued_runs
from rebill.bulk.runs import BulkService
from rebill.config import Settings
from rebill.db.engine import make_engine
from rebill.services.runtime import Services

async def main():
    settings = Settings.from_env()
    services = Services(make_engine(settings.database_url), settings)
    while not (await BulkService(services).get(int(sys.argv[1]))).finished:
        await process_queued_runs(services)
        await asyncio.sleep(0.1)

asyncio.run(main())
"""


async def test_a_run_started_while_a_killed_run_of_the_plan_resumes_changes_nothing_twice(
    services, engine, database_url, tmp_path
):
    shop, ids = await shop_of(services)
    originals = {sid: s.next_renewal_date for sid, s in (await shop.states(ids)).items()}
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(SHIFT))
    env = environment(database_url, chunk=2)

    killed = await shop.bulk.start(OPERATOR, SHIFT)
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", KILLABLE, str(killed.id), env=env, stdout=asyncio.subprocess.PIPE
    )
    assert worker.stdout is not None
    while True:  # a few chunks committed, then killed without warning
        line = await asyncio.wait_for(worker.stdout.readline(), timeout=60)
        if int(line) >= 4:
            break
    worker.send_signal(signal.SIGKILL)
    await worker.wait()
    at_kill = await shop.bulk.get(killed.id)
    assert at_kill is not None and at_kill.status == "RUNNING" and at_kill.processed < SUBSCRIPTIONS

    async with RowGate(engine) as gate:
        resumer = await asyncio.create_subprocess_exec(
            sys.executable, "-c", RESUMER, str(killed.id), env=env, stdout=asyncio.subprocess.PIPE
        )
        second = await cli(env, "bulk", "run", str(plan))
        await gate.wait_for_waiters(2, resumer, second)
        await gate.release()
        code, out = await finished(second)
        await finished(resumer)

    assert code == 0, out
    assert f"bulk run {killed.id} of the same plan is RUNNING" in out  # the operator is told
    await assert_each_changed_once(services, shop, ids, originals)
    done = await runs(services)
    assert [r.status for r in done] == ["COMPLETED", "COMPLETED"]
    assert sum(r.applied for r in done) == SUBSCRIPTIONS
