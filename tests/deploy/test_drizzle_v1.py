"""drizzle-orm 1.0 (rc): the folder-per-migration layout, the name-keyed ledger, and the upgrade of an old one."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from tests.drizzle_ref import EXAMPLE_MIGRATIONS, drizzle_migrate
from tests.drizzle_ref_v1 import V1_MIGRATIONS, drizzle_kit_v1, drizzle_migrate_v1
from tests.support import assert_one_error, clone_database, output_of, query, run_entrypoint, schema_dump

V1_LEDGER = "SELECT id, hash, created_at, name, applied_at IS NULL FROM drizzle.__drizzle_migrations ORDER BY id"


def _ledger(url: str) -> list[tuple[Any, ...]]:
    return query(url, V1_LEDGER)


def _drizzle_v1(url: str, folder: Path) -> None:
    result = drizzle_migrate_v1(url, folder)
    assert result.returncode == 0, result.stderr


def _converted(tmp_path: Path) -> Path:
    """examples/backend/drizzle converted by drizzle-kit 1.0's own `up`."""
    folder = tmp_path / "drizzle"
    shutil.copytree(EXAMPLE_MIGRATIONS, folder)
    result = drizzle_kit_v1(["up", "--dialect", "postgresql", "--out", str(folder)], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (folder / "meta").exists()
    return folder


def test_fresh_database_same_as_drizzle_v1(database_url: str, database_factory, pg_server) -> None:
    """A 1.0 folder on a fresh database: the same schema and (hash, created_at, name) ledger as drizzle-orm 1.0."""
    theirs = database_factory()
    result = run_entrypoint([], url=database_url, folder=V1_MIGRATIONS)
    assert result.returncode == 0, output_of(result)
    _drizzle_v1(theirs, V1_MIGRATIONS)
    pg_dump = pg_server.bin("pg_dump")
    assert schema_dump(pg_dump, database_url) == schema_dump(pg_dump, theirs)
    assert _ledger(database_url) == _ledger(theirs)
    assert all(not row[4] for row in _ledger(database_url))  # applied_at set by its default

    ours_before, theirs_before = _ledger(database_url), _ledger(theirs)
    _drizzle_v1(database_url, V1_MIGRATIONS)
    again = run_entrypoint([], url=theirs, folder=V1_MIGRATIONS)
    assert again.returncode == 0, output_of(again)
    assert "💤 No pending migrations" in again.stdout
    assert (_ledger(database_url), _ledger(theirs)) == (ours_before, theirs_before)


def test_upgrade_path_matches_drizzle_v1(database_url: str, database_factory, admin_url: str, tmp_path: Path) -> None:
    """0.45 ledger, folder converted by `drizzle-kit up`: we upgrade the ledger exactly as drizzle-orm 1.0 does."""
    applied = drizzle_migrate(database_url, EXAMPLE_MIGRATIONS)
    assert applied.returncode == 0, applied.stderr
    theirs = database_factory()
    clone_database(admin_url, database_url, theirs)
    folder = _converted(tmp_path)

    dry = run_entrypoint(["--dry-run"], url=database_url, folder=folder)
    assert dry.returncode == 0, output_of(dry)
    assert "🆙 Registre Drizzle 0.x détecté" in dry.stdout
    assert query(database_url, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'applied_at'") == [
        (0,)
    ]

    result = run_entrypoint([], url=database_url, folder=folder)
    out = output_of(result)
    assert result.returncode == 0, out
    assert "✅ Registre mis à niveau pour Drizzle 1.0 : 12 migrations nommées" in out
    assert "💤 No pending migrations (12 already applied)" in out
    _drizzle_v1(theirs, folder)
    assert _ledger(database_url) == _ledger(theirs)

    before = _ledger(database_url)
    _drizzle_v1(database_url, folder)
    assert _ledger(database_url) == before
    assert "💤 No pending migrations" in run_entrypoint([], url=theirs, folder=folder).stdout


def test_drifted_ledger_is_named_right_where_drizzle_v1_is_not(
    production_db: str, database_factory, admin_url: str, tmp_path: Path
) -> None:
    """The runbook's drifted ledger upgraded to 1.0: rows 283-285 get 0008-0010's names, then 0011 applies."""
    theirs = database_factory()
    clone_database(admin_url, production_db, theirs)
    folder = _converted(tmp_path / "converted")
    names = sorted(p.name for p in folder.iterdir() if p.is_dir())

    failed = drizzle_migrate_v1(theirs, folder)
    assert failed.returncode != 0
    assert "already exists" in failed.stderr

    result = run_entrypoint([], url=production_db, folder=folder)
    out = output_of(result)
    assert result.returncode == 0, out
    for old_id, index in ((283, 8), (284, 9), (285, 10)):
        assert f"   {old_id} → {names[index]}" in out
    rows = _ledger(production_db)
    assert [row[3] for row in rows] == names
    assert query(production_db, "SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'idx\\_%'") == [(43,)]
    _drizzle_v1(production_db, folder)
    assert _ledger(production_db) == rows


def test_mixed_folder_is_refused(database_url: str, tmp_path: Path) -> None:
    """A folder holding both a 0.x journal and 1.0 migration folders: one ❌ line, exit 3, nothing touched."""
    folder = tmp_path / "drizzle"
    shutil.copytree(V1_MIGRATIONS, folder)
    shutil.copytree(EXAMPLE_MIGRATIONS / "meta", folder / "meta")
    result = run_entrypoint([], url=database_url, folder=folder)
    out = output_of(result)
    assert result.returncode == 3, out
    assert out.startswith("❌ ") and "holds both a drizzle-kit 0.x journal" in out
    assert query(database_url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'drizzle'") == [(0,)]


def test_folder_without_timestamp_is_refused(database_url: str, tmp_path: Path) -> None:
    """A 1.0 migration folder whose name lacks the 14-digit timestamp is refused before connecting."""
    folder = tmp_path / "drizzle"
    shutil.copytree(V1_MIGRATIONS, folder)
    first = min(p for p in folder.iterdir() if p.is_dir())
    first.rename(folder / "manual_fix")
    result = run_entrypoint([], url=database_url, folder=folder)
    assert result.returncode == 3, output_of(result)
    assert "manual_fix does not start with a YYYYMMDDHHMMSS timestamp" in output_of(result)


def test_unknown_and_changed_rows_are_reported(database_url: str, tmp_path: Path) -> None:
    """A row whose folder is gone, and an applied file that changed, are named, never silently skipped."""
    assert run_entrypoint([], url=database_url, folder=V1_MIGRATIONS).returncode == 0
    query(
        database_url,
        "INSERT INTO drizzle.__drizzle_migrations (hash, created_at, name) VALUES ('abc', 1, '20200101000000_gone')",
    )
    folder = tmp_path / "drizzle"
    shutil.copytree(V1_MIGRATIONS, folder)
    first = min(p for p in folder.iterdir() if p.is_dir())
    (first / "migration.sql").write_text((first / "migration.sql").read_text() + "\n-- edited after release\n")
    result = run_entrypoint([], url=database_url, folder=folder)
    out = output_of(result)
    assert result.returncode == 0, out
    assert "⚠️  La ligne 6 du registre (20200101000000_gone) ne correspond à aucune migration du dossier" in out
    assert f"⚠️  {first.name} a été modifiée depuis son application" in out
    assert "💤 No pending migrations" in out


def test_status_and_verify_on_a_v1_ledger(database_url: str, tmp_path: Path) -> None:
    """status and verify read a 1.0 ledger by name: pending, then clean and verified once deployed."""
    import json

    first = run_entrypoint(["status", "--json"], url=database_url, folder=V1_MIGRATIONS)
    assert first.returncode == 12, output_of(first)
    assert {e["state"] for e in json.loads(first.stdout)["entries"]} == {"pending"}
    assert run_entrypoint([], url=database_url, folder=V1_MIGRATIONS).returncode == 0
    clean = run_entrypoint(["status"], url=database_url, folder=V1_MIGRATIONS)
    assert clean.returncode == 0, output_of(clean)
    verified = run_entrypoint(["verify"], url=database_url, folder=V1_MIGRATIONS)
    assert verified.returncode == 0, output_of(verified)
    assert "🎉 Verified" in verified.stdout


def test_status_and_verify_before_and_after_the_upgrade(database_url: str, tmp_path: Path) -> None:
    """A 0.45 ledger with a converted folder: status says `unnamed` and verify asks for a deploy; then both pass."""
    import json

    assert drizzle_migrate(database_url, EXAMPLE_MIGRATIONS).returncode == 0
    folder = _converted(tmp_path)
    before = run_entrypoint(["status", "--json"], url=database_url, folder=folder)
    assert before.returncode == 12, output_of(before)
    assert {e["state"] for e in json.loads(before.stdout)["entries"]} == {"unnamed"}
    not_yet = run_entrypoint(["verify"], url=database_url, folder=folder)
    assert not_yet.returncode == 13
    assert "deploy to upgrade it for Drizzle 1.0" in output_of(not_yet)
    assert run_entrypoint([], url=database_url, folder=folder).returncode == 0
    assert run_entrypoint(["status"], url=database_url, folder=folder).returncode == 0
    verified = run_entrypoint(["verify"], url=database_url, folder=folder)
    assert verified.returncode == 0, output_of(verified)
    assert "0011_performance_indexes" not in verified.stdout  # 1.0 names carry no NNNN_ prefix
    assert "performance_indexes: 43/43 indexes present" in verified.stdout


def test_guards_on_a_v1_folder(database_url: str, tmp_path: Path) -> None:
    """Guards work on a drizzle-kit 1.0 folder: the seed migration changes a guarded count, so all rolls back."""
    first_release = tmp_path / "release-1"
    first_release.mkdir()
    first = min(p for p in V1_MIGRATIONS.iterdir() if p.is_dir())
    shutil.copytree(first, first_release / first.name)
    assert run_entrypoint([], url=database_url, folder=first_release).returncode == 0
    before = _ledger(database_url)
    result = run_entrypoint(["--guard", "select count(*) from organizations"], url=database_url, folder=V1_MIGRATIONS)
    out = output_of(result)
    assert result.returncode == 14, out
    assert (
        "❌ Guard changed: select count(*) from organizations returned [(0,)] before the migrations and [(1,)]" in out
    )
    assert _ledger(database_url) == before


def test_a_failed_upgrade_stops_even_under_sync_on_error_continue(
    database_url: str, role_factory, tmp_path: Path
) -> None:
    """Without the 1.0 upgrade every migration would run again: a role that may not alter the ledger stops, exit 9."""
    applied = drizzle_migrate(database_url, EXAMPLE_MIGRATIONS)
    assert applied.returncode == 0, applied.stderr
    folder = _converted(tmp_path)
    limited = role_factory("pw-upgrade")
    name = unquote(urlsplit(limited).username or "")
    query(database_url, f'GRANT USAGE ON SCHEMA drizzle TO "{name}"')
    query(database_url, f'GRANT SELECT, INSERT, UPDATE ON drizzle.__drizzle_migrations TO "{name}"')
    before = query(database_url, "SELECT * FROM drizzle.__drizzle_migrations ORDER BY id")

    result = run_entrypoint([], url=limited, folder=folder, SYNC_ON_ERROR="continue")
    out = output_of(result)
    assert result.returncode == 9, out
    expected = (
        "❌ Ledger upgrade for Drizzle 1.0 failed: must be owner of table __drizzle_migrations. Without it every "
        "migration would run again, so nothing was applied, whatever SYNC_ON_ERROR says. Run the deploy as the owner "
        "of drizzle.__drizzle_migrations (the upgrade adds its name and applied_at columns), then redeploy"
    )
    assert assert_one_error(out) == expected
    assert "Poursuite du déploiement" not in out
    assert "🚀 Running Drizzle migrations..." not in out
    assert query(database_url, "SELECT * FROM drizzle.__drizzle_migrations ORDER BY id") == before
