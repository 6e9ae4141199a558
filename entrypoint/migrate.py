"""Applying the planned units (`transactions`): statements as drizzle-orm sends them, ledger rows, COMMITs.

A `transaction` unit runs BEGIN, each migration's statements and ledger row,
then one COMMIT. An `outside` unit runs statement by statement, each committing
on its own, and writes its ledger row only once every statement has succeeded.
An `own` unit runs under its file's own BEGIN/COMMIT, inside a transaction we
open as drizzle-orm's would be; its ledger row goes in just before a final
COMMIT, so the usual `BEGIN; … COMMIT;` wrapper is atomic with it. After every
statement the transaction status is checked against what the unit expects, so
a COMMIT or ROLLBACK no parser saw can never end a transaction unnoticed.

`lock_timeout` and `statement_timeout` are set for the session, so they hold
across a migration's own COMMIT. A transient failure (serialization, deadlock,
lock timeout) rolls back and re-runs the unit through tenacity (an `outside`
unit resumes at the failed statement: the ones before it are committed);
anything else stops, and the `❌` line says exactly what this run kept.
Nothing here prints: it reports events.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_after_delay, wait_exponential_jitter

from entrypoint.blockers import BlockerWatch
from entrypoint.database import describe, is_session_lost
from entrypoint.errors import GuardViolated, MigrationFailed, Untrusted
from entrypoint.ledger import Ledger
from entrypoint.logs import get_logger
from entrypoint.model import Migration, Mode
from entrypoint.statements import COMMIT
from entrypoint.transactions import Unit

# Retries of one unit stop after MIGRATION_ATTEMPTS or this long, whichever comes first: a deploy
# must end well inside Render's 15 minutes even with DDL_LOCK_TIMEOUT raised.
RETRY_BUDGET_S = 300
# serialization_failure, deadlock_detected, lock_not_available (lock_timeout).
TRANSIENT_STATES = {
    "40001": "hit a serialization failure",
    "40P01": "was chosen as a deadlock victim",
    "55P03": "timed out waiting for a lock",
}
# What PostgreSQL says when a run needs a commit it did not get.
_NEEDS_COMMIT = {"25001": "cannot run inside a transaction block", "55P04": "unsafe use of a new enum value"}
# duplicate_table, duplicate_object, duplicate_column: in the first migration of a run whose ledger was empty,
# the schema was made without drizzle's migrator (drizzle-kit push, or by hand), and `baseline` is the way out.
ALREADY_EXISTS = frozenset({"42P07", "42710", "42701"})
_ADOPT = (
    " The ledger was empty, yet the database already holds what the migrations create (made with drizzle-kit push, "
    "or by hand): record what it holds with `python -m entrypoint baseline` (or set BASELINE_ON_EMPTY=1), then "
    "redeploy."
)
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


@dataclass
class _Progress:
    """What this run has committed so far, and where an `outside` unit is to resume."""

    kept: list[Migration] = field(default_factory=list)
    resume_at: int = 1


class _GuardChanged(Exception):
    """A guard's result differs after the unit's statements; raised inside the transaction to roll it back."""

    def __init__(self, guard: str, before: str, after: str) -> None:
        super().__init__(guard)
        self.guard = guard
        self.before = before
        self.after = after


class _StatementFailed(Exception):
    """The failing statement's position, and what of its own unit stays, carried out of the unit."""

    def __init__(self, error: psycopg.Error | None, migration: Migration, number: int, *, stays: str = "") -> None:
        super().__init__(str(error))
        self.error = error
        self.migration = migration
        self.number = number
        self.stays = stays  # the part of this unit that stays committed, as a sentence, or ""
        self.blockers = ""
        self.retryable = True

    @property
    def sqlstate(self) -> str | None:
        return self.error.sqlstate if self.error else None


def _is_transient(error: BaseException) -> bool:
    return isinstance(error, _StatementFailed) and error.retryable and error.sqlstate in TRANSIENT_STATES


def _guard_results(cur: psycopg.Cursor[Any], guards: Sequence[str]) -> list[str]:
    results = []
    for guard in guards:
        try:
            results.append(repr([tuple(row) for row in cur.execute(guard.encode()).fetchall()]))
        except psycopg.Error as error:
            raise GuardViolated(
                "❌ Guard query failed: {error} ({guard}). Fix the query in --guard / MIGRATION_GUARDS; "
                "nothing was migrated by this unit",
                error=describe(error),
                guard=guard,
                before="",
                after="",
            ) from None
    return results


def _check_guards(cur: psycopg.Cursor[Any], guards: Sequence[str], before: list[str]) -> None:
    for guard, old, new in zip(guards, before, _guard_results(cur, guards), strict=True):
        if old != new:
            raise _GuardChanged(guard, old, new)


def _statement(
    conn: psycopg.Connection[Any],
    cur: psycopg.Cursor[Any],
    migration: Migration,
    number: int,
    expect: TransactionStatus | None = None,
) -> None:
    """Run one chunk; with `expect`, fail unless the transaction status afterwards is that one."""
    try:
        cur.execute(migration.statements[number - 1])
    except psycopg.Error as error:
        if is_session_lost(error, conn):
            raise  # the caller starts a new session and re-plans from the ledger
        raise _StatementFailed(error, migration, number) from error
    if expect is not None and conn.info.transaction_status != expect:
        # A COMMIT, ROLLBACK or BEGIN no parser saw moved the transaction under us: stop here, honestly.
        failure = _StatementFailed(None, migration, number)
        failure.retryable = False
        raise failure


def _rollback(conn: psycopg.Connection[Any]) -> None:
    if not conn.broken and conn.info.transaction_status != IDLE:
        conn.execute(b"ROLLBACK")


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _run_transaction(
    conn: psycopg.Connection[Any], ledger: Ledger, unit: Unit, limits: Limits
) -> list[tuple[Migration, int]]:
    timings = []
    with conn.cursor() as cur:
        # One snapshot for the whole unit when guarded: only our own changes can move a guard.
        cur.execute(b"BEGIN ISOLATION LEVEL REPEATABLE READ" if limits.guards else b"BEGIN")
        try:
            before = _guard_results(cur, limits.guards)
            for migration in unit.migrations:
                started = time.monotonic()
                for number in range(1, migration.statement_count + 1):
                    _statement(conn, cur, migration, number, expect=IN_TRANSACTION)
                ledger.record(cur, migration)
                timings.append((migration, _elapsed_ms(started)))
            _check_guards(cur, limits.guards, before)
            cur.execute(b"COMMIT")
        except BaseException:
            _rollback(conn)
            raise
    return timings


def _drop_invalid_indexes(cur: psycopg.Cursor[Any], indexes: Sequence[tuple[str | None, str]]) -> None:
    """A failed concurrent build leaves an INVALID index behind; drop it so the retry can build it."""
    for schema, name in indexes:
        wanted = sql.Identifier(schema, name) if schema else sql.Identifier(name)
        row = cur.execute(
            "SELECT n.nspname, c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE i.indexrelid = to_regclass(%s) AND NOT i.indisvalid",
            (wanted.as_string(cur),),
        ).fetchone()
        if row:
            get_logger().warning("migrate.invalid_index_dropped", index=f"{row[0]}.{row[1]}")
            cur.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(row[0], row[1])))


def _run_outside(
    conn: psycopg.Connection[Any], ledger: Ledger, unit: Unit, limits: Limits, progress: _Progress
) -> list[tuple[Migration, int]]:
    (migration,), (facts,) = unit.migrations, unit.facts
    with conn.cursor() as cur:
        before = _guard_results(cur, limits.guards)
        started = time.monotonic()
        for number in range(progress.resume_at, migration.statement_count + 1):
            progress.resume_at = number  # those before it are committed: a retry resumes here
            _drop_invalid_indexes(cur, facts.chunks[number - 1].concurrent_indexes)
            try:
                _statement(conn, cur, migration, number, expect=IDLE)
            except _StatementFailed:
                _rollback(conn)
                raise
        _check_guards(cur, limits.guards, before)
        ledger.record(cur, migration)  # only once every statement has succeeded
    progress.resume_at = 1
    return [(migration, _elapsed_ms(started))]


def _run_own(conn: psycopg.Connection[Any], ledger: Ledger, unit: Unit, limits: Limits) -> list[tuple[Migration, int]]:
    (migration,), (facts,) = unit.migrations, unit.facts
    committed_at = 0  # the last statement after which its own COMMIT had committed
    recorded = False
    started = time.monotonic()
    with conn.cursor() as cur:
        cur.execute(b"BEGIN")  # as drizzle-orm's transaction would be open when the file starts
        try:
            before = _guard_results(cur, limits.guards)
            for number, chunk in enumerate(facts.chunks, start=1):
                final_commit = number == migration.statement_count and chunk.controls == (COMMIT,)
                if final_commit and conn.info.transaction_status == IN_TRANSACTION:
                    _check_guards(cur, limits.guards, before)
                    ledger.record(cur, migration)  # atomic with the file's own closing COMMIT
                    recorded = True
                _statement(conn, cur, migration, number)
                if conn.info.transaction_status == IDLE:
                    committed_at = number
            if not recorded:
                _check_guards(cur, limits.guards, before)
                ledger.record(cur, migration)
            if conn.info.transaction_status == IN_TRANSACTION:
                cur.execute(b"COMMIT")
        except _StatementFailed as failure:
            _rollback(conn)
            if committed_at:
                failure.stays = f"its statements 1-{committed_at} stay applied"
                failure.retryable = False
            raise
        except BaseException:
            _rollback(conn)
            raise
    return [(migration, _elapsed_ms(started))]


def _run_unit(
    conn: psycopg.Connection[Any], ledger: Ledger, unit: Unit, limits: Limits, progress: _Progress
) -> list[tuple[Migration, int]]:
    with BlockerWatch(limits.watch_url, conn.info.backend_pid) as watch:
        try:
            if unit.kind == "outside":
                return _run_outside(conn, ledger, unit, limits, progress)
            if unit.kind == "own":
                return _run_own(conn, ledger, unit, limits)
            return _run_transaction(conn, ledger, unit, limits)
        except _StatementFailed as failure:
            failure.blockers = watch.describe()
            raise


def _tags(migrations: Sequence[Migration]) -> str:
    return ", ".join(m.tag for m in migrations)


_OUTSIDE = (
    "This migration runs outside a transaction: the statements before it stay applied and its ledger row was "
    "not written. Make its statements idempotent (IF NOT EXISTS), then redeploy"
)


def _outcome(
    progress: _Progress,
    unit: Unit,
    stays: str,
    later: Sequence[Migration],
    everything: str = "Everything was rolled back",
) -> str:
    """What this run leaves behind, as the ❌ line's last sentences: "everything" only when it is true."""
    kept = f"Applied and kept (committed before it): {_tags(progress.kept)}. " if progress.kept else ""
    if unit.kind == "outside":
        return kept + _OUTSIDE
    if stays:
        return (
            f"{kept}{unit.migrations[0].tag} commits on its own: {stays}, and its ledger row was not written. "
            "Make them idempotent (IF NOT EXISTS), then redeploy"
        )
    if not kept:
        return f"{everything}: fix the migration, then redeploy"
    not_run = f"; not run: {_tags(later)}" if later else ""
    return f"{kept}Rolled back: {_tags(unit.migrations)}{not_run}: fix the migration, then redeploy"


def _hint(failure: _StatementFailed, mode: Mode) -> str:
    """What to change when PostgreSQL needed a commit the run did not make."""
    state = failure.sqlstate or ""
    if state not in _NEEDS_COMMIT:
        return ""
    if mode == "single":
        return (
            f" TRANSACTION_MODE=single runs everything in one transaction, and PostgreSQL says it "
            f"{_NEEDS_COMMIT[state]}: set TRANSACTION_MODE=auto to commit where PostgreSQL requires it."
        )
    if state == "55P04":
        return " A new enum value cannot be used in the migration that adds it: move the use into a later migration."
    return ""


def _failed(
    failure: _StatementFailed, unit: Unit, progress: _Progress, later: Sequence[Migration], limits: Limits
) -> MigrationFailed:
    hint = _hint(failure, limits.mode)
    outcome = _outcome(progress, unit, failure.stays, later)
    # The very first migration of a run on an empty ledger: what exists was there before the run (a later
    # one colliding with an earlier one of the same run is a broken folder, and "fix the migration" is right).
    first = not progress.kept and failure.migration == unit.migrations[0]
    if limits.ledger_was_empty and first and failure.sqlstate in ALREADY_EXISTS:
        hint = _ADOPT
        if unit.kind == "transaction":
            outcome = "Everything was rolled back."  # "fix the migration" would be the wrong advice here
    if failure.error is None:
        error = Untrusted("the statement ended the transaction it ran in (a COMMIT or ROLLBACK no parser could see)")
    else:
        error = Untrusted(failure.error.diag.message_primary or describe(failure.error))
    return MigrationFailed(
        "❌ Migration failed: {error} (in {tag}, statement {statement}/{statements}{blockers}).{hint} {outcome}",
        error=error,
        tag=failure.migration.tag,
        statement=failure.number,
        statements=failure.migration.statement_count,
        blockers=Untrusted(failure.blockers),
        hint=hint,
        outcome=outcome,
        sqlstate=failure.sqlstate,
        kept=[m.tag for m in progress.kept],
    )


def _timeouts(conn: psycopg.Connection[Any], limits: Limits | None) -> None:
    """Session-wide, so a migration's own COMMIT cannot drop them; None resets them."""
    if limits is None:
        if not conn.broken:
            conn.execute(b"RESET lock_timeout; RESET statement_timeout")
        return
    conn.execute(
        "SELECT set_config('lock_timeout', %s, false), set_config('statement_timeout', %s, false)",
        (f"{limits.lock_timeout_ms}ms", f"{limits.statement_timeout_ms}ms"),
    )


def apply(
    conn: psycopg.Connection[Any], ledger: Ledger, units: Sequence[Unit], limits: Limits, kept: list[Migration]
) -> None:
    """Apply the units in order, re-running a unit on transient failures; `kept` grows as units commit.

    Raises `MigrationFailed` (exit 6) or `GuardViolated` (exit 14); lets connection loss
    (`psycopg.OperationalError`) through for the caller to start a new session.
    """
    log = get_logger()
    progress = _Progress(kept=kept)

    def before_sleep(state: Any) -> None:
        failure: _StatementFailed = state.outcome.exception()
        log.warning(
            "migrate.retrying",
            tag=failure.migration.tag,
            sqlstate=failure.sqlstate,
            reason=TRANSIENT_STATES.get(failure.sqlstate or "", "failed"),
            blockers=Untrusted(failure.blockers),
            attempt=state.attempt_number + 1,
            attempts=limits.attempts,
            wait_s=round(state.upcoming_sleep, 1),
        )

    _timeouts(conn, limits)
    try:
        for position, unit in enumerate(units):
            later = [m for u in units[position + 1 :] for m in u.migrations]
            if unit.kind == "outside":
                log.info("migrate.outside_transaction", tag=unit.migrations[0].tag, why=unit.why)
            elif unit.kind == "own":
                log.info("migrate.own_transaction", tag=unit.migrations[0].tag, why=unit.why)
            retrying = Retrying(
                stop=stop_after_attempt(limits.attempts) | stop_after_delay(RETRY_BUDGET_S),
                wait=wait_exponential_jitter(initial=1, max=30, jitter=1),
                retry=retry_if_exception(_is_transient),
                before_sleep=before_sleep,
                reraise=True,
            )
            try:
                timings = retrying(_run_unit, conn, ledger, unit, limits, progress)
            except _StatementFailed as failure:
                raise _failed(failure, unit, progress, later, limits) from None
            except _GuardChanged as changed:
                raise _guard_violated(changed, unit, progress, later) from None
            for migration, duration_ms in timings:
                log.info(
                    "migrate.applied", tag=migration.tag, statements=migration.statement_count, duration_ms=duration_ms
                )
            progress.kept.extend(unit.migrations)
    finally:
        _timeouts(conn, None)


def _guard_violated(
    changed: _GuardChanged, unit: Unit, progress: _Progress, later: Sequence[Migration]
) -> GuardViolated:
    if unit.kind == "transaction":
        outcome = _outcome(
            progress, unit, "", later, everything="Everything in this deploy's transaction was rolled back"
        )
    else:
        kept = f"Applied and kept (committed before it): {_tags(progress.kept)}. " if progress.kept else ""
        outcome = (
            f"{kept}{unit.migrations[0].tag} ran outside a transaction, so its changes stay; its ledger row was not "
            "written: fix the migration, then redeploy"
        )
    return GuardViolated(
        "❌ Guard changed: {guard} returned {before} before the migrations and {after} after. {outcome}",
        guard=changed.guard,
        before=changed.before,
        after=changed.after,
        outcome=outcome,
    )
