"""`restore SOURCE`: the runbook's "Rollback Complet" as one command, from a dump file or an `s3://` object.

The flow: read the migrations folder (first, as every command does), find
pg_restore, fetch the dump (an object is downloaded to TMPDIR and checked
against the size and sha256 the backup stored with it), read it whole, connect,
take the migration lock (so no deploy runs during the restore), say what will
happen (the dump, the ledger now and the ledger it holds, the objects of the
schemas it restores that the dump does not hold), ask for confirmation, then
restore in one transaction of ours (`restoring`): those objects dropped, then
pg_restore's own script (`--clean --if-exists --no-owner`, the list without the
CREATE SCHEMA of schemas that exist), with the deploy's lock_timeout, retries,
heartbeat and DEPLOY_DEADLINE. Then, still under the lock: the guards' results,
`verify`'s schema evidence for the migrations the restored ledger records, and
the ledger it left, as `status` shows it. A dry run lists the dump's contents,
both ledgers and what would be dropped, and changes nothing.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from entrypoint.backup import leftovers
from entrypoint.backup.archive import Archive, fetched, read
from entrypoint.backup.tools import find_pg_restore, first_line, tool_major
from entrypoint.commands import Help, restoring
from entrypoint.commands.restoring import Stage
from entrypoint.config import Settings
from entrypoint.core import pending as planner
from entrypoint.core.model import Journal, LedgerSnapshot
from entrypoint.core.pending import STATES
from entrypoint.core.text import plural
from entrypoint.db.connect import connect, describe, is_session_lost, refused
from entrypoint.db.ledger import Ledger
from entrypoint.db.lock import advisory_lock, lock_key
from entrypoint.deploy.deadline import Deadline, DeadlinePassed
from entrypoint.errors import (
    DatabaseUnreachable,
    DeadlineExceeded,
    EntrypointError,
    Interrupted,
    LockNotHeld,
    LockTimeout,
    RestoreFailed,
    RestoreUnchecked,
    Untrusted,
    UsageError,
)
from entrypoint.journal import read_journal
from entrypoint.launch import SignalReceived
from entrypoint.logs import get_logger

HELP = Help(
    "Restore SOURCE (a pg_dump -Fc file, or the s3://bucket/key the backup line printed) into the database: the "
    "runbook's rollback. Under the migration lock it shows the dump, the ledger now and after, and what of the "
    "schemas it restores the dump does not hold (dropped), asks for confirmation (--yes; required when standard "
    "input is not a terminal), then restores in one transaction: those drops and pg_restore --clean --if-exists "
    "--no-owner's script (pg_restore beside PG_DUMP, else on PATH), under DDL_LOCK_TIMEOUT with retries and "
    "DEPLOY_DEADLINE; then it prints the guards' results, verify's schema evidence and the ledger it left. "
    "--dry-run lists the dump's contents, the ledgers and the drops, and changes nothing. See the README's \"Backups "
    'and rollback".',
    "restored, and the restored schema checked",
    (
        LockTimeout.exit_code,
        LockNotHeld.exit_code,
        DeadlineExceeded.exit_code,
        RestoreFailed.exit_code,
        RestoreUnchecked.exit_code,
    ),
)


def _ask(database: str) -> bool:
    """The question on the terminal, and the operator's answer: only `yes` goes on."""
    get_logger().info("restore.confirm", database=database)
    try:
        return input().strip().lower() == "yes"
    except EOFError:
        return False


def run(settings: Settings, source: str, *, yes: bool = False) -> None:
    """Restore SOURCE into the settings' database (or, with `dry_run`, only say what it would do).

    Raises `RestoreFailed` (exit 22) when nothing was restored, `RestoreUnchecked`
    (exit 23) when the restore committed but the checks after it failed, and the
    usual connection, lock and folder errors.
    """
    if not yes and not settings.dry_run and not sys.stdin.isatty():
        raise UsageError(
            "❌ restore replaces what the dump holds in the database: pass --yes to confirm (standard input is not "
            "a terminal to ask on), or --dry-run to see what it would do; nothing was changed"
        )
    confirm: Callable[[str], bool] = (lambda _: True) if yes else _ask
    journal = read_journal(settings.migrations_dir)
    ledger = Ledger(settings.migrations_schema, settings.migrations_table, name_keyed=journal.name_keyed)
    pg_restore = find_pg_restore(settings.pg_dump)
    if tool_major(pg_restore) is None:
        raise RestoreFailed(
            "❌ Restore impossible: cannot run {pg_restore!r}. Install the PostgreSQL client tools or set PG_DUMP "
            "to a pg_dump with pg_restore beside it; nothing was changed",
            pg_restore=pg_restore,
        )
    leftovers.sweep()  # what a killed backup or restore left in TMPDIR
    stage = Stage("fetching the dump")
    try:
        with Deadline(settings.deploy_deadline).armed(), _before_the_restore(stage), fetched(settings, source) as path:
            stage.doing = "reading the dump"
            archive = read(path, pg_restore, ledger)
            stage.doing = "connecting"
            conn = connect(settings.database_url, timeout=settings.connect_timeout)
            with conn:
                try:
                    _session(
                        conn,
                        settings=settings,
                        journal=journal,
                        ledger=ledger,
                        archive=archive,
                        source=source,
                        pg_restore=pg_restore,
                        confirm=confirm,
                        stage=stage,
                    )
                except psycopg.Error as error:
                    if is_session_lost(error, conn):
                        raise DatabaseUnreachable(
                            "❌ Lost the database connection while {doing}: {reason}. Run `status` to see where the "
                            "database stands, then run the restore again",
                            doing=stage.doing,
                            reason=describe(error),
                            sqlstate=error.sqlstate,
                        ) from None
                    if stage.committed:
                        raise _unchecked(
                            "the database then refused {doing}: {error}", doing=stage.doing, error=describe(error)
                        ) from None
                    raise refused(error, stage.doing) from None
    except SignalReceived as received:
        import signal

        raise Interrupted(
            "❌ Stopped by {name} while {doing}: {outcome}",
            name=signal.Signals(received.signum).name,
            doing=stage.doing,
            outcome=_stopped(stage),
            signal=received.signum,
        ) from None
    except DeadlinePassed:
        raise DeadlineExceeded(
            "❌ DEPLOY_DEADLINE ({deadline}) passed while {doing}: {outcome}",
            deadline=f"{settings.deploy_deadline:g}s",
            doing=stage.doing,
            outcome=_stopped(stage),
            deadline_s=settings.deploy_deadline,
            kept=[],
        ) from None


def _stopped(stage: Stage) -> str:
    """What a restore stopped from outside (a signal, DEPLOY_DEADLINE) leaves, from how far its transaction got."""
    if stage.committed:
        return "the restore had committed; run `python -m entrypoint verify` to check it"
    if stage.committing:
        return (
            "its COMMIT was on its way, so it committed whole or not at all: run `python -m entrypoint status` to "
            "see which"
        )
    if stage.doing == "restoring":
        return (
            "the restore's one transaction was cancelled and rolled back, and the migration lock released: nothing "
            "was changed. Run it again when the app's sessions are gone (the lines above name who held it up), or "
            "with DEPLOY_DEADLINE=0"
        )
    return "nothing was changed (the restore had not started)"


def _unchecked(happened: str, **facts: Any) -> RestoreUnchecked:
    """The ❌ line for a failure after pg_restore committed (`happened`, a template): the restore stands."""
    return RestoreUnchecked(
        "❌ Restored, but " + happened + ". The database is the restored one: run `python -m entrypoint verify` once "
        "this is fixed",
        **facts,
    )


@contextmanager
def _before_the_restore(stage: Stage) -> Iterator[None]:
    """A local failure (TMPDIR not writable, pg_restore dying) before pg_restore's transaction: exit 22.

    After it committed, the same failure (a temporary file's cleanup) is exit 23: the restore stands.
    """
    try:
        yield
    except BrokenPipeError:
        raise  # stdout closed: the CLI's exit 141, not a restore failure
    except (OSError, subprocess.CalledProcessError) as error:
        if isinstance(error, subprocess.CalledProcessError):
            what = f"{Path(str(error.cmd[0])).name} exited {error.returncode}: {first_line(error.stderr or '')}"
        else:
            what = f"{error.strerror or error} ({error.filename})" if error.filename else str(error)
        if stage.committed:
            raise _unchecked("then {doing} failed: {what}", doing=stage.doing, what=Untrusted(str(what))) from None
        raise RestoreFailed(
            "❌ Restore impossible while {doing}: {what}. Nothing was changed; fix it (TMPDIR, the disk, the "
            "PostgreSQL client tools), then run the restore again",
            doing=stage.doing,
            what=Untrusted(str(what)),
        ) from None


def _session(
    conn: psycopg.Connection[Any],
    *,
    settings: Settings,
    journal: Journal,
    ledger: Ledger,
    archive: Archive,
    source: str,
    pg_restore: str,
    confirm: Callable[[str], bool],
    stage: Stage,
) -> None:
    log = get_logger()
    database = conn.info.dbname
    if settings.dry_run:
        stage.doing = "reading the ledger"
        _show_plan(conn, journal, ledger, archive, source=source, database=database, entries=True)
        log.info("restore.dry_run")
        return
    stage.doing = "taking the migration lock"
    with advisory_lock(conn, lock_key(database, ledger.schema, ledger.table), wait_timeout=settings.lock_wait_timeout):
        stage.doing = "reading the ledger"
        replacement = _show_plan(conn, journal, ledger, archive, source=source, database=database, entries=False)
        if not confirm(database):
            raise RestoreFailed("❌ Restore not confirmed: nothing was changed (pass --yes to skip the question)")
        stage.doing = "restoring"
        started = time.monotonic()
        log.info("restore.restoring")
        restoring.restore(settings, archive, replacement, pg_restore, stage)
        stage.doing = "cleaning up after the restore"
        seconds = round(time.monotonic() - started, 1)
        log.info("restore.done", database=database, source=Untrusted(source), seconds=seconds)
        stage.doing = "checking the restored database"
        _check(conn, settings)
        stage.doing = "cleaning up"
    log.info("restore.checked")


def _show_plan(
    conn: psycopg.Connection[Any],
    journal: Journal,
    ledger: Ledger,
    archive: Archive,
    *,
    source: str,
    database: str,
    entries: bool,
) -> restoring.Replacement:
    """The dump, the ledger now and after, what the dump does not hold (dropped), and how it is restored."""
    log = get_logger()
    header = archive.header
    log.info("restore.source", source=Untrusted(source), database=database)
    log.info(
        "restore.dump",
        dumped_from=Untrusted(f"{header.get('dbname', '?')} (PostgreSQL {header.get('server', '?')})"),
        created_at=Untrusted(header.get("created_at", "?")),
        pg_dump_version=Untrusted(header.get("pg_dump", "?")),
        entries=archive.summary(),
    )
    for entry in archive.entries() if entries else ():
        log.info("restore.entry", entry=Untrusted(entry))
    log.info("restore.ledger_now", ledger=ledger_summary(journal, ledger.snapshot(conn)))
    log.info("restore.ledger_after", ledger=ledger_summary(journal, archive.ledger))
    replacement = restoring.plan(conn, archive, ledger)
    restoring.show(replacement)
    log.info("restore.how")
    return replacement


def ledger_summary(journal: Journal, snapshot: LedgerSnapshot) -> str:
    """`11 rows, ids 0..7, 283..285: 8 applied, 3 drifted id, 1 pending` against the folder."""
    if not snapshot.exists:
        return "no ledger table (nothing applied)"
    from entrypoint.core.text import id_ranges

    found = planner.plan(journal, snapshot)
    counts = found.counts()
    states = ", ".join(f"{counts[state]} {state}" for state in STATES if counts[state])
    if found.ahead:
        states += f", ahead by {len(found.ahead)}"
    ids = sorted(row.id for row in snapshot.rows)
    where = f", ids {id_ranges(ids)}" if ids else ""
    return f"{plural(len(snapshot.rows), 'row')}{where}: {states}"


# --------------------------------------------------------------------------
# The restore, and the checks after it.


def _check(conn: psycopg.Connection[Any], settings: Settings) -> None:
    """The guards' results, verify's schema evidence, and the ledger the restore left (as `status` shows it)."""
    from entrypoint.commands import status, verify

    log = get_logger()
    for guard in settings.guards:
        try:
            rows = conn.execute(guard.encode()).fetchall()
        except psycopg.Error as error:
            raise RestoreUnchecked(
                "❌ Restored, but the guard {guard} failed afterwards: {error}. The database is the restored one: "
                "check it, or restore again",
                guard=Untrusted(guard),
                error=describe(error),
            ) from None
        log.info("restore.guard", guard=Untrusted(guard), result=Untrusted(str([tuple(row) for row in rows])))
    try:
        report = verify.run(settings)
        verify.show_schema(report)
        status.show(status.run(settings))
    except EntrypointError as error:  # its own connection lost, the folder gone: the restore stands anyway
        # Its first sentence, what happened: its advice ("nothing was changed; run it again") is not this run's.
        happened = error.template.removeprefix("❌ ").split(". ", 1)[0].rstrip(".")
        raise _unchecked("checking it failed: " + happened, **error.facts) from None
    if report.missing:
        raise RestoreUnchecked(
            "❌ Restored, but {missing} the restored ledger records {verb} missing: the dump was taken from a "
            "database that lacked {them} too. The database is the restored one: check it, then redeploy",
            missing=plural(report.missing, "schema object"),
            verb="is" if report.missing == 1 else "are",
            them="it" if report.missing == 1 else "them",
        )
