"""What each SQL chunk of a migration does to the transaction it runs in. Pure: SQL in, facts out.

Chunks are classified with PostgreSQL's own parser (pglast), never with regular
expressions, so a keyword inside a string, a comment or a function body never
counts. The facts are the ones the transaction planner (`transactions`) needs:
a statement PostgreSQL refuses inside a transaction block (`CREATE INDEX
CONCURRENTLY`, `VACUUM`, ...), the file's own transaction control (`BEGIN`,
`COMMIT`, `ROLLBACK`), and `ALTER TYPE … ADD VALUE`, whose new value cannot be
used before a commit. A chunk too large to parse cheaply (a data migration) or
that pglast cannot parse is taken as ordinary SQL; the runner still checks the
transaction status after every chunk, so a COMMIT hidden there cannot go unseen.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

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


ORDINARY = ChunkFacts(outside=None, controls=(), adds_enum_value=False, concurrent_indexes=(), parsed=False)


def text_of(chunk: bytes | str) -> str | None:
    """The chunk as text for the parser, or None when it is too large to parse cheaply."""
    if isinstance(chunk, str):
        return chunk if len(chunk) <= PARSE_LIMIT else None
    return chunk.decode("utf-8") if len(chunk) <= PARSE_LIMIT else None


def _parse(chunk: bytes | str) -> list[Any] | None:
    import pglast  # only a run that applies something, or lints, pays for the parser

    text = text_of(chunk)
    if text is None:
        return None
    try:
        return [raw.stmt for raw in pglast.parse_sql(text)]
    except pglast.Error:
        return None


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
    if _adds_enum_value(stmt) and server_version < ADD_VALUE_IN_TRANSACTION_SINCE:
        return "ALTER TYPE … ADD VALUE (before PostgreSQL 12)"
    return None


def _adds_enum_value(stmt: Any) -> bool:
    from pglast import ast

    return isinstance(stmt, ast.AlterEnumStmt) and bool(stmt.newVal) and not stmt.oldVal


def classify(chunk: bytes | str, server_version: int) -> ChunkFacts:
    """The facts of one chunk; `ORDINARY` (not parsed) when it is too large or pglast cannot parse it."""
    from pglast import ast

    stmts = _parse(chunk)
    if stmts is None:
        return ORDINARY
    outside = next((why for why in (_outside(s, server_version) for s in stmts) if why), None)
    controls = tuple(c for c in (_control(s) for s in stmts if isinstance(s, ast.TransactionStmt)) if c)
    indexes = tuple(
        (s.relation.schemaname if s.relation else None, str(s.idxname))
        for s in stmts
        if isinstance(s, ast.IndexStmt) and s.concurrent and s.idxname
    )
    return ChunkFacts(outside, controls, any(_adds_enum_value(s) for s in stmts), indexes, parsed=True)


def classify_all(statements: tuple[bytes, ...], server_version: int) -> Iterator[ChunkFacts]:
    """`classify` for each chunk of a migration, in order."""
    for chunk in statements:
        yield classify(chunk, server_version)
