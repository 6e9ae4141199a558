"""`python -m entrypoint status`: each journal entry against the ledger, read-only.

Never creates the ledger and takes no lock: one read-only transaction reads the
rows, then the pure `entry_states` decides each entry's state with the sync's
own matching (`plan_sync`), so what status calls drifted is exactly what the
next deploy would repair. See docs/operator-commands.md for the contract.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from entrypoint import config, errors, logs
from entrypoint.journal import Migration, read_journal
from entrypoint.plan import LedgerRow, drizzle_pending, out_of_order
from entrypoint.sync import Refusal, SyncPlan, plan_name_sync, plan_sync, plan_upgrade

if TYPE_CHECKING:
    import psycopg

APPLIED, PENDING, DRIFTED_ID, HASH_MISMATCH, OUT_OF_ORDER = (
    "applied",
    "pending",
    "drifted id",
    "hash mismatch",
    "out of order",
)
# drizzle-kit 1.0 folders only: a 0.45 row the next deploy will name, a row whose folder was renamed.
UNNAMED, RENAMED = "unnamed", "renamed"
STATES = (APPLIED, PENDING, DRIFTED_ID, HASH_MISMATCH, OUT_OF_ORDER, UNNAMED, RENAMED)


StatusNotClean = errors.StatusNotClean


@dataclass(frozen=True)
class EntryState:
    """One journal entry, the ledger row matched to it (if any), and what that means."""

    migration: Migration
    state: str
    row: LedgerRow | None
    expected_id: int | None


@dataclass(frozen=True)
class Status:
    """Every entry's state, the rows no entry accounts for, and why when the sync refuses."""

    entries: tuple[EntryState, ...]
    unknown_rows: tuple[LedgerRow, ...]
    refusal: Refusal | None
    rows: int

    @property
    def clean(self) -> bool:
        """Everything applied and in step: nothing for the next deploy to do."""
        return self.refusal is None and not self.unknown_rows and all(e.state == APPLIED for e in self.entries)

    def counts(self) -> Counter[str]:
        """Entries per state."""
        return Counter(e.state for e in self.entries)


def _unclaimed_state(migration: Migration, pending: set[str], skipped: set[str]) -> str:
    if migration.tag in pending:
        return PENDING
    return OUT_OF_ORDER if migration.tag in skipped else HASH_MISMATCH


def entry_states(
    migrations: Sequence[Migration], rows: Sequence[LedgerRow], *, name_keyed: bool = False, has_names: bool = True
) -> Status:
    """Pure: each entry's state from the sync's matching; on a refusal, exact matches only.

    For drizzle-kit 1.0 folders (`name_keyed`) rows are matched by name, as drizzle-orm 1.0 does,
    after the upgrade a 0.45 ledger (`has_names` false) will get on the next deploy.
    """
    if name_keyed:
        return _name_states(migrations, rows, has_names=has_names)
    pending = {m.tag for m in drizzle_pending(migrations, rows)}
    skipped = {m.tag for m in out_of_order(migrations, rows)}
    plan = plan_sync(migrations, rows)
    if isinstance(plan, Refusal):
        exact = {(row.hash, row.created_at): row for row in rows}
        states = []
        for m in migrations:
            row = exact.get((m.hash, m.when))
            state = APPLIED if row else _unclaimed_state(m, pending, skipped)
            states.append(EntryState(m, state, row, None))
        return Status(tuple(states), tuple(rows), plan, len(rows))
    return Status(tuple(_matched_states(migrations, rows, plan, pending, skipped)), (), None, len(rows))


def _matched_states(
    migrations: Sequence[Migration], rows: Sequence[LedgerRow], plan: SyncPlan, pending: set[str], skipped: set[str]
) -> list[EntryState]:
    before = {r.new.id: r.old for r in plan.repairs}
    by_id = {row.id: row for row in rows}
    claimed = {after.id - plan.offset: (before.get(after.id) or by_id[after.id], after) for after in plan.rows_after}
    states = []
    for position, m in enumerate(migrations):
        if position not in claimed:
            states.append(EntryState(m, _unclaimed_state(m, pending, skipped), None, None))
            continue
        old, new = claimed[position]
        if old == new:
            state = APPLIED
        elif (old.hash, old.created_at) == (new.hash, new.created_at):
            state = DRIFTED_ID
        else:
            state = HASH_MISMATCH
        states.append(EntryState(m, state, old, new.id))
    return states


def _name_states(migrations: Sequence[Migration], rows: Sequence[LedgerRow], *, has_names: bool) -> Status:
    unnamed: set[int] = set()
    if not has_names:
        upgrade = plan_upgrade(migrations, rows)
        if isinstance(upgrade, Refusal):
            pending = tuple(EntryState(m, PENDING, None, None) for m in migrations)
            return Status(pending, tuple(rows), upgrade, len(rows))
        unnamed = {row.id for row in upgrade.rows_after}
        rows = upgrade.rows_after
    names = plan_name_sync(migrations, rows)
    renamed = {r.tag: r.old for r in names.renames}
    by_name = {row.name: row for row in names.rows_after if row.name is not None}
    states = []
    for m in migrations:
        row = by_name.get(m.tag)
        if row is None:
            states.append(EntryState(m, PENDING, None, None))
        elif m.tag in renamed:
            states.append(EntryState(m, RENAMED, renamed[m.tag], row.id))
        elif row.id in unnamed:
            states.append(EntryState(m, UNNAMED, row, row.id))
        else:
            states.append(EntryState(m, APPLIED if row.hash == m.hash else HASH_MISMATCH, row, row.id))
    return Status(tuple(states), names.unknown, None, len(rows))


def iso(ms: int | None) -> str | None:
    """A drizzle `when` / `created_at` (ms since the epoch) as JavaScript's `toISOString()`, UTC."""
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@contextmanager
def read_only_session(settings: config.Settings) -> Iterator[psycopg.Connection[Any]]:
    """A connection inside one READ ONLY transaction: nothing it runs can change the database."""
    from entrypoint.database import connect  # the driver only once the folder is valid

    with connect(settings.database_url, timeout=settings.connect_timeout) as conn, conn.transaction():
        conn.execute("SET TRANSACTION READ ONLY")
        yield conn


def ledger_rows(
    conn: psycopg.Connection[Any], settings: config.Settings, *, name_keyed: bool = False
) -> tuple[bool, list[LedgerRow], bool]:
    """Whether the ledger table exists, its rows (none when it does not), and whether it has 1.0's names.

    Creates nothing.
    """
    from entrypoint.ledger import Ledger

    ledger = Ledger(settings.migrations_schema, settings.migrations_table, name_keyed=name_keyed)
    rows = ledger.read_if_exists(conn)
    return ledger.exists, rows, ledger.has_names


def to_json(settings: config.Settings, exists: bool, status: Status) -> dict[str, Any]:
    """The `--json` document (docs/operator-commands.md)."""
    counts = status.counts()
    return {
        "folder": str(settings.migrations_dir),
        "ledger": {
            "schema": settings.migrations_schema,
            "table": settings.migrations_table,
            "exists": exists,
            "rows": status.rows,
        },
        "entries": [
            {
                "idx": e.migration.idx,
                "tag": e.migration.tag,
                "when": e.migration.when,
                "when_iso": iso(e.migration.when),
                "state": e.state,
                "ledger_id": e.row.id if e.row else None,
                "hash": e.migration.hash,
            }
            for e in status.entries
        ],
        "unknown_rows": [
            {"id": r.id, "hash": r.hash, "created_at": r.created_at, "created_at_iso": iso(r.created_at)}
            for r in status.unknown_rows
        ],
        "summary": {
            "entries": len(status.entries),
            **{state.replace(" ", "_"): counts[state] for state in STATES},
            "unknown_rows": len(status.unknown_rows),
            "refusal": {"reason": status.refusal.reason, "detail": status.refusal.detail} if status.refusal else None,
        },
        "clean": status.clean,
    }


def _ledger_id(entry: EntryState) -> str:
    if entry.row is None:
        return "-"
    moved = entry.expected_id is not None and entry.expected_id != entry.row.id
    return f"{entry.row.id} → {entry.expected_id}" if moved else str(entry.row.id)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    return ["   " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]


def _print(settings: config.Settings, exists: bool, status: Status) -> None:
    log = logs.get_logger()
    where = f"{settings.migrations_schema}.{settings.migrations_table}"
    log.info("status.header", message=f"📋 Migrations in {settings.migrations_dir} against {where}")
    if not exists:
        log.info("status.no_ledger", message=f"   (no {where} table yet: nothing was ever applied here)")
    cells = [
        (str(e.migration.idx), e.migration.tag, (iso(e.migration.when) or "")[:19] + "Z", e.state, _ledger_id(e))
        for e in status.entries
    ]
    lines = _table(("idx", "tag", "when (UTC)", "state", "ledger id"), cells)
    for line, entry in zip(lines, (None, *status.entries), strict=True):
        fields = {"tag": entry.migration.tag, "state": entry.state} if entry else {}
        log.info("status.row" if entry else "status.columns", message=line, **fields)
    if status.refusal:
        log.warning(
            "status.refused",
            message=f"⚠️  Ledger not matched to the journal ({status.refusal.reason}): {status.refusal.detail}",
            reason=status.refusal.reason,
        )
    if status.unknown_rows:
        noun = "row" if len(status.unknown_rows) == 1 else "rows"
        log.warning("status.unknown", message=f"❓ {len(status.unknown_rows)} ledger {noun} not matched to an entry:")
        unknown = [(str(r.id), str(iso(r.created_at)), r.hash) for r in status.unknown_rows]
        for line in _table(("id", "created_at (UTC)", "hash"), unknown):
            log.warning("status.unknown_row", message=line)


def _summary(status: Status) -> str:
    counts = status.counts()
    parts = [f"{counts[state]} {state}" for state in STATES if counts[state]]
    if status.unknown_rows:
        parts.append(f"{len(status.unknown_rows)} unknown ledger rows")
    return ", ".join(parts)


def load_settings(flags: dict[str, Any], argv: Sequence[str], *, as_json: bool) -> config.Settings:
    """The settings, and the log pipeline set up: to stderr under `--json`, keeping stdout for the document."""
    stream = sys.stderr if as_json else None
    if stream:
        logs.configure(config.early_log_format(list(argv)), config.early_secrets(list(argv)), stream=stream)
    settings = config.load(flags)
    logs.configure(settings.log_format, settings.secrets(), stream=stream)
    return settings


def _parser() -> Any:
    from entrypoint.cli import operator_parser  # cli imports this module lazily

    return operator_parser(
        "status",
        "Show each migration of the journal against the ledger: applied, pending, drifted id, hash mismatch "
        "or out of order, then the ledger rows no migration accounts for. Read-only: creates nothing, takes "
        "no lock, changes nothing.",
        "  0    every migration applied and the ledger in step\n"
        "  12   something is pending, drifted, out of order or unknown\n",
        "table",
    )


def main(argv: Sequence[str]) -> int:
    """Print the status; 0 when clean, else `StatusNotClean` (exit 12)."""
    namespace = _parser().parse_args(list(argv))
    as_json = bool(namespace.json)
    settings = load_settings(vars(namespace), argv, as_json=as_json)
    journal = read_journal(settings.migrations_dir)  # first: a broken folder never touches the database
    with read_only_session(settings) as conn:
        exists, rows, has_names = ledger_rows(conn, settings, name_keyed=journal.name_keyed)
    status = entry_states(journal.migrations, rows, name_keyed=journal.name_keyed, has_names=has_names)
    if as_json:
        sys.stdout.write(json.dumps(to_json(settings, exists, status), ensure_ascii=False, indent=2) + "\n")
        return 0 if status.clean else StatusNotClean.exit_code
    _print(settings, exists, status)
    if not status.clean:
        raise StatusNotClean(
            f"❌ Not in step: {_summary(status)}. Run `python -m entrypoint --dry-run` to see what the next "
            "deploy would repair and apply"
        )
    logs.get_logger().info(
        "status.clean", message=f"✅ {len(status.entries)}/{len(status.entries)} migrations applied, ledger in step"
    )
    return 0
