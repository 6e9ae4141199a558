"""Applying the planned units (`core.transactions`): statements as drizzle-orm sends them, ledger rows, COMMITs.

A `transaction` unit runs BEGIN, each migration's statements and ledger row,
then one COMMIT, sent in pipelined batches (`pipeline`). An `outside` unit runs
statement by statement, each committing on its own, and writes its ledger row
only once every statement has succeeded.
An `own` unit runs under its file's own BEGIN/COMMIT, inside a transaction we
open as drizzle-orm's would be; its ledger row goes in just before a final
COMMIT, so the usual `BEGIN; … COMMIT;` wrapper is atomic with it. A
`concurrent` unit is a migration applied online, in parts (`parts`). An `undo`
unit (`rollback`) runs as its kind says, its migrations carrying their reversing
statements, and its ledger step deletes their rows.

`lock_timeout` and `statement_timeout` are set for the session, so they hold
across a migration's own COMMIT. A transient failure (serialization, deadlock,
lock timeout) rolls back and re-runs the unit through tenacity (an `outside`
unit resumes at the failed statement, a `concurrent` one at its first part not
done: what is before is committed); anything else stops, and the `❌` line
(`failures`) says exactly what this run kept, from the tracker's state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import psycopg
from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_after_delay, wait_exponential_jitter

from entrypoint.core.model import Migration
from entrypoint.core.sql import COMMIT
from entrypoint.core.transactions import Unit
from entrypoint.db.blockers import BlockerWatch
from entrypoint.db.connect import describe, is_session_lost
from entrypoint.db.ledger import Ledger
from entrypoint.deploy import builds, guards, parts, pipeline
from entrypoint.deploy.failures import error_for
from entrypoint.deploy.outcome import OwnStepFailed, StatementFailed, Stopped
from entrypoint.deploy.progress import RunState, Tracker
from entrypoint.deploy.runner import IDLE, IN_TRANSACTION, Limits, Run, begin, elapsed_ms, rollback, statement
from entrypoint.errors import Untrusted
from entrypoint.logs import get_logger

# Retries of one unit stop after MIGRATION_ATTEMPTS or this long, whichever comes first: a deploy
# must end well inside Render's 15 minutes even with DDL_LOCK_TIMEOUT raised.
RETRY_BUDGET_S = 300
# duplicate_table, duplicate_object, duplicate_column: in the first migration of a run whose ledger was empty,
# the schema was made without drizzle's migrator (drizzle-kit push, or by hand), and `baseline` is the way out.
ALREADY_EXISTS = frozenset({"42P07", "42710", "42701"})
Timings = list[tuple[Migration, int]]


def _book(run: Run, unit: Unit, migration: Migration) -> None:
    """The unit's ledger write for `migration`: drizzle-orm's insert, or (an undo unit) the row's deletion."""
    if unit.undo:
        run.ledger.forget(run.cur, migration)
    else:
        run.ledger.record(run.cur, migration)


def _run_own(run: Run, unit: Unit) -> Timings:
    (migration,), (facts,) = unit.migrations, unit.facts
    run.tracker.move(committed_at=0)
    recorded = False
    started = time.monotonic()
    begin(run)  # as drizzle-orm's transaction would be open when the file starts
    try:
        before = guards.results(run.cur, run.limits.guards)
        for number, chunk in enumerate(facts.chunks, start=1):
            final_commit = number == migration.statement_count and chunk.controls == (COMMIT,)
            if final_commit and run.conn.info.transaction_status == IN_TRANSACTION:
                guards.check(run.cur, run.limits.guards, before)
                _book(run, unit, migration)  # atomic with the file's own closing COMMIT
                recorded = True
            statement(run, migration, number)
            if run.conn.info.transaction_status == IDLE:
                run.tracker.move(committed_at=number)
        if not recorded:
            guards.check(run.cur, run.limits.guards, before)
            _book(run, unit, migration)
        if run.conn.info.transaction_status == IN_TRANSACTION:
            run.cur.execute(b"COMMIT")
    except Stopped as stopped:
        rollback(run.conn)
        if run.tracker.state.committed_at and isinstance(stopped.stop, StatementFailed):
            raise Stopped(replace(stopped.stop, retryable=False)) from None  # part of it stays committed
        raise
    except BaseException:
        rollback(run.conn)
        raise
    return [(migration, elapsed_ms(started))]


def _outside_step(run: Run, unit: Unit, migration: Migration, number: int) -> None:
    online = unit.facts[0].chunks[number - 1].concurrent_indexes
    for schema, name in online:  # a failed concurrent build left it INVALID: the retry builds it anew
        builds.drop_invalid(run.cur, schema, name)
    with builds.lock_wait(run, allowed=bool(online)):
        statement(run, migration, number, IDLE)


Step = Callable[[Run, Unit, Migration, int], None]


def _resumable(step: Step) -> Callable[[Run, Unit], Timings]:
    """A unit whose statements commit one by one: a retry resumes at the first one not committed."""

    def run_unit(run: Run, unit: Unit) -> Timings:
        (migration,) = unit.migrations
        before = guards.results(run.cur, run.limits.guards)
        started = time.monotonic()
        for number in range(run.tracker.state.resume_at, migration.statement_count + 1):
            run.tracker.move(resume_at=number)  # those before it are committed: a retry resumes here
            step(run, unit, migration, number)
        guards.check(run.cur, run.limits.guards, before)
        _book(run, unit, migration)  # only once every statement has succeeded; the original file's hash
        run.tracker.move(resume_at=1)
        return [(migration, elapsed_ms(started))]

    return run_unit


_RUNNERS: dict[str, Callable[[Run, Unit], Timings]] = {
    "transaction": pipeline.run_transaction,
    "own": _run_own,
    "outside": _resumable(_outside_step),
    "concurrent": parts.run_parts,
}


def _run_unit(conn: psycopg.Connection[Any], ledger: Ledger, unit: Unit, limits: Limits, tracker: Tracker) -> Timings:
    with BlockerWatch(
        limits.watch_url, conn.info.backend_pid, heartbeat=limits.heartbeat_s, debug=limits.debug
    ) as watch:
        tracker.watch = watch
        try:
            with conn.cursor() as cur:
                return _RUNNERS[unit.kind](Run(conn, cur, ledger, limits, tracker), unit)
        except Stopped as stopped:
            if isinstance(stopped.stop, StatementFailed):
                raise Stopped(replace(stopped.stop, blockers=watch.describe())) from None
            raise
        finally:
            tracker.watch = None


def _is_transient(error: BaseException) -> bool:
    return isinstance(error, Stopped) and isinstance(error.stop, StatementFailed) and builds.is_transient(error.stop)


def _with_facts(stop: StatementFailed, unit: Unit, limits: Limits, state: RunState) -> StatementFailed:
    """What only the unit knows of a failed statement: the rows that break a new constraint, or a pushed schema."""
    # The very first migration of a run on an empty ledger: what exists was there before the run (a later
    # one colliding with an earlier one of the same run is a broken folder, and "fix the migration" is right).
    first = not state.kept and stop.migration == unit.migrations[0]
    pushed = limits.ledger_was_empty and first and stop.sqlstate in ALREADY_EXISTS
    return replace(stop, **parts.failure_facts(unit, state, stop), pushed=pushed)


def _timeouts(conn: psycopg.Connection[Any], limits: Limits | None) -> None:
    """Session-wide, so a migration's own COMMIT cannot drop them; None puts back connect's own."""
    if limits is None:
        if not conn.broken:
            conn.execute(b"RESET lock_timeout; SET statement_timeout = 0")
        return
    conn.execute(
        "SELECT set_config('lock_timeout', %s, false), set_config('statement_timeout', %s, false)",
        (f"{limits.lock_timeout_ms}ms", f"{limits.statement_timeout_ms}ms"),
    )


def _announce(unit: Unit) -> None:
    """The line that says a unit runs on its own, and why (a transaction unit needs none)."""
    log, tag = get_logger(), unit.migrations[0].tag
    if unit.undo:
        if unit.kind != "transaction":
            log.info("rollback.alone", tag=tag, why=unit.why)
    elif unit.kind == "outside":
        log.info("migrate.outside_transaction", tag=tag, why=unit.why)
    elif unit.kind == "own":
        log.info("migrate.own_transaction", tag=tag, why=unit.why)
    elif unit.kind == "concurrent":
        parts.announce(unit)


def apply(
    conn: psycopg.Connection[Any], ledger: Ledger, units: Sequence[Unit], limits: Limits, tracker: Tracker
) -> None:
    """Apply the units in order, re-running a unit on transient failures; the tracker's `kept` grows as units commit.

    Raises `MigrationFailed` (exit 6) or `GuardViolated` (exit 14); lets connection loss
    (`psycopg.OperationalError`) through for the caller to start a new session.
    """
    log = get_logger()

    def before_sleep(state: Any) -> None:
        stop: StatementFailed = state.outcome.exception().stop
        log.warning(
            "migrate.retrying",
            tag=stop.migration.tag,
            sqlstate=stop.sqlstate,
            reason=builds.TRANSIENT_STATES.get(stop.sqlstate or "", "failed"),
            blockers=Untrusted(stop.blockers),
            attempt=state.attempt_number + 1,
            attempts=limits.attempts,
            wait_s=round(state.upcoming_sleep, 1),
        )

    _timeouts(conn, limits)
    try:
        for position, unit in enumerate(units):
            later = tuple(m for u in units[position + 1 :] for m in u.migrations)
            tracker.move(unit=unit, later=later, resume_at=unit.resume_at, committed_at=0)
            _announce(unit)
            retrying = Retrying(
                stop=stop_after_attempt(limits.attempts) | stop_after_delay(RETRY_BUDGET_S),
                wait=wait_exponential_jitter(initial=1, max=30, jitter=1),
                retry=retry_if_exception(_is_transient),
                before_sleep=before_sleep,
                reraise=True,
            )
            try:
                timings = retrying(_run_unit, conn, ledger, unit, limits, tracker)
            except Stopped as stopped:
                stop = stopped.stop
                if isinstance(stop, StatementFailed):
                    stop = _with_facts(stop, unit, limits, tracker.state)
                raise error_for(tracker.state, stop, limits.mode) from None
            except psycopg.Error as error:  # our own step (the ledger row, a cleanup), not a migration statement
                if is_session_lost(error, conn):
                    raise
                raise error_for(tracker.state, OwnStepFailed(describe(error), error.sqlstate)) from None
            for migration, duration_ms in timings:
                if unit.undo:
                    log.info(
                        "rollback.reversed",
                        tag=migration.tag,
                        statements=migration.statement_count,
                        duration_ms=duration_ms,
                    )
                else:
                    log.info(
                        "migrate.applied",
                        tag=migration.tag,
                        statements=migration.statement_count,
                        duration_ms=duration_ms,
                    )
            tracker.move(kept=tracker.state.kept + unit.migrations, unit=None, migration=None)
    finally:
        _timeouts(conn, None)
