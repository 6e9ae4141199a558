"""One deploy: read the folder, connect, lock, plan once, back up, repair the ledger, migrate, release.

This is the flow the CLI runs before it execs the app. The folder is read
before any connection, so bad input fails fast and touches nothing. Under the
lock the ledger is read once and planned once (`plan.plan`); every refusal is
raised before the first write. A dry run prints that same plan, without the
lock, and writes nothing. If the connection is lost mid-way, the whole session
starts again on a new one and re-plans from the ledger under the lock: a batch
that did commit is then seen as applied, so nothing is ever applied twice.
DEPLOY_DEADLINE bounds all of it (`deadline`): when it passes, the run stops
where it is, rolls back, releases the lock and says what it kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC
from typing import TYPE_CHECKING, Any

import psycopg
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from entrypoint.config import Settings
from entrypoint.core import pending as planner
from entrypoint.core.model import Journal, LedgerSnapshot, Migration, Refusal
from entrypoint.core.pending import Plan
from entrypoint.db.connect import UNDEFINED_OBJECT_STATES, connect, describe, is_session_lost, refused
from entrypoint.db.ledger import Ledger
from entrypoint.db.lock import advisory_lock, lock_key
from entrypoint.deploy import repair
from entrypoint.deploy.deadline import Deadline, DeadlinePassed
from entrypoint.errors import (
    DatabaseRefused,
    DatabaseUnreachable,
    DdlRefused,
    DeadlineExceeded,
    EntrypointError,
    Interrupted,
    JournalError,
    MigrationFailed,
    OutOfOrder,
    Untrusted,
    UsageError,
)
from entrypoint.journal import not_in_date_order, read_journal
from entrypoint.launch import SignalReceived
from entrypoint.logs import get_logger

if TYPE_CHECKING:  # the no-op start never needs the transaction planner or the baseline's catalog
    from entrypoint.core.baseline_plan import BaselinePlan
    from entrypoint.core.transactions import Unit


@dataclass
class _Progress:
    """How far the run got, so an interruption or a failure can say exactly what it left behind."""

    doing: str = "connecting"
    writing: bool = False  # the first change (the ledger's creation, a repair, a migration) has begun
    restore_point: bool = False  # printed once per run: a new session after a lost one is not the instant before
    kept: list[Migration] = field(default_factory=list)  # migrations this run committed
    applying: Any = None  # migrate.Progress, once migrations are being applied: where, exactly
    cut: int | None = None  # the backend whose connection was closed because it did not answer a cancel


def _writes(plan: Plan, units: tuple[Unit, ...]) -> bool:
    return not plan.snapshot.exists or bool(plan.repairs) or plan.upgrade is not None or bool(units)


def _refuse_read_only(
    conn: psycopg.Connection[Any], plan: Plan, units: tuple[Unit, ...], *, adopting: bool = False
) -> None:
    """A read-only session (a replica, a read-only role) is said up front, not met at the first write."""
    if not _writes(plan, units) and not adopting:
        return
    row = conn.execute("SELECT current_setting('transaction_read_only') = 'on'").fetchone()
    if row and row[0]:
        raise DatabaseRefused(
            "❌ The database is read-only for this session (a hot standby, or default_transaction_read_only for "
            "this role), and this deploy must write: nothing was changed. Point MIGRATION_DATABASE_URL at the "
            "primary, with a role that can write",
            sqlstate="25006",
        )


def _refuse_guards_that_fail(conn: psycopg.Connection[Any], plan: Plan, settings: Settings) -> None:
    """A guard query that cannot run is a setting to fix (exit 2), found before anything is written.

    One that reads a table (column, schema) not there yet is left to the migrations, which may create
    it (a fresh database): it protects nothing this deploy, and a line says so.
    """
    if not plan.to_apply:
        return  # nothing to guard: a restart pays no query for it
    for guard in settings.guards:
        try:
            with conn.transaction(force_rollback=True):
                conn.execute(guard.encode()).fetchall()
        except psycopg.Error as error:
            if is_session_lost(error, conn):
                raise
            if error.sqlstate in UNDEFINED_OBJECT_STATES:
                get_logger().warning("migrate.guard_not_yet", guard=Untrusted(guard), error=describe(error))
                continue
            raise UsageError(
                "❌ Guard query failed: {error} ({guard}). Fix it in --guard / MIGRATION_GUARDS; nothing was changed",
                error=describe(error),
                guard=Untrusted(guard),
            ) from None


def _refuse_out_of_order(plan: Plan, settings: Settings) -> None:
    if plan.out_of_order and not settings.allow_out_of_order:
        tags = [m.tag for m in plan.out_of_order]
        raise OutOfOrder(
            "❌ {names} {verb} older than the newest applied migration and never applied: drizzle-orm would skip "
            "it silently. Regenerate it with drizzle-kit so it sorts last, or set ALLOW_OUT_OF_ORDER=1 to apply it",
            names=", ".join(tags),
            verb="is" if len(tags) == 1 else "are",
            tags=tags,
        )


def _units(conn: psycopg.Connection[Any], plan: Plan, settings: Settings) -> tuple[Unit, ...]:
    """Where the run will commit (`transactions`); a migration no mode can run is refused here."""
    if not plan.to_apply:
        return ()
    from entrypoint.commands.status import units_for  # the SQL parser, only when something is to be applied

    units = units_for(conn, plan.to_apply, settings)
    if not isinstance(units, Refusal):
        return units
    if units.reason == "rollback":
        raise JournalError("❌ {problem}", problem=units.detail, path=str(settings.migrations_dir))
    raise MigrationFailed("❌ {detail}", detail=units.detail, reason=units.reason)


def _plan(
    conn: psycopg.Connection[Any],
    ledger: Ledger,
    journal: Journal,
    snapshot: LedgerSnapshot,
    settings: Settings,
    *,
    adopting: bool = False,
) -> tuple[Plan, tuple[Unit, ...]]:
    """Plan from the ledger as read once; raise every refusal before anything is written."""
    plan = planner.plan(journal, snapshot, allow_out_of_order=settings.allow_out_of_order)
    try:
        repair.check(conn, ledger, journal, plan)
        _refuse_out_of_order(plan, settings)
        _refuse_guards_that_fail(conn, plan, settings)
        units = _units(conn, plan, settings)
        _refuse_read_only(conn, plan, units, adopting=adopting)
    except EntrypointError:
        repair.announce(plan)  # a refusal reads as the sync's: under its opening lines
        raise
    return plan, units


def _lint(conn: psycopg.Connection[Any], plan: Plan, units: tuple[Unit, ...], settings: Settings) -> tuple[Any, ...]:
    """The DDL lint's findings worth a line (warnings and dangers); DDL_POLICY=refuse stops on them here.

    An index this run builds CONCURRENTLY (INDEX_BUILD) no longer blocks writes: it is not a finding.
    """
    if not plan.to_apply:
        return ()
    from entrypoint.commands import lint
    from entrypoint.core import ddl

    online = {(m.tag, b.number) for u in units for m in u.migrations for b in u.builds_of(m) if b.concurrently}
    found = [
        f for f in ddl.at_least(lint.weighed(conn, plan.to_apply), "warning") if (f.tag, f.statement) not in online
    ]
    if found and settings.ddl_policy == "refuse":
        lint.show(found)
        raise DdlRefused(
            "❌ DDL_POLICY=refuse: {count} pending statements lock, rewrite or break a table (the lines above); "
            "nothing was changed. Make them safe, or allow each one with `-- entrypoint:allow <rule>`, then redeploy",
            count=len(found),
        )
    return tuple(found)


def _carry_on(
    conn: psycopg.Connection[Any], journal: Journal, plan: Plan, settings: Settings, progress: _Progress
) -> tuple[Plan, tuple[Unit, ...], tuple[Any, ...]]:
    """SYNC_ON_ERROR=continue after the repair's write failed: drizzle-orm's course on the ledger as read.

    The repair is one transaction, and it rolled back: nothing is written yet, so this course gets
    every refusal the plan got (a skip, a guard that cannot run, a migration no mode can run,
    DDL_POLICY) and the backup, now, before its first write. Checked here rather than up front,
    so a deploy whose repair succeeds is never refused for migrations it would not run.
    """
    progress.writing = False
    carried_on = planner.unrepaired(journal, plan.snapshot, allow_out_of_order=settings.allow_out_of_order)
    _refuse_out_of_order(carried_on, settings)  # a skip drizzle-orm would make on the unrepaired ledger
    if not plan.to_apply:  # else the plan's own check ran these same guards
        _refuse_guards_that_fail(conn, carried_on, settings)
    units = _units(conn, carried_on, settings)
    found = _lint(conn, carried_on, units, settings)
    if _backs_up(settings) and carried_on.to_apply and not plan.to_apply:  # else the plan's backup covers it
        progress.doing = "backing up"
        _backup(conn, journal, carried_on, settings)
    progress.writing = True
    return carried_on, units, found


def _backs_up(settings: Settings) -> bool:
    return settings.backup_dir is not None or settings.backup_url is not None


def _snapshot(
    conn: psycopg.Connection[Any], ledger: Ledger, journal: Journal, settings: Settings
) -> tuple[LedgerSnapshot, BaselinePlan | None]:
    """The ledger, read once, and with BASELINE_ON_EMPTY on a pushed database the baseline to record.

    The run plans against the ledger as the baseline will leave it; the baseline itself is
    written in the write phase, after every refusal and the backup, like any other change.
    """
    snapshot = ledger.snapshot(conn)
    if not settings.baseline_on_empty or snapshot.rows:
        return snapshot, None
    from entrypoint.commands import baseline  # the catalog and the SQL parser, only for a ledger with no rows
    from entrypoint.core.baseline_plan import ledger_after

    adopted = baseline.on_empty(conn, ledger, journal, snapshot)
    if adopted is None:
        return snapshot, None
    rows = ledger_after(adopted.record, name_keyed=journal.name_keyed)
    return LedgerSnapshot(exists=True, has_names=journal.name_keyed, rows=rows), adopted


def _dry_run(conn: psycopg.Connection[Any], ledger: Ledger, journal: Journal, settings: Settings) -> None:
    snapshot, adopted = _snapshot(conn, ledger, journal, settings)
    if adopted is not None:
        from entrypoint.commands import baseline

        baseline.would_record(ledger, adopted)
    plan, units = _plan(conn, ledger, journal, snapshot, settings, adopting=adopted is not None)
    repair.announce(plan)
    found = _lint(conn, plan, units, settings)
    repair.preview(ledger, plan)
    if found:
        from entrypoint.commands import lint

        lint.show(found)
    log = get_logger()
    log.info("migrate.folder", folder=str(journal.folder))
    from entrypoint.commands.status import show_units

    show_units(units, with_migrations=True)
    log.info("plan.summary", count=len(plan.to_apply), tags=[m.tag for m in plan.to_apply])


def _session(journal: Journal, ledger: Ledger, settings: Settings, progress: _Progress) -> None:
    progress.doing = "connecting"
    conn = connect(settings.database_url, timeout=settings.connect_timeout)
    backend = conn.info.backend_pid
    with conn:
        try:
            _locked_session(conn, journal, ledger, settings, progress)
        except DeadlinePassed:
            if conn.broken:  # psycopg closed it: the server did not answer the cancel
                progress.cut = backend
            raise
        except psycopg.Error as error:
            if is_session_lost(error, conn):
                raise  # run() starts a new session
            raise refused(error, progress.doing) from None


def _locked_session(
    conn: psycopg.Connection[Any], journal: Journal, ledger: Ledger, settings: Settings, progress: _Progress
) -> None:
    progress.doing = "reading the ledger"
    if settings.dry_run:
        _dry_run(conn, ledger, journal, settings)
        return
    key = lock_key(conn.info.dbname, ledger.schema, ledger.table)
    progress.doing = "taking the migration lock"
    with advisory_lock(conn, key, wait_timeout=settings.lock_wait_timeout):
        progress.doing = "reading the ledger"
        read, adopted = _snapshot(conn, ledger, journal, settings)
        plan, units = _plan(conn, ledger, journal, read, settings, adopting=adopted is not None)
        found = _lint(conn, plan, units, settings)
        if _backs_up(settings) and plan.to_apply:
            progress.doing = "backing up"
            _backup(conn, journal, plan, settings)  # before the first write: a failed backup changes nothing
        if (_writes(plan, units) or adopted is not None) and not progress.restore_point:
            _restore_point(conn)
            progress.restore_point = True
        progress.doing, progress.writing = "writing the ledger", True
        if adopted is not None:
            from entrypoint.commands import baseline

            baseline.record(conn, ledger, ledger.snapshot(conn), adopted)
        repair.announce(plan)  # DESIGN.md's sync block stays whole, after the backup and the restore point
        if not plan.snapshot.exists:
            ledger.create(conn)
        if not repair.sync(conn, ledger, plan, settings):  # its write failed, SYNC_ON_ERROR=continue
            plan, units, found = _carry_on(conn, journal, plan, settings, progress)
        if found:
            from entrypoint.commands import lint

            lint.show(found)
        progress.doing = "applying the migrations"
        _migrate(conn, ledger, plan, units, settings=settings, progress=progress)


def _migrate(
    conn: psycopg.Connection[Any],
    ledger: Ledger,
    plan: Plan,
    units: tuple[Unit, ...],
    *,
    settings: Settings,
    progress: _Progress,
) -> None:
    log = get_logger()
    log.info("migrate.start")
    log.info("migrate.folder", folder=str(settings.migrations_dir))
    for migration in plan.out_of_order if settings.allow_out_of_order else ():
        log.warning("migrate.out_of_order_applied", tag=migration.tag)
    if plan.to_apply:
        from entrypoint.deploy import apply as migrate  # a no-op start never needs the applying machinery

        limits = migrate.Limits(
            lock_timeout_ms=settings.ddl_lock_timeout_ms,
            statement_timeout_ms=settings.statement_timeout_ms,
            attempts=settings.migration_attempts,
            watch_url=settings.database_url,
            guards=settings.guards,
            mode=settings.transaction_mode,
            ledger_was_empty=not plan.snapshot.rows,
            heartbeat_s=settings.heartbeat_interval,
        )
        progress.applying = migrate.Progress(kept=progress.kept)
        migrate.apply(conn, ledger, units, limits, progress.applying)
    else:
        log.info("migrate.nothing_pending", applied=len(plan.rows_after))
    log.info("migrate.done", applied=len(plan.to_apply))
    log.info("migrate.all_created")


def _backup(conn: psycopg.Connection[Any], journal: Journal, plan: Plan, settings: Settings) -> None:
    """Dump the database (or reuse a dump of this same state) before the sync or any migration touches it."""
    from entrypoint.backup import dump as backup

    pending = {m.tag for m in plan.to_apply}
    last = [m.tag for m in journal.migrations if m.tag not in pending]
    state = backup.State(
        database=conn.info.dbname,
        last_tag=last[-1] if last else "empty",
        pending=tuple((m.tag, m.hash) for m in plan.to_apply),
    )
    row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    backup.run(
        settings, state, server_major=conn.info.server_version // 10000, database_bytes=int(row[0]) if row else 0
    )


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


def run(settings: Settings) -> None:
    """Sync and migrate (or, with `dry_run`, only report); raises an `EntrypointError` on failure."""
    log = get_logger()
    journal = read_journal(settings.migrations_dir)
    ledger = Ledger(settings.migrations_schema, settings.migrations_table, name_keyed=journal.name_keyed)
    if settings.dry_run:
        log.info("plan.dry_run")
    for tag, newer in not_in_date_order(journal):
        log.warning("journal.not_in_date_order", tag=tag, newer=newer)

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
    progress = _Progress()
    deadline = Deadline(settings.deploy_deadline)
    try:
        with deadline.armed():
            retrying(_session, journal, ledger, settings, progress)
    except SignalReceived as received:
        raise _interrupted(received.signum, progress) from None
    except DeadlinePassed:
        raise _deadline_passed(settings.deploy_deadline, progress) from None
    except psycopg.OperationalError as error:
        kept = ", ".join(m.tag for m in progress.kept)
        outcome = (
            f"Applied and kept (committed before it): {kept}; the rest rolled back"
            if kept
            else "Nothing half-applied was kept (the transaction rolled back)"
        )
        raise DatabaseUnreachable(
            "❌ Lost the database connection: {reason}. {outcome}; check the database's health, then redeploy",
            reason=describe(error),
            outcome=outcome,
            sqlstate=error.sqlstate,
            kept=[m.tag for m in progress.kept],
        ) from None


def _interrupted(signum: int, progress: _Progress) -> Interrupted:
    """What a SIGTERM/SIGINT before the app left behind: nothing, or exactly what this run had committed."""
    import signal

    applying = progress.applying
    if not progress.writing:
        outcome = f"nothing had started (it was {progress.doing}), so nothing was changed. Redeploy when ready"
    elif applying is not None and applying.unit is not None and applying.unit.kind != "transaction":
        # Outside a transaction, or under its own COMMITs: part of the running migration may stay.
        stays = applying.stopped("redeploy to apply the rest")
        outcome = f"the running statement was cancelled and rolled back, and the lock released. {stays}"
    elif progress.kept:
        tags = ", ".join(m.tag for m in progress.kept)
        outcome = (
            f"applied and kept (committed before it): {tags}; the running migration was cancelled and rolled "
            "back, and the lock released. Redeploy to apply the rest"
        )
    else:
        outcome = "the running migration was cancelled and rolled back, and the lock released. Redeploy when ready"
    return Interrupted(
        "❌ Stopped by {name} before the app started: {outcome}",
        name=signal.Signals(signum).name,
        outcome=outcome,
        signal=signum,
    )


_DEADLINE_ADVICE = (
    "redeploy to go on, or apply the rest with no deadline (DEPLOY_DEADLINE=0) from a one-off shell; the "
    "heartbeat lines above say what took the time"
)


def _deadline_passed(seconds: float, progress: _Progress) -> DeadlineExceeded:
    """What DEPLOY_DEADLINE's stop left behind: nothing, or exactly what this run kept."""
    applying = progress.applying
    where = f"in {applying.where}" if applying is not None and applying.where else f"while {progress.doing}"
    if progress.cut is not None:
        stopped = (
            f"the server did not answer the cancel (is backend pid {progress.cut} stopped?), so the connection was "
            "closed: PostgreSQL rolls its transaction back and releases the migration lock when that backend ends "
            f"(SELECT pg_terminate_backend({progress.cut}) if it stays)"
        )
    else:
        stopped = "the running statement was cancelled and rolled back, and the migration lock released"
    if not progress.writing:
        outcome = "nothing had started, so nothing was changed. Redeploy; the lines above say what held it up"
        if progress.cut is not None:
            outcome = f"{stopped}; nothing was changed. Redeploy; the lines above say what held it up"
    elif applying is None:
        outcome = f"{stopped}; no migration had been applied. {_DEADLINE_ADVICE[0].upper()}{_DEADLINE_ADVICE[1:]}"
    else:
        outcome = f"{stopped}. {applying.stopped(_DEADLINE_ADVICE)}"
    return DeadlineExceeded(
        "❌ DEPLOY_DEADLINE ({deadline}) passed {where}, before the app started: {outcome}",
        deadline=f"{seconds:g}s",
        where=where,
        outcome=outcome,
        deadline_s=seconds,
        kept=[m.tag for m in progress.kept],
    )
