"""The ledger sync on the runbook's production database, its refusals, its audit and SYNC_ON_ERROR."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.production import OLD_IDS, copy_folder, journal_entries
from tests.drizzle_ref import EXAMPLE_MIGRATIONS, drizzle_migrate
from tests.support import (
    RUNBOOK_SYNC_LINES,
    assert_one_error,
    assert_untouched,
    clone_database,
    ledger,
    output_of,
    query,
    run_entrypoint,
)


def _users(url: str) -> list[tuple[object, ...]]:
    return query(url, "SELECT * FROM users ORDER BY id")


def test_runbook_production_case(production_db: str, database_factory, admin_url: str) -> None:
    """The runbook's drifted ledger is repaired with its exact lines, 0011 applied, users untouched."""
    users_before = _users(production_db)

    # Without the sync, drizzle-orm's own migrator re-runs 0008 and dies (on a copy of the database).
    copy = database_factory()
    clone_database(admin_url, production_db, copy)
    failed = drizzle_migrate(copy, EXAMPLE_MIGRATIONS)
    assert failed.returncode != 0
    assert "already exists" in failed.stderr

    result = run_entrypoint([], url=production_db, folder=EXAMPLE_MIGRATIONS)
    out = output_of(result)
    assert result.returncode == 0, out
    entries = journal_entries(EXAMPLE_MIGRATIONS)
    lines = result.stdout.splitlines()
    assert lines.pop(0).startswith("📍 Restore point: ")  # just before the first change: the repair
    assert lines[:10] == [*RUNBOOK_SYNC_LINES, ""]
    assert lines[10:12] == ["🚀 Running Drizzle migrations...", f"📁 Migrations folder: {EXAMPLE_MIGRATIONS}"]
    assert lines[12].startswith(f"   ✔ {entries[11]['tag']} (")
    assert lines[13:15] == [
        "✅ Database migrations completed successfully",
        "🎉 All tables and indexes created via Drizzle migrations",
    ]

    rows = ledger(production_db)
    hashes = [hashlib.sha256((EXAMPLE_MIGRATIONS / f"{e['tag']}.sql").read_bytes()).hexdigest() for e in entries]
    assert rows == [(i, hashes[i], entries[i]["when"]) for i in range(12)]
    assert query(production_db, "SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'idx\\_%'") == [(43,)]
    assert _users(production_db) == users_before
    assert query(production_db, "SELECT role::text, count(*) FROM users GROUP BY 1 ORDER BY 1") == [
        ("fbo", 60),
        ("manager", 8),
    ]

    again = drizzle_migrate(production_db, EXAMPLE_MIGRATIONS)
    assert again.returncode == 0, again.stderr
    assert ledger(production_db) == rows
    nxt = query(production_db, "SELECT nextval('drizzle.__drizzle_migrations_id_seq')")
    assert nxt == [(12,)]

    audit = query(
        production_db,
        "SELECT tag, old_id, new_id, new_hash FROM drizzle.__drizzle_migrations_audit ORDER BY old_id",
    )
    assert audit == [(entries[n]["tag"], OLD_IDS[n - 8], n, hashes[n]) for n in (8, 9, 10)]


def test_dry_run_shows_the_repair_and_changes_nothing(production_db: str, pg_server) -> None:
    """--dry-run prints the repair lines and the pending 0011, and leaves the database byte-for-byte as it was."""
    with assert_untouched(production_db, pg_server.bin("pg_dump"), data=True):
        result = run_entrypoint(["--dry-run", "--", "false"], url=production_db, folder=EXAMPLE_MIGRATIONS)
    out = output_of(result)
    assert result.returncode == 0, out
    assert "   283 → 8 (0008_brave_songbird)" in out
    assert "🔍 Simulation : 3 migrations seraient corrigées, rien n'est modifié" in out
    tag = journal_entries(EXAMPLE_MIGRATIONS)[11]["tag"]
    assert f"   ⏭  {tag} would be applied (" in out
    assert "🔍 Dry run complete: 1 migrations would be applied" in out


def _tamper(url: str, sql: str) -> None:
    query(url, sql)


REFUSALS = {
    "drift": (
        (
            "INSERT INTO drizzle.__drizzle_migrations (hash, created_at) "
            "SELECT 'stray' || n, 1 + n FROM generate_series(1, 2) n"
        ),
        "they are not a newer release's",
        7,
    ),
    "duplicate": (
        (
            "INSERT INTO drizzle.__drizzle_migrations (hash, created_at) "
            "SELECT hash, created_at FROM drizzle.__drizzle_migrations WHERE id = 3"
        ),
        "two ledger rows claim",
        7,
    ),
    "gap": (
        (
            "DELETE FROM drizzle.__drizzle_migrations WHERE id = 4; "
            "UPDATE drizzle.__drizzle_migrations SET hash = 'unknown', created_at = 1 WHERE id = 9"
        ),
        "the ledger has a gap",
        7,
    ),
    "out-of-order": (
        "DELETE FROM drizzle.__drizzle_migrations WHERE id = 4",
        "older than the newest applied migration and never applied",
        8,
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals_leave_the_database_unchanged(case: str, database_url: str, tmp_path: Path, pg_server) -> None:
    """Each unsafe ledger: one ❌ line, its exit code, the database byte-for-byte unchanged, the app not started."""
    applied = drizzle_migrate(database_url, EXAMPLE_MIGRATIONS)
    assert applied.returncode == 0, applied.stderr
    tamper, expected, code = REFUSALS[case]
    _tamper(database_url, tamper)
    marker = tmp_path / "started"
    for args in (["--dry-run"], ["--", "touch", str(marker)]):
        with assert_untouched(database_url, pg_server.bin("pg_dump"), data=True):
            result = run_entrypoint(args, url=database_url, folder=EXAMPLE_MIGRATIONS)
            out = output_of(result)
            assert result.returncode == code, out
            assert expected in assert_one_error(out)
            assert "Traceback" not in out
            assert not marker.exists()


@contextmanager
def _role_without_update(production_db: str, admin_url: str) -> Iterator[str]:
    """A deployer that may read and insert but not UPDATE the ledger, so the repair's write fails: its URL."""
    dbname = production_db.rsplit("/", 1)[1]
    role = f"deployer_{dbname[-8:]}"
    query(admin_url, f"CREATE ROLE {role} LOGIN PASSWORD 'deployer-pw'")
    try:
        query(production_db, f"GRANT USAGE, CREATE ON SCHEMA drizzle, public TO {role}")
        query(production_db, f"GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA drizzle, public TO {role}")
        query(production_db, f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA drizzle, public TO {role}")
        query(production_db, f'GRANT CREATE ON DATABASE "{dbname}" TO {role}')
        yield f"postgresql://{role}:deployer-pw@{production_db.split('@', 1)[1]}"
    finally:
        query(production_db, f"DROP OWNED BY {role}")
        query(admin_url, f"DROP ROLE {role}")


def test_sync_error_continue_then_fail(production_db: str, admin_url: str) -> None:
    """A sync that errors (no UPDATE right): SYNC_ON_ERROR=continue warns and goes on, =fail stops with exit 9."""
    with _role_without_update(production_db, admin_url) as limited:
        before = ledger(production_db)

        failed = run_entrypoint([], url=limited, folder=EXAMPLE_MIGRATIONS, SYNC_ON_ERROR="fail")
        out = output_of(failed)
        assert failed.returncode == 9, out
        assert "❌ Ledger sync failed: permission denied" in out
        assert ledger(production_db) == before

        kept_going = run_entrypoint([], url=limited, folder=EXAMPLE_MIGRATIONS)
        out = output_of(kept_going)
        assert "⚠️  Poursuite du déploiement malgré l'erreur de sync" in out
        assert out.index("Poursuite") < out.index("🚀 Running Drizzle migrations...")
        assert kept_going.returncode == 6, out
        assert "❌ Migration failed: " in out
        assert ledger(production_db) == before


# The release before 0011: on the drifted ledger nothing is pending once repaired, but drizzle-orm, on
# the ledger as it is, would run 0008-0010 again; that is what SYNC_ON_ERROR=continue carries on with.
def _previous_release(tmp_path: Path) -> Path:
    return copy_folder(EXAMPLE_MIGRATIONS, tmp_path / "release", keep=11)


def test_carrying_on_after_a_failed_repair_is_guarded_before_any_write(
    production_db: str, admin_url: str, tmp_path: Path, pg_server
) -> None:
    """The plan applies nothing, the course after a failed repair would: its guards are checked before it writes."""
    broken = "select role, count(*) form users group by role"
    with (
        _role_without_update(production_db, admin_url) as limited,
        assert_untouched(production_db, pg_server.bin("pg_dump"), data=True),
    ):
        result = run_entrypoint(["--guard", broken], url=limited, folder=_previous_release(tmp_path))
        out = output_of(result)
        assert result.returncode == 2, out
        assert out.strip().splitlines()[-1].startswith("❌ Guard query failed: syntax error at or near"), out
        assert out.index("Poursuite") < out.index("❌ Guard query failed")
        assert "🚀 Running Drizzle migrations..." not in out


def test_a_repair_that_succeeds_is_not_refused_for_the_course_it_avoids(production_db: str, tmp_path: Path) -> None:
    """The same broken guard, a role that may repair: nothing is left to apply, so nothing runs the guard."""
    broken = "select role, count(*) form users group by role"
    result = run_entrypoint(["--guard", broken], url=production_db, folder=_previous_release(tmp_path))
    out = output_of(result)
    assert result.returncode == 0, out
    assert "✅ Migrations synchronisées avec succès !" in out
    assert "💤 No pending migrations (11 already applied)" in out


def test_carrying_on_after_a_failed_repair_is_backed_up_first(
    production_db: str, admin_url: str, tmp_path: Path, pg_server
) -> None:
    """BACKUP_DIR: the plan applies nothing, carrying on would: the dump is taken before it applies anything."""
    backups = tmp_path / "backups"
    with _role_without_update(production_db, admin_url) as limited:
        before = ledger(production_db)
        result = run_entrypoint(
            [],
            url=limited,
            folder=_previous_release(tmp_path),
            BACKUP_DIR=str(backups),
            PG_DUMP=str(pg_server.bin("pg_dump")),
        )
        out = output_of(result)
        assert result.returncode == 6, out  # drizzle-orm's course: 0008 again, whose tables exist
        last = out.strip().splitlines()[-1]
        assert last.startswith("❌ Migration failed: relation") and "already exists" in last, out
        (dump,) = backups.iterdir()
        written = out.index(f"💾 Backup written and checked (pg_restore read all of it): {dump} (")
        assert out.index("Poursuite") < written < out.index("🚀 Running Drizzle migrations...")
        assert ledger(production_db) == before


def test_a_stray_row_never_marks_a_migration_applied(production_db: str, pg_server) -> None:
    """A stray row would match 0011 by position, but 0011's indexes are missing: refused, nothing changed."""
    query(production_db, "INSERT INTO drizzle.__drizzle_migrations (id, hash, created_at) VALUES (286, 'stray', 1)")
    with assert_untouched(production_db, pg_server.bin("pg_dump"), data=True):
        result = run_entrypoint([], url=production_db, folder=EXAMPLE_MIGRATIONS)
    out = output_of(result)
    assert result.returncode == 7, out
    tag = journal_entries(EXAMPLE_MIGRATIONS)[11]["tag"]
    assert f"a ledger row matches {tag} only by position, but 43 of the 43 objects it creates are missing" in out
