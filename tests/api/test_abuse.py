"""The abuse corpus against a real server: each item is refused or answered within a bound, whoever sends it,
and meanwhile ``/healthz`` and a small query from another client keep answering."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.api.abuse_corpus import CORPUS, SMALL_QUERY, Abuse
from tests.api.live_server import LiveRebill, running_rebill

#: Seconds any one hostile request may take, on a busy two-core machine.
BOUND = 5.0


@pytest.fixture(scope="module")
def live(database_url: str) -> Iterator[LiveRebill]:
    with running_rebill(database_url, scopes=("read", "admin")) as server:
        yield server


@pytest.mark.parametrize("abuse", CORPUS, ids=[a.name for a in CORPUS])
def test_each_abuse_is_refused_or_answered_within_a_bound(live, abuse: Abuse):
    with httpx.Client(base_url=live.base_url, timeout=30) as http:
        for scope in (None, "read", "admin"):
            started = time.perf_counter()
            response = http.request(**abuse.request(live.headers(scope)))
            elapsed = time.perf_counter() - started
            assert response.status_code < 500, (abuse.name, scope, response.status_code, response.text[:300])
            assert elapsed < BOUND, (abuse.name, scope, elapsed)
            assert "Internal error" not in response.text, (abuse.name, scope, response.text[:300])
            if scope is None and abuse.method == "POST":
                assert response.status_code in (401, 413), (abuse.name, response.status_code)
            if abuse.method == "GET" and scope is None:
                assert '"data"' not in response.text


@pytest.mark.slow
def test_others_are_answered_while_the_corpus_is_sent(live):
    stop = threading.Event()
    failures: list[str] = []

    def attack(scope: str | None) -> None:
        with httpx.Client(base_url=live.base_url, timeout=30) as http:
            while not stop.is_set():
                for abuse in CORPUS:
                    if stop.is_set():
                        return
                    try:
                        response = http.request(**abuse.request(live.headers(scope)))
                        if response.status_code >= 500:
                            failures.append(f"{abuse.name}: {response.status_code}")
                    except httpx.HTTPError as exc:
                        failures.append(f"{abuse.name}: {exc!r}")

    attackers = [threading.Thread(target=attack, args=(scope,)) for scope in (None, "read", "admin")]
    for thread in attackers:
        thread.start()
    latencies: list[float] = []
    try:
        with httpx.Client(base_url=live.base_url, timeout=30, headers=live.headers("read")) as victim:
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                started = time.perf_counter()
                health = victim.get("/healthz")
                small = victim.post("/graphql", json={"query": SMALL_QUERY})
                latencies.append(time.perf_counter() - started)
                assert health.status_code == 200
                assert small.status_code == 200 and "errors" not in small.json(), small.text
                time.sleep(0.05)
    finally:
        stop.set()
        for thread in attackers:
            thread.join(timeout=60)
    assert not failures, failures[:5]
    assert len(latencies) >= 5
    assert max(latencies) < BOUND, latencies
    assert statistics.median(latencies) < BOUND / 5, latencies
