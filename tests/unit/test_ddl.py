"""The DDL lint's rules, read with PostgreSQL's parser, and their weighing by live table sizes."""

from __future__ import annotations

import hashlib

import pytest

from entrypoint.core import ddl
from entrypoint.core.model import Migration
from entrypoint.journal import read_journal
from tests.drizzle_ref import EXAMPLE_MIGRATIONS

# drizzle-kit 0.2x wrote foreign keys this way.
DRIZZLE_KIT_FK = """DO $$ BEGIN
 ALTER TABLE "posts" ADD CONSTRAINT "posts_user_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id");
EXCEPTION
 WHEN duplicate_object THEN null;
END $$;"""


def _migration(n: int, *statements: str) -> Migration:
    chunks = tuple(s.encode() for s in statements)
    return Migration(n, f"{n:04d}_m", 1_700_000_000_000 + n, hashlib.sha256(b"".join(chunks)).hexdigest(), chunks)


def _rules(*statements: str) -> list[str]:
    return [f.rule for f in ddl.findings([_migration(0, *statements)])]


@pytest.mark.parametrize(
    ("statement", "rule"),
    [
        ('CREATE INDEX "i" ON "users" ("email");', "create-index-not-concurrently"),
        ('DROP INDEX "i";', "drop-index-not-concurrently"),
        ('ALTER TABLE "a" ADD CONSTRAINT "fk" FOREIGN KEY ("b") REFERENCES "b"("id");', "constraint-not-valid"),
        ('ALTER TABLE "a" ADD CONSTRAINT "c" CHECK ("x" > 0);', "constraint-not-valid"),
        ('ALTER TABLE "a" ADD CONSTRAINT "u" UNIQUE ("x");', "unique-constraint-builds-index"),
        ('ALTER TABLE "a" ALTER COLUMN "x" SET NOT NULL;', "set-not-null"),
        ('ALTER TABLE "a" ALTER COLUMN "x" SET DATA TYPE bigint;', "column-type-rewrite"),
        ('ALTER TABLE "a" ADD COLUMN "t" uuid DEFAULT gen_random_uuid();', "volatile-default"),
        ('ALTER TABLE "a" ADD COLUMN "n" serial;', "volatile-default"),
        ('ALTER TABLE "a" DROP COLUMN "x";', "breaks-old-release"),
        ('ALTER TABLE "a" RENAME COLUMN "x" TO "y";', "breaks-old-release"),
        ('ALTER TABLE "a" RENAME TO "b";', "breaks-old-release"),
        ('DROP TABLE "a";', "breaks-old-release"),
        ("VACUUM FULL a;", "table-rewrite"),
        ("CLUSTER a USING a_pkey;", "table-rewrite"),
        (DRIZZLE_KIT_FK, "constraint-not-valid"),
    ],
)
def test_each_rule(statement: str, rule: str) -> None:
    """Each rule fires on its statement (inside drizzle-kit's DO blocks too)."""
    assert _rules(statement) == [rule]


@pytest.mark.parametrize(
    "statement",
    [
        'CREATE INDEX CONCURRENTLY "i" ON "users" ("email");',
        'DROP INDEX CONCURRENTLY "i";',
        'ALTER TABLE "a" ADD CONSTRAINT "fk" FOREIGN KEY ("b") REFERENCES "b"("id") NOT VALID;',
        'ALTER TABLE "a" ADD COLUMN "t" timestamp DEFAULT now();',
        'ALTER TABLE "a" ADD COLUMN "x" integer DEFAULT 0 NOT NULL;',
        "SELECT 'CREATE INDEX i ON t (x)';",
        "-- ALTER TABLE a DROP COLUMN x\nSELECT 1;",
        'ANALYZE "a";',
    ],
)
def test_what_is_safe_is_not_flagged(statement: str) -> None:
    """The safe forms, a non-volatile default, and words in strings or comments raise nothing."""
    assert _rules(statement) == []


def test_an_allow_comment_allows_that_rule_only() -> None:
    """`-- entrypoint:allow <rule>` above a statement silences that rule there, and no other."""
    allowed = "-- entrypoint:allow set-not-null\nALTER TABLE a ALTER COLUMN x SET NOT NULL;"
    assert _rules(allowed) == []
    other = "-- entrypoint:allow breaks-old-release\nALTER TABLE a ALTER COLUMN x SET NOT NULL;"
    assert _rules(other) == ["set-not-null"]


def test_a_table_created_in_the_same_run_is_a_note() -> None:
    """An index on a table an earlier pending migration creates: that table is empty, so a note."""
    found = ddl.findings(
        [_migration(0, 'CREATE TABLE "fresh" ("id" int);'), _migration(1, 'CREATE INDEX "i" ON "fresh" ("id");')]
    )
    assert [(f.rule, f.severity, f.fresh) for f in found] == [("create-index-not-concurrently", "note", True)]


def test_live_sizes_decide_the_severity() -> None:
    """The same CREATE INDEX: a danger on 12 M rows, a warning on 50 k, a note on 200; unknown offline: a warning."""
    found = ddl.findings([_migration(0, 'CREATE INDEX "i" ON "users" ("email");')])
    assert [f.severity for f in found] == ["warning"]
    for rows, severity in ((12_000_000, "danger"), (50_000, "warning"), (200, "note")):
        (weighed,) = ddl.weigh(found, {("public", "users"): (rows, rows * 100)})
        assert (weighed.severity, weighed.rows) == (severity, rows)


def test_an_enum_value_used_later_is_a_note() -> None:
    """ADD VALUE before later pending migrations: the run commits there (a note), not in the last migration."""
    assert _rules("ALTER TYPE mood ADD VALUE 'sad';") == []
    found = ddl.findings([_migration(0, "ALTER TYPE mood ADD VALUE 'sad';"), _migration(1, "SELECT 1;")])
    assert [(f.rule, f.severity) for f in found] == [("enum-value-used-later", "note")]


def test_the_example_backend_offline() -> None:
    """drizzle-kit's own folder: 0011's 43 plain CREATE INDEX on existing tables, and 0005's two renames."""
    found = ddl.findings(read_journal(EXAMPLE_MIGRATIONS).migrations, one_run=False)
    by_tag = {f.tag: [] for f in found}
    for f in found:
        by_tag[f.tag].append(f.rule)
    assert by_tag["0011_performance_indexes"] == ["create-index-not-concurrently"] * 43
    assert by_tag["0005_even_ender_wiggin"].count("breaks-old-release") == 2
    assert all(f.fresh for f in found if f.tag == "0000_magenta_squadron_sinister")
    assert not any(f.fresh for f in found if f.tag == "0011_performance_indexes")
    assert all(f.fresh for f in ddl.findings(read_journal(EXAMPLE_MIGRATIONS).migrations) if f.table)
