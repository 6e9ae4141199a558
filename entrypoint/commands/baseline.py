"""`baseline`: adopt a database drizzle never migrated, made with `drizzle-kit push` or by hand.

Under the migration lock it reads the ledger, which must be missing or empty (a
ledger with rows is the sync's to repair), and the catalog; the pure planner
(`baseline_plan`) picks the longest prefix of the journal whose schema is there.
Each migration's evidence is printed, and what stops the prefix. Then exactly
those migrations are recorded as drizzle-orm records them (hash, `created_at`,
and `name` for 1.0 folders), in one transaction that also creates the ledger if
needed and copies each row to the audit table with reason `baseline`, so
drizzle-orm and the deploy then find them applied. `--dry-run` reads the same in
one READ ONLY transaction, without the lock, and writes nothing. The evidence,
the lines and the write are `deploy.adopt`'s, which the deploy also runs under
its own lock when BASELINE_ON_EMPTY is set.
"""

from __future__ import annotations

from typing import Any

import psycopg

from entrypoint.commands import Help
from entrypoint.config import Settings
from entrypoint.core.baseline_plan import BaselinePlan
from entrypoint.core.model import Journal, LedgerSnapshot
from entrypoint.core.text import plural
from entrypoint.db.connect import connect, describe, read_only
from entrypoint.db.ledger import Ledger
from entrypoint.db.lock import advisory_lock, lock_key
from entrypoint.deploy.adopt import decide, ledger_state, nothing, record, show, would_record
from entrypoint.errors import (
    BaselineRefused,
    DatabaseUnreachable,
    LockNotHeld,
    LockTimeout,
    NothingToBaseline,
    UsageError,
)
from entrypoint.journal import read_journal
from entrypoint.launch import stopping_says
from entrypoint.logs import get_logger

NOTHING_RECORDED = "nothing was recorded (the transaction rolled back), and the lock released"
HELP = Help(
    "Adopt a database drizzle never migrated (made with `drizzle-kit push` or by hand): with the ledger missing or "
    "empty, record as applied the longest prefix of the journal whose every table, column, index, enum and "
    "constraint is in the catalog (and whose renamed or dropped objects are gone), with drizzle-orm's hash and "
    "created_at, under the migration lock, audited with reason `baseline`. A migration nothing can be checked for "
    "(data, functions) stops the prefix unless --through covers it. See docs/operator-commands.md.",
    "the migrations the schema proves were recorded (with --dry-run: shown, nothing changed)",
    (LockTimeout.exit_code, LockNotHeld.exit_code, BaselineRefused.exit_code, NothingToBaseline.exit_code),
)


def _refuse_rows(ledger: Ledger, snapshot: LedgerSnapshot) -> None:
    if snapshot.rows:
        raise BaselineRefused(
            "❌ Baseline refused: {ledger} already has {rows}, and baseline adopts only a database no migration was "
            "ever recorded for. Nothing was changed; the deploy's ledger sync repairs a ledger with rows "
            "(`python -m entrypoint status` shows where it stands)",
            ledger=ledger.qualified_name,
            rows=plural(len(snapshot.rows), "row"),
        )


@stopping_says(NOTHING_RECORDED)
def run(settings: Settings) -> BaselinePlan:
    """The `baseline` command: read the folder, then lock, check, show and record (or, dry, only show).

    Raises `UsageError` (2) for an unknown --through, `BaselineRefused` (17),
    `NothingToBaseline` (18), `DatabaseRefused` (16), `DatabaseUnreachable` (4).
    """
    journal = read_journal(settings.migrations_dir)
    through = settings.through
    if through is not None and through not in {m.tag for m in journal.migrations}:
        raise UsageError(
            "❌ --through {through} is not a migration of {folder}: name one of its tags, e.g. {example}",
            through=through,
            folder=str(journal.folder),
            example=journal.migrations[-1].tag,
        )
    ledger = Ledger(settings.migrations_schema, settings.migrations_table, name_keyed=journal.name_keyed)
    log = get_logger()
    try:
        if settings.dry_run:
            log.info("plan.dry_run")
            with read_only(settings.database_url, timeout=settings.connect_timeout, doing="reading the schema") as conn:
                _, plan = _plan(conn, ledger, journal, through)
            would_record(ledger, plan)
            return plan
        with connect(settings.database_url, timeout=settings.connect_timeout) as conn:
            key = lock_key(conn.info.dbname, ledger.schema, ledger.table)
            with advisory_lock(conn, key, wait_timeout=settings.lock_wait_timeout):
                snapshot, plan = _plan(conn, ledger, journal, through)
                record(conn, ledger, snapshot, plan)
            return plan
    except psycopg.OperationalError as error:
        raise DatabaseUnreachable(
            "❌ Lost the database connection: {reason}. Nothing was recorded (the transaction rolled back); "
            "check the database's health, then run baseline again",
            reason=describe(error),
            sqlstate=error.sqlstate,
        ) from None


def _plan(
    conn: psycopg.Connection[Any], ledger: Ledger, journal: Journal, through: str | None
) -> tuple[LedgerSnapshot, BaselinePlan]:
    """Refuse a ledger with rows, then read the catalog, plan and show; refuse an empty prefix."""
    snapshot = ledger.snapshot(conn)
    _refuse_rows(ledger, snapshot)
    get_logger().info(
        "baseline.start", ledger=ledger.qualified_name, ledger_state=ledger_state(snapshot), folder=str(journal.folder)
    )
    plan = decide(conn, journal, through)
    show(plan)
    if not plan.record:
        raise nothing(plan)
    return snapshot, plan
