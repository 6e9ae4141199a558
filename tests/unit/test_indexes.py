"""Online index builds, decided purely: which chunks qualify, the CONCURRENTLY rewrite, and each index's build."""

from __future__ import annotations

import hashlib

import pglast
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from entrypoint.core.indexes import LiveTable, Policy, index_only, plan_builds, tables_to_size
from entrypoint.core.model import Migration, Refusal
from entrypoint.core.sql import classify, same_index
from entrypoint.core.text import size_text
from entrypoint.core.transactions import classify as classify_all
from entrypoint.core.transactions import plan_units

PG18 = 180000
INSERTED = b" CONCURRENTLY"
MB = 1 << 20


def _rewritten(statement: bytes) -> bytes:
    found = classify(statement, PG18).plain_index
    assert found is not None, statement
    return found.concurrently


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
    ("chunk", "empty"),
    [
        (b'CREATE INDEX CONCURRENTLY "i" ON "t" ("a");', False),  # already online: an `outside` migration
        (b'CREATE INDEX "a" ON "t" ("a"); CREATE INDEX "b" ON "t" ("b");', False),  # two in one chunk
        (b'CREATE INDEX ON "t" ("a");', False),  # no name: nothing to clean up or resume by
        (b'ALTER TABLE "t" ADD COLUMN "a" int;', False),
        (b"SELECT 'CREATE INDEX i ON t (a)';", False),
        (b"-- nothing but a comment\n", True),
    ],
)
def test_what_is_not_a_plain_index_chunk(chunk: bytes, empty: bool) -> None:
    """Only a chunk that is exactly one named CREATE INDEX without CONCURRENTLY qualifies; comments alone are empty."""
    facts = classify(chunk, PG18)
    assert facts.plain_index is None
    assert facts.empty is empty


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
                'SELECT org_id, lower("Email"), count(*) FROM public."Users" WHERE (deleted_at IS NULL) AND org_id IS '
                'NOT NULL AND (lower("Email")) IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1'
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
    found = classify(statement, PG18).plain_index
    assert found is not None
    assert found.duplicates == query
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
    (facts,) = classify_all([_migration(1, *statements)], PG18)
    return [(b.name, b.concurrently, b.why) for b in plan_builds(facts.chunks, facts.migration.statements, policy)]


def test_each_index_is_built_by_its_tables_size() -> None:
    """auto: a large table's index CONCURRENTLY, a small or not-yet-created table's as written."""
    policy = Policy("auto", 10 * MB, {USERS: BIG})
    assert _builds(policy, INDEX_USERS, INDEX_POSTS) == [
        ("idx_users_role", True, "users: ~1,500,000 rows, 300 MB ≥ INDEX_BUILD_THRESHOLD 10 MB"),
        ("idx_posts_user", False, "posts has no live size yet: created by this deploy"),
    ]
    assert _builds(Policy("auto", 10 * MB, {USERS: SMALL}), INDEX_USERS) == [
        ("idx_users_role", False, "users: ~68 rows, 48 kB < INDEX_BUILD_THRESHOLD 10 MB"),
    ]
    partitioned = {USERS: BIG._replace(partitioned=True)}
    assert _builds(Policy("concurrent", 0, partitioned), INDEX_USERS)[0][1:] == (
        False,
        "users is partitioned: PostgreSQL cannot build its indexes CONCURRENTLY",
    )
    assert _builds(Policy("concurrent", 10 * MB, {USERS: SMALL}), INDEX_USERS, INDEX_POSTS) == [
        ("idx_users_role", True, "INDEX_BUILD=concurrent; users: ~68 rows, 48 kB"),
        ("idx_posts_user", True, "INDEX_BUILD=concurrent; posts is created by this deploy"),
    ]
    assert _builds(Policy("transaction", 0, {USERS: BIG}), INDEX_USERS) == [
        ("idx_users_role", False, "INDEX_BUILD=transaction")
    ]


def test_only_index_only_migrations_are_sized() -> None:
    """A migration that mixes an index with other DDL keeps today's build, and its tables are never looked up."""
    mixed = classify_all([_migration(1, b'ALTER TABLE "users" ADD COLUMN "x" int;', INDEX_USERS)], PG18)
    only = classify_all([_migration(2, INDEX_POSTS, b"-- trailing comment\n")], PG18)
    assert not index_only(mixed[0].chunks)
    assert index_only(only[0].chunks)
    assert tables_to_size((mixed[0].chunks, only[0].chunks)) == {(None, "posts")}
    assert _builds(Policy("concurrent"), b'ALTER TABLE "users" ADD COLUMN "x" int;', INDEX_USERS) == []


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
    refused = _kinds(Policy("concurrent", 0, {USERS: BIG}), table, (INDEX_USERS,), mode="single")
    assert isinstance(refused, Refusal)
    assert "INDEX_BUILD=concurrent builds idx_users_role CONCURRENTLY, statement 1" in refused.detail


def test_the_unit_says_how_every_index_is_built() -> None:
    """A unit carries each index-only migration's builds, what is sent, and the file's own statement."""
    facts = classify_all([_migration(0, INDEX_USERS, INDEX_POSTS)], PG18)
    (unit,) = plan_units(facts, "auto", Policy("auto", 10 * MB, {USERS: BIG}))  # type: ignore[misc]
    assert unit.kind == "concurrent"
    assert unit.why.startswith("1 of its indexes built CONCURRENTLY; users: ~1,500,000 rows")
    first, second = unit.builds_of(unit.migrations[0])
    assert first.sql == INDEX_USERS.replace(b"INDEX", b"INDEX CONCURRENTLY", 1)
    assert first.original == INDEX_USERS
    assert second.sql == second.original == INDEX_POSTS
    assert unit.migrations[0].statements == (INDEX_USERS, INDEX_POSTS)  # the file as hashed, untouched


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 bytes"), (512, "512 bytes"), (48 * 1024, "48 kB"), (int(1.5 * MB), "1.5 MB"), (300 * MB, "300 MB")],
)
def test_sizes_read_as_postgresql_prints_them(size: int, text: str) -> None:
    """Sizes in lines use PostgreSQL's units."""
    assert size_text(size) == text
