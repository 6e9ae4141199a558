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

from entrypoint.core.model import Migration
from entrypoint.core.sql import Fields, Parsed, Stmt, node, parse, qualified_name, relation_of

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


def _column(model: SchemaModel, tag: str, schema: str, table: str, column: Fields) -> None:
    model.add(SchemaObject("column", schema, str(column.get("colname")), table), tag)
    for _, constraint in map(node, column.get("constraints", ())):
        if constraint.get("conname"):
            model.add(SchemaObject("constraint", schema, str(constraint["conname"]), table), tag)


def _create_table(model: SchemaModel, tag: str, fields: Fields) -> None:
    schema, table = relation_of(fields["relation"])
    model.add(SchemaObject("table", schema, table), tag)
    for kind, element in map(node, fields.get("tableElts", ())):
        if kind == "ColumnDef":
            _column(model, tag, schema, table, element)
        elif kind == "Constraint" and element.get("conname"):
            model.add(SchemaObject("constraint", schema, str(element["conname"]), table), tag)


def _alter_table(model: SchemaModel, tag: str, fields: Fields) -> None:
    if fields.get("objtype") != "OBJECT_TABLE":
        return
    schema, table = relation_of(fields["relation"])
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
        schema, old = qualified_name(fields.get("object", ()))
        model.rename({"enum type"}, schema, old, new_name=new)
        model.rename({"enum value"}, schema, parent=old, new_parent=new)
    elif kind == "OBJECT_TABLE":
        schema, old = relation_of(fields["relation"])
        model.rename({"table"}, schema, old, new_name=new)
        model.rename({"column", "constraint", "index"}, schema, parent=old, new_parent=new)
    elif kind == "OBJECT_INDEX":
        model.rename({"index"}, *relation_of(fields["relation"]), new_name=new)
    elif kind in {"OBJECT_COLUMN", "OBJECT_TABCONSTRAINT"}:
        schema, table = relation_of(fields["relation"])
        what = "column" if kind == "OBJECT_COLUMN" else "constraint"
        model.rename({what}, schema, str(fields.get("subname")), table, new_name=new)


def _drop(model: SchemaModel, fields: Fields) -> None:
    kind = fields.get("removeType")
    for target in fields.get("objects", ()):
        if kind == "OBJECT_SCHEMA":
            model.drop(KINDS, str(node(target)[1].get("sval", "")))
        elif kind == "OBJECT_TABLE":
            schema, name = qualified_name(target)
            model.drop({"table"}, schema, name)
            model.drop({"column", "constraint", "index"}, schema, parent=name)
        elif kind == "OBJECT_INDEX":
            model.drop({"index"}, *qualified_name(target))
        elif kind == "OBJECT_TYPE" and node(target)[0] == "TypeName":
            schema, name = qualified_name(node(target)[1].get("names", ()))
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
        schema, table = relation_of(fields["relation"])
        model.add(SchemaObject("index", schema, str(fields["idxname"]), table), tag)
    elif kind == "CreateEnumStmt":
        schema, name = qualified_name(fields.get("typeName", ()))
        model.add(SchemaObject("enum type", schema, name), tag)
    elif kind == "AlterEnumStmt" and fields.get("newVal"):
        schema, name = qualified_name(fields.get("typeName", ()))
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


def expected_objects(migrations: Sequence[Migration]) -> tuple[SchemaModel, dict[str, int]]:
    """Replay the migrations in order: the objects left, and per tag the statements pglast could not parse."""
    model = SchemaModel()
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
