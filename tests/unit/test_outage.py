"""A database outage told apart from a bug, and said once."""

from __future__ import annotations

import itertools
import logging
import socket

import asyncpg
import pytest
from sqlalchemy import exc as sa_exc

from rebill.db.outage import Outage, QuietOutage, backoff, is_database_outage, reason


class _DriverError(Exception):
    """An error of another driver, known only by its SQLSTATE."""

    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def _wrapped(orig: BaseException, kind: type[sa_exc.DBAPIError] = sa_exc.DBAPIError, **kwargs: bool) -> BaseException:
    error = kind("SELECT 1", {}, orig, **kwargs)
    error.__cause__ = orig
    return error


def _chained(outer: BaseException, cause: BaseException) -> BaseException:
    outer.__cause__ = cause
    return outer


OUTAGES = {
    "connection refused": ConnectionRefusedError(111, "Connect call failed"),
    "socket file gone": FileNotFoundError(2, "No such file or directory"),
    "host unknown": socket.gaierror(-2, "Name or service not known"),
    "connect timeout": TimeoutError(),
    "administrator shutdown 57P01": asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    "starting up 57P03": asyncpg.CannotConnectNowError("the database system is starting up"),
    "shutting down 57P03": asyncpg.CannotConnectNowError("the database system is shutting down"),
    "crash shutdown 57P02": asyncpg.CrashShutdownError("terminating connection because of crash of another process"),
    "connection gone 08003": asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    "too many connections 53300": asyncpg.TooManyConnectionsError("sorry, too many clients already"),
    "another driver's 08006": _DriverError("server closed the connection unexpectedly", "08006"),
    "asyncpg closed connection": asyncpg.InterfaceError("connection is closed"),
    "wrapped closed connection": _wrapped(asyncpg.InterfaceError("connection is closed"), sa_exc.InterfaceError),
    "invalidated connection": _wrapped(RuntimeError("lost"), sa_exc.OperationalError, connection_invalidated=True),
    "dead connection's pending rollback": sa_exc.PendingRollbackError(
        "Can't reconnect until invalid transaction is rolled back.", code="8s2b"
    ),
    "pool disconnection": sa_exc.DisconnectionError("connection lost"),
    "pool timeout": sa_exc.TimeoutError("QueuePool limit reached"),
    "cause of another error": _chained(RuntimeError("pass failed"), ConnectionResetError(104, "reset by peer")),
}

BUGS = {
    "arithmetic": ZeroDivisionError("division by zero"),
    "two operations on one connection": asyncpg.InterfaceError(
        "cannot perform operation: another operation is in progress"
    ),
    "too many arguments": asyncpg.InterfaceError("the number of query arguments cannot exceed 32767"),
    "session used after a failed flush": sa_exc.PendingRollbackError(
        "This Session's transaction has been rolled back due to a previous exception during flush.", code="7s2a"
    ),
    "unknown column": _wrapped(asyncpg.UndefinedColumnError('column "x" does not exist'), sa_exc.ProgrammingError),
    "duplicate key": _wrapped(asyncpg.UniqueViolationError("duplicate key value"), sa_exc.IntegrityError),
    "statement timeout 57014": asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
    "deadlock 40P01": asyncpg.DeadlockDetectedError("deadlock detected"),
    "closed connection object": sa_exc.ResourceClosedError("This Connection is closed"),
}


@pytest.mark.parametrize("error", OUTAGES.values(), ids=OUTAGES.keys())
def test_a_server_away_is_an_outage(error: BaseException) -> None:
    assert is_database_outage(error)


@pytest.mark.parametrize("error", BUGS.values(), ids=BUGS.keys())
def test_a_bug_is_not_an_outage(error: BaseException) -> None:
    assert not is_database_outage(error)


def test_the_reason_is_the_drivers_own_words_in_one_line() -> None:
    error = _wrapped(asyncpg.AdminShutdownError("terminating connection\n due to administrator command"))
    assert reason(error) == "AdminShutdownError: terminating connection due to administrator command"


def test_backoff_doubles_up_to_its_cap() -> None:
    assert list(itertools.islice(backoff(0.25, 3.0), 7)) == [0.25, 0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


def test_an_outage_is_said_once_when_it_starts_and_once_when_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    outage = Outage(logging.getLogger("rebill.test"), on_return="carrying on")
    with caplog.at_level(logging.WARNING, logger="rebill.test"):
        outage.back()  # nothing to say: it never went
        for _ in range(5):
            outage.lost(ConnectionRefusedError(111, "Connect call failed"))
        assert outage.down
        outage.back()
        outage.back()
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith("database unavailable (ConnectionRefusedError: [Errno 111] Connect call failed)")
    assert lines[1].startswith("database back after ") and lines[1].endswith("; carrying on")
    assert not outage.down


def test_a_loop_logging_each_failed_pass_says_an_outage_once_and_keeps_its_other_errors() -> None:
    outage = Outage(logging.getLogger("rebill.test"))
    quiet = QuietOutage(outage)

    def record(error: BaseException) -> logging.LogRecord:
        return logging.LogRecord("rebill.webhooks", logging.ERROR, __file__, 1, "pass failed", (), (None, error, None))

    assert not quiet.filter(record(ConnectionRefusedError(111, "Connect call failed")))
    assert outage.down
    assert quiet.filter(record(ZeroDivisionError("division by zero")))
