"""Each migration's one parse, and what each of its chunks does to the transaction it runs in. Pure.

Chunks are read with PostgreSQL's own parser (libpg_query, through pglast), never
with regular expressions, so a keyword inside a string, a comment or a function
body never counts. The parse is the parser's JSON tree, decoded into plain dicts:
the parser runs in C and `json` builds the tree about 7 times faster than pglast's
Python AST (`pglast.ast`) is built. Every reader reads that tree: the facts here
(the commit planning's), the lint (`ddl`), the schema model (`schema`) and the
online planner's first look (`online`: which tables to size, which statements
have an online form). The Python AST, with each statement's place in the chunk
(`Chunk.raws`), is built only where SQL must be printed back or cut, on demand:
the online planner's rewrites of a migration that has a candidate, `same_index`
and its kin, and a rollback's reversing statements (`reverse`, `history`).

The facts are the ones the transaction planner (`transactions`) and the runner
need: a statement PostgreSQL refuses inside a transaction block (`CREATE INDEX
CONCURRENTLY`, `VACUUM`, ...), the file's own transaction control (`BEGIN`,
`COMMIT`, `ROLLBACK`), `ALTER TYPE … ADD VALUE`, whose new value cannot be used
before a commit, and how many statements a chunk holds (one can be pipelined).
A chunk too large to parse cheaply (a data migration) or that the parser refuses
is taken as ordinary SQL; the runner sends it on its own and checks the
transaction status after it, so a COMMIT hidden there cannot go unseen. pglast
is imported only when a chunk is parsed: a start with nothing pending never loads it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, NamedTuple

from entrypoint.core.model import Migration

# PostgreSQL 12 is the first to allow ALTER TYPE ... ADD VALUE inside a transaction block.
ADD_VALUE_IN_TRANSACTION_SINCE = 120000
# Chunks above this are not parsed: the parse tree of a 100 MB INSERT would cost gigabytes.
PARSE_LIMIT = 1 << 20
BEGIN, COMMIT, ROLLBACK = "begin", "commit", "rollback"
Fields = dict[str, Any]  # one node of the parser's JSON tree, without its kind: {"relname": "users", ...}
Stmt = tuple[str, Fields]  # a statement: its kind ("IndexStmt", "AlterTableStmt", ...) and its fields


class ChunkFacts(NamedTuple):
    """What one chunk (the text between two breakpoints) does, statement by statement."""

    outside: str | None  # why PostgreSQL refuses it in a transaction block, e.g. "CREATE INDEX CONCURRENTLY"
    controls: tuple[str, ...]  # its own BEGIN / COMMIT / ROLLBACK, in order
    adds_enum_value: bool
    concurrent_indexes: tuple[tuple[str | None, str], ...]  # (schema or None, index) built CONCURRENTLY
    parsed: bool
    statement_count: int = 0  # how many statements it holds (0 when not parsed)

    @property
    def empty(self) -> bool:
        """Comments and blanks only: nothing for PostgreSQL to run."""
        return self.parsed and not self.statement_count


ORDINARY = ChunkFacts(outside=None, controls=(), adds_enum_value=False, concurrent_indexes=(), parsed=False)


def text_of(chunk: bytes | str) -> str | None:
    """The chunk as text for the parser, or None when it is too large to parse cheaply."""
    if isinstance(chunk, str):
        return chunk if len(chunk) <= PARSE_LIMIT else None
    return chunk.decode("utf-8") if len(chunk) <= PARSE_LIMIT else None


def node(wrapped: Fields) -> Stmt:
    """A node of the JSON tree as (kind, fields): `{"RangeVar": {...}}` → `("RangeVar", {...})`."""
    ((kind, fields),) = wrapped.items()
    return kind, fields


def parse_error(error: Exception) -> str:
    """PostgreSQL's own words for a chunk it rejects, without the quoted rest of the chunk (`at or near "…"`)."""
    message = str(error).split(" at or near ", 1)[0].split(", at index ", 1)[0]
    return " ".join(message.split())


def _read(text: str) -> tuple[tuple[Stmt, ...] | None, str | None]:
    """The statements of `text` from PostgreSQL's parser, or (None, why it refuses them)."""
    import pglast  # here, not at the top: a start with nothing pending never loads the parser
    from pglast import parser

    try:
        tree = json.loads(parser.parse_sql_json(text))
    except pglast.Error as error:
        return None, parse_error(error)
    return tuple(node(raw["stmt"]) for raw in tree.get("stmts", ())), None


def statements_of(text: str) -> tuple[Stmt, ...] | None:
    """The statements of `text` from PostgreSQL's parser, or None when it refuses them."""
    return _read(text)[0]


class Chunk:
    """One chunk of a migration (the text between two breakpoints), parsed once for every reader."""

    __slots__ = ("_raws", "error", "raw", "stmts", "text")

    def __init__(self, raw: bytes | str) -> None:
        self.raw = raw  # as sent
        self.text = text_of(raw)  # None: too large to parse cheaply
        # Its statements from the parser's JSON tree; None when not parsed (too large, or the parser refuses it),
        # and then, when refused, why (e.g. "unterminated dollar-quoted string").
        self.stmts, self.error = (None, None) if self.text is None else _read(self.text)
        self._raws: tuple[Any, ...] | None = None

    @property
    def rejected(self) -> bool:
        """Read, and refused by PostgreSQL's own parser: the server will refuse it the same way."""
        return self.error is not None

    @property
    def raws(self) -> tuple[Any, ...] | None:
        """The RawStmts of pglast: each statement's Python AST, with its place in `text`; built on first use."""
        if self.stmts is None:
            return None
        if self._raws is None:
            import pglast

            self._raws = tuple(pglast.parse_sql(self.text or ""))
        return self._raws

    def ast(self) -> tuple[Any, ...]:
        """The Python AST (pglast.ast) of its statements, built on first use (empty when not parsed)."""
        return tuple(raw.stmt for raw in self.raws or ())


class Parsed(NamedTuple):
    """A migration and its chunks, parsed once: the commit planning, the lint and the schema model read this."""

    migration: Migration
    chunks: tuple[Chunk, ...]


def parse_chunk(chunk: bytes | str) -> Chunk:
    """One chunk, parsed (pglast is imported here: only a run that applies, lints or models pays for it)."""
    return Chunk(chunk)


def parse(migration: Migration | Parsed) -> Parsed:
    """Every chunk of `migration`, parsed once (a `Parsed` is returned as it is)."""
    if isinstance(migration, Parsed):
        return migration
    return Parsed(migration, tuple(Chunk(chunk) for chunk in migration.statements))


def _control(fields: Fields) -> str | None:
    kind = fields.get("kind")
    if kind in {"TRANS_STMT_BEGIN", "TRANS_STMT_START"}:
        return BEGIN
    if kind == "TRANS_STMT_COMMIT":
        return COMMIT
    if kind in {"TRANS_STMT_ROLLBACK", "TRANS_STMT_PREPARE", "TRANS_STMT_COMMIT_PREPARED",
                "TRANS_STMT_ROLLBACK_PREPARED"}:  # fmt: skip
        return ROLLBACK  # ends the transaction in a way no migration run can follow: refused
    return None  # SAVEPOINT, RELEASE, ROLLBACK TO: the transaction goes on


_REFUSED_IN_TRANSACTION = {
    "CreatedbStmt": "CREATE DATABASE",
    "DropdbStmt": "DROP DATABASE",
    "CreateTableSpaceStmt": "CREATE TABLESPACE",
    "DropTableSpaceStmt": "DROP TABLESPACE",
    "AlterSystemStmt": "ALTER SYSTEM",
    "CreateSubscriptionStmt": "CREATE SUBSCRIPTION",
}


def _detaches_concurrently(fields: Fields) -> bool:
    for _, cmd in map(node, fields.get("cmds", ())):
        if cmd.get("subtype") == "AT_DetachPartition" and node(cmd["def"])[1].get("concurrent"):
            return True
    return False


def _outside(stmt: Stmt, server_version: int) -> str | None:  # noqa: PLR0911 - one answer per kind of statement
    """Why PostgreSQL refuses `stmt` inside a transaction block, or None."""
    kind, fields = stmt
    if kind == "IndexStmt" and fields.get("concurrent"):
        return "CREATE INDEX CONCURRENTLY"
    if kind == "DropStmt" and fields.get("concurrent"):
        return "DROP INDEX CONCURRENTLY"
    if kind == "ReindexStmt" and any(node(p)[1].get("defname") == "concurrently" for p in fields.get("params", ())):
        return "REINDEX CONCURRENTLY"
    if kind == "VacuumStmt" and fields.get("is_vacuumcmd"):
        return "VACUUM"
    if kind == "ClusterStmt" and "relation" not in fields:
        return "CLUSTER of every table"
    if kind == "AlterTableStmt" and _detaches_concurrently(fields):
        return "DETACH PARTITION CONCURRENTLY"
    if kind in _REFUSED_IN_TRANSACTION:
        return _REFUSED_IN_TRANSACTION[kind]
    if adds_enum_value(stmt) and server_version < ADD_VALUE_IN_TRANSACTION_SINCE:
        return "ALTER TYPE … ADD VALUE (before PostgreSQL 12)"
    return None


def adds_enum_value(stmt: Stmt) -> bool:
    """`ALTER TYPE … ADD VALUE` (not RENAME VALUE)."""
    kind, fields = stmt
    return kind == "AlterEnumStmt" and bool(fields.get("newVal")) and not fields.get("oldVal")


# Where an unqualified name lives when nothing better is known (offline): PostgreSQL's default search_path.
# With a database, the first schema of its `current_schemas(false)` is passed instead, as PostgreSQL reads it.
DEFAULT_SCHEMA = "public"


def names_of(nodes: Iterable[Fields] | Fields) -> list[str]:
    """The strings of a name list (`[{"String": {"sval": "app"}}, …]`, or one wrapped in `{"List": …}`)."""
    items: Iterable[Fields] = node(nodes)[1].get("items", ()) if isinstance(nodes, dict) else nodes
    return [str(node(item)[1].get("sval", "")) for item in items]


def qualified_name(nodes: Iterable[Fields] | Fields, default: str = DEFAULT_SCHEMA) -> tuple[str, str]:
    """(schema, name) from a parse tree's qualified name list, e.g. `"app"."status"`; unqualified: `default`."""
    parts = names_of(nodes)
    return (parts[-2] if len(parts) > 1 else default), parts[-1]


def relation_of(range_var: Fields, default: str = DEFAULT_SCHEMA) -> tuple[str, str]:
    """(schema, table) of a parse tree's RangeVar; an unqualified one is in `default`."""
    return str(range_var.get("schemaname") or default), str(range_var["relname"])


# What follows prints SQL back, which only pglast's Python AST can do.


def _parse(text: bytes | str) -> list[Any] | None:
    """The Python AST (pglast.ast) of `text`'s statements, or None when too large or refused."""
    import pglast

    parsed = text_of(text)
    if parsed is None:
        return None
    try:
        return [raw.stmt for raw in pglast.parse_sql(parsed)]
    except pglast.Error:
        return None


def _deparse(tree: Any) -> str:
    from pglast.stream import RawStream

    return str(RawStream()(tree))


def _normalised(stmt: Any, schema: str | None = None) -> str:
    """An IndexStmt as one canonical text: CONCURRENTLY and IF NOT EXISTS off, the table's schema filled in.

    The statement is put back as it was: a chunk's AST is built once and kept.
    """
    saved = stmt.concurrent, stmt.if_not_exists, stmt.relation.schemaname
    stmt.concurrent = False
    stmt.if_not_exists = False
    if schema is not None and not stmt.relation.schemaname:
        stmt.relation.schemaname = schema
    try:
        return _deparse(stmt)
    finally:
        stmt.concurrent, stmt.if_not_exists, stmt.relation.schemaname = saved


def same_index(statement: bytes | str, definition: str, schema: str) -> bool:
    """Whether `definition` (`pg_get_indexdef` of an index in `schema`) is what `statement` builds.

    Both are parsed and printed canonically; PostgreSQL's own spelling of expressions (casts,
    parentheses) can differ from the migration's, so only a sure match is a match.
    """
    from pglast import ast

    ours, theirs = _parse(statement), _parse(definition)
    if not ours or not theirs or len(ours) != 1 or len(theirs) != 1:
        return False
    if not isinstance(ours[0], ast.IndexStmt) or not isinstance(theirs[0], ast.IndexStmt):
        return False
    return _normalised(ours[0], schema) == _normalised(theirs[0], schema)


def in_schema(statement: bytes | str, schema: str) -> str | None:
    """`statement` (one CREATE INDEX) building its index on the table of the same name in `schema`, plainly.

    So that the very same index can be built on an empty stand-in of its table, and PostgreSQL's own
    definitions of the two compared (`same_definition`). CONCURRENTLY and IF NOT EXISTS are dropped; an
    expression naming the table (`"users"."points"`) still finds it, by its unchanged name. None when the
    statement is not one CREATE INDEX.
    """
    from pglast import ast

    stmts = _parse(statement)
    if not stmts or len(stmts) != 1 or not isinstance(stmts[0], ast.IndexStmt) or stmts[0].relation is None:
        return None
    stmt, relation = stmts[0], stmts[0].relation
    relation.schemaname = schema
    stmt.concurrent = False
    stmt.if_not_exists = False
    return _deparse(stmt)


def same_definition(ours: str, theirs: str) -> bool:
    """Whether two `pg_get_indexdef`s (PostgreSQL's own spelling) define the same index, wherever each table is."""
    from pglast import ast

    found = [_parse(ours), _parse(theirs)]
    stmts = [each[0] for each in found if each and len(each) == 1 and isinstance(each[0], ast.IndexStmt)]
    relations = [stmt.relation for stmt in stmts if stmt.relation is not None]
    if len(relations) != len(found):
        return False
    for relation in relations:
        relation.schemaname = None
    return _deparse(stmts[0]) == _deparse(stmts[1])


def _facts(stmts: tuple[Stmt, ...] | None, server_version: int) -> ChunkFacts:
    """What a chunk's statements do to its transaction."""
    if stmts is None:
        return ORDINARY
    outside = next((why for why in (_outside(s, server_version) for s in stmts) if why), None)
    controls = tuple(c for c in (_control(f) for k, f in stmts if k == "TransactionStmt") if c)
    indexes = tuple(
        (f["relation"].get("schemaname") if "relation" in f else None, str(f["idxname"]))
        for k, f in stmts
        if k == "IndexStmt" and f.get("concurrent") and f.get("idxname")
    )
    adds = any(adds_enum_value(s) for s in stmts)
    return ChunkFacts(outside, controls, adds, indexes, parsed=True, statement_count=len(stmts))


def classify(chunk: Chunk | bytes | str, server_version: int) -> ChunkFacts:
    """The facts of one chunk; `ORDINARY` (not parsed) when it is too large or the parser refuses it."""
    return _facts((chunk if isinstance(chunk, Chunk) else Chunk(chunk)).stmts, server_version)


def classify_all(parsed: Parsed, server_version: int) -> tuple[ChunkFacts, ...]:
    """`classify` for each chunk of a migration, in order."""
    return tuple(_facts(chunk.stmts, server_version) for chunk in parsed.chunks)
