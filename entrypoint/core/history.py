"""What a folder's earlier migrations left, as far as undoing a later one needs it: column defaults, names. Pure.

`reverse` undoes `SET DEFAULT` by putting back the previous default, and refuses
to undo a `CREATE OR REPLACE` of a view, function or trigger an earlier
migration made (its previous body is gone). Both need the earlier migrations
replayed, statement by statement, following renames and drops: that is `History`.
Only what the folder's own migrations made is known: a column created outside
them has no known default.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from entrypoint.core.online_parts import TableName
from entrypoint.core.sql import Parsed

_SERIAL = frozenset({"serial", "serial2", "serial4", "serial8", "smallserial", "bigserial"})
ColumnKey = tuple[str | None, str, str]  # (schema as written, table, column)


def deparse(node: Any) -> str:
    """A parse-tree node (an expression, a type) as SQL text, as PostgreSQL would read it back."""
    from pglast.stream import RawStream

    return str(RawStream()(node))


def names(nodes: Iterable[Any] | None) -> tuple[str | None, str]:
    """(schema or None, name) of a qualified name list, as written."""
    parts = [str(n.sval) for n in nodes or ()]
    return (parts[-2] if len(parts) > 1 else None), parts[-1]


def table_of(range_var: Any) -> TableName:
    """(schema or None, name) of a RangeVar, as written."""
    return (str(range_var.schemaname) if range_var.schemaname else None), str(range_var.relname)


def created(stmt: Any) -> tuple[str, str | None, str] | None:
    """(kind, schema, name) of a view, function or trigger a statement creates (or replaces)."""
    from pglast import ast

    if isinstance(stmt, ast.ViewStmt):
        return ("view", *table_of(stmt.view))
    if isinstance(stmt, ast.CreateFunctionStmt):
        return ("function", *names(stmt.funcname))
    if isinstance(stmt, ast.CreateTrigStmt):
        schema, table = table_of(stmt.relation)
        return ("trigger", schema, f"{stmt.trigname} on {table}")
    return None


@dataclass
class History:
    """Each column's default (None: no default) and the views, functions and triggers made, by name."""

    defaults: dict[ColumnKey, str | None] = field(default_factory=dict)
    made: set[tuple[str, str | None, str]] = field(default_factory=set)  # (kind, schema, name)

    def copy(self) -> History:
        """An independent copy, to replay further without changing this one."""
        return History(dict(self.defaults), set(self.made))

    def replay(self, parsed: Parsed) -> None:
        """Follow one migration's statements (those pglast parsed)."""
        for chunk in parsed.chunks:
            for stmt in chunk.ast() if chunk.stmts is not None else ():  # the Python AST: names are printed back
                self.follow(stmt)

    def follow(self, stmt: Any) -> None:
        """Follow one statement."""
        from pglast import ast
        from pglast.enums import ObjectType

        if isinstance(stmt, ast.CreateStmt):
            schema, table = table_of(stmt.relation)
            for element in stmt.tableElts or ():
                if isinstance(element, ast.ColumnDef):
                    self._column(schema, table, element)
        elif isinstance(stmt, ast.AlterTableStmt) and stmt.objtype == ObjectType.OBJECT_TABLE:
            self._alter(stmt)
        elif isinstance(stmt, ast.RenameStmt) and stmt.relation is not None:
            self._rename(stmt)
        elif isinstance(stmt, ast.DropStmt) and stmt.removeType == ObjectType.OBJECT_TABLE:
            for target in stmt.objects or ():
                gone = names(target)
                self.defaults = {k: d for k, d in self.defaults.items() if (k[0], k[1]) != gone}
        made = created(stmt)
        if made:
            self.made.add(made)

    def _alter(self, stmt: Any) -> None:
        from pglast.enums import AlterTableType

        schema, table = table_of(stmt.relation)
        for cmd in stmt.cmds or ():
            if cmd.subtype == AlterTableType.AT_AddColumn:
                self._column(schema, table, cmd.def_)
            elif cmd.subtype == AlterTableType.AT_ColumnDefault:
                self.defaults[(schema, table, str(cmd.name))] = None if cmd.def_ is None else deparse(cmd.def_)
            elif cmd.subtype == AlterTableType.AT_DropColumn:
                self.defaults.pop((schema, table, str(cmd.name)), None)

    def _rename(self, stmt: Any) -> None:
        from pglast.enums import ObjectType

        schema, table = table_of(stmt.relation)
        if stmt.renameType == ObjectType.OBJECT_TABLE:
            self.defaults = {
                ((s, str(stmt.newname), c) if (s, t) == (schema, table) else (s, t, c)): d
                for (s, t, c), d in self.defaults.items()
            }
        elif stmt.renameType == ObjectType.OBJECT_COLUMN:
            old = (schema, table, str(stmt.subname))
            if old in self.defaults:
                self.defaults[(schema, table, str(stmt.newname))] = self.defaults.pop(old)

    def _column(self, schema: str | None, table: str, column: Any) -> None:
        from pglast.enums import ConstrType

        key = (schema, table, str(column.colname))
        type_name = str(column.typeName.names[-1].sval) if column.typeName else ""
        generated = (column.identity or "\x00") != "\x00" or (column.generated or "\x00") != "\x00"  # pglast: NUL: none
        if type_name in _SERIAL or generated:
            self.defaults.pop(key, None)  # a sequence or an expression, not a default to put back
            return
        found = [c.raw_expr for c in column.constraints or () if c.contype == ConstrType.CONSTR_DEFAULT]
        self.defaults[key] = deparse(found[0]) if found else None


def histories(parses: Sequence[Parsed]) -> list[History]:
    """For each migration, what the ones before it left (before the first: nothing known)."""
    found, history = [], History()
    for parsed in parses:
        found.append(history.copy())
        history.replay(parsed)
    return found
