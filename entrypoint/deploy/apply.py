"""Applying the planned units (`transactions`): statements as drizzle-orm sends them, ledger rows, COMMITs.

A `transaction` unit runs BEGIN, each migration's statements and ledger row,
then one COMMIT. An `outside` unit runs statement by statement, each committing
on its own, and writes its ledger row only once every statement has succeeded.
An `own` unit runs under its file's own BEGIN/COMMIT, inside a transaction we
open as drizzle-orm's would be; its ledger row goes in just before a final
COMMIT, so the usual `BEGIN; … COMMIT;` wrapper is atomic with it. A
`concurrent` unit (an index-only migration on large tables, `indexes`) runs
like an `outside` one, sending each large table's index with CONCURRENTLY
(under no `lock_timeout`: such a build blocks no one while it waits, and
DEPLOY_DEADLINE bounds it); an index an earlier attempt already built, valid
and the same, is kept, and one it left INVALID is dropped first. After every
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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_after_delay, wait_exponential_jitter

from entrypoint.core.indexes import IndexBuild
from entrypoint.core.model import Migration, Mode
from entrypoint.core.sql import COMMIT, same_index
from entrypoint.core.transactions import Unit
from entrypoint.db.blockers import HEARTBEAT_S, BlockerWatch
from entrypoint.db.connect import UNDEFINED_OBJECT_STATES, describe, is_session_lost
from entrypoint.db.ledger import Ledger
from entrypoint.errors import GuardViolated, MigrationFailed, Untrusted
from entrypoint.logs import get_logger

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
UNIQUE_VIOLATION = "23505"


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


@dataclass
class Progress:
    """What this run has committed so far, where it is, and where an `outside` unit is to resume.

    The caller holds it too, so a stop from outside (DEPLOY_DEADLINE, a signal) can say what stays.
    """

    kept: list[Migration] = field(default_factory=list)
    resume_at: int = 1
    unit: Unit | None = None  # the unit running
    later: list[Migration] = field(default_factory=list)  # the migrations of the units after it
    migration: Migration | None = None  # the statement running: its migration and number
    number: int = 0
    stays: str = ""  # what of the running unit its own COMMITs have committed, as a sentence
    watch: BlockerWatch | None = None

    def running(self, migration: Migration, number: int, what: str = "") -> None:
        """Statement `number` of `migration` starts now (the heartbeat counts from here)."""
        self.migration, self.number = migration, number
        if self.watch is not None:
            self.watch.running(migration.tag, number, migration.statement_count, what)

    def idle(self) -> None:
        """The statement is over: nothing for the heartbeat to report until the next one starts."""
        if self.watch is not None:
            self.watch.idle()

    def stopped(self, advice: str) -> str:
        """What stays when the run is stopped from outside where it is now, then `advice`."""
        if self.unit is None:
            kept = f"Applied and kept (committed before it): {_tags(self.kept)}. " if self.kept else ""
            return f"{kept}{advice[0].upper()}{advice[1:]}"
        everything = "The running migration was cancelled and everything was rolled back"
        build = None if self.migration is None else _build_of(self.unit, self.migration, self.number)
        cancelled = build.name if build and build.concurrently and self.unit.kind == "concurrent" else ""
        return _outcome(
            self, self.unit, self.stays, self.later, everything=everything, advice=advice, cancelled=cancelled
        )

    @property
    def where(self) -> str:
        """`0011_performance_indexes, statement 12/43`, or "" between statements."""
        if self.unit is None or self.migration is None:
            return ""
        return f"{self.migration.tag}, statement {self.number}/{self.migration.statement_count}"


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
        self.dropped = ""  # the INVALID index a failed concurrent build left, dropped at once

    @property
    def sqlstate(self) -> str | None:
        return self.error.sqlstate if self.error else None


def _is_transient(error: BaseException) -> bool:
    return isinstance(error, _StatementFailed) and error.retryable and error.sqlstate in TRANSIENT_STATES


class _GuardResult(NamedTuple):
    text: str  # the rows, or "an error (...)"
    absent: bool = False  # what it reads does not exist (yet)


def _guard_results(cur: psycopg.Cursor[Any], guards: Sequence[str]) -> list[_GuardResult]:
    """Each guard's rows, or the error it now meets (a migration dropped what it reads: a change too).

    Each runs under a savepoint, so an error leaves the unit's transaction usable. The deploy has
    already run every guard once before its first write (a query that cannot run is exit 2 there).
    """
    results = []
    for guard in guards:
        try:
            with cur.connection.transaction():
                results.append(_GuardResult(repr([tuple(row) for row in cur.execute(guard.encode()).fetchall()])))
        except psycopg.Error as error:
            if is_session_lost(error, cur.connection):
                raise
            results.append(_GuardResult(f"an error ({describe(error)})", error.sqlstate in UNDEFINED_OBJECT_STATES))
    return results


def _check_guards(cur: psycopg.Cursor[Any], guards: Sequence[str], before: list[_GuardResult]) -> None:
    for guard, old, new in zip(guards, before, _guard_results(cur, guards), strict=True):
        if not old.absent and old.text != new.text:  # what did not exist yet had no rows to protect
            raise _GuardChanged(guard, old.text, new.text)


def _statement(
    conn: psycopg.Connection[Any],
    cur: psycopg.Cursor[Any],
    migration: Migration,
    number: int,
    expect: TransactionStatus | None = None,
    *,
    progress: Progress | None = None,
    send: bytes | None = None,
    what: str = "",
) -> None:
    """Run one chunk (or `send` in its place); with `expect`, fail unless the transaction status is then that."""
    if progress is not None:
        progress.running(migration, number, what)
    try:
        cur.execute(migration.statements[number - 1] if send is None else send)
    except psycopg.Error as error:
        if is_session_lost(error, conn):
            raise  # the caller starts a new session and re-plans from the ledger
        raise _StatementFailed(error, migration, number) from error
    finally:
        if progress is not None:
            progress.idle()
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


def _begin(cur: psycopg.Cursor[Any], limits: Limits) -> None:
    # One snapshot for the whole transaction when guarded: only our own changes can move a guard.
    cur.execute(b"BEGIN ISOLATION LEVEL REPEATABLE READ" if limits.guards else b"BEGIN")


def _run_transaction(
    conn: psycopg.Connection[Any], ledger: Ledger, unit: Unit, limits: Limits, progress: Progress
) -> list[tuple[Migration, int]]:
    timings = []
    with conn.cursor() as cur:
        _begin(cur, limits)
        try:
            before = _guard_results(cur, limits.guards)
            for migration in unit.migrations:
                started = time.monotonic()
                for number in range(1, migration.statement_count + 1):
                    _statement(conn, cur, migration, number, expect=IN_TRANSACTION, progress=progress)
                ledger.record(cur, migration)
                timings.append((migration, _elapsed_ms(started)))
            _check_guards(cur, limits.guards, before)
            cur.execute(b"COMMIT")
        except BaseException:
            _rollback(conn)
            raise
    return timings


def _run_outside(
    conn: psycopg.Connection[Any], ledger: Ledger, unit: Unit, limits: Limits, progress: Progress
) -> list[tuple[Migration, int]]:
    (migration,), (facts,) = unit.migrations, unit.facts
    with conn.cursor() as cur:
        before = _guard_results(cur, limits.guards)
        started = time.monotonic()
        for number in range(progress.resume_at, migration.statement_count + 1):
            progress.resume_at = number  # those before it are committed: a retry resumes here
            online = facts.chunks[number - 1].concurrent_indexes
            for schema, name in online:  # a failed concurrent build left it INVALID: the retry builds it anew
                _drop_invalid(cur, schema, name)
            with _lock_wait(conn, limits, allowed=bool(online)):
                _statement(conn, cur, migration, number, expect=IDLE, progress=progress)
        _check_guards(cur, limits.guards, before)
        ledger.record(cur, migration)  # only once every statement has succeeded
    progress.resume_at = 1
    return [(migration, _elapsed_ms(started))]


_EXISTING_INDEX = """
SELECT i.indisvalid, pg_get_indexdef(i.indexrelid), n.nspname, c.relname
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE i.indexrelid = to_regclass(%s)
"""


def _index_name(cur: psycopg.Cursor[Any], schema: str | None, name: str) -> str:
    wanted = sql.Identifier(schema, name) if schema else sql.Identifier(name)
    return wanted.as_string(cur)


def _drop_invalid(cur: psycopg.Cursor[Any], schema: str | None, name: str) -> tuple[str, str] | None:
    """Drop the INVALID index a failed build of this index left, if any; the (schema, index) it was."""
    row = cur.execute(_EXISTING_INDEX, (_index_name(cur, schema, name),)).fetchone()
    if row is None or row[0]:
        return None
    get_logger().warning("migrate.invalid_index_dropped", index=f"{row[2]}.{row[3]}")
    cur.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(row[2], row[3])))
    return str(row[2]), str(row[3])


def _already_built(cur: psycopg.Cursor[Any], build: IndexBuild) -> bool:
    """Whether an earlier attempt built this very index (valid, same definition): then it is kept.

    An INVALID one is dropped so it can be built again; one that differs is left for the statement
    to fail on, as drizzle-orm would.
    """
    if _drop_invalid(cur, build.schema, build.name):
        return False
    row = cur.execute(_EXISTING_INDEX, (_index_name(cur, build.schema, build.name),)).fetchone()
    return row is not None and same_index(build.original, str(row[1]), str(row[2]))


def _lock_timeout(conn: psycopg.Connection[Any], ms: int) -> None:
    conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{ms}ms",))


@contextmanager
def _lock_wait(conn: psycopg.Connection[Any], limits: Limits, *, allowed: bool) -> Iterator[None]:
    """One autocommitted statement; `allowed` (CREATE INDEX CONCURRENTLY) waits for locks with no lock_timeout.

    Such a build blocks no one while it waits (writers and readers do not conflict with its lock), and a
    lock_timeout would throw the half-built index away and start over: the heartbeat shows whom it waits
    for, DEPLOY_DEADLINE ends the wait. A failure rolls back; a stop from outside leaves the reset to `apply`.
    """
    if allowed:
        _lock_timeout(conn, 0)
    try:
        yield
    except _StatementFailed:
        _rollback(conn)
        if allowed:
            _lock_timeout(conn, limits.lock_timeout_ms)
        raise
    if allowed:
        _lock_timeout(conn, limits.lock_timeout_ms)


def _build(  # noqa: PLR0917 - one statement of a concurrent unit, and where it is
    conn: psycopg.Connection[Any],
    cur: psycopg.Cursor[Any],
    migration: Migration,
    build: IndexBuild,
    limits: Limits,
    progress: Progress,
) -> None:
    """Build one index as planned; a failed concurrent build's INVALID index is dropped at once."""
    number = build.number
    what = f"CREATE INDEX {'CONCURRENTLY ' if build.concurrently else ''}{build.name}"
    progress.running(migration, number, f"{what}: checking for an earlier attempt's index")  # a DROP may wait
    try:
        if _already_built(cur, build):
            get_logger().info("migrate.index_kept", tag=migration.tag, index=build.name, table=build.table)
            return
    except psycopg.Error as error:
        if is_session_lost(error, conn):
            raise
        raise _StatementFailed(error, migration, number) from error
    finally:
        progress.idle()
    started = time.monotonic()
    how = "CONCURRENTLY" if build.concurrently else "as written"
    try:
        with _lock_wait(conn, limits, allowed=build.concurrently):
            _statement(conn, cur, migration, number, expect=IDLE, progress=progress, send=build.sql, what=what)
    except _StatementFailed as failure:
        if build.concurrently and not _is_transient(failure):
            failure.dropped = _drop_quietly(conn, cur, build)
        raise
    get_logger().info(
        "migrate.index_built",
        tag=migration.tag,
        index=build.name,
        table=build.table,
        how=how,
        duration_ms=_elapsed_ms(started),
    )


def _drop_quietly(conn: psycopg.Connection[Any], cur: psycopg.Cursor[Any], build: IndexBuild) -> str:
    """Drop what a failed concurrent build left; if that fails too, the next deploy does it first."""
    try:
        dropped = _drop_invalid(cur, build.schema, build.name)
    except psycopg.Error as error:
        if is_session_lost(error, conn):
            raise
        _rollback(conn)
        return ""
    return f"{dropped[0]}.{dropped[1]}" if dropped else ""


def _run_concurrent(
    conn: psycopg.Connection[Any], ledger: Ledger, unit: Unit, limits: Limits, progress: Progress
) -> list[tuple[Migration, int]]:
    (migration,) = unit.migrations
    builds = {build.number: build for build in unit.builds_of(migration)}
    with conn.cursor() as cur:
        before = _guard_results(cur, limits.guards)
        started = time.monotonic()
        for number in range(progress.resume_at, migration.statement_count + 1):
            progress.resume_at = number  # those before it are committed: a retry resumes here
            build = builds.get(number)
            if build is not None:
                _build(conn, cur, migration, build, limits, progress)
                continue
            try:
                _statement(conn, cur, migration, number, expect=IDLE, progress=progress)  # comments only
            except _StatementFailed:
                _rollback(conn)
                raise
        _check_guards(cur, limits.guards, before)
        ledger.record(cur, migration)  # the original file's hash: only what was sent differs
    progress.resume_at = 1
    return [(migration, _elapsed_ms(started))]


def _run_own(
    conn: psycopg.Connection[Any], ledger: Ledger, unit: Unit, limits: Limits, progress: Progress
) -> list[tuple[Migration, int]]:
    (migration,), (facts,) = unit.migrations, unit.facts
    committed_at = 0  # the last statement after which its own COMMIT had committed
    recorded = False
    started = time.monotonic()
    with conn.cursor() as cur:
        _begin(cur, limits)  # as drizzle-orm's transaction would be open when the file starts
        try:
            before = _guard_results(cur, limits.guards)
            for number, chunk in enumerate(facts.chunks, start=1):
                final_commit = number == migration.statement_count and chunk.controls == (COMMIT,)
                if final_commit and conn.info.transaction_status == IN_TRANSACTION:
                    _check_guards(cur, limits.guards, before)
                    ledger.record(cur, migration)  # atomic with the file's own closing COMMIT
                    recorded = True
                _statement(conn, cur, migration, number, progress=progress)
                if conn.info.transaction_status == IDLE:
                    committed_at = number
                    progress.stays = f"its statements 1-{committed_at} stay applied"
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


_RUNNERS = {"outside": _run_outside, "own": _run_own, "concurrent": _run_concurrent, "transaction": _run_transaction}


def _run_unit(
    conn: psycopg.Connection[Any], ledger: Ledger, unit: Unit, limits: Limits, progress: Progress
) -> list[tuple[Migration, int]]:
    with BlockerWatch(limits.watch_url, conn.info.backend_pid, heartbeat=limits.heartbeat_s) as watch:
        progress.watch = watch
        try:
            return _RUNNERS[unit.kind](conn, ledger, unit, limits, progress)
        except _StatementFailed as failure:
            failure.blockers = watch.describe()
            raise
        finally:
            progress.watch = None


def _tags(migrations: Sequence[Migration]) -> str:
    return ", ".join(m.tag for m in migrations)


_OUTSIDE = (
    "This migration runs outside a transaction: the statements before it stay applied and its ledger row was "
    "not written. Make its statements idempotent (IF NOT EXISTS), then redeploy"
)


def _online(progress: Progress, unit: Unit, cancelled: str) -> str:
    """What of a concurrent unit stays: the statements before the one that stopped, and no ledger row."""
    tag, done = unit.migrations[0].tag, progress.resume_at - 1
    left = f"drops the INVALID index {cancelled} the cancelled build left, " if cancelled else ""
    if not done:
        built = "none of its indexes was built yet by this run"
        rest = f"; the next deploy {left}builds them" if cancelled else ""
    else:
        built = f"its statements 1-{done} stay built and its ledger row was not written"
        rest = f"; the next deploy keeps those indexes, {left}and builds the rest"
    return f"{tag} builds its indexes one at a time, outside a transaction: {built}{rest}"


def _outcome(
    progress: Progress,
    unit: Unit,
    stays: str,
    later: Sequence[Migration],
    *,
    everything: str = "Everything was rolled back",
    advice: str = "fix the migration, then redeploy",
    cancelled: str = "",
) -> str:
    """What this run leaves behind, as the ❌ line's last sentences: "everything" only when it is true.

    `cancelled`: the index whose concurrent build was stopped from outside, left INVALID.
    """
    kept = f"Applied and kept (committed before it): {_tags(progress.kept)}. " if progress.kept else ""
    if unit.kind == "concurrent":
        return f"{kept}{_online(progress, unit, cancelled)}: {advice}"
    if unit.kind == "outside":
        return kept + _OUTSIDE
    if stays:
        return (
            f"{kept}{unit.migrations[0].tag} commits on its own: {stays}, and its ledger row was not written. "
            "Make them idempotent (IF NOT EXISTS), then redeploy"
        )
    if not kept:
        return f"{everything}: {advice}"
    not_run = f"; not run: {_tags(later)}" if later else ""
    return f"{kept}Rolled back: {_tags(unit.migrations)}{not_run}: {advice}"


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


def _build_of(unit: Unit, migration: Migration, number: int) -> IndexBuild | None:
    """How statement `number` of `migration` builds its index, if it is an index-only migration's."""
    return next((b for b in unit.builds_of(migration) if b.number == number), None)


def _duplicates(failure: _StatementFailed, unit: Unit) -> str:
    """For a unique index that met duplicate keys: what was dropped, and the query that finds them."""
    build = _build_of(unit, failure.migration, failure.number)
    if failure.sqlstate != UNIQUE_VIOLATION or build is None or build.duplicates is None:
        return ""
    dropped = f" The INVALID index {failure.dropped} its build left was dropped." if failure.dropped else ""
    return f"{dropped} Find the rows sharing a key with: {build.duplicates};"


def _failed(
    failure: _StatementFailed, unit: Unit, progress: Progress, later: Sequence[Migration], limits: Limits
) -> MigrationFailed:
    if failure.error is None:
        error = Untrusted("the statement ended the transaction it ran in (a COMMIT or ROLLBACK no parser could see)")
    else:
        error = Untrusted(failure.error.diag.message_primary or describe(failure.error))
    duplicates = _duplicates(failure, unit)
    if not duplicates and failure.dropped:
        duplicates = f" The INVALID index {failure.dropped} its build left was dropped."
    advice = "remove the duplicates, then redeploy" if duplicates.endswith(";") else "fix the migration, then redeploy"
    hint = _hint(failure, limits.mode) + duplicates
    outcome = _outcome(progress, unit, failure.stays, later, advice=advice)
    # The very first migration of a run on an empty ledger: what exists was there before the run (a later
    # one colliding with an earlier one of the same run is a broken folder, and "fix the migration" is right).
    first = not progress.kept and failure.migration == unit.migrations[0]
    if limits.ledger_was_empty and first and failure.sqlstate in ALREADY_EXISTS:
        hint = _ADOPT
        if unit.kind == "transaction":
            outcome = "Everything was rolled back."  # "fix the migration" would be the wrong advice here
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
        dropped=failure.dropped or None,
    )


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
    if unit.kind == "outside":
        log.info("migrate.outside_transaction", tag=tag, why=unit.why)
    elif unit.kind == "own":
        log.info("migrate.own_transaction", tag=tag, why=unit.why)
    elif unit.kind == "concurrent":
        builds = unit.builds_of(unit.migrations[0])
        tables = sorted({b.table for b in builds if b.concurrently})
        log.info(
            "migrate.concurrent",
            tag=tag,
            count=sum(b.concurrently for b in builds),
            tables=", ".join(tables),
            why=unit.why,
        )


def apply(
    conn: psycopg.Connection[Any], ledger: Ledger, units: Sequence[Unit], limits: Limits, progress: Progress
) -> None:
    """Apply the units in order, re-running a unit on transient failures; `progress.kept` grows as units commit.

    Raises `MigrationFailed` (exit 6) or `GuardViolated` (exit 14); lets connection loss
    (`psycopg.OperationalError`) through for the caller to start a new session.
    """
    log = get_logger()

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
            progress.unit, progress.later, progress.stays = unit, later, ""
            _announce(unit)
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
            except psycopg.Error as error:  # our own step (the ledger row, a cleanup), not a migration statement
                if is_session_lost(error, conn):
                    raise
                raise MigrationFailed(
                    "❌ Migration failed: the database refused the entrypoint's own step ({error}, SQLSTATE "
                    "{sqlstate}) while applying {where}. {outcome}",
                    error=describe(error),
                    sqlstate=error.sqlstate or "none",
                    where=progress.where or unit.migrations[0].tag,
                    outcome=progress.stopped("fix what the message names (a grant, a setting), then redeploy"),
                    tag=unit.migrations[0].tag,
                    kept=[m.tag for m in progress.kept],
                ) from None
            for migration, duration_ms in timings:
                log.info(
                    "migrate.applied", tag=migration.tag, statements=migration.statement_count, duration_ms=duration_ms
                )
            progress.kept.extend(unit.migrations)
            progress.unit, progress.migration = None, None
    finally:
        _timeouts(conn, None)


def _guard_violated(
    changed: _GuardChanged, unit: Unit, progress: Progress, later: Sequence[Migration]
) -> GuardViolated:
    if unit.kind in {"transaction", "own"}:  # checked inside the unit's transaction, which rolled back
        outcome = _outcome(  # but what an own COMMIT of the file committed stays
            progress, unit, progress.stays, later, everything="Everything in this deploy's transaction was rolled back"
        )
    else:
        kept = f"Applied and kept (committed before it): {_tags(progress.kept)}. " if progress.kept else ""
        outcome = (
            f"{kept}{unit.migrations[0].tag} ran outside a transaction, so its changes stay; its ledger row was not "
            "written: fix the migration, then redeploy"
        )
    return GuardViolated(
        "❌ Guard changed: {guard} returned {before} before the migrations and {after} after. {outcome}",
        guard=Untrusted(changed.guard),  # the app's own rows: nothing the entrypoint vouches for
        before=Untrusted(changed.before),
        after=Untrusted(changed.after),
        outcome=outcome,
    )
