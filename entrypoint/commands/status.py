"""`status`: each migration of the folder against the ledger, read-only.

It never creates the ledger and takes no lock: one READ ONLY transaction takes
the ledger's snapshot, and the deploy's own planner (`plan.plan`) decides each
entry's state, so what status calls drifted is exactly what the next deploy
would repair. `run` returns the report; the CLI prints it as lines (`show`) or
as the `--json` document (`StatusReport.document`). See docs/operator-commands.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from entrypoint.config import Settings
from entrypoint.core import pending as planner
from entrypoint.core.model import Migration, Refusal
from entrypoint.core.pending import STATES, EntryState, Plan
from entrypoint.db.ledger import Ledger
from entrypoint.journal import read_journal
from entrypoint.logs import get_logger

if TYPE_CHECKING:  # the start gate imports this module: it must not pay for the transaction planner
    from entrypoint.core.transactions import Unit

if TYPE_CHECKING:
    import psycopg


def iso(ms: int | None) -> str | None:
    """A drizzle `when` / `created_at` (ms since the epoch) as JavaScript's `toISOString()`, UTC."""
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def plural(number: int, noun: str) -> str:
    """`1 row`, `2 rows`."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


@dataclass(frozen=True)
class StatusReport:
    """The folder and the ledger it was held against, and the plan that says where each entry stands."""

    folder: Path
    schema: str
    table: str
    plan: Plan
    units: tuple[Unit, ...] | Refusal = ()  # how the next deploy would commit what is pending
    unlisted: tuple[str, ...] = ()  # SQL files no journal entry names

    @property
    def ledger(self) -> str:
        """`schema.table`."""
        return f"{self.schema}.{self.table}"

    @property
    def clean(self) -> bool:
        """Everything applied and in step."""
        return self.plan.clean and not isinstance(self.units, Refusal)

    def summary(self) -> str:
        """`8 applied, 1 pending, 3 hash mismatch`, and the unknown rows."""
        counts = self.plan.counts()
        parts = [f"{counts[state]} {state}" for state in STATES if counts[state]]
        if self.plan.unknown:
            parts.append(f"{len(self.plan.unknown)} unknown ledger rows")
        return ", ".join(parts)

    def document(self) -> dict[str, Any]:
        """The `--json` document (docs/operator-commands.md)."""
        plan = self.plan
        counts = plan.counts()
        return {
            "folder": str(self.folder),
            "ledger": {
                "schema": self.schema,
                "table": self.table,
                "exists": plan.snapshot.exists,
                "rows": len(plan.snapshot.rows),
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
                for e in plan.entries
            ],
            "unknown_rows": [
                {"id": r.id, "hash": r.hash, "created_at": r.created_at, "created_at_iso": iso(r.created_at)}
                for r in plan.unknown
            ],
            "summary": {
                "entries": len(plan.entries),
                **{state.replace(" ", "_"): counts[state] for state in STATES},
                "unknown_rows": len(plan.unknown),
                "refusal": {"reason": plan.refusal.reason, "detail": plan.refusal.detail} if plan.refusal else None,
            },
            "units": [
                {
                    "kind": u.kind,
                    "tags": [m.tag for m in u.migrations],
                    "why": u.why,
                    "builds": _builds_document(u),
                }
                for u in (self.units if not isinstance(self.units, Refusal) else ())
            ],
            "units_refused": self.units.detail if isinstance(self.units, Refusal) else None,
            "unlisted": list(self.unlisted),
            "clean": self.clean,
        }


def _builds_document(unit: Unit) -> list[dict[str, Any]]:
    """How each index of the unit's index-only migrations would be built, for `--json`."""
    return [
        {
            "tag": tag,
            "statement": b.number,
            "index": b.name,
            "table": b.table,
            "concurrently": b.concurrently,
            "why": b.why,
        }
        for tag, builds in unit.builds
        for b in builds
    ]


def run(settings: Settings) -> StatusReport:
    """Read the folder (first: a broken folder never touches the database), then the ledger, and plan."""
    from entrypoint.db.connect import read_only  # the driver only once the folder is valid

    journal = read_journal(settings.migrations_dir)
    ledger = Ledger(settings.migrations_schema, settings.migrations_table, name_keyed=journal.name_keyed)
    with read_only(settings.database_url, timeout=settings.connect_timeout, doing="reading the ledger") as conn:
        plan = planner.plan(journal, ledger.snapshot(conn))
        units = units_for(conn, plan.to_apply, settings) if plan.to_apply else ()
    return StatusReport(journal.folder, ledger.schema, ledger.table, plan, units, journal.unlisted)


def units_for(
    conn: psycopg.Connection[Any], to_apply: tuple[Migration, ...], settings: Settings
) -> tuple[Unit, ...] | Refusal:
    """Where a deploy of `to_apply` commits, and how it builds each index-only migration's indexes.

    The deploy plans with this under the lock, `status` to show what it would do: the same
    parse, the same live table sizes (read only for the tables index-only migrations index).
    """
    from entrypoint.core import indexes, transactions
    from entrypoint.db import catalog  # the SQL parser, only when something is pending

    facts = transactions.classify(to_apply, conn.info.server_version)
    online = settings.index_build != "transaction"
    tables = catalog.live_tables(conn, indexes.tables_to_size(tuple(f.chunks for f in facts))) if online else {}
    policy = indexes.Policy(settings.index_build, settings.index_build_threshold, tables)
    return transactions.plan_units(facts, settings.transaction_mode, policy)


def _ledger_id(entry: EntryState) -> str:
    if entry.row is None:
        return "-"
    moved = entry.expected_id is not None and entry.expected_id != entry.row.id
    return f"{entry.row.id} → {entry.expected_id}" if moved else str(entry.row.id)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell, the header first."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]


def show(report: StatusReport) -> None:
    """The report as lines: the header, one row per entry, the refusal and unknown rows, then `status.clean`."""
    log = get_logger()
    plan = report.plan
    log.info("status.header", folder=str(report.folder), ledger=report.ledger)
    if not plan.snapshot.exists:
        log.info("status.no_ledger", ledger=report.ledger)
    cells = [
        (str(e.migration.idx), e.migration.tag, (iso(e.migration.when) or "")[:19] + "Z", e.state, _ledger_id(e))
        for e in plan.entries
    ]
    header, *lines = table(("idx", "tag", "when (UTC)", "state", "ledger id"), cells)
    log.info("status.columns", cells=header)
    for line, entry in zip(lines, plan.entries, strict=True):
        log.info("status.row", cells=line, tag=entry.migration.tag, state=entry.state)
    if plan.refusal:
        log.warning("status.refused", reason=plan.refusal.reason, detail=plan.refusal.detail)
    if plan.unknown:
        log.warning("status.unknown", unknown=plural(len(plan.unknown), "ledger row"), count=len(plan.unknown))
        unknown = [(str(r.id), str(iso(r.created_at)), r.hash) for r in plan.unknown]
        header, *lines = table(("id", "created_at (UTC)", "hash"), unknown)
        log.warning("status.unknown_columns", cells=header)
        for line in lines:
            log.warning("status.unknown_row", cells=line)
    if report.unlisted:
        log.info("status.unlisted", files=", ".join(report.unlisted))
    if isinstance(report.units, Refusal):
        log.warning("status.units_refused", detail=report.units.detail)
    else:
        show_units(report.units)
    if report.clean:
        log.info("status.clean", applied=len(plan.entries), entries=len(plan.entries))


_HOW = {
    "outside": "outside any transaction, each statement committing on its own ({why})",
    "own": "on its own, under {why}",
    "concurrent": "outside any transaction, one index at a time ({why})",
}


def _show_builds(unit: Unit, migration: Migration) -> None:
    """How each index of an index-only migration is built, and why: a line per table and way."""
    ways: dict[tuple[str, bool, str], list[str]] = {}
    for build in unit.builds_of(migration):
        ways.setdefault((build.table, build.concurrently, build.why), []).append(build.name)
    for (table, concurrently, why), names in ways.items():
        if concurrently:
            how = "CONCURRENTLY, outside a transaction"
        elif unit.kind == "concurrent":
            how = "as written, each committing on its own"
        else:
            how = "as written, in the migration's transaction"
        get_logger().info(
            "plan.index_build",
            tag=migration.tag,
            table=table,
            count=f"{len(names)} {'index' if len(names) == 1 else 'indexes'}",
            indexes=", ".join(names),
            how=how,
            why=why,
            concurrently=concurrently,
        )


def show_units(units: Sequence[Unit], *, with_migrations: bool = False) -> None:
    """Where a run of `units` commits, and why: a line per boundary and per unit that runs alone.

    `with_migrations` (the dry run) first lists each migration the unit would apply, and how
    each index-only migration builds its indexes.
    """
    log = get_logger()
    for position, unit in enumerate(units):
        for migration in unit.migrations if with_migrations else ():
            log.info("plan.pending", tag=migration.tag, statements=migration.statement_count)
            _show_builds(unit, migration)
        if unit.kind == "concurrent" and not with_migrations:
            _show_builds(unit, unit.migrations[0])
        if unit.kind != "transaction":
            log.info("plan.alone", tag=unit.migrations[0].tag, how=_HOW[unit.kind].format(why=unit.why))
        elif position < len(units) - 1:
            log.info("plan.commit", why=unit.why)
