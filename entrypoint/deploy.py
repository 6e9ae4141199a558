"""One deploy: read the folder, connect, lock, sync the ledger, migrate, release.

This is the flow the CLI runs before it execs the app. The folder is read
before any connection so bad input fails fast and touches nothing. If the
connection is lost mid-way, the whole session starts again on a new one and
re-plans from the ledger under the lock: a batch that did commit is then seen
as applied, so nothing is ever applied twice.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from entrypoint.backup import find_pg_dump, take_backup
from entrypoint.config import Settings
from entrypoint.database import connect, describe, is_session_lost
from entrypoint.errors import DatabaseUnreachable, OutOfOrder
from entrypoint.journal import Journal, read_journal
from entrypoint.ledger import Ledger
from entrypoint.lock import advisory_lock, lock_key
from entrypoint.logs import get_logger
from entrypoint.plan import LedgerRow, MigrationPlan, plan_migrations
from entrypoint.repair import rows_after_sync, sync_ledger


def _plan(journal: Journal, rows: list[LedgerRow], settings: Settings) -> MigrationPlan:
    plan = plan_migrations(
        journal.migrations, rows, allow_out_of_order=settings.allow_out_of_order, name_keyed=journal.name_keyed
    )
    if plan.out_of_order and not settings.allow_out_of_order:
        tags = [m.tag for m in plan.out_of_order]
        raise OutOfOrder(
            f"❌ {', '.join(tags)} {'is' if len(tags) == 1 else 'are'} older than the newest applied migration "
            "and never applied: drizzle-orm would skip it silently. Regenerate it with drizzle-kit so it sorts "
            "last, or set ALLOW_OUT_OF_ORDER=1 to apply it",
            tags=tags,
        )
    return plan


def _session(journal: Journal, ledger: Ledger, settings: Settings) -> None:
    log = get_logger()
    conn = connect(settings.database_url, timeout=settings.connect_timeout)
    with conn:
        if settings.dry_run:
            rows = sync_ledger(conn, ledger, journal, ledger.read_if_exists(conn), settings)
            _report_dry_run(_plan(journal, rows, settings), journal)
            return
        key = lock_key(conn.info.dbname, ledger.schema, ledger.table)
        with advisory_lock(conn, key, wait_timeout=settings.lock_wait_timeout):
            if settings.backup_dir is not None:
                # Decided on the ledger as it is, before even creating it: a failed backup changes nothing.
                _backup_if_pending(
                    conn,
                    journal=journal,
                    ledger=ledger,
                    rows=ledger.read_if_exists(conn),
                    settings=settings,
                    directory=settings.backup_dir,
                )
            rows = ledger.ensure_and_read(conn)
            rows = sync_ledger(conn, ledger, journal, rows, settings)
            plan = _plan(journal, rows, settings)
            log.info("migrate.start")
            log.info("migrate.folder", folder=str(journal.folder))
            for migration in plan.out_of_order if settings.allow_out_of_order else ():
                log.warning("migrate.out_of_order_applied", tag=migration.tag)
            if plan.to_apply:
                from entrypoint import migrate  # a no-op start never needs the applying machinery

                limits = migrate.Limits(
                    lock_timeout_ms=settings.ddl_lock_timeout_ms,
                    statement_timeout_ms=settings.statement_timeout_ms,
                    attempts=settings.migration_attempts,
                    watch_url=settings.database_url,
                    guards=settings.guards,
                )
                migrate.apply(conn, ledger, plan.to_apply, limits)
            else:
                log.info("migrate.nothing_pending", applied=len(rows))
            log.info("migrate.done", applied=len(plan.to_apply))
            log.info("migrate.all_created")


def _backup_if_pending(
    conn: psycopg.Connection[Any],
    *,
    journal: Journal,
    ledger: Ledger,
    rows: list[LedgerRow],
    settings: Settings,
    directory: Path,
) -> None:
    """Dump the database before the sync or any migration touches it, when something will be applied."""
    after = rows_after_sync(journal, ledger, rows)
    plan = plan_migrations(
        journal.migrations, after, allow_out_of_order=settings.allow_out_of_order, name_keyed=journal.name_keyed
    )
    if not plan.to_apply:
        return
    pending = {m.tag for m in plan.to_apply}
    last = [m.tag for m in journal.migrations if m.tag not in pending]
    log = get_logger()
    log.info("backup.start", directory=str(directory))
    started = time.monotonic()
    path = take_backup(
        settings.database_url,
        directory,
        server_major=conn.info.server_version // 10000,
        dbname=conn.info.dbname,
        last_tag=last[-1] if last else "empty",
        pg_dump=find_pg_dump(settings.pg_dump),
    )
    size = path.stat().st_size
    log.info(
        "backup.done",
        path=str(path),
        bytes=size,
        size_kb=round(size / 1024),
        seconds=round(time.monotonic() - started, 1),
    )


def _report_dry_run(plan: MigrationPlan, journal: Journal) -> None:
    log = get_logger()
    log.info("migrate.folder", folder=str(journal.folder))
    for migration in plan.to_apply:
        log.info("plan.pending", tag=migration.tag, statements=migration.statement_count)
    log.info("plan.summary", count=len(plan.to_apply), tags=[m.tag for m in plan.to_apply])


def run(settings: Settings) -> None:
    """Sync and migrate (or, with `dry_run`, only report); raises an `EntrypointError` on failure."""
    log = get_logger()
    journal = read_journal(settings.migrations_dir)
    ledger = Ledger(settings.migrations_schema, settings.migrations_table, name_keyed=journal.name_keyed)
    if settings.dry_run:
        log.info("plan.dry_run")

    def before_sleep(state: Any) -> None:
        log.warning(
            "db.session_lost",
            reason=describe(state.outcome.exception()),
            wait_s=round(state.upcoming_sleep, 1),
            attempt=state.attempt_number + 1,
            attempts=settings.migration_attempts,
        )

    retrying = Retrying(
        stop=stop_after_attempt(settings.migration_attempts),
        wait=wait_exponential_jitter(initial=0.5, max=10),
        retry=retry_if_exception(is_session_lost),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        retrying(_session, journal, ledger, settings)
    except psycopg.OperationalError as error:
        raise DatabaseUnreachable(
            f"❌ Lost the database connection: {describe(error)}. Nothing half-applied was kept "
            "(the transaction rolled back); check the database's health, then redeploy",
            sqlstate=error.sqlstate,
        ) from None
