"""Each client's bucket of refusals: it empties one refusal at a time and refills with time."""

from __future__ import annotations

import pytest

from rebill.http import refusals
from rebill.http.refusals import RefusalBuckets, _identities


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_client_may_be_refused_as_often_as_its_bucket_holds_then_waits_for_a_refill():
    clock = Clock()
    buckets = RefusalBuckets(3, 0.5, clock)
    for _ in range(3):
        assert buckets.wait("key:a") == 0
        buckets.take("key:a")
    assert buckets.wait("key:a") == pytest.approx(2.0)  # one refusal flows back every 2 s
    clock.now += 1.5
    assert buckets.wait("key:a") == pytest.approx(0.5)
    clock.now += 0.5
    assert buckets.wait("key:a") == 0


def test_clients_have_buckets_of_their_own():
    buckets = RefusalBuckets(1, 1.0, Clock())
    buckets.take("key:a")
    assert buckets.wait("key:a") > 0
    assert buckets.wait("key:b") == 0
    assert buckets.wait("address:127.0.0.1") == 0


def test_a_bucket_never_fills_past_its_size_nor_goes_below_empty():
    clock = Clock()
    buckets = RefusalBuckets(2, 1.0, clock)
    buckets.take("key:a")
    clock.now += 3600
    assert buckets.level("key:a") == 2
    for _ in range(5):
        buckets.take("key:a")
    assert buckets.level("key:a") == 0
    clock.now += 1
    assert buckets.wait("key:a") == 0


def test_the_longest_unseen_clients_are_forgotten_first(monkeypatch):
    monkeypatch.setattr(refusals, "MAX_CLIENTS", 3)
    buckets = RefusalBuckets(1, 0.001, Clock())
    for name in ("a", "b", "c"):
        buckets.take(name)
    buckets.take("a")  # seen again: now the most recent
    buckets.take("d")
    assert buckets.wait("b") == 0  # forgotten, so full again
    assert all(buckets.wait(name) > 0 for name in ("a", "c", "d"))


@pytest.mark.parametrize(
    ("headers", "client", "expected_key", "expected_address"),
    [
        ([], ("10.0.0.1", 5), None, "address:10.0.0.1"),
        ([(b"authorization", b"Bearer  rbk_secret ")], ("10.0.0.1", 5), "digest", "address:10.0.0.1"),
        ([(b"authorization", b"Basic dXNlcjpwdw==")], None, None, "address:unknown"),
        ([(b"authorization", b"Bearer ")], ("::1", 5), None, "address:::1"),
    ],
)
def test_a_client_is_its_key_or_else_its_address(headers, client, expected_key, expected_address):
    key, address = _identities({"type": "http", "headers": headers, "client": client})
    assert address == expected_address
    if expected_key is None:
        assert key is None
    else:
        assert key is not None and key.startswith("key:") and "rbk_secret" not in key
