"""Online forms of the DDL drizzle-kit writes, and the order to run them in: one migration in, its PARTS out. Pure.

drizzle-orm runs a migration as written, in one transaction, so every lock a
statement takes is held until the commit: on a large table the scan of a new
foreign key, CHECK or NOT NULL and the build of an index or a unique constraint
stop the old release's writes for as long as all of them take together. This
module plans the same migration as PARTS, each either one transaction (the
statements as written, some with a flag added) or one online step, so that no
part holds a lock that stops writes for longer than a catalogue change. The
end state is drizzle-orm's, names included (tests/db/test_online_rewrites.py
compares `pg_dump -s` of both on PostgreSQL 15 and 18).

A statement is rewritten when its table, as the statement names it, is at
least `threshold` bytes on disk (`Policy.sizes`, read live just before the run;
ONLINE_DDL=auto), whatever its size (`always`), or never (`never`). A table
created by this migration or earlier in the same run (`Policy.created`) is
empty, so small. The rewrites, each checked by parsing the result again with
PostgreSQL's own parser (pglast), never by looking at the SQL as text:

- `CREATE [UNIQUE] INDEX` → ` CONCURRENTLY` inserted after INDEX, every other
  byte as written, built after the transaction before it commits;
- `ADD CONSTRAINT … FOREIGN KEY` / `CHECK` → ` NOT VALID` inserted after the
  constraint, every other byte as written, then `VALIDATE CONSTRAINT` (it
  takes SHARE UPDATE EXCLUSIVE, which writes do not wait for);
- `ALTER COLUMN c SET NOT NULL` → a helper `CHECK (c IS NOT NULL) NOT VALID`
  (`helper_name`), `VALIDATE` it, then the statement as written and the
  helper's DROP in one short transaction (PostgreSQL 12+ skips the scan when a
  validated check proves the column has no NULL);
- `ADD CONSTRAINT … UNIQUE` / `PRIMARY KEY` → `CREATE UNIQUE INDEX
  CONCURRENTLY` named as the constraint, then `ADD CONSTRAINT … USING INDEX`
  (a primary key first gets a helper check on its columns, validated, so that
  attaching it, which sets them NOT NULL, does not scan the table either).

Order. Statements keep their written order in the transactions; an online
step runs once the transaction holding its statement (and every statement
before it) has committed. Steps wait, in written order, until the end of the
migration, unless a later statement DEPENDS on one of them: then the
transaction ends before that statement, every waiting step runs, and a new
transaction goes on with it. A later statement depends on a waiting step when
it (1) names the step's index, constraint or helper (DROP, RENAME, ALTER,
VALIDATE, COMMENT ON, USING INDEX, CLUSTER ON, or a new object of that name);
(2) adds a foreign key that references the table of a waiting unique index or
UNIQUE / PRIMARY KEY (it may need that index); (3) writes rows (INSERT,
UPDATE, DELETE, MERGE, COPY, TRUNCATE, on any table: triggers and cascades
reach further than we can see) while a validation or a unique build waits,
since drizzle-orm would have checked those rows before the write; (4) drops,
renames or moves the step's table, or drops, renames, retypes, or changes the
nullability or any other property of a column the step reads; any ALTER TABLE
subcommand on that table other than ADD COLUMN, SET/DROP DEFAULT, ADD/DROP/
VALIDATE CONSTRAINT and those column changes counts as touching the whole
table; (5) may run code we cannot read: DO, CALL, SELECT, EXECUTE, a DROP …
CASCADE; (6) is of a kind not listed here and names the step's table. When
unsure, split: a split costs one more commit, never correctness. An
index-only migration (drizzle-kit's "performance indexes") is one part per
index in written order, each small table's index in a transaction of its own,
as the online index builds ran it before this planner covered more than them.

What stays as written. A migration whose splitting could change what it does
is sent as written, in one transaction, byte for byte: one with its own
BEGIN/COMMIT/SAVEPOINT, a statement PostgreSQL refuses in a transaction
(CONCURRENTLY, VACUUM, …), a SET, LOCK or DISCARD (their effect would not
carry across parts), or a chunk pglast did not parse. So is every migration
with nothing to rewrite (`never`, small tables, no candidate; a constraint
already NOT VALID or NOT ENFORCED, or USING INDEX, is none). A candidate
stays as written, with the reason in its `Decision`, when it has no name
(PostgreSQL would pick one a resume could not find), its table is partitioned,
it is `ON ONLY`, pglast cannot print its unique index for sure, or it is a
UNIQUE, PRIMARY KEY or SET NOT NULL among several subcommands of one ALTER
TABLE: PostgreSQL runs those in
passes by kind, not in written order, so splitting them could change the
result (a FOREIGN KEY or CHECK there still gets NOT VALID in place: nothing
moves). `ALTER COLUMN … TYPE`, a volatile default and `VACUUM FULL` have no
online form; the lint (`ddl`) names them.

A chunk holding several statements (drizzle-kit's `breakpoints: false`) is cut
into pieces at its statements' semicolons, each piece keeping its comments, so
the pieces put together are the chunk, byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from entrypoint.core import online_sql as sql
from entrypoint.core.online_order import Reads, depends, shown, touch
from entrypoint.core.online_parts import (
    MIN_SERVER,
    MODES,
    THRESHOLD_SETTING,
    Decision,
    Expect,
    LiveTable,
    NewTables,
    OnlineMode,
    Part,
    Plan,
    Policy,
    Sent,
    Source,
    Step,
    TableName,
    Transaction,
    Why,
)  # fmt: skip
from entrypoint.core.online_rewrite import Planned, Statement, alter_table, index
from entrypoint.core.online_sql import HELPER_PREFIX, helper_name
from entrypoint.core.sql import DEFAULT_SCHEMA, Chunk, Fields, Stmt, classify, node
from entrypoint.core.text import size_text

__all__ = [  # the planner, and the parts it plans with (from online_parts), for its readers
    "HELPER_PREFIX", "MODES", "Decision", "Expect", "LiveTable", "OnlineMode", "Part", "Plan", "Policy", "Sent",
    "Source", "Step", "TableName", "Transaction", "Why", "creates", "decide", "helper_name", "index_only", "plan",
    "tables_to_size",
]  # fmt: skip


def tables_to_size(chunks: Sequence[Chunk]) -> set[TableName]:
    """The tables whose live size decides a migration's plan: those its indexes and ALTER TABLEs name.

    Read from the parser's JSON tree (`Chunk.stmts`): the deploy asks this of every pending migration.
    """
    return {
        _key(fields["relation"])
        for chunk in chunks
        for kind, fields in chunk.stmts or ()
        if kind in {"IndexStmt", "AlterTableStmt"} and "relation" in fields
    }


def creates(chunks: Sequence[Chunk]) -> set[tuple[str, str]]:
    """The tables a migration creates, as (schema, table): empty for the migrations after it in the same run."""
    return {found[0] for chunk in chunks for stmt in chunk.stmts or () if (found := _created(stmt))}


def decide(table: TableName, policy: Policy) -> Why:
    """Whether a statement on `table`, a table that exists, runs online under `policy`, and why (a rollback's drops)."""
    return _decide(table, policy, {})


def _decide(table: TableName, policy: Policy, here: NewTables) -> Why:
    """Whether a statement on `table` runs online under `policy`, and why."""
    name, normal = shown(table), (table[0] or DEFAULT_SCHEMA, table[1])
    if policy.mode == "never":
        return Why(policy.said, name)
    live = policy.sizes.get(table)
    if (live is not None and live.partitioned) or here.get(normal):
        return Why(f"{name} is partitioned: PostgreSQL has no online form for it", name)
    fresh = "this migration" if normal in here else "this deploy" if normal in policy.created else ""
    size = "" if live is None else f"~{live.rows:,} rows, {size_text(live.bytes)}"
    if policy.mode == "always":
        said = f" is created by {fresh}" if fresh else f": {size}" if size else " has no live size"
        return Why(f"{policy.said}; {name}{said}", name, online=True)
    if fresh:
        return Why(f"{name} is created by {fresh}: empty", name)
    if live is None:
        return Why(f"{name} has no live size: it was not there before the run", name)
    over = live.bytes >= policy.threshold
    text = f"{name}: {size} {'≥' if over else '<'} {THRESHOLD_SETTING} {size_text(policy.threshold)}"
    return Why(text, name, over, live.rows, live.bytes, policy.threshold)


def _unsplittable(chunks: Sequence[Chunk]) -> str:
    """Why splitting this migration could change what it does, or ""."""
    from pglast import ast

    for number, chunk in enumerate(chunks, start=1):
        if chunk.raws is None:
            return f"statement {number} was not parsed (too large, or not SQL pglast reads)"
        outside = classify(chunk, MIN_SERVER).outside
        if outside:
            return f"statement {number} runs outside a transaction ({outside})"
        for raw in chunk.raws:
            if isinstance(raw.stmt, ast.TransactionStmt):
                return f"statement {number} controls its own transaction"
            if isinstance(raw.stmt, ast.VariableSetStmt | ast.LockStmt | ast.DiscardStmt):
                kind = type(raw.stmt).__name__.removesuffix("Stmt").removeprefix("Variable").upper()
                return f"statement {number} runs {kind}, whose effect would not carry across parts"
    return ""


def _key(range_var: Fields) -> TableName:
    """(schema as written or None, name) of a RangeVar in the JSON tree (`online_sql.key`, for the AST)."""
    return (str(range_var["schemaname"]) if range_var.get("schemaname") else None, str(range_var["relname"]))


def _created(stmt: Stmt) -> tuple[tuple[str, str], bool] | None:
    """The table a statement creates, and whether it is partitioned (from the JSON tree)."""
    kind, fields = stmt
    if kind == "CreateStmt":
        created = _key(fields["relation"])
        return (created[0] or DEFAULT_SCHEMA, created[1]), "partspec" in fields
    if kind == "CreateTableAsStmt" and "into" in fields:
        created = _key(fields["into"]["rel"])
        return (created[0] or DEFAULT_SCHEMA, created[1]), False
    return None


def _weighed(stmt: Stmt) -> bool:
    """Whether `_statements` weighs a statement (an index or ALTER TABLE on a table): its AST is read then."""
    kind, fields = stmt
    return kind in {"IndexStmt", "AlterTableStmt"} and "relation" in fields


def _candidate(stmt: Stmt) -> bool:
    """Whether a statement has an online form to weigh (`online_rewrite`), read from the JSON tree.

    An index not built CONCURRENTLY, or an ALTER TABLE with a FOREIGN KEY or CHECK not yet NOT VALID, a
    SET NOT NULL, or a UNIQUE / PRIMARY KEY not USING INDEX.
    """
    kind, fields = stmt
    if "relation" not in fields:
        return False
    if kind == "IndexStmt":
        return not fields.get("concurrent")
    return kind == "AlterTableStmt" and any(_candidate_command(node(cmd)[1]) for cmd in fields.get("cmds", ()))


def _candidate_command(cmd: Fields) -> bool:
    if cmd.get("subtype") == "AT_SetNotNull":
        return True
    if cmd.get("subtype") != "AT_AddConstraint":
        return False
    _, constraint = node(cmd["def"])
    contype = constraint.get("contype")
    if contype in {"CONSTR_FOREIGN", "CONSTR_CHECK"}:
        return not constraint.get("skip_validation")
    return contype in {"CONSTR_UNIQUE", "CONSTR_PRIMARY"} and not constraint.get("indexname")


def _created_ast(stmt: Any) -> tuple[tuple[str, str], bool] | None:
    """`_created`, from the Python AST the planner reads once it weighs a migration's candidates."""
    from pglast import ast

    if isinstance(stmt, ast.CreateStmt):
        created = sql.key(stmt.relation)
        return (created[0] or DEFAULT_SCHEMA, created[1]), stmt.partspec is not None
    if isinstance(stmt, ast.CreateTableAsStmt) and stmt.into is not None:
        created = sql.key(stmt.into.rel)
        return (created[0] or DEFAULT_SCHEMA, created[1]), False
    return None


def _held(why: Why, note: str) -> Why:
    """A statement the size said to run online, held in the migration's transaction: why."""
    return why._replace(online=False, text=f"{why.text}; the migration is sent as written: {note}")


def _as_written(chunks: Sequence[Chunk]) -> Transaction:
    numbered = enumerate(chunks, start=1)
    return Transaction(tuple(Sent(n, tuple(range(1, len(c.stmts or ()) + 1)), _raw(c)) for n, c in numbered))


def _raw(chunk: Chunk) -> bytes:
    return chunk.raw if isinstance(chunk.raw, bytes) else chunk.raw.encode()


def index_only(chunks: Sequence[Chunk]) -> bool:
    """Whether every statement is one plain `CREATE [UNIQUE] INDEX` (comment-only chunks aside)."""

    def plain(chunk: Chunk) -> bool:
        stmts = chunk.stmts or ()
        return len(stmts) == 1 and stmts[0][0] == "IndexStmt" and not stmts[0][1].get("concurrent")

    return any(plain(c) for c in chunks) and all(plain(c) or c.stmts == () for c in chunks)


def _statements(chunks: Sequence[Chunk], policy: Policy) -> list[tuple[Any, Planned | None, Sent]]:
    """Each statement of the migration: its tree, its online form if it has one, and what sends it as written.

    The tree is pglast's, or the one-statement `Chunk` whose AST is built when `_assemble` needs it.
    """
    from pglast import ast

    here: dict[tuple[str, str], bool] = {}
    planned: list[tuple[Any, Planned | None, Sent]] = []
    for number, chunk in enumerate(chunks, start=1):
        raw_chunk = _raw(chunk)
        if not chunk.stmts:
            planned.append((None, None, Sent(number, (), raw_chunk)))
            continue
        if len(chunk.stmts) == 1 and not _weighed(chunk.stmts[0]):
            # Nothing here to weigh: its Python AST (the cost of a fresh apply's planning) is built only if
            # the migration goes online after all, to order the parts (`_assemble`).
            planned.append((chunk, None, Sent(number, (1,), raw_chunk)))
            created = _created(chunk.stmts[0])
            if created:
                here[created[0]] = created[1]
            continue
        raws = chunk.raws or ()  # parsed (`stmts` above): its AST is there
        for k, (raw, piece) in enumerate(zip(raws, sql.pieces(raw_chunk, raws), strict=True), start=1):
            stmt, one = raw.stmt, None
            if isinstance(stmt, ast.IndexStmt | ast.AlterTableStmt) and stmt.relation is not None:
                table = sql.key(stmt.relation)
                statement = Statement(Source(number, k), piece, stmt, table, _decide(table, policy, here))
                if isinstance(stmt, ast.IndexStmt) and not stmt.concurrent:
                    one = index(statement)
                elif isinstance(stmt, ast.AlterTableStmt):
                    one = alter_table(statement)
            planned.append((stmt, one, Sent(number, (k,), piece)))
            created = _created_ast(stmt)
            if created:
                here[created[0]] = created[1]
    return planned


def plan(chunks: Sequence[Chunk], policy: Policy) -> Plan:
    """The parts of one migration, from its one parse (`core.sql.parse`): each chunk as sent and its RawStmts.

    With nothing to rewrite (ONLINE_DDL=never, small or new tables, no candidate), or a migration that
    cannot be split, the one part is a `Transaction` of every chunk as written, byte for byte: the
    executor then does exactly what it does today. An index-only migration is one part per index, in
    written order, as the online index builds always ran it: a small table's index commits on its own.
    A migration without a candidate is that one part at once, read from the JSON tree: only one with a
    candidate has its Python AST built, to weigh and rewrite each.
    """
    if not any(_candidate(stmt) for chunk in chunks for stmt in chunk.stmts or ()):
        return Plan((_as_written(chunks),), (), index_only=False)
    planned = _statements(chunks, policy)
    decisions = tuple(d for _, one, _ in planned if one for d in one.decisions)
    only = index_only(chunks)
    if not any(one and one.steps for _, one, _ in planned):
        return Plan((_as_written(chunks),), decisions, index_only=only)
    note = _unsplittable(chunks)
    if note:
        held = tuple(d._replace(how="as written", why=_held(d.why, note)) if d.online else d for d in decisions)
        return Plan((_as_written(chunks),), held, f"sent as written: {note}", index_only=only)
    if only:
        parts = tuple(one.steps[0] if one and one.steps else Transaction((sent,)) for _, one, sent in planned)
        return Plan(parts, decisions, index_only=True)
    return Plan(_assemble(planned), decisions)


def _assemble(planned: Sequence[tuple[Any, Planned | None, Sent]]) -> tuple[Part, ...]:
    """The parts: transactions in written order, each online step after the commit of its statement.

    The steps wait, in written order, for the end of the migration or for a later statement that depends
    on one of them, whichever comes first.
    """
    parts: list[Part] = []
    sent: list[Sent] = []
    expects: list[Expect] = []
    waiting: list[tuple[Reads, tuple[Step, ...]]] = []
    after = ""

    def commit() -> None:
        nonlocal after
        if sent:
            parts.append(Transaction(tuple(sent), tuple(expects), after))
            sent.clear()
            expects.clear()
            after = ""
        for _, steps in waiting:
            parts.extend(steps)
        waiting.clear()

    for stmt, one, as_written in planned:
        if stmt is not None and waiting:
            touched = touch(stmt.ast()[0] if isinstance(stmt, Chunk) else stmt)
            reason = next((why for reads, _ in waiting if (why := depends(touched, reads))), "")
            if reason:
                commit()
                after = f"statement {as_written.chunk} waits for the online steps before it: {reason}"
        if one is None or not one.steps:
            sent.append(as_written)
            continue
        if one.sent is not None:
            sent.append(one.sent)
        expects.extend(one.expects)
        if one.reads is not None:
            waiting.append((one.reads, one.steps))
    commit()
    return tuple(parts)
