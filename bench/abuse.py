"""What hostile clients cost everyone else: a small query's median latency under the abuse corpus.

Starts ``rebill serve`` (uvicorn on 127.0.0.1) on a scratch database with a few
hundred seeded subscriptions, or on ``DATABASE_URL`` when it is set (a scratch
database is created on that server and dropped afterwards). One client sends a
small query again and again, first with nobody else talking to the server
(the baseline), then while other processes send every request of the abuse
corpus (``tests/api/abuse_corpus.py``) in a loop, with no key, a read key and
an admin key of their own. The server runs with its default limits, the
refusal throttle (``REBILL_REFUSAL_BUCKET``) among them; only the query-cost
bucket is widened, so that the small query itself is never throttled. Prints both medians and their ratio (the target is at most 2x),
and for comparison the same number of clients sending the small query itself.

    python bench/abuse.py [--seconds 10] [--attackers 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.api.abuse_corpus import CORPUS, SMALL_QUERY  # noqa: E402
from tests.api.live_server import REBILL, create_api_key, running_rebill  # noqa: E402

from rebill.config import Settings  # noqa: E402
from rebill.db.scratch import ScratchDatabase  # noqa: E402

TARGET = 2.0


def prepared(auth: dict[str, str]) -> list[dict[str, Any]]:
    """Every corpus request, encoded once: the attackers spend their time sending, not building."""
    requests = []
    for abuse in CORPUS:
        request = abuse.request(auth)
        if "json" in request:
            request["content"] = json.dumps(request.pop("json")).encode()
            request["headers"] = {**request["headers"], "Content-Type": "application/json"}
        requests.append(request)
    return requests


def ordinary(auth: dict[str, str]) -> list[dict[str, Any]]:
    """The small query itself: what the same number of well-behaved clients would send."""
    body = json.dumps({"query": SMALL_QUERY}).encode()
    return [{"method": "POST", "url": "/graphql", "content": body, "headers": {**auth, **JSON_HEADERS}}]


JSON_HEADERS = {"Content-Type": "application/json"}


def attacker(base_url: str, auth: dict[str, str], seconds: float, sent: Any, polite: bool) -> None:
    requests = ordinary(auth) if polite else prepared(auth)
    deadline = time.monotonic() + seconds
    count = 0
    with httpx.Client(base_url=base_url, timeout=60) as http:
        while time.monotonic() < deadline:
            for request in requests:
                with contextlib.suppress(httpx.HTTPError):
                    http.request(**request)
                count += 1
                if time.monotonic() >= deadline:
                    break
    with sent.get_lock():
        sent.value += count


def victim(base_url: str, auth: dict[str, str], seconds: float) -> list[float]:
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=base_url, timeout=60, headers=auth) as http:
        http.post("/graphql", json={"query": SMALL_QUERY})  # warm the connection and the caches
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = http.post("/graphql", json={"query": SMALL_QUERY})
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200 or "errors" in response.json():
                raise SystemExit(f"the small query failed: {response.status_code} {response.text[:200]}")
    return latencies


def measure(
    base_url: str, keys: dict[str, str], seconds: float, attackers: int, *, polite: bool = False
) -> tuple[list[float], int]:
    sent = multiprocessing.Value("i", 0)
    scopes: list[str | None] = [None, "read", "admin"]
    if polite:
        scopes = ["read"]
    processes = [
        multiprocessing.Process(
            target=attacker,
            args=(base_url, {"Authorization": f"Bearer {keys[s]}"} if s else {}, seconds + 1, sent, polite),
        )
        for s in (scopes[i % len(scopes)] for i in range(attackers))
    ]
    for process in processes:
        process.start()
    if processes:
        time.sleep(0.5)  # let the attack begin
    latencies = victim(base_url, {"Authorization": f"Bearer {keys['victim']}"}, seconds)
    for process in processes:
        process.join()
    return latencies, sent.value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measurement")
    parser.add_argument("--attackers", type=int, default=3, help="processes sending the abuse corpus")
    parser.add_argument("--subscriptions", type=int, default=300, help="seeded subscriptions")
    args = parser.parse_args()

    scratch = ScratchDatabase("rebill_bench_abuse", os.environ.get("DATABASE_URL"))
    url = asyncio.run(scratch.create())
    try:
        env = {**os.environ, "DATABASE_URL": url}
        subprocess.run([*REBILL, "seed", "--subscriptions", str(args.subscriptions)], env=env, check=True)
        defaults = Settings()
        with running_rebill(
            url,
            scopes=("read", "admin"),
            REBILL_LOG_LEVEL="ERROR",
            REBILL_REFUSAL_BUCKET=str(defaults.refusal_bucket),
            REBILL_REFUSAL_RESTORE=str(defaults.refusal_restore),
        ) as live:
            live.keys["victim"] = create_api_key(env, "read")  # its own key: it shares nothing with the attackers
            baseline, _ = measure(live.base_url, live.keys, args.seconds, 0)
            attacked, sent = measure(live.base_url, live.keys, args.seconds, args.attackers)
            busy, busy_sent = measure(live.base_url, live.keys, args.seconds, args.attackers, polite=True)
            healthy = httpx.get(f"{live.base_url}/healthz", timeout=10).status_code == 200
    finally:
        asyncio.run(scratch.drop())

    base_p50 = statistics.median(baseline) * 1000
    attacked_p50 = statistics.median(attacked) * 1000
    ratio = attacked_p50 / base_p50
    print(f"corpus: {len(CORPUS)} requests; {args.attackers} attacking processes sent {sent} in {args.seconds:.0f} s")
    print(f"small query alone:        p50 {base_p50:.1f} ms over {len(baseline)} requests")
    print(f"small query under attack: p50 {attacked_p50:.1f} ms over {len(attacked)} requests")
    busy_p50 = statistics.median(busy) * 1000
    print(
        f"for comparison, {args.attackers} clients sending the small query itself ({busy_sent} requests):"
        f" p50 {busy_p50:.1f} ms, {busy_p50 / base_p50:.2f}x"
    )
    print(
        f"ratio {ratio:.2f}x (target at most {TARGET:.0f}x); /healthz after the attack: {'up' if healthy else 'DOWN'}"
    )
    if ratio > TARGET or not healthy:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
