"""The schema a run of migrations leaves behind, modelled from their SQL. Pure: SQL text in, objects out.

Each statement, read from its migration's one parse (`sql.parse`, PostgreSQL's
own parser), is replayed over a model of the objects migrations create: tables,
columns, indexes, enum types and added values, named constraints, following
RENAMEs and DROPs. `verify` checks the
model against the catalog, the sync demands it of rows matched only by position,
and later features (lint, baseline) read the same model. pglast is imported only
when a model is built, so a no-op deploy never pays for the parser.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from entrypoint.core.model import Migration
from entrypoint.core.sql import DEFAULT_SCHEMA, Fields, Parsed, Stmt, node, parse, qualified_name, relation_of

# Kinds in report order, with their plural label (also the `--json` counts key, spaces as underscores).
KINDS = {
    "table": "tables",
    "column": "columns",
    "index": "indexes",
    "enum type": "enum types",
    "enum value": "enum values",
    "constraint": "constraints",
}


@dataclass(frozen=True)
class SchemaObject:
    """One object a migration created. `parent` is the table (column, index, constraint) or the enum type (value)."""

    kind: str
    schema: str
    name: str
    parent: str | None = None

    @property
    def key(self) -> tuple[str, str, str, str | None]:
        """How the catalogue reader (`catalog.read`) lists it."""
        return (self.kind, self.schema, self.name, self.parent)

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
    """The objects the migrations replayed so far leave behind, each with the tag that created it.

    `default_schema` is where an unqualified name lives: the first schema of the database's
    `current_schemas(false)`, where PostgreSQL creates what a migration names without a schema.
    """

    live: dict[SchemaObject, str] = field(default_factory=dict)
    default_schema: str = DEFAULT_SCHEMA

    def relation(self, range_var: Fields) -> tuple[str, str]:
        """(schema, table) of a RangeVar, an unqualified one in `default_schema`."""
        return relation_of(range_var, self.default_schema)

    def qualified(self, nodes: Any) -> tuple[str, str]:
        """(schema, name) of a qualified name list, an unqualified one in `default_schema`."""
        return qualified_name(nodes, self.default_schema)

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


def _column(model: SchemaModel, tag: str, schema: str, table: str, column: Fields) -> None:
    model.add(SchemaObject("column", schema, str(column.get("colname")), table), tag)
    for _, constraint in map(node, column.get("constraints", ())):
        if constraint.get("conname"):
            model.add(SchemaObject("constraint", schema, str(constraint["conname"]), table), tag)


def _create_table(model: SchemaModel, tag: str, fields: Fields) -> None:
    schema, table = model.relation(fields["relation"])
    model.add(SchemaObject("table", schema, table), tag)
    for kind, element in map(node, fields.get("tableElts", ())):
        if kind == "ColumnDef":
            _column(model, tag, schema, table, element)
        elif kind == "Constraint" and element.get("conname"):
            model.add(SchemaObject("constraint", schema, str(element["conname"]), table), tag)


def _alter_table(model: SchemaModel, tag: str, fields: Fields) -> None:
    if fields.get("objtype") != "OBJECT_TABLE":
        return
    schema, table = model.relation(fields["relation"])
    for _, cmd in map(node, fields.get("cmds", ())):
        subtype = cmd.get("subtype")
        if subtype == "AT_AddColumn":
            _column(model, tag, schema, table, node(cmd["def"])[1])
        elif subtype == "AT_AddConstraint" and node(cmd["def"])[1].get("conname"):
            model.add(SchemaObject("constraint", schema, str(node(cmd["def"])[1]["conname"]), table), tag)
        elif subtype == "AT_DropColumn":
            model.drop({"column"}, schema, str(cmd.get("name")), table)
        elif subtype == "AT_DropConstraint":
            model.drop({"constraint"}, schema, str(cmd.get("name")), table)


def _rename(model: SchemaModel, fields: Fields) -> None:
    new = str(fields.get("newname"))
    kind = fields.get("renameType")
    if kind == "OBJECT_TYPE":
        schema, old = model.qualified(fields.get("object", ()))
        model.rename({"enum type"}, schema, old, new_name=new)
        model.rename({"enum value"}, schema, parent=old, new_parent=new)
    elif kind == "OBJECT_TABLE":
        schema, old = model.relation(fields["relation"])
        model.rename({"table"}, schema, old, new_name=new)
        model.rename({"column", "constraint", "index"}, schema, parent=old, new_parent=new)
    elif kind == "OBJECT_INDEX":
        model.rename({"index"}, *model.relation(fields["relation"]), new_name=new)
    elif kind in {"OBJECT_COLUMN", "OBJECT_TABCONSTRAINT"}:
        schema, table = model.relation(fields["relation"])
        what = "column" if kind == "OBJECT_COLUMN" else "constraint"
        model.rename({what}, schema, str(fields.get("subname")), table, new_name=new)


def _drop(model: SchemaModel, fields: Fields) -> None:
    kind = fields.get("removeType")
    for target in fields.get("objects", ()):
        if kind == "OBJECT_SCHEMA":
            model.drop(KINDS, str(node(target)[1].get("sval", "")))
        elif kind == "OBJECT_TABLE":
            schema, name = model.qualified(target)
            model.drop({"table"}, schema, name)
            model.drop({"column", "constraint", "index"}, schema, parent=name)
        elif kind == "OBJECT_INDEX":
            model.drop({"index"}, *model.qualified(target))
        elif kind == "OBJECT_TYPE" and node(target)[0] == "TypeName":
            schema, name = model.qualified(node(target)[1].get("names", ()))
            model.drop({"enum type"}, schema, name)
            model.drop({"enum value"}, schema, parent=name)


def replay(model: SchemaModel, tag: str, stmt: Stmt) -> None:
    """Apply one parsed statement to the model. Statements that create none of our kinds are ignored."""
    kind, fields = stmt
    if kind == "CreateStmt":
        _create_table(model, tag, fields)
    elif kind == "AlterTableStmt":
        _alter_table(model, tag, fields)
    elif kind == "IndexStmt" and fields.get("idxname"):
        schema, table = model.relation(fields["relation"])
        model.add(SchemaObject("index", schema, str(fields["idxname"]), table), tag)
    elif kind == "CreateEnumStmt":
        schema, name = model.qualified(fields.get("typeName", ()))
        model.add(SchemaObject("enum type", schema, name), tag)
    elif kind == "AlterEnumStmt" and fields.get("newVal"):
        schema, name = model.qualified(fields.get("typeName", ()))
        if fields.get("oldVal"):
            model.rename({"enum value"}, schema, str(fields["oldVal"]), name, new_name=str(fields["newVal"]))
        else:
            model.add(SchemaObject("enum value", schema, str(fields["newVal"]), name), tag)
    elif kind == "RenameStmt":
        _rename(model, fields)
    elif kind == "DropStmt":
        _drop(model, fields)


def replay_migration(model: SchemaModel, migration: Migration | Parsed) -> int:
    """Replay one migration's statements over `model`; returns how many of them pglast could not parse."""
    parsed = parse(migration)
    unparsed = 0
    for chunk in parsed.chunks:
        if chunk.stmts is None:
            unparsed += 1
            continue
        for stmt in chunk.stmts:
            replay(model, parsed.migration.tag, stmt)
    return unparsed


def expected_objects(
    migrations: Sequence[Migration], *, default_schema: str = DEFAULT_SCHEMA
) -> tuple[SchemaModel, dict[str, int]]:
    """Replay the migrations in order: the objects left, and per tag the statements pglast could not parse.

    `default_schema` is where their unqualified names live (see `SchemaModel`).
    """
    model = SchemaModel(default_schema=default_schema)
    unparsed = {migration.tag: replay_migration(model, migration) for migration in migrations}
    return model, unparsed


def objects_of(model: SchemaModel, tag: str) -> list[SchemaObject]:
    """The live objects `tag` created, in the order they were created."""
    return [obj for obj, owner in model.live.items() if owner == tag]


def missing(
    objects: Iterable[SchemaObject], catalog: Collection[tuple[str, str, str, str | None]]
) -> list[SchemaObject]:
    """The objects absent from `catalog` (the catalogue reader's `(kind, schema, name, parent)` rows)."""
    return [obj for obj in objects if obj.key not in catalog]
