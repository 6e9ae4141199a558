"""`python -m entrypoint verify`: the runbook's post-deploy checks, derived from the migrations themselves.

Two kinds of evidence, read in one READ ONLY transaction:
- the ledger: every entry recorded once with its hash and `when`, ids numbered
  without gaps from 0 or 1 in journal order, no row that no entry accounts for;
- the schema: each applied migration's SQL is parsed with pglast (PostgreSQL's
  own parser) and replayed over a model of the objects it creates (tables,
  columns, indexes, enum types and added values, named constraints), following
  RENAMEs and DROPs; every object still expected must be in the catalog.
See docs/operator-commands.md for the contract.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from entrypoint import config, errors, logs
from entrypoint.journal import Migration, read_journal
from entrypoint.plan import LedgerRow
from entrypoint.status import (
    APPLIED,
    DRIFTED_ID,
    HASH_MISMATCH,
    RENAMED,
    UNNAMED,
    entry_states,
    ledger_rows,
    load_settings,
    read_only_session,
)

# Kinds in report order, with their plural label (also the `--json` counts key, spaces as underscores).
KINDS = {
    "table": "tables",
    "column": "columns",
    "index": "indexes",
    "enum type": "enum types",
    "enum value": "enum values",
    "constraint": "constraints",
}
DEFAULT_SCHEMA = "public"


VerifyFailed = errors.VerifyFailed


@dataclass(frozen=True)
class SchemaObject:
    """One object a migration created. `parent` is the table (column, index, constraint) or the enum type (value)."""

    kind: str
    schema: str
    name: str
    parent: str | None = None

    def describe(self) -> str:
        """The object as an operator would look it up."""
        if self.kind in {"column", "constraint", "index"}:
            where = f"{self.schema}.{self.parent}"
            return f"{where}.{self.name}" if self.kind == "column" else f"{self.schema}.{self.name} on {where}"
        if self.kind == "enum value":
            return f"'{self.name}' of {self.schema}.{self.parent}"
        return f"{self.schema}.{self.name}"


@dataclass
class SchemaModel:
    """The objects the migrations replayed so far leave behind, each with the tag that created it."""

    live: dict[SchemaObject, str] = field(default_factory=dict)

    def add(self, obj: SchemaObject, tag: str) -> None:
        self.live.setdefault(obj, tag)

    def drop(self, kinds: Collection[str], schema: str, name: str | None = None, parent: str | None = None) -> None:
        self.live = {o: tag for o, tag in self.live.items() if not _matches(o, kinds, schema, name, parent)}

    def rename(
        self,
        kinds: Collection[str],
        schema: str,
        name: str | None = None,
        parent: str | None = None,
        *,
        new_name: str | None = None,
        new_parent: str | None = None,
    ) -> None:
        self.live = {
            (
                replace(o, name=new_name or o.name, parent=new_parent or o.parent)
                if _matches(o, kinds, schema, name, parent)
                else o
            ): tag
            for o, tag in self.live.items()
        }


def _matches(obj: SchemaObject, kinds: Collection[str], schema: str, name: str | None, parent: str | None) -> bool:
    return (
        obj.kind in kinds
        and obj.schema == schema
        and (name is None or obj.name == name)
        and (parent is None or obj.parent == parent)
    )


def _names(nodes: Iterable[Any]) -> tuple[str, str]:
    """(schema, name) from a qualified name list, e.g. `"app"."status"`."""
    parts = [str(node.sval) for node in nodes]
    return (parts[-2] if len(parts) > 1 else DEFAULT_SCHEMA), parts[-1]


def _relation(range_var: Any) -> tuple[str, str]:
    return str(range_var.schemaname or DEFAULT_SCHEMA), str(range_var.relname)


def _column(model: SchemaModel, tag: str, schema: str, table: str, column: Any) -> None:
    model.add(SchemaObject("column", schema, str(column.colname), table), tag)
    for constraint in column.constraints or ():
        if constraint.conname:
            model.add(SchemaObject("constraint", schema, str(constraint.conname), table), tag)


def _create_table(model: SchemaModel, tag: str, stmt: Any) -> None:
    from pglast import ast

    schema, table = _relation(stmt.relation)
    model.add(SchemaObject("table", schema, table), tag)
    for element in stmt.tableElts or ():
        if isinstance(element, ast.ColumnDef):
            _column(model, tag, schema, table, element)
        elif isinstance(element, ast.Constraint) and element.conname:
            model.add(SchemaObject("constraint", schema, str(element.conname), table), tag)


def _alter_table(model: SchemaModel, tag: str, stmt: Any) -> None:
    from pglast.enums import AlterTableType, ObjectType

    if stmt.objtype != ObjectType.OBJECT_TABLE:
        return
    schema, table = _relation(stmt.relation)
    for cmd in stmt.cmds or ():
        if cmd.subtype == AlterTableType.AT_AddColumn:
            _column(model, tag, schema, table, cmd.def_)
        elif cmd.subtype == AlterTableType.AT_AddConstraint and cmd.def_.conname:
            model.add(SchemaObject("constraint", schema, str(cmd.def_.conname), table), tag)
        elif cmd.subtype == AlterTableType.AT_DropColumn:
            model.drop({"column"}, schema, str(cmd.name), table)
        elif cmd.subtype == AlterTableType.AT_DropConstraint:
            model.drop({"constraint"}, schema, str(cmd.name), table)


def _rename(model: SchemaModel, stmt: Any) -> None:
    from pglast.enums import ObjectType

    new = str(stmt.newname)
    kind = stmt.renameType
    if kind == ObjectType.OBJECT_TYPE:
        schema, old = _names(stmt.object or ())
        model.rename({"enum type"}, schema, old, new_name=new)
        model.rename({"enum value"}, schema, parent=old, new_parent=new)
    elif kind == ObjectType.OBJECT_TABLE:
        schema, old = _relation(stmt.relation)
        model.rename({"table"}, schema, old, new_name=new)
        model.rename({"column", "constraint", "index"}, schema, parent=old, new_parent=new)
    elif kind == ObjectType.OBJECT_INDEX:
        model.rename({"index"}, *_relation(stmt.relation), new_name=new)
    elif kind in {ObjectType.OBJECT_COLUMN, ObjectType.OBJECT_TABCONSTRAINT}:
        schema, table = _relation(stmt.relation)
        what = "column" if kind == ObjectType.OBJECT_COLUMN else "constraint"
        model.rename({what}, schema, str(stmt.subname), table, new_name=new)


def _drop(model: SchemaModel, stmt: Any) -> None:
    from pglast import ast
    from pglast.enums import ObjectType

    kind = stmt.removeType
    for target in stmt.objects or ():
        if kind == ObjectType.OBJECT_SCHEMA:
            model.drop(KINDS, str(target.sval))
        elif kind == ObjectType.OBJECT_TABLE:
            schema, name = _names(target)
            model.drop({"table"}, schema, name)
            model.drop({"column", "constraint", "index"}, schema, parent=name)
        elif kind == ObjectType.OBJECT_INDEX:
            model.drop({"index"}, *_names(target))
        elif kind == ObjectType.OBJECT_TYPE and isinstance(target, ast.TypeName):
            schema, name = _names(target.names or ())
            model.drop({"enum type"}, schema, name)
            model.drop({"enum value"}, schema, parent=name)


def replay(model: SchemaModel, tag: str, stmt: Any) -> None:
    """Apply one parsed statement to the model. Statements that create none of our kinds are ignored."""
    from pglast import ast

    if isinstance(stmt, ast.CreateStmt):
        _create_table(model, tag, stmt)
    elif isinstance(stmt, ast.AlterTableStmt):
        _alter_table(model, tag, stmt)
    elif isinstance(stmt, ast.IndexStmt) and stmt.idxname:
        schema, table = _relation(stmt.relation)
        model.add(SchemaObject("index", schema, str(stmt.idxname), table), tag)
    elif isinstance(stmt, ast.CreateEnumStmt):
        schema, name = _names(stmt.typeName or ())
        model.add(SchemaObject("enum type", schema, name), tag)
    elif isinstance(stmt, ast.AlterEnumStmt) and stmt.newVal:
        schema, name = _names(stmt.typeName or ())
        if stmt.oldVal:
            model.rename({"enum value"}, schema, str(stmt.oldVal), name, new_name=str(stmt.newVal))
        else:
            model.add(SchemaObject("enum value", schema, str(stmt.newVal), name), tag)
    elif isinstance(stmt, ast.RenameStmt):
        _rename(model, stmt)
    elif isinstance(stmt, ast.DropStmt):
        _drop(model, stmt)


def expected_objects(migrations: Sequence[Migration]) -> tuple[SchemaModel, dict[str, int]]:
    """Replay the migrations in order: the objects left, and per tag the statements pglast could not parse."""
    import pglast  # only `verify` pays for the parser

    model = SchemaModel()
    unparsed: dict[str, int] = {}
    for migration in migrations:
        unparsed[migration.tag] = 0
        for statement in migration.statements:
            try:
                parsed = pglast.parse_sql(statement)
            except pglast.Error:
                unparsed[migration.tag] += 1
                continue
            for raw in parsed:
                replay(model, migration.tag, raw.stmt)
    return model, unparsed


CATALOG = """
SELECT 'table', n.nspname, c.relname, NULL FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
UNION ALL
SELECT 'column', n.nspname, a.attname, c.relname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
UNION ALL
SELECT 'index', n.nspname, ic.relname, tc.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_class tc ON tc.oid = i.indrelid JOIN pg_namespace n ON n.oid = ic.relnamespace
 WHERE i.indisvalid
UNION ALL
SELECT 'enum type', n.nspname, t.typname, NULL FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE t.typtype = 'e'
UNION ALL
SELECT 'enum value', n.nspname, e.enumlabel, t.typname FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
  JOIN pg_namespace n ON n.oid = t.typnamespace
UNION ALL
SELECT 'constraint', n.nspname, co.conname, c.relname FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
"""


def ledger_problems(migrations: Sequence[Migration], rows: Sequence[LedgerRow]) -> list[tuple[str, str]]:
    """Pure: (check, detail) for each failed ledger check; empty when the ledger is exactly in step."""
    wanted = {(m.hash, m.when) for m in migrations}
    recorded = Counter((r.hash, r.created_at) for r in rows)
    problems = []
    missing = [m.tag for m in migrations if (m.hash, m.when) not in recorded]
    if missing:
        detail = f"no row with the file's hash and `when` for {_count(len(missing), 'migration')}: {', '.join(missing)}"
        problems.append(("not_applied", detail))
    unknown = [str(r.id) for r in rows if (r.hash, r.created_at) not in wanted]
    if unknown:
        problems.append(
            ("unknown_rows", f"{_count(len(unknown), 'row')} match no journal entry: ids {', '.join(unknown)}")
        )
    doubled = [m.tag for m in migrations if recorded[(m.hash, m.when)] > 1]
    if doubled:
        problems.append(("duplicates", f"recorded more than once: {', '.join(doubled)}"))
    ids = sorted(r.id for r in rows)
    if ids and (ids[0] not in {0, 1} or ids != list(range(ids[0], ids[0] + len(ids)))):
        problems.append(("ids", f"ids {_ranges(ids)} are not numbered without gaps from 0 or 1"))
    in_order = [(r.hash, r.created_at) for r in sorted(rows, key=lambda r: r.id)]
    if not problems and in_order != [(m.hash, m.when) for m in migrations]:
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
        problems.append(("not_applied", f"no row named {_count(len(missing), 'migration')}: {', '.join(missing)}"))
    unknown = [str(r.id) for r in rows if r.name not in by_tag]
    if unknown:
        problems.append(
            ("unknown_rows", f"{_count(len(unknown), 'row')} name no migration folder: ids {', '.join(unknown)}")
        )
    changed = [r.name for r in rows if r.name in by_tag and by_tag[r.name].hash != r.hash]
    if changed:
        problems.append(("hash_changed", f"changed since applied (hash differs): {', '.join(str(c) for c in changed)}"))
    doubled = [m.tag for m in migrations if names[m.tag] > 1]
    if doubled:
        problems.append(("duplicates", f"recorded more than once: {', '.join(doubled)}"))
    ids = sorted(r.id for r in rows)
    if ids and (ids[0] not in {0, 1} or ids != list(range(ids[0], ids[0] + len(ids)))):
        problems.append(("ids", f"ids {_ranges(ids)} are not numbered without gaps from 0 or 1"))
    return problems


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _ranges(ids: Sequence[int]) -> str:
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

    def line(self) -> str:
        tag = self.migration.tag
        if not self.checked:
            return f"   ⏭  {tag}: not applied, schema not checked"
        found = [f"{present}/{expected} {KINDS[kind]}" for kind, (expected, present) in self.counts.items() if expected]
        text = f"{', '.join(found)} present" if found else "no tables, columns, indexes, enums or constraints to check"
        if self.unparsed:
            text += f" ({_count(self.unparsed, 'statement')} could not be analysed)"
        return f"   {'✘' if self.missing else '✔'} {tag}: {text}"


def reports(
    migrations: Sequence[Migration], checked: set[str], model: SchemaModel, unparsed: dict[str, int], catalog: set[Any]
) -> list[MigrationReport]:
    """Pure: match the model against the catalog's (kind, schema, name, parent) rows, per migration."""
    result = []
    for m in migrations:
        objects = [obj for obj, tag in model.live.items() if tag == m.tag]
        missing = tuple(o for o in objects if (o.kind, o.schema, o.name, o.parent) not in catalog)
        counts = {
            kind: (sum(o.kind == kind for o in objects), sum(o.kind == kind and o not in missing for o in objects))
            for kind in KINDS
        }
        result.append(MigrationReport(m, m.tag in checked, counts, missing, unparsed.get(m.tag, 0)))
    return result


def _to_json(
    settings: config.Settings, exists: bool, rows: int, problems: list[tuple[str, str]], found: list[MigrationReport]
) -> dict[str, Any]:
    return {
        "folder": str(settings.migrations_dir),
        "ledger": {
            "schema": settings.migrations_schema,
            "table": settings.migrations_table,
            "exists": exists,
            "rows": rows,
            "ok": not problems,
            "problems": [{"check": check, "detail": detail} for check, detail in problems],
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
            for r in found
        ],
        "missing": [
            {"kind": o.kind, "schema": o.schema, "name": o.name, "parent": o.parent, "migration": r.migration.tag}
            for r in found
            for o in r.missing
        ],
        "ok": not problems and not any(r.missing for r in found),
    }


def _parser() -> Any:
    from entrypoint.cli import operator_parser  # cli imports this module lazily

    return operator_parser(
        "verify",
        "Check a deployed database against the migrations folder: the ledger (every migration recorded once "
        "with its hash and `when`, ids without gaps from 0 or 1, no unknown rows) and the schema (every table, "
        "column, index, enum type and value, and named constraint the applied migrations create and do not "
        "later drop, found in the catalog). Read-only.",
        "  0    every check passed\n  13   a ledger check failed or a schema object is missing (one ❌ line each)\n",
        "lines",
    )


def main(argv: Sequence[str]) -> int:
    """Run every check; 0 when all pass, else `VerifyFailed` (exit 13)."""
    namespace = _parser().parse_args(list(argv))
    settings = load_settings(vars(namespace), argv, as_json=bool(namespace.json))
    journal = read_journal(settings.migrations_dir)  # first: a broken folder never touches the database
    with read_only_session(settings) as conn:
        exists, rows, has_names = ledger_rows(conn, settings, name_keyed=journal.name_keyed)
        catalog = {tuple(row) for row in conn.execute(CATALOG)}
    migrations = journal.migrations
    states = entry_states(migrations, rows, name_keyed=journal.name_keyed, has_names=has_names)
    recorded = {APPLIED, DRIFTED_ID, HASH_MISMATCH, UNNAMED, RENAMED}
    checked = {e.migration.tag for e in states.entries if e.state in recorded}
    model, unparsed = expected_objects([m for m in migrations if m.tag in checked])
    found = reports(migrations, checked, model, unparsed, catalog)
    problems = (
        name_ledger_problems(migrations, rows, has_names=has_names)
        if journal.name_keyed
        else ledger_problems(migrations, rows)
    )
    if namespace.json:
        document = _to_json(settings, exists, len(rows), problems, found)
        sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
        return 0 if document["ok"] else VerifyFailed.exit_code
    return _print(settings, rows, problems, found)


def _print(
    settings: config.Settings, rows: Sequence[LedgerRow], problems: list[tuple[str, str]], found: list[MigrationReport]
) -> int:
    log = logs.get_logger()
    where = f"{settings.migrations_schema}.{settings.migrations_table}"
    log.info("verify.start", message=f"🔎 Verifying the database against {settings.migrations_dir} ({where})")
    for check, detail in problems:
        log.error("verify.ledger_failed", message=f"❌ Ledger {where}: {detail}", check=check)
    if not problems:
        ids = sorted(r.id for r in rows)
        log.info(
            "verify.ledger_ok",
            message=f"✅ Ledger: {len(rows)} rows, ids {ids[0]}..{ids[-1]} without gaps, each hash and created_at "
            "matching its journal entry",
        )
    for report in found:
        log.info("verify.migration", message=report.line(), tag=report.migration.tag, checked=report.checked)
        for obj in report.missing:
            log.error(
                "verify.missing",
                message=f"❌ {obj.kind.capitalize()} {obj.describe()} from {report.migration.tag} is missing"
                + (" (or INVALID)" if obj.kind == "index" else ""),
                kind=obj.kind,
                object=obj.describe(),
                tag=report.migration.tag,
            )
    missing = sum(len(r.missing) for r in found)
    if problems or missing:
        raise VerifyFailed(
            f"❌ Verification failed: {_count(missing, 'schema object')} missing, "
            f"{_count(len(problems), 'ledger check')} failed. Hold the traffic: redeploy, or roll back from the backup"
        )
    present = sum(p for r in found for _, p in r.counts.values())
    log.info("verify.ok", message=f"🎉 Verified: {len(found)} migrations applied, {present} schema objects present")
    return 0
