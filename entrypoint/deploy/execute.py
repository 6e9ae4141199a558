"""Carrying out a `DeployPlan` under the lock: back up, mark the restore point, adopt, repair, migrate.

The order is the runbook's: a backup before the first change (a failed backup
changes nothing), the restore point, the baseline a pushed database needs, the
sync's lines and its repair, the lint's findings, then the migrations. The
backup is recorded in the audit table (where it is, the state it saves, the
restore point) just before the first ledger change, so `rollback` can point to it. When the
repair's write fails and SYNC_ON_ERROR=continue, the plan's `fallback` is taken
as planned (its refusal raised, its backup taken): the repair is one
transaction that rolled back, so nothing has been written yet.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import psycopg

from entrypoint.config import Settings
from entrypoint.core.model import Journal
from entrypoint.core.pending import Plan
from entrypoint.db.connect import describe, is_session_lost
from entrypoint.db.ledger import Ledger
from entrypoint.deploy import repair
from entrypoint.deploy.prepare import Course, DeployPlan, refuse_ddl
from entrypoint.deploy.progress import Tracker
from entrypoint.logs import get_logger


def _backup(conn: psycopg.Connection[Any], journal: Journal, plan: Plan, settings: Settings) -> dict[str, Any]:
    """Dump the database (or reuse a dump of this same state) before the sync or any migration touches it.

    Returns what the audit table records of it (`backed_up`), once the restore point is known.
    """
    pending = {m.tag for m in plan.to_apply}
    last = [m.tag for m in journal.migrations if m.tag not in pending]
    return backup(conn, settings, last[-1] if last else "empty", tuple((m.tag, m.hash) for m in plan.to_apply))


def backup(
    conn: psycopg.Connection[Any],
    settings: Settings,
    last_tag: str,
    pending: tuple[tuple[str, str], ...],
    undoes: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """The backup of the database at `last_tag` before `pending` (tag, hash) changes: where it is, what it saves.

    `undoes`: a rollback's backup, taken before it reverses those tags.
    """
    from entrypoint.backup import dump, reuse
    from entrypoint.db import catalog

    identity = catalog.server_identity(conn)
    if identity.hidden is not None and settings.backup_reuse_window > 0:
        get_logger().warning("backup.identity_unknown", reason=identity.hidden)
    state = reuse.State(
        database=conn.info.dbname,
        last_tag=last_tag,
        pending=pending,
        server=identity.server,
        database_oid=identity.database_oid,
        undoes=undoes,
    )
    row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    taken = dump.run(
        settings, state, server_major=conn.info.server_version // 10000, database_bytes=int(row[0]) if row else 0
    )
    return {
        "path": str(taken.path) if taken.path else None,
        "url": taken.url,
        "bytes": taken.size,
        "database": state.database,
        "last_tag": state.last_tag,
        "pending": [tag for tag, _ in pending] if undoes is None else [],
        "reverses": list(undoes) if undoes is not None else [],
        "for": "deploy" if undoes is None else "rollback",
        "digest": state.digest,
    }


def restore_point(conn: psycopg.Connection[Any], *, rollback: bool = False) -> dict[str, str]:
    """The server's time and WAL position just before the first change (where point-in-time recovery should aim)."""
    # The insert position, not the write position: with synchronous_commit=off the latter can lag behind
    # transactions already committed, and recovery to it would lose them.
    row = conn.execute("SELECT now(), pg_current_wal_insert_lsn()::text").fetchone()
    moment = row[0].astimezone(UTC) if row else None
    time = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z") if moment else "?"
    lsn = str(row[1]) if row else "?"
    log, database = get_logger(), conn.info.dbname
    if rollback:
        log.info("rollback.restore_point", server_time=time, wal_lsn=lsn, database=database)
    else:
        log.info("deploy.restore_point", server_time=time, wal_lsn=lsn, database=database)
    return {"server_time": time, "wal_lsn": lsn}


def backed_up(conn: psycopg.Connection[Any], ledger: Ledger, taken: dict[str, Any], tracker: Tracker) -> None:
    """Record the backup in the audit table, with the restore point, before the run's first ledger change.

    A user that may not create the audit table still deploys (the backup exists, its record does not):
    a warning says where it is, since no later rollback will name it.
    """
    try:
        ledger.note_backup(conn, taken | {"restore_point": tracker.state.restore_point})
    except psycopg.Error as error:
        if is_session_lost(error, conn):
            raise
        get_logger().warning(
            "backup.not_recorded",
            audit=ledger.audit_name,
            error=describe(error),
            location=taken["url"] or taken["path"],
        )


def _fallback(
    conn: psycopg.Connection[Any], plan: DeployPlan, settings: Settings, tracker: Tracker
) -> tuple[Course, dict[str, Any] | None]:
    """SYNC_ON_ERROR=continue after the repair's write failed: drizzle-orm's course, checked as planned."""
    taken = plan.fallback
    if not isinstance(taken, Course):  # a repair planned without a fallback never returns False
        raise taken or RuntimeError("the repair failed with no fallback planned")
    tracker.move(writing=False)  # the repair rolled back: nothing is written yet
    refuse_ddl(taken, settings)
    copy = None
    if plan.backs_up and taken.plan.to_apply and not plan.course.plan.to_apply:  # else the plan's backup covers it
        tracker.move(doing="backing up")
        copy = _backup(conn, plan.journal, taken.plan, settings)
    tracker.move(writing=True)
    return taken, copy


def execute(conn: psycopg.Connection[Any], plan: DeployPlan, settings: Settings, tracker: Tracker) -> None:
    """Write what `plan` says, in the runbook's order; raises an `EntrypointError` on failure."""
    course, ledger = plan.course, plan.ledger
    copy = None
    if plan.backs_up and course.plan.to_apply:
        tracker.move(doing="backing up")
        copy = _backup(conn, plan.journal, course.plan, settings)  # before the first write: a failure changes nothing
    if plan.writes and not tracker.state.restore_point:
        tracker.move(restore_point=restore_point(conn))
    tracker.move(doing="writing the ledger", writing=True)
    if plan.adopted is not None:
        from entrypoint.deploy import adopt

        adopt.record(conn, ledger, ledger.snapshot(conn), plan.adopted)
    repair.announce(course.plan)  # DESIGN.md's sync block stays whole, after the backup and the restore point
    if not course.plan.snapshot.exists:
        ledger.create(conn)
    if copy is not None:  # the ledger's schema exists now: the audit table can live beside it
        backed_up(conn, ledger, copy, tracker)
    if not repair.sync(conn, ledger, course.plan, settings):  # its write failed, SYNC_ON_ERROR=continue
        course, copy = _fallback(conn, plan, settings, tracker)
        if copy is not None:
            backed_up(conn, ledger, copy, tracker)
    if course.findings:
        from entrypoint.deploy import findings

        findings.show(course.findings)
    tracker.move(doing="applying the migrations")
    _migrate(conn, plan, course, settings, tracker)


def _migrate(
    conn: psycopg.Connection[Any], plan: DeployPlan, course: Course, settings: Settings, tracker: Tracker
) -> None:
    log = get_logger()
    log.info("migrate.start")
    log.info("migrate.folder", folder=str(settings.migrations_dir))
    for migration in course.plan.out_of_order if settings.allow_out_of_order else ():
        log.warning("migrate.out_of_order_applied", tag=migration.tag)
    if course.plan.to_apply:
        from entrypoint.deploy.apply import apply  # a no-op start never needs the applying machinery

        tracker.move(applying=True)
        apply(conn, plan.ledger, course.units, plan.limits, tracker)
    else:
        applied = len(course.plan.rows_after) - len(course.plan.ahead)  # a newer release's rows are not this folder's
        log.info("migrate.nothing_pending", applied=applied)
    log.info("migrate.done", applied=len(course.plan.to_apply))
    log.info("migrate.all_created")
