"""Carrying out a `DeployPlan` under the lock: back up, mark the restore point, adopt, repair, migrate.

The order is the runbook's: a backup before the first change (a failed backup
changes nothing), the restore point, the baseline a pushed database needs, the
sync's lines and its repair, the lint's findings, then the migrations. When the
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
from entrypoint.deploy import repair
from entrypoint.deploy.prepare import Course, DeployPlan, refuse_ddl
from entrypoint.deploy.progress import Tracker
from entrypoint.logs import get_logger


def _backup(conn: psycopg.Connection[Any], journal: Journal, plan: Plan, settings: Settings) -> None:
    """Dump the database (or reuse a dump of this same state) before the sync or any migration touches it."""
    from entrypoint.backup import dump, reuse
    from entrypoint.db import catalog

    pending = {m.tag for m in plan.to_apply}
    last = [m.tag for m in journal.migrations if m.tag not in pending]
    identity = catalog.server_identity(conn)
    if identity.hidden is not None and settings.backup_reuse_window > 0:
        get_logger().warning("backup.identity_unknown", reason=identity.hidden)
    state = reuse.State(
        database=conn.info.dbname,
        last_tag=last[-1] if last else "empty",
        pending=tuple((m.tag, m.hash) for m in plan.to_apply),
        server=identity.server,
        database_oid=identity.database_oid,
    )
    row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    dump.run(settings, state, server_major=conn.info.server_version // 10000, database_bytes=int(row[0]) if row else 0)


def _restore_point(conn: psycopg.Connection[Any]) -> None:
    """The server's time and WAL position just before the first change: where point-in-time recovery should aim."""
    row = conn.execute("SELECT now(), pg_current_wal_lsn()::text").fetchone()
    if row is None:  # pragma: no cover - a SELECT without FROM returns its row
        return
    moment = row[0].astimezone(UTC)
    get_logger().info(
        "deploy.restore_point",
        server_time=moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        wal_lsn=str(row[1]),
        database=conn.info.dbname,
    )


def _fallback(conn: psycopg.Connection[Any], plan: DeployPlan, settings: Settings, tracker: Tracker) -> Course:
    """SYNC_ON_ERROR=continue after the repair's write failed: drizzle-orm's course, checked as planned."""
    taken = plan.fallback
    if not isinstance(taken, Course):  # a repair planned without a fallback never returns False
        raise taken or RuntimeError("the repair failed with no fallback planned")
    tracker.move(writing=False)  # the repair rolled back: nothing is written yet
    refuse_ddl(taken, settings)
    if plan.backs_up and taken.plan.to_apply and not plan.course.plan.to_apply:  # else the plan's backup covers it
        tracker.move(doing="backing up")
        _backup(conn, plan.journal, taken.plan, settings)
    tracker.move(writing=True)
    return taken


def execute(conn: psycopg.Connection[Any], plan: DeployPlan, settings: Settings, tracker: Tracker) -> None:
    """Write what `plan` says, in the runbook's order; raises an `EntrypointError` on failure."""
    course, ledger = plan.course, plan.ledger
    if plan.backs_up and course.plan.to_apply:
        tracker.move(doing="backing up")
        _backup(conn, plan.journal, course.plan, settings)  # before the first write: a failed backup changes nothing
    if plan.writes and not tracker.state.restore_point:
        _restore_point(conn)
        tracker.move(restore_point=True)
    tracker.move(doing="writing the ledger", writing=True)
    if plan.adopted is not None:
        from entrypoint.deploy import adopt

        adopt.record(conn, ledger, ledger.snapshot(conn), plan.adopted)
    repair.announce(course.plan)  # DESIGN.md's sync block stays whole, after the backup and the restore point
    if not course.plan.snapshot.exists:
        ledger.create(conn)
    if not repair.sync(conn, ledger, course.plan, settings):  # its write failed, SYNC_ON_ERROR=continue
        course = _fallback(conn, plan, settings, tracker)
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
        log.info("migrate.nothing_pending", applied=len(course.plan.rows_after))
    log.info("migrate.done", applied=len(course.plan.to_apply))
    log.info("migrate.all_created")
