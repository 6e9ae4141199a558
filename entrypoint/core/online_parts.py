"""The parts of an online plan (`online`) and what each decision rests on: plain values, and their stored form. Pure.

A `Plan` is a migration's PARTS in order: each a `Transaction` (statements as
written, some with a flag added) or a `Step` (one online statement: a
CONCURRENTLY build sent alone, or a VALIDATE, SET NOT NULL or USING INDEX
attach in a short transaction of its own). Each part carries `done`, what the
catalogue shows once it has committed (`Expect`), so a resume can check a
committed part without running it again. `record` and `from_record` are the
form a part is stored in, in the progress table beside the ledger, so that a
resume runs exactly the plan the first run made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Literal, NamedTuple

from entrypoint.core.model import ONLINE_MODES, OnlineMode
from entrypoint.core.online_order import shown
from entrypoint.core.online_sql import TableName, regclass
from entrypoint.core.sql import same_index

__all__ = ["OnlineMode", "TableName"]  # re-exported: the catalogue reader keys live sizes by it

DEFAULT_THRESHOLD = 10 * 1024 * 1024  # 10 MB: a plain build of such a table blocks its writes for ~0.1 s


class LiveTable(NamedTuple):
    """What the catalogue says of a table a statement names, just before the run."""

    schema: str
    name: str
    rows: int  # reltuples: the planner's estimate
    bytes: int  # pg_total_relation_size
    partitioned: bool = False


MODES = ONLINE_MODES  # ONLINE_DDL (its alias INDEX_BUILD: concurrent is always, transaction is never)
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
    setting: str = ""  # how the mode was set, for the lines: `INDEX_BUILD=concurrent`; "" is `ONLINE_DDL=<mode>`

    @property
    def said(self) -> str:
        """The setting as the operator wrote it: `ONLINE_DDL=always`, or its alias `INDEX_BUILD=concurrent`."""
        return self.setting or f"{MODE_SETTING}={self.mode}"


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
            return _INDEX_QUERY, (regclass(self.schema, self.name),)
        if self.kind == "not-null":
            return _COLUMN_QUERY, (regclass(self.schema, self.table), self.name)
        return _CONSTRAINT_QUERY, (regclass(self.schema, self.table), self.name)

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
    index_name: str = ""  # a CREATE INDEX: the index's name
    offending: str | None = None  # a unique index: the query listing the key values it would fail on

    @property
    def online(self) -> bool:
        """Whether the statement runs online."""
        return self.why.online


class Transaction(NamedTuple):
    """One part run in one transaction: these statements, in this order, then COMMIT."""

    statements: tuple[Sent, ...]
    done: tuple[Expect, ...] = ()  # what its rewritten statements leave (NOT VALID constraints, helper checks)
    after: str = ""  # why it starts after online steps rather than in the transaction before ("" if it follows none)

    @property
    def chunks(self) -> tuple[int, ...]:
        """The migration's statements (chunks) it sends, in order, each once."""
        return tuple(dict.fromkeys(sent.chunk for sent in self.statements))

    @property
    def what(self) -> str:
        """The part in words: `statements 1-4 (3 as a NOT VALID check, 4 NOT VALID)`."""
        chunks = self.chunks
        contiguous = list(chunks) == list(range(chunks[0], chunks[-1] + 1)) if chunks else False
        if len(chunks) == 1:
            span = f"statement {chunks[0]}"
        elif contiguous:
            span = f"statements {chunks[0]}-{chunks[-1]}"
        else:
            span = "statements " + ", ".join(str(c) for c in chunks)
        forms = {"not-valid": "NOT VALID", "helper-check": "as a NOT VALID check"}
        notes = [f"{sent.chunk} {forms[sent.form]}" for sent in self.statements if sent.form in forms]
        return f"{span} ({', '.join(notes)})" if notes else span


class Step(NamedTuple):
    """One online part: what it is, on which table, why, what it sends, and how to see that it is done.

    A `create-index` is sent alone outside any transaction (CONCURRENTLY); every other kind is one
    transaction of its `sql`. `offending` lists the rows its validation or unique build fails on.
    """

    kind: StepKind
    source: Source  # the statement it comes from: the heartbeat's and the ❌ line's "statement N/M"
    schema: str | None
    table: str
    name: str  # the index or constraint it builds, validates or attaches; the column it sets NOT NULL
    sql: tuple[bytes, ...]
    done: tuple[Expect, ...]
    why: Why
    offending: str | None = None
    note: str = ""  # a helper check's validation: what the check stands for

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
            "validate": f"VALIDATE CONSTRAINT {self.name} on {table}" + (f" ({self.note})" if self.note else ""),
            "set-not-null": f"SET NOT NULL {table}.{self.name}",
            "attach-constraint": f"ADD CONSTRAINT {self.name} USING INDEX on {table}",
        }[self.kind]


Part = Transaction | Step


def chunk_of(part: Part) -> int:
    """The statement (chunk) a part runs first: for lines that say `statement N/M`."""
    return part.source.chunk if isinstance(part, Step) else (part.chunks or (1,))[0]


def first_parts(count: int) -> str:
    """`part 1`, `parts 1-3`: the first `count` parts, in words."""
    return "part 1" if count == 1 else f"parts 1-{count}"


def what(part: Part) -> str:
    """A part in words: `transaction: statements 1-4 (4 NOT VALID)`, or the step's own."""
    return part.what if isinstance(part, Step) else f"transaction: {part.what}"


class Plan(NamedTuple):
    """A migration's parts, in order; each candidate statement's decision; why it is all as written, if it is.

    `index_only`: every statement is a CREATE INDEX, so every part is one index, in written order (a
    small table's index in its own short transaction). `stored`: a plan an earlier deploy stored in the
    progress table before it stopped between parts, `done` of them committed: resumed, never planned again.
    """

    parts: tuple[Part, ...]
    decisions: tuple[Decision, ...] = ()
    note: str = ""  # why the whole migration is sent as written though a statement could run online
    index_only: bool = False
    done: int = 0
    stored: bool = False  # read back from the progress table: resumed as it is, never planned again

    @property
    def online(self) -> bool:
        """Whether any part is an online step; if not, the plan is one transaction, exactly as written."""
        return any(isinstance(part, Step) for part in self.parts)

    @property
    def steps(self) -> tuple[Step, ...]:
        """Its online steps, in order."""
        return tuple(part for part in self.parts if isinstance(part, Step))


# ------------------------------------------------------------------------------------------------ stored form
# A part as one JSON object (the progress table's `part` column): the SQL as text (an online plan is made only of
# chunks the parser read, so UTF-8), every other field as it is.


def _expect_record(expect: Expect) -> dict[str, Any]:
    return {**expect._asdict(), "definition": expect.definition.decode()}


def _expect(found: Mapping[str, Any]) -> Expect:
    return Expect(found["kind"], found["schema"], found["table"], found["name"], str(found["definition"]).encode())


def record(part: Part) -> dict[str, Any]:
    """`part` as a JSON-ready object; `from_record` gives it back, equal."""
    done = [_expect_record(e) for e in part.done]
    if isinstance(part, Transaction):
        statements = [{**s._asdict(), "statements": list(s.statements), "sql": s.sql.decode()} for s in part.statements]
        return {"type": "transaction", "statements": statements, "done": done, "after": part.after}
    return {
        "type": "step", "kind": part.kind, "source": list(part.source), "schema": part.schema, "table": part.table,
        "name": part.name, "sql": [text.decode() for text in part.sql], "done": done, "why": part.why._asdict(),
        "offending": part.offending, "note": part.note,
    }  # fmt: skip


def from_record(found: Mapping[str, Any]) -> Part:
    """The part `record` stored. Raises KeyError or TypeError for an object it did not write."""
    done = tuple(_expect(e) for e in found["done"])
    if found["type"] == "transaction":
        statements = tuple(
            Sent(s["chunk"], tuple(s["statements"]), str(s["sql"]).encode(), s["form"]) for s in found["statements"]
        )
        return Transaction(statements, done, found["after"])
    return Step(
        found["kind"], Source(*found["source"]), found["schema"], found["table"], found["name"],
        tuple(str(text).encode() for text in found["sql"]), done, Why(**found["why"]), found["offending"],
        found.get("note", ""),
    )  # fmt: skip
