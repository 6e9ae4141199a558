"""The one parse is read from the parser's JSON tree: it decides exactly what pglast's full AST decided.

`tests/full_parse.py` keeps the readers as they were over the full AST (the commit planning's facts,
the lint, the schema model); these tests hold the cheap readers to them on every chunk of the
repository's own drizzle folders, and on generated chunks that mix every kind of statement the readers
look at with comments and strings that hold the same keywords. The corpus's twelve folders are held
to them in tests/corpus/test_cheap_parse.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from entrypoint.core import sql
from entrypoint.core.model import Migration
from entrypoint.journal import read_journal
from tests.full_parse import disagreements

REPO = Path(__file__).resolve().parent.parent.parent
# Every drizzle folder in the repository: 0.x journals, and 1.0's folder per migration.
FOLDERS = sorted(
    {p.parent.parent for p in REPO.glob("**/meta/_journal.json") if "node_modules" not in p.parts}
    | {p.parent.parent for p in (REPO / "tests").glob("**/migration.sql") if "node_modules" not in p.parts}
)


def test_the_folders_are_found() -> None:
    """The example's folder, drizzle-kit's custom folder, its variants and the 1.0 layout are all compared."""
    names = {str(folder.relative_to(REPO)) for folder in FOLDERS}
    assert {
        "examples/backend/drizzle",
        "tests/drizzle_folders/custom/drizzle",
        "tests/drizzle_folders/v1/drizzle",
    } <= names
    assert len(names) >= 13


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda folder: str(folder.relative_to(REPO)))
def test_the_repositorys_folders_read_alike(folder: Path) -> None:
    """Every chunk of every folder: the same facts, findings and schema objects from both parses."""
    migrations = read_journal(folder).migrations
    assert migrations
    assert disagreements(migrations) == []


# Statements that exercise every branch the readers take, and some they must ignore.
STATEMENTS = [
    (
        'CREATE TABLE "app"."users" ("id" serial PRIMARY KEY, "email" text CONSTRAINT "users_email_nn" NOT NULL, '
        'CONSTRAINT "users_email_unique" UNIQUE("email"))'
    ),
    'CREATE TABLE IF NOT EXISTS "posts" ("id" uuid DEFAULT gen_random_uuid(), "user_id" integer)',
    'CREATE INDEX "idx_posts_user" ON "posts" USING btree ("user_id")',
    'CREATE UNIQUE INDEX IF NOT EXISTS "u" ON "app"."users" (lower("email")) WHERE "email" IS NOT NULL',
    'CREATE INDEX CONCURRENTLY "idx_c" ON "posts" ("id")',
    "CREATE INDEX ON posts (user_id)",
    'DROP INDEX "idx_posts_user"',
    'DROP INDEX CONCURRENTLY IF EXISTS "app"."idx_c"',
    'DROP TABLE "posts", "app"."users" CASCADE',
    'ALTER TABLE "posts" ADD CONSTRAINT "fk" FOREIGN KEY ("user_id") REFERENCES "app"."users"("id")',
    'ALTER TABLE "posts" ADD CONSTRAINT "fk" FOREIGN KEY ("user_id") REFERENCES "users"("id") NOT VALID',
    'ALTER TABLE "posts" ADD CONSTRAINT "ck" CHECK ("user_id" > 0), ADD CONSTRAINT "pk" PRIMARY KEY ("id")',
    'ALTER TABLE "posts" ADD CONSTRAINT "u" UNIQUE USING INDEX "idx_u"',
    'ALTER TABLE "posts" ALTER COLUMN "user_id" SET NOT NULL, ALTER COLUMN "id" SET DATA TYPE bigint',
    'ALTER TABLE "posts" ADD COLUMN "n" bigserial, ADD COLUMN "at" timestamp DEFAULT now()',
    'ALTER TABLE "posts" ADD COLUMN "r" double precision DEFAULT (coalesce(random(), 1) * 2)',
    'ALTER TABLE "posts" ADD COLUMN "t" uuid DEFAULT gen_random_uuid() NOT NULL',
    'ALTER TABLE "posts" ADD COLUMN "c" timestamp DEFAULT coalesce(clock_timestamp(), now())',
    'ALTER TABLE "posts" DROP COLUMN "n", DROP CONSTRAINT "fk"',
    'ALTER TABLE "posts" RENAME COLUMN "at" TO "created_at"',
    'ALTER TABLE "posts" RENAME TO "articles"',
    'ALTER TABLE "articles" RENAME CONSTRAINT "ck" TO "ck2"',
    'ALTER INDEX "idx_c" RENAME TO "idx_d"',
    'ALTER TABLE "p" DETACH PARTITION "c" CONCURRENTLY',
    "ALTER TYPE \"app\".\"mood\" ADD VALUE 'sad' BEFORE 'happy'",
    "ALTER TYPE mood RENAME VALUE 'sad' TO 'blue'",
    'ALTER TYPE "mood" RENAME TO "feeling"',
    "CREATE TYPE \"public\".\"mood\" AS ENUM('happy', 'sad')",
    'DROP TYPE "mood"',
    "DROP SCHEMA app CASCADE",
    "VACUUM FULL posts",
    "VACUUM (ANALYZE) posts",
    "CLUSTER posts USING posts_pkey",
    "CLUSTER",
    "REINDEX TABLE CONCURRENTLY posts",
    "CREATE DATABASE other",
    "ALTER SYSTEM SET work_mem = '64MB'",
    "BEGIN",
    "START TRANSACTION ISOLATION LEVEL SERIALIZABLE",
    "COMMIT",
    "END",
    "ROLLBACK",
    "SAVEPOINT s",
    "ROLLBACK TO SAVEPOINT s",
    "PREPARE TRANSACTION 'x'",
    (
        'DO $$ BEGIN\n ALTER TABLE "posts" ADD CONSTRAINT "fk" FOREIGN KEY ("user_id") REFERENCES "users"("id");\n'
        "EXCEPTION WHEN duplicate_object THEN null;\nEND $$"
    ),
    "DO $$ BEGIN CREATE INDEX i ON t (x); DROP TABLE old; END $$",
    "DO LANGUAGE plpgsql $$ BEGIN PERFORM 1; END $$",
    "SELECT 'CREATE INDEX CONCURRENTLY x ON y (z); COMMIT'",
    "INSERT INTO posts (id) VALUES (1)",
    "COMMENT ON TABLE posts IS E'it\\'s not a VACUUM'",
    "THIS IS NOT SQL",
]
COMMENTS = [
    "",
    "-- VACUUM; COMMIT\n",
    "/* DROP INDEX CONCURRENTLY i; */ ",
    "-- entrypoint:allow constraint-not-valid\n",
]


@settings(max_examples=300, deadline=None)
@given(
    chunks=st.lists(
        st.lists(st.tuples(st.sampled_from(COMMENTS), st.sampled_from(STATEMENTS)), min_size=0, max_size=3),
        min_size=1,
        max_size=4,
    ),
    lower=st.booleans(),
)
def test_any_chunk_reads_alike(chunks: list[list[tuple[str, str]]], lower: bool) -> None:
    """Chunks of any of the statements, alone or several to a chunk, commented or blank, read alike by both."""
    statements = tuple(
        "".join(f"{comment}{statement.lower() if lower else statement};\n" for comment, statement in chunk).encode()
        for chunk in chunks
    )
    migration = Migration(0, "0000_m", 1, hashlib.sha256(b"".join(statements)).hexdigest(), statements)
    assert disagreements([migration]) == []


def test_a_chunk_is_parsed_once_and_its_ast_only_on_demand() -> None:
    """The JSON tree is read at once; pglast's Python AST (its RawStmts) only when asked for, then kept."""
    chunk = sql.Chunk(b'CREATE INDEX "i" ON "t" ("x");')
    assert chunk.stmts is not None
    assert [kind for kind, _ in chunk.stmts] == ["IndexStmt"]
    assert chunk._raws is None
    first = chunk.raws
    assert chunk.raws is first
    assert [type(stmt).__name__ for stmt in chunk.ast()] == ["IndexStmt"]
    refused = sql.Chunk(b"CREATE INDEX")
    assert refused.stmts is None
    assert refused.rejected
    assert refused.raws is None
    assert refused.ast() == ()


def test_a_migration_without_an_online_candidate_builds_no_ast() -> None:
    """The online planner weighs only what has an online form: a migration of none is planned from JSON alone."""
    from entrypoint.core import online

    chunks = [sql.Chunk(b'CREATE TABLE "t" ("x" integer);'), sql.Chunk(b'ALTER TABLE "t" ADD COLUMN "y" text;')]
    plan = online.plan(chunks, online.Policy(mode="always"))
    assert len(plan.parts) == 1
    assert plan.decisions == ()
    assert all(chunk._raws is None for chunk in chunks)
    weighed = [sql.Chunk(b'CREATE INDEX "i" ON "t" ("x");')]
    online.plan(weighed, online.Policy(mode="always"))
    assert weighed[0]._raws is not None


def test_only_the_weighed_statements_build_an_ast_unless_the_migration_goes_online() -> None:
    """A fresh table and its foreign key: only the ALTER TABLE is weighed; online, every tree is read to order parts."""
    from entrypoint.core import online
    from entrypoint.core.online_parts import LiveTable

    def migration() -> list[sql.Chunk]:
        return [
            sql.Chunk(b'CREATE TABLE "posts" ("id" integer PRIMARY KEY, "user_id" integer);'),
            sql.Chunk(
                b'ALTER TABLE "posts" ADD CONSTRAINT "posts_user_id_fk" FOREIGN KEY ("user_id") '
                b'REFERENCES "public"."users"("id");'
            ),
            sql.Chunk(b'UPDATE "users" SET "id" = "id";'),
        ]

    fresh = migration()
    plan = online.plan(fresh, online.Policy(mode="auto"))
    assert len(plan.parts) == 1
    assert [d.why.online for d in plan.decisions] == [False]
    assert [chunk._raws is not None for chunk in fresh] == [False, True, False]

    big = [
        sql.Chunk(b'CREATE INDEX "users_name_idx" ON "users" ("name");'),
        sql.Chunk(b'UPDATE "users" SET "name" = lower("name");'),
    ]
    sizes = {(None, "users"): LiveTable("public", "users", 2_000_000, 1 << 30)}
    ordered = online.plan(big, online.Policy(mode="auto", sizes=sizes))
    assert [d.why.online for d in ordered.decisions] == [True]
    assert all(chunk._raws is not None for chunk in big)  # the UPDATE's tree was read to order it after the build
    assert len(ordered.parts) > 1
