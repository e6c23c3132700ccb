"""The refusal throttle on a real server: an attacker sending the abuse corpus flat out is slowed to a trickle,
gets a JSON answer every time (oversized bodies included), and costs a careful client from the same address nothing."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import pytest

from tests.api.abuse_corpus import CORPUS, SMALL_QUERY
from tests.api.live_server import running_rebill

BUCKET = 5
RESTORE = 2.0
SECONDS = 4.0


@pytest.mark.slow
def test_a_flat_out_attacker_is_slowed_to_a_trickle_and_others_are_served(database_url):
    with running_rebill(
        database_url,
        scopes=("read", "admin"),
        REBILL_REFUSAL_BUCKET=str(BUCKET),
        REBILL_REFUSAL_RESTORE=str(RESTORE),
    ) as live:
        statuses: dict[str | None, Counter[int]] = {None: Counter(), "admin": Counter()}
        failures: list[str] = []
        stop = threading.Event()

        def attack(scope: str | None) -> None:
            with httpx.Client(base_url=live.base_url, timeout=30) as http:
                while not stop.is_set():
                    for abuse in CORPUS:
                        if stop.is_set():
                            return
                        try:
                            response = http.request(**abuse.request(live.headers(scope)))
                        except httpx.HTTPError as exc:
                            failures.append(f"{abuse.name}: {exc!r}")
                            continue
                        statuses[scope][response.status_code] += 1
                        if response.status_code >= 400 and "errors" not in response.json():
                            failures.append(f"{abuse.name}: {response.status_code} {response.text[:200]}")

        attackers = [threading.Thread(target=attack, args=(scope,)) for scope in statuses]
        for thread in attackers:
            thread.start()
        served = 0
        try:
            with httpx.Client(base_url=live.base_url, timeout=30, headers=live.headers("read")) as careful:
                deadline = time.monotonic() + SECONDS
                while time.monotonic() < deadline:
                    started = time.perf_counter()
                    small = careful.post("/graphql", json={"query": SMALL_QUERY})
                    assert small.status_code == 200 and "errors" not in small.json(), small.text
                    assert time.perf_counter() - started < 2.0
                    served += 1
        finally:
            stop.set()
            for thread in attackers:
                thread.join(timeout=60)

    assert not failures, failures[:5]
    assert served > 20
    for scope, seen in statuses.items():
        assert seen[429] > 0, (scope, seen)
        # Unthrottled, each attacker sends hundreds of requests in this time; throttled, it gets a full bucket,
        # then one refusal and one held answer per refusal that flows back (answers that are not refusals,
        # such as the GraphiQL page, come on top).
        refusals = sum(count for status, count in seen.items() if status >= 400)
        assert refusals <= BUCKET + 2 * RESTORE * SECONDS * 2 + 4, (scope, seen)
