"""Applying the planned migrations, as drizzle-orm does, and where it cannot.

Consecutive migrations run in one transaction, as drizzle-orm runs all of them:
each migration's statements in journal order, then its ledger row, then one
COMMIT. A migration holding a statement PostgreSQL refuses inside a transaction
(`CREATE INDEX CONCURRENTLY`, `VACUUM`, ...) runs on its own after the ones
before it have committed, statement by statement, and its ledger row is written
only once every statement has succeeded.

Every statement runs with `lock_timeout = DDL_LOCK_TIMEOUT`, so DDL queued
behind a long transaction never holds the app's queries up for longer than
that. A transient failure (serialization, deadlock, lock timeout) rolls back
and re-runs the unit through tenacity; anything else stops. Nothing here
prints: it reports events.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_after_delay, wait_exponential_jitter

from entrypoint.blockers import BlockerWatch
from entrypoint.database import describe, is_session_lost
from entrypoint.errors import GuardViolated, MigrationFailed, Untrusted
from entrypoint.ledger import Ledger
from entrypoint.logs import get_logger
from entrypoint.model import Migration
from entrypoint.statements import concurrent_index_name, needs_autocommit

# Retries of one unit stop after MIGRATION_ATTEMPTS or this long, whichever comes first: a deploy
# must end well inside Render's 15 minutes even with DDL_LOCK_TIMEOUT raised.
RETRY_BUDGET_S = 300
# serialization_failure, deadlock_detected, lock_not_available (lock_timeout).
TRANSIENT_STATES = {
    "40001": "hit a serialization failure",
    "40P01": "was chosen as a deadlock victim",
    "55P03": "timed out waiting for a lock",
}


@dataclass(frozen=True)
class Limits:
    """The per-statement timeouts and the retry budget of one deploy."""

    lock_timeout_ms: int
    statement_timeout_ms: int
    attempts: int
    watch_url: str
    guards: tuple[str, ...] = ()


class _GuardChanged(Exception):
    """A guard's result differs after the unit's statements; raised inside the transaction to roll it back."""

    def __init__(self, guard: str, before: str, after: str, *, in_transaction: bool) -> None:
        super().__init__(guard)
        self.guard = guard
        self.before = before
        self.after = after
        self.in_transaction = in_transaction


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


def _check_guards(cur: psycopg.Cursor[Any], guards: Sequence[str], before: list[str], *, tx: bool) -> None:
    for guard, old, new in zip(guards, before, _guard_results(cur, guards), strict=True):
        if old != new:
            raise _GuardChanged(guard, old, new, in_transaction=tx)


class _StatementFailed(Exception):
    """Carries the failing statement's position out of the transaction block."""

    def __init__(self, error: psycopg.Error, migration: Migration, number: int, *, in_transaction: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.migration = migration
        self.number = number
        self.in_transaction = in_transaction
        self.blockers = ""


def _is_transient(error: BaseException) -> bool:
    return isinstance(error, _StatementFailed) and error.error.sqlstate in TRANSIENT_STATES


def split_units(migrations: Sequence[Migration], server_version: int) -> list[tuple[bool, tuple[Migration, ...]]]:
    """(in_transaction, migrations): runs of ordinary migrations, and each non-transactional one alone."""
    units: list[tuple[bool, tuple[Migration, ...]]] = []
    for migration in migrations:
        alone = any(needs_autocommit(s, server_version) for s in migration.statements)
        if alone:
            units.append((False, (migration,)))
        elif units and units[-1][0]:
            units[-1] = (True, (*units[-1][1], migration))
        else:
            units.append((True, (migration,)))
    return units


def _execute(conn: psycopg.Connection[Any], cur: psycopg.Cursor[Any], migration: Migration, tx: bool) -> None:
    for number, statement in enumerate(migration.statements, start=1):
        try:
            if not tx:
                _drop_invalid_index(cur, statement)
            cur.execute(statement.encode())
        except psycopg.Error as error:
            if is_session_lost(error, conn):
                raise  # the caller starts a new session and re-plans from the ledger
            raise _StatementFailed(error, migration, number, in_transaction=tx) from error


def _drop_invalid_index(cur: psycopg.Cursor[Any], statement: str) -> None:
    """A failed concurrent build leaves an INVALID index behind; drop it so the retry can build it."""
    name = concurrent_index_name(statement)
    if name is None:
        return
    row = cur.execute(
        "SELECT n.nspname, c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE i.indexrelid = to_regclass(%s) AND NOT i.indisvalid",
        (name,),
    ).fetchone()
    if row:
        get_logger().warning("migrate.invalid_index_dropped", index=f"{row[0]}.{row[1]}")
        cur.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(row[0], row[1])))


def _timeouts(cur: psycopg.Cursor[Any], limits: Limits, *, local: bool) -> None:
    cur.execute(
        "SELECT set_config('lock_timeout', %s, %s), set_config('statement_timeout', %s, %s)",
        (f"{limits.lock_timeout_ms}ms", local, f"{limits.statement_timeout_ms}ms", local),
    )


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _run_in_transaction(
    conn: psycopg.Connection[Any], ledger: Ledger, unit: tuple[Migration, ...], limits: Limits
) -> list[tuple[Migration, int]]:
    timings = []
    with conn.transaction(), conn.cursor() as cur:
        if limits.guards:
            # One snapshot for the whole unit: only our own changes can move a guard.
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        _timeouts(cur, limits, local=True)
        before = _guard_results(cur, limits.guards)
        for migration in unit:
            started = time.monotonic()
            _execute(conn, cur, migration, tx=True)
            ledger.record(cur, migration)
            timings.append((migration, _elapsed_ms(started)))
        _check_guards(cur, limits.guards, before, tx=True)
    return timings


def _run_alone(
    conn: psycopg.Connection[Any], ledger: Ledger, migration: Migration, limits: Limits
) -> list[tuple[Migration, int]]:
    with conn.cursor() as cur:
        _timeouts(cur, limits, local=False)
        try:
            before = _guard_results(cur, limits.guards)
            started = time.monotonic()
            _execute(conn, cur, migration, tx=False)
            _check_guards(cur, limits.guards, before, tx=False)
            ledger.record(cur, migration)  # only once every statement has succeeded
            return [(migration, _elapsed_ms(started))]
        finally:
            if not conn.broken:
                cur.execute("RESET lock_timeout; RESET statement_timeout")


def _run_unit(
    conn: psycopg.Connection[Any], ledger: Ledger, unit: tuple[Migration, ...], limits: Limits, tx: bool
) -> list[tuple[Migration, int]]:
    with BlockerWatch(limits.watch_url, conn.info.backend_pid) as watch:
        try:
            return _run_in_transaction(conn, ledger, unit, limits) if tx else _run_alone(conn, ledger, unit[0], limits)
        except _StatementFailed as failure:
            failure.blockers = watch.describe()
            raise


def _failed(failure: _StatementFailed) -> MigrationFailed:
    diag = failure.error.diag
    server_message = Untrusted(diag.message_primary or describe(failure.error))
    if failure.in_transaction:
        outcome = "Everything was rolled back: fix the migration, then redeploy"
    else:
        outcome = (
            "This migration runs outside a transaction: the statements before it stay applied and its "
            "ledger row was not written. Make its statements idempotent (IF NOT EXISTS), then redeploy"
        )
    return MigrationFailed(
        "❌ Migration failed: {error} (in {tag}, statement {statement}/{statements}{blockers}). {outcome}",
        error=server_message,
        tag=failure.migration.tag,
        statement=failure.number,
        statements=failure.migration.statement_count,
        blockers=Untrusted(failure.blockers),
        outcome=outcome,
        sqlstate=failure.error.sqlstate,
    )


def apply(conn: psycopg.Connection[Any], ledger: Ledger, migrations: Sequence[Migration], limits: Limits) -> None:
    """Apply `migrations`, re-running a unit on transient failures.

    Raises `MigrationFailed` (exit 6); lets connection loss (`psycopg.OperationalError`)
    through for the caller to start a new session.
    """
    log = get_logger()

    def before_sleep(state: Any) -> None:
        failure: _StatementFailed = state.outcome.exception()
        log.warning(
            "migrate.retrying",
            tag=failure.migration.tag,
            sqlstate=failure.error.sqlstate,
            reason=TRANSIENT_STATES.get(failure.error.sqlstate or "", "failed"),
            blockers=failure.blockers,
            attempt=state.attempt_number + 1,
            attempts=limits.attempts,
            wait_s=round(state.upcoming_sleep, 1),
        )

    for tx, unit in split_units(migrations, conn.info.server_version):
        if not tx:
            log.info("migrate.outside_transaction", tag=unit[0].tag)
        retrying = Retrying(
            stop=stop_after_attempt(limits.attempts) | stop_after_delay(RETRY_BUDGET_S),
            wait=wait_exponential_jitter(initial=1, max=30, jitter=1),
            retry=retry_if_exception(_is_transient),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            timings = retrying(_run_unit, conn, ledger, unit, limits, tx)
        except _StatementFailed as failure:
            raise _failed(failure) from None
        except _GuardChanged as changed:
            outcome = (
                "Everything in this deploy's transaction was rolled back"
                if changed.in_transaction
                else f"{unit[0].tag} ran outside a transaction, so its changes stay; its ledger row was not written"
            )
            raise GuardViolated(
                "❌ Guard changed: {guard} returned {before} before the migrations and {after} after. "
                "{outcome}: fix the migration, then redeploy",
                guard=changed.guard,
                before=changed.before,
                after=changed.after,
                outcome=outcome,
            ) from None
        for migration, duration_ms in timings:
            log.info(
                "migrate.applied",
                tag=migration.tag,
                statements=migration.statement_count,
                duration_ms=duration_ms,
            )
