"""The ledger sync as a step of the deploy: log the lines, refuse, write the repair, follow SYNC_ON_ERROR.

`sync.py` decides (pure); this module carries its decision out on the
connection it is handed, under the caller's lock. It replaces `pnpm db:sync`.
For drizzle-kit 1.0 folders it also upgrades a 0.45 ledger and checks rows by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from entrypoint.config import Settings
from entrypoint.database import describe, is_session_lost
from entrypoint.errors import LedgerRefused, SyncFailed
from entrypoint.journal import Journal
from entrypoint.ledger import Ledger
from entrypoint.logs import get_logger
from entrypoint.plan import LedgerRow
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
