"""What a chunk does to its transaction, read with PostgreSQL's own parser: strings and comments never count."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from entrypoint.core.sql import BEGIN, COMMIT, PARSE_LIMIT, ROLLBACK, classify

PG18, PG11 = 180000, 110000


@pytest.mark.parametrize(
    "statement",
    [
        'CREATE INDEX CONCURRENTLY "idx_a" ON "users" USING btree ("email");',
        "create unique index concurrently if not exists idx_b on t (x)",
        'DROP INDEX CONCURRENTLY IF EXISTS "idx_a";',
        "REINDEX INDEX CONCURRENTLY idx_a;",
        "REINDEX TABLE CONCURRENTLY users;",
        "VACUUM (ANALYZE) users;",
        "-- a comment first\nvacuum;",
        "ALTER TABLE p DETACH PARTITION c CONCURRENTLY;",
        "CREATE DATABASE other;",
    ],
)
def test_detected(statement: str) -> None:
    """Statements PostgreSQL refuses inside a transaction block are detected, in any case or layout."""
    assert classify(statement, PG18).outside


@pytest.mark.parametrize(
    "statement",
    [
        'CREATE INDEX "idx_a" ON "users" ("email");',
        "SELECT 'CREATE INDEX CONCURRENTLY x ON y (z)';",
        "-- VACUUM would be wrong here\nSELECT 1;",
        "/* DROP INDEX CONCURRENTLY */ SELECT 1;",
        "CREATE FUNCTION f() RETURNS void AS $$ BEGIN EXECUTE 'VACUUM'; END $$ LANGUAGE plpgsql;",
        'ALTER TABLE "vacuum" ADD COLUMN "x" int;',
        "ALTER TYPE mood ADD VALUE 'sad';",
        "COMMENT ON TABLE users IS E'it\\'s not a VACUUM';",
        "ANALYZE users;",
    ],
)
def test_not_detected(statement: str) -> None:
    """Keywords in comments, strings (E'' escapes too), bodies or names do not count; ADD VALUE is fine from 12."""
    facts = classify(statement, PG18)
    assert facts.parsed
    assert not facts.outside
    assert not facts.controls


def test_add_value_needs_autocommit_before_12() -> None:
    """ALTER TYPE ... ADD VALUE cannot run in a transaction block before PostgreSQL 12, and is flagged either way."""
    assert classify("ALTER TYPE mood ADD VALUE 'sad';", PG11).outside
    assert classify("ALTER TYPE mood ADD VALUE 'sad';", PG18).adds_enum_value
    assert not classify("ALTER TYPE mood RENAME VALUE 'sad' TO 'blue';", PG18).adds_enum_value


@pytest.mark.parametrize(
    ("statement", "indexes"),
    [
        ('CREATE INDEX CONCURRENTLY "idx_a" ON t (x)', ((None, "idx_a"),)),
        ("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx_b ON public.t (x)", (("public", "idx_b"),)),
        ('create index concurrently "my ""odd"" idx" on t(x)', ((None, 'my "odd" idx'),)),
        ("CREATE INDEX CONCURRENTLY ON t (x)", ()),
        ('CREATE INDEX "plain" ON t (x)', ()),
    ],
)
def test_concurrent_index_names(statement: str, indexes: tuple[tuple[str | None, str], ...]) -> None:
    """The index a concurrent build creates, and its table's schema, so an INVALID leftover can be found."""
    assert classify(statement, PG18).concurrent_indexes == indexes


@pytest.mark.parametrize(
    ("chunk", "controls"),
    [
        ("COMMIT;", (COMMIT,)),
        ("END;", (COMMIT,)),
        ("BEGIN;\nCREATE TABLE t (x int);\nCOMMIT;", (BEGIN, COMMIT)),
        ("START TRANSACTION;", (BEGIN,)),
        ("ROLLBACK;", (ROLLBACK,)),
        ("ABORT;", (ROLLBACK,)),
        ("SAVEPOINT a; ROLLBACK TO SAVEPOINT a; RELEASE a;", ()),
        ("DO $$ BEGIN RAISE NOTICE 'COMMIT'; END $$;", ()),
    ],
)
def test_own_transaction_control(chunk: str, controls: tuple[str, ...]) -> None:
    """A file's own BEGIN/COMMIT/ROLLBACK is seen at the top level only; savepoints keep the transaction."""
    assert classify(chunk, PG18).controls == controls


def test_bytes_and_large_chunks() -> None:
    """Chunks arrive as bytes; one too large to parse cheaply is ordinary, unparsed (the runner still checks)."""
    assert classify(b"VACUUM;", PG18).outside == "VACUUM"
    huge = b"INSERT INTO t VALUES (1);" * (PARSE_LIMIT // 20)
    facts = classify(huge, PG18)
    assert not facts.parsed
    assert not facts.outside


@given(st.text(alphabet=st.characters(blacklist_characters="'\\\x00", blacklist_categories=("Cs",)), max_size=60))
def test_anything_inside_a_string_is_ignored(text: str) -> None:
    """Whatever a string literal holds, it never makes a statement non-transactional or transaction control."""
    facts = classify(f"SELECT '{text}';", PG18)
    assert not facts.outside
    assert not facts.controls
