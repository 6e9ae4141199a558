"""How the indexes of an index-only migration are built: CONCURRENTLY, outside a transaction, or as written. Pure.

drizzle-kit never writes `CONCURRENTLY`, and drizzle-orm runs a migration of
plain `CREATE INDEX` statements in the deploy's one transaction: every write to
an indexed table waits until the whole migration commits, for as long as the
builds take, which grows with the tables. While the new release migrates, the
old one keeps serving, so on a table that holds rows that is an outage.

A migration made only of `CREATE [UNIQUE] INDEX` statements (drizzle-kit's
"performance indexes" migrations look like this) can be built online instead:
each index on a table of at least `threshold` bytes is sent with `CONCURRENTLY`,
outside a transaction, one at a time; the other indexes of that migration are
sent as written, each committing on its own (a lock held for one small build,
not for the whole migration). Its ledger row is written once the last index is
built. The decision is per index and by the table's size on disk, read under
the lock just before the run: `reltuples` is only the planner's estimate (-1
until the first ANALYZE), so a table bulk-loaded a minute ago would read as
empty, while its size on disk is always current. A table the deploy itself
creates in an earlier migration has no live size yet, so it is small.

A migration whose indexes all stay small keeps today's plain, transactional
build; so does every migration that mixes indexes with other DDL (it would no
longer be atomic). `INDEX_BUILD=concurrent` builds every index of an
index-only migration CONCURRENTLY whatever the size (a partitioned table
cannot be: PostgreSQL refuses), `INDEX_BUILD=transaction` never does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from entrypoint.core.model import IndexMode
from entrypoint.core.sql import ChunkFacts
from entrypoint.core.text import size_text

DEFAULT_THRESHOLD = 10 * 1024 * 1024  # 10 MB: a plain build of such a table blocks its writes for ~0.1 s
TableName = tuple[str | None, str]  # (schema or None for the search_path's, table), as the statement names it


class LiveTable(NamedTuple):
    """What the catalog says of a table an index is built on, just before the run."""

    schema: str
    name: str
    rows: int  # reltuples: the planner's estimate
    bytes: int  # pg_total_relation_size
    partitioned: bool = False


class IndexBuild(NamedTuple):
    """How one statement of an index-only migration builds its index, and why."""

    number: int  # the statement's number in its migration
    name: str  # the index's
    schema: str | None  # the table's schema as written (its index lives there too)
    table: str  # as written, for lines: `users`, `public.users`
    concurrently: bool
    why: str
    sql: bytes  # what is sent: the statement as written, or with CONCURRENTLY after its INDEX keyword
    original: bytes  # the statement as written (what an existing index is compared with)
    duplicates: str | None  # a unique index: the query listing the rows its build would fail on


class Policy(NamedTuple):
    """INDEX_BUILD, INDEX_BUILD_THRESHOLD, and the live size of each table an index-only migration indexes."""

    mode: IndexMode = "transaction"
    threshold: int = DEFAULT_THRESHOLD
    tables: Mapping[TableName, LiveTable] = {}


def index_only(chunks: tuple[ChunkFacts, ...]) -> bool:
    """Whether a migration is made only of plain `CREATE [UNIQUE] INDEX` statements (blank chunks aside)."""
    return any(c.plain_index for c in chunks) and all(c.plain_index or c.empty for c in chunks)


def tables_to_size(all_chunks: tuple[tuple[ChunkFacts, ...], ...]) -> set[TableName]:
    """The tables whose live size decides a build: those indexed by index-only migrations."""
    found = (c.plain_index for chunks in all_chunks if index_only(chunks) for c in chunks)
    return {(index.schema, index.table) for index in found if index}


def decide(table: LiveTable | None, shown: str, policy: Policy) -> tuple[bool, str]:  # noqa: PLR0911 - one per case
    """(CONCURRENTLY?, why) for building, or dropping, an index on `table` (None: not there yet)."""
    if policy.mode == "transaction":
        return False, "INDEX_BUILD=transaction"
    if table is None:
        if policy.mode == "concurrent":
            return True, f"INDEX_BUILD=concurrent; {shown} is created by this deploy"
        return False, f"{shown} has no live size yet: created by this deploy"
    if table.partitioned:
        return False, f"{shown} is partitioned: PostgreSQL cannot build its indexes CONCURRENTLY"
    size = f"~{table.rows:,} rows, {size_text(table.bytes)}"
    if policy.mode == "concurrent":
        return True, f"INDEX_BUILD=concurrent; {shown}: {size}"
    threshold = size_text(policy.threshold)
    if table.bytes >= policy.threshold:
        return True, f"{shown}: {size} ≥ INDEX_BUILD_THRESHOLD {threshold}"
    return False, f"{shown}: {size} < INDEX_BUILD_THRESHOLD {threshold}"


def plan_builds(
    chunks: tuple[ChunkFacts, ...], statements: tuple[bytes, ...], policy: Policy
) -> tuple[IndexBuild, ...]:
    """How each index of an index-only migration is built (empty for any other migration)."""
    if not index_only(chunks):
        return ()
    builds = []
    for number, (chunk, statement) in enumerate(zip(chunks, statements, strict=True), start=1):
        found = chunk.plain_index
        if found is None:
            continue
        shown = f"{found.schema}.{found.table}" if found.schema else found.table
        concurrently, why = decide(policy.tables.get((found.schema, found.table)), shown, policy)
        sent = found.concurrently if concurrently else statement
        builds.append(
            IndexBuild(number, found.name, found.schema, shown, concurrently, why, sent, statement, found.duplicates)
        )
    return tuple(builds)
