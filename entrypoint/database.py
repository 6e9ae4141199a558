"""Connecting, and telling transient database failures from permanent ones.

Errors are classified by SQLSTATE, never by message text. libpq gives no
SQLSTATE for a failed connection attempt, so there we use what libpq does know:
whether a password was asked for. A refused connection, a DNS failure or a
server still starting is retried until CONNECT_TIMEOUT; a rejected password is
not, because waiting will not fix it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

from entrypoint.errors import DatabaseUnreachable, Untrusted
from entrypoint.logs import get_logger

APPLICATION_NAME = "entrypoint"
# Server answers that mean "not now": starting up / shutting down, too many connections.
_RETRY_CONNECT_STATES = frozenset({"57P03", "53300"})
# Failures that end a session but may be retried on a new one: admin shutdown,
# crash shutdown, "cannot connect now", and the whole connection-exception class.
_SESSION_LOST_STATES = frozenset({"57P01", "57P02", "57P03"})


def is_connect_transient(error: BaseException) -> bool:
    """True for failures to connect that waiting can fix."""
    if not isinstance(error, psycopg.OperationalError):
        return False
    state = error.sqlstate
    if state is not None:
        return state.startswith("08") or state in _RETRY_CONNECT_STATES
    pgconn = getattr(error, "pgconn", None)
    return not (pgconn is not None and (pgconn.used_password or pgconn.needs_password))


def is_session_lost(error: BaseException, conn: psycopg.Connection[Any] | None = None) -> bool:
    """True when the connection itself is gone, so work must restart on a new one."""
    if not isinstance(error, psycopg.OperationalError):
        return False
    state = error.sqlstate
    if state is not None and (state.startswith("08") or state in _SESSION_LOST_STATES):
        return True
    return conn is not None and conn.broken


def describe(error: BaseException) -> Untrusted:
    """One line from a driver error: its first line, without libpq's 'connection failed:' prefix.

    `Untrusted`: libpq's text may quote the connection string, so the log pipeline scrubs it.
    """
    lines = str(error).strip().splitlines() or [type(error).__name__]
    text = " ".join(lines[0].split())
    for noise in ("connection failed: ", "connection is bad: "):
        text = text.replace(noise, "")
    return Untrusted(text)


def connect(url: str, *, timeout: float) -> psycopg.Connection[Any]:
    """An autocommit connection, retried with backoff for up to `timeout` seconds.

    Raises `DatabaseUnreachable` (exit 4) when the time is up or the failure is permanent.
    """
    log = get_logger()
    deadline = time.monotonic() + timeout

    def before_sleep(state: Any) -> None:
        error = state.outcome.exception()
        log.warning(
            "db.retrying",
            reason=describe(error),
            attempt=state.attempt_number,
            wait_s=round(state.upcoming_sleep, 1),
            left_s=max(0, round(deadline - time.monotonic())),
        )

    def attempt() -> psycopg.Connection[Any]:
        per_try = max(2, min(10, round(deadline - time.monotonic())))
        return psycopg.connect(
            url,
            autocommit=True,
            application_name=APPLICATION_NAME,
            connect_timeout=per_try,
            prepare_threshold=None,  # one-shot queries; and poolers lose server-side prepares
        )

    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_exponential_jitter(initial=0.25, max=5, jitter=0.5),
        retry=retry_if_exception(is_connect_transient),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(attempt)
    except psycopg.Error as error:
        if is_connect_transient(error):
            raise DatabaseUnreachable(
                "❌ Database unreachable after {timeout:g}s: {reason}. Check DATABASE_URL's host and port, that "
                "the database is up, and raise CONNECT_TIMEOUT if it is slow to start",
                timeout=timeout,
                reason=describe(error),
                sqlstate=error.sqlstate,
            ) from None
        raise DatabaseUnreachable(
            "❌ Database refused the connection: {reason}. Check the user, password and database name in DATABASE_URL",
            reason=describe(error),
            sqlstate=error.sqlstate,
        ) from None


@contextmanager
def read_only(url: str, *, timeout: float) -> Iterator[psycopg.Connection[Any]]:
    """A connection inside one READ ONLY transaction: nothing it runs can change the database."""
    with connect(url, timeout=timeout) as conn, conn.transaction():
        conn.execute("SET TRANSACTION READ ONLY")
        yield conn
