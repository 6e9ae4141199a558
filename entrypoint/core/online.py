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
unsure, split: a split costs one more commit, never correctness.

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

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Literal, NamedTuple

from entrypoint.core import online_sql as sql
from entrypoint.core.online_order import Reads, depends, shown, touch
from entrypoint.core.online_sql import HELPER_PREFIX, helper_name, parse_chunk
from entrypoint.core.indexes import DEFAULT_THRESHOLD, LiveTable, TableName
from entrypoint.core.sql import DEFAULT_SCHEMA, classify, same_index
from entrypoint.core.text import size_text

__all__ = [
    "HELPER_PREFIX", "MODES", "Decision", "Expect", "OnlineMode", "Part", "Plan", "Policy", "Sent", "Source", "Step",
    "Transaction", "Why", "helper_name", "parse_chunk", "plan", "tables_to_size",
]  # fmt: skip

OnlineMode = Literal["auto", "always", "never"]  # ONLINE_DDL (INDEX_BUILD: concurrent → always, transaction → never)
MODES: tuple[OnlineMode, ...] = ("auto", "always", "never")
MODE_SETTING, THRESHOLD_SETTING = "ONLINE_DDL", "INDEX_BUILD_THRESHOLD"
MIN_SERVER = 120000  # PostgreSQL 12: a validated CHECK spares SET NOT NULL its scan; ADD VALUE in a transaction
SentForm = Literal["as-written", "not-valid", "helper-check"]
StepKind = Literal["create-index", "validate", "set-not-null", "attach-constraint"]
ExpectKind = Literal["index", "constraint", "validated", "not-null", "absent"]
Verdict = Literal["done", "missing", "invalid", "different", "not-valid", "nullable", "present"]
NewTables = Mapping[tuple[str, str], bool]  # (schema, table) created by this migration so far → partitioned?


class Policy(NamedTuple):
    """ONLINE_DDL, the threshold, the live size of the tables the candidates name, and the run's new tables."""

    mode: OnlineMode = "auto"
    threshold: int = DEFAULT_THRESHOLD
    sizes: Mapping[TableName, LiveTable] = {}  # keyed as the statements name them: (schema or None, table)
    created: AbstractSet[tuple[str, str]] = frozenset()  # (schema, table), "public" if unqualified: earlier in this run


class Source(NamedTuple):
    """A statement of the migration: its chunk (1-based, the runner's "statement N/M") and its place in it."""

    chunk: int
    statement: int  # 1-based; drizzle-kit writes one statement a chunk


class Sent(NamedTuple):
    """What a transaction sends for (part of) a chunk: as written, with NOT VALID added, or a helper check."""

    chunk: int
    statements: tuple[int, ...]  # the chunk's statements this text carries; () for comments only, or unparsed
    sql: bytes
    form: SentForm = "as-written"


_INDEX_QUERY = (
    "SELECT i.indisvalid, pg_get_indexdef(i.indexrelid), n.nspname FROM pg_index i "
    "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE i.indexrelid = to_regclass(%s)"
)
_CONSTRAINT_QUERY = "SELECT convalidated FROM pg_constraint WHERE conrelid = to_regclass(%s) AND conname = %s"
_COLUMN_QUERY = (
    "SELECT attnotnull FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = %s AND NOT attisdropped"
)


class Expect(NamedTuple):
    """One thing the catalogue shows once a part is done, so that a resume can check a committed part.

    `index`: valid, and what `definition` builds; `constraint`: exists, validated or not; `validated`:
    exists and is validated; `not-null`: the column `name` is NOT NULL; `absent`: no constraint `name`.
    """

    kind: ExpectKind
    schema: str | None  # the table's, as written (an index lives in its table's schema)
    table: str
    name: str  # the index, the constraint, or the column
    definition: bytes = b""  # an index: the CREATE INDEX it must match

    def query(self) -> tuple[str, tuple[str, ...]]:
        """The catalogue query (psycopg placeholders) and its parameters; `judge` reads its one row, or None."""
        if self.kind == "index":
            return _INDEX_QUERY, (sql.regclass(self.schema, self.name),)
        if self.kind == "not-null":
            return _COLUMN_QUERY, (sql.regclass(self.schema, self.table), self.name)
        return _CONSTRAINT_QUERY, (sql.regclass(self.schema, self.table), self.name)

    def judge(self, row: Sequence[Any] | None) -> Verdict:
        """`done`, or what the catalogue shows instead: `invalid` (what a killed build leaves), `not-valid`…."""
        if self.kind == "absent":
            return "done" if row is None else "present"
        if row is None:
            return "missing"
        if self.kind == "index":
            if not row[0]:
                return "invalid"
            return "done" if same_index(self.definition, str(row[1]), str(row[2])) else "different"
        if self.kind == "not-null":
            return "done" if row[0] else "nullable"
        return "not-valid" if self.kind == "validated" and not row[0] else "done"

    @property
    def says(self) -> str:
        """The expectation in words: `index idx_users_score on users valid, as planned`."""
        table = shown((self.schema, self.table))
        return {
            "index": f"index {self.name} on {table} valid, as planned",
            "constraint": f"constraint {self.name} on {table}",
            "validated": f"constraint {self.name} on {table} validated",
            "not-null": f"{table}.{self.name} NOT NULL",
            "absent": f"no constraint {self.name} on {table}",
        }[self.kind]


class Why(NamedTuple):
    """Why a statement runs online or as written: its table, the table's live size and the threshold, in words."""

    text: str  # `users: ~1,500,000 rows, 312 MB ≥ INDEX_BUILD_THRESHOLD 10 MB`
    table: str  # as written: `users`, `app.users`
    online: bool = False
    rows: int | None = None
    bytes: int | None = None
    threshold: int | None = None


class Decision(NamedTuple):
    """For each statement with an online form: what it is, whether it runs online, how, and why."""

    source: Source
    what: str  # `ADD CONSTRAINT users_referrer_id_users_id_fk FOREIGN KEY`
    how: str  # `NOT VALID, then VALIDATE CONSTRAINT after the commit`, or `as written`
    why: Why

    @property
    def online(self) -> bool:
        """Whether the statement runs online."""
        return self.why.online


class Transaction(NamedTuple):
    """One part run in one transaction: these statements, in this order, then COMMIT."""

    statements: tuple[Sent, ...]
    done: tuple[Expect, ...] = ()  # what its rewritten statements leave (NOT VALID constraints, helper checks)
    after: str = ""  # why it starts after online steps rather than in the transaction before ("" if it follows none)


class Step(NamedTuple):
    """One online part: what it is, on which table, why, what it sends, and how to see that it is done.

    A `create-index` is sent alone outside any transaction (CONCURRENTLY); every other kind is one
    transaction of its `sql`. `offending` lists the rows its validation or unique build fails on.
    """

    kind: StepKind
    source: Source
    schema: str | None
    table: str
    name: str  # the index or constraint it builds, validates or attaches; the column it sets NOT NULL
    sql: tuple[bytes, ...]
    done: tuple[Expect, ...]
    why: Why
    offending: str | None = None

    @property
    def transactional(self) -> bool:
        """Whether its statements run in one transaction (all but the CONCURRENTLY build)."""
        return self.kind != "create-index"

    @property
    def what(self) -> str:
        """The step in words: `VALIDATE CONSTRAINT users_referrer_id_users_id_fk on users`."""
        table = shown((self.schema, self.table))
        return {
            "create-index": f"CREATE INDEX CONCURRENTLY {self.name} on {table}",
            "validate": f"VALIDATE CONSTRAINT {self.name} on {table}",
            "set-not-null": f"SET NOT NULL {table}.{self.name}",
            "attach-constraint": f"ADD CONSTRAINT {self.name} USING INDEX on {table}",
        }[self.kind]


Part = Transaction | Step


class Plan(NamedTuple):
    """A migration's parts, in order; each candidate statement's decision; why it is all as written, if it is."""

    parts: tuple[Part, ...]
    decisions: tuple[Decision, ...] = ()
    note: str = ""  # why the whole migration is sent as written though a statement could run online

    @property
    def online(self) -> bool:
        """Whether any part is an online step; if not, the plan is one transaction, exactly as written."""
        return any(isinstance(part, Step) for part in self.parts)


def tables_to_size(parses: Sequence[Sequence[Any] | None]) -> set[TableName]:
    """The tables whose live size decides a migration's plan: those its indexes and ALTER TABLEs name."""
    from pglast import ast

    found: set[TableName] = set()
    for raws in parses:
        for raw in raws or ():
            stmt = raw.stmt
            if isinstance(stmt, ast.IndexStmt | ast.AlterTableStmt) and stmt.relation is not None:
                found.add(sql.key(stmt.relation))
    return found


def _decide(table: TableName, policy: Policy, here: NewTables) -> Why:
    """Whether a statement on `table` runs online under `policy`, and why."""
    name, normal = shown(table), (table[0] or DEFAULT_SCHEMA, table[1])
    if policy.mode == "never":
        return Why(f"{MODE_SETTING}=never", name)
    live = policy.sizes.get(table)
    if (live is not None and live.partitioned) or here.get(normal):
        return Why(f"{name} is partitioned: PostgreSQL has no online form for it", name)
    fresh = "this migration" if normal in here else "this deploy" if normal in policy.created else ""
    size = "" if live is None else f"~{live.rows:,} rows, {size_text(live.bytes)}"
    if policy.mode == "always":
        said = f" is created by {fresh}" if fresh else f": {size}" if size else " has no live size"
        return Why(f"{MODE_SETTING}=always; {name}{said}", name, online=True)
    if fresh:
        return Why(f"{name} is created by {fresh}: empty", name)
    if live is None:
        return Why(f"{name} has no live size: it was not there before the run", name)
    over = live.bytes >= policy.threshold
    text = f"{name}: {size} {'≥' if over else '<'} {THRESHOLD_SETTING} {size_text(policy.threshold)}"
    return Why(text, name, over, live.rows, live.bytes, policy.threshold)


class _Planned(NamedTuple):
    """One statement planned: what its transaction sends, its online steps, what they read, its decisions."""

    sent: Sent | None
    steps: tuple[Step, ...] = ()
    reads: Reads | None = None
    decisions: tuple[Decision, ...] = ()
    expects: tuple[Expect, ...] = ()


class _Statement(NamedTuple):
    """One statement being planned: where it comes from, its text and tree, its table, and the size's word."""

    source: Source
    piece: bytes
    stmt: Any
    table: TableName
    why: Why

    def sent(self, text: bytes | None = None, form: SentForm = "as-written") -> Sent:
        return Sent(self.source.chunk, (self.source.statement,), self.piece if text is None else text, form)

    def expect(self, kind: ExpectKind, name: str, definition: bytes = b"") -> Expect:
        return Expect(kind, self.table[0], self.table[1], name, definition)

    def step(self, kind: StepKind, name: str, send: tuple[bytes, ...], done: tuple[Expect, ...],
             offending: str | None = None) -> Step:  # fmt: skip
        return Step(kind, self.source, self.table[0], self.table[1], name, send, done, self.why, offending)

    def validate(self, name: str, offending: str | None) -> Step:
        send = (sql.validate(self.stmt.relation, name),)
        return self.step("validate", name, send, (self.expect("validated", name),), offending)

    def decision(self, what: str, how: str = "", reason: str = "") -> Decision:
        """Online `how`, or as written (for `reason`, when the size alone said online)."""
        if how:
            return Decision(self.source, what, how, self.why)
        why = self.why._replace(online=False, text=f"{self.why.text}; {reason}") if self.why.online else self.why
        return Decision(self.source, what, "as written", why)

    def as_written(self, *decisions: Decision) -> _Planned:
        return _Planned(self.sent(), decisions=decisions)


def _index(one: _Statement) -> _Planned:
    """CREATE [UNIQUE] INDEX → the same with CONCURRENTLY, after the commit."""
    stmt = one.stmt
    what = f"CREATE {'UNIQUE ' if stmt.unique else ''}INDEX {stmt.idxname or ''}".rstrip()
    if not one.why.online:
        return one.as_written(one.decision(what))
    if not stmt.idxname:
        return one.as_written(one.decision(what, reason="it has no name: PostgreSQL would pick one a resume "
                                                        "could not find"))  # fmt: skip
    if not stmt.relation.inh:
        return one.as_written(one.decision(what, reason="ON ONLY: PostgreSQL has no online form for it"))
    rewritten = sql.with_concurrently(one.piece, stmt)
    if rewritten is None:
        return one.as_written(one.decision(what, reason="CONCURRENTLY could not be placed for sure"))
    name = str(stmt.idxname)
    offending = sql.index_duplicates(stmt) if stmt.unique else None
    build = one.step("create-index", name, (rewritten,), (one.expect("index", name, rewritten),), offending)
    read = sql.columns((stmt.indexParams, stmt.indexIncludingParams, stmt.whereClause))
    unique = one.table if stmt.unique else None
    reads = Reads(((one.table, read),), frozenset({name}), unique, validates=bool(stmt.unique))
    return _Planned(None, (build,), reads, (one.decision(what, "built CONCURRENTLY after the commit"),))


def _what(cmd: Any) -> str:
    from pglast.enums import ConstrType

    if cmd.def_ is None:
        return f"ALTER COLUMN {cmd.name} SET NOT NULL"
    kind = {
        ConstrType.CONSTR_FOREIGN: "FOREIGN KEY",
        ConstrType.CONSTR_CHECK: "CHECK",
        ConstrType.CONSTR_UNIQUE: "UNIQUE",
        ConstrType.CONSTR_PRIMARY: "PRIMARY KEY",
    }[cmd.def_.contype]
    return f"ADD CONSTRAINT {cmd.def_.conname} {kind}" if cmd.def_.conname else f"ADD {kind}"


def _candidates(stmt: Any) -> tuple[list[int], list[int]]:
    """The subcommands with an online form: (those that take NOT VALID in place, those that need a statement alone).

    FOREIGN KEY and CHECK take NOT VALID in place; SET NOT NULL, UNIQUE and PRIMARY KEY are rewritten into
    other statements, which only a statement of one subcommand allows.
    """
    from pglast.enums import AlterTableType, ConstrType

    in_place, alone = [], []
    for n, cmd in enumerate(stmt.cmds or ()):
        if cmd.subtype == AlterTableType.AT_SetNotNull:
            alone.append(n)
        elif cmd.subtype == AlterTableType.AT_AddConstraint:
            kind = cmd.def_.contype
            if kind in {ConstrType.CONSTR_FOREIGN, ConstrType.CONSTR_CHECK} and not cmd.def_.skip_validation:
                in_place.append(n)
            elif kind in {ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY} and not cmd.def_.indexname:
                alone.append(n)
    return in_place, alone


def _alter_table(one: _Statement) -> _Planned | None:
    in_place, alone = _candidates(one.stmt)
    if not in_place and not alone:
        return None
    if not one.why.online:
        return one.as_written(*(one.decision(_what(one.stmt.cmds[n])) for n in sorted(in_place + alone)))
    if alone and len(one.stmt.cmds) == 1:
        return _set_not_null(one) if one.stmt.cmds[0].def_ is None else _unique(one)
    return _not_valid(one, in_place, alone)


def _not_valid(one: _Statement, in_place: Sequence[int], alone: Sequence[int]) -> _Planned:
    """FOREIGN KEY and CHECK subcommands get NOT VALID in place, each VALIDATEd after the commit."""
    from pglast.enums import ConstrType

    cmds = one.stmt.cmds
    refused = {n: f"one of {len(cmds)} subcommands of one ALTER TABLE, which PostgreSQL runs by kind, not as "
                  "written: not split" for n in alone}  # fmt: skip
    for n in in_place:
        if not cmds[n].def_.conname:
            refused[n] = "it has no name: PostgreSQL would pick one VALIDATE could not name"
    online = [n for n in in_place if n not in refused]
    rewritten = sql.with_not_valid(one.piece, one.stmt, online) if online else None
    if rewritten is None:
        refused |= dict.fromkeys(online, "NOT VALID could not be placed for sure")
        return one.as_written(*(one.decision(_what(cmds[n]), reason=refused[n]) for n in sorted(refused)))
    steps, expects, tables, decisions = [], [], [], []
    for n in sorted([*online, *refused]):
        if n in refused:
            decisions.append(one.decision(_what(cmds[n]), reason=refused[n]))
            continue
        constraint = cmds[n].def_
        name = str(constraint.conname)
        if constraint.contype == ConstrType.CONSTR_FOREIGN:
            offending = sql.missing_references(one.stmt.relation, constraint)
            tables += [
                (one.table, _names(constraint.fk_attrs)),
                (sql.key(constraint.pktable), _names(constraint.pk_attrs)),
            ]
        else:
            offending = sql.failing_check(one.stmt.relation, constraint)
            tables.append((one.table, sql.columns(constraint.raw_expr)))
        steps.append(one.validate(name, offending))
        expects.append(one.expect("constraint", name))
        decisions.append(one.decision(_what(cmds[n]), "NOT VALID, then VALIDATE CONSTRAINT after the commit"))
    reads = Reads(tuple(tables), frozenset(s.name for s in steps), validates=True)
    return _Planned(one.sent(rewritten, "not-valid"), tuple(steps), reads, tuple(decisions), tuple(expects))


def _set_not_null(one: _Statement) -> _Planned:
    """A helper CHECK (c IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL (as written) and its DROP."""
    column = str(one.stmt.cmds[0].name)
    helper = helper_name(one.table[0], one.table[1], (column,))
    relation = one.stmt.relation
    steps = (
        one.validate(helper, sql.nulls(relation, (column,))),
        one.step("set-not-null", column, (one.piece, sql.drop(relation, helper)),
                 (one.expect("not-null", column), one.expect("absent", helper))),
    )  # fmt: skip
    how = f"CHECK ({column} IS NOT NULL) NOT VALID, VALIDATE, then SET NOT NULL without a scan"
    return _Planned(
        one.sent(sql.helper_check(relation, helper, (column,)), "helper-check"),
        steps,
        Reads(((one.table, frozenset({column})),), frozenset({helper}), validates=True),
        (one.decision(_what(one.stmt.cmds[0]), how),),
        (one.expect("constraint", helper),),
    )


def _unique(one: _Statement) -> _Planned:
    """CREATE UNIQUE INDEX CONCURRENTLY named as the constraint, then ADD CONSTRAINT … USING INDEX.

    Attaching a primary key sets its columns NOT NULL, which scans the table under ACCESS EXCLUSIVE unless a
    validated check proves it needless: a helper check on its columns goes first, dropped when it attaches.
    """
    from pglast.enums import ConstrType

    constraint, relation = one.stmt.cmds[0].def_, one.stmt.relation
    what = _what(one.stmt.cmds[0])
    if not constraint.conname:
        return one.as_written(one.decision(what, reason="it has no name: PostgreSQL would pick one a resume could "
                                                        "not find"))  # fmt: skip
    index = None if constraint.without_overlaps or not relation.inh else sql.unique_index(one.stmt, constraint)
    if index is None:
        reason = "no plain unique index can be written for sure for it (WITHOUT OVERLAPS, ONLY, or its options)"
        return one.as_written(one.decision(what, reason=reason))
    name, keys = str(constraint.conname), [str(k.sval) for k in constraint.keys]
    primary = constraint.contype == ConstrType.CONSTR_PRIMARY
    duplicates = sql.duplicates(relation, [sql.ident(k) for k in keys],
                                nulls_distinct=primary or not constraint.nulls_not_distinct)  # fmt: skip
    steps = [one.step("create-index", name, (index,), (one.expect("index", name, index),), duplicates)]
    attach, done = [sql.using_index(one.stmt)], [one.expect("validated", name)]
    sent, expects, names = None, [], {name}
    if primary:
        helper = helper_name(one.table[0], one.table[1], keys, name)
        sent = one.sent(sql.helper_check(relation, helper, keys), "helper-check")
        steps.insert(0, one.validate(helper, sql.nulls(relation, keys)))
        expects.append(one.expect("constraint", helper))
        attach.append(sql.drop(relation, helper))
        done.append(one.expect("absent", helper))
        names.add(helper)
    steps.append(one.step("attach-constraint", name, tuple(attach), tuple(done)))
    reads = Reads(
        ((one.table, frozenset(keys) | _names(constraint.including)),), frozenset(names), one.table, validates=True
    )
    how = "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT … USING INDEX"
    return _Planned(sent, tuple(steps), reads, (one.decision(what, how),), tuple(expects))


def _names(nodes: Sequence[Any] | None) -> frozenset[str]:
    return frozenset(str(node.sval) for node in nodes or ())


def _unsplittable(chunks: Sequence[bytes], parses: Sequence[Sequence[Any] | None]) -> str:
    """Why splitting this migration could change what it does, or ""."""
    from pglast import ast

    for number, (chunk, raws) in enumerate(zip(chunks, parses, strict=True), start=1):
        if raws is None:
            return f"statement {number} was not parsed (too large, or not SQL pglast reads)"
        outside = classify(chunk, MIN_SERVER).outside
        if outside:
            return f"statement {number} runs outside a transaction ({outside})"
        for raw in raws:
            if isinstance(raw.stmt, ast.TransactionStmt):
                return f"statement {number} controls its own transaction"
            if isinstance(raw.stmt, ast.VariableSetStmt | ast.LockStmt | ast.DiscardStmt):
                kind = type(raw.stmt).__name__.removesuffix("Stmt").removeprefix("Variable").upper()
                return f"statement {number} runs {kind}, whose effect would not carry across parts"
    return ""


def _created(stmt: Any) -> tuple[tuple[str, str], bool] | None:
    """The table a statement creates, and whether it is partitioned."""
    from pglast import ast

    if isinstance(stmt, ast.CreateStmt):
        created = sql.key(stmt.relation)
        return (created[0] or DEFAULT_SCHEMA, created[1]), stmt.partspec is not None
    if isinstance(stmt, ast.CreateTableAsStmt) and stmt.into is not None:
        created = sql.key(stmt.into.rel)
        return (created[0] or DEFAULT_SCHEMA, created[1]), False
    return None


def _as_written(chunks: Sequence[bytes], parses: Sequence[Sequence[Any] | None]) -> Transaction:
    numbered = enumerate(zip(chunks, parses, strict=True), start=1)
    return Transaction(tuple(Sent(n, tuple(range(1, len(raws or ()) + 1)), chunk) for n, (chunk, raws) in numbered))


def plan(chunks: Sequence[bytes], parses: Sequence[Sequence[Any] | None], policy: Policy) -> Plan:
    """The parts of one migration, from its chunks as sent and each chunk's `parse_chunk` (RawStmts, or None).

    With nothing to rewrite (ONLINE_DDL=never, small or new tables, no candidate), or a migration that
    cannot be split, the one part is a `Transaction` of every chunk as written, byte for byte: the
    executor then does exactly what it does today.
    """
    from pglast import ast

    here: dict[tuple[str, str], bool] = {}
    planned: list[tuple[Any, _Planned | None, Sent]] = []
    for number, (chunk, raws) in enumerate(zip(chunks, parses, strict=True), start=1):
        if not raws:
            planned.append((None, None, Sent(number, (), chunk)))
            continue
        for k, (raw, piece) in enumerate(zip(raws, sql.pieces(chunk, raws), strict=True), start=1):
            stmt, one = raw.stmt, None
            if isinstance(stmt, ast.IndexStmt | ast.AlterTableStmt) and stmt.relation is not None:
                table = sql.key(stmt.relation)
                statement = _Statement(Source(number, k), piece, stmt, table, _decide(table, policy, here))
                if isinstance(stmt, ast.IndexStmt) and not stmt.concurrent:
                    one = _index(statement)
                elif isinstance(stmt, ast.AlterTableStmt):
                    one = _alter_table(statement)
            planned.append((stmt, one, Sent(number, (k,), piece)))
            created = _created(stmt)
            if created:
                here[created[0]] = created[1]
    decisions = tuple(d for _, one, _ in planned if one for d in one.decisions)
    if not any(one and one.steps for _, one, _ in planned):
        return Plan((_as_written(chunks, parses),), decisions)
    note = _unsplittable(chunks, parses)
    if note:
        return Plan((_as_written(chunks, parses),), decisions, f"sent as written: {note}")
    return Plan(_assemble(planned), decisions)


def _assemble(planned: Sequence[tuple[Any, _Planned | None, Sent]]) -> tuple[Part, ...]:
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
            touched = touch(stmt)
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
