"""Online index builds, decided purely by the online planner: the CONCURRENTLY rewrite, each index's build, the units.

An index-only migration (drizzle-kit's "performance indexes") is the online planner's simplest case: one
part per index, in written order, a large table's built CONCURRENTLY, a small one's in a transaction of its own.
"""

from __future__ import annotations

import hashlib

import pglast
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from entrypoint.core import online
from entrypoint.core.model import Migration, Refusal
from entrypoint.core.online import LiveTable, Policy, index_only
from entrypoint.core.online_parts import chunk_of
from entrypoint.core.online_sql import fresh, index_duplicates, with_concurrently
from entrypoint.core.sql import parse_chunk, same_index
from entrypoint.core.text import size_text
from entrypoint.core.transactions import classify as classify_all
from entrypoint.core.transactions import plan_units, tables_to_size

PG18 = 180000
INSERTED = b" CONCURRENTLY"
MB = 1 << 20


def _rewritten(statement: bytes) -> bytes:
    found = with_concurrently(statement, fresh(statement))
    assert found is not None, statement
    return found


def _inserted_once(original: bytes, rewritten: bytes) -> bool:
    """`rewritten` is `original` with ` CONCURRENTLY` inserted at one place, every other byte unchanged."""
    return len(rewritten) == len(original) + len(INSERTED) and any(
        rewritten == original[:k] + INSERTED + original[k:] for k in range(len(original) + 1)
    )


@pytest.mark.parametrize(
    "statement",
    [
        b'CREATE INDEX "idx_actions_challenge_id" ON "actions" USING btree ("challenge_id");',
        b'CREATE UNIQUE INDEX "users_email_idx" ON "users" USING btree ("email");',
        b'CREATE INDEX IF NOT EXISTS "idx_x" ON "public"."users" USING btree ("a","b") WHERE "b" IS NULL;',
        b"-- Custom SQL migration file, put your code below! --\ncreate index idx_l on t (lower(name));",
        b'CREATE /* why */ UNIQUE INDEX "\xc3\xa9t\xc3\xa9" ON "t" ("x" DESC NULLS LAST) INCLUDE ("y");',
        b"CREATE INDEX i ON ONLY p USING gin (doc jsonb_path_ops) WITH (fastupdate = off);",
    ],
)
def test_concurrently_goes_after_the_index_keyword(statement: bytes) -> None:
    """The rewrite inserts ` CONCURRENTLY` once, after INDEX, keeps every other byte, and parses as the same index."""
    rewritten = _rewritten(statement)
    assert _inserted_once(statement, rewritten)
    (again,) = pglast.parse_sql(rewritten.decode())
    (before,) = pglast.parse_sql(statement.decode())
    assert again.stmt.concurrent
    assert again.stmt.if_not_exists == before.stmt.if_not_exists
    assert same_index(rewritten, statement.decode(), "public")


IDENT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters='"\x00'), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    index=IDENT,
    table=IDENT,
    unique=st.booleans(),
    guarded=st.booleans(),
    comment=st.sampled_from(["", "-- CREATE INDEX x ON y (z)\n", "/* CONCURRENTLY */ "]),
    keywords=st.sampled_from([str.upper, str.lower]),
)
def test_any_name_and_spelling_is_rewritten_exactly(
    *, index: str, table: str, unique: bool, guarded: bool, comment: str, keywords: object
) -> None:
    """Quoted names of any characters, comments holding the keywords, either case: one insertion, same index."""
    case = keywords  # str.upper or str.lower
    head = case("create unique index" if unique else "create index")  # type: ignore[operator]
    exists = case(" if not exists") if guarded else ""  # type: ignore[operator]
    quoted = '"' + index.replace('"', '""') + '"'
    statement = f'{comment}{head}{exists} {quoted} ON "{table}" ("c");'.encode()
    rewritten = _rewritten(statement)
    assert _inserted_once(statement, rewritten)
    (again,) = pglast.parse_sql(rewritten.decode())
    assert again.stmt.concurrent
    assert again.stmt.idxname == index


@pytest.mark.parametrize(
    ("chunk", "why"),
    [
        (b'CREATE INDEX CONCURRENTLY "i" ON "t" ("a");', "already online"),  # an `outside` migration
        (b'CREATE INDEX "a" ON "t" ("a"); CREATE INDEX "b" ON "t" ("b");', "two in one chunk"),
        (b'ALTER TABLE "t" ADD COLUMN "a" int;', "no index"),
        (b"SELECT 'CREATE INDEX i ON t (a)';", "no index"),
        (b"-- nothing but a comment\n", "no index"),
    ],
)
def test_what_is_not_an_index_only_migration(chunk: bytes, why: str) -> None:
    """Only chunks that are each exactly one CREATE INDEX without CONCURRENTLY (comments aside) make one."""
    assert not index_only([parse_chunk(chunk)]), why
    assert index_only([parse_chunk(b'CREATE INDEX "i" ON "t" ("a");'), parse_chunk(b"-- a comment\n")])


@pytest.mark.parametrize(
    ("definition", "same"),
    [
        ("CREATE INDEX idx_a ON public.users USING btree (email)", True),
        ("CREATE INDEX idx_a ON public.users USING btree (email DESC)", False),
        ("CREATE UNIQUE INDEX idx_a ON public.users USING btree (email)", False),
        ("CREATE INDEX idx_a ON public.users USING hash (email)", False),
        ("CREATE INDEX idx_a ON other.users USING btree (email)", False),
        ("CREATE INDEX idx_a ON public.users USING btree (email, points)", False),
    ],
)
def test_an_index_built_before_is_recognised_only_when_it_is_the_same(definition: str, same: bool) -> None:
    """pg_get_indexdef's spelling matches drizzle-kit's for the same index, and nothing else does."""
    assert same_index(b'CREATE INDEX "idx_a" ON "users" USING btree ("email");', definition, "public") is same


@pytest.mark.parametrize(
    ("statement", "query"),
    [
        (
            b'CREATE UNIQUE INDEX "u" ON "users" USING btree ("email");',
            "SELECT email, count(*) FROM users WHERE email IS NOT NULL GROUP BY 1 HAVING count(*) > 1",
        ),
        (
            b'CREATE UNIQUE INDEX "u" ON "public"."Users" ("org_id", lower("Email")) WHERE "deleted_at" IS NULL;',
            (
                'SELECT org_id, (lower("Email")), count(*) FROM public."Users" WHERE (deleted_at IS NULL) AND org_id '
                'IS NOT NULL AND (lower("Email")) IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1'
            ),
        ),
        (
            b'CREATE UNIQUE INDEX "u" ON "t" ("a") NULLS NOT DISTINCT;',
            "SELECT a, count(*) FROM t GROUP BY 1 HAVING count(*) > 1",
        ),
        (b'CREATE INDEX "i" ON "t" ("a");', None),
    ],
)
def test_the_query_that_finds_duplicate_keys(statement: bytes, query: str | None) -> None:
    """A unique index's duplicates: its key, its predicate, NULLs excluded unless NULLS NOT DISTINCT."""
    stmt = fresh(statement)
    found = index_duplicates(stmt) if stmt.unique else None
    assert found == query
    if query:
        pglast.parse_sql(query)  # it is valid SQL


def _migration(n: int, *statements: bytes) -> Migration:
    return Migration(
        n, f"{n:04d}_m", 1_700_000_000_000 + n, hashlib.sha256(b"".join(statements)).hexdigest(), statements
    )


USERS = (None, "users")
BIG = LiveTable("public", "users", 1_500_000, 300 * MB)
SMALL = LiveTable("public", "users", 68, 48 * 1024)
INDEX_USERS = b'CREATE INDEX "idx_users_role" ON "users" USING btree ("role");'
INDEX_POSTS = b'CREATE INDEX "idx_posts_user" ON "posts" USING btree ("user_id");'


def _builds(policy: Policy, *statements: bytes) -> list[tuple[str, bool, str]]:
    """(index, built CONCURRENTLY?, why) of each index of a migration, as the deploy plans it."""
    facts = classify_all([_migration(1, *statements)], PG18)
    (unit,) = plan_units(facts, "auto", policy)  # type: ignore[misc]
    plan = unit.plan_of(unit.migrations[0])
    return [(d.index_name, d.online and unit.kind == "concurrent", d.why.text) for d in plan.decisions if d.index_name]


def test_each_index_is_built_by_its_tables_size() -> None:
    """auto: a large table's index CONCURRENTLY, a small or not-yet-created table's as written."""
    policy = Policy("auto", 10 * MB, {USERS: BIG})
    assert _builds(policy, INDEX_USERS, INDEX_POSTS) == [
        ("idx_users_role", True, "users: ~1,500,000 rows, 300 MB ≥ INDEX_BUILD_THRESHOLD 10 MB"),
        ("idx_posts_user", False, "posts has no live size: it was not there before the run"),
    ]
    assert _builds(Policy("auto", 10 * MB, {USERS: SMALL}), INDEX_USERS) == [
        ("idx_users_role", False, "users: ~68 rows, 48 kB < INDEX_BUILD_THRESHOLD 10 MB"),
    ]
    partitioned = {USERS: BIG._replace(partitioned=True)}
    assert _builds(Policy("always", 0, partitioned), INDEX_USERS)[0][1:] == (
        False,
        "users is partitioned: PostgreSQL has no online form for it",
    )
    forced = Policy("always", 10 * MB, {USERS: SMALL}, setting="INDEX_BUILD=concurrent")
    assert _builds(forced, INDEX_USERS, INDEX_POSTS) == [
        ("idx_users_role", True, "INDEX_BUILD=concurrent; users: ~68 rows, 48 kB"),
        ("idx_posts_user", True, "INDEX_BUILD=concurrent; posts has no live size"),
    ]
    assert _builds(Policy("never", 0, {USERS: BIG}, setting="INDEX_BUILD=transaction"), INDEX_USERS) == [
        ("idx_users_role", False, "INDEX_BUILD=transaction")
    ]
    assert _builds(Policy("never", 0, {USERS: BIG}), INDEX_USERS) == [("idx_users_role", False, "ONLINE_DDL=never")]


def test_an_index_only_migration_is_one_part_per_index_in_written_order() -> None:
    """A large table's index is a CONCURRENTLY step, a small one's a transaction of its own, in the file's order."""
    facts = classify_all([_migration(0, INDEX_POSTS, INDEX_USERS, b"-- the end\n")], PG18)
    (unit,) = plan_units(facts, "auto", Policy("auto", 10 * MB, {USERS: BIG}))  # type: ignore[misc]
    plan = unit.plan_of(unit.migrations[0])
    assert plan.index_only
    assert [(type(p).__name__, chunk_of(p)) for p in plan.parts] == [
        ("Transaction", 1), ("Step", 2), ("Transaction", 3),
    ]  # fmt: skip
    assert plan.parts[0] == online.Transaction((online.Sent(1, (1,), INDEX_POSTS),))


def test_the_tables_sized_are_those_the_candidates_name() -> None:
    """Every index and ALTER TABLE names a table whose live size decides; a mixed migration's too."""
    mixed = classify_all([_migration(1, b'ALTER TABLE "users" ADD COLUMN "x" int;', INDEX_USERS)], PG18)
    only = classify_all([_migration(2, INDEX_POSTS, b"-- trailing comment\n")], PG18)
    assert index_only(only[0].parsed.chunks)
    assert not index_only(mixed[0].parsed.chunks)
    assert tables_to_size((*mixed, *only)) == {(None, "posts"), (None, "users")}


def _kinds(policy: Policy, *migrations: tuple[bytes, ...], mode: str = "auto") -> list[tuple[str, list[int]]] | Refusal:
    facts = classify_all([_migration(n, *m) for n, m in enumerate(migrations)], PG18)
    units = plan_units(facts, mode, policy)  # type: ignore[arg-type]
    if isinstance(units, Refusal):
        return units
    return [(u.kind, [m.idx for m in u.migrations]) for u in units]


def test_a_large_tables_migration_runs_on_its_own_and_the_rest_stays_together() -> None:
    """Only a migration with an index to build CONCURRENTLY leaves the transaction; small ones stay in it."""
    table = (b'CREATE TABLE "posts" ("id" serial PRIMARY KEY, "user_id" int);',)
    big, small = Policy("auto", 10 * MB, {USERS: BIG}), Policy("auto", 10 * MB, {USERS: SMALL})
    assert _kinds(big, table, (INDEX_USERS, INDEX_POSTS), table) == [
        ("transaction", [0]),
        ("concurrent", [1]),
        ("transaction", [2]),
    ]
    assert _kinds(small, table, (INDEX_USERS, INDEX_POSTS), table) == [("transaction", [0, 1, 2])]
    assert _kinds(big, table, (INDEX_USERS,), mode="single") == [("transaction", [0, 1])]
    forced = Policy("always", 0, {USERS: BIG}, setting="INDEX_BUILD=concurrent")
    refused = _kinds(forced, table, (INDEX_USERS,), mode="single")
    assert isinstance(refused, Refusal)
    assert "INDEX_BUILD=concurrent builds idx_users_role CONCURRENTLY, statement 1" in refused.detail
    assert "Set INDEX_BUILD=auto or TRANSACTION_MODE=auto" in refused.detail


def test_the_unit_says_how_every_index_is_built() -> None:
    """A unit carries the migration's plan: what each part sends, and the file's own statements untouched."""
    facts = classify_all([_migration(0, INDEX_USERS, INDEX_POSTS)], PG18)
    (unit,) = plan_units(facts, "auto", Policy("auto", 10 * MB, {USERS: BIG}))  # type: ignore[misc]
    assert unit.kind == "concurrent"
    assert unit.why.startswith("1 of its indexes built CONCURRENTLY; users: ~1,500,000 rows")
    first, second = unit.plan_of(unit.migrations[0]).parts
    assert first.sql == (INDEX_USERS.replace(b"INDEX", b"INDEX CONCURRENTLY", 1),)
    assert second.statements[0].sql == INDEX_POSTS
    assert unit.migrations[0].statements == (INDEX_USERS, INDEX_POSTS)  # the file as hashed, untouched


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 bytes"), (512, "512 bytes"), (48 * 1024, "48 kB"), (int(1.5 * MB), "1.5 MB"), (300 * MB, "300 MB")],
)
def test_sizes_read_as_postgresql_prints_them(size: int, text: str) -> None:
    """Sizes in lines use PostgreSQL's units."""
    assert size_text(size) == text
