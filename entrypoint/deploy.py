"""One deploy: read the folder, connect, lock, sync the ledger, migrate, release.

This is the flow the CLI runs before it execs the app. The folder is read
before any connection so bad input fails fast and touches nothing. If the
connection is lost mid-way, the whole session starts again on a new one and
re-plans from the ledger under the lock: a batch that did commit is then seen
as applied, so nothing is ever applied twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from entrypoint import migrate
from entrypoint.backup import find_pg_dump, take_backup
from entrypoint.config import Settings
from entrypoint.database import connect, describe, is_session_lost
from entrypoint.errors import DatabaseUnreachable, LedgerRefused, OutOfOrder, SyncFailed
from entrypoint.journal import Journal, read_journal
from entrypoint.ledger import Ledger
from entrypoint.lock import advisory_lock, lock_key
from entrypoint.logs import get_logger
from entrypoint.plan import LedgerRow, MigrationPlan, plan_migrations
from entrypoint.sync import Refusal, SyncPlan, UpgradePlan, plan_name_sync, plan_sync, plan_upgrade


def sync_ledger(
    conn: psycopg.Connection[Any], ledger: Ledger, journal: Journal, rows: list[LedgerRow], settings: Settings
) -> list[LedgerRow]:
    """Repair a drifted ledger (or only describe the repair on a dry run); return the rows as they now read.

    Raises `LedgerRefused` (exit 7) for an unsafe ledger, `SyncFailed` (exit 9)
    when the repair errors and SYNC_ON_ERROR=fail.
    """
    log = get_logger()
    log.info("sync.start")
    log.info("sync.rows", rows=len(rows))
    if journal.name_keyed:
        return _sync_names(conn, ledger, journal, rows, settings)
    plan = plan_sync(journal.migrations, rows)
    if isinstance(plan, Refusal):
        raise LedgerRefused(f"❌ Ledger sync refused, nothing was changed: {plan.detail}", reason=plan.reason)
    require_evidence(conn, journal, plan.by_position, ledger)
    if not plan.repairs:
        log.info("sync.in_sync")
        log.info("sync.ready")
        return rows
    log.warning("sync.drift")
    log.info("sync.repairing", count=len(plan.repairs))
    for repair in plan.repairs:
        log.info("sync.row_repaired", old_id=repair.old.id, new_id=repair.new.id, tag=repair.tag)
    if settings.dry_run:
        log.info("sync.dry_run", count=len(plan.repairs))
        return list(plan.rows_after)
    reason = "drift: rows rewritten to match meta/_journal.json"
    if not _write(conn, ledger, settings, lambda: ledger.repair(conn, plan.repairs, reason=reason)):
        return rows
    log.info("sync.repaired", count=len(plan.repairs))
    log.info("sync.ready")
    return list(plan.rows_after)


def require_evidence(conn: psycopg.Connection[Any], journal: Journal, tags: Sequence[str], ledger: Ledger) -> None:
    """Rows matched only by position must be backed by the schema: what those migrations create must exist.

    Without this, a stray row would mark the next pending migration as applied
    and it would never run. Raises `LedgerRefused` (exit 7) when objects are missing.
    """
    if not tags:
        return
    from entrypoint.verify import CATALOG, expected_objects  # the SQL parser, only on this rare path

    last = max(i for i, m in enumerate(journal.migrations) if m.tag in tags)
    model, _ = expected_objects(journal.migrations[: last + 1])
    catalog = {tuple(row) for row in conn.execute(CATALOG)}
    for tag in tags:
        objects = [obj for obj, owner in model.live.items() if owner == tag]
        missing = [obj for obj in objects if (obj.kind, obj.schema, obj.name, obj.parent) not in catalog]
        if missing:
            raise LedgerRefused(
                f"❌ Ledger sync refused, nothing was changed: a ledger row matches {tag} only by position, but "
                f"{len(missing)} of the {len(objects)} objects it creates are missing (e.g. {missing[0].kind} "
                f"{missing[0].describe()}), so it was never applied. Delete that row from {ledger.qualified_name} "
                "by hand, then redeploy",
                reason="evidence",
            )


def _write(conn: psycopg.Connection[Any], ledger: Ledger, settings: Settings, write: Callable[[], None]) -> bool:
    """Run a ledger write; on a database error, follow SYNC_ON_ERROR. True when it was written."""
    try:
        write()
    except psycopg.Error as error:
        if is_session_lost(error, conn):
            raise
        message = (
            f"❌ Ledger sync failed: {describe(error)}. Grant this user UPDATE on {ledger.qualified_name} "
            "and CREATE on its schema, or repair the ledger by hand"
        )
        if settings.sync_on_error == "fail":
            raise SyncFailed(message) from None
        log = get_logger()
        log.error("sync.failed", message=message, sqlstate=error.sqlstate)
        log.warning("sync.error_ignored")
        return False
    return True


def _upgrade_ledger(
    conn: psycopg.Connection[Any], ledger: Ledger, journal: Journal, rows: list[LedgerRow], settings: Settings
) -> list[LedgerRow] | None:
    """Name a 0.45 ledger's rows for 1.0 folders; None when the write failed and SYNC_ON_ERROR=continue."""
    log = get_logger()
    upgrade = plan_upgrade(journal.migrations, rows)
    if isinstance(upgrade, Refusal):
        raise LedgerRefused(
            f"❌ Ledger upgrade for Drizzle 1.0 refused, nothing was changed: {upgrade.detail}",
            reason=upgrade.reason,
        )
    require_evidence(conn, journal, upgrade.by_position, ledger)
    log.warning("sync.upgrade", count=len(rows))
    for repair in upgrade.repairs:
        log.info("sync.row_named", id=repair.old.id, name=repair.tag)
    if settings.dry_run:
        log.info("sync.dry_run", count=len(upgrade.repairs))
        return list(upgrade.rows_after)
    if not _write(conn, ledger, settings, lambda: ledger.name_rows(conn, upgrade.repairs, upgrade=True)):
        return None
    ledger.has_names = True
    log.info("sync.upgraded", count=len(upgrade.repairs))
    return list(upgrade.rows_after)


def _sync_names(
    conn: psycopg.Connection[Any], ledger: Ledger, journal: Journal, rows: list[LedgerRow], settings: Settings
) -> list[LedgerRow]:
    """drizzle-orm 1.0 folders: upgrade a 0.45 ledger, then match rows by name and report what does not fit."""
    log = get_logger()
    if not ledger.has_names:
        upgraded = _upgrade_ledger(conn, ledger, journal, rows, settings)
        if upgraded is None:
            return rows
        rows = upgraded
    names = plan_name_sync(journal.migrations, rows)
    for row in names.unknown:
        log.warning("sync.unknown_row", id=row.id, name=row.name or "NULL", hash=row.hash)
    for row, tag in names.changed:
        log.warning("sync.hash_changed", id=row.id, tag=tag)
    if names.renames:
        log.warning("sync.drift")
        for repair in names.renames:
            log.info("sync.row_renamed", id=repair.old.id, old_name=repair.old.name, new_name=repair.tag)
        if not settings.dry_run and not _write(
            conn, ledger, settings, lambda: ledger.name_rows(conn, names.renames, upgrade=False)
        ):
            return rows
    elif not names.unknown and not names.changed:
        log.info("sync.in_sync")
    log.info("sync.ready")
    return list(names.rows_after)


def rows_after_sync(journal: Journal, ledger: Ledger, rows: list[LedgerRow]) -> list[LedgerRow]:
    """The rows as the sync will leave them (pure: nothing is written), for deciding on a backup."""
    if not journal.name_keyed:
        repaired = plan_sync(journal.migrations, rows)
        return list(repaired.rows_after) if isinstance(repaired, SyncPlan) else rows
    if not ledger.has_names:
        upgrade = plan_upgrade(journal.migrations, rows)
        rows = list(upgrade.rows_after) if isinstance(upgrade, UpgradePlan) else rows
    return list(plan_name_sync(journal.migrations, rows).rows_after)


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
            rows = ledger.ensure_and_read(conn)
            if settings.backup_dir is not None:
                _backup_if_pending(
                    conn, journal=journal, ledger=ledger, rows=rows, settings=settings, directory=settings.backup_dir
                )
            rows = sync_ledger(conn, ledger, journal, rows, settings)
            plan = _plan(journal, rows, settings)
            log.info("migrate.start")
            log.info("migrate.folder", folder=str(journal.folder))
            for migration in plan.out_of_order if settings.allow_out_of_order else ():
                log.warning("migrate.out_of_order_applied", tag=migration.tag)
            if plan.to_apply:
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
    applied = {(r.hash, r.created_at) for r in after}
    last = [m.tag for m in journal.migrations if (m.hash, m.when) in applied]
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
