"""What each SQL chunk of a migration does to the transaction it runs in. Pure: SQL in, facts out.

Chunks are classified with PostgreSQL's own parser (pglast), never with regular
expressions, so a keyword inside a string, a comment or a function body never
counts. The facts are the ones the transaction planner (`transactions`) needs:
a statement PostgreSQL refuses inside a transaction block (`CREATE INDEX
CONCURRENTLY`, `VACUUM`, ...), the file's own transaction control (`BEGIN`,
`COMMIT`, `ROLLBACK`), `ALTER TYPE … ADD VALUE`, whose new value cannot be
used before a commit. The online planner (`online`) reads the same parse,
each statement's place included (`Chunk.raws`). A chunk too large to parse cheaply (a data migration) or
that pglast cannot parse is taken as ordinary SQL; the runner still checks the
transaction status after every chunk, so a COMMIT hidden there cannot go unseen.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from entrypoint.core.model import Migration

# PostgreSQL 12 is the first to allow ALTER TYPE ... ADD VALUE inside a transaction block.
ADD_VALUE_IN_TRANSACTION_SINCE = 120000
# Chunks above this are not parsed: the parse tree of a 100 MB INSERT would cost gigabytes.
PARSE_LIMIT = 1 << 20
BEGIN, COMMIT, ROLLBACK = "begin", "commit", "rollback"


class ChunkFacts(NamedTuple):
    """What one chunk (the text between two breakpoints) does, statement by statement."""

    outside: str | None  # why PostgreSQL refuses it in a transaction block, e.g. "CREATE INDEX CONCURRENTLY"
    controls: tuple[str, ...]  # its own BEGIN / COMMIT / ROLLBACK, in order
    adds_enum_value: bool
    concurrent_indexes: tuple[tuple[str | None, str], ...]  # (schema or None, index) built CONCURRENTLY
    parsed: bool
    empty: bool = False  # comments and blanks only: nothing for PostgreSQL to run


ORDINARY = ChunkFacts(outside=None, controls=(), adds_enum_value=False, concurrent_indexes=(), parsed=False)


def text_of(chunk: bytes | str) -> str | None:
    """The chunk as text for the parser, or None when it is too large to parse cheaply."""
    if isinstance(chunk, str):
        return chunk if len(chunk) <= PARSE_LIMIT else None
    return chunk.decode("utf-8") if len(chunk) <= PARSE_LIMIT else None


class Chunk(NamedTuple):
    """One chunk of a migration (the text between two breakpoints), parsed once for every reader."""

    raw: bytes | str  # as sent
    text: str | None  # None: too large to parse cheaply
    stmts: tuple[Any, ...] | None  # pglast's statements; None when not parsed (too large, or pglast refuses it)
    raws: tuple[Any, ...] | None = None  # the same as pglast's RawStmts, with each statement's place in `text`
    error: str | None = None  # why PostgreSQL's parser rejects it (e.g. "unterminated dollar-quoted string")

    @property
    def rejected(self) -> bool:
        """Read, and refused by PostgreSQL's own parser: the server will refuse it the same way."""
        return self.error is not None


class Parsed(NamedTuple):
    """A migration and its chunks, parsed once: the commit planning, the lint and the schema model read this."""

    migration: Migration
    chunks: tuple[Chunk, ...]


def parse_chunk(chunk: bytes | str) -> Chunk:
    """One chunk, parsed with pglast (imported here: only a run that applies, lints or models pays for it)."""
    import pglast

    text = text_of(chunk)
    if text is None:
        return Chunk(chunk, None, None)
    try:
        raws = tuple(pglast.parse_sql(text))
    except pglast.Error as error:
        return Chunk(chunk, text, None, error=parse_error(error))
    return Chunk(chunk, text, tuple(raw.stmt for raw in raws), raws)


def parse_error(error: Exception) -> str:
    """PostgreSQL's own words for a chunk it rejects, without the quoted rest of the chunk (`at or near "…"`)."""
    message = str(error).split(" at or near ", 1)[0].split(", at index ", 1)[0]
    return " ".join(message.split())


def parse(migration: Migration | Parsed) -> Parsed:
    """Every chunk of `migration`, parsed once (a `Parsed` is returned as it is)."""
    if isinstance(migration, Parsed):
        return migration
    return Parsed(migration, tuple(parse_chunk(chunk) for chunk in migration.statements))


def _parse(chunk: bytes | str) -> list[Any] | None:
    stmts = parse_chunk(chunk).stmts
    return None if stmts is None else list(stmts)


def _control(stmt: Any) -> str | None:
    from pglast.enums import TransactionStmtKind as Kind

    kind = stmt.kind
    if kind in {Kind.TRANS_STMT_BEGIN, Kind.TRANS_STMT_START}:
        return BEGIN
    if kind == Kind.TRANS_STMT_COMMIT:
        return COMMIT
    if kind in {Kind.TRANS_STMT_ROLLBACK, Kind.TRANS_STMT_PREPARE, Kind.TRANS_STMT_COMMIT_PREPARED,
                Kind.TRANS_STMT_ROLLBACK_PREPARED}:  # fmt: skip
        return ROLLBACK  # ends the transaction in a way no migration run can follow: refused
    return None  # SAVEPOINT, RELEASE, ROLLBACK TO: the transaction goes on


def _outside(stmt: Any, server_version: int) -> str | None:  # noqa: PLR0911 - one answer per kind of statement
    """Why PostgreSQL refuses `stmt` inside a transaction block, or None."""
    from pglast import ast
    from pglast.enums import AlterTableType

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
    if adds_enum_value(stmt) and server_version < ADD_VALUE_IN_TRANSACTION_SINCE:
        return "ALTER TYPE … ADD VALUE (before PostgreSQL 12)"
    return None


def adds_enum_value(stmt: Any) -> bool:
    """`ALTER TYPE … ADD VALUE` (not RENAME VALUE), in pglast's tree."""
    from pglast import ast

    return isinstance(stmt, ast.AlterEnumStmt) and bool(stmt.newVal) and not stmt.oldVal


# Where an unqualified name lives when nothing better is known (offline): PostgreSQL's default search_path.
# With a database, the first schema of its `current_schemas(false)` is passed instead, as PostgreSQL reads it.
DEFAULT_SCHEMA = "public"


def qualified_name(nodes: Iterable[Any], default: str = DEFAULT_SCHEMA) -> tuple[str, str]:
    """(schema, name) from a parse tree's qualified name list, e.g. `"app"."status"`; unqualified: `default`."""
    parts = [str(node.sval) for node in nodes]
    return (parts[-2] if len(parts) > 1 else default), parts[-1]


def relation_of(range_var: Any, default: str = DEFAULT_SCHEMA) -> tuple[str, str]:
    """(schema, table) of a parse tree's RangeVar; an unqualified one is in `default`."""
    return str(range_var.schemaname or default), str(range_var.relname)


def _deparse(node: Any) -> str:
    from pglast.stream import RawStream

    return str(RawStream()(node))


def _normalised(stmt: Any, schema: str | None = None) -> str:
    """An IndexStmt as one canonical text: CONCURRENTLY and IF NOT EXISTS off, the table's schema filled in.

    The statement is put back as it was: it is the one parse every reader of the migration shares.
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


def classify(chunk: Chunk | bytes | str, server_version: int) -> ChunkFacts:
    """The facts of one chunk; `ORDINARY` (not parsed) when it is too large or pglast cannot parse it."""
    from pglast import ast

    parsed = chunk if isinstance(chunk, Chunk) else parse_chunk(chunk)
    if parsed.stmts is None:
        return ORDINARY
    stmts = list(parsed.stmts)
    outside = next((why for why in (_outside(s, server_version) for s in stmts) if why), None)
    controls = tuple(c for c in (_control(s) for s in stmts if isinstance(s, ast.TransactionStmt)) if c)
    indexes = tuple(
        (s.relation.schemaname if s.relation else None, str(s.idxname))
        for s in stmts
        if isinstance(s, ast.IndexStmt) and s.concurrent and s.idxname
    )
    return ChunkFacts(
        outside,
        controls,
        any(adds_enum_value(s) for s in stmts),
        indexes,
        parsed=True,
        empty=not stmts,
    )


def classify_all(parsed: Parsed, server_version: int) -> Iterator[ChunkFacts]:
    """`classify` for each chunk of a migration, in order."""
    for chunk in parsed.chunks:
        yield classify(chunk, server_version)
