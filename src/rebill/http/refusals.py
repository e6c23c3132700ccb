"""Clients whose requests keep being refused are slowed down, so that they cost everyone else little.

A partner's loop that resends a bad request as fast as it can, or a scanner
sending hostile documents, spends the server's time on answers nobody reads.
Each client has a bucket of ``REBILL_REFUSAL_BUCKET`` refusals that refills at
``REBILL_REFUSAL_RESTORE`` a second. A refused request takes one: any 4xx
answer, or a GraphQL request error (a document that does not parse or
validate, variables that cannot be coerced, a query over the limits). While a
client's bucket is empty its requests are not read at all: HTTP 429
``THROTTLED`` with ``Retry-After``, and the answer is held back until a refusal
has flowed back into the bucket (at most ``MAX_HOLD`` seconds), so a client
that ignores ``Retry-After`` waits instead of spinning. A client that sends
valid requests never notices: its answers, field errors among them, take
nothing, and neither does a browser asking for the GraphiQL page.

A client is its bearer key, or its address when it sends none. A request
with an unknown key is charged to the address (rotating made-up keys gains
nothing), and once the address's bucket is empty its 401 answers are held
back too; requests from that address with a valid key are not affected.
The address is the connection's peer: ``X-Forwarded-For`` counts only from
the proxies ``REBILL_FORWARDED_ALLOW_IPS`` names (none by default), so a
client cannot rotate the header to get a fresh bucket.

The buckets live in each API process's memory: they guard that process's
event loop, and cost no database round trip.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rebill.http.responses import error_response

#: The longest a throttled answer is held back, in seconds.
MAX_HOLD = 2.0
#: Answers held back at once; past this, throttled answers go out at once.
MAX_HELD = 1024
#: Clients remembered; the longest-unseen are forgotten first (a forgotten client starts with a full bucket).
MAX_CLIENTS = 10_000


class RefusalBuckets:
    """A leaky bucket of refusals per client, on a monotonic clock."""

    def __init__(self, size: int, restore: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = float(size)
        self.restore = restore
        self.clock = clock
        self._levels: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def level(self, client: str) -> float:
        entry = self._levels.get(client)
        if entry is None:
            return self.size
        level, at = entry
        return min(self.size, level + (self.clock() - at) * self.restore)

    def wait(self, client: str) -> float:
        """Seconds until ``client`` may be refused once more; 0 when it may now."""
        missing = 1.0 - self.level(client)
        if missing <= 0:
            return 0.0
        return missing / self.restore if self.restore > 0 else MAX_HOLD

    def take(self, client: str) -> None:
        level = self.level(client) - 1.0
        self._levels.pop(client, None)
        self._levels[client] = (max(level, 0.0), self.clock())
        while len(self._levels) > MAX_CLIENTS:
            self._levels.popitem(last=False)


def _identities(scope: Scope) -> tuple[str | None, str]:
    """The client's key (a digest of its bearer secret, never the secret) and its address."""
    secret = b""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, secret = value.strip().partition(b" ")
            if scheme.lower() != b"bearer":
                secret = b""
            break
    client = scope.get("client")
    address = f"address:{client[0] if client else 'unknown'}"
    secret = secret.strip()
    key = f"key:{hashlib.sha256(secret).hexdigest()[:32]}" if secret else None
    return key, address


def _wants_page(scope: Scope) -> bool:
    if scope["method"] != "GET":
        return False
    return any(name == b"accept" and b"text/html" in value for name, value in scope.get("headers", ()))


class RefusalThrottle:
    """Wraps the GraphQL endpoint: counts each client's refused requests and holds back a persistent offender."""

    def __init__(self, app: ASGIApp, *, size: int, restore: float, buckets: RefusalBuckets | None = None) -> None:
        self.app = app
        self.enabled = size > 0
        self.buckets = buckets or RefusalBuckets(size, restore)
        self.held = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.enabled:
            await self.app(scope, receive, send)
            return
        key, address = _identities(scope)
        client = key or address
        wait = self.buckets.wait(client)
        # The GraphiQL page is static, and what a person in a browser sees: it is always served.
        if wait > 0 and not (key is None and _wants_page(scope)):
            await self._throttled(scope, receive, send, client, wait)
            return
        status = 0

        async def watching(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if status == 401:  # an unknown key: the address pays, and waits once it has run out
                    await self._hold(self.buckets.wait(address))
            await send(message)

        state = scope.setdefault("state", {})
        await self.app(scope, receive, watching)
        if status == 401:
            self.buckets.take(address)
        elif 400 <= status < 500 or state.get("refused"):
            self.buckets.take(client)

    async def _hold(self, seconds: float) -> None:
        if seconds <= 0 or self.held >= MAX_HELD:
            return
        self.held += 1
        try:
            await asyncio.sleep(min(seconds, MAX_HOLD))
        finally:
            self.held -= 1

    async def _throttled(self, scope: Scope, receive: Receive, send: Send, client: str, wait: float) -> None:
        await self._hold(wait)
        retry = max(1, math.ceil(self.buckets.wait(client)))
        response = error_response(
            429,
            f"too many refused requests from this client: fix the request before sending it again (retry in {retry} s)",
            "THROTTLED",
            {"Retry-After": str(retry)},
        )
        await response(scope, receive, send)
