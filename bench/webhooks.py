"""Webhook throughput: N events delivered by two ``rebill worker --once`` processes to a local receiver.

    .venv/bin/python bench/webhooks.py [--events 10000] [--subscriptions 1000] [--workers 2]

Uses ``DATABASE_URL`` when set (a scratch database is created on that server
and dropped afterwards), otherwise a fresh embedded PostgreSQL in a
temporary directory. A receiver runs in a process of its own on a loopback
port and verifies every request's signature with ``standardwebhooks``.

The baseline is a bare ``httpx`` loop in one process posting the same
bodies with the same headers (signed beforehand), with as many requests in
flight as one worker has (more only slows a single httpx loop down). Both rates are measured by the
receiver, from its first request to its last, so process start-up counts
for neither. Prints deliveries per second, the baseline and the ratio
(target: at least 0.5), then checks that every event was delivered exactly
once, signed, in order per subscription.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from rebill.db.scratch import ScratchDatabase  # noqa: E402
from rebill.webhooks import delivery, events, signing  # noqa: E402
from rebill.webhooks.receiver import Received, Receiver, Reply  # noqa: E402

SEED_EVENTS = """
INSERT INTO outbox (kind, subscription_id, payload, created_at)
SELECT 'RENEWAL_RECEIPT', g % :subs + 1,
       jsonb_build_object('subscriptionId', g % :subs + 1, 'renewalId', g, 'seq', g, 'cycle', g / :subs + 1,
                          'amount', '19.99', 'currency', 'USD'),
       now()
  FROM generate_series(1, :n) AS g ORDER BY g
"""

CHECKS = {
    "deliveries not SUCCEEDED": "SELECT count(*) FROM webhook_deliveries WHERE status <> 'SUCCEEDED'",
    "deliveries sent more than once": "SELECT count(*) FROM webhook_deliveries WHERE attempts <> 1",
}


# -- the receiver process --------------------------------------------------------------


class TimedReceiver(Receiver):
    """Records when each request arrived and what it carried; answers 204."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__(secrets)
        self.log: list[tuple[float, str, Any, bool]] = []

    async def _answer(self, message: Received) -> Reply:
        data = message.event["data"]
        self.log.append(
            (time.perf_counter(), message.id, [data.get("subscriptionId"), data.get("seq")], message.verified)
        )
        return Reply(204)


def _write(path: str, content: str) -> None:
    """Whole or not at all: the bench polls for the file."""
    Path(path + ".tmp").write_text(content)
    os.replace(path + ".tmp", path)


async def serve(port_file: str, out_file: str, secret: str) -> None:
    receiver = TimedReceiver([secret])
    url = await receiver.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    _write(port_file, url)
    await stop.wait()
    _write(out_file, json.dumps(receiver.log))
    await receiver.stop()


# -- the bench -------------------------------------------------------------------------


async def scalar(engine: AsyncEngine, sql: str, **params: object) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(sql), params)).scalar_one())


def start_receiver(workdir: Path, secret: str) -> tuple[subprocess.Popen[str], str, Path]:
    port_file, out_file = workdir / "url", workdir / "received.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port_file), str(out_file), secret], env=env, text=True
    )
    for _ in range(200):
        if port_file.exists() and port_file.read_text():
            return proc, port_file.read_text(), out_file
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("the receiver did not start")


def stop_receiver(proc: subprocess.Popen[str], out_file: Path) -> list[tuple[float, str, Any, bool]]:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    log: list[tuple[float, str, Any, bool]] = [tuple(r) for r in json.loads(out_file.read_text())]  # type: ignore[misc]
    return log


async def bodies(engine: AsyncEngine, secret: str) -> list[tuple[bytes, dict[str, str]]]:
    """The same bodies the workers send, signed the same way (ids ``base_…`` so the receiver tells them apart)."""
    async with engine.connect() as conn:
        rows = list(await conn.execute(text("SELECT id, kind, payload, created_at FROM outbox ORDER BY id")))
    now = datetime.now(UTC)
    out = []
    for row in rows:
        content = events.body(events.EVENT_TYPES[row.kind], row.created_at, row.payload)
        out.append((content, signing.headers([secret], f"base_{row.id}", now, content)))
    return out


async def bare_loop(url: str, requests: list[tuple[bytes, dict[str, str]]], in_flight: int) -> None:
    """A bare httpx loop: ``in_flight`` tasks posting the prepared requests one after another."""
    queue = iter(requests)
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(timeout=15, limits=limits) as client:

        async def lane() -> None:
            for content, headers in queue:
                response = await client.post(url, content=content, headers=headers)
                response.raise_for_status()

        await asyncio.gather(*(lane() for _ in range(in_flight)))


def run_workers(url: str, workers: int) -> list[str]:
    # The receiver listens on a loopback port, which production refuses as a webhook destination.
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT / "src"), "REBILL_WEBHOOK_ALLOW_PRIVATE": "true"}
    env.pop("REBILL_NOW", None)
    command = [sys.executable, "-c", "from rebill.cli import main; main()", "worker", "--once", "--no-deliver"]
    procs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]
    outputs = []
    for proc in procs:
        stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"a worker failed (exit {proc.returncode}):\n{stderr}")
        outputs.append(stdout.strip())
    return outputs


def rate(log: list[tuple[float, str, Any, bool]]) -> tuple[int, float]:
    times = sorted(r[0] for r in log)
    return len(times), (times[-1] - times[0]) if len(times) > 1 else float("nan")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--subscriptions", type=int, default=1_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    scratch = ScratchDatabase("rebill_bench", os.environ.get("DATABASE_URL"))
    url = await scratch.create()
    engine = create_async_engine(url)
    workdir = Path(tempfile.mkdtemp(prefix="rebill-webhooks-bench-"))
    secret = signing.new_secret()
    receiver, hook_url, out_file = start_receiver(workdir, secret)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO webhook_endpoints (url, secret) VALUES (:url, :secret)"),
                {"url": hook_url, "secret": secret},
            )
            await conn.execute(text(SEED_EVENTS), {"n": args.events, "subs": args.subscriptions})
        n = await scalar(engine, "SELECT count(*) FROM webhook_deliveries")
        print(
            f"{args.events:,} outbox events over {args.subscriptions:,} subscriptions: {n:,} deliveries to {hook_url}"
        )

        in_flight = delivery.IN_FLIGHT  # one worker's; more in flight only slows one httpx loop down
        prepared = await bodies(engine, secret)
        await bare_loop(hook_url, prepared, in_flight)
        outputs = run_workers(url, args.workers)
        for number, output in enumerate(outputs, 1):
            print(f"worker {number}: {output}")
        log = stop_receiver(receiver, out_file)

        base_log = [r for r in log if r[1].startswith("base_")]
        sent_log = [r for r in log if not r[1].startswith("base_")]
        base_n, base_s = rate(base_log)
        sent_n, sent_s = rate(sent_log)
        base_rate, sent_rate = base_n / base_s, sent_n / sent_s
        print(
            f"baseline: a bare httpx loop, {in_flight} in flight: {base_n:,} posts in {base_s:.2f}s ({base_rate:,.0f}/s)"
        )
        print(f"rebill: {args.workers} workers: {sent_n:,} deliveries in {sent_s:.2f}s ({sent_rate:,.0f}/s)")
        ratio = sent_rate / base_rate
        print(f"ratio to the bare loop: {ratio:.2f} (target 0.50: {'met' if ratio >= 0.5 else 'NOT met'})")

        failures = 0
        for label, sql in CHECKS.items():
            count = await scalar(engine, sql)
            failures += count != 0
            print(f"  check: {label}: {count} {'ok' if count == 0 else 'FAILED'}")
        ids = [r[1] for r in sent_log]
        expected = {f"evt_{i}" for i in range(1, args.events + 1)}
        exact = len(ids) == len(set(ids)) and set(ids) == {f"evt_{r}" for r in range(1, args.events + 1)}
        failures += not exact
        print(
            f"  check: every event received exactly once: {len(set(ids)):,} ids, {len(ids):,} requests, expected {len(expected):,}: {'ok' if exact else 'FAILED'}"
        )
        unsigned = sum(1 for r in log if not r[3])
        failures += unsigned != 0
        print(f"  check: requests whose signature did not verify: {unsigned} {'ok' if unsigned == 0 else 'FAILED'}")
        last: dict[str, int] = {}
        out_of_order = 0
        for _, _, (sub, seq), _ in sorted(sent_log):
            out_of_order += last.get(sub, 0) > seq
            last[sub] = seq
        failures += out_of_order != 0
        print(
            f"  check: events received out of order within a subscription: {out_of_order} {'ok' if not out_of_order else 'FAILED'}"
        )
        return 1 if failures else 0
    finally:
        if receiver.poll() is None:
            receiver.kill()
        await engine.dispose()
        await scratch.drop()


def _interrupted(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # so the scratch database and server are removed


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        asyncio.run(serve(sys.argv[2], sys.argv[3], sys.argv[4]))
        sys.exit(0)
    signal.signal(signal.SIGTERM, _interrupted)
    sys.exit(asyncio.run(main()))
