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

import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from entrypoint import plan as planner
from entrypoint import repair
from entrypoint.config import Settings
from entrypoint.database import connect, describe, is_session_lost, refused
from entrypoint.deadline import Deadline, DeadlinePassed
from entrypoint.errors import (
    DatabaseRefused,
    DatabaseUnreachable,
    DeadlineExceeded,
    Interrupted,
    JournalError,
    MigrationFailed,
    OutOfOrder,
)
from entrypoint.journal import not_in_date_order, read_journal
from entrypoint.launch import SignalReceived
from entrypoint.ledger import Ledger
from entrypoint.lock import advisory_lock, lock_key
from entrypoint.logs import get_logger
from entrypoint.model import Journal, Migration, Refusal
from entrypoint.plan import Plan
from entrypoint.transactions import Unit


@dataclass
class _Progress:
    """How far the run got, so an interruption or a failure can say exactly what it left behind."""

    doing: str = "connecting"
    writing: bool = False  # the first change (the ledger's creation, a repair, a migration) has begun
    kept: list[Migration] = field(default_factory=list)  # migrations this run committed
    applying: Any = None  # migrate.Progress, once migrations are being applied: where, exactly
    cut: int | None = None  # the backend whose connection was closed because it did not answer a cancel


def _writes(plan: Plan, units: tuple[Unit, ...]) -> bool:
    return not plan.snapshot.exists or bool(plan.repairs) or plan.upgrade is not None or bool(units)


def _refuse_read_only(conn: psycopg.Connection[Any], plan: Plan, units: tuple[Unit, ...]) -> None:
    """A read-only session (a replica, a read-only role) is said up front, not met at the first write."""
    if not _writes(plan, units):
        return
    row = conn.execute("SELECT current_setting('transaction_read_only') = 'on'").fetchone()
    if row and row[0]:
        raise DatabaseRefused(
            "❌ The database is read-only for this session (a hot standby, or default_transaction_read_only for "
            "this role), and this deploy must write: nothing was changed. Point MIGRATION_DATABASE_URL at the "
            "primary, with a role that can write",
            sqlstate="25006",
        )


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
    from entrypoint.status import units_for  # the SQL parser, only when something is to be applied

    units = units_for(conn, plan.to_apply, settings)
    if not isinstance(units, Refusal):
        return units
    if units.reason == "rollback":
        raise JournalError("❌ {problem}", problem=units.detail, path=str(settings.migrations_dir))
    raise MigrationFailed("❌ {detail}", detail=units.detail, reason=units.reason)


def _plan(
    conn: psycopg.Connection[Any], ledger: Ledger, journal: Journal, settings: Settings
) -> tuple[Plan, tuple[Unit, ...]]:
    """Read the ledger once and plan; raise every refusal before anything is written."""
    plan = planner.plan(journal, ledger.snapshot(conn), allow_out_of_order=settings.allow_out_of_order)
    repair.check(conn, ledger, journal, plan)
    _refuse_out_of_order(plan, settings)
    units = _units(conn, plan, settings)
    _refuse_read_only(conn, plan, units)
    return plan, units


def _dry_run(conn: psycopg.Connection[Any], ledger: Ledger, journal: Journal, settings: Settings) -> None:
    plan, units = _plan(conn, ledger, journal, settings)
    repair.preview(ledger, plan)
    log = get_logger()
    log.info("migrate.folder", folder=str(journal.folder))
    from entrypoint.status import show_units

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
        plan, units = _plan(conn, ledger, journal, settings)
        if settings.backup_dir is not None and plan.to_apply:
            progress.doing = "backing up"
            _backup(conn, journal, plan, settings)  # before the first write: a failed backup changes nothing
        progress.doing, progress.writing = "writing the ledger", True
        if not plan.snapshot.exists:
            ledger.create(conn)
        if not repair.sync(conn, ledger, plan, settings):
            plan = planner.unrepaired(journal, ledger.snapshot(conn), allow_out_of_order=settings.allow_out_of_order)
            units = _units(conn, plan, settings)
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
        from entrypoint import migrate  # a no-op start never needs the applying machinery

        limits = migrate.Limits(
            lock_timeout_ms=settings.ddl_lock_timeout_ms,
            statement_timeout_ms=settings.statement_timeout_ms,
            attempts=settings.migration_attempts,
            watch_url=settings.database_url,
            guards=settings.guards,
            mode=settings.transaction_mode,
            heartbeat_s=settings.heartbeat_interval,
        )
        progress.applying = migrate.Progress(kept=progress.kept)
        migrate.apply(conn, ledger, units, limits, progress.applying)
    else:
        log.info("migrate.nothing_pending", applied=len(plan.rows_after))
    log.info("migrate.done", applied=len(plan.to_apply))
    log.info("migrate.all_created")


def _backup(conn: psycopg.Connection[Any], journal: Journal, plan: Plan, settings: Settings) -> None:
    """Dump the database before the sync or any migration touches it."""
    from entrypoint.backup import find_pg_dump, take_backup

    assert settings.backup_dir is not None  # noqa: S101 - the caller checked
    pending = {m.tag for m in plan.to_apply}
    last = [m.tag for m in journal.migrations if m.tag not in pending]
    log = get_logger()
    log.info("backup.start", directory=str(settings.backup_dir))
    started = time.monotonic()
    path = take_backup(
        settings.database_url,
        settings.backup_dir,
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
        raise DatabaseUnreachable(
            "❌ Lost the database connection: {reason}. Nothing half-applied was kept "
            "(the transaction rolled back); check the database's health, then redeploy",
            reason=describe(error),
            sqlstate=error.sqlstate,
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
