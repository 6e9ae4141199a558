"""The reference the cheap parse is held to: the same readers over pglast's full Python AST.

Before issue 25, every reader of a migration (the commit planning's facts, the lint's rules, the schema
model, the online planner) walked pglast's Python AST (`pglast.parse_sql`). They now read the parser's
JSON tree as plain dicts (`entrypoint.core.sql`), several times cheaper to build, and the online planner
builds the AST only for a migration with a statement it weighs. This module keeps the AST readers as
they were, so that `tests/unit/test_cheap_parse.py` and the corpus can check that both read every chunk
alike: what a chunk does to its transaction, how many statements it holds, the online planner's first
look at a migration (which tables to size, which it creates, whether it is index-only, whether any
statement has an online form to weigh), the lint's findings and the objects the schema model replays.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import pglast
from pglast import ast
from pglast.enums import AlterTableType, ConstrType, ObjectType, TransactionStmtKind

from entrypoint.core import ddl, sql
from entrypoint.core.model import Migration
from entrypoint.core.schema import KINDS, SchemaModel, SchemaObject

DEFAULT = sql.DEFAULT_SCHEMA


def statements(chunk: bytes | str) -> list[Any] | None:
    """The chunk's statements as pglast's AST, or None when too large or refused (as the parse was)."""
    text = sql.text_of(chunk)
    if text is None:
        return None
    try:
        return [raw.stmt for raw in pglast.parse_sql(text)]
    except pglast.Error:
        return None


def rejection(chunk: bytes | str) -> str | None:
    """Why PostgreSQL's parser refuses the chunk (as the lint says it), or None."""
    text = sql.text_of(chunk)
    if text is None:
        return None
    try:
        pglast.parse_sql(text)
    except pglast.Error as error:
        return sql.parse_error(error)
    return None


def _qualified(nodes: Any) -> tuple[str, str]:
    parts = [str(n.sval) for n in nodes]
    return (parts[-2] if len(parts) > 1 else DEFAULT), parts[-1]


def _relation(range_var: Any) -> tuple[str, str] | None:
    return None if range_var is None else (str(range_var.schemaname or DEFAULT), str(range_var.relname))


# --------------------------------------------------------------------------
# what a chunk does to its transaction


class Facts(NamedTuple):
    """The facts both parses must agree on, for one chunk."""

    outside: str | None
    controls: tuple[str, ...]
    adds_enum_value: bool
    concurrent_indexes: tuple[tuple[str | None, str], ...]
    parsed: bool
    statement_count: int


def _control(stmt: Any) -> str | None:
    kind = stmt.kind
    if kind in {TransactionStmtKind.TRANS_STMT_BEGIN, TransactionStmtKind.TRANS_STMT_START}:
        return sql.BEGIN
    if kind == TransactionStmtKind.TRANS_STMT_COMMIT:
        return sql.COMMIT
    if kind in {
        TransactionStmtKind.TRANS_STMT_ROLLBACK,
        TransactionStmtKind.TRANS_STMT_PREPARE,
        TransactionStmtKind.TRANS_STMT_COMMIT_PREPARED,
        TransactionStmtKind.TRANS_STMT_ROLLBACK_PREPARED,
    }:
        return sql.ROLLBACK
    return None


def _adds_enum_value(stmt: Any) -> bool:
    return isinstance(stmt, ast.AlterEnumStmt) and bool(stmt.newVal) and not stmt.oldVal


def _outside(stmt: Any, server_version: int) -> str | None:  # noqa: PLR0911
    if isinstance(stmt, ast.IndexStmt) and stmt.concurrent:
        return "CREATE INDEX CONCURRENTLY"
    if isinstance(stmt, ast.DropStmt) and stmt.concurrent:
        return "DROP INDEX CONCURRENTLY"
    if isinstance(stmt, ast.ReindexStmt) and any(p.defname == "concurrently" for p in stmt.params or ()):
        return "REINDEX CONCURRENTLY"
    if isinstance(stmt, ast.VacuumStmt) and stmt.is_vacuumcmd:
        return "VACUUM"
    if isinstance(stmt, ast.ClusterStmt) and stmt.relation is None:
        return "CLUSTER of every table"
    if isinstance(stmt, ast.AlterTableStmt) and any(
        cmd.subtype == AlterTableType.AT_DetachPartition and cmd.def_.concurrent for cmd in stmt.cmds or ()
    ):
        return "DETACH PARTITION CONCURRENTLY"
    named = {
        ast.CreatedbStmt: "CREATE DATABASE",
        ast.DropdbStmt: "DROP DATABASE",
        ast.CreateTableSpaceStmt: "CREATE TABLESPACE",
        ast.DropTableSpaceStmt: "DROP TABLESPACE",
        ast.AlterSystemStmt: "ALTER SYSTEM",
        ast.CreateSubscriptionStmt: "CREATE SUBSCRIPTION",
    }
    for kind, name in named.items():
        if isinstance(stmt, kind):
            return name
    if _adds_enum_value(stmt) and server_version < sql.ADD_VALUE_IN_TRANSACTION_SINCE:
        return "ALTER TYPE … ADD VALUE (before PostgreSQL 12)"
    return None


def facts(migration: Migration, server_version: int) -> tuple[Facts, ...]:
    """Each chunk's facts, read from the full AST."""
    found = []
    for chunk in migration.statements:
        stmts = statements(chunk)
        if stmts is None:
            found.append(Facts(None, (), adds_enum_value=False, concurrent_indexes=(), parsed=False, statement_count=0))
            continue
        found.append(
            Facts(
                next((why for why in (_outside(s, server_version) for s in stmts) if why), None),
                tuple(c for c in (_control(s) for s in stmts if isinstance(s, ast.TransactionStmt)) if c),
                any(_adds_enum_value(s) for s in stmts),
                tuple(
                    (s.relation.schemaname if s.relation else None, str(s.idxname))
                    for s in stmts
                    if isinstance(s, ast.IndexStmt) and s.concurrent and s.idxname
                ),
                parsed=True,
                statement_count=len(stmts),
            )
        )
    return tuple(found)


# --------------------------------------------------------------------------
# the online planner's first look


class OnlineReads(NamedTuple):
    """What the online planner reads of a migration before it weighs any statement."""

    tables_to_size: frozenset[tuple[str | None, str]]
    creates: frozenset[tuple[str, str]]
    index_only: bool
    candidate: bool  # some statement has an online form to weigh
    statement_counts: tuple[int, ...]  # per chunk, as its as-written part numbers them


def _key(range_var: Any) -> tuple[str | None, str]:
    return (str(range_var.schemaname) if range_var.schemaname else None, str(range_var.relname))


def online_reads(migration: Migration) -> OnlineReads:
    """The online planner's first look, as it was taken from the full AST (`online` before issue 25)."""
    from entrypoint.core import online

    trees = [statements(chunk) for chunk in migration.statements]
    flat = [stmt for stmts in trees for stmt in stmts or ()]
    sizes = frozenset(
        _key(s.relation) for s in flat if isinstance(s, ast.IndexStmt | ast.AlterTableStmt) and s.relation is not None
    )
    made = frozenset(found[0] for s in flat if (found := online._created_ast(s)))

    def plain(stmts: list[Any] | None) -> bool:
        found = stmts or []
        return len(found) == 1 and isinstance(found[0], ast.IndexStmt) and not found[0].concurrent

    only = any(plain(t) for t in trees) and all(plain(t) or t == [] for t in trees)
    chunks = [sql.Chunk(chunk) for chunk in migration.statements]
    weighed = any(one is not None for _, one, _ in online._statements(chunks, online.Policy(mode="always")))
    return OnlineReads(sizes, made, only, weighed, tuple(len(t or ()) for t in trees))


# --------------------------------------------------------------------------
# the lint


def _do_body(stmt: Any) -> list[Any]:
    body = next((str(a.arg.sval) for a in stmt.args or () if a.defname == "as"), None)
    if body is None:
        return []
    try:
        tree = pglast.parse_plpgsql(f"CREATE FUNCTION f() RETURNS void AS $body$ {body} $body$ LANGUAGE plpgsql")
    except pglast.Error:
        return []
    found: list[Any] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            expr = value.get("PLpgSQL_stmt_execsql", {}).get("sqlstmt", {}).get("PLpgSQL_expr", {})
            if "query" in expr:
                with contextlib.suppress(pglast.Error):
                    found.extend(raw.stmt for raw in pglast.parse_sql(expr["query"]))
            for child in value.values():
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)

    walk(json.loads(json.dumps(tree)))
    return found


def _volatile(expr: Any) -> bool:
    if isinstance(expr, ast.FuncCall) and str((expr.funcname or ())[-1].sval) in ddl._VOLATILE:
        return True
    return any(_volatile(child) for child in (getattr(expr, "args", None) or ()))


def _alter(stmt: Any) -> Iterator[tuple[str, tuple[str, str] | None, str]]:
    table = _relation(stmt.relation)
    for cmd in stmt.cmds or ():
        kind = cmd.subtype
        if kind == AlterTableType.AT_AddConstraint:
            con = cmd.def_
            if con.contype in {ConstrType.CONSTR_FOREIGN, ConstrType.CONSTR_CHECK} and not con.skip_validation:
                yield "constraint-not-valid", table, f"ADD CONSTRAINT {con.conname or ''} without NOT VALID".strip()
            elif con.contype in {ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY} and not con.indexname:
                yield "unique-constraint-builds-index", table, "ADD CONSTRAINT … UNIQUE / PRIMARY KEY builds its index"
        elif kind == AlterTableType.AT_SetNotNull:
            yield "set-not-null", table, f"ALTER COLUMN {cmd.name} SET NOT NULL"
        elif kind == AlterTableType.AT_AlterColumnType:
            yield "column-type-rewrite", table, f"ALTER COLUMN {cmd.name} TYPE"
        elif kind == AlterTableType.AT_AddColumn:
            column = cmd.def_
            type_name = str(column.typeName.names[-1].sval) if column.typeName else ""
            defaults = [c.raw_expr for c in column.constraints or () if c.contype == ConstrType.CONSTR_DEFAULT]
            if type_name in ddl._SERIAL or any(_volatile(expr) for expr in defaults):
                yield "volatile-default", table, f"ADD COLUMN {column.colname} with a volatile default"
        elif kind == AlterTableType.AT_DropColumn:
            yield "breaks-old-release", table, f"DROP COLUMN {cmd.name}"


def _rules(stmt: Any) -> Iterator[tuple[str, tuple[str, str] | None, str]]:
    if isinstance(stmt, ast.IndexStmt) and not stmt.concurrent:
        yield "create-index-not-concurrently", _relation(stmt.relation), f"CREATE INDEX {stmt.idxname or ''}".strip()
    elif isinstance(stmt, ast.DropStmt) and stmt.removeType == ObjectType.OBJECT_INDEX and not stmt.concurrent:
        yield "drop-index-not-concurrently", None, "DROP INDEX"
    elif isinstance(stmt, ast.DropStmt) and stmt.removeType == ObjectType.OBJECT_TABLE:
        for target in stmt.objects or ():
            yield "breaks-old-release", _qualified(target), "DROP TABLE"
    elif isinstance(stmt, ast.AlterTableStmt) and stmt.objtype == ObjectType.OBJECT_TABLE:
        yield from _alter(stmt)
    elif isinstance(stmt, ast.RenameStmt) and stmt.renameType in {ObjectType.OBJECT_TABLE, ObjectType.OBJECT_COLUMN}:
        what = "RENAME COLUMN" if stmt.renameType == ObjectType.OBJECT_COLUMN else "RENAME TABLE"
        yield "breaks-old-release", _relation(stmt.relation), what
    elif isinstance(stmt, ast.VacuumStmt) and any(o.defname == "full" for o in stmt.options or ()):
        for rel in stmt.rels or ():
            yield "table-rewrite", _relation(rel.relation), "VACUUM FULL"
    elif isinstance(stmt, ast.ClusterStmt) and stmt.relation is not None:
        yield "table-rewrite", _relation(stmt.relation), "CLUSTER"
    elif isinstance(stmt, ast.DoStmt):
        for inner in _do_body(stmt):
            yield from _rules(inner)


def findings(migrations: Sequence[Migration], *, one_run: bool = True) -> list[ddl.Finding]:
    """The lint's findings, read from the full AST (the allow comments by the same scanner)."""
    new_tables: set[tuple[str, str]] = set()
    found: list[ddl.Finding] = []
    for position, migration in enumerate(migrations):
        if not one_run:
            new_tables.clear()
        for number, chunk in enumerate(migration.statements, start=1):
            text = sql.text_of(chunk)
            allowed = ddl._allowed(text) if text else set()
            refused = rejection(chunk)
            if refused is not None and "syntax-error" not in allowed:
                detail = f"PostgreSQL's parser rejects it ({refused})"
                found.append(
                    ddl.Finding(
                        migration.tag, number, migration.statement_count, "syntax-error", None, detail, "danger"
                    )
                )
            for stmt in statements(chunk) or ():
                rules = list(_rules(stmt))
                if _adds_enum_value(stmt) and position < len(migrations) - 1:
                    rules.append(("enum-value-used-later", None, "ALTER TYPE … ADD VALUE before later migrations"))
                for rule, table, detail in rules:
                    if rule in allowed:
                        continue
                    fresh = table is not None and table in new_tables
                    severity: ddl.Severity = "note" if fresh or rule == "enum-value-used-later" else "warning"
                    found.append(
                        ddl.Finding(
                            migration.tag, number, migration.statement_count, rule, table, detail, severity, fresh=fresh
                        )
                    )
                if isinstance(stmt, ast.CreateStmt):
                    new_tables.add(_relation(stmt.relation))  # type: ignore[arg-type]
    return found


# --------------------------------------------------------------------------
# the schema model


def _column(model: SchemaModel, tag: str, schema: str, table: str, column: Any) -> None:
    model.add(SchemaObject("column", schema, str(column.colname), table), tag)
    for constraint in column.constraints or ():
        if constraint.conname:
            model.add(SchemaObject("constraint", schema, str(constraint.conname), table), tag)


def _replay_alter(model: SchemaModel, tag: str, stmt: Any) -> None:
    if stmt.objtype != ObjectType.OBJECT_TABLE:
        return
    schema, table = _relation(stmt.relation)  # type: ignore[misc]
    for cmd in stmt.cmds or ():
        if cmd.subtype == AlterTableType.AT_AddColumn:
            _column(model, tag, schema, table, cmd.def_)
        elif cmd.subtype == AlterTableType.AT_AddConstraint and cmd.def_.conname:
            model.add(SchemaObject("constraint", schema, str(cmd.def_.conname), table), tag)
        elif cmd.subtype == AlterTableType.AT_DropColumn:
            model.drop({"column"}, schema, str(cmd.name), table)
        elif cmd.subtype == AlterTableType.AT_DropConstraint:
            model.drop({"constraint"}, schema, str(cmd.name), table)


def _replay_rename(model: SchemaModel, stmt: Any) -> None:
    new, kind = str(stmt.newname), stmt.renameType
    if kind == ObjectType.OBJECT_TYPE:
        schema, old = _qualified(stmt.object or ())
        model.rename({"enum type"}, schema, old, new_name=new)
        model.rename({"enum value"}, schema, parent=old, new_parent=new)
    elif kind == ObjectType.OBJECT_TABLE:
        schema, old = _relation(stmt.relation)  # type: ignore[misc]
        model.rename({"table"}, schema, old, new_name=new)
        model.rename({"column", "constraint", "index"}, schema, parent=old, new_parent=new)
    elif kind == ObjectType.OBJECT_INDEX:
        model.rename({"index"}, *_relation(stmt.relation), new_name=new)  # type: ignore[misc]
    elif kind in {ObjectType.OBJECT_COLUMN, ObjectType.OBJECT_TABCONSTRAINT}:
        schema, table = _relation(stmt.relation)  # type: ignore[misc]
        what = "column" if kind == ObjectType.OBJECT_COLUMN else "constraint"
        model.rename({what}, schema, str(stmt.subname), table, new_name=new)


def _replay_drop(model: SchemaModel, stmt: Any) -> None:
    kind = stmt.removeType
    for target in stmt.objects or ():
        if kind == ObjectType.OBJECT_SCHEMA:
            model.drop(KINDS, str(target.sval))
        elif kind == ObjectType.OBJECT_TABLE:
            schema, name = _qualified(target)
            model.drop({"table"}, schema, name)
            model.drop({"column", "constraint", "index"}, schema, parent=name)
        elif kind == ObjectType.OBJECT_INDEX:
            model.drop({"index"}, *_qualified(target))
        elif kind == ObjectType.OBJECT_TYPE and isinstance(target, ast.TypeName):
            schema, name = _qualified(target.names or ())
            model.drop({"enum type"}, schema, name)
            model.drop({"enum value"}, schema, parent=name)


def _replay(model: SchemaModel, tag: str, stmt: Any) -> None:
    if isinstance(stmt, ast.CreateStmt):
        schema, table = _relation(stmt.relation)  # type: ignore[misc]
        model.add(SchemaObject("table", schema, table), tag)
        for element in stmt.tableElts or ():
            if isinstance(element, ast.ColumnDef):
                _column(model, tag, schema, table, element)
            elif isinstance(element, ast.Constraint) and element.conname:
                model.add(SchemaObject("constraint", schema, str(element.conname), table), tag)
    elif isinstance(stmt, ast.AlterTableStmt):
        _replay_alter(model, tag, stmt)
    elif isinstance(stmt, ast.IndexStmt) and stmt.idxname:
        schema, table = _relation(stmt.relation)  # type: ignore[misc]
        model.add(SchemaObject("index", schema, str(stmt.idxname), table), tag)
    elif isinstance(stmt, ast.CreateEnumStmt):
        model.add(SchemaObject("enum type", *_qualified(stmt.typeName or ())), tag)
    elif isinstance(stmt, ast.AlterEnumStmt) and stmt.newVal:
        schema, name = _qualified(stmt.typeName or ())
        if stmt.oldVal:
            model.rename({"enum value"}, schema, str(stmt.oldVal), name, new_name=str(stmt.newVal))
        else:
            model.add(SchemaObject("enum value", schema, str(stmt.newVal), name), tag)
    elif isinstance(stmt, ast.RenameStmt):
        _replay_rename(model, stmt)
    elif isinstance(stmt, ast.DropStmt):
        _replay_drop(model, stmt)


def expected_objects(migrations: Sequence[Migration]) -> tuple[SchemaModel, dict[str, int]]:
    """The schema model replayed from the full AST, and per tag the chunks it could not parse."""
    model, unparsed = SchemaModel(), {}
    for migration in migrations:
        unparsed[migration.tag] = 0
        for chunk in migration.statements:
            stmts = statements(chunk)
            if stmts is None:
                unparsed[migration.tag] += 1
                continue
            for stmt in stmts:
                _replay(model, migration.tag, stmt)
    return model, unparsed


# --------------------------------------------------------------------------
# the comparison


SERVER_VERSIONS = (180000, 110000)  # ADD VALUE is refused in a transaction before PostgreSQL 12


def _cheap(found: sql.ChunkFacts) -> Facts:
    return Facts(
        found.outside, found.controls, found.adds_enum_value, found.concurrent_indexes, found.parsed,
        found.statement_count,
    )  # fmt: skip


def _cheap_online(chunks: Sequence[sql.Chunk]) -> OnlineReads:
    from entrypoint.core import online

    return OnlineReads(
        frozenset(online.tables_to_size(chunks)),
        frozenset(online.creates(chunks)),
        online.index_only(chunks),
        any(online._candidate(stmt) for chunk in chunks for stmt in chunk.stmts or ()),
        tuple(len(chunk.stmts or ()) for chunk in chunks),
    )


def disagreements(migrations: Sequence[Migration]) -> list[str]:
    """Where the cheap parse (the JSON tree) and the full AST read `migrations` differently; [] when they agree.

    Compared: every chunk's facts (at PostgreSQL 18 and 11), the online planner's first look at each
    migration, the lint's findings (as one run, and each migration shipped on its own), and the schema
    model with its counts of unparsed chunks.
    """
    from entrypoint.core import schema, transactions

    found: list[str] = []
    parsed = [sql.parse(m) for m in migrations]
    for version in SERVER_VERSIONS:
        for migration, cheap in zip(migrations, transactions.classify(parsed, version), strict=True):
            for number, (ours, theirs) in enumerate(zip(cheap.chunks, facts(migration, version), strict=True), 1):
                if _cheap(ours) != theirs:
                    found.append(f"{migration.tag} statement {number} at {version}: {_cheap(ours)} != {theirs}")
    for item in parsed:
        ours_online, theirs_online = _cheap_online(item.chunks), online_reads(item.migration)
        if ours_online != theirs_online:
            found.append(f"{item.migration.tag}: the online planner's first look: {ours_online} != {theirs_online}")
    for one_run in (True, False):
        ours_found, theirs_found = ddl.findings(parsed, one_run=one_run), findings(migrations, one_run=one_run)
        if ours_found != theirs_found:
            found.append(f"findings (one_run={one_run}) differ: {set(ours_found) ^ set(theirs_found)}")
    model, unparsed = SchemaModel(), {}
    for item in parsed:
        unparsed[item.migration.tag] = schema.replay_migration(model, item)
    their_model, their_unparsed = expected_objects(migrations)
    if model.live != their_model.live or unparsed != their_unparsed:
        found.append(f"schema models differ: {set(model.live.items()) ^ set(their_model.live.items())}")
    return found
