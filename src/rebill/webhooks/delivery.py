"""Sending deliveries: the loop ``rebill worker`` runs beside the renewal loop.

A worker claims due deliveries ``FOR UPDATE SKIP LOCKED`` in a short
transaction that writes its claim token and a lease (real time, 60 s,
well over the 15 s an attempt may take); it sends them with a few in
flight, claiming more as slots free up, and records each answer under its
token. Several worker processes therefore never send one delivery at the
same time, no transaction stays open while an endpoint takes its time (a
slow endpoint holds back only its own deliveries), and a worker that dies
mid-send leaves leases that expire, after which the deliveries are sent
again with the same ``webhook-id`` (receivers deduplicate on it). Only the
oldest pending delivery of a subscription for an endpoint is due: events of
one subscription arrive in the order they happened, and a delivery being
retried holds back the ones after it.

Deliveries go only to public addresses (``destinations``): ``new_client``
checks the address of every connection it opens and never follows a
redirect, and ``last_error`` holds the status and rebill's own words, never
what the receiver answered.

Retries follow the Standard Webhooks schedule, on rebill's clock (so
``REBILL_NOW`` moves them in sandboxes and tests); ``webhook-timestamp`` is
the real time of sending, since receivers check it against their own clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from sqlalchemy import text

from rebill.services.runtime import Services
from rebill.webhooks import events, signing
from rebill.webhooks.destinations import DestinationRefused, Resolver, url_refusal
from rebill.webhooks.transport import pinned_client

log = logging.getLogger("rebill.webhooks")

# The delay before each attempt: at once, then the spec's retry schedule.
SCHEDULE: tuple[timedelta, ...] = (
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
)
# Each retry waits up to this much longer than its step, so endpoints that
# failed together do not all come back at the same instant.
JITTER = 0.1
TIMEOUT_SECONDS = 15.0
IN_FLIGHT = 8
# Answers recorded per statement (a claim's lease covers the wait).
RECORD_EVERY = 32
POLL_SECONDS = 1.0
# How long a claim lasts (real time): a worker that died is taken over after it.
LEASE = timedelta(seconds=60)
# How long the previous secret keeps signing after a rotation.
ROTATION_OVERLAP = timedelta(hours=24)

_CLAIM = text(
    """
    WITH due AS (
        SELECT d.id
          FROM webhook_deliveries d
          JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled
         WHERE d.status = 'PENDING'
           AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= :now)
           AND (d.claimed_until IS NULL OR d.claimed_until < clock_timestamp())
           AND NOT EXISTS (
               SELECT 1 FROM webhook_deliveries p
                WHERE p.status = 'PENDING'
                  AND p.endpoint_id = d.endpoint_id
                  AND p.subscription_id = d.subscription_id
                  AND p.id < d.id)
         ORDER BY d.id
         LIMIT :limit
           FOR UPDATE OF d SKIP LOCKED
    )
    UPDATE webhook_deliveries d
       SET claim_token = :token, claimed_until = clock_timestamp() + make_interval(secs => :lease)
      FROM due, webhook_endpoints e, outbox o
     WHERE d.id = due.id AND e.id = d.endpoint_id AND o.id = d.outbox_id
    RETURNING d.id, d.event_id, d.event_type, d.round_attempts, d.endpoint_id,
              e.url, e.secret, e.previous_secret, e.previous_secret_expires_at,
              o.payload, o.created_at AS occurred_at
    """
)

_RECORD = text(
    """
    UPDATE webhook_deliveries d
       SET status = v.status,
           attempts = d.attempts + 1,
           round_attempts = v.round_attempts,
           next_attempt_at = v.next_attempt_at,
           last_status_code = v.status_code,
           last_error = v.error,
           last_attempt_at = :now,
           delivered_at = CASE WHEN v.status = 'SUCCEEDED' THEN :now ELSE d.delivered_at END,
           claim_token = NULL,
           claimed_until = NULL
      FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS text[]), CAST(:rounds AS int[]),
                  CAST(:next AS timestamptz[]), CAST(:codes AS int[]), CAST(:errors AS text[]))
           AS v(id, status, round_attempts, next_attempt_at, status_code, error)
     WHERE d.id = v.id AND d.claim_token = :token
    """
)

_RELEASE = text(
    """
    UPDATE webhook_deliveries SET claim_token = NULL, claimed_until = NULL
     WHERE claim_token = :token AND id = ANY (CAST(:ids AS bigint[]))
    """
)

_DISABLE = text(
    """
    UPDATE webhook_endpoints
       SET enabled = false, disabled_reason = :reason, updated_at = :now
     WHERE id = :id AND enabled
    """
)


@dataclass
class WebhookReport:
    """What one pass did."""

    attempted: int = 0
    succeeded: int = 0
    retrying: int = 0
    failed: int = 0
    endpoints_disabled: int = 0

    def summary(self) -> str:
        text = (
            f"webhooks: {self.attempted} sent, {self.succeeded} accepted, "
            f"{self.retrying} to retry, {self.failed} failed"
        )
        if self.endpoints_disabled:
            text += f", {self.endpoints_disabled} endpoint(s) disabled after 410 Gone"
        return text

    def add(self, other: WebhookReport) -> None:
        self.attempted += other.attempted
        self.succeeded += other.succeeded
        self.retrying += other.retrying
        self.failed += other.failed
        self.endpoints_disabled += other.endpoints_disabled


@dataclass(frozen=True, slots=True)
class Answer:
    """What the endpoint did with one attempt."""

    status_code: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410


def retry_delay(round_attempts: int, rng: random.Random | None = None) -> timedelta | None:
    """The wait before the next attempt after ``round_attempts`` failed ones; None when none is left."""
    if round_attempts >= len(SCHEDULE):
        return None
    step = SCHEDULE[round_attempts]
    return step * (1 + (rng or random).uniform(0, JITTER))


def signing_secrets(row: Any, now: datetime) -> list[str]:
    """The endpoint's secret, and its previous one while the rotation overlap lasts."""
    found = [row.secret]
    expires = row.previous_secret_expires_at
    if row.previous_secret and expires is not None and expires > now:
        found.append(row.previous_secret)
    return found


def _payload(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str | bytes):
        loaded: dict[str, Any] = orjson.loads(raw)
        return loaded
    return dict(raw or {})


async def _send(client: httpx.AsyncClient, row: Any, now: datetime) -> Answer:
    content = events.body(row.event_type, row.occurred_at, _payload(row.payload))
    # The real time of sending, not rebill's clock: receivers compare it with theirs.
    sent_at = datetime.now(UTC)
    headers = signing.headers(signing_secrets(row, now), row.event_id, sent_at, content)
    limit = client.timeout.read or TIMEOUT_SECONDS
    refusal = url_refusal(urlsplit(row.url))
    if refusal:  # an endpoint stored before the rules were
        return Answer(None, f"refused: {refusal}")
    started = time.monotonic()
    try:
        # httpx's timeout bounds each read; this bounds the whole exchange (a slow drip too).
        async with asyncio.timeout(limit):
            response = await client.post(row.url, content=content, headers=headers, follow_redirects=False)
    except (httpx.TimeoutException, TimeoutError):
        return Answer(None, f"no answer within {limit:g} s")
    except DestinationRefused as exc:
        return Answer(None, f"refused: {exc}")
    except Exception as exc:  # an endpoint may fail in any way; it is retried like any failure
        return Answer(None, failure(exc))
    took = f"answered in {(time.monotonic() - started) * 1000:.0f} ms"
    if 200 <= response.status_code < 300:
        return Answer(response.status_code, None)
    # Only the status: the body is the receiver's, and it may be an internal service's.
    if 300 <= response.status_code < 400:
        return Answer(response.status_code, f"HTTP {response.status_code}, {took}; redirects are not followed")
    return Answer(response.status_code, f"HTTP {response.status_code}, {took}")


def failure(exc: Exception) -> str:
    """rebill's words for a failed exchange: what went wrong, never bytes the other side sent.

    A protocol error's message quotes what the peer answered (``illegal status
    line: b'SSH-2.0-…'``), so only connection errors, whose text comes from
    the operating system or TLS, keep their message.
    """
    name = type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return f"{name}: {exc}"[:300]
    if isinstance(exc, httpx.RemoteProtocolError | httpx.DecodingError):
        return f"{name}: the answer was not valid HTTP/1.1"
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return f"{name}: the connection broke during the exchange"
    return f"{name} during the exchange"


def new_client(
    timeout: float = TIMEOUT_SECONDS,
    in_flight: int = IN_FLIGHT,
    *,
    allow_private: bool = False,
    resolver: Resolver | None = None,
) -> httpx.AsyncClient:
    """The HTTP client of a delivery loop: 15 s to answer, no redirects followed, public addresses only.

    Every new connection resolves its host through ``resolver`` (the system's
    by default), checks each address, and connects to a checked one;
    ``allow_private`` (``REBILL_WEBHOOK_ALLOW_PRIVATE``) also lets loopback
    and private addresses through.
    """
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    return pinned_client(timeout, limits, allow_private=allow_private, resolver=resolver)


class _Pass:
    """One worker's pass: claims under one token, answers recorded as they come."""

    def __init__(self, services: Services, rng: random.Random | None) -> None:
        self.services = services
        self.rng = rng
        self.token = uuid.uuid4().hex
        self.report = WebhookReport()

    async def claim(self, size: int) -> tuple[datetime, list[Any]]:
        now = self.services.clock.now()
        async with self.services.sessions() as session, session.begin():
            params = {"now": now, "limit": size, "token": self.token, "lease": LEASE.total_seconds()}
            rows = list(await session.execute(_CLAIM, params))
        rows.sort(key=lambda r: r.id)
        return now, rows

    async def record(self, answered: list[tuple[Any, datetime, Answer]]) -> None:
        """Write the answers; retries are scheduled from when each delivery was claimed (rebill's clock)."""
        if not answered:
            return
        ids, statuses, rounds, nexts, codes, errors = [], [], [], [], [], []
        gone: dict[int, str] = {}
        report = self.report
        for row, now, answer in answered:
            round_attempts = row.round_attempts + 1
            next_at: datetime | None = None
            if answer.ok:
                status = "SUCCEEDED"
                report.succeeded += 1
            elif answer.gone:
                status = "FAILED"
                report.failed += 1
                gone[row.endpoint_id] = f"the endpoint answered 410 Gone on {now.isoformat(timespec='seconds')}"
            else:
                delay = retry_delay(round_attempts, self.rng)
                if delay is None:
                    status = "FAILED"
                    report.failed += 1
                else:
                    status = "PENDING"
                    next_at = now + delay
                    report.retrying += 1
                log.info("webhook %s to %s failed: %s", row.event_id, row.url, answer.error)
            ids.append(row.id)
            statuses.append(status)
            rounds.append(round_attempts)
            nexts.append(next_at)
            codes.append(answer.status_code)
            errors.append(answer.error)
        stamp = self.services.clock.now()
        async with self.services.sessions() as session, session.begin():
            params = {"now": stamp, "token": self.token, "ids": ids, "statuses": statuses, "rounds": rounds}
            await session.execute(_RECORD, {**params, "next": nexts, "codes": codes, "errors": errors})
            for endpoint_id, reason in gone.items():
                result: Any = await session.execute(_DISABLE, {"id": endpoint_id, "reason": reason, "now": stamp})
                report.endpoints_disabled += result.rowcount

    async def release(self, ids: list[int]) -> None:
        """Give back claims that were not sent (a pass stopped early), so another worker need not wait."""
        if ids:
            async with self.services.sessions() as session, session.begin():
                await session.execute(_RELEASE, {"token": self.token, "ids": ids})


async def deliver_due(
    services: Services,
    *,
    client: httpx.AsyncClient | None = None,
    in_flight: int = IN_FLIGHT,
    limit: int | None = None,
    stop: asyncio.Event | None = None,
    rng: random.Random | None = None,
    record_every: int = RECORD_EVERY,
) -> WebhookReport:
    """Send every delivery due as of rebill's clock, ``in_flight`` at a time, until none is left (or ``limit``).

    A delivery recorded as accepted makes the next event of its subscription
    due, so the pass ends only when a claim after the last record finds nothing.
    A ``client`` given must come from ``new_client``, which keeps to the destination rules.
    """
    work = _Pass(services, rng)
    report = work.report
    own = client is None
    http = client or new_client(in_flight=in_flight, allow_private=services.settings.webhook_allow_private)
    running: dict[asyncio.Task[Answer], tuple[Any, datetime]] = {}
    queued: list[tuple[Any, datetime]] = []
    answered: list[tuple[Any, datetime, Answer]] = []
    exhausted = False
    try:
        while True:
            stopping = stop is not None and stop.is_set()
            # Claims run ahead of the sends by at most one round, so they come in batches
            # while a claim still starts within its lease even behind slow endpoints.
            room = 2 * in_flight - len(running) - len(queued)
            if limit is not None:
                room = min(room, limit - report.attempted)
            if not stopping and not exhausted and room > 0 and (room >= in_flight or not running):
                now, rows = await work.claim(room)
                exhausted = not rows
                queued.extend((row, now) for row in rows)
                report.attempted += len(rows)
            while queued and len(running) < in_flight and not stopping:
                row, now = queued.pop(0)
                running[asyncio.create_task(_send(http, row, now))] = (row, now)
            if answered and (exhausted or not running):
                # Nothing else is due: record now, the next events of these subscriptions wait for it.
                await work.record(answered)
                answered = []
                exhausted = False
                continue
            if not running:
                break
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                row, now = running.pop(task)
                answered.append((row, now, task.result()))
            if len(answered) >= record_every:
                await work.record(answered)
                answered = []
                exhausted = False
    finally:
        if running or answered or queued:
            # Interrupted (or stopped): answers we have are recorded, other claims are given back.
            for task in running:
                task.cancel()
            unsent = [row.id for row, _ in [*running.values(), *queued]]
            with contextlib.suppress(Exception):
                await asyncio.shield(work.record(answered))
                await asyncio.shield(work.release(unsent))
        if own:
            await http.aclose()
    return report


async def run_forever(
    services: Services,
    stop: asyncio.Event,
    *,
    poll: float = POLL_SECONDS,
    on_report: Callable[[WebhookReport], Awaitable[None]] | None = None,
) -> None:
    """Deliver what is due, then wait ``poll`` seconds, until ``stop`` is set.

    A failing pass (the database away for a moment) is logged and tried
    again on the next poll, as the renewal loop does.
    """
    async with new_client(allow_private=services.settings.webhook_allow_private) as client:
        while not stop.is_set():
            try:
                report = await deliver_due(services, client=client, stop=stop)
            except Exception:  # the loop outlives a bad pass; the claim rolled back
                log.exception("webhook delivery pass failed")
                report = WebhookReport()
            if report.attempted and on_report is not None:
                await on_report(report)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll)
