"""What DDL does to a busy database: the lint's rules, weighed by live table sizes. Pure.

On Render the old release keeps serving while the new one migrates, so a statement
that takes a strong lock on a busy table, rewrites it, or drops what the old code
still reads, is felt by users. Each statement is read from its migration's one
parse (`sql.parse`, PostgreSQL's own parser), the bodies of `DO $$ … $$` blocks
too (drizzle-kit wraps foreign keys in them), and each finding names the migration, the statement, the rule, the lock it
takes and the table. Weighed by the table's live size when the caller has it, the
same finding is a `danger` on a 12 M-row table and a `note` on a 200-row one; a
table created earlier in the same run is empty, so a note. A statement preceded by
`-- entrypoint:allow <rule>` (a comment drizzle-kit keeps) is allowed that rule.
docs/lint.md holds the rules against squawk's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, NamedTuple

from entrypoint.core.model import Migration
from entrypoint.core.sql import (
    Fields,
    Parsed,
    Stmt,
    adds_enum_value,
    names_of,
    node,
    parse,
    qualified_name,
    relation_of,
    statements_of,
)

Severity = Literal["note", "warning", "danger"]
SEVERITIES: tuple[Severity, ...] = ("note", "warning", "danger")
ALLOW = "entrypoint:allow"
# Functions whose default forces a rewrite of every row (a non-volatile default is a catalogue change since PG 11).
_VOLATILE = {
    "random",
    "gen_random_uuid",
    "uuid_generate_v4",
    "uuid_generate_v1",
    "clock_timestamp",
    "timeofday",
    "nextval",
}
_SERIAL = {"serial", "serial4", "bigserial", "serial8", "smallserial", "serial2"}
# rule: (lock, what it does to the app while it runs, what to do instead, weighed by the table's size)
RULES: dict[str, tuple[str, str, str, bool]] = {
    "create-index-not-concurrently": (
        "SHARE",
        "writes to the table wait until the index is built",
        "build it CONCURRENTLY in a migration of its own (ONLINE_DDL=auto does this on a large table)",
        True,
    ),
    "drop-index-not-concurrently": (
        "ACCESS EXCLUSIVE",
        "every query on the table waits behind it",
        "DROP INDEX CONCURRENTLY in a migration of its own",
        True,
    ),
    "constraint-not-valid": (
        "SHARE ROW EXCLUSIVE",
        "writes wait while every row is checked",
        "add it NOT VALID, then VALIDATE CONSTRAINT in a later migration",
        True,
    ),
    "unique-constraint-builds-index": (
        "ACCESS EXCLUSIVE",
        "every query on the table waits while its index is built",
        "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT … USING INDEX",
        True,
    ),
    "set-not-null": (
        "ACCESS EXCLUSIVE",
        "every query on the table waits while every row is checked",
        "add CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL (PostgreSQL 12+ skips the scan)",
        True,
    ),
    "column-type-rewrite": (
        "ACCESS EXCLUSIVE",
        "every query on the table waits while it may be rewritten",
        "add a new column, backfill it in batches, then switch over",
        True,
    ),
    "volatile-default": (
        "ACCESS EXCLUSIVE",
        "every query on the table waits while every row is rewritten",
        "add the column without the default, set the default, then backfill in batches",
        True,
    ),
    "table-rewrite": (
        "ACCESS EXCLUSIVE",
        "every query on the table waits while it is rewritten",
        "pg_repack, or do it in a maintenance window",
        True,
    ),
    "breaks-old-release": (
        "ACCESS EXCLUSIVE",
        "the release still serving during the deploy may read what is dropped or renamed",
        "expand, then contract: stop using it in one release, drop or rename it in the next",
        False,
    ),
    "enum-value-used-later": (
        "",
        "the run commits after the new value, so migrations before that commit stay if a later one fails",
        "nothing: this is how PostgreSQL allows it (see TRANSACTION_MODE)",
        False,
    ),
    "syntax-error": (
        "",
        "PostgreSQL refuses it, so the deploy stops there and rolls back, as drizzle-orm's migrator does",
        (
            "fix the statement; drizzle splits a file on every `--> statement-breakpoint` line, even one inside a "
            "`DO $$ … $$` block, a string or a `/* */` comment, so keep that line between whole statements"
        ),
        False,
    ),
}


class Finding(NamedTuple):
    """One statement that locks, rewrites or breaks, and how bad it is."""

    tag: str
    statement: int
    statements: int
    rule: str
    table: tuple[str, str] | None
    detail: str
    severity: Severity
    rows: int | None = None
    bytes: int | None = None
    fresh: bool = False  # its table was created earlier in this run: empty

    @property
    def lock(self) -> str:
        """The lock the statement takes on the table."""
        return RULES[self.rule][0]


class Thresholds(NamedTuple):
    """Estimated rows from which a size-weighed finding is a warning, and a danger."""

    warning_rows: int = 10_000
    danger_rows: int = 1_000_000


Found = tuple[str, tuple[str, str] | None, str]  # (rule, table, detail)


def _relation(fields: Fields, key: str = "relation") -> tuple[str, str] | None:
    return relation_of(fields[key]) if key in fields else None  # CLUSTER, VACUUM may name no table


def _do_body_statements(fields: Fields) -> list[Stmt]:
    """The SQL statements inside a `DO $$ … $$` block (PL/pgSQL), parsed; [] for other languages."""
    import pglast
    from pglast import parser

    args = (node(arg)[1] for arg in fields.get("args", ()))
    body = next((str(node(a["arg"])[1].get("sval", "")) for a in args if a.get("defname") == "as"), None)
    if body is None:
        return []
    function = f"CREATE FUNCTION f() RETURNS void AS $body$ {body} $body$ LANGUAGE plpgsql"
    try:
        tree = json.loads(parser.parse_plpgsql_json(function))
    except pglast.Error:
        return []
    found: list[Stmt] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            expr = value.get("PLpgSQL_stmt_execsql", {}).get("sqlstmt", {}).get("PLpgSQL_expr", {})
            if "query" in expr:
                found.extend(statements_of(expr["query"]) or ())
            for child in value.values():
                walk(child)
        elif isinstance(value, list):
            for child in value:
                walk(child)

    walk(tree)
    return found


def _alter_findings(fields: Fields) -> Iterator[Found]:
    table = _relation(fields)
    for _, cmd in map(node, fields.get("cmds", ())):
        kind = cmd.get("subtype")
        if kind == "AT_AddConstraint":
            _, constraint = node(cmd["def"])
            contype = constraint.get("contype")
            if contype in {"CONSTR_FOREIGN", "CONSTR_CHECK"} and not constraint.get("skip_validation"):
                name = constraint.get("conname", "")
                yield "constraint-not-valid", table, f"ADD CONSTRAINT {name} without NOT VALID".strip()
            elif contype in {"CONSTR_UNIQUE", "CONSTR_PRIMARY"} and not constraint.get("indexname"):
                yield "unique-constraint-builds-index", table, "ADD CONSTRAINT … UNIQUE / PRIMARY KEY builds its index"
        elif kind == "AT_SetNotNull":
            yield "set-not-null", table, f"ALTER COLUMN {cmd.get('name')} SET NOT NULL"
        elif kind == "AT_AlterColumnType":
            yield "column-type-rewrite", table, f"ALTER COLUMN {cmd.get('name')} TYPE"
        elif kind == "AT_AddColumn":
            _, column = node(cmd["def"])
            type_name = names_of(column["typeName"]["names"])[-1] if "typeName" in column else ""
            constraints = [node(c)[1] for c in column.get("constraints", ())]
            defaults = [c.get("raw_expr") for c in constraints if c.get("contype") == "CONSTR_DEFAULT"]
            if type_name in _SERIAL or any(_volatile(expr) for expr in defaults):
                yield "volatile-default", table, f"ADD COLUMN {column.get('colname')} with a volatile default"
        elif kind == "AT_DropColumn":
            yield "breaks-old-release", table, f"DROP COLUMN {cmd.get('name')}"


def _volatile(expr: Fields | None) -> bool:
    if not expr:
        return False
    kind, fields = node(expr)
    called = names_of(fields.get("funcname", ())) if kind == "FuncCall" else []
    if called and called[-1] in _VOLATILE:
        return True
    return any(_volatile(child) for child in fields.get("args", ()) if isinstance(child, dict))


def _statement_findings(stmt: Stmt) -> Iterator[Found]:  # noqa: C901 - one branch per kind of statement
    kind, fields = stmt
    remove = fields.get("removeType")
    if kind == "IndexStmt" and not fields.get("concurrent"):
        yield "create-index-not-concurrently", _relation(fields), f"CREATE INDEX {fields.get('idxname', '')}".strip()
    elif kind == "DropStmt" and remove == "OBJECT_INDEX" and not fields.get("concurrent"):
        yield "drop-index-not-concurrently", None, "DROP INDEX"
    elif kind == "DropStmt" and remove == "OBJECT_TABLE":
        for target in fields.get("objects", ()):
            yield "breaks-old-release", qualified_name(target), "DROP TABLE"
    elif kind == "AlterTableStmt" and fields.get("objtype") == "OBJECT_TABLE":
        yield from _alter_findings(fields)
    elif kind == "RenameStmt" and fields.get("renameType") in {"OBJECT_TABLE", "OBJECT_COLUMN"}:
        what = "RENAME COLUMN" if fields["renameType"] == "OBJECT_COLUMN" else "RENAME TABLE"
        yield "breaks-old-release", _relation(fields), what
    elif kind == "VacuumStmt" and any(node(o)[1].get("defname") == "full" for o in fields.get("options", ())):
        for rel in fields.get("rels", ()):
            yield "table-rewrite", _relation(node(rel)[1]), "VACUUM FULL"
    elif kind == "ClusterStmt" and "relation" in fields:
        yield "table-rewrite", _relation(fields), "CLUSTER"
    elif kind == "DoStmt":
        for inner in _do_body_statements(fields):
            yield from _statement_findings(inner)


def _allowed(text: str) -> set[str]:
    """Rules allowed by `-- entrypoint:allow <rule> [<rule>…]` comments in the chunk (read by the scanner).

    A chunk PostgreSQL's scanner rejects (an unterminated quote or comment) allows nothing: its comments
    cannot be told from its strings.
    """
    if ALLOW not in text:  # no such comment can be there: the scanner need not run
        return set()
    import pglast
    from pglast import parser

    allowed: set[str] = set()
    try:
        tokens = parser.scan(text)
    except pglast.Error:
        return allowed
    for token in tokens:
        if token.name in {"SQL_COMMENT", "C_COMMENT"}:
            words = text[token.start : token.end + 1].strip("-/* \n").split()
            if words and words[0] == ALLOW:
                allowed |= set(words[1:])
    return allowed


def _created(stmt: Stmt) -> tuple[str, str] | None:
    kind, fields = stmt
    return _relation(fields) if kind == "CreateStmt" else None


def findings(migrations: Sequence[Migration | Parsed], *, one_run: bool = True) -> list[Finding]:
    """Every finding in `migrations`, in order, not yet weighed by live sizes (see `weigh`).

    `one_run`: the migrations apply together (the pending set), so a table an earlier one creates is
    still empty. Offline, each is taken to ship on its own: only its own new tables are empty.
    """
    new_tables: set[tuple[str, str]] = set()
    found: list[Finding] = []
    for position, parsed in enumerate(parse(m) for m in migrations):
        migration = parsed.migration
        if not one_run:
            new_tables.clear()
        for number, chunk in enumerate(parsed.chunks, start=1):
            allowed = _allowed(chunk.text) if chunk.text else set()
            if chunk.rejected and "syntax-error" not in allowed:
                detail = f"PostgreSQL's parser rejects it ({chunk.error})"
                found.append(Finding(migration.tag, number, migration.statement_count, "syntax-error", None, detail,
                                     "danger"))  # fmt: skip
            for stmt in chunk.stmts or ():
                rules = list(_statement_findings(stmt))
                if adds_enum_value(stmt) and position < len(migrations) - 1:
                    rules.append(("enum-value-used-later", None, "ALTER TYPE … ADD VALUE before later migrations"))
                for rule, table, detail in rules:
                    if rule in allowed:
                        continue
                    fresh = table is not None and table in new_tables
                    severity: Severity = "note" if fresh or rule == "enum-value-used-later" else "warning"
                    found.append(
                        Finding(
                            migration.tag, number, migration.statement_count, rule, table, detail, severity, fresh=fresh
                        )
                    )
                created = _created(stmt)
                if created:
                    new_tables.add(created)
    return found


DEFAULT_THRESHOLDS = Thresholds()


def weigh(
    found: Sequence[Finding],
    sizes: Mapping[tuple[str, str], tuple[int, int]],
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> list[Finding]:
    """The findings with their table's live rows and bytes, and a severity from them (where the rule is weighed)."""
    weighed = []
    for finding in found:
        if not RULES[finding.rule][3] or finding.fresh or finding.table is None or finding.table not in sizes:
            weighed.append(finding)
            continue
        rows, size = sizes[finding.table]
        severity: Severity = (
            "danger" if rows >= thresholds.danger_rows else "warning" if rows >= thresholds.warning_rows else "note"
        )
        weighed.append(finding._replace(severity=severity, rows=rows, bytes=size))
    return weighed


def at_least(found: Sequence[Finding], severity: Severity) -> list[Finding]:
    """The findings at `severity` or worse."""
    rank = SEVERITIES.index(severity)
    return [f for f in found if SEVERITIES.index(f.severity) >= rank]
