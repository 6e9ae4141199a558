"""Each migration's one parse, and what each of its chunks does to the transaction it runs in. Pure.

Chunks are read with PostgreSQL's own parser (libpg_query, through pglast), never
with regular expressions, so a keyword inside a string, a comment or a function
body never counts. The parse is the parser's JSON tree, decoded into plain dicts:
the parser runs in C and `json` builds the tree about 7 times faster than pglast's
Python AST (`pglast.ast`) is built. Every reader reads that tree: the facts here
(the commit planning's), the lint (`ddl`) and the schema model (`schema`). The
Python AST is built only where SQL must be printed back (`Chunk.ast`, on demand):
for a chunk that is one plain `CREATE INDEX` in a migration made only of such
chunks (its online build), for `same_index`, and for a rollback's reversing
statements (`reverse`, `history`).

The facts are the ones the transaction planner (`transactions`) and the runner
need: a statement PostgreSQL refuses inside a transaction block (`CREATE INDEX
CONCURRENTLY`, `VACUUM`, ...), the file's own transaction control (`BEGIN`,
`COMMIT`, `ROLLBACK`), `ALTER TYPE … ADD VALUE`, whose new value cannot be used
before a commit, how many statements a chunk holds (one can be pipelined), and,
for a migration made only of plain `CREATE [UNIQUE] INDEX` chunks, how each may
be sent with `CONCURRENTLY` inserted where PostgreSQL's own scanner puts the INDEX
keyword, every other byte as written (`indexes`). A chunk too large to parse
cheaply (a data migration) or that the parser refuses is taken as ordinary SQL;
the runner sends it on its own and checks the transaction status after it, so a
COMMIT hidden there cannot go unseen. pglast is imported only when a chunk is
parsed: a start with nothing pending never loads it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from entrypoint.core.model import Migration

# PostgreSQL 12 is the first to allow ALTER TYPE ... ADD VALUE inside a transaction block.
ADD_VALUE_IN_TRANSACTION_SINCE = 120000
# Chunks above this are not parsed: the parse tree of a 100 MB INSERT would cost gigabytes.
PARSE_LIMIT = 1 << 20
BEGIN, COMMIT, ROLLBACK = "begin", "commit", "rollback"
Fields = dict[str, Any]  # one node of the parser's JSON tree, without its kind: {"relname": "users", ...}
Stmt = tuple[str, Fields]  # a statement: its kind ("IndexStmt", "AlterTableStmt", ...) and its fields


class IndexChunk(NamedTuple):
    """A chunk that is exactly one `CREATE [UNIQUE] INDEX` without CONCURRENTLY: what an online build needs."""

    schema: str | None  # the table's schema as written (its indexes live there too); None: the search_path's
    table: str
    name: str
    unique: bool
    concurrently: bytes  # the chunk with ` CONCURRENTLY` after its INDEX keyword, every other byte as written
    duplicates: str | None  # a unique index: the query that lists the key values more than one row holds


class ChunkFacts(NamedTuple):
    """What one chunk (the text between two breakpoints) does, statement by statement."""

    outside: str | None  # why PostgreSQL refuses it in a transaction block, e.g. "CREATE INDEX CONCURRENTLY"
    controls: tuple[str, ...]  # its own BEGIN / COMMIT / ROLLBACK, in order
    adds_enum_value: bool
    concurrent_indexes: tuple[tuple[str | None, str], ...]  # (schema or None, index) built CONCURRENTLY
    parsed: bool
    # The chunk is one plain CREATE INDEX in a migration made only of such chunks (blank ones aside): how to
    # build it online. None for every other chunk, a lone CREATE INDEX among other DDL included.
    plain_index: IndexChunk | None = None
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


def statements_of(text: str) -> tuple[Stmt, ...] | None:
    """The statements of `text` from PostgreSQL's parser, or None when it refuses them."""
    import pglast  # here, not at the top: a start with nothing pending never loads the parser
    from pglast import parser

    try:
        tree = json.loads(parser.parse_sql_json(text))
    except pglast.Error:
        return None
    return tuple(node(raw["stmt"]) for raw in tree.get("stmts", ()))


class Chunk:
    """One chunk of a migration (the text between two breakpoints), parsed once for every reader."""

    __slots__ = ("_ast", "raw", "stmts", "text")

    def __init__(self, raw: bytes | str) -> None:
        self.raw = raw  # as sent
        self.text = text_of(raw)  # None: too large to parse cheaply
        # Its statements from the parser's JSON tree; None when not parsed (too large, or the parser refuses it).
        self.stmts = None if self.text is None else statements_of(self.text)
        self._ast: tuple[Any, ...] | None = None

    def ast(self) -> tuple[Any, ...]:
        """The Python AST (pglast.ast) of its statements, built on first use (only a parsed chunk has one)."""
        if self._ast is None:
            import pglast

            self._ast = tuple(raw.stmt for raw in pglast.parse_sql(self.text or ""))
        return self._ast


class Parsed(NamedTuple):
    """A migration and its chunks, parsed once: the commit planning, the lint and the schema model read this."""

    migration: Migration
    chunks: tuple[Chunk, ...]


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


DEFAULT_SCHEMA = "public"  # where an unqualified name lives in a drizzle-kit migration


def names_of(nodes: Iterable[Fields] | Fields) -> list[str]:
    """The strings of a name list (`[{"String": {"sval": "app"}}, …]`, or one wrapped in `{"List": …}`)."""
    items: Iterable[Fields] = node(nodes)[1].get("items", ()) if isinstance(nodes, dict) else nodes
    return [str(node(item)[1].get("sval", "")) for item in items]


def qualified_name(nodes: Iterable[Fields] | Fields) -> tuple[str, str]:
    """(schema, name) from a parse tree's qualified name list, e.g. `"app"."status"`."""
    parts = names_of(nodes)
    return (parts[-2] if len(parts) > 1 else DEFAULT_SCHEMA), parts[-1]


def relation_of(range_var: Fields) -> tuple[str, str]:
    """(schema, table) of a parse tree's RangeVar."""
    return str(range_var.get("schemaname") or DEFAULT_SCHEMA), str(range_var["relname"])


# What follows prints SQL back, which only pglast's Python AST can do: it is built for these chunks alone.


def _ast_of(text: bytes | str) -> list[Any] | None:
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


def _column(name: str) -> str:
    from pglast import ast

    return _deparse(ast.ColumnRef(fields=(ast.String(sval=name),)))  # quoted only where PostgreSQL needs it


def _duplicates(stmt: Any) -> str | None:
    """The rows a unique build fails on: key values held more than once, as PostgreSQL compares them."""
    if not stmt.unique:
        return None
    keys = [_deparse(e.expr) if e.expr is not None else _column(str(e.name)) for e in stmt.indexParams]
    where = [f"({_deparse(stmt.whereClause)})"] if stmt.whereClause is not None else []
    if not stmt.nulls_not_distinct:  # NULLs never collide, unless NULLS NOT DISTINCT
        where += [f"({key}) IS NOT NULL" if "(" in key else f"{key} IS NOT NULL" for key in keys]
    condition = f" WHERE {' AND '.join(where)}" if where else ""
    groups = ", ".join(str(n) for n in range(1, len(keys) + 1))
    return (
        f"SELECT {', '.join(keys)}, count(*) FROM {_deparse(stmt.relation)}{condition} "
        f"GROUP BY {groups} HAVING count(*) > 1"
    )


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


_COMMENTS = frozenset({"SQL_COMMENT", "C_COMMENT"})


def _with_concurrently(chunk: bytes | str, text: str, stmt: Any) -> bytes | None:
    """`chunk` with ` CONCURRENTLY` after the INDEX keyword of its one statement, or None if that is not sure.

    The place is found by PostgreSQL's own scanner (comments and strings are no tokens), and the result
    is parsed again: it must be the very same statement, built CONCURRENTLY.
    """
    from pglast import parser

    tokens = [token for token in parser.scan(text) if token.name not in _COMMENTS][:3]
    names = [token.name for token in tokens]
    position = 2 if names == ["CREATE", "UNIQUE", "INDEX"] else 1 if names[:2] == ["CREATE", "INDEX"] else 0
    if not position:
        return None
    after = tokens[position].end + 1  # the scanner's offsets are characters, its ends inclusive
    raw = chunk if isinstance(chunk, bytes) else chunk.encode()
    cut = len(text[:after].encode())
    rewritten = raw[:cut] + b" CONCURRENTLY" + raw[cut:]
    again = _ast_of(rewritten)
    if not again or len(again) != 1 or not again[0].concurrent:
        return None
    return rewritten if _normalised(again[0]) == _normalised(stmt) else None


def _is_plain_index(stmts: Sequence[Stmt]) -> bool:
    """Exactly one named `CREATE [UNIQUE] INDEX` without CONCURRENTLY, read from the JSON tree."""
    if len(stmts) != 1:
        return False
    ((kind, fields),) = stmts
    return kind == "IndexStmt" and not fields.get("concurrent") and bool(fields.get("idxname")) and "relation" in fields


def _index_chunk(chunk: Chunk) -> IndexChunk | None:
    """How to build a plain-index chunk online: its rewrite with CONCURRENTLY, and its duplicates query."""
    if chunk.text is None:
        return None
    (stmt,) = chunk.ast()
    duplicates = _duplicates(stmt)
    rewritten = _with_concurrently(chunk.raw, chunk.text, stmt)
    if rewritten is None:
        return None
    relation = stmt.relation
    return IndexChunk(relation.schemaname, str(relation.relname), str(stmt.idxname), bool(stmt.unique),
                      rewritten, duplicates)  # fmt: skip


def same_index(statement: bytes | str, definition: str, schema: str) -> bool:
    """Whether `definition` (`pg_get_indexdef` of an index in `schema`) is what `statement` builds.

    Both are parsed and printed canonically; PostgreSQL's own spelling of expressions (casts,
    parentheses) can differ from the migration's, so only a sure match is a match.
    """
    from pglast import ast

    ours, theirs = _ast_of(statement), _ast_of(definition)
    if not ours or not theirs or len(ours) != 1 or len(theirs) != 1:
        return False
    if not isinstance(ours[0], ast.IndexStmt) or not isinstance(theirs[0], ast.IndexStmt):
        return False
    return _normalised(ours[0], schema) == _normalised(theirs[0], schema)


def _facts(stmts: tuple[Stmt, ...] | None, server_version: int) -> ChunkFacts:
    """What a chunk's statements do to its transaction (its online build aside: see `classify_chunks`)."""
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


def classify_chunks(chunks: Sequence[Chunk], server_version: int) -> tuple[ChunkFacts, ...]:
    """The facts of a migration's chunks, in order.

    Only a migration made of plain `CREATE INDEX` chunks (blank ones aside) has its indexes built online,
    so only there is each chunk's rewrite with CONCURRENTLY made, from its Python AST.
    """
    facts = tuple(_facts(chunk.stmts, server_version) for chunk in chunks)
    plain = [chunk.stmts is not None and _is_plain_index(chunk.stmts) for chunk in chunks]
    if not any(plain) or not all(p or f.empty for p, f in zip(plain, facts, strict=True)):
        return facts
    built = tuple(
        f._replace(plain_index=_index_chunk(chunk)) if p else f
        for chunk, p, f in zip(chunks, plain, facts, strict=True)
    )
    # One chunk whose rewrite is not sure keeps the whole migration in its transaction: no build to plan.
    return built if all(f.plain_index for p, f in zip(plain, built, strict=True) if p) else facts


def classify(chunk: Chunk | bytes | str, server_version: int) -> ChunkFacts:
    """The facts of one chunk, as a migration of its own; `ORDINARY` (not parsed) when too large or refused."""
    (facts,) = classify_chunks((chunk if isinstance(chunk, Chunk) else Chunk(chunk),), server_version)
    return facts


def classify_all(parsed: Parsed, server_version: int) -> tuple[ChunkFacts, ...]:
    """`classify` for each chunk of a migration, in order."""
    return classify_chunks(parsed.chunks, server_version)
