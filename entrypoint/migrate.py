"""Applying the planned migrations: all of them in one transaction, as drizzle-orm does.

Each migration's statements run in journal order, then its ledger row is
inserted, and one COMMIT makes the whole batch visible at once. A transient
failure (serialization, deadlock, lock timeout) rolls everything back and the
whole transaction is re-run through tenacity; any other failure rolls back and
stops. Nothing here prints: it reports events.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import psycopg
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from entrypoint.database import is_session_lost
from entrypoint.errors import MigrationFailed
from entrypoint.journal import Migration
from entrypoint.ledger import Ledger
from entrypoint.logs import get_logger

# serialization_failure, deadlock_detected, lock_not_available (lock_timeout).
TRANSIENT_STATES = {
    "40001": "hit a serialization failure",
    "40P01": "was chosen as a deadlock victim",
    "55P03": "timed out waiting for a lock",
}


class _StatementFailed(Exception):
    """Carries the failing statement's position out of the transaction block."""

    def __init__(self, error: psycopg.Error, migration: Migration, number: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.migration = migration
        self.number = number


def _is_transient(error: BaseException) -> bool:
    return isinstance(error, _StatementFailed) and error.error.sqlstate in TRANSIENT_STATES


def _run_once(
    conn: psycopg.Connection[Any],
    ledger: Ledger,
    migrations: Sequence[Migration],
    *,
    lock_timeout_ms: int,
    statement_timeout_ms: int,
) -> list[tuple[Migration, int]]:
    timings = []
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(
            "SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)",
            (f"{lock_timeout_ms}ms", f"{statement_timeout_ms}ms"),
        )
        for migration in migrations:
            started = time.monotonic()
            for number, statement in enumerate(migration.statements, start=1):
                try:
                    cur.execute(statement.encode())
                except psycopg.Error as error:
                    if is_session_lost(error, conn):
                        raise  # the caller starts a new session and re-plans from the ledger
                    raise _StatementFailed(error, migration, number) from error
            ledger.record(cur, migration)
            timings.append((migration, round((time.monotonic() - started) * 1000)))
    return timings


def apply(
    conn: psycopg.Connection[Any],
    ledger: Ledger,
    migrations: Sequence[Migration],
    *,
    lock_timeout_ms: int,
    statement_timeout_ms: int,
    attempts: int,
) -> None:
    """Apply `migrations` in one transaction, re-running it on transient failures.

    Raises `MigrationFailed` (exit 6) after rolling back; lets connection loss
    (`psycopg.OperationalError`) through for the caller to start a new session.
    """
    log = get_logger()

    def before_sleep(state: Any) -> None:
        failure: _StatementFailed = state.outcome.exception()
        log.warning(
            "migrate.retrying",
            tag=failure.migration.tag,
            sqlstate=failure.error.sqlstate,
            reason=TRANSIENT_STATES.get(failure.error.sqlstate or "", "failed"),
            blockers="",
            attempt=state.attempt_number + 1,
            attempts=attempts,
            wait_s=round(state.upcoming_sleep, 1),
        )

    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential_jitter(initial=1, max=30, jitter=1),
        retry=retry_if_exception(_is_transient),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        timings = retrying(
            _run_once,
            conn,
            ledger,
            migrations,
            lock_timeout_ms=lock_timeout_ms,
            statement_timeout_ms=statement_timeout_ms,
        )
    except _StatementFailed as failure:
        diag = failure.error.diag
        server_message = diag.message_primary or str(failure.error).splitlines()[0]
        total = failure.migration.statement_count
        raise MigrationFailed(
            f"❌ Migration failed: {server_message} (in {failure.migration.tag}, statement "
            f"{failure.number}/{total}). Everything was rolled back: fix the migration, then redeploy",
            tag=failure.migration.tag,
            statement=failure.number,
            statements=total,
            sqlstate=failure.error.sqlstate,
            server_message=server_message,
        ) from None
    for migration, duration_ms in timings:
        log.info(
            "migrate.applied",
            tag=migration.tag,
            statements=migration.statement_count,
            duration_ms=duration_ms,
        )
