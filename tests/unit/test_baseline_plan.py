"""The baseline planner: which prefix of a journal a catalog proves, held on real SQL and on generated histories.

Generated histories are journals of small migrations (create, add, rename, drop,
index, and data statements the model cannot see) over a few tables. The truth is
a prefix length k; the catalog is what the schema model says migrations 1..k
leave, plus noise. Whatever the catalog, the planner must only record a prefix
the catalog holds and never pass an unprovable migration on its own; given the
truth's exact catalog it must find the truth (or a later prefix that leaves the
very same schema); and `--through` naming the truth records exactly it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from entrypoint.core.baseline_plan import (
    COMPLETE,
    MISSING,
    THROUGH,
    UNPROVEN,
    BaselinePlan,
    Key,
    evidence,
    first_holds_any,
    ledger_after,
    plan_baseline,
)
from entrypoint.core.model import Migration
from entrypoint.core.schema import SchemaModel, replay_migration
from entrypoint.journal import read_journal

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "backend" / "drizzle"


def _migration(position: int, *statements: str) -> Migration:
    digest = hashlib.sha256("\n".join(statements).encode() + bytes([position])).hexdigest()
    return Migration(
        idx=position,
        tag=f"{position:04d}_m",
        when=1_700_000_000_000 + position,
        hash=digest,
        statements=tuple(s.encode() for s in statements),
    )


def state_after(migrations: list[Migration] | tuple[Migration, ...]) -> set[Key]:
    """The catalog keys the model says these migrations leave (a database built by them, as far as it can tell)."""
    model = SchemaModel()
    for migration in migrations:
        replay_migration(model, migration)
    return {obj.key for obj in model.live}


def _holds(plan: BaselinePlan, catalog: set[Key]) -> None:
    """The recorded prefix leaves only objects the catalog has, and nothing it renamed or dropped is still there."""
    if plan.record:
        last = plan.evidence[len(plan.record) - 1]
        assert last.present
        assert state_after(plan.record) <= catalog


# --------------------------------------------------------------------------
# Real drizzle-kit SQL: the example backend's twelve migrations.


@pytest.fixture(scope="module")
def example() -> tuple[Migration, ...]:
    return read_journal(EXAMPLE).migrations


def test_a_pushed_schema_proves_the_whole_journal(example: tuple[Migration, ...]) -> None:
    """The schema the whole folder leaves (as drizzle-kit push makes it) records all twelve migrations."""
    plan = plan_baseline(example, state_after(example))
    assert plan.record == example
    assert plan.stop == COMPLETE
    assert plan.next is None
    assert [e.checkable for e in plan.evidence] == [True] * 12


def test_a_rename_is_proven_by_the_old_name_being_gone(example: tuple[Migration, ...]) -> None:
    """0005 only renames two columns: its evidence is those columns' old names gone, and the prefix passes it."""
    plan = plan_baseline(example, state_after(example))
    rename = plan.evidence[5]
    assert rename.created == ()
    assert sorted(o.describe() for o in rename.removed) == ["public.campaigns.title", "public.user_actions.score"]


def test_one_table_missing_stops_before_its_migration(example: tuple[Migration, ...]) -> None:
    """Without daily_bonuses (0008's table, and so its columns and constraints), 0000-0007 are recorded, no more."""
    catalog = {key for key in state_after(example) if "daily_bonuses" not in (key[2], key[3])}
    plan = plan_baseline(example, catalog)
    assert [m.tag for m in plan.record] == [m.tag for m in example[:8]]
    assert plan.stop == MISSING
    assert plan.next is not None
    assert plan.next.migration.tag == "0008_brave_songbird"
    assert ("table", "public", "daily_bonuses", None) in {o.key for o in plan.next.missing}
    _holds(plan, catalog)


def test_an_older_schema_is_proven_up_to_its_own_migration(example: tuple[Migration, ...]) -> None:
    """A database made from the schema as of 0004 records 0000-0004: 0005's rename is not done there."""
    catalog = state_after(example[:5])
    plan = plan_baseline(example, catalog)
    assert len(plan.record) == 5
    assert plan.stop == MISSING
    assert plan.next is not None
    assert {o.describe() for o in plan.next.missing} == {"public.campaigns.name", "public.user_actions.points"}
    assert {o.describe() for o in plan.next.lingering} == {"public.campaigns.title", "public.user_actions.score"}


def test_an_empty_database_proves_nothing(example: tuple[Migration, ...]) -> None:
    """No objects at all: nothing is recorded, and the first migration is what is missing."""
    plan = plan_baseline(example, set())
    assert plan.record == ()
    assert plan.stop == MISSING
    assert not first_holds_any(plan.evidence)
    assert first_holds_any(plan_baseline(example, state_after(example[:1])).evidence)


def test_through_caps_the_prefix(example: tuple[Migration, ...]) -> None:
    """--through stops at its tag though later migrations are there too; an unknown tag is a ValueError."""
    plan = plan_baseline(example, state_after(example[:8]), through="0006_rare_big_bertha")
    assert [m.tag for m in plan.record] == [m.tag for m in example[:7]]
    assert plan.stop == THROUGH


def test_through_never_records_a_schema_the_database_has_moved_past(example: tuple[Migration, ...]) -> None:
    """On the whole pushed schema, --through 0003 records nothing: the database is past 0003's schema (0005 renamed)."""
    plan = plan_baseline(example, state_after(example), through="0003_loose_shocker")
    assert plan.record == ()
    assert plan.stop == MISSING
    with pytest.raises(ValueError, match="0099_nope"):
        plan_baseline(example, set(), through="0099_nope")


# --------------------------------------------------------------------------
# Migrations nothing can be checked for.


def test_a_data_migration_stops_the_prefix_unless_through_covers_it() -> None:
    """An INSERT-only migration cannot be proven (push never runs it): the prefix stops before it, --through passes it."""
    migrations = [
        _migration(0, 'CREATE TABLE "roles" ("id" integer, "name" text)'),
        _migration(1, "INSERT INTO roles VALUES (1, 'admin')"),
        _migration(2, 'ALTER TABLE "roles" ADD COLUMN "label" text'),
    ]
    catalog = state_after(migrations)
    plan = plan_baseline(migrations, catalog)
    assert [m.tag for m in plan.record] == ["0000_m"]
    assert plan.stop == UNPROVEN
    assert plan.next is not None
    assert not plan.next.checkable
    vouched = plan_baseline(migrations, catalog, through="0002_m")
    assert len(vouched.record) == 3
    assert vouched.stop == COMPLETE
    assert [m.tag for m in vouched.vouched] == ["0001_m"]


def test_a_statement_pglast_cannot_parse_makes_a_migration_unprovable() -> None:
    """A migration with an unparsable statement may do anything: it is not checkable, even if it also creates."""
    migrations = [
        _migration(0, 'CREATE TABLE "a" ("id" integer)', "THIS IS NOT SQL"),
    ]
    plan = plan_baseline(migrations, state_after(migrations))
    assert plan.record == ()
    assert plan.stop == UNPROVEN
    assert plan.evidence[0].unparsed == 1


def test_a_drop_not_done_is_not_recorded() -> None:
    """A migration that only drops a column is proven by its absence: while the column is there, it is not recorded."""
    migrations = [
        _migration(0, 'CREATE TABLE "users" ("id" integer, "phone" text)'),
        _migration(1, 'ALTER TABLE "users" DROP COLUMN "phone"'),
    ]
    before = state_after(migrations[:1])
    plan = plan_baseline(migrations, before)
    assert [m.tag for m in plan.record] == ["0000_m"]
    assert plan.next is not None
    assert [o.describe() for o in plan.next.lingering] == ["public.users.phone"]
    assert len(plan_baseline(migrations, state_after(migrations)).record) == 2


def test_ledger_after_numbers_from_one_and_names_for_v1() -> None:
    """A dry run plans against rows 1..k with each migration's hash and `when`, and its name on a 1.0 folder."""
    migrations = [_migration(0, "SELECT 1"), _migration(1, "SELECT 2")]
    rows = ledger_after(migrations, name_keyed=True)
    assert [(r.id, r.hash, r.created_at, r.name) for r in rows] == [
        (1, migrations[0].hash, migrations[0].when, "0000_m"),
        (2, migrations[1].hash, migrations[1].when, "0001_m"),
    ]
    assert {r.name for r in ledger_after(migrations, name_keyed=False)} == {None}


# --------------------------------------------------------------------------
# Generated histories.

TABLES = ("alpha", "beta", "gamma")


@st.composite
def histories(draw: st.DrawFn) -> list[Migration]:
    """A journal of 1-8 small valid migrations over three tables, some of them data-only."""
    tables: dict[str, list[str]] = {}
    counter = [0]

    def fresh(prefix: str) -> str:
        counter[0] += 1
        return f"{prefix}{counter[0]}"

    migrations = []
    for position in range(draw(st.integers(min_value=1, max_value=8))):
        statements = []
        for _ in range(draw(st.integers(min_value=1, max_value=3))):
            free = [t for t in TABLES if t not in tables]
            choices = (
                ["data"] + (["create"] if free else []) + (["add", "rename", "drop", "index", "kill"] * bool(tables))
            )
            action = draw(st.sampled_from(choices))
            table = draw(st.sampled_from(sorted(tables))) if tables and action != "create" else None
            if action == "create":
                name = draw(st.sampled_from(free))
                tables[name] = [fresh("c")]
                statements.append(f'CREATE TABLE "{name}" ("{tables[name][0]}" integer)')
            elif action == "add" and table:
                column = fresh("c")
                tables[table].append(column)
                statements.append(f'ALTER TABLE "{table}" ADD COLUMN "{column}" integer')
            elif action == "rename" and table and tables[table]:
                old, new = tables[table][-1], fresh("r")
                tables[table][-1] = new
                statements.append(f'ALTER TABLE "{table}" RENAME COLUMN "{old}" TO "{new}"')
            elif action == "drop" and table and len(tables[table]) > 1:
                statements.append(f'ALTER TABLE "{table}" DROP COLUMN "{tables[table].pop()}"')
            elif action == "index" and table and tables[table]:
                statements.append(f'CREATE INDEX "{fresh("i")}" ON "{table}" ("{tables[table][0]}")')
            elif action == "kill" and table:
                del tables[table]
                statements.append(f'DROP TABLE "{table}"')
            else:
                statements.append("UPDATE pg_class SET relname = relname WHERE false")  # data: nothing to see
        migrations.append(_migration(position, *statements))
    return migrations


NOISE: set[Key] = {("table", "public", "unrelated", None), ("column", "public", "note", "unrelated")}


@settings(max_examples=120, deadline=None)
@given(histories(), st.data())
def test_whatever_the_catalog_only_a_held_prefix_is_recorded(migrations: list[Migration], data: st.DataObject) -> None:
    """Any catalog (a random part of some state, plus noise): the recorded prefix is held, never past an unproven one."""
    truth = data.draw(st.integers(min_value=0, max_value=len(migrations)))
    every = sorted(state_after(migrations[:truth]) | state_after(migrations), key=str)
    catalog = set(data.draw(st.lists(st.sampled_from(every), unique=True))) if every else set()
    plan = plan_baseline(migrations, catalog | NOISE)
    _holds(plan, catalog | NOISE)
    assert all(e.checkable for e in plan.evidence[: len(plan.record)])
    assert plan.record == tuple(migrations[: len(plan.record)])


@settings(max_examples=120, deadline=None)
@given(histories(), st.data())
def test_the_exact_schema_of_a_prefix_is_found(migrations: list[Migration], data: st.DataObject) -> None:
    """A database built by migrations 1..k: baseline records k (or more, leaving the same schema), unless blocked."""
    truth = data.draw(st.integers(min_value=0, max_value=len(migrations)))
    catalog = state_after(migrations[:truth]) | NOISE
    plan = plan_baseline(migrations, catalog)
    _holds(plan, catalog)
    found = evidence(migrations, catalog)
    blocked = next((i for i, e in enumerate(found) if not e.checkable), len(found))
    if blocked >= truth:
        assert len(plan.record) >= truth
        assert state_after(plan.record) == state_after(migrations[:truth])
    else:
        assert len(plan.record) <= blocked
        assert plan.stop in {UNPROVEN, MISSING}


@settings(max_examples=80, deadline=None)
@given(histories(), st.data())
def test_through_the_truth_records_exactly_it(migrations: list[Migration], data: st.DataObject) -> None:
    """--through naming the last migration really applied records exactly 1..k, unprovable ones included."""
    truth = data.draw(st.integers(min_value=1, max_value=len(migrations)))
    catalog = state_after(migrations[:truth]) | NOISE
    plan = plan_baseline(migrations, catalog, through=migrations[truth - 1].tag)
    assert len(plan.record) == truth
    assert plan.stop in {COMPLETE, THROUGH}
