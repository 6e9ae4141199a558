"""The online plan of a migration (entrypoint/core/online.py), decided purely: each rewrite, each refusal, the order.

The example migration is the issue's own (drizzle-kit's output, verbatim). The properties run the planner on
migrations drawn from the statements drizzle-kit writes and the ones teams add by hand, with names drawn
from small pools so that statements collide and depend on each other.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pglast
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from entrypoint.core import online
from entrypoint.core.online import LiveTable
from entrypoint.core.sql import parse_chunk

BIG = LiveTable("public", "x", 1_500_000, 300 << 20)
SMALL = LiveTable("public", "x", 200, 64 << 10)
BREAKPOINT = b"--> statement-breakpoint"
ISSUE = (
    b'ALTER TABLE "users" ADD COLUMN "referrer_id" integer;--> statement-breakpoint\n'
    b'ALTER TABLE "users" ADD COLUMN "score" integer DEFAULT 0 NOT NULL;--> statement-breakpoint\n'
    b'ALTER TABLE "users" ALTER COLUMN "last_name" SET NOT NULL;--> statement-breakpoint\n'
    b'ALTER TABLE "users" ADD CONSTRAINT "users_referrer_id_users_id_fk" FOREIGN KEY ("referrer_id") REFERENCES '
    b'"public"."users"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint\n'
    b'CREATE INDEX "idx_users_score" ON "users" USING btree ("score");--> statement-breakpoint\n'
    b'ALTER TABLE "users" ADD CONSTRAINT "users_email_role_unique" UNIQUE("email","role");'
)


def _chunks(sql: bytes) -> tuple[bytes, ...]:
    return tuple(sql.split(BREAKPOINT))


def _plan(
    sql: bytes | Sequence[bytes], *, mode: online.OnlineMode = "auto", small: Sequence[str] = (), **policy: object
) -> online.Plan:
    """Plan `sql` (a migration file, or its chunks); every table is big but those in `small`."""
    chunks = _chunks(sql) if isinstance(sql, bytes) else tuple(sql)
    parsed = [parse_chunk(chunk) for chunk in chunks]
    sizes = {name: SMALL if name[1] in small else BIG for name in online.tables_to_size(parsed)}
    return online.plan(parsed, online.Policy(mode=mode, sizes=sizes, **policy))  # type: ignore[arg-type]


def _kinds(plan: online.Plan) -> list[str]:
    return [p.kind if isinstance(p, online.Step) else "transaction" for p in plan.parts]


def _as_written(sql: bytes) -> tuple[online.Part, ...]:
    chunks = _chunks(sql)
    return (online.Transaction(tuple(online.Sent(n, (1,), chunk) for n, chunk in enumerate(chunks, start=1))),)


def test_the_issues_migration() -> None:
    """The issue's migration: one short transaction, then each online step in written order, nothing re-ordered.

    The columns, the helper check and the NOT VALID foreign key commit first; then the helper is validated and
    SET NOT NULL runs as written with the helper's DROP; the foreign key is validated; both indexes are built
    CONCURRENTLY; the unique constraint takes its index.
    """
    chunks = _chunks(ISSUE)
    plan = _plan(ISSUE)
    assert _kinds(plan) == [
        "transaction", "validate", "set-not-null", "validate", "create-index", "create-index", "attach-constraint",
    ]  # fmt: skip
    first = plan.parts[0]
    assert isinstance(first, online.Transaction)
    assert [(s.chunk, s.form) for s in first.statements] == [
        (1, "as-written"), (2, "as-written"), (3, "helper-check"), (4, "not-valid"),
    ]  # fmt: skip
    assert first.statements[0].sql == chunks[0]
    assert first.statements[1].sql == chunks[1]
    assert first.statements[3].sql == chunks[3].replace(b"no action;", b"no action NOT VALID;")
    helper = online.helper_name(None, "users", ("last_name",))
    assert (
        first.statements[2].sql
        == f"ALTER TABLE users ADD CONSTRAINT {helper} CHECK (last_name IS NOT NULL) NOT VALID".encode()
    )
    steps = [p for p in plan.parts if isinstance(p, online.Step)]
    assert steps[0].sql == (f"ALTER TABLE users VALIDATE CONSTRAINT {helper}".encode(),)
    assert steps[1].sql == (chunks[2], f"ALTER TABLE users DROP CONSTRAINT {helper}".encode())
    assert steps[2].sql == (b"ALTER TABLE users VALIDATE CONSTRAINT users_referrer_id_users_id_fk",)
    assert steps[3].sql == (chunks[4].replace(b"INDEX", b"INDEX CONCURRENTLY"),)
    assert steps[4].sql == (b"CREATE UNIQUE INDEX CONCURRENTLY users_email_role_unique ON users (email, role)",)
    assert steps[5].sql == (
        b"ALTER TABLE users ADD CONSTRAINT users_email_role_unique UNIQUE USING INDEX users_email_role_unique",
    )
    assert [s.transactional for s in steps] == [True, True, True, False, False, True]
    assert [d.what for d in plan.decisions] == [
        "ALTER COLUMN last_name SET NOT NULL",
        "ADD CONSTRAINT users_referrer_id_users_id_fk FOREIGN KEY",
        "CREATE INDEX idx_users_score",
        "ADD CONSTRAINT users_email_role_unique UNIQUE",
    ]
    assert {d.why.text for d in plan.decisions} == {"users: ~1,500,000 rows, 300 MB ≥ INDEX_BUILD_THRESHOLD 10 MB"}
    assert all(d.online and d.why.rows == 1_500_000 and d.why.threshold == 10 << 20 for d in plan.decisions)


def test_the_issues_migration_on_a_small_table_is_sent_as_written() -> None:
    """Under the threshold nothing is rewritten: one transaction, every chunk byte for byte, each decision says why."""
    plan = _plan(ISSUE, small=["users"])
    assert plan.parts == _as_written(ISSUE)
    assert not plan.online
    assert [d.how for d in plan.decisions] == ["as written"] * 4
    assert plan.decisions[0].why.text == "users: ~200 rows, 64 kB < INDEX_BUILD_THRESHOLD 10 MB"


@pytest.mark.parametrize("mode", ["never"])
def test_never_sends_everything_as_written(mode: online.OnlineMode) -> None:
    """ONLINE_DDL=never: drizzle-orm's run exactly, whatever the sizes."""
    plan = _plan(ISSUE, mode=mode)
    assert plan.parts == _as_written(ISSUE)
    assert {d.why.text for d in plan.decisions} == {"ONLINE_DDL=never"}


def test_always_rewrites_a_table_this_migration_creates() -> None:
    """ONLINE_DDL=always rewrites a table the migration creates (it commits first); `auto` leaves it as written.

    A table created by this migration, or earlier in the deploy, is empty.
    """
    sql = (
        b'CREATE TABLE "t" ("id" serial PRIMARY KEY, "a" integer);--> statement-breakpoint\n'
        b'CREATE INDEX "t_a" ON "t" USING btree ("a");'
    )
    assert _kinds(_plan(sql, mode="always")) == ["transaction", "create-index"]
    auto = _plan(sql)
    assert auto.parts == _as_written(sql)
    assert auto.decisions[0].why.text == "t is created by this migration: empty"
    earlier = _plan(sql.split(BREAKPOINT)[1], created=frozenset({("public", "t")}))
    assert earlier.decisions[0].why.text == "t is created by this deploy: empty"


def _inserted_once(original: bytes, rewritten: bytes, flag: bytes) -> bool:
    return any(rewritten == original[:k] + flag + original[k:] for k in range(len(original) + 1))


@pytest.mark.parametrize(
    "sql",
    [
        b'CREATE INDEX "idx_a" ON "users" USING btree ("a");',
        b'-- why\nCREATE /* c */ UNIQUE INDEX IF NOT EXISTS "\xc3\xa9" ON "app"."users" ("a" DESC) WHERE "b" IS NULL;',
        b'create index "i" on users (lower(email)) include (x) with (fillfactor = 70)',
    ],
)
def test_an_index_is_built_concurrently_every_other_byte_as_written(sql: bytes) -> None:
    """CONCURRENTLY goes after the INDEX keyword (comments and case as written); the step checks that index."""
    (step,) = _plan(sql).parts
    assert isinstance(step, online.Step)
    assert step.kind == "create-index"
    assert _inserted_once(sql, step.sql[0], b" CONCURRENTLY")
    assert pglast.parse_sql(step.sql[0].decode())[0].stmt.concurrent
    (expect,) = step.done
    assert (expect.kind, expect.name, expect.definition) == ("index", step.name, step.sql[0])


def test_a_unique_index_lists_its_duplicates_as_postgresql_compares_them() -> None:
    """Expressions in parentheses, the index's WHERE, NULLs excluded unless NULLS NOT DISTINCT."""
    (step,) = _plan(b'CREATE UNIQUE INDEX "u" ON "users" (lower("email"), "org") WHERE "deleted" IS NULL').parts
    assert isinstance(step, online.Step)
    assert step.offending == (
        "SELECT (lower(email)), org, count(*) FROM users WHERE (deleted IS NULL) AND (lower(email)) IS NOT NULL "
        "AND org IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1"
    )
    (step,) = _plan(b'CREATE UNIQUE INDEX "u" ON "users" ("email") NULLS NOT DISTINCT').parts
    assert isinstance(step, online.Step)
    assert step.offending == "SELECT email, count(*) FROM users GROUP BY 1 HAVING count(*) > 1"


def test_a_foreign_key_is_added_not_valid_then_validated() -> None:
    """NOT VALID after the constraint (its ON DELETE kept), VALIDATE after the commit, the orphans' query."""
    sql = (
        b'ALTER TABLE "posts" ADD CONSTRAINT "posts_author_fk" FOREIGN KEY ("a","b") '
        b'REFERENCES "public"."users"("x","y") ON DELETE cascade ON UPDATE no action;'
    )
    transaction, step = _plan(sql).parts
    assert isinstance(transaction, online.Transaction)
    assert isinstance(step, online.Step)
    assert transaction.statements[0].sql == sql[:-1] + b" NOT VALID;"
    assert transaction.done == (online.Expect("constraint", None, "posts", "posts_author_fk"),)
    assert step.sql == (b"ALTER TABLE posts VALIDATE CONSTRAINT posts_author_fk",)
    assert step.done == (online.Expect("validated", None, "posts", "posts_author_fk"),)
    assert step.offending == (
        "SELECT child.* FROM posts AS child WHERE child.a IS NOT NULL AND child.b IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM public.users AS parent WHERE parent.x = child.a AND parent.y = child.b)"
    )
    full = _plan(sql.replace(b"ON DELETE", b"MATCH FULL ON DELETE")).parts[1]
    assert isinstance(full, online.Step)
    assert full.offending is not None
    assert "(child.a IS NOT NULL OR child.b IS NOT NULL) AND (child.a IS NULL OR child.b IS NULL OR NOT EXISTS" in (
        full.offending
    )


def test_a_check_is_added_not_valid_then_validated() -> None:
    """The rows it fails on are those where it is false (NULL passes)."""
    sql = b'ALTER TABLE "users" ADD CONSTRAINT "users_points_positive" CHECK ("users"."points" >= 0);'
    transaction, step = _plan(sql).parts
    assert isinstance(transaction, online.Transaction)
    assert isinstance(step, online.Step)
    assert transaction.statements[0].sql == sql[:-1] + b" NOT VALID;"
    assert step.offending == "SELECT * FROM users WHERE NOT (users.points >= 0)"


def test_set_not_null_goes_through_a_helper_check() -> None:
    """A helper CHECK NOT VALID in the transaction, VALIDATE, then the statement as written with the helper's DROP."""
    sql = b'ALTER TABLE "app"."Users" ALTER COLUMN "Last Name" SET NOT NULL;'
    transaction, validate, set_not_null = _plan(sql).parts
    helper = online.helper_name("app", "Users", ("Last Name",))
    assert isinstance(transaction, online.Transaction)
    assert transaction.statements[0].sql == (
        f'ALTER TABLE app."Users" ADD CONSTRAINT {helper} CHECK ("Last Name" IS NOT NULL) NOT VALID'.encode()
    )
    assert isinstance(validate, online.Step)
    assert validate.offending == 'SELECT * FROM app."Users" WHERE "Last Name" IS NULL'
    assert isinstance(set_not_null, online.Step)
    assert set_not_null.sql == (sql, f'ALTER TABLE app."Users" DROP CONSTRAINT {helper}'.encode())
    assert [e.kind for e in set_not_null.done] == ["not-null", "absent"]
    assert set_not_null.done[0].query()[1] == ('"app"."Users"', "Last Name")


def test_helper_names_are_stable_short_and_apart() -> None:
    """The same column always gets the same helper (a resume finds it); a primary key's never shares a name."""
    one = online.helper_name(None, "users", ("a",))
    assert one == online.helper_name(None, "users", ("a",))
    assert one.startswith(online.HELPER_PREFIX)
    assert len(one.encode()) <= 63
    assert one != online.helper_name("public", "users", ("a",))
    assert one != online.helper_name(None, "users", ("a",), "users_pk")
    assert one != online.helper_name(None, "users", ("b",))


@pytest.mark.parametrize(
    ("constraint", "index", "attach"),
    [
        (
            b'UNIQUE("email","role")',
            b"CREATE UNIQUE INDEX CONCURRENTLY c ON users (email, role)",
            b"ALTER TABLE users ADD CONSTRAINT c UNIQUE USING INDEX c",
        ),
        (
            b'UNIQUE NULLS NOT DISTINCT("a") INCLUDE ("b") DEFERRABLE INITIALLY DEFERRED',
            b"CREATE UNIQUE INDEX CONCURRENTLY c ON users (a) INCLUDE (b) NULLS NOT DISTINCT",
            b"ALTER TABLE users ADD CONSTRAINT c UNIQUE USING INDEX c DEFERRABLE INITIALLY DEFERRED",
        ),
    ],
)
def test_a_unique_constraint_takes_a_concurrently_built_index(constraint: bytes, index: bytes, attach: bytes) -> None:
    """CREATE UNIQUE INDEX CONCURRENTLY named as the constraint, then ADD CONSTRAINT … USING INDEX."""
    build, attached = _plan(b'ALTER TABLE "users" ADD CONSTRAINT "c" ' + constraint + b";").parts
    assert isinstance(build, online.Step)
    assert isinstance(attached, online.Step)
    assert (build.kind, build.sql) == ("create-index", (index,))
    assert (attached.kind, attached.sql) == ("attach-constraint", (attach,))
    assert attached.done == (online.Expect("validated", None, "users", "c"),)


def test_a_primary_key_gets_its_columns_proven_not_null_first() -> None:
    """A helper check on both columns, validated, then the unique build, then the key attached and the helper dropped."""
    sql = b'ALTER TABLE "members" ADD CONSTRAINT "members_pk" PRIMARY KEY("user_id","group_id");'
    plan = _plan(sql)
    assert _kinds(plan) == ["transaction", "validate", "create-index", "attach-constraint"]
    helper = online.helper_name(None, "members", ("user_id", "group_id"), "members_pk")
    transaction, validate, build, attach = plan.parts
    assert isinstance(transaction, online.Transaction)
    assert b"CHECK (user_id IS NOT NULL AND group_id IS NOT NULL) NOT VALID" in transaction.statements[0].sql
    assert isinstance(validate, online.Step)
    assert validate.offending == "SELECT * FROM members WHERE user_id IS NULL OR group_id IS NULL"
    assert isinstance(build, online.Step)
    assert build.offending == (
        "SELECT user_id, group_id, count(*) FROM members WHERE user_id IS NOT NULL AND group_id IS NOT NULL "
        "GROUP BY 1, 2 HAVING count(*) > 1"
    )
    assert isinstance(attach, online.Step)
    assert attach.sql == (
        b"ALTER TABLE members ADD CONSTRAINT members_pk PRIMARY KEY USING INDEX members_pk",
        f"ALTER TABLE members DROP CONSTRAINT {helper}".encode(),
    )


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        (b'CREATE INDEX ON "users" ("a");', "it has no name"),
        (b'CREATE INDEX "i" ON ONLY "users" ("a");', "ON ONLY"),
        (b'ALTER TABLE "users" ADD CHECK ("a" > 0);', "it has no name"),
        (b'ALTER TABLE "users" ADD PRIMARY KEY ("user_id");', "it has no name"),
        (
            (
                b'ALTER TABLE "users" ADD CONSTRAINT "c" UNIQUE NULLS NOT DISTINCT ("a") WITH (fillfactor = 70) '
                b"USING INDEX TABLESPACE t;"
            ),
            "no plain unique index can be written for sure",
        ),
        (b'ALTER TABLE "users" ALTER COLUMN "a" SET NOT NULL, ALTER COLUMN "b" SET DEFAULT 0;', "one of 2 subcommands"),
    ],
)
def test_what_stays_as_written_says_why(sql: bytes, reason: str) -> None:
    """No name, ON ONLY, an index pglast cannot write for sure, or a split that could change the result."""
    plan = _plan(sql)
    assert plan.parts == _as_written(sql)
    (decision,) = plan.decisions
    assert not decision.online
    assert reason in decision.why.text, decision.why.text
    assert decision.why.text.startswith("users: ~1,500,000 rows")


@pytest.mark.parametrize(
    "sql",
    [
        b'ALTER TABLE "users" ADD CONSTRAINT "c" CHECK ("a" > 0) NOT VALID;',
        b'ALTER TABLE "users" ADD CONSTRAINT "c" CHECK ("a" > 0) NOT ENFORCED;',
        b'ALTER TABLE "users" ADD CONSTRAINT "c" UNIQUE USING INDEX "c";',
        b'CREATE INDEX CONCURRENTLY "i" ON "users" ("a");',
    ],
)
def test_what_is_online_already_is_no_candidate(sql: bytes) -> None:
    """NOT VALID (and NOT ENFORCED, which PostgreSQL takes as not valid), USING INDEX, CONCURRENTLY: nothing to do."""
    plan = _plan(sql)
    assert plan.parts == _as_written(sql)
    assert plan.decisions == ()


def test_a_partitioned_table_stays_as_written() -> None:
    """PostgreSQL builds no index on a partitioned table CONCURRENTLY."""
    sql = b'CREATE INDEX "i" ON "events" ("a");'
    sizes = {(None, "events"): BIG._replace(partitioned=True)}
    plan = online.plan((parse_chunk(sql),), online.Policy(sizes=sizes))
    assert plan.parts == _as_written(sql)
    assert plan.decisions[0].why.text == "events is partitioned: PostgreSQL has no online form for it"


def test_several_subcommands_get_not_valid_in_place() -> None:
    """ADD COLUMN, then a foreign key on it, in one ALTER TABLE: the key gets NOT VALID where it ends, nothing moves."""
    sql = (
        b'ALTER TABLE "posts" ADD COLUMN "user_id" integer, '
        b'ADD CONSTRAINT "posts_user_fk" FOREIGN KEY ("user_id") REFERENCES "users"("id") /* why */, '
        b'ADD CONSTRAINT "posts_n" CHECK (length("title") > 0);'
    )
    transaction, *steps = _plan(sql).parts
    assert isinstance(transaction, online.Transaction)
    assert transaction.statements[0].sql == sql.replace(b'("id") ', b'("id") NOT VALID ').replace(
        b"0);", b"0) NOT VALID;"
    )
    assert [s.name for s in steps if isinstance(s, online.Step)] == ["posts_user_fk", "posts_n"]


@pytest.mark.parametrize(
    ("sql", "note"),
    [
        (b"BEGIN;--> statement-breakpoint\n" + ISSUE + b"--> statement-breakpoint\nCOMMIT;", "its own transaction"),
        (b"SET lock_timeout = '1s';--> statement-breakpoint\n" + ISSUE, "runs SET"),
        (b"LOCK TABLE users;--> statement-breakpoint\n" + ISSUE, "runs LOCK"),
        (ISSUE + b'--> statement-breakpoint\nCREATE INDEX CONCURRENTLY "j" ON "users" ("a");', "outside a transaction"),
        (ISSUE + b"--> statement-breakpoint\nVACUUM users;", "outside a transaction"),
        (ISSUE + b"--> statement-breakpoint\nthis is not sql", "was not parsed"),
    ],
)
def test_a_migration_that_splitting_could_change_is_sent_as_written(sql: bytes, note: str) -> None:
    """Its own transaction control, SET, LOCK, a statement outside any transaction, a chunk pglast cannot read."""
    plan = _plan(sql)
    chunks = _chunks(sql)
    assert len(plan.parts) == 1
    assert isinstance(plan.parts[0], online.Transaction)
    assert [s.sql for s in plan.parts[0].statements] == list(chunks)
    assert note in plan.note
    assert plan.decisions  # what would have been online, had it been split, says why it is not
    assert all(not d.online and note in d.why.text and d.how == "as written" for d in plan.decisions)


def _order(plan: online.Plan) -> list[str]:
    """The parts as `T[chunks]` and step kinds with their chunk."""
    out = []
    for part in plan.parts:
        if isinstance(part, online.Transaction):
            out.append("T" + ",".join(str(s.chunk) for s in part.statements))
        else:
            out.append(f"{part.kind}:{part.source.chunk}")
    return out


@pytest.mark.parametrize(
    ("later", "order"),
    [
        # independent: the steps wait for the end
        (b'CREATE INDEX "idx_b" ON "users" ("b");', ["create-index:1", "create-index:2"]),
        (b'ALTER TABLE "users" ADD COLUMN "z" integer;', ["T2", "create-index:1"]),
        (
            b'ALTER TABLE "tags" ADD CONSTRAINT "t_fk" FOREIGN KEY ("u") REFERENCES "users"("id");',
            ["T2", "create-index:1"],
        ),
        (b'ALTER TABLE "users" RENAME COLUMN "b" TO "c";', ["T2", "create-index:1"]),
        (b"CREATE TYPE mood AS ENUM ('a');", ["T2", "create-index:1"]),
        # dependent: the transaction ends before it and the step runs there
        (b'DROP INDEX "idx_a";', ["create-index:1", "T2"]),
        (b'ALTER INDEX "idx_a" RENAME TO "idx_c";', ["create-index:1", "T2"]),
        (b"COMMENT ON INDEX idx_a IS 'x';", ["create-index:1", "T2"]),
        (b'ALTER TABLE "users" DROP COLUMN "a";', ["create-index:1", "T2"]),
        (b'ALTER TABLE "users" ALTER COLUMN "a" TYPE bigint;', ["create-index:1", "T2"]),
        (b'ALTER TABLE "users" RENAME COLUMN "a" TO "c";', ["create-index:1", "T2"]),
        (b'ALTER TABLE "users" RENAME TO "people";', ["create-index:1", "T2"]),
        (b'DROP TABLE "users";', ["create-index:1", "T2"]),
        (b'ALTER TABLE "users" ENABLE ROW LEVEL SECURITY;', ["create-index:1", "T2"]),
        (b"DO $$ BEGIN PERFORM 1; END $$;", ["create-index:1", "T2"]),
        (b"SELECT setval('users_id_seq', 10);", ["create-index:1", "T2"]),
        (b"DROP TYPE mood CASCADE;", ["create-index:1", "T2"]),
        (b'CREATE TABLE "copy" (LIKE "users" INCLUDING INDEXES);', ["create-index:1", "T2"]),
        (b"CREATE TRIGGER t BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION f();", ["create-index:1", "T2"]),
    ],
)
def test_a_later_statement_waits_for_an_index_it_depends_on(later: bytes, order: list[str]) -> None:
    """After `CREATE INDEX idx_a ON users (a)` on a large table: which later statements need it built first."""
    sql = b'CREATE INDEX "idx_a" ON "users" USING btree ("a");--> statement-breakpoint\n' + later
    assert _order(_plan(sql, small=["tags", "copy"])) == order


@pytest.mark.parametrize(
    ("first", "later", "order"),
    [
        # a foreign key needs the referenced table's unique index: it is built first
        (
            b'ALTER TABLE "users" ADD CONSTRAINT "users_email_unique" UNIQUE("email");',
            b'ALTER TABLE "tags" ADD CONSTRAINT "tags_fk" FOREIGN KEY ("e") REFERENCES "public"."users"("email");',
            ["create-index:1", "attach-constraint:1", "T2", "validate:2"],
        ),
        (
            b'CREATE UNIQUE INDEX "users_email" ON "users" ("email");',
            b'CREATE TABLE "t" ("e" text REFERENCES "users"("email"));',
            ["create-index:1", "T2"],
        ),
        # a write must not escape a validation drizzle-orm would have made before it
        (
            b'ALTER TABLE "users" ADD CONSTRAINT "c" CHECK ("a" > 0);',
            b"UPDATE tags SET a = 1;",
            ["T1", "validate:1", "T2"],
        ),
        (b'CREATE INDEX "i" ON "users" ("a");', b"UPDATE users SET a = 1;", ["T2", "create-index:1"]),
        # NOT NULL: DROP NOT NULL, a retype, or a second SET NOT NULL of the same column
        (
            b'ALTER TABLE "users" ALTER COLUMN "a" SET NOT NULL;',
            b'ALTER TABLE "users" ALTER COLUMN "a" DROP NOT NULL;',
            ["T1", "validate:1", "set-not-null:1", "T2"],
        ),
        (
            b'ALTER TABLE "users" ALTER COLUMN "a" SET NOT NULL;',
            b'ALTER TABLE "users" ALTER COLUMN "b" SET NOT NULL;',
            ["T1,2", "validate:1", "set-not-null:1", "validate:2", "set-not-null:2"],
        ),
        # naming the constraint being validated
        (
            b'ALTER TABLE "users" ADD CONSTRAINT "c" CHECK ("a" > 0);',
            b'ALTER TABLE "users" DROP CONSTRAINT "c";',
            ["T1", "validate:1", "T2"],
        ),
        # a foreign key's validation also reads the referenced table's columns
        (
            b'ALTER TABLE "tags" ADD CONSTRAINT "f" FOREIGN KEY ("u") REFERENCES "public"."users"("id");',
            b'ALTER TABLE "users" DROP COLUMN "id";',
            ["T1", "validate:1", "T2"],
        ),
    ],
)
def test_the_order_rule(first: bytes, later: bytes, order: list[str]) -> None:
    """Which later statements wait for the online steps of an earlier one, and which do not.

    Unique indexes come before the foreign keys that reference their table, validations before writes,
    NOT NULL before what changes its column, constraints before the statements that name them.
    """
    sql = first + b"--> statement-breakpoint\n" + later
    assert _order(_plan(sql, small=["t"])) == order


def test_a_chunk_of_several_statements_is_cut_into_pieces_that_make_it_up() -> None:
    """drizzle-kit's `breakpoints: false`: one chunk, cut after each statement's own semicolon, comments kept."""
    chunk = (
        b'-- head\nALTER TABLE "users" ADD COLUMN "a" integer; /* mid */\n'
        b'CREATE INDEX "i" ON "users" ("a");\n'
        b'DROP INDEX "i"; -- tail\n'
    )
    plan = _plan([chunk])
    assert _order(plan) == ["T1", "create-index:1", "T1"]
    first, step, last = plan.parts
    assert isinstance(first, online.Transaction)
    assert isinstance(step, online.Step)
    assert isinstance(last, online.Transaction)
    assert (first.statements[0].statements, step.source.statement, last.statements[0].statements) == ((1,), 2, (3,))
    pieces = first.statements[0].sql + step.sql[0].replace(b" CONCURRENTLY", b"", 1) + last.statements[0].sql
    assert pieces == chunk
    assert last.after == "statement 1 waits for the online steps before it: it names i"


@pytest.mark.parametrize(
    ("expect", "row", "verdict"),
    [
        (online.Expect("index", None, "users", "i", b"CREATE INDEX i ON users (a)"), None, "missing"),
        (
            online.Expect("index", None, "users", "i", b"CREATE INDEX i ON users (a)"),
            (False, "CREATE INDEX i ON public.users USING btree (a)", "public"),
            "invalid",
        ),
        (
            online.Expect("index", None, "users", "i", b"CREATE INDEX i ON users (a)"),
            (True, "CREATE INDEX i ON public.users USING btree (b)", "public"),
            "different",
        ),
        (
            online.Expect("index", None, "users", "i", b"CREATE INDEX CONCURRENTLY i ON users (a)"),
            (True, "CREATE INDEX i ON public.users USING btree (a)", "public"),
            "done",
        ),
        (online.Expect("validated", None, "users", "c"), (False,), "not-valid"),
        (online.Expect("validated", None, "users", "c"), (True,), "done"),
        (online.Expect("constraint", None, "users", "c"), (False,), "done"),
        (online.Expect("not-null", None, "users", "a"), (False,), "nullable"),
        (online.Expect("absent", None, "users", "h"), (True,), "present"),
        (online.Expect("absent", None, "users", "h"), None, "done"),
    ],
)
def test_a_committed_part_is_judged_by_what_the_catalogue_shows(
    expect: online.Expect, row: tuple[object, ...] | None, verdict: str
) -> None:
    """A resume reads each expectation's catalogue row: INVALID, NOT VALID, missing and different are told apart."""
    assert expect.judge(row) == verdict


def test_catalogue_queries_name_the_relation_exactly() -> None:
    """The regclass text is quoted, so case and dots in names survive; an unqualified one goes by the search_path."""
    assert online.Expect("index", "App", "Users", 'odd"name').query()[1] == ('"App"."odd""name"',)
    assert online.Expect("validated", None, "Users", "c").query()[1] == ('"Users"', "c")


# ------------------------------------------------------------------------------------------------ properties

TABLES = ["users", "posts", "tags", "fresh"]  # big, big, small, created by the migration (when it is)
COLUMNS = ["a", "b", "c"]
NAMES = ["n1", "n2", "n3"]


@st.composite
def statements(draw: st.DrawFn) -> bytes:
    """One statement of the kinds drizzle-kit writes, or a team adds, over small pools of names."""
    t, t2 = draw(st.sampled_from(TABLES)), draw(st.sampled_from(TABLES))
    c, c2 = draw(st.sampled_from(COLUMNS)), draw(st.sampled_from(COLUMNS))
    n = draw(st.sampled_from(NAMES))
    kind = draw(st.integers(0, 17))
    forms = [
        f'CREATE TABLE "{t}" ("id" serial PRIMARY KEY, "{c}" integer);',
        f'ALTER TABLE "{t}" ADD COLUMN "{c}" integer;',
        f'ALTER TABLE "{t}" ALTER COLUMN "{c}" SET NOT NULL;',
        f'ALTER TABLE "{t}" ALTER COLUMN "{c}" DROP NOT NULL;',
        (
            f'ALTER TABLE "{t}" ADD CONSTRAINT "{n}" FOREIGN KEY ("{c}") REFERENCES "public"."{t2}"("{c2}") '
            "ON DELETE set null ON UPDATE no action;"
        ),
        f'ALTER TABLE "{t}" ADD CONSTRAINT "{n}" CHECK ("{t}"."{c}" > 0);',
        f'ALTER TABLE "{t}" ADD CONSTRAINT "{n}" UNIQUE("{c}","{c2}");',
        f'ALTER TABLE "{t}" ADD CONSTRAINT "{n}" PRIMARY KEY("{c}");',
        f'CREATE INDEX "{n}" ON "{t}" USING btree ("{c}");',
        f'CREATE UNIQUE INDEX "{n}" ON "{t}" USING btree ("{c}");',
        f'DROP INDEX "{n}";',
        f'ALTER TABLE "{t}" DROP CONSTRAINT "{n}";',
        f'ALTER TABLE "{t}" RENAME COLUMN "{c}" TO "{c2}";',
        f'ALTER TABLE "{t}" DROP COLUMN "{c}";',
        f'UPDATE "{t}" SET "{c}" = 1;',
        "DO $$ BEGIN PERFORM 1; END $$;",
        f'COMMENT ON COLUMN "{t}"."{c}" IS \'x\';',
        "-- a comment, nothing else",
    ]
    return forms[kind].encode()


@st.composite
def migrations(draw: st.DrawFn) -> tuple[bytes, ...]:
    """Chunks of one or two statements (drizzle-kit writes one; `breakpoints: false`, several)."""
    drawn = draw(st.lists(statements(), min_size=1, max_size=9))
    chunks: list[bytes] = []
    for statement in drawn:
        if chunks and draw(st.booleans()) and not chunks[-1].startswith(b"--"):
            chunks[-1] += b"\n" + statement
        else:
            chunks.append(statement)
    return tuple(chunks)


def _sources(parts: Sequence[online.Part]) -> tuple[list[tuple[int, int, int]], list[tuple[int, online.Step]]]:
    """(part index, chunk, statement) of every statement a transaction sends; (part index, step) of every step."""
    sent = [
        (at, s.chunk, n) for at, p in enumerate(parts) if isinstance(p, online.Transaction)
        for s in p.statements for n in s.statements
    ]  # fmt: skip
    steps = [(at, p) for at, p in enumerate(parts) if isinstance(p, online.Step)]
    return sent, steps


FAST = settings(deadline=None, max_examples=150)


@FAST
@given(migrations())
def test_every_statement_is_sent_once_in_order(chunks: tuple[bytes, ...]) -> None:
    """Each statement is sent once by a transaction, or else by its online steps; in the written order.

    A transaction sends it as written, with NOT VALID, or as its helper check; what is sent as written is
    the chunk's own text.
    """
    plan = _plan(chunks, small=["tags"])
    parses = [parse_chunk(chunk).raws for chunk in chunks]
    everything = {(n, k) for n, raws in enumerate(parses, start=1) for k in range(1, len(raws or ()) + 1)}
    sent, steps = _sources(plan.parts)
    in_transactions = [(chunk, n) for _, chunk, n in sent]
    assert len(in_transactions) == len(set(in_transactions))
    assert in_transactions == sorted(in_transactions)
    assert set(in_transactions) | {tuple(step.source) for _, step in steps} == everything
    for n, chunk in enumerate(chunks, start=1):
        texts = [
            s.sql for p in plan.parts if isinstance(p, online.Transaction) for s in p.statements
            if s.chunk == n and s.form == "as-written"
        ]  # fmt: skip
        assert all(text in chunk for text in texts)


@FAST
@given(migrations())
def test_no_step_runs_before_what_comes_before_it(chunks: tuple[bytes, ...]) -> None:
    """A step runs after the commit of every statement written before it, and steps keep the written order.

    So the column it indexes, or its table, is always committed before it runs.
    """
    plan = _plan(chunks, small=["tags"])
    sent, steps = _sources(plan.parts)
    for at, step in steps:
        assert all(part < at for part, chunk, n in sent if (chunk, n) <= tuple(step.source))
    assert [tuple(step.source) for _, step in steps] == sorted(tuple(step.source) for _, step in steps)


def _names(statement: bytes) -> set[str]:
    return {name for name in NAMES if f'"{name}"'.encode() in statement}


@FAST
@given(migrations())
def test_a_statement_naming_what_a_step_builds_runs_after_it(chunks: tuple[bytes, ...]) -> None:
    """The order rule against a plain oracle: what names a step's object, writes, or runs code, runs after it.

    A later statement naming the step's index or constraint, writing rows while a validation waits, or
    running code (DO) is sent after that step.
    """
    plan = _plan(chunks, small=["tags"])
    parses = [parse_chunk(chunk).raws for chunk in chunks]
    sent, steps = _sources(plan.parts)
    for at, step in steps:
        for part, chunk, n in sent:
            if (chunk, n) <= tuple(step.source):
                continue
            raw = (parses[chunk - 1] or ())[n - 1]
            whole = chunks[chunk - 1].decode()
            written = whole[raw.stmt_location : raw.stmt_location + raw.stmt_len or None].encode()
            named = step.name in _names(written)
            writes = type(raw.stmt).__name__ == "UpdateStmt" and step.kind in {"validate", "attach-constraint"}
            runs_code = type(raw.stmt).__name__ == "DoStmt"
            if named or writes or runs_code:
                assert at < part, (step.what, chunk, n)


@FAST
@given(migrations(), st.sampled_from(["never", "small"]))
def test_never_or_small_tables_send_exactly_the_input(chunks: tuple[bytes, ...], why: str) -> None:
    """ONLINE_DDL=never, or every table under the threshold: one transaction of every chunk, byte for byte."""
    plan = _plan(chunks, mode="never") if why == "never" else _plan(chunks, small=TABLES)
    assert len(plan.parts) == 1
    assert isinstance(plan.parts[0], online.Transaction)
    assert tuple(s.sql for s in plan.parts[0].statements) == chunks
    assert not plan.online


@FAST
@given(migrations())
def test_everything_sent_is_sql_postgresql_parses(chunks: tuple[bytes, ...]) -> None:
    """Every text a part sends parses; a CONCURRENTLY build is alone in its part; the plan is the same twice."""
    plan = _plan(chunks, small=["tags"])
    assert plan == _plan(chunks, small=["tags"])
    for part in plan.parts:
        texts = [s.sql for s in part.statements] if isinstance(part, online.Transaction) else list(part.sql)
        for text in texts:
            pglast.parse_sql(text.decode())
        if isinstance(part, online.Step) and not part.transactional:
            assert len(part.sql) == 1
            assert pglast.parse_sql(part.sql[0].decode())[0].stmt.concurrent
    for first, second in itertools.pairwise(plan.parts):  # an index-only plan commits each small index alone
        assert plan.index_only or not (isinstance(first, online.Transaction) and isinstance(second, online.Transaction))


@FAST
@given(migrations())
def test_a_stored_plan_reads_back_as_it_was_planned(chunks: tuple[bytes, ...]) -> None:
    """Each part, stored as JSON in the progress table and read back, is the very part planned: a resume runs it."""
    import json

    from entrypoint.core.online_parts import from_record, record

    plan = _plan(chunks, small=["tags"])
    for part in plan.parts:
        assert from_record(json.loads(json.dumps(record(part)))) == part
