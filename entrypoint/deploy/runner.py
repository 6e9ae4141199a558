"""Sending one migration statement, as drizzle-orm sends it, and knowing what became of the transaction.

`Run` is what every unit runner needs at hand: the connection, its cursor, the
ledger, the limits and the tracker. `statement` sends one chunk (or what the
plan sends in its place), tells the heartbeat, turns a failure into a
`StatementFailed` stop, and, given `expect`, checks the transaction status
afterwards, so a COMMIT or ROLLBACK no parser saw can never end a transaction
unnoticed. Nothing here prints.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import psycopg
from psycopg.pq import TransactionStatus

from entrypoint.core.model import Migration, Mode
from entrypoint.db.blockers import HEARTBEAT_S
from entrypoint.db.connect import describe, is_session_lost
from entrypoint.db.ledger import Ledger
from entrypoint.deploy.outcome import StatementFailed, Stopped
from entrypoint.deploy.progress import Tracker

IN_TRANSACTION, IDLE = TransactionStatus.INTRANS, TransactionStatus.IDLE


@dataclass(frozen=True)
class Limits:
    """The per-statement timeouts, the retry budget and the guards of one deploy."""

    lock_timeout_ms: int
    statement_timeout_ms: int
    attempts: int
    watch_url: str
    guards: tuple[str, ...] = ()
    mode: Mode = "auto"
    ledger_was_empty: bool = False  # no row recorded anything when the run began: "already exists" means push
    heartbeat_s: float = HEARTBEAT_S
    debug: bool = False  # ENTRYPOINT_DEBUG: the heartbeat shows other sessions' query text (scrubbed, cut)


class Run(NamedTuple):
    """One unit's run: where its statements go, where it records, its limits, and where it reports."""

    conn: psycopg.Connection[Any]
    cur: psycopg.Cursor[Any]
    ledger: Ledger
    limits: Limits
    tracker: Tracker


def failed(error: psycopg.Error, migration: Migration, number: int) -> StatementFailed:
    """The stop for statement `number` of `migration`, refused by the server with `error`."""
    message = error.diag.message_primary or describe(error)
    return StatementFailed(migration, number, str(message), error.sqlstate)


@contextmanager
def on_statement(run: Run, migration: Migration, number: int, what: str = "") -> Iterator[None]:
    """While statement `number` of `migration` is at work: the heartbeat knows, and a refusal becomes a stop.

    Raises `Stopped` for what the server refused; lets a lost session through (the caller starts a new
    one and re-plans from the ledger).
    """
    run.tracker.running(migration, number, what)
    try:
        yield
    except psycopg.Error as error:
        if is_session_lost(error, run.conn):
            raise
        raise Stopped(failed(error, migration, number)) from error
    finally:
        run.tracker.idle()


def statement(
    run: Run,
    migration: Migration,
    number: int,
    expect: TransactionStatus | None = None,
    *,
    send: bytes | None = None,
    what: str = "",
) -> None:
    """Run one chunk (or `send` in its place); with `expect`, stop unless the transaction status is then that.

    Raises `Stopped` for a statement the server refused; lets a lost session through (the caller starts
    a new one and re-plans from the ledger).
    """
    with on_statement(run, migration, number, what):
        run.cur.execute(migration.statements[number - 1] if send is None else send)
    if expect is not None and run.conn.info.transaction_status != expect:
        # A COMMIT, ROLLBACK or BEGIN no parser saw moved the transaction under us: stop here, honestly.
        raise Stopped(StatementFailed(migration, number, None, None, retryable=False))


def rollback(conn: psycopg.Connection[Any]) -> None:
    """Roll back the open transaction, if there is one and the connection still works."""
    if not conn.broken and conn.info.transaction_status != IDLE:
        conn.execute(b"ROLLBACK")


def begin_sql(run: Run) -> bytes:
    """What opens the unit's transaction, as drizzle-orm's would be open."""
    # One snapshot for the whole transaction when guarded: only our own changes can move a guard.
    return b"BEGIN ISOLATION LEVEL REPEATABLE READ" if run.limits.guards else b"BEGIN"


def begin(run: Run) -> None:
    """Open the unit's transaction, as drizzle-orm's would be open."""
    run.cur.execute(begin_sql(run))


def elapsed_ms(started: float) -> int:
    """Milliseconds since `started` (a `time.monotonic()`)."""
    return round((time.monotonic() - started) * 1000)


def lock_timeout(conn: psycopg.Connection[Any], ms: int) -> None:
    """Set `lock_timeout` for the session, so a migration's own COMMIT cannot drop it."""
    conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{ms}ms",))
