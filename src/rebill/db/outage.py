"""A database outage, told apart from a bug, and waited out.

A server restart, a failover or a network cut makes every statement fail for
a while; the API answers 503 meanwhile and a long-running process (``rebill
worker``) waits and carries on where it stopped. A bug must not be mistaken
for an outage, or it would be retried forever instead of surfacing, so only
what says "the connection is gone" or "the server cannot serve now" counts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

#: SQLSTATEs of a server that is going, gone or not yet back: the connection exception class
#: (08…), shutdown by an administrator or after a crash, "starting up" or "shutting down", and
#: a full house of connections.
_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
#: What a driver says of a connection that died under it (asyncpg's InterfaceError says it this way).
_CLOSED = ("connection is closed", "connection was closed")
#: SQLAlchemy's code for "this connection was invalidated" (PendingRollbackError on its next use).
_INVALIDATED = "8s2b"


def is_database_outage(exc: BaseException) -> bool:
    """Whether an exception (or its cause) says the server cannot be reached, rather than a bug."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        if _says_outage(current):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def _says_outage(exc: BaseException) -> bool:
    # OSError covers refused and reset connections, a missing socket file, DNS, and timeouts.
    if isinstance(exc, OSError | sa_exc.DisconnectionError | sa_exc.TimeoutError):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.PendingRollbackError):
        return getattr(exc, "code", None) == _INVALIDATED
    sqlstate = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if isinstance(sqlstate, str) and (sqlstate.startswith("08") or sqlstate in _SQLSTATES):
        return True
    if isinstance(exc, asyncpg.InterfaceError | sa_exc.InterfaceError):
        # Only a closed connection: other interface errors (two operations at once on one
        # connection, too many arguments) are bugs.
        message = str(exc).lower()
        return any(words in message for words in _CLOSED)
    return False


def reason(exc: BaseException) -> str:
    """The driver's or the network's own words, in one short line."""
    root = exc
    while isinstance(root, sa_exc.DBAPIError) and root.orig is not None:
        root = root.orig
    while root.__cause__ is not None and not isinstance(root, asyncpg.PostgresError | OSError):
        root = root.__cause__
    words = " ".join(str(root).split())[:160]
    return f"{type(root).__name__}: {words}" if words else type(root).__name__


async def discard(conn: AsyncConnection) -> None:
    """Give up a connection that died: invalidated, the pool never hands it out again (its owner closes it)."""
    if not conn.closed and not conn.invalidated:
        await conn.invalidate()


def backoff(first: float, cap: float) -> Iterator[float]:
    """Exponential delays between attempts, ``first`` doubling up to ``cap`` seconds."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, cap)


class Outage:
    """One log line when the database goes, one when it is back: not one per retry.

    Shared by the loops of one process (renewals, webhooks), so whichever
    notices first says it, once. ``first`` and ``cap`` bound the delays
    between attempts while it lasts.
    """

    def __init__(
        self, logger: logging.Logger | None = None, *, on_return: str = "", first: float = 0.25, cap: float = 3.0
    ) -> None:
        self.log = logger or log
        self.on_return = on_return
        self.first = first
        self.cap = cap
        self.since: float | None = None

    @property
    def down(self) -> bool:
        return self.since is not None

    def lost(self, exc: BaseException) -> None:
        if self.since is not None:
            return
        self.since = time.monotonic()
        self.log.warning("database unavailable (%s); retrying, at most %g s apart", reason(exc), self.cap)

    def back(self) -> None:
        if self.since is None:
            return
        elapsed, self.since = time.monotonic() - self.since, None
        self.log.warning("database back after %.1f s%s", elapsed, f"; {self.on_return}" if self.on_return else "")


async def answers(engine: AsyncEngine, within: float = 5.0) -> bool:
    """Whether the database answers a round trip ``within`` seconds; False when it is out, a bug raises."""
    try:
        async with asyncio.timeout(within), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        if is_database_outage(exc):
            return False
        raise
    return True


async def is_outage_now(engine: AsyncEngine, exc: BaseException) -> bool:
    """An error that says "outage" while the database indeed does not answer.

    An error alone may mislead: a payment gateway's timeout is a
    ``TimeoutError`` too, and one connection may die while the server lives.
    """
    return is_database_outage(exc) and not await answers(engine)


async def wait_out(engine: AsyncEngine, error: BaseException, outage: Outage, stop: asyncio.Event) -> bool:
    """After ``error`` (an outage by its looks), wait until the database answers again.

    True once it is back from an outage (said once in ``outage``'s log);
    False when ``stop`` is set meanwhile, or when the database answers at
    once: one connection failed, not the server, and the caller carries on
    as usual. A failure that is not an outage while waiting is raised.
    """
    if not outage.down and await answers(engine):
        outage.log.warning("a database connection failed (%s); the database answers, carrying on", reason(error))
        return False
    outage.lost(error)
    for delay in backoff(outage.first, outage.cap):
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
            return False
        except TimeoutError:
            pass
        if await answers(engine):
            outage.back()
            return True
    raise AssertionError("unreachable")


class QuietOutage(logging.Filter):
    """For a loop that logs each failed pass with its traceback: an outage is said once, by ``outage``.

    Attached to that loop's logger; a record whose exception is not an
    outage goes through as it was.
    """

    def __init__(self, outage: Outage) -> None:
        super().__init__()
        self.outage = outage

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and is_database_outage(error):
            self.outage.lost(error)
            return False
        return True
