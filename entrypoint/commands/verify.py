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

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from entrypoint.commands.status import plural
from entrypoint.config import Settings
from entrypoint.core import pending as planner
from entrypoint.core.model import LedgerRow, Migration
from entrypoint.core.pending import RECORDED
from entrypoint.core.schema import KINDS, SchemaModel, SchemaObject, expected_objects, objects_of
from entrypoint.core.schema import missing as schema_missing
from entrypoint.db.ledger import Ledger
from entrypoint.journal import not_in_date_order, read_journal
from entrypoint.logs import get_logger


def ledger_problems(
    migrations: Sequence[Migration], rows: Sequence[LedgerRow], *, in_date_order: bool = True
) -> list[tuple[str, str]]:
    """Pure: (check, detail) for each failed ledger check; empty when the ledger is exactly in step.

    Rows must be in journal order by id only when the journal is in date order: after a merged
    branch, drizzle-orm numbers rows in the order they were applied.
    """
    wanted = {(m.hash, m.when) for m in migrations}
    recorded = Counter((r.hash, r.created_at) for r in rows)
    problems = []
    missing = [m.tag for m in migrations if (m.hash, m.when) not in recorded]
    if missing:
        detail = f"no row with the file's hash and `when` for {plural(len(missing), 'migration')}: {', '.join(missing)}"
        problems.append(("not_applied", detail))
    unknown = [str(r.id) for r in rows if (r.hash, r.created_at) not in wanted]
    if unknown:
        problems.append(
            ("unknown_rows", f"{plural(len(unknown), 'row')} match no journal entry: ids {', '.join(unknown)}")
        )
    doubled = [m.tag for m in migrations if recorded[(m.hash, m.when)] > 1]
    if doubled:
        problems.append(("duplicates", f"recorded more than once: {', '.join(doubled)}"))
    problems += _id_problems(rows)
    ids = sorted(r.id for r in rows)
    in_order = [(r.hash, r.created_at) for r in sorted(rows, key=lambda r: r.id)]
    if in_date_order and not problems and in_order != [(m.hash, m.when) for m in migrations]:
        first = next(i for i, (got, m) in enumerate(zip(in_order, migrations, strict=True)) if got != (m.hash, m.when))
        problems.append(
            ("order", f"id {ids[first]} should record {migrations[first].tag}: rows are not in journal order")
        )
    return problems


def name_ledger_problems(
    migrations: Sequence[Migration], rows: Sequence[LedgerRow], *, has_names: bool
) -> list[tuple[str, str]]:
    """Pure: the ledger checks for drizzle-kit 1.0 folders, where a row is known by its name."""
    if not has_names:
        return [("not_upgraded", "the ledger has no `name` column yet: deploy to upgrade it for Drizzle 1.0")]
    names = Counter(r.name for r in rows)
    by_tag = {m.tag: m for m in migrations}
    problems = []
    missing = [m.tag for m in migrations if m.tag not in names]
    if missing:
        problems.append(("not_applied", f"no row named {plural(len(missing), 'migration')}: {', '.join(missing)}"))
    unknown = [str(r.id) for r in rows if r.name not in by_tag]
    if unknown:
        problems.append(
            ("unknown_rows", f"{plural(len(unknown), 'row')} name no migration folder: ids {', '.join(unknown)}")
        )
    changed = [r.name for r in rows if r.name in by_tag and by_tag[r.name].hash != r.hash]
    if changed:
        problems.append(("hash_changed", f"changed since applied (hash differs): {', '.join(str(c) for c in changed)}"))
    doubled = [m.tag for m in migrations if names[m.tag] > 1]
    if doubled:
        problems.append(("duplicates", f"recorded more than once: {', '.join(doubled)}"))
    return problems + _id_problems(rows)


def _id_problems(rows: Sequence[LedgerRow]) -> list[tuple[str, str]]:
    ids = sorted(r.id for r in rows)
    if ids and (ids[0] not in {0, 1} or ids != list(range(ids[0], ids[0] + len(ids)))):
        return [("ids", f"ids {id_ranges(ids)} are not numbered without gaps from 0 or 1")]
    return []


def id_ranges(ids: Sequence[int]) -> str:
    """`0..7, 283..285`: sorted ids as runs."""
    spans: list[list[int]] = []
    for i in ids:
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in spans)


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
    migrations = journal.migrations
    checked = {e.migration.tag for e in planner.plan(journal, snapshot).entries if e.state in RECORDED}
    model, unparsed = expected_objects([m for m in migrations if m.tag in checked])
    rows = snapshot.rows
    problems = (
        name_ledger_problems(migrations, rows, has_names=snapshot.has_names)
        if journal.name_keyed
        else ledger_problems(migrations, rows, in_date_order=not not_in_date_order(journal))
    )
    found = reports(migrations, checked, model, unparsed, present)
    return VerifyReport(journal.folder, ledger.schema, ledger.table, snapshot.exists, rows, problems, found)


def show(report: VerifyReport) -> None:
    """The report as lines: one `❌` line per failed check or missing object, then `verify.ok` when all pass."""
    log = get_logger()
    log.info("verify.start", folder=str(report.folder), ledger=report.ledger)
    for check, detail in report.problems:
        log.error("verify.ledger_failed", ledger=report.ledger, detail=detail, check=check)
    if not report.problems:
        ids = sorted(r.id for r in report.rows)
        log.info("verify.ledger_ok", rows=len(report.rows), first_id=ids[0], last_id=ids[-1])
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
