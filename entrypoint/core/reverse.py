"""How to undo one applied migration: its reversing statements, or the statement that has none. Pure.

From a migration's one parse (`sql.parse`), statement by statement, the kinds
that reverse without losing anything, each undone in the reverse order:

- `CREATE INDEX` → `DROP INDEX IF EXISTS` (`CONCURRENTLY` on a large table,
  decided later from live sizes, as the online builds are: `rollback_plan`);
- `CREATE TABLE` → `DROP TABLE`, and `ADD COLUMN` → `DROP COLUMN`, each with a
  `DataCheck` the command runs first: the table holds no row, the column only
  NULL or its default (else data would be lost: refused without --allow-data-loss);
- `CREATE TYPE / SEQUENCE / VIEW / FUNCTION / TRIGGER / SCHEMA / EXTENSION /
  DOMAIN`, `ADD CONSTRAINT` → the matching `DROP`; a `CREATE OR REPLACE` of
  something an earlier migration created has no inverse (its previous body is gone);
- `RENAME` → the rename back; `SET NOT NULL` ↔ `DROP NOT NULL`; `SET/DROP
  DEFAULT` → the previous default, which `History` (the earlier migrations
  replayed) knows for the columns they created.

Anything else (`DROP …`, data changes, `ALTER TYPE … ADD VALUE`, a type change,
a `DO` block, a statement pglast cannot parse) is `Irreversible`: the rollback
is refused before anything changes. A down file (`down`) is the user's own
reversal, taken as written; only what it visibly destroys (`DROP TABLE`,
`TRUNCATE`, `DROP COLUMN`) gets a `DataCheck`.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

from entrypoint.core.history import ColumnKey, History, created, deparse, names, table_of
from entrypoint.core.model import Migration
from entrypoint.core.online_parts import TableName
from entrypoint.core.sql import Chunk, Parsed

ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"
Check = Literal["rows", "values", "nulls"]
_SHOWN = 160  # characters of a statement a refusal quotes


class DataCheck(NamedTuple):
    """What must hold on the live database for a step to lose nothing (`nulls`: to succeed at all).

    `rows`: the table holds no row; `values`: the column holds only NULL or `default`; `nulls`: the
    column holds no NULL (setting NOT NULL back).
    """

    kind: Check
    table: TableName
    column: str | None = None
    default: str | None = None  # SQL text of the column's default, from the migration itself


class Step(NamedTuple):
    """One reversing statement: what is sent, what it undoes, what it locks and what must hold first."""

    sql: str
    reverses: int  # the migration's statement it undoes (0: a down file's own statement)
    what: str  # for lines: `DROP INDEX idx_x`, `DROP TABLE notes`
    table: TableName | None
    lock: str = ACCESS_EXCLUSIVE
    checks: tuple[DataCheck, ...] = ()
    drops_index: TableName | None = None  # the (schema, index) it drops: CONCURRENTLY on a large table


class Reversal(NamedTuple):
    """How to undo `migration`: its steps, newest statement first, and the down file they come from, if any."""

    migration: Migration
    steps: tuple[Step, ...]
    down: str | None = None


class Irreversible(NamedTuple):
    """The first statement of `migration` with no safe inverse, and why."""

    migration: Migration
    number: int
    text: str
    why: str


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _qual(schema: str | None, name: str) -> str:
    return f"{_q(schema)}.{_q(name)}" if schema else _q(name)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class _NoInverse(Exception):
    """A statement with no safe inverse (the reason is its message)."""


def _drop(kind: str, schema: str | None, name: str, *, if_exists: bool = False, table: TableName | None = None) -> Step:
    exists = "IF EXISTS " if if_exists else ""
    return Step(f"DROP {kind} {exists}{_qual(schema, name)}", 0, f"DROP {kind} {name}", table)


def _index(stmt: Any) -> list[Step]:
    if not stmt.idxname:
        raise _NoInverse("an index created without a name cannot be dropped by name")
    schema, table = table_of(stmt.relation)
    name = str(stmt.idxname)
    sql = f"DROP INDEX IF EXISTS {_qual(schema, name)}"
    return [Step(sql, 0, f"DROP INDEX {name}", (schema, table), drops_index=(schema, name))]


def _replaced(kind: str, stmt: Any, history: History) -> None:
    named = created(stmt)
    if getattr(stmt, "replace", False) and named in history.made:
        raise _NoInverse(f"it replaces a {kind} an earlier migration created: its previous definition is gone")


def _function(stmt: Any, history: History) -> list[Step]:
    from pglast.enums import FunctionParameterMode as Mode

    _replaced("function", stmt, history)
    schema, name = names(stmt.funcname)
    kind = "PROCEDURE" if stmt.is_procedure else "FUNCTION"
    ins = (Mode.FUNC_PARAM_IN, Mode.FUNC_PARAM_INOUT, Mode.FUNC_PARAM_VARIADIC, Mode.FUNC_PARAM_DEFAULT)
    args = ", ".join(deparse(p.argType) for p in stmt.parameters or () if p.mode in ins)
    return [Step(f"DROP {kind} {_qual(schema, name)}({args})", 0, f"DROP {kind} {name}", None)]


def _add_column(schema: str | None, table: str, cmd: Any) -> Step:
    from pglast.enums import ConstrType

    column = cmd.def_
    name = str(column.colname)
    found = [c.raw_expr for c in column.constraints or () if c.contype == ConstrType.CONSTR_DEFAULT]
    check = DataCheck("values", (schema, table), name, deparse(found[0]) if found else None)
    exists = "IF EXISTS " if cmd.missing_ok else ""
    sql = f"ALTER TABLE {_qual(schema, table)} DROP COLUMN {exists}{_q(name)}"
    return Step(sql, 0, f"DROP COLUMN {table}.{name}", (schema, table), checks=(check,))


_ALTER_REFUSED = {
    "AT_DropColumn": "it drops a column: its values cannot be brought back",
    "AT_DropConstraint": "it drops a constraint",
    "AT_AlterColumnType": "it changes a column's type",
}


def _altertable_of(stmt: Any, history: History) -> list[Step]:
    from pglast.enums import AlterTableType as At
    from pglast.enums import ObjectType

    if stmt.objtype != ObjectType.OBJECT_TABLE:
        raise _NoInverse(f"ALTER {stmt.objtype.name.removeprefix('OBJECT_')} has no known inverse")
    schema, table = table_of(stmt.relation)
    target = f"ALTER TABLE {_qual(schema, table)}"
    steps = []
    for cmd in stmt.cmds or ():
        column = _q(str(cmd.name)) if cmd.name else ""
        if cmd.subtype == At.AT_AddColumn:
            steps.append(_add_column(schema, table, cmd))
        elif cmd.subtype == At.AT_AddConstraint:
            if not cmd.def_.conname:
                raise _NoInverse("a constraint added without a name cannot be dropped by name")
            name = str(cmd.def_.conname)
            steps.append(Step(f"{target} DROP CONSTRAINT {_q(name)}", 0, f"DROP CONSTRAINT {name}", (schema, table)))
        elif cmd.subtype == At.AT_SetNotNull:
            steps.append(
                Step(f"{target} ALTER COLUMN {column} DROP NOT NULL", 0, f"DROP NOT NULL {cmd.name}", (schema, table))
            )
        elif cmd.subtype == At.AT_DropNotNull:
            check = DataCheck("nulls", (schema, table), str(cmd.name))
            sql = f"{target} ALTER COLUMN {column} SET NOT NULL"
            steps.append(Step(sql, 0, f"SET NOT NULL {cmd.name}", (schema, table), checks=(check,)))
        elif cmd.subtype == At.AT_ColumnDefault:
            key = (schema, table, str(cmd.name))
            if key not in history.defaults:
                raise _NoInverse(f"the previous default of {table}.{cmd.name} is not known (no migration here made it)")
            previous = history.defaults[key]
            change = "DROP DEFAULT" if previous is None else f"SET DEFAULT {previous}"
            steps.append(Step(f"{target} ALTER COLUMN {column} {change}", 0, f"{change} {cmd.name}", (schema, table)))
        else:
            raise _NoInverse(
                _ALTER_REFUSED.get(cmd.subtype.name, f"ALTER TABLE … {cmd.subtype.name} has no known inverse")
            )
    return steps


_RENAMED = {
    "OBJECT_TABLE": "TABLE",
    "OBJECT_VIEW": "VIEW",
    "OBJECT_MATVIEW": "MATERIALIZED VIEW",
    "OBJECT_SEQUENCE": "SEQUENCE",
    "OBJECT_INDEX": "INDEX",
    "OBJECT_FOREIGN_TABLE": "FOREIGN TABLE",
}


def _rename(stmt: Any) -> list[Step]:
    kind, old, new = stmt.renameType.name, str(stmt.subname or ""), str(stmt.newname)
    if kind in _RENAMED:
        schema, name = table_of(stmt.relation)
        sql = f"ALTER {_RENAMED[kind]} {_qual(schema, new)} RENAME TO {_q(name)}"
        return [Step(sql, 0, f"RENAME {new} TO {name}", (schema, new) if kind == "OBJECT_TABLE" else None)]
    if kind in {"OBJECT_COLUMN", "OBJECT_TABCONSTRAINT"}:
        schema, table = table_of(stmt.relation)
        what = "COLUMN" if kind == "OBJECT_COLUMN" else "CONSTRAINT"
        sql = f"ALTER TABLE {_qual(schema, table)} RENAME {what} {_q(new)} TO {_q(old)}"
        return [Step(sql, 0, f"RENAME {what} {new} TO {old}", (schema, table))]
    if kind == "OBJECT_TYPE":
        schema, name = names(stmt.object)
        return [Step(f"ALTER TYPE {_qual(schema, new)} RENAME TO {_q(name)}", 0, f"RENAME TYPE {new} TO {name}", None)]
    if kind == "OBJECT_SCHEMA":
        return [Step(f"ALTER SCHEMA {_q(new)} RENAME TO {_q(old)}", 0, f"RENAME SCHEMA {new} TO {old}", None)]
    if kind == "OBJECT_TRIGGER":
        schema, table = table_of(stmt.relation)
        sql = f"ALTER TRIGGER {_q(new)} ON {_qual(schema, table)} RENAME TO {_q(old)}"
        return [Step(sql, 0, f"RENAME TRIGGER {new} TO {old}", (schema, table))]
    raise _NoInverse(f"renaming a {kind.removeprefix('OBJECT_').lower()} has no known inverse")


def _enum(stmt: Any) -> list[Step]:
    schema, name = names(stmt.typeName)
    if not stmt.oldVal:
        raise _NoInverse("it adds an enum value, and PostgreSQL cannot remove one")
    old, new = _literal(str(stmt.oldVal)), _literal(str(stmt.newVal))
    return [Step(f"ALTER TYPE {_qual(schema, name)} RENAME VALUE {new} TO {old}", 0, f"RENAME VALUE {new}", None)]


_DATA = ("InsertStmt", "UpdateStmt", "DeleteStmt", "TruncateStmt", "CopyStmt", "MergeStmt")


def _inverse(stmt: Any, history: History) -> list[Step]:  # noqa: C901, PLR0911, PLR0912 - one branch per kind
    """The steps undoing `stmt` (in its own order), or `_NoInverse`."""
    from pglast import ast
    from pglast.enums import ObjectType

    if isinstance(stmt, ast.TransactionStmt | ast.VariableSetStmt):
        return []  # its own BEGIN/COMMIT, a SET: nothing of the schema to undo
    if isinstance(stmt, ast.IndexStmt):
        return _index(stmt)
    if isinstance(stmt, ast.CreateStmt):
        schema, table = table_of(stmt.relation)
        step = _drop("TABLE", schema, table, table=(schema, table))
        return [step._replace(checks=(DataCheck("rows", (schema, table)),))]
    if isinstance(stmt, ast.CreateTableAsStmt):
        schema, name = table_of(stmt.into.rel if stmt.into else None)
        if stmt.objtype == ObjectType.OBJECT_MATVIEW:
            return [_drop("MATERIALIZED VIEW", schema, name)]
        return [
            _drop("TABLE", schema, name, table=(schema, name))._replace(checks=(DataCheck("rows", (schema, name)),))
        ]
    if isinstance(stmt, ast.AlterTableStmt):
        return _altertable_of(stmt, history)
    if isinstance(stmt, ast.ViewStmt):
        _replaced("view", stmt, history)
        return [_drop("VIEW", *table_of(stmt.view))]
    if isinstance(stmt, ast.CreateFunctionStmt):
        return _function(stmt, history)
    if isinstance(stmt, ast.CreateTrigStmt):
        _replaced("trigger", stmt, history)
        schema, table = table_of(stmt.relation)
        sql = f"DROP TRIGGER {_q(str(stmt.trigname))} ON {_qual(schema, table)}"
        return [Step(sql, 0, f"DROP TRIGGER {stmt.trigname}", (schema, table))]
    if isinstance(stmt, ast.CreateEnumStmt | ast.CreateRangeStmt):
        return [_drop("TYPE", *names(stmt.typeName))]
    if isinstance(stmt, ast.CompositeTypeStmt):
        return [_drop("TYPE", *table_of(stmt.typevar))]
    if isinstance(stmt, ast.CreateDomainStmt):
        return [_drop("DOMAIN", *names(stmt.domainname))]
    if isinstance(stmt, ast.CreateSeqStmt):
        return [_drop("SEQUENCE", *table_of(stmt.sequence), if_exists=bool(stmt.if_not_exists))]
    if isinstance(stmt, ast.CreateSchemaStmt):
        if stmt.schemaElts:
            raise _NoInverse("CREATE SCHEMA with objects inside has no known inverse")
        return [_drop("SCHEMA", None, str(stmt.schemaname), if_exists=bool(stmt.if_not_exists))]
    if isinstance(stmt, ast.CreateExtensionStmt):
        return [_drop("EXTENSION", None, str(stmt.extname), if_exists=bool(stmt.if_not_exists))]
    if isinstance(stmt, ast.RenameStmt):
        return _rename(stmt)
    if isinstance(stmt, ast.AlterEnumStmt):
        return _enum(stmt)
    if isinstance(stmt, ast.DropStmt):
        what = str(getattr(stmt.removeType, "name", "object")).removeprefix("OBJECT_").lower().replace("_", " ")
        raise _NoInverse(f"it drops a {what}: what it dropped cannot be brought back")
    if isinstance(stmt, ast.DoStmt):
        raise _NoInverse("a DO block: what it does cannot be read, so it cannot be undone")
    if type(stmt).__name__ in _DATA:
        raise _NoInverse("it changes data, which no statement can put back")
    raise _NoInverse(f"{type(stmt).__name__.removesuffix('Stmt')} has no known inverse")


def _shown(text: str) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= _SHOWN else one_line[: _SHOWN - 1] + "…"


def _statement(stmt: Any, chunk: str) -> str:
    """The statement as PostgreSQL reads it (its chunk's comments left out), or the chunk when it cannot be printed."""
    try:
        return deparse(stmt)
    except Exception:  # noqa: BLE001 - pglast cannot print every node; the chunk as written then says it
        return chunk


def computed(parsed: Parsed, history: History) -> Reversal | Irreversible:
    """The migration's own statements, each undone, newest first; or its first statement with no inverse.

    `history` is what the earlier migrations left; it is not changed.
    """
    migration = parsed.migration
    seen = history.copy()
    steps: list[Step] = []
    for number, chunk in enumerate(parsed.chunks, start=1):
        text = chunk.text if chunk.text is not None else "(too large to read)"
        if chunk.stmts is None:
            return Irreversible(migration, number, _shown(text), "pglast cannot parse it, so it cannot be undone")
        for stmt in chunk.ast():  # the Python AST: each inverse is printed back as SQL
            try:
                found = _inverse(stmt, seen)
            except _NoInverse as refused:
                return Irreversible(migration, number, _shown(_statement(stmt, text)), str(refused))
            steps += [s._replace(reverses=number) for s in found]
            seen.follow(stmt)
    return Reversal(migration, tuple(reversed(steps)))


def _weighed(stmt: Any, defaults: dict[ColumnKey, str | None]) -> list[DataCheck]:
    """What a down file's statement visibly destroys: a table's rows, a column's values."""
    from pglast import ast
    from pglast.enums import AlterTableType, ObjectType

    if isinstance(stmt, ast.DropStmt) and stmt.removeType == ObjectType.OBJECT_TABLE:
        return [DataCheck("rows", names(target)) for target in stmt.objects or ()]
    if isinstance(stmt, ast.TruncateStmt):
        return [DataCheck("rows", table_of(relation)) for relation in stmt.relations or ()]
    if isinstance(stmt, ast.AlterTableStmt) and stmt.objtype == ObjectType.OBJECT_TABLE:
        schema, table = table_of(stmt.relation)
        return [
            DataCheck("values", (schema, table), str(cmd.name), defaults.get((schema, table, str(cmd.name))))
            for cmd in stmt.cmds or ()
            if cmd.subtype == AlterTableType.AT_DropColumn
        ]
    return []


def from_down(migration: Migration, down: Migration, path: str, history: History) -> Reversal:
    """A down file's statements, as written, with checks for the rows and values they drop.

    `down` holds the file as a `Migration` (its chunks split as drizzle-orm splits); `history` is
    what the migration itself leaves (the defaults a dropped column had).
    """
    steps = []
    for chunk in down.statements:
        parsed = Chunk(chunk)
        if parsed.stmts == ():
            continue  # comments only: nothing to run
        checks = tuple(c for stmt in (parsed.ast() if parsed.stmts else ()) for c in _weighed(stmt, history.defaults))
        text = chunk.decode("utf-8")
        steps.append(Step(text, 0, _shown(text), None, checks=checks))
    return Reversal(migration, tuple(steps), down=path)
