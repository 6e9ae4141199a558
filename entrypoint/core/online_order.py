"""When a later statement of a migration must wait for an online step of an earlier one (`online`'s order rule). Pure.

An online step waits until the end of its migration, unless a later statement
depends on it; then the plan commits before that statement and runs the
waiting steps first. `touch` reads what a statement does that a waiting step
could care about, `depends` says whether it must wait and why; the rules are
listed in `online`'s docstring. The text cannot always tell two tables apart
(an unqualified name may be in any schema of the search_path), so a name
without a schema matches that name in every schema: a wrong match costs one
more commit, a missed one could cost correctness.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from entrypoint.core.online_sql import TableName, key, strings, walk


class Reads(NamedTuple):
    """What the waiting steps of one statement read and name."""

    tables: tuple[tuple[TableName, frozenset[str]], ...]  # each table and the columns the steps read
    names: frozenset[str]  # the indexes and constraints they build, validate, attach or drop
    unique_on: TableName | None = None  # a unique index is on its way for this table
    validates: bool = False  # a validation or unique build waits: a row written before it would escape it


class Touch(NamedTuple):
    """What a statement does that a waiting online step could care about."""

    unknown: str = ""  # it may run code we cannot read: it depends on every waiting step
    writes: bool = False  # it writes rows
    names: frozenset[str] = frozenset()  # the indexes, constraints and other objects it names
    references: tuple[TableName, ...] = ()  # the tables its foreign keys reference
    changes: tuple[tuple[TableName, frozenset[str] | None], ...] = ()  # the columns it changes; None: the table
    mentions: tuple[TableName, ...] = ()  # the tables a statement of another kind names


def shown(table: TableName) -> str:
    """`users`, `app.users`: the table as the statement names it."""
    return f"{table[0]}.{table[1]}" if table[0] else table[1]


def same_table(one: TableName, other: TableName) -> bool:
    """The same table as far as the text can tell."""
    return one[1] == other[1] and (one[0] is None or other[0] is None or one[0] == other[0])


# ALTER TABLE subcommands that change one column (cmd.name); others change the whole table, but those below.
_COLUMN_CHANGES = frozenset({
    "AT_SetNotNull", "AT_DropNotNull", "AT_AlterColumnType", "AT_DropColumn", "AT_SetExpression",
    "AT_DropExpression", "AT_SetStatistics", "AT_SetOptions", "AT_ResetOptions", "AT_SetStorage",
    "AT_SetCompression", "AT_AddIdentity", "AT_SetIdentity", "AT_DropIdentity", "AT_AlterColumnGenericOptions",
})  # fmt: skip
_ADDING = frozenset({"AT_AddColumn", "AT_ColumnDefault", "AT_AddConstraint"})  # names what they add
_NAMING = frozenset({"AT_ValidateConstraint", "AT_DropConstraint", "AT_AlterConstraint", "AT_ClusterOn"})
_HARMLESS = (  # statement kinds that neither run code nor touch a table's rows or columns
    "CreateEnumStmt", "AlterEnumStmt", "CreateSeqStmt", "AlterSeqStmt", "CreateFunctionStmt", "CompositeTypeStmt",
    "CreateDomainStmt", "GrantStmt", "CreateExtensionStmt",
)  # fmt: skip
_WRITES = ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt", "TruncateStmt")
_RUNS_CODE = ("DoStmt", "CallStmt", "SelectStmt", "ExecuteStmt")


def _constraints(node: Any) -> tuple[frozenset[str], tuple[TableName, ...]]:
    """The constraint and index names a definition adds, and the tables its foreign keys reference."""
    from pglast import ast
    from pglast.enums import ConstrType

    found = [n for n in walk(node) if isinstance(n, ast.Constraint)]
    names = frozenset(str(name) for c in found for name in (c.conname, c.indexname) if name)
    references = tuple(
        key(c.pktable) for c in found if c.contype == ConstrType.CONSTR_FOREIGN and c.pktable is not None
    )
    return names, references


def _alter(stmt: Any) -> Touch:
    from pglast.enums import AlterTableType, ObjectType

    table = key(stmt.relation)
    if stmt.objtype != ObjectType.OBJECT_TABLE:  # ALTER INDEX / SEQUENCE / VIEW …: named
        return Touch(names=frozenset({table[1]}), mentions=(table,))
    names: set[str] = set()
    references: list[TableName] = []
    changes: list[tuple[TableName, frozenset[str] | None]] = []
    for cmd in stmt.cmds or ():
        kind = AlterTableType(cmd.subtype).name
        if kind in _ADDING:
            added, referenced = _constraints(cmd.def_)
            names |= added
            references += referenced
        elif kind in _COLUMN_CHANGES:
            changes.append((table, frozenset({str(cmd.name)})))
        elif kind in _NAMING:
            names |= {str(cmd.name)} if cmd.name else strings(cmd.def_)
        else:  # REPLICA IDENTITY, ATTACH PARTITION, SET LOGGED, ENABLE TRIGGER, …: the whole table
            names |= strings(cmd.def_)
            changes.append((table, None))
    return Touch(names=frozenset(names), references=tuple(references), changes=tuple(changes))


def _drop(stmt: Any) -> Touch:
    from pglast.enums import DropBehavior, ObjectType

    if stmt.behavior == DropBehavior.DROP_CASCADE:
        return Touch(unknown="DROP … CASCADE may reach any table")
    if stmt.removeType != ObjectType.OBJECT_TABLE:
        return Touch(names=strings(stmt.objects))
    tables = []
    for target in stmt.objects or ():
        parts = [str(n.sval) for n in target]
        tables.append((parts[-2] if len(parts) > 1 else None, parts[-1]))
    return Touch(changes=tuple((t, None) for t in tables))


def _rename(stmt: Any) -> Touch:
    from pglast.enums import ObjectType

    names = frozenset({str(stmt.newname)} | ({str(stmt.subname)} if stmt.subname else set())) | strings(stmt.object)
    if stmt.relation is None:
        return Touch(names=names)
    table = key(stmt.relation)
    if stmt.renameType == ObjectType.OBJECT_COLUMN:
        return Touch(names=names, changes=((table, frozenset({str(stmt.subname)})),))
    if stmt.renameType == ObjectType.OBJECT_TABCONSTRAINT:
        return Touch(names=names)
    return Touch(names=names | {table[1]}, changes=((table, None),))  # the table, or an index, renamed


def _create(stmt: Any) -> Touch:
    from pglast import ast

    names, references = _constraints(stmt.tableElts)
    likes = [n.relation for n in walk(stmt.tableElts) if isinstance(n, ast.TableLikeClause)]
    parents = [n for n in walk(stmt.inhRelations) if isinstance(n, ast.RangeVar)]  # INHERITS, PARTITION OF
    return Touch(names=names, references=references, mentions=tuple(key(r) for r in [*likes, *parents]))


def touch(stmt: Any) -> Touch:  # noqa: PLR0911 - one answer per kind of statement
    """What `stmt` (a pglast statement) does that a waiting step could care about."""
    from pglast import ast

    kind = type(stmt).__name__
    if isinstance(stmt, ast.AlterTableStmt):
        return _alter(stmt)
    if isinstance(stmt, ast.IndexStmt):
        return Touch(names=frozenset({str(stmt.idxname)} if stmt.idxname else set()))
    if kind in _WRITES or (isinstance(stmt, ast.CopyStmt) and stmt.is_from):
        return Touch(writes=True)
    if kind in _RUNS_CODE:
        return Touch(unknown=f"{kind.removesuffix('Stmt').upper()} may run any code")
    if isinstance(stmt, ast.DropStmt):
        return _drop(stmt)
    if isinstance(stmt, ast.RenameStmt):
        return _rename(stmt)
    if isinstance(stmt, ast.CreateStmt):
        return _create(stmt)
    if isinstance(stmt, ast.CommentStmt):
        return Touch(names=strings(stmt.object))
    if kind in _HARMLESS:
        return Touch()
    tables = tuple(key(node) for node in walk(stmt) if isinstance(node, ast.RangeVar))
    return Touch(names=strings(stmt) | {t[1] for t in tables}, mentions=tables)


def depends(touched: Touch, reads: Reads) -> str:  # noqa: PLR0911 - one reason per rule
    """Why a statement that does `touched` must wait for steps that do `reads`; "" if it need not."""
    if touched.unknown:
        return touched.unknown
    named = sorted(touched.names & reads.names)
    if named:
        return f"it names {named[0]}"
    if reads.unique_on is not None and any(same_table(t, reads.unique_on) for t in touched.references):
        return f"its foreign key references {shown(reads.unique_on)}, whose unique index is not built yet"
    if touched.writes and reads.validates:
        return "it writes rows, which drizzle-orm would write only once the constraint holds"
    for table, changed in touched.changes:
        for read, used in reads.tables:
            if same_table(table, read) and (changed is None or changed & used):
                column = "" if changed is None else f".{min(changed & used)}"
                return f"it changes {shown(table)}{column}"
    for table in touched.mentions:
        if any(same_table(table, read) for read, _ in reads.tables):
            return f"it names {shown(table)}"
    return ""
