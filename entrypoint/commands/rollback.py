"""`rollback --to TAG | --last N`: reverse the newest applied migrations, under the lock, with the deploy's runners.

The runbook's "Rollback des Indexes Uniquement" as one command. The flow: read the
folder and every down file (first: a broken folder never touches the database),
connect, take the migration lock, read the ledger once and decide everything
(`core.rollback_plan`): which migrations, newest first; each one's reversing
statements, from its down file or its own parse (`core.reverse`); which index
drops go CONCURRENTLY, by live table sizes; and every refusal, before any change
(exit 24): a statement with no safe inverse (pointing to `restore` with the
backup the audit table recorded before that deploy), a ledger not in step, data
a step would drop (`db.weigh`) without --allow-data-loss, or with it but no
BACKUP_DIR/BACKUP_URL to back it up first. It prints the plan, asks (--yes), backs
up, prints the restore point, records the backup, then runs one `undo` unit per
migration through `deploy.apply`: its own transaction (or outside one when it
drops CONCURRENTLY), DDL_LOCK_TIMEOUT retries, the heartbeat, MIGRATION_GUARDS,
DEPLOY_DEADLINE and signals, each deleting its migration's ledger row (audited,
reason rollback). What was reversed before a failure stays reversed; the ❌ line
says so (`deploy.failures`, in the rollback's words). `--dry-run` prints the
same plan without the lock and changes nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from entrypoint.commands import Help
from entrypoint.config import Settings
from entrypoint.core import pending
from entrypoint.core.model import Journal, Migration, Refusal
from entrypoint.core.online_parts import LiveTable, Policy
from entrypoint.core.reverse import Irreversible, Reversal
from entrypoint.core.rollback_plan import Choice, Sent, backup_before, choose, cost, loss_text, restore_advice, sent
from entrypoint.core.text import plural
from entrypoint.core.transactions import Unit
from entrypoint.db.connect import connect, is_session_lost, refused
from entrypoint.db.ledger import Ledger
from entrypoint.db.lock import advisory_lock, lock_key
from entrypoint.db.weigh import CAP, Weighed
from entrypoint.deploy.deadline import DeadlinePassed
from entrypoint.deploy.failures import told
from entrypoint.deploy.progress import Tracker
from entrypoint.deploy.runner import Limits
from entrypoint.errors import (
    BackupFailed,
    DeadlineExceeded,
    GuardViolated,
    LockNotHeld,
    LockTimeout,
    RollbackFailed,
    RollbackRefused,
    UsageError,
)
from entrypoint.journal import down_path, read_down, read_journal
from entrypoint.logs import get_logger

HELP = Help(
    "Reverse the applied migrations after --to TAG (or the last N, --last N), newest first, under the migration "
    "lock: each from its down file (<tag>.down.sql, or <folder>/down.sql in the 1.0 layout) or computed from its "
    "own statements for the kinds that reverse without loss (CREATE INDEX, CREATE TABLE while empty, ADD COLUMN "
    "while only NULL or its default, CREATE TYPE/VIEW/FUNCTION/…, RENAME, SET NOT NULL, SET DEFAULT), each in its "
    "own transaction (index drops on large tables CONCURRENTLY, outside one), its ledger row then deleted and "
    "audited. A statement with no safe inverse, or data that would be lost without --allow-data-loss, refuses the "
    "whole rollback before any change. Asks for confirmation (--yes; required off a terminal); --dry-run prints "
    'each reversing statement and its cost. See the README\'s "Rolling back".',
    "the migrations were reversed, or there was nothing to reverse",
    (
        LockTimeout.exit_code,
        LockNotHeld.exit_code,
        GuardViolated.exit_code,
        BackupFailed.exit_code,
        DeadlineExceeded.exit_code,
        RollbackRefused.exit_code,
        RollbackFailed.exit_code,
    ),
)
NOTHING_CHANGED = "❌ Rollback refused, nothing was changed: "


@dataclass(frozen=True)
class Decided:
    """Everything the rollback will do, decided under the lock before the first change."""

    choice: Choice
    reversals: tuple[Reversal, ...] = ()
    how: tuple[tuple[Sent, ...], ...] = ()
    units: tuple[Unit, ...] = ()
    weighed: tuple[Weighed, ...] = ()
    live: dict[tuple[str | None, str], LiveTable] | None = None

    @property
    def losses(self) -> list[Weighed]:
        """The checks that found rows or values a step would drop."""
        return [w for w in self.weighed if w.found and w.check.kind != "nulls"]


def _ask(count: int, database: str) -> bool:
    get_logger().info("rollback.confirm", count=count, database=database)
    try:
        return input().strip().lower() == "yes"
    except EOFError:
        return False


def run(
    settings: Settings,
    *,
    to: str | None = None,
    last: int | None = None,
    yes: bool = False,
    allow_data_loss: bool = False,
) -> None:
    """Reverse the migrations after `to` (or the `last` N), or with `dry_run` only say how.

    Raises `RollbackRefused` (exit 24) before any change, `RollbackFailed` (exit 25) when a reversing statement
    fails (what was reversed before it stays), and the deploy's errors for a guard, a backup, the deadline,
    a signal, the lock or the connection.
    """
    if (to is None) == (last is None) or (last is not None and last < 1):
        raise UsageError("❌ rollback needs one target: --to TAG (keep TAG and what is before it) or --last N (N ≥ 1)")
    if not yes and not settings.dry_run and not sys.stdin.isatty():
        raise UsageError(
            "❌ rollback reverses migrations in the database: pass --yes to confirm (standard input is not a "
            "terminal to ask on), or --dry-run to see what it would do; nothing was changed"
        )
    journal = read_journal(settings.migrations_dir)
    if to is not None and to not in {m.tag for m in journal.migrations}:
        raise UsageError("❌ --to {tag}: no migration of {folder} has that tag", tag=to, folder=str(journal.folder))
    downs = {m.tag: (str(down_path(journal, m)), d) for m in journal.migrations if (d := read_down(journal, m))}
    ledger = Ledger(settings.migrations_schema, settings.migrations_table, name_keyed=journal.name_keyed)
    tracker = Tracker()
    tracker.move(reversing=True)
    confirm: Callable[[int, str], bool] = (lambda _, __: True) if yes else _ask
    job = _Job(settings, journal, ledger, downs, to, last, allow_data_loss, confirm)
    with told(tracker, settings.deploy_deadline):
        _session(job, tracker)


@dataclass(frozen=True)
class _Job:
    """What the operator asked for, and what it is held against: the folder, its down files, the ledger."""

    settings: Settings
    journal: Journal
    ledger: Ledger
    downs: dict[str, tuple[str, Migration]]  # tag -> (path, the down file as a migration)
    to: str | None
    last: int | None
    allow_data_loss: bool
    confirm: Callable[[int, str], bool]


def _session(job: _Job, tracker: Tracker) -> None:
    settings, ledger = job.settings, job.ledger
    tracker.move(doing="connecting")
    conn = connect(settings.database_url, timeout=settings.connect_timeout)
    backend = conn.info.backend_pid
    with conn:
        try:
            if settings.dry_run:
                tracker.move(doing="reading the ledger")
                decided = _decide(conn, job)
                _show(decided, conn.info.dbname, ledger)
                get_logger().info("rollback.dry_run", count=len(decided.reversals))
                return
            tracker.move(doing="taking the migration lock")
            key = lock_key(conn.info.dbname, ledger.schema, ledger.table)
            with advisory_lock(conn, key, wait_timeout=settings.lock_wait_timeout):
                tracker.move(doing="reading the ledger")
                decided = _decide(conn, job)
                _show(decided, conn.info.dbname, ledger)
                if decided.reversals:
                    _reverse(conn, job, decided, tracker)
        except DeadlinePassed:
            if conn.broken:  # psycopg closed it: the server did not answer the cancel
                tracker.move(cut=backend)
            raise
        except psycopg.Error as error:
            if is_session_lost(error, conn):
                raise
            raise refused(error, tracker.state.doing) from None


def _decide(conn: psycopg.Connection[Any], job: _Job) -> Decided:
    """Read the ledger once and decide the whole rollback; raise every refusal before anything is written."""
    from entrypoint.core import rollback_plan
    from entrypoint.core.sql import parse
    from entrypoint.db import catalog, weigh

    journal, ledger, settings = job.journal, job.ledger, job.settings
    plan = pending.plan(journal, ledger.snapshot(conn))
    choice = choose(plan, to=job.to, last=job.last, name_keyed=journal.name_keyed)
    if isinstance(choice, Refusal):
        raise RollbackRefused(NOTHING_CHANGED + "{detail}", detail=choice.detail, reason=choice.reason)
    if not choice.migrations:
        return Decided(choice)
    found = rollback_plan.reverse_all([parse(m) for m in journal.migrations], choice.migrations, job.downs)
    if found.irreversible:
        raise _irreversible(conn, journal, ledger, found.irreversible)
    live = catalog.live_tables(conn, {s.table for r in found.reversals for s in r.steps if s.table})
    mode, said = settings.online_mode()
    policy = Policy(mode, settings.index_build_threshold, live, setting=said)
    how = tuple(sent(r, policy) for r in found.reversals)
    units = rollback_plan.units(found.reversals, how, conn.info.server_version)
    if isinstance(units, Refusal):
        raise RollbackRefused(NOTHING_CHANGED + "{detail}", detail=units.detail, reason=units.reason)
    weighed = tuple(weigh.weigh(conn, [c for r in found.reversals for s in r.steps for c in s.checks]))
    nulls = [w for w in weighed if w.found and w.check.kind == "nulls"]
    if nulls:
        raise RollbackRefused(
            NOTHING_CHANGED + "NOT NULL cannot be set back: {found}. Fill them, or write a down file",
            found="; ".join(loss_text(w.check, w.found, CAP) for w in nulls),
            reason="nulls",
        )
    return Decided(choice, found.reversals, how, units, weighed, live)


def _irreversible(
    conn: psycopg.Connection[Any], journal: Journal, ledger: Ledger, refused_: tuple[Irreversible, ...]
) -> RollbackRefused:
    """The refusal naming the newest statement with no safe inverse, and the backup to restore instead."""
    first = refused_[0]
    others = len(refused_) - 1
    more = f" (and {plural(others, 'other migration')} with such a statement)" if others else ""
    advice = restore_advice(backup_before(ledger.backups(conn), first.migration.tag), ledger.audit_name)
    return RollbackRefused(
        NOTHING_CHANGED + "{tag} cannot be undone: its statement {number}/{statements} has no safe inverse ({why}): "
        "{text}{more}. {advice}; or write its down file {down}",
        tag=first.migration.tag,
        number=first.number,
        statements=first.migration.statement_count,
        why=first.why,
        text=first.text,
        more=more,
        advice=advice,
        down=str(down_path(journal, first.migration)),
        reason="irreversible",
    )


def _show(decided: Decided, database: str, ledger: Ledger) -> None:
    """The plan: each migration, how it is undone and runs, each reversing statement and what it costs."""
    log = get_logger()
    stays = decided.choice.stays
    if not decided.reversals:
        log.info("rollback.nothing", newest=stays.tag if stays else "no migration (the ledger is empty)")
        return
    back_to = stays.tag if stays else "an empty ledger"
    log.info(
        "rollback.start", database=database, ledger=ledger.qualified_name, count=len(decided.reversals), to=back_to
    )
    found = {w.check: w.found for w in decided.weighed}
    for reversal, how, unit in zip(decided.reversals, decided.how, decided.units, strict=True):
        count = reversal.migration.statement_count
        source = (
            f"from its down file {reversal.down}"
            if reversal.down
            else f"computed from its {plural(count, 'statement')}"
        )
        runs = "in one transaction" if unit.kind == "transaction" else f"outside a transaction ({unit.why})"
        log.info("rollback.migration", tag=reversal.migration.tag, source=source, runs=runs, steps=len(how))
        for number, (step, out) in enumerate(zip(reversal.steps, how, strict=True), start=1):
            losing = [loss_text(c, found[c], CAP) for c in step.checks if found.get(c) and c.kind != "nulls"]
            lost = f"; would drop what {', '.join(losing)}" if losing else ""
            log.info(
                "rollback.step",
                number=number,
                steps=len(how),
                sql=" ".join(out.sql.split()),
                cost=cost(step, out, decided.live or {}) + lost,
            )


def _reverse(conn: psycopg.Connection[Any], job: _Job, decided: Decided, tracker: Tracker) -> None:
    """Past every refusal: data losses allowed or none, confirmation, backup, restore point, then the units."""
    from entrypoint.deploy import execute, guards
    from entrypoint.deploy.apply import apply
    from entrypoint.deploy.prepare import refuse_read_only

    log, settings, ledger = get_logger(), job.settings, job.ledger
    losses = [loss_text(w.check, w.found, CAP) for w in decided.losses]
    backs_up = settings.backup_dir is not None or settings.backup_url is not None
    if losses and not job.allow_data_loss:
        raise RollbackRefused(
            NOTHING_CHANGED + "reversing would lose data: {losses}. Pass --allow-data-loss to drop it anyway (after a "
            "backup: set BACKUP_DIR or BACKUP_URL), or write a down file that keeps it",
            losses="; ".join(losses),
            reason="data_loss",
        )
    if losses and not backs_up:
        raise RollbackRefused(
            NOTHING_CHANGED + "--allow-data-loss drops {losses} only after a backup, and neither BACKUP_DIR nor "
            "BACKUP_URL is set: set one, then run the rollback again",
            losses="; ".join(losses),
            reason="no_backup",
        )
    for loss in losses:
        log.warning("rollback.loss", loss=loss)
    guards.refuse_failing(conn, settings.guards)
    refuse_read_only(conn, writes=True)
    chosen = decided.choice.migrations
    if not job.confirm(len(chosen), conn.info.dbname):
        raise RollbackRefused("❌ Rollback not confirmed: nothing was changed (pass --yes to skip the question)")
    copy = None
    if backs_up:
        tracker.move(doing="backing up")
        reversed_ = tuple((f"reverse {m.tag}", m.hash) for m in chosen)  # its own state: never a deploy's name
        copy = execute.backup(conn, settings, chosen[0].tag, reversed_, undoes=tuple(m.tag for m in chosen))
    tracker.move(
        restore_point=execute.restore_point(conn, rollback=True), doing="reversing the migrations", writing=True
    )
    if copy is not None:
        execute.backed_up(conn, ledger, copy, tracker)
    tracker.move(applying=True)
    limits = Limits(
        lock_timeout_ms=settings.ddl_lock_timeout_ms,
        statement_timeout_ms=settings.statement_timeout_ms,
        attempts=settings.migration_attempts,
        watch_url=settings.database_url,
        guards=settings.guards,
        mode="per-migration",
        heartbeat_s=settings.heartbeat_interval,
    )
    apply(conn, ledger, decided.units, limits, tracker)
    stays = decided.choice.stays
    log.info(
        "rollback.done",
        count=len(chosen),
        tags=", ".join(m.tag for m in chosen),
        newest=stays.tag if stays else "no migration",
    )
