"""`verify`: the runbook's post-deploy checks, derived from the migrations themselves.

Two kinds of evidence, read in one READ ONLY transaction:
- the ledger: every entry recorded once with its hash and `when`, ids numbered
  without gaps from 0 or 1 in journal order, no row that no entry accounts for;
- the schema: the model of what each applied migration creates (`schema`) must
  be in the catalog (`catalog`).
`run` returns the report; the CLI prints it as lines (`show`) or as the `--json`
document (`VerifyReport.document`). See docs/operator-commands.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from entrypoint.commands import READ_ONLY, Help
from entrypoint.config import Settings
from entrypoint.core import pending as planner
from entrypoint.core.checks import ledger_problems, name_ledger_problems
from entrypoint.core.model import LedgerRow, Migration
from entrypoint.core.pending import RECORDED, ahead_label
from entrypoint.core.schema import KINDS, SchemaModel, SchemaObject, expected_objects, objects_of
from entrypoint.core.schema import missing as schema_missing
from entrypoint.core.text import plural
from entrypoint.db.ledger import Ledger
from entrypoint.errors import VerifyFailed
from entrypoint.journal import not_in_date_order, read_journal
from entrypoint.launch import stopping_says
from entrypoint.logs import get_logger

HELP = Help(
    "Check a deployed database against the migrations folder: the ledger (every migration recorded once with its "
    "hash and `when`, ids without gaps from 0 or 1, no unknown rows) and the schema (every table, column, index, "
    "enum type and value, and named constraint the applied migrations create and do not later drop, found in the "
    "catalog). A database ahead of the folder (a newer release migrated it) passes with its newer rows listed, "
    "unless WHEN_AHEAD=refuse. Read-only. See docs/operator-commands.md.",
    "every check passed",
    (VerifyFailed.exit_code,),
)


@dataclass(frozen=True)
class MigrationReport:
    """One migration's evidence: expected/present per kind, or why it was not checked."""

    migration: Migration
    checked: bool
    counts: dict[str, tuple[int, int]]
    missing: tuple[SchemaObject, ...]
    unparsed: int

    def mark(self) -> str:
        """`✔`, `✘`, or `⏭ ` when the migration is not applied."""
        return "⏭ " if not self.checked else "✘" if self.missing else "✔"

    def evidence(self) -> str:
        """`43/43 indexes present`, or why nothing was checked."""
        if not self.checked:
            return "not applied, schema not checked"
        found = [f"{present}/{expected} {KINDS[kind]}" for kind, (expected, present) in self.counts.items() if expected]
        text = f"{', '.join(found)} present" if found else "no tables, columns, indexes, enums or constraints to check"
        if self.unparsed:
            text += f" ({plural(self.unparsed, 'statement')} could not be analysed)"
        return text


def reports(
    migrations: Sequence[Migration], checked: set[str], model: SchemaModel, unparsed: dict[str, int], catalog: set[Any]
) -> list[MigrationReport]:
    """Pure: match the model against the catalog's (kind, schema, name, parent) rows, per migration."""
    result = []
    for m in migrations:
        objects = objects_of(model, m.tag)
        missing = tuple(schema_missing(objects, catalog))
        counts = {
            kind: (sum(o.kind == kind for o in objects), sum(o.kind == kind and o not in missing for o in objects))
            for kind in KINDS
        }
        result.append(MigrationReport(m, m.tag in checked, counts, missing, unparsed.get(m.tag, 0)))
    return result


@dataclass(frozen=True)
class VerifyReport:
    """The ledger checks that failed and each migration's schema evidence."""

    folder: Path
    schema: str
    table: str
    exists: bool
    rows: tuple[LedgerRow, ...]
    problems: list[tuple[str, str]]
    migrations: list[MigrationReport]
    ahead: tuple[LedgerRow, ...] = ()  # rows a newer release wrote (WHEN_AHEAD=start): listed, not checked

    @property
    def ledger(self) -> str:
        """`schema.table`."""
        return f"{self.schema}.{self.table}"

    @property
    def missing(self) -> int:
        """Schema objects missing, over every migration."""
        return sum(len(r.missing) for r in self.migrations)

    @property
    def ok(self) -> bool:
        """Every check passed."""
        return not self.problems and not self.missing

    def failure(self) -> VerifyFailed | None:
        """The ❌ line when a check failed (exit 13), else None."""
        if self.ok:
            return None
        return VerifyFailed(
            "❌ Verification failed: {missing} missing, {failed} failed. Hold the traffic: redeploy, or roll "
            "back from the backup",
            missing=plural(self.missing, "schema object"),
            failed=plural(len(self.problems), "ledger check"),
        )

    def document(self) -> dict[str, Any]:
        """The `--json` document (docs/operator-commands.md)."""
        return {
            "folder": str(self.folder),
            "ledger": {
                "schema": self.schema,
                "table": self.table,
                "exists": self.exists,
                "rows": len(self.rows),
                "ok": not self.problems,
                "problems": [{"check": check, "detail": detail} for check, detail in self.problems],
                "ahead": [{"id": r.id, "hash": r.hash, "created_at": r.created_at, "name": r.name} for r in self.ahead],
            },
            "migrations": [
                {
                    "idx": r.migration.idx,
                    "tag": r.migration.tag,
                    "checked": r.checked,
                    "counts": {
                        label.replace(" ", "_"): {"expected": r.counts[kind][0], "present": r.counts[kind][1]}
                        for kind, label in KINDS.items()
                    },
                    "unanalysed_statements": r.unparsed,
                }
                for r in self.migrations
            ],
            "missing": [
                {"kind": o.kind, "schema": o.schema, "name": o.name, "parent": o.parent, "migration": r.migration.tag}
                for r in self.migrations
                for o in r.missing
            ],
            "ok": self.ok,
        }


@stopping_says(READ_ONLY)
def run(settings: Settings) -> VerifyReport:
    """Read the folder (first: a broken folder never touches the database), the ledger and the catalog; check."""
    from entrypoint.db import catalog
    from entrypoint.db.connect import read_only  # the driver only once the folder is valid

    journal = read_journal(settings.migrations_dir)
    ledger = Ledger(settings.migrations_schema, settings.migrations_table, name_keyed=journal.name_keyed)
    with read_only(
        settings.database_url, timeout=settings.connect_timeout, doing="reading the ledger and the catalog"
    ) as conn:
        snapshot = ledger.snapshot(conn)
        present = catalog.read(conn)
        default_schema = catalog.creation_schema(conn)  # where PostgreSQL put the migrations' unqualified names
    migrations = journal.migrations
    plan = planner.plan(journal, snapshot, when_ahead=settings.when_ahead)
    checked = {e.migration.tag for e in plan.entries if e.state in RECORDED}
    model, unparsed = expected_objects([m for m in migrations if m.tag in checked], default_schema=default_schema)
    rows = tuple(row for row in snapshot.rows if row not in plan.ahead)  # a newer release's rows are not ours
    problems = (
        name_ledger_problems(migrations, rows, has_names=snapshot.has_names)
        if journal.name_keyed
        else ledger_problems(migrations, rows, in_date_order=not not_in_date_order(journal))
    )
    found = reports(migrations, checked, model, unparsed, present)
    return VerifyReport(journal.folder, ledger.schema, ledger.table, snapshot.exists, rows, problems, found, plan.ahead)


def show(report: VerifyReport) -> None:
    """The report as lines: one `❌` line per failed check or missing object, then `verify.ok` when all pass."""
    log = get_logger()
    log.info("verify.start", folder=str(report.folder), ledger=report.ledger)
    for check, detail in report.problems:
        log.error("verify.ledger_failed", ledger=report.ledger, detail=detail, check=check)
    if not report.problems:
        ids = sorted(r.id for r in report.rows)
        log.info("verify.ledger_ok", rows=len(report.rows), first_id=ids[0], last_id=ids[-1])
    if report.ahead:
        newest = max(report.migrations, key=lambda r: r.migration.when).migration.tag
        count = len(report.ahead)
        log.warning("verify.ahead", count=count, rows=plural(count, "ledger row"), newest=newest)
        for row in report.ahead:
            log.warning("verify.ahead_row", id=row.id, migration=ahead_label(row))
    show_schema(report)
    _show_ok(report)


def show_schema(report: VerifyReport) -> None:
    """The schema evidence alone: a line per migration, a `❌` line per missing object (`restore` uses it too)."""
    log = get_logger()
    for found in report.migrations:
        tag = found.migration.tag
        log.info("verify.migration", mark=found.mark(), tag=tag, evidence=found.evidence(), checked=found.checked)
        for obj in found.missing:
            log.error(
                "verify.missing",
                kind_label=obj.kind.capitalize(),
                object=obj.describe(),
                tag=tag,
                note=" (or INVALID)" if obj.kind == "index" else "",
                kind=obj.kind,
            )


def _show_ok(report: VerifyReport) -> None:
    log = get_logger()
    if report.ok:
        present = sum(p for r in report.migrations for _, p in r.counts.values())
        log.info("verify.ok", migrations=len(report.migrations), objects=present)
