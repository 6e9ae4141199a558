"""The restore itself: one transaction of ours that drops what the dump does not hold, then runs pg_restore's script.

`pg_restore --clean` drops only what the dump holds, so what the rolled-back migrations
created since (a table with rows written since, an enum type, a sequence) would stay,
and the next deploy would fail on it (`already exists`). So, in the schemas the dump
restores (its schemas, `public`, the ledger's), every object it does not hold is listed
in the plan before the confirmation (`plan`), then dropped in the same transaction as
the restore: all of it commits, or none of it. pg_restore only writes the script
(`pg_restore -f -`, `backup/script`); a connection of our own runs it, so the
deploy's lock discipline holds: `lock_timeout = DDL_LOCK_TIMEOUT` (a DROP queued
behind an app's transaction would stall every new query on that table), a lock
timeout, deadlock or serialization failure rolls back and retries (MIGRATION_ATTEMPTS,
within 5 minutes), a heartbeat every HEARTBEAT_INTERVAL names who blocks it, and
DEPLOY_DEADLINE cancels it (the caller). A drop that would reach outside those
schemas (a view in another schema over a table created since) is refused with the list.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
from psycopg import sql
from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_after_delay, wait_exponential_jitter

from entrypoint.backup import leftovers, script
from entrypoint.backup.archive import Archive
from entrypoint.backup.tools import first_line, start_tool
from entrypoint.config import Settings
from entrypoint.db import catalog
from entrypoint.db.blockers import BlockerWatch
from entrypoint.db.connect import connect, describe, is_session_lost
from entrypoint.db.ledger import AUDIT_SUFFIX, Ledger
from entrypoint.deploy.apply import RETRY_BUDGET_S
from entrypoint.deploy.builds import TRANSIENT_STATES
from entrypoint.errors import RestoreFailed, Untrusted
from entrypoint.logs import get_logger

SHOWN = 20  # objects listed one a line in the plan; the rest are counted
_DEPENDENT_OBJECTS = "2BP01"  # dependent_objects_still_exist: something outside what the restore replaces


@dataclass(frozen=True)
class Replacement:
    """What the restore replaces: the schemas it restores, and there, what the dump does not hold (dropped)."""

    schemas: tuple[str, ...]
    existing: frozenset[str]  # every schema of the database: those the dump creates are kept, not recreated
    extras: tuple[catalog.RestoredObject, ...]


@dataclass
class Stage:
    """What the restore is doing, for its ❌ lines, and how far its one transaction got."""

    doing: str
    committing: bool = False  # its COMMIT is on its way: it may have committed
    committed: bool = False
    blockers: str = field(default="")


def plan(conn: psycopg.Connection[Any], archive: Archive, ledger: Ledger) -> Replacement:
    """The schemas the dump restores (those it has, `public` if it has objects there, the ledger's) and their extras.

    The ledger's audit table is kept: it records the repairs, the restore's own among them.
    """
    existing = frozenset(str(row[0]) for row in conn.execute("SELECT nspname FROM pg_namespace"))
    schemas = sorted({name for name in existing if archive.covers(name)} | ({ledger.schema} & existing))
    audit = (ledger.schema, ledger.table + AUDIT_SUFFIX)
    extras = tuple(
        o
        for o in catalog.restored_objects(conn, schemas)
        if not archive.holds(o.desc, o.schema, o.name) and (o.schema, o.name) != audit
    )
    return Replacement(tuple(schemas), existing, extras)


def show(replacement: Replacement) -> None:
    """The objects the restore drops because the dump does not hold them (SHOWN of them, then a count)."""
    log = get_logger()
    extras = replacement.extras
    if not extras:
        return
    log.warning("restore.extras", count=len(extras), schemas=", ".join(replacement.schemas))
    for o in extras[:SHOWN]:
        log.warning("restore.extra", kind=o.desc, object=Untrusted(f"{o.schema}.{o.name}"))
    if len(extras) > SHOWN:
        log.warning("restore.extra_more", count=len(extras) - SHOWN)


def restore(settings: Settings, archive: Archive, replacement: Replacement, pg_restore: str, stage: Stage) -> None:
    """Drop the extras and run pg_restore's script, in one transaction, retried on lock timeouts and the like.

    Raises `RestoreFailed` (exit 22) when it was rolled back for good; lets a lost connection through.
    """
    log = get_logger()

    def before_sleep(state: Any) -> None:
        error: psycopg.Error = state.outcome.exception()
        log.warning(
            "restore.retrying",
            reason=TRANSIENT_STATES.get(error.sqlstate or "", "failed"),
            sqlstate=error.sqlstate,
            blockers=Untrusted(stage.blockers),
            attempt=state.attempt_number + 1,
            attempts=settings.migration_attempts,
            wait_s=round(state.upcoming_sleep, 1),
        )

    retrying = Retrying(
        stop=stop_after_attempt(settings.migration_attempts) | stop_after_delay(RETRY_BUDGET_S),
        wait=wait_exponential_jitter(initial=1, max=30, jitter=1),
        retry=retry_if_exception(lambda e: isinstance(e, psycopg.Error) and e.sqlstate in TRANSIENT_STATES),
        before_sleep=before_sleep,
        reraise=True,
    )
    with leftovers.PrivateFolder("entrypoint-restore-") as folder:
        use_list = folder / "toc.list"
        kept = {archive.entry("SCHEMA", "-", name) for name in replacement.existing} - {None}
        use_list.write_text("".join(f";{line}\n" if line in kept else f"{line}\n" for line in archive.toc))
        try:
            writer = _Writer(pg_restore, archive.path, use_list, folder / "stderr")
            retrying(_attempt, settings, writer, replacement, stage)
        except psycopg.Error as error:
            if is_session_lost(error):
                raise
            raise _failed(error, stage.blockers) from None
        except script.ScriptError as command:
            raise RestoreFailed(
                "❌ Restore impossible: the dump's script holds the psql command {command}, which only psql runs; "
                "nothing was changed. Restore it with psql, or take a new dump with this pg_dump",
                command=Untrusted(str(command)),
            ) from None


class _Writer(NamedTuple):
    """pg_restore, and what it needs to write the restore's script: the dump, the list, where its errors go."""

    pg_restore: str
    dump: Path
    use_list: Path
    stderr: Path


def _attempt(settings: Settings, writer: _Writer, replacement: Replacement, stage: Stage) -> None:
    """One try: a connection of its own (the script's SETs end with it), one transaction, the heartbeat."""
    with (
        connect(settings.database_url, timeout=settings.connect_timeout) as work,
        BlockerWatch(
            settings.database_url,
            work.info.backend_pid,
            heartbeat=settings.heartbeat_interval,
            debug=settings.debug,
            restore=True,
        ) as watch,
    ):
        try:
            with work.transaction(), work.cursor() as cur:
                cur.execute("SELECT set_config('lock_timeout', %s, true)", (f"{settings.ddl_lock_timeout_ms}ms",))
                _drop(cur, replacement, watch)
                _run_script(cur, writer, watch)
                stage.committing = True
            stage.committed = True
        except psycopg.Error:
            stage.committing = False
            stage.blockers = watch.describe()
            raise


def _drop(cur: psycopg.Cursor[Any], replacement: Replacement, watch: BlockerWatch) -> None:
    """Drop what the dump does not hold, after checking that nothing outside the restored schemas goes with it."""
    if not replacement.extras:
        return
    outside = catalog.dependents_outside(cur.connection, replacement.extras, replacement.schemas)
    if outside:
        raise RestoreFailed(
            "❌ Restore refused, nothing was changed: dropping what the dump does not hold would also drop {count} "
            "outside the schemas it restores: {outside}. Drop or change them first, or restore into a new database",
            count=f"{len(outside)} object{'s' if len(outside) > 1 else ''}",
            outside=Untrusted(", ".join(outside)),
        )
    watch.running("restore", 1, 1, "dropping what the dump does not hold")
    order = {"FUNCTION": 0, "PROCEDURE": 0, "AGGREGATE": 0, "VIEW": 1, "MATERIALIZED VIEW": 1, "DOMAIN": 4, "TYPE": 4}
    for extra in sorted(replacement.extras, key=lambda o: order.get(o.desc, 2)):
        # Both parts come from the server: pg_dump's word for the kind, and the name as format('%I') quotes it.
        drop = sql.SQL(f"DROP {extra.desc} IF EXISTS {extra.drop} CASCADE")
        cur.execute(drop)


def _run_script(cur: psycopg.Cursor[Any], writer: _Writer, watch: BlockerWatch) -> None:
    """pg_restore writes the script (it never connects); this runs it in `cur`'s transaction."""
    args = [writer.pg_restore, "--clean", "--if-exists", "--no-owner", f"--use-list={writer.use_list}", "--file=-",
            str(writer.dump)]  # fmt: skip
    with writer.stderr.open("wb") as errors:
        child = start_tool(args, stdout=subprocess.PIPE, stderr=errors)
        try:
            assert child.stdout is not None  # noqa: S101 - asked for just above
            script.run(cur, child.stdout, lambda what: watch.running("restore", 1, 1, what))
            code = child.wait()
        finally:
            watch.idle()
            if child.poll() is None:
                child.kill()
                child.wait()
    if code != 0:
        problem = first_line(writer.stderr.read_text(errors="replace"))
        raise RestoreFailed(
            "❌ Restore impossible: pg_restore could not write the restore ({problem}); nothing was changed (the "
            "restore's one transaction was rolled back). Check the dump and the PostgreSQL client tools",
            problem=problem,
        )


def _failed(error: psycopg.Error, blockers: str) -> RestoreFailed:
    """The ❌ line of a restore the server refused for good: its message, who blocked it, and what to do."""
    detail = error.diag.message_detail or ""
    state = error.sqlstate or ""
    if state in TRANSIENT_STATES:
        advice = (
            "The app's sessions hold locks on what the restore replaces, and new queries would queue behind it: "
            "scale the app down (or end its long transactions), then run the restore again"
        )
    elif state == _DEPENDENT_OBJECTS:
        advice = (
            "Objects outside the schemas it restores depend on objects in the dump: drop them first, or restore "
            "into a new, empty database"
        )
    else:
        advice = "Fix it, then run the restore again"
    return RestoreFailed(
        "❌ Restore failed, nothing was changed (its one transaction was rolled back): {error}{detail}{blockers}. "
        "{advice}",
        error=Untrusted(error.diag.message_primary or describe(error)),
        detail=Untrusted(f" ({detail})" if detail else ""),
        blockers=Untrusted(f" ({blockers.removeprefix(', ')})" if blockers else ""),
        advice=advice,
        sqlstate=error.sqlstate,
    )
