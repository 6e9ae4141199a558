"""Undoing a migration, statement by statement (`core.reverse`): each kind's inverse, or why it has none. Pure.

The table holds each kind of statement drizzle-kit writes (and the custom ones
teams add) against the exact statements that undo it, newest first, with the
data checks the command runs before dropping anything. The property replays
drawn migrations and their reversals over the schema model `verify` uses: the
objects after undoing must be the objects before.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from entrypoint.core.history import History, histories
from entrypoint.core.model import Migration
from entrypoint.core.reverse import DataCheck, Irreversible, Reversal, computed, from_down
from entrypoint.core.schema import SchemaModel, replay, replay_migration
from entrypoint.core.sql import Parsed, parse, statements_of
from entrypoint.journal import split_statements
from tests.drizzle_ref import EXAMPLE_MIGRATIONS

BREAK = "--> statement-breakpoint\n"


def _migration(text: str, tag: str = "0001_m", idx: int = 1) -> Migration:
    raw = text.encode()
    digest = hashlib.sha256(raw).hexdigest()
    return Migration(idx, tag, 1_700_000_000_000 + idx, digest, split_statements(raw))


def _history(*earlier: str) -> History:
    history = History()
    for position, text in enumerate(earlier):
        history.replay(parse(_migration(text, f"000{position}_e", position)))
    return history


def _undo(text: str, *earlier: str) -> Reversal | Irreversible:
    return computed(parse(_migration(text)), _history(*earlier))


def _sql(text: str, *earlier: str) -> list[str]:
    found = _undo(text, *earlier)
    assert isinstance(found, Reversal), found
    return [step.sql for step in found.steps]


def _example(tag_prefix: str) -> str:
    (path,) = EXAMPLE_MIGRATIONS.glob(f"{tag_prefix}_*.sql")
    return path.read_text()


def test_the_runbook_indexes_are_dropped_newest_first() -> None:
    """0011's 43 CREATE INDEX: 43 DROP INDEX IF EXISTS, last created first, each naming its index and table."""
    found = _undo(_example("0011"))
    assert isinstance(found, Reversal)
    assert len(found.steps) == 43
    first, last = found.steps[0], found.steps[-1]
    assert last.sql == 'DROP INDEX IF EXISTS "idx_actions_challenge_id"'
    assert (last.reverses, last.table, last.drops_index) == (1, (None, "actions"), (None, "idx_actions_challenge_id"))
    assert first.reverses == 43
    assert all(step.sql.startswith('DROP INDEX IF EXISTS "idx_') for step in found.steps)
    assert not any(step.checks for step in found.steps)


def test_the_runbook_0010_is_undone_with_data_checks() -> None:
    """0010: the foreign key, the three columns (each checked: only NULL or its default), then the enum type."""
    found = _undo(_example("0010"))
    assert isinstance(found, Reversal)
    assert [step.sql for step in found.steps] == [
        'ALTER TABLE "user_actions" DROP CONSTRAINT "user_actions_validated_by_users_id_fk"',
        'ALTER TABLE "user_actions" DROP COLUMN "validated_at"',
        'ALTER TABLE "user_actions" DROP COLUMN "validated_by"',
        'ALTER TABLE "actions" DROP COLUMN "frequency"',
        'DROP TYPE "public"."action_frequency"',
    ]
    assert found.steps[3].checks == (DataCheck("values", (None, "actions"), "frequency", "'once'"),)
    assert found.steps[1].checks == (DataCheck("values", (None, "user_actions"), "validated_at", None),)
    assert [step.reverses for step in found.steps] == [5, 4, 3, 2, 1]


def test_a_new_table_is_dropped_only_while_empty() -> None:
    """0002: its foreign key, then the table, which must hold no row."""
    assert _sql(_example("0002")) == [
        'ALTER TABLE "actions" DROP CONSTRAINT "actions_challenge_id_challenges_id_fk"',
        'DROP TABLE "actions"',
    ]
    found = _undo(_example("0002"))
    assert isinstance(found, Reversal)
    assert found.steps[1].checks == (DataCheck("rows", (None, "actions")),)


CASES = {
    "rename column": ('ALTER TABLE "campaigns" RENAME COLUMN "title" TO "name";', [
        'ALTER TABLE "campaigns" RENAME COLUMN "name" TO "title"']),
    "rename table": ('ALTER TABLE "public"."a" RENAME TO "b";', ['ALTER TABLE "public"."b" RENAME TO "a"']),
    "rename index": ('ALTER INDEX "i" RENAME TO "j";', ['ALTER INDEX "j" RENAME TO "i"']),
    "rename constraint": ('ALTER TABLE "t" RENAME CONSTRAINT "c" TO "d";', [
        'ALTER TABLE "t" RENAME CONSTRAINT "d" TO "c"']),
    "rename type": ('ALTER TYPE "public"."mood" RENAME TO "feeling";', [
        'ALTER TYPE "public"."feeling" RENAME TO "mood"']),
    "rename enum value": ("ALTER TYPE \"mood\" RENAME VALUE 'sad' TO 'blue';", [
        "ALTER TYPE \"mood\" RENAME VALUE 'blue' TO 'sad'"]),
    "rename schema": ('ALTER SCHEMA "app" RENAME TO "core";', ['ALTER SCHEMA "core" RENAME TO "app"']),
    "set not null": ('ALTER TABLE "users" ALTER COLUMN "phone" SET NOT NULL;', [
        'ALTER TABLE "users" ALTER COLUMN "phone" DROP NOT NULL']),
    "drop not null": ('ALTER TABLE "users" ALTER COLUMN "phone" DROP NOT NULL;', [
        'ALTER TABLE "users" ALTER COLUMN "phone" SET NOT NULL']),
    "create type": ("CREATE TYPE \"public\".\"mood\" AS ENUM('happy', 'sad');", ['DROP TYPE "public"."mood"']),
    "create composite type": ('CREATE TYPE "pair" AS ("a" integer, "b" text);', ['DROP TYPE "pair"']),
    "create domain": ('CREATE DOMAIN "email" AS text;', ['DROP DOMAIN "email"']),
    "create sequence": ('CREATE SEQUENCE IF NOT EXISTS "public"."ticket_seq";', [
        'DROP SEQUENCE IF EXISTS "public"."ticket_seq"']),
    "create view": ('CREATE VIEW "active_users" AS SELECT * FROM "users";', ['DROP VIEW "active_users"']),
    "create materialized view": ('CREATE MATERIALIZED VIEW "stats" AS SELECT 1;', [
        'DROP MATERIALIZED VIEW "stats"']),
    "create function": (
        ('CREATE FUNCTION "public"."add"(a integer, OUT b text, c varchar(3)[] DEFAULT NULL) RETURNS text '
        "AS $$ SELECT 'x' $$ LANGUAGE sql;"),
        ['DROP FUNCTION "public"."add"(integer, varchar(3)[])'],
    ),
    "create procedure": ('CREATE PROCEDURE "p"() AS $$ SELECT 1 $$ LANGUAGE sql;', ['DROP PROCEDURE "p"()']),
    "create trigger": ('CREATE TRIGGER "t" BEFORE INSERT ON "users" FOR EACH ROW EXECUTE FUNCTION "f"();', [
        'DROP TRIGGER "t" ON "users"']),
    "create schema": ('CREATE SCHEMA IF NOT EXISTS "app";', ['DROP SCHEMA IF EXISTS "app"']),
    "create extension": ('CREATE EXTENSION IF NOT EXISTS "pg_trgm";', ['DROP EXTENSION IF EXISTS "pg_trgm"']),
    "add column if not exists": ('ALTER TABLE "users" ADD COLUMN IF NOT EXISTS "bio" text;', [
        'ALTER TABLE "users" DROP COLUMN IF EXISTS "bio"']),
    "several commands": (
        'ALTER TABLE "users" ADD COLUMN "a" text, ADD CONSTRAINT "users_a_unique" UNIQUE("a");',
        ['ALTER TABLE "users" DROP CONSTRAINT "users_a_unique"', 'ALTER TABLE "users" DROP COLUMN "a"'],
    ),
    "transaction control and settings": (f"BEGIN;\n{BREAK}SET lock_timeout = '1s';\n{BREAK}COMMIT;", []),
    "comments only": ("-- nothing here\n", []),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_each_kind_has_its_inverse(case: str) -> None:
    """Each reversible kind of statement is undone by exactly these statements."""
    text, expected = CASES[case]
    assert _sql(text) == expected


def test_set_default_puts_the_previous_one_back() -> None:
    """SET/DROP DEFAULT: the default the earlier migrations gave the column, followed across a rename."""
    earlier = (
        'CREATE TABLE "users" ("id" serial PRIMARY KEY, "points" integer DEFAULT 0 NOT NULL, "bio" text);',
        'ALTER TABLE "users" RENAME COLUMN "points" TO "score";',
    )
    assert _sql('ALTER TABLE "users" ALTER COLUMN "score" SET DEFAULT 5;', *earlier) == [
        'ALTER TABLE "users" ALTER COLUMN "score" SET DEFAULT 0'
    ]
    assert _sql('ALTER TABLE "users" ALTER COLUMN "bio" SET DEFAULT \'x\';', *earlier) == [
        'ALTER TABLE "users" ALTER COLUMN "bio" DROP DEFAULT'
    ]
    assert _sql('ALTER TABLE "users" ALTER COLUMN "score" DROP DEFAULT;', *earlier) == [
        'ALTER TABLE "users" ALTER COLUMN "score" SET DEFAULT 0'
    ]
    unknown = _undo('ALTER TABLE "users" ALTER COLUMN "id" SET DEFAULT 1;', *earlier)
    assert isinstance(unknown, Irreversible)
    assert unknown.why == "the previous default of users.id is not known (no migration here made it)"


def test_a_default_set_earlier_in_the_same_migration_is_followed() -> None:
    """Two SET DEFAULTs in one migration: undone newest first, each back to the one before it."""
    earlier = ('CREATE TABLE "t" ("c" integer DEFAULT 1);',)
    text = f'ALTER TABLE "t" ALTER COLUMN "c" SET DEFAULT 2;\n{BREAK}ALTER TABLE "t" ALTER COLUMN "c" SET DEFAULT 3;'
    assert _sql(text, *earlier) == [
        'ALTER TABLE "t" ALTER COLUMN "c" SET DEFAULT 2',
        'ALTER TABLE "t" ALTER COLUMN "c" SET DEFAULT 1',
    ]


def test_replacing_what_an_earlier_migration_made_has_no_inverse() -> None:
    """CREATE OR REPLACE of a view or function an earlier migration made: its previous body is gone."""
    earlier = ('CREATE VIEW "v" AS SELECT 1;', 'CREATE FUNCTION "f"() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql;')
    view = _undo('CREATE OR REPLACE VIEW "v" AS SELECT 2;', *earlier)
    function = _undo('CREATE OR REPLACE FUNCTION "f"() RETURNS int AS $$ SELECT 2 $$ LANGUAGE sql;', *earlier)
    assert isinstance(view, Irreversible)
    assert isinstance(function, Irreversible)
    assert "replaces a view an earlier migration created" in view.why
    assert _sql('CREATE OR REPLACE VIEW "w" AS SELECT 2;', *earlier) == ['DROP VIEW "w"']


REFUSED = {
    "drop table": ('DROP TABLE "old";', "it drops a table: what it dropped cannot be brought back"),
    "drop index": ('DROP INDEX "users_email_index";', "it drops a index: what it dropped cannot be brought back"),
    "drop column": ('ALTER TABLE "users" DROP COLUMN "phone";', "it drops a column: its values cannot be brought back"),
    "drop constraint": ('ALTER TABLE "users" DROP CONSTRAINT "c";', "it drops a constraint"),
    "data change": ('UPDATE "users" SET "points" = 1;', "it changes data, which no statement can put back"),
    "insert": ('INSERT INTO "roles" VALUES (1);', "it changes data, which no statement can put back"),
    "add enum value": ("ALTER TYPE \"mood\" ADD VALUE 'calm';", "it adds an enum value, and PostgreSQL cannot remove one"),
    "type change": ('ALTER TABLE "users" ALTER COLUMN "points" TYPE bigint;', "it changes a column's type"),
    "do block": (
        "DO $$ BEGIN CREATE TYPE \"mood\" AS ENUM ('a'); EXCEPTION WHEN duplicate_object THEN null; END $$;",
        "a DO block: what it does cannot be read, so it cannot be undone",
    ),
    "unparsable": ("THIS IS NOT SQL;", "pglast cannot parse it, so it cannot be undone"),
    "unnamed index": ('CREATE INDEX ON "users" ("email");', "an index created without a name cannot be dropped by name"),
    "grant": ('GRANT SELECT ON "users" TO "reader";', "Grant has no known inverse"),
}  # fmt: skip


SHOWN = {
    "drop table": "DROP TABLE old",
    "drop index": "DROP INDEX users_email_index",
    "drop column": "ALTER TABLE users DROP COLUMN phone",
    "drop constraint": "ALTER TABLE users DROP CONSTRAINT c",
    "data change": "UPDATE users SET points = 1",
    "insert": "INSERT INTO roles VALUES (1)",
    "add enum value": "ALTER TYPE mood ADD VALUE 'calm'",
    "type change": "ALTER TABLE users ALTER COLUMN points TYPE bigint",
    "do block": "DO $$ BEGIN CREATE TYPE \"mood\" AS ENUM ('a'); EXCEPTION WHEN duplicate_object THEN null; END $$",
    "unparsable": "-- a comment drizzle-kit keeps THIS IS NOT SQL;",
    "unnamed index": "CREATE INDEX ON users (email)",
    "grant": "GRANT SELECT ON TABLE users TO reader",
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_each_irreversible_kind_is_named(case: str) -> None:
    """A statement with no safe inverse: the migration's statement number, its text, and why."""
    text, why = REFUSED[case]
    migration = f'CREATE TABLE "first" ("id" integer);\n{BREAK}-- a comment drizzle-kit keeps\n{text}'
    found = _undo(migration)
    assert isinstance(found, Irreversible)
    assert (found.number, found.why) == (2, why)
    assert found.text == SHOWN.get(case, text)  # as PostgreSQL prints it back: no comment, one line


def test_a_down_file_is_taken_as_written_and_weighed() -> None:
    """A down file's chunks are the steps as written; DROP TABLE, TRUNCATE and DROP COLUMN get their checks."""
    up = _migration('ALTER TABLE "users" ADD COLUMN "tier" text DEFAULT \'free\';\n' + BREAK + "UPDATE x SET y = 1;")
    down = _migration(
        f'ALTER TABLE "users" DROP COLUMN "tier";\n{BREAK}DROP TABLE "public"."notes", "tags";\n{BREAK}'
        f'TRUNCATE "logs";\n{BREAK}DELETE FROM "x";'
    )
    after = History()
    after.replay(parse(up))
    found = from_down(up, down, "drizzle/0001_m.down.sql", after)
    assert found.down == "drizzle/0001_m.down.sql"
    assert [step.checks for step in found.steps] == [
        (DataCheck("values", (None, "users"), "tier", "'free'"),),
        (DataCheck("rows", ("public", "notes")), DataCheck("rows", (None, "tags"))),
        (DataCheck("rows", (None, "logs")),),
        (),
    ]
    assert found.steps[3].sql.strip() == 'DELETE FROM "x";'  # as written, newline and all
    assert from_down(up, _migration("-- nothing to undo\n"), "down.sql", after).steps == ()


def test_histories_follow_the_folder() -> None:
    """Each migration's history is what the ones before it left: the runbook's 0004 sees 0000's defaults."""
    parses = [
        parse(_migration(p.read_text(), p.stem, i)) for i, p in enumerate(sorted(EXAMPLE_MIGRATIONS.glob("*.sql")))
    ]
    found = histories(parses)
    assert found[0].defaults == {}
    assert found[4].defaults[(None, "campaigns", "updated_at")] == "now()"
    assert (None, "actions", "frequency") not in found[10].defaults
    assert found[11].defaults[(None, "actions", "frequency")] == "'once'"


# A property: drawn migrations of reversible statements, undone, leave the schema model as it was.
NAMES = st.sampled_from(["alpha", "beta", "gamma", "delta"])


@st.composite
def reversible_migrations(draw: st.DrawFn) -> tuple[str, str]:
    """(an earlier migration that makes two tables, a migration of reversible statements over them)."""
    base = (
        'CREATE TABLE "t1" ("id" serial PRIMARY KEY, "a" text, "b" integer DEFAULT 0);\n'
        + BREAK
        + 'CREATE TABLE "t2" ("id" serial PRIMARY KEY, "c" text);'
    )
    columns = {"t1": ["a", "b"], "t2": ["c"]}
    chunks = []
    for number in range(draw(st.integers(min_value=1, max_value=8))):
        kind = draw(st.sampled_from(["table", "column", "index", "unique", "type", "rename", "not null"]))
        table = draw(st.sampled_from(sorted(columns)))
        name = f"{draw(NAMES)}{number}"
        if kind == "table":
            chunks.append(f'CREATE TABLE "{name}" ("id" serial PRIMARY KEY, "{name}_x" text);')
            columns[name] = [f"{name}_x"]
        elif kind == "column":
            chunks.append(f'ALTER TABLE "{table}" ADD COLUMN "{name}" integer DEFAULT {number};')
            columns[table].append(name)
        elif kind == "index" and columns[table]:
            chunks.append(
                f'CREATE INDEX "{name}_idx" ON "{table}" USING btree ("{draw(st.sampled_from(columns[table]))}");'
            )
        elif kind == "unique" and columns[table]:
            column = draw(st.sampled_from(columns[table]))
            chunks.append(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}_uq" UNIQUE("{column}");')
        elif kind == "type":
            chunks.append(f"CREATE TYPE \"public\".\"{name}_t\" AS ENUM('x', 'y');")
        elif kind == "rename" and columns[table]:
            old = draw(st.sampled_from(columns[table]))
            chunks.append(f'ALTER TABLE "{table}" RENAME COLUMN "{old}" TO "{name}";')
            columns[table] = [name if c == old else c for c in columns[table]]
        elif kind == "not null" and columns[table]:
            chunks.append(f'ALTER TABLE "{table}" ALTER COLUMN "{draw(st.sampled_from(columns[table]))}" SET NOT NULL;')
    return base, BREAK.join(chunks) or "-- empty"


def _model(*migrations: Migration | Parsed) -> set[tuple[str, str, str, str | None]]:
    model = SchemaModel()
    for migration in migrations:
        replay_migration(model, migration)
    return {obj.key for obj in model.live}


@settings(max_examples=300, deadline=None)
@given(reversible_migrations())
def test_undoing_a_migration_leaves_the_schema_model_as_before(drawn: tuple[str, str]) -> None:
    """Replaying a migration, then its reversal, over verify's schema model gives back the model before it."""
    base_text, text = drawn
    base, migration = _migration(base_text, "0000_base", 0), _migration(text)
    history = History()
    history.replay(parse(base))
    found = computed(parse(migration), history)
    assert isinstance(found, Reversal), found
    model = SchemaModel()
    replay_migration(model, base)
    replay_migration(model, migration)
    for step in found.steps:
        (statement,) = statements_of(step.sql) or ()  # each step is one statement PostgreSQL reads
        replay(model, "reversal", statement)
    assert {obj.key for obj in model.live} == _model(base)
