"""A `transaction` unit sent in pipelined batches: many statements to a round trip, each still accounted for.

drizzle-orm waits for each statement's result before it sends the next: one network round trip per
statement, about 3,000 for a large folder, which across a network is most of a deploy. Inside a
`transaction` unit no statement needs the one before it to have answered: they all commit together or
not at all. So the unit's BEGIN, its statements, each migration's ledger row and its COMMIT are sent in
psycopg's pipeline mode, and the answers read once per batch.

What ends a batch (the next one starts after it):
- a chunk the parser did not read (over 1 MiB, or refused): it could hold a COMMIT no parser saw, so it
  is sent on its own, and the transaction status is checked right after it (`runner.statement`);
- a chunk of several statements: a pipeline sends each statement in a message of its own, so such a
  chunk is sent on its own, whole, as drizzle-orm sends it;
- MIGRATION_GUARDS: their results before the COMMIT must be compared with those after BEGIN, so the
  statements are sent between two guard readings, and the COMMIT after the second.
Every other unit kind (`outside`, `concurrent`, `own`) runs statement by statement: each statement
commits on its own, is a resume point, waits on a catalogue check (a concurrent build's earlier attempt)
or is the file's own COMMIT.

What stays per statement:
- a failed statement is found among the answers: those before it answered, it did not (PostgreSQL
  runs nothing after an error until the batch ends). The ❌ line names it, its number and the server's
  message, as before; the unit rolls back, and a lock timeout retries it whole, as before;
- the heartbeat: which statement of a batch our backend runs is asked of the server (the watcher reads
  `pg_stat_activity`, `db.blockers`);
- DEPLOY_DEADLINE and SIGTERM: psycopg cancels the running statement and reads the answers up to it, so
  the statement cancelled is known too; an interruption between two sends cancels the batch itself;
- each migration's duration, from the server's clock: its ledger row returns it.

A rollback's `undo` unit deletes each migration's ledger row instead (`Ledger.forget`), which reads the
row it deletes: that step ends the batch, and the migration is timed by our own clock.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import psycopg
from psycopg.pq import TransactionStatus

from entrypoint.core.model import Migration
from entrypoint.core.sql import ChunkFacts
from entrypoint.core.transactions import Unit
from entrypoint.db.connect import is_session_lost
from entrypoint.deploy import guards
from entrypoint.deploy.outcome import COMMITTED, ROLLED_BACK, StatementFailed, Stopped
from entrypoint.deploy.runner import IDLE, IN_TRANSACTION, Run, begin_sql, failed, rollback, statement

Timings = list[tuple[Migration, int]]
COMMIT = b"COMMIT"
# The transaction's id, read in the first batch: if a statement ends the transaction in a way no parser saw,
# the server says how (committed or rolled back), and which ledger rows stand (`how_it_ended`).
TRANSACTION_ID = b"SELECT txid_current()"


class Step(NamedTuple):
    """One message of a batch: statement `number` of `migration`, its ledger row (`number` 0), or `own` SQL."""

    migration: Migration | None
    number: int = 0
    own: bytes = b""  # BEGIN or COMMIT


def pipelinable(chunk: ChunkFacts | None) -> bool:
    """Whether a chunk may go in a batch: read by the parser, and at most one statement."""
    return chunk is not None and chunk.parsed and chunk.statement_count <= 1


def _unanswered(steps: Sequence[Step], cursors: Sequence[psycopg.Cursor[Any]]) -> Step:
    """The first step without an answer: the one that failed or was cancelled (the server stops there)."""
    for step, cur in zip(steps, cursors, strict=False):
        if cur.pgresult is None:
            return step
    return steps[min(len(cursors), len(steps) - 1)]


def _execute(run: Run, cur: psycopg.Cursor[Any], step: Step) -> None:
    if step.migration is None:
        cur.execute(step.own)
    elif step.number:
        cur.execute(step.migration.statements[step.number - 1])
    else:
        run.ledger.record(cur, step.migration, clock=True)


def send(run: Run, steps: Sequence[Step]) -> list[psycopg.Cursor[Any]]:
    """Send `steps` in one pipeline and read their answers: one round trip. Returns each step's cursor.

    Raises `Stopped` for a migration statement the server refused (the run's tracker then at it);
    lets our own steps' errors and a lost session through; leaves the transaction as the batch left it.
    """
    run.tracker.pipelined([(s.migration, s.number) for s in steps if s.number and s.migration])
    cursors: list[psycopg.Cursor[Any]] = []
    try:
        with run.conn.pipeline():
            try:
                for step in steps:
                    cursors.append(run.conn.cursor())
                    _execute(run, cursors[-1], step)
            except BaseException as error:
                if not isinstance(error, psycopg.Error) and not run.conn.broken:
                    # Interrupted between two sends (a signal, the deadline): psycopg cancels only a
                    # statement it is waiting on, and ending the pipeline would wait for the whole batch.
                    with contextlib.suppress(psycopg.Error):
                        run.conn.cancel_safe(timeout=5)
                raise
    except psycopg.Error as error:
        if is_session_lost(error, run.conn):
            raise
        step = _unanswered(steps, cursors)
        if not (step.number and step.migration):
            raise  # BEGIN, a ledger row, COMMIT: `apply` says the database refused our own step
        run.tracker.move(migration=step.migration, number=step.number)
        raise Stopped(failed(error, step.migration, step.number)) from error
    except BaseException:  # a signal, DEPLOY_DEADLINE: the run stopped at the statement cancelled
        step = _unanswered(steps, cursors)
        if step.number and step.migration:
            run.tracker.move(migration=step.migration, number=step.number)
        raise
    finally:
        run.tracker.idle()
    return cursors


class _Batches:
    """A unit's steps, gathered until something ends the batch, then sent; each migration's time kept."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.steps: list[Step] = []
        self.timings: Timings = []  # each migration whose ledger step answered, and its time
        self.xid: int | None = None  # the transaction's id, once its batch answered
        self._recorded: datetime | None = None  # the server's clock when the last ledger row went in
        self._forgotten = time.monotonic()  # an undo unit's: when the last ledger row was deleted

    def flush(self, expect: TransactionStatus) -> None:
        """Send what is gathered; stop unless the transaction is then as `expect`ed."""
        if not self.steps:
            return
        steps, self.steps = self.steps, []
        cursors = send(self.run, steps)
        for step, cur in zip(steps, cursors, strict=True):
            if step.own == TRANSACTION_ID:
                found = cur.fetchone()
                self.xid = int(found[0]) if found else None
            row = cur.fetchone() if step.migration is not None and not step.number else None
            if step.migration is not None and row is not None:  # its ledger row: the time since BEGIN or the last
                started, recorded = row
                self.timings.append((step.migration, _ms(recorded - (self._recorded or started))))
                self._recorded = recorded
        if self.run.conn.info.transaction_status != expect:  # no parsed chunk can do this: a guard for the future
            state = self.run.tracker.state
            last = next((s for s in reversed(steps) if s.number and s.migration), None)
            migration, number = (last.migration, last.number) if last else (state.migration, state.number)
            if migration is not None:
                raise Stopped(StatementFailed(migration, number, None, None, retryable=False))

    def forget(self, migration: Migration) -> None:
        """An undo unit's ledger step: the row's deletion reads what it deletes, so it ends the batch."""
        self.flush(IN_TRANSACTION)
        self.run.ledger.forget(self.run.cur, migration)
        now = time.monotonic()
        self.timings.append((migration, round((now - self._forgotten) * 1000)))
        self._forgotten = now


def _ms(elapsed: timedelta) -> int:
    return round(elapsed.total_seconds() * 1000)


def how_it_ended(run: Run, stop: StatementFailed, xid: int, recorded: tuple[Migration, ...]) -> StatementFailed:
    """A statement ended the transaction itself: the server's status of it, and the ledger rows that stand."""
    try:
        row = run.cur.execute("SELECT txid_status(%s)", (xid,)).fetchone()
        standing = run.ledger.recorded(run.cur, recorded)
    except psycopg.Error as error:
        if is_session_lost(error, run.conn):
            raise
        return stop  # the line then says it is unknown, and how to find out
    status = str(row[0]) if row else ""
    ended = COMMITTED if status == "committed" else ROLLED_BACK if status == "aborted" else None
    return replace(stop, ended=ended, committed=standing if ended == COMMITTED else ())


def run_transaction(run: Run, unit: Unit) -> Timings:
    """BEGIN, each migration's statements and ledger row, COMMIT: pipelined, in as few round trips as allowed.

    Raises `Stopped` (a statement failed, a guard changed) after rolling back; lets our own steps' errors
    and a lost session through.
    """
    batches = _Batches(run)
    try:
        _send_unit(run, unit, batches)
    except Stopped as stopped:
        rollback(run.conn)
        stop = stopped.stop
        if isinstance(stop, StatementFailed) and stop.error is None and batches.xid is not None:
            recorded = tuple(m for m, _ in batches.timings)
            raise Stopped(how_it_ended(run, stop, batches.xid, recorded)) from None
        raise
    except BaseException:
        rollback(run.conn)
        raise
    return batches.timings


def _send_unit(run: Run, unit: Unit, batches: _Batches) -> None:
    """The unit's steps, batch by batch (what ends a batch: the module's docstring)."""
    checks = run.limits.guards
    batches.steps += [Step(None, own=begin_sql(run)), Step(None, own=TRANSACTION_ID)]
    if checks:  # one snapshot for the guards' two readings: BEGIN must have answered before the first
        batches.flush(IN_TRANSACTION)
        before = guards.results(run.cur, checks)
    for position, migration in enumerate(unit.migrations):
        chunks = unit.facts[position].chunks if position < len(unit.facts) else ()
        for number in range(1, migration.statement_count + 1):
            if pipelinable(chunks[number - 1] if number <= len(chunks) else None):
                batches.steps.append(Step(migration, number))
                continue
            batches.flush(IN_TRANSACTION)
            statement(run, migration, number, IN_TRANSACTION)  # on its own, as drizzle-orm sends it
        if unit.undo:
            batches.forget(migration)
        else:
            batches.steps.append(Step(migration))  # its ledger row, with the server's clock
    if checks:
        batches.flush(IN_TRANSACTION)
        guards.check(run.cur, checks, before)
    batches.steps.append(Step(None, own=COMMIT))
    batches.flush(IDLE)
