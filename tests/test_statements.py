"""Which statements must run outside a transaction: a keyword scan that ignores comments and quoted text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from entrypoint.statements import concurrent_index_name, needs_autocommit

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
    ],
)
def test_detected(statement: str) -> None:
    """Statements PostgreSQL refuses inside a transaction block are detected, in any case or layout."""
    assert needs_autocommit(statement, PG18)


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
    ],
)
def test_not_detected(statement: str) -> None:
    """Keywords in comments, strings, bodies or quoted names do not count; ADD VALUE is fine from PostgreSQL 12."""
    assert not needs_autocommit(statement, PG18)


def test_add_value_needs_autocommit_before_12() -> None:
    """ALTER TYPE ... ADD VALUE cannot run in a transaction block before PostgreSQL 12."""
    assert needs_autocommit("ALTER TYPE mood ADD VALUE 'sad';", PG11)


@pytest.mark.parametrize(
    ("statement", "name"),
    [
        ('CREATE INDEX CONCURRENTLY "idx_a" ON t (x)', '"idx_a"'),
        ("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS public.idx_b ON t (x)", "public.idx_b"),
        ('create index concurrently "my ""odd"" idx" on t(x)', '"my ""odd"" idx"'),
        ("CREATE INDEX CONCURRENTLY ON t (x)", None),
    ],
)
def test_concurrent_index_name(statement: str, name: str | None) -> None:
    """The name of the index a concurrent build creates, as written, so an INVALID leftover can be found."""
    assert concurrent_index_name(statement) == name


@given(st.text(alphabet=st.characters(blacklist_characters="'\\x00"), max_size=60))
def test_anything_inside_a_string_is_ignored(text: str) -> None:
    """Whatever a string literal holds, it never makes a statement non-transactional."""
    assert not needs_autocommit(f"SELECT '{text}';", PG18)
