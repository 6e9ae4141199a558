"""Connecting, and telling transient database failures from permanent ones.

Errors are classified by SQLSTATE, never by message text, with one exception
libpq forces on us. It gives no SQLSTATE for a failed connection attempt, so
there we use what it does know: whether its connection string parses at all (a
bad `sslmode` is permanent, exit 2), and whether a password was sent. A refused
connection, a DNS failure or a server still starting is retried until
CONNECT_TIMEOUT; a rejected password is not, because waiting will not fix it.
A server that is full (53300) answers after the password too: we recognise
PostgreSQL's own two English sentences for it, and retry. On a server whose
`lc_messages` is another language that case reads as a rejected login.

Once connected, a failure without SQLSTATE (a socket closed under us, a killed
proxy, a backend the OOM killer took) means the session is lost, and the work
restarts on a new one. Any other database error escaping our own queries is an
operator's problem (a missing privilege, a read-only server, a statement
timeout), reported by `refused` with its SQLSTATE and what to do.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import pq
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

from entrypoint.errors import DatabaseRefused, DatabaseUnreachable, Untrusted, UsageError
from entrypoint.logs import get_logger

APPLICATION_NAME = "entrypoint"
# Server answers that mean "not now": starting up / shutting down, too many connections.
_RETRY_CONNECT_STATES = frozenset({"57P03", "53300"})
# 53300 arrives after the password, without a SQLSTATE libpq would show us: PostgreSQL's words for it.
_SERVER_FULL = ("too many connections", "remaining connection slots are reserved")
# Failures that end a session but may be retried on a new one: admin shutdown,
# crash shutdown, "cannot connect now", and the whole connection-exception class.
_SESSION_LOST_STATES = frozenset({"57P01", "57P02", "57P03"})
# What a query names does not exist: undefined table, column, schema. A guard that meets one of these
# before the migrations reads what a pending migration may create. Not 42883 (undefined function): it is
# also "operator does not exist", a guard's own type mistake (`role = 1` on an enum), to be fixed, not waited for.
UNDEFINED_OBJECT_STATES = frozenset({"42P01", "42703", "3F000"})
_ADVICE = {
    "42501": "Grant this user the privilege the message names, or use a role that has it",
    "25006": "The server or the role is read-only (a replica, default_transaction_read_only): point "
    "MIGRATION_DATABASE_URL at the primary, with a role that can write",
    "57014": "A statement timeout (the role's statement_timeout?) or an administrator cancelled it: raise the "
    "timeout for this role, then redeploy",
}


def is_connect_transient(error: BaseException) -> bool:
    """True for failures to connect that waiting can fix."""
    if not isinstance(error, psycopg.OperationalError):
        return False
    state = error.sqlstate
    if state is not None:
        return state.startswith("08") or state in _RETRY_CONNECT_STATES
    pgconn = getattr(error, "pgconn", None)
    if pgconn is not None and (pgconn.used_password or pgconn.needs_password):
        return any(words in str(error) for words in _SERVER_FULL)
    return True


def is_session_lost(error: BaseException, conn: psycopg.Connection[Any] | None = None) -> bool:
    """True when the connection itself is gone, so work must restart on a new one."""
    if not isinstance(error, psycopg.OperationalError):
        return False
    state = error.sqlstate
    if state is None:
        return True  # libpq's own failure (a closed socket): no server answered with a SQLSTATE
    return state.startswith("08") or state in _SESSION_LOST_STATES or (conn is not None and conn.broken)


def describe(error: BaseException) -> Untrusted:
    """One line from a driver error: its first line, without libpq's 'connection failed:' prefix.

    `Untrusted`: libpq's text may quote the connection string, so the log pipeline scrubs it.
    """
    lines = str(error).strip().splitlines() or [type(error).__name__]
    text = " ".join(lines[0].split())
    for noise in ("connection failed: ", "connection is bad: "):
        text = text.replace(noise, "")
    return Untrusted(text)


def refused(error: psycopg.Error, doing: str) -> DatabaseRefused:
    """An operator's problem met while `doing` something (reading the ledger, ...), as its ❌ line."""
    state = error.sqlstate or ""
    advice = _ADVICE.get(state) or _ADVICE.get(state[:2], "Check the role's privileges and settings, then redeploy")
    return DatabaseRefused(
        "❌ The database refused {doing}: {error} (SQLSTATE {sqlstate}). Nothing was changed by it. {advice}",
        doing=doing,
        error=describe(error),
        sqlstate=state or "none",
        advice=advice,
    )


def _refuse_bad_conninfo(url: str) -> None:
    """A connection string libpq rejects before any network traffic (`sslmode=bogus`) is permanent: exit 2."""
    pgconn = pq.PGconn.connect_start(url.encode())
    try:
        if pgconn.status == pq.ConnStatus.BAD:
            message = pgconn.error_message.decode(errors="replace")
            raise UsageError(
                "❌ DATABASE_URL has a parameter libpq rejects: {reason}. Fix the connection string",
                reason=Untrusted(" ".join(message.split())),
            )
    finally:
        pgconn.finish()


def connect(url: str, *, timeout: float) -> psycopg.Connection[Any]:
    """An autocommit connection, retried with backoff for `timeout` seconds in all.

    The last attempt starts on the deadline; against a host that never answers it can add
    libpq's minimum connect timeout (2 s).

    Raises `DatabaseUnreachable` (exit 4) when the time is up or the failure is permanent,
    `UsageError` (exit 2) for a connection string libpq rejects.
    """
    log = get_logger()
    deadline = time.monotonic() + timeout
    checked: list[bool] = []

    def before_sleep(state: Any) -> None:
        error = state.outcome.exception()
        log.warning(
            "db.retrying",
            reason=describe(error),
            attempt=state.attempt_number,
            wait_s=round(state.upcoming_sleep, 1),
            left_s=max(0, round(deadline - time.monotonic())),
        )

    backoff = wait_exponential_jitter(initial=0.25, max=5, jitter=0.5)

    def wait(state: Any) -> float:
        # Never sleep past the deadline: the last wait ends on it, and one last attempt follows.
        return max(0.0, min(backoff(state), deadline - time.monotonic()))

    def attempt() -> psycopg.Connection[Any]:
        per_try = max(2, min(10, math.ceil(deadline - time.monotonic())))  # libpq's own minimum is 2 s
        try:
            conn = psycopg.connect(
                url,
                autocommit=True,
                application_name=APPLICATION_NAME,
                connect_timeout=per_try,
                prepare_threshold=None,  # one-shot queries; and poolers lose server-side prepares
            )
        except psycopg.OperationalError:
            if not checked:  # only a failure pays for this check
                checked.append(True)
                _refuse_bad_conninfo(url)
            raise
        # Our own queries must not be cancelled by a role's statement_timeout (a startup `options` would
        # save this round trip, but PgBouncer refuses that parameter). Migrations set their own later.
        conn.execute("SET statement_timeout = 0")
        return conn

    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait,
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
def read_only(url: str, *, timeout: float, doing: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection inside one READ ONLY transaction: nothing it runs can change the database."""
    with connect(url, timeout=timeout) as conn:
        try:
            with conn.transaction():
                conn.execute("SET TRANSACTION READ ONLY")
                yield conn
        except psycopg.Error as error:
            if is_session_lost(error, conn):
                raise DatabaseUnreachable(
                    "❌ Lost the database connection while {doing}: {reason}. Nothing was changed; run it again",
                    doing=doing,
                    reason=describe(error),
                    sqlstate=error.sqlstate,
                ) from None
            raise refused(error, doing) from None
