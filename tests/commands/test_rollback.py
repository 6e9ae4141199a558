"""`rollback`: the runbook's "Rollback des Indexes Uniquement" as one command, held against drizzle-orm.

On the runbook's production database, deploy 0011 (43 indexes), then
`rollback --to 0010_perpetual_magneto --yes`: the indexes go (CONCURRENTLY on the
table over INDEX_BUILD_THRESHOLD), the ledger row goes, the users stay, and the
database is then exactly what drizzle-orm leaves after applying 0000-0010 (schema
dump, ledger hashes and dates); drizzle-orm then applies 0011 again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.production import FBOS, MANAGERS, copy_folder
from tests.drizzle_ref import EXAMPLE_MIGRATIONS, drizzle_migrate
from tests.support import (
    assert_one_error,
    assert_untouched,
    error_lines,
    ledger,
    output_of,
    query,
    run_entrypoint,
    schema_dump,
)

AUDIT = "drizzle.__drizzle_migrations_audit"
ROLES = "SELECT role, count(*) FROM users GROUP BY role ORDER BY role"
IDX = "SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'idx\\_%'"
SIZES = (
    "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = 'public' AND c.relkind = 'r'"
)


def _threshold(url: str) -> int:
    """An INDEX_BUILD_THRESHOLD that makes `users` (68 rows) a large table and every other one a small table."""
    sizes = dict(query(url, SIZES))
    users = sizes.pop("users")
    assert users > max(sizes.values()), sizes
    return int(users)


def test_the_runbooks_third_option_is_one_command(
    production_db: str, database_factory: Any, tmp_path: Path, pg_server: Any
) -> None:
    """0011 deployed then rolled back: what drizzle-orm leaves after 0000-0010, the users kept; 0011 re-applies."""
    deployed = run_entrypoint([], url=production_db, folder=EXAMPLE_MIGRATIONS)
    assert deployed.returncode == 0, output_of(deployed)
    assert query(production_db, IDX) == [(43,)]
    threshold = _threshold(production_db)

    result = run_entrypoint(
        ["rollback", "--to", "0010_perpetual_magneto", "--yes"],
        url=production_db,
        folder=EXAMPLE_MIGRATIONS,
        INDEX_BUILD_THRESHOLD=str(threshold),
    )
    out = output_of(result)
    assert result.returncode == 0, out
    assert error_lines(out) == []
    lines = out.splitlines()
    assert lines[0].startswith("↩️  Rollback of ")
    assert "1 migrations to reverse, newest first, back to 0010_perpetual_magneto" in lines[0]
    assert "↩️  0011_performance_indexes: 43 reversing statements, computed from its 43 statements, run outside" in out
    concurrently = [line for line in lines if line.startswith("   ↩ ") and "DROP INDEX CONCURRENTLY" in line]
    assert concurrently, out
    assert all('"idx_users_' in line for line in concurrently)
    assert any('DROP INDEX IF EXISTS "idx_actions_' in line for line in lines)
    assert any(line.startswith("📍 Restore point: ") for line in lines)
    assert any(line.startswith("   ↩ 0011_performance_indexes reversed (43 statements, ") for line in lines)
    assert lines[-1].startswith("✅ Rolled back 1 migrations (0011_performance_indexes): pending again")

    assert query(production_db, IDX) == [(0,)]
    assert query(production_db, ROLES) == [("manager", MANAGERS), ("fbo", FBOS)]
    ours = ledger(production_db)
    assert [row[0] for row in ours] == list(range(11))
    audited = query(production_db, f"SELECT tag, old_id, new_id FROM {AUDIT} WHERE reason = 'rollback'")
    assert audited == [("0011_performance_indexes", 11, None)]

    theirs = database_factory()
    release = copy_folder(EXAMPLE_MIGRATIONS, tmp_path / "previous-release", keep=11)
    assert drizzle_migrate(theirs, release).returncode == 0
    pg_dump = pg_server.bin("pg_dump")
    assert schema_dump(pg_dump, production_db, exclude=[AUDIT]) == schema_dump(pg_dump, theirs)
    assert [(h, c) for _, h, c in ours] == [(h, c) for _, h, c in ledger(theirs)]

    again = drizzle_migrate(production_db, EXAMPLE_MIGRATIONS)  # drizzle-orm sees 0011 pending again
    assert again.returncode == 0, again.stderr
    assert query(production_db, IDX) == [(43,)]
    assert [row[0] for row in ledger(production_db)] == list(range(12))  # no gap: the sequence was set back
    verified = run_entrypoint(["verify"], url=production_db, folder=EXAMPLE_MIGRATIONS)
    assert verified.returncode == 0, output_of(verified)


def test_the_dry_run_prints_every_statement_and_changes_nothing(production_db: str, pg_server: Any) -> None:
    """--dry-run: each migration, each reversing statement with its lock and table size; nothing changed, no ask."""
    assert run_entrypoint([], url=production_db, folder=EXAMPLE_MIGRATIONS).returncode == 0
    with assert_untouched(production_db, pg_server.bin("pg_dump"), data=True):
        result = run_entrypoint(["rollback", "--last", "2", "--dry-run"], url=production_db, folder=EXAMPLE_MIGRATIONS)
    out = output_of(result)
    assert result.returncode == 0, out
    lines = out.splitlines()
    steps = [line for line in lines if line.startswith("   ↩ ")]
    assert len(steps) == 43 + 5
    assert steps[43].startswith(
        '   ↩ 1/5 ALTER TABLE "user_actions" DROP CONSTRAINT "user_actions_validated_by_users_id_fk" — ACCESS '
        "EXCLUSIVE on user_actions (~"
    )
    assert steps[0].startswith('   ↩ 1/43 DROP INDEX IF EXISTS "idx_')
    assert (
        "↩️  0010_perpetual_magneto: 5 reversing statements, computed from its 5 statements, run in one transaction"
        in lines
    )
    assert lines[-1] == "🔍 Dry run: 2 migrations would be reversed; nothing was changed"
    assert not any(line.startswith("📍") for line in lines)


def test_nothing_to_roll_back_is_success(production_db: str, pg_server: Any) -> None:
    """--to the newest applied migration: nothing to reverse, exit 0, nothing changed."""
    assert run_entrypoint([], url=production_db, folder=EXAMPLE_MIGRATIONS).returncode == 0
    with assert_untouched(production_db, pg_server.bin("pg_dump"), data=True):
        result = run_entrypoint(
            ["rollback", "--to", "0011_performance_indexes", "--yes"], url=production_db, folder=EXAMPLE_MIGRATIONS
        )
    assert result.returncode == 0, output_of(result)
    assert result.stdout.splitlines() == [
        "💤 Nothing to roll back: the newest applied migration is 0011_performance_indexes"
    ]


USAGE = {
    "no confirmation off a terminal": (["rollback", "--last", "1"], "pass --yes to confirm"),
    "an unknown tag": (["rollback", "--to", "0099_nope", "--yes"], "--to 0099_nope: no migration of"),
    "no target": (["rollback", "--yes"], "One of the arguments --to --last is required"),
    "a zero count": (["rollback", "--last", "0", "--yes"], "rollback needs one target"),
}


@pytest.mark.parametrize("case", list(USAGE))
def test_usage_errors_change_nothing(case: str, database_url: str) -> None:
    """A missing --yes off a terminal, an unknown tag, no target: exit 2 before anything is read from the database."""
    assert drizzle_migrate(database_url, EXAMPLE_MIGRATIONS).returncode == 0
    before = ledger(database_url)
    args, said = USAGE[case]
    result = run_entrypoint(args, url=database_url, folder=EXAMPLE_MIGRATIONS)
    assert result.returncode == 2, output_of(result)
    assert said in assert_one_error(output_of(result))
    assert ledger(database_url) == before
