"""`python -m entrypoint baseline` and BASELINE_ON_EMPTY: adopting a database drizzle-kit push made, against drizzle-orm.

The pushed database is made by the pinned drizzle-kit itself (`push --force`, no
terminal) from the example backend's schema, once per module, then cloned per test.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from entrypoint.db.lock import lock_key
from entrypoint.journal import read_journal
from harness.postgres import create_database, drop_database
from harness.production import copy_folder
from tests.drizzle_ref import EXAMPLE_MIGRATIONS, drizzle_migrate
from tests.drizzle_ref_v1 import V1_MIGRATIONS, drizzle_migrate_v1
from tests.folders import add_custom, generated_folder, push
from tests.support import REPO, assert_one_error, ledger, output_of, query, run_entrypoint, schema_dump

SCHEMA_TS = REPO / "examples" / "backend" / "src" / "db" / "schema.ts"
MIGRATIONS = read_journal(EXAMPLE_MIGRATIONS).migrations
DRIZZLE_ROWS = [(n, m.hash, m.when) for n, m in enumerate(MIGRATIONS, start=1)]
AUDIT = "SELECT reason, tag, old_id, new_id, new_hash, new_created_at FROM drizzle.__drizzle_migrations_audit ORDER BY new_id"
NO_LEDGER = "SELECT to_regclass('drizzle.__drizzle_migrations')"


@pytest.fixture(scope="module")
def pushed_template(pg_server, admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database made by drizzle-kit push from the example's schema, never migrated: no ledger at all."""
    name = "t_baseline_pushed_template"
    drop_database(admin_url, name)
    create_database(admin_url, name)
    try:
        push(pg_server.url(name), tmp_path_factory.mktemp("push") / "project", SCHEMA_TS.read_text())
        yield name
    finally:
        drop_database(admin_url, name)


@pytest.fixture
def pushed(pushed_template: str, database_factory: Callable[..., str], admin_url: str) -> str:
    """A copy of the pushed database, for one test."""
    url = database_factory()
    target = url.rsplit("/", 1)[1].split("?", maxsplit=1)[0]
    query(admin_url, f'DROP DATABASE "{target}"')
    query(admin_url, f'CREATE DATABASE "{target}" TEMPLATE "{pushed_template}"')
    return url


def test_push_then_baseline_then_both_migrators_find_nothing(pushed: str, pg_server) -> None:
    """The issue's case: migrate dies on a pushed database; baseline records all 12; then drizzle-orm and we do nothing."""
    # Without baseline, drizzle-orm's first migrate dies, and so does ours, pointing to baseline.
    theirs = drizzle_migrate(pushed, EXAMPLE_MIGRATIONS)
    assert theirs.returncode != 0
    assert "already exists" in theirs.stderr
    ours = run_entrypoint(["--", "true"], url=pushed, folder=EXAMPLE_MIGRATIONS)
    assert ours.returncode == 6, output_of(ours)
    failure = assert_one_error(output_of(ours))
    assert failure.startswith('❌ Migration failed: type "user_role" already exists (in 0000_magenta_squadron_sinister')
    assert "record what it holds with `python -m entrypoint baseline` (or set BASELINE_ON_EMPTY=1)" in failure
    assert "🏁 Starting the app" not in ours.stdout

    result = run_entrypoint(["baseline"], url=pushed, folder=EXAMPLE_MIGRATIONS)
    assert result.returncode == 0, output_of(result)
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "📌 Baseline: drizzle.__drizzle_migrations is empty; holding each migration of "
        f"{EXAMPLE_MIGRATIONS} against the schema"
    )
    assert lines[1] == "   ✔ 0000_magenta_squadron_sinister: 2 tables, 15 columns, 1 enum type, 2 constraints present"
    assert "   ✔ 0005_even_ender_wiggin: 2 columns it renames or drops gone" in lines
    assert lines[12] == "   ✔ 0011_performance_indexes: 43 indexes present"
    assert lines[-1] == (
        "✅ Baseline recorded: 12 migrations marked applied in drizzle.__drizzle_migrations, through "
        "0011_performance_indexes (copied to drizzle.__drizzle_migrations_audit, reason baseline)"
    )
    assert ledger(pushed) == DRIZZLE_ROWS  # exactly drizzle-orm's rows on a fresh ledger
    audit = query(pushed, AUDIT)
    assert audit == [("baseline", m.tag, None, n, m.hash, m.when) for n, m in enumerate(MIGRATIONS, start=1)]
    before = schema_dump(pg_server.bin("pg_dump"), pushed)

    again = drizzle_migrate(pushed, EXAMPLE_MIGRATIONS)
    assert again.returncode == 0, again.stderr
    deploy = run_entrypoint(["--", "true"], url=pushed, folder=EXAMPLE_MIGRATIONS)
    assert deploy.returncode == 0, output_of(deploy)
    assert "💤 No pending migrations (12 already applied)" in deploy.stdout
    assert ledger(pushed) == DRIZZLE_ROWS
    assert schema_dump(pg_server.bin("pg_dump"), pushed) == before  # nothing was applied by anyone
    verified = run_entrypoint(["verify"], url=pushed, folder=EXAMPLE_MIGRATIONS)
    assert verified.returncode == 0, output_of(verified)


def test_one_table_missing_baselines_up_to_the_migration_before_it(pushed: str) -> None:
    """Without daily_bonuses (0008's table), 0000-0007 are recorded and 0008 is reported with what is missing."""
    query(pushed, "DROP TABLE daily_bonuses")
    result = run_entrypoint(["baseline"], url=pushed, folder=EXAMPLE_MIGRATIONS)
    assert result.returncode == 0, output_of(result)
    lines = result.stdout.splitlines()
    stop = lines.index("   ✘ 0008_brave_songbird: not recorded, 9 schema objects missing:")
    assert lines[stop + 1] == "      missing: Table public.daily_bonuses"
    assert "      missing: Constraint public.daily_bonuses_user_id_users_id_fk on public.daily_bonuses" in lines
    # 0009-0011's columns, enum and indexes are there (push made them): the next deploy would fail on them.
    assert (
        "   ⚠️  Not recorded: 4 migrations from 0008_brave_songbird on, but what they create is partly there already "
        "(43 objects), so the next deploy would fail on it (already exists): create what is missing (listed above) "
        "and run baseline again, or drop these first:"
    ) in lines
    assert "      already there: Column public.user_actions.proof_url (from 0009_daily_chat)" in lines
    assert lines[-1].startswith("✅ Baseline recorded: 8 migrations marked applied")
    assert ledger(pushed) == DRIZZLE_ROWS[:8]
    # drizzle-orm reads the ledger the same way: 0008 is the first it would run.
    status = json.loads(run_entrypoint(["status", "--json"], url=pushed, folder=EXAMPLE_MIGRATIONS).stdout)
    assert [e["state"] for e in status["entries"]] == ["applied"] * 8 + ["pending"] * 4


def test_a_database_built_by_drizzle_without_its_ledger(
    database_url: str, database_factory: Callable[..., str], tmp_path: Path, pg_server
) -> None:
    """A database migrated through 0007 whose ledger was lost: baseline finds 0000-0007, the deploy applies the rest.

    The result is drizzle-orm's own fresh apply: the same schema and the same ledger.
    """
    release = copy_folder(EXAMPLE_MIGRATIONS, tmp_path / "release-0007", keep=8)
    assert drizzle_migrate(database_url, release).returncode == 0
    query(database_url, "DROP SCHEMA drizzle CASCADE")

    result = run_entrypoint(["baseline"], url=database_url, folder=EXAMPLE_MIGRATIONS)
    assert result.returncode == 0, output_of(result)
    assert ledger(database_url) == DRIZZLE_ROWS[:8]
    deploy = run_entrypoint([], url=database_url, folder=EXAMPLE_MIGRATIONS)
    assert deploy.returncode == 0, output_of(deploy)
    applied = [line.split()[1] for line in deploy.stdout.splitlines() if line.startswith("   ✔ ")]
    assert applied == [m.tag for m in MIGRATIONS[8:]]
    assert ledger(database_url) == DRIZZLE_ROWS
    reference = database_factory()
    assert drizzle_migrate(reference, EXAMPLE_MIGRATIONS).returncode == 0
    query(database_url, "DROP TABLE drizzle.__drizzle_migrations_audit")  # ours alone: the README says drop it at will
    pg_dump = pg_server.bin("pg_dump")
    assert schema_dump(pg_dump, database_url) == schema_dump(pg_dump, reference)


def test_dry_run_changes_nothing(pushed: str, pg_server) -> None:
    """--dry-run prints what would be recorded and why, takes no lock, creates no ledger."""
    before = schema_dump(pg_server.bin("pg_dump"), pushed)
    result = run_entrypoint(["baseline", "--dry-run"], url=pushed, folder=EXAMPLE_MIGRATIONS)
    assert result.returncode == 0, output_of(result)
    lines = result.stdout.splitlines()
    assert lines[0] == "🔍 Dry run: nothing will be changed and no app will be started"
    assert lines[1].startswith("📌 Baseline: drizzle.__drizzle_migrations does not exist yet;")
    assert lines[-1] == (
        "🔍 Dry run: 12 migrations would be marked applied in drizzle.__drizzle_migrations, through "
        "0011_performance_indexes; nothing was changed"
    )
    assert query(pushed, NO_LEDGER) == [(None,)]
    assert schema_dump(pg_server.bin("pg_dump"), pushed) == before


def test_through_stops_earlier(pushed: str) -> None:
    """--through names the last migration to record; a tag that is not in the folder is a usage error (exit 2)."""
    query(pushed, "DROP TABLE daily_bonuses")  # the database as of 0007, plus later columns and indexes elsewhere
    result = run_entrypoint(["baseline", "--through", "0006_rare_big_bertha"], url=pushed, folder=EXAMPLE_MIGRATIONS)
    assert result.returncode == 0, output_of(result)
    assert "   ⏹  Stopping after 0006_rare_big_bertha (--through)" in result.stdout.splitlines()
    assert ledger(pushed) == DRIZZLE_ROWS[:7]

    unknown = run_entrypoint(["baseline", "--through", "0099_nope"], url=pushed, folder=EXAMPLE_MIGRATIONS)
    assert unknown.returncode == 2, output_of(unknown)
    assert assert_one_error(output_of(unknown)) == (
        f"❌ --through 0099_nope is not a migration of {EXAMPLE_MIGRATIONS}: name one of its tags, "
        "e.g. 0011_performance_indexes"
    )


def test_a_ledger_with_rows_is_refused(database_url: str) -> None:
    """A ledger with rows is the sync's job: exit 17, one ❌ line, the ledger untouched, no audit table."""
    assert drizzle_migrate(database_url, EXAMPLE_MIGRATIONS).returncode == 0
    result = run_entrypoint(["baseline"], url=database_url, folder=EXAMPLE_MIGRATIONS)
    assert result.returncode == 17, output_of(result)
    assert assert_one_error(output_of(result)) == (
        "❌ Baseline refused: drizzle.__drizzle_migrations already has 12 rows, and baseline adopts only a "
        "database no migration was ever recorded for. Nothing was changed; the deploy's ledger sync repairs a "
        "ledger with rows (`python -m entrypoint status` shows where it stands)"
    )
    assert ledger(database_url) == DRIZZLE_ROWS
    assert query(database_url, "SELECT to_regclass('drizzle.__drizzle_migrations_audit')") == [(None,)]


def test_a_new_database_has_nothing_to_record(database_url: str) -> None:
    """An empty database: exit 18 and one ❌ line saying to deploy as usual; no ledger created."""
    result = run_entrypoint(["baseline"], url=database_url, folder=EXAMPLE_MIGRATIONS)
    assert result.returncode == 18, output_of(result)
    error = assert_one_error(output_of(result))
    assert error == (
        "❌ Nothing recorded: none of 0000_magenta_squadron_sinister's schema objects exist: the database looks new, "
        "so deploy as usual to create them. Nothing was changed"
    )
    assert query(database_url, NO_LEDGER) == [(None,)]


def test_baseline_waits_for_the_migration_lock(pushed: str) -> None:
    """Baseline takes the deploy's lock: while another session holds it, it gives up after LOCK_WAIT_TIMEOUT (5)."""
    with psycopg.connect(pushed, autocommit=True) as holder:
        key = lock_key(holder.info.dbname, "drizzle", "__drizzle_migrations")
        holder.execute("SELECT pg_advisory_lock(%s)", (key,))
        result = run_entrypoint(["baseline"], url=pushed, folder=EXAMPLE_MIGRATIONS, LOCK_WAIT_TIMEOUT="1")
    assert result.returncode == 5, output_of(result)
    assert_one_error(output_of(result))
    assert query(pushed, NO_LEDGER) == [(None,)]


def test_a_data_migration_stops_the_prefix_unless_through_covers_it(database_url: str, tmp_path: Path) -> None:
    """A seed migration cannot be proven (push never runs it): baseline stops before it; --through records it."""
    folder = generated_folder(tmp_path / "project", [])
    seed = add_custom(tmp_path / "project", "seed", "INSERT INTO users (email) VALUES ('admin@example.com');")
    assert drizzle_migrate(database_url, folder).returncode == 0
    query(database_url, "DROP SCHEMA drizzle CASCADE")
    stopped = run_entrypoint(["baseline"], url=database_url, folder=folder)
    assert stopped.returncode == 0, output_of(stopped)
    assert (
        f"   ⏸  {seed.stem}: not recorded: it creates, renames or drops no table, column, index, enum or constraint "
        "(data, functions, DO blocks…), so nothing shows whether it ran (drizzle-kit push never runs it). If it "
        f"did, rerun with --through {seed.stem} or a later tag"
    ) in stopped.stdout.splitlines()
    assert len(ledger(database_url)) == 1

    query(database_url, "DROP SCHEMA drizzle CASCADE")
    vouched = run_entrypoint(["baseline", "--through", seed.stem], url=database_url, folder=folder)
    assert vouched.returncode == 0, output_of(vouched)
    assert any(line.startswith(f"   ✔ {seed.stem}: it creates") for line in vouched.stdout.splitlines())
    rows = ledger(database_url)
    assert len(rows) == 2
    again = drizzle_migrate(database_url, folder)
    assert again.returncode == 0, again.stderr
    assert ledger(database_url) == rows
    assert query(database_url, "SELECT count(*) FROM users") == [(1,)]  # the seed did not run twice


def test_a_v1_folder_is_recorded_with_names(database_url: str) -> None:
    """drizzle-kit 1.0 folders: rows get the folder's name, and drizzle-orm 1.0 then finds nothing to do.

    The second run finds an empty 0.45 ledger: it gets drizzle-orm 1.0's columns first.
    """
    assert drizzle_migrate_v1(database_url, V1_MIGRATIONS).returncode == 0
    theirs = query(database_url, "SELECT hash, created_at, name FROM drizzle.__drizzle_migrations ORDER BY id")
    query(database_url, "DROP SCHEMA drizzle CASCADE")
    last = theirs[-1][2]
    stopped = run_entrypoint(["baseline"], url=database_url, folder=V1_MIGRATIONS)
    assert stopped.returncode == 0, output_of(stopped)
    assert any(line.startswith("   ⏸  20261125230007_seed_roles: not recorded") for line in stopped.stdout.splitlines())
    # This time an empty 0.45 ledger is left behind: it gets drizzle-orm 1.0's columns.
    query(database_url, "DROP SCHEMA drizzle CASCADE")
    query(database_url, "CREATE SCHEMA drizzle")
    query(
        database_url,
        "CREATE TABLE drizzle.__drizzle_migrations (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint)",
    )

    result = run_entrypoint(["baseline", "--through", last], url=database_url, folder=V1_MIGRATIONS)
    assert result.returncode == 0, output_of(result)
    ours = query(database_url, "SELECT hash, created_at, name FROM drizzle.__drizzle_migrations ORDER BY id")
    assert ours == theirs
    again = drizzle_migrate_v1(database_url, V1_MIGRATIONS)
    assert again.returncode == 0, again.stderr
    assert query(database_url, "SELECT hash, created_at, name FROM drizzle.__drizzle_migrations ORDER BY id") == ours


def test_baseline_on_empty_lets_the_deploy_adopt_a_pushed_database(pushed: str) -> None:
    """BASELINE_ON_EMPTY=1: the deploy records what push made, then finds nothing pending and execs the app."""
    result = run_entrypoint(["--", "true"], url=pushed, folder=EXAMPLE_MIGRATIONS, BASELINE_ON_EMPTY="1")
    assert result.returncode == 0, output_of(result)
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "📌 BASELINE_ON_EMPTY: drizzle.__drizzle_migrations does not exist yet but objects of "
        "0000_magenta_squadron_sinister already exist (drizzle-kit push?): recording the migrations the schema proves"
    )
    recorded = lines.index(
        "✅ Baseline recorded: 12 migrations marked applied in drizzle.__drizzle_migrations, through "
        "0011_performance_indexes (copied to drizzle.__drizzle_migrations_audit, reason baseline)"
    )
    # The plan is shown first; the restore point is taken before the baseline, this deploy's first write.
    restore_point = next(i for i, line in enumerate(lines) if line.startswith("📍 Restore point: "))
    assert restore_point < recorded < lines.index("🔄 Synchronisation des migrations...")
    assert "💤 No pending migrations (12 already applied)" in lines
    assert lines[-1] == "🏁 Starting the app: true"
    assert ledger(pushed) == DRIZZLE_ROWS
    assert drizzle_migrate(pushed, EXAMPLE_MIGRATIONS).returncode == 0
    assert ledger(pushed) == DRIZZLE_ROWS


def test_baseline_on_empty_dry_run_plans_against_the_baseline(pushed: str) -> None:
    """A dry run with BASELINE_ON_EMPTY shows the baseline, then plans as if it were written: nothing to apply."""
    result = run_entrypoint(["--dry-run"], url=pushed, folder=EXAMPLE_MIGRATIONS, BASELINE_ON_EMPTY="1")
    assert result.returncode == 0, output_of(result)
    assert "🔍 Dry run complete: 0 migrations would be applied" in result.stdout.splitlines()
    assert query(pushed, NO_LEDGER) == [(None,)]


def test_baseline_on_empty_leaves_a_new_database_to_the_deploy(database_url: str) -> None:
    """On an empty database BASELINE_ON_EMPTY changes nothing: the deploy applies everything as usual."""
    result = run_entrypoint([], url=database_url, folder=EXAMPLE_MIGRATIONS, BASELINE_ON_EMPTY="1")
    assert result.returncode == 0, output_of(result)
    assert "📌" not in result.stdout
    assert result.stdout.count("   ✔ ") == len(MIGRATIONS)


def test_baseline_on_empty_refuses_a_half_built_first_migration(pushed: str) -> None:
    """Objects of 0000 exist but not all: the deploy stops with exit 18 before writing anything."""
    query(pushed, "DROP TABLE campaigns CASCADE")
    result = run_entrypoint(["--", "true"], url=pushed, folder=EXAMPLE_MIGRATIONS, BASELINE_ON_EMPTY="1")
    assert result.returncode == 18, output_of(result)
    error = assert_one_error(output_of(result))
    assert error.startswith("❌ Nothing recorded: 0000_magenta_squadron_sinister's schema is only partly there")
    assert query(pushed, NO_LEDGER) == [(None,)]
    assert "🏁 Starting the app" not in result.stdout


def test_a_write_the_database_refuses_rolls_back_with_exit_16(pushed: str, admin_url: str) -> None:
    """A user who may read but not create the ledger: exit 16, one ❌ line naming the grant, nothing recorded."""
    dbname = pushed.rsplit("/", 1)[1].split("?", maxsplit=1)[0]
    role = f"reader_{dbname[-8:]}"
    query(admin_url, f"CREATE ROLE {role} LOGIN PASSWORD 'r3ad:er@pw/?'")
    try:
        query(pushed, f"GRANT USAGE ON SCHEMA public TO {role}")
        base = pushed.split("@", 1)[1]
        limited = f"postgresql://{role}:r3ad%3Aer%40pw%2F%3F@{base}"
        result = run_entrypoint(["baseline"], url=limited, folder=EXAMPLE_MIGRATIONS)
        assert result.returncode == 16, output_of(result)
        error = assert_one_error(output_of(result))
        assert error.startswith(
            "❌ The ledger drizzle.__drizzle_migrations does not exist yet and this user cannot create it: "
            "permission denied for database"
        )
        assert f"Grant it CREATE on database {dbname}" in error
        assert error.endswith("nothing was changed")
        assert query(pushed, NO_LEDGER) == [(None,)]
    finally:
        query(pushed, f"DROP OWNED BY {role}")
        query(admin_url, f"DROP ROLE {role}")


def test_help_lists_its_settings_and_exit_codes() -> None:
    """`baseline --help` comes from the settings table: its flags, and its own exit codes with their meanings."""
    result = run_entrypoint(["baseline", "--help"], url=None)
    assert result.returncode == 0, output_of(result)
    for word in ("--through TAG", "--dry-run", "LOCK_WAIT_TIMEOUT", "16", "17", "18", "reason `baseline`"):
        assert word in result.stdout, word
    for word in ("--json", "DDL_LOCK_TIMEOUT", "--guard"):
        assert word not in result.stdout, word
    # The codes as the exit-code table's own rows, not digits found anywhere.
    rows = result.stdout.splitlines()
    for code in (16, 17, 18):
        assert any(row.startswith(f"  {code:<4} ") for row in rows), code


def test_baseline_on_empty_writes_nothing_when_the_backup_fails(database_url: str, tmp_path: Path, pg_server) -> None:
    """The baseline is a write like any other: a backup that fails before it leaves no ledger behind (exit 15)."""
    folder = generated_folder(tmp_path / "project", [])
    add_custom(tmp_path / "project", "seed", "INSERT INTO users (email) VALUES ('admin@example.com');")
    assert drizzle_migrate(database_url, folder).returncode == 0
    query(database_url, "DROP SCHEMA drizzle CASCADE")  # as push leaves it: the schema, no ledger
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the backup folder should be")
    result = run_entrypoint(
        ["--", "true"],
        url=database_url,
        folder=folder,
        BASELINE_ON_EMPTY="1",
        BACKUP_DIR=str(blocker / "backups"),
        PG_DUMP=str(pg_server.bin("pg_dump")),
    )
    out = output_of(result)
    assert result.returncode == 15, out
    assert "📌 BASELINE_ON_EMPTY" in out  # the plan was shown, then nothing of it written
    assert_one_error(out)
    assert "Baseline recorded" not in out
    assert query(database_url, NO_LEDGER) == [(None,)]
    assert query(database_url, "SELECT count(*) FROM users") == [(1,)]
    assert "🏁 Starting the app" not in result.stdout
