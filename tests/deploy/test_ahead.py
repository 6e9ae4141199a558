"""An older release on a newer schema starts, as under drizzle-orm: Render's Rollback button, the runbook's code rollback.

Each case deploys the newer folder, then runs the older release's start
command: it prints one ⚠️ line per newer migration, writes nothing and starts
the app; drizzle-orm's own migrator on the older folder finds nothing to do
either; the start gate, `status` and `verify` accept it. WHEN_AHEAD=refuse keeps
the old exit 7, and drift (not a newer release's rows) stays refused.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from harness.production import copy_folder
from tests.drizzle_ref import EXAMPLE_MIGRATIONS, drizzle_migrate
from tests.drizzle_ref_v1 import V1_MIGRATIONS, drizzle_migrate_v1
from tests.support import assert_one_error, assert_untouched, output_of, query, run_entrypoint

AHEAD_LINE = "⚠️  Schéma plus récent que cette version : la migration "
V1_LEDGER = "SELECT id, hash, created_at, name, applied_at FROM drizzle.__drizzle_migrations ORDER BY id"


def _app(tmp_path: Path, name: str = "started") -> tuple[list[str], Path]:
    marker = tmp_path / name
    return ["touch", str(marker)], marker


def _ahead_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(AHEAD_LINE)]


def test_the_previous_release_starts_after_0011_on_the_runbook_database(
    production_db: str, tmp_path: Path, pg_server: Any
) -> None:
    """0011 deployed, then the 0000-0010 release: one ⚠️ line, no write, the app started; drizzle-orm agrees."""
    deployed = run_entrypoint([], url=production_db, folder=EXAMPLE_MIGRATIONS)
    assert deployed.returncode == 0, output_of(deployed)
    release = copy_folder(EXAMPLE_MIGRATIONS, tmp_path / "previous-release", keep=11)
    app, marker = _app(tmp_path)
    with assert_untouched(production_db, pg_server.bin("pg_dump"), data=True):
        result = run_entrypoint(["--", *app], url=production_db, folder=release)
        out = output_of(result)
        assert result.returncode == 0, out
        assert marker.exists()
        (line,) = _ahead_lines(out)
        assert line.startswith(f"{AHEAD_LINE}11 (hash ")
        assert "💤 No pending migrations (11 already applied)" in out
        assert "✅ Database migrations completed successfully" in out
        theirs = drizzle_migrate(production_db, release)  # drizzle-orm's migrator on the older folder
        assert theirs.returncode == 0, theirs.stderr


def test_the_gate_status_and_verify_accept_an_older_release(production_db: str, tmp_path: Path) -> None:
    """--require-migrated starts the app on an ahead database; status and verify say "ahead by 1" and pass."""
    assert run_entrypoint([], url=production_db, folder=EXAMPLE_MIGRATIONS).returncode == 0
    release = copy_folder(EXAMPLE_MIGRATIONS, tmp_path / "previous-release", keep=11)
    app, marker = _app(tmp_path)
    gated = run_entrypoint(["--require-migrated", "--", *app], url=production_db, folder=release)
    assert gated.returncode == 0, output_of(gated)
    assert marker.exists()
    lines = gated.stdout.splitlines()
    assert lines[0].startswith(f"{AHEAD_LINE}11 (")
    assert lines[1] == (
        "🚦 Start gate: 11/11 migrations applied, ledger in step; nothing migrated here (--require-migrated)"
    )

    status = run_entrypoint(["status"], url=production_db, folder=release)
    assert status.returncode == 0, output_of(status)
    assert any(
        line.startswith("⏩ Ahead by 1: 1 ledger row newer than 0010_perpetual_magneto")
        for line in status.stdout.splitlines()
    )
    assert "not matched to an entry" not in status.stdout
    assert "✅ 11/11 migrations applied, ledger in step" in status.stdout
    document = json.loads(run_entrypoint(["status", "--json"], url=production_db, folder=release).stdout)
    assert [row["id"] for row in document["ahead_rows"]] == [11]
    assert document["summary"]["ahead"] == 1
    assert document["unknown_rows"] == []
    assert document["clean"] is True

    verify = run_entrypoint(["verify"], url=production_db, folder=release)
    out = output_of(verify)
    assert verify.returncode == 0, out
    assert "✅ Ledger: 11 rows, ids 0..10 without gaps, each hash and created_at matching its journal entry" in out
    assert "⏩ Ahead by 1: 1 ledger row newer than 0010_perpetual_magneto" in out
    assert any(line.startswith("   ⏩ 11: hash ") for line in out.splitlines())


def test_when_ahead_refuse_keeps_exit_7(production_db: str, tmp_path: Path, pg_server: Any) -> None:
    """WHEN_AHEAD=refuse: the deploy's old ❌ line and exit 7, the gate's exit 12, nothing changed, no app."""
    assert run_entrypoint([], url=production_db, folder=EXAMPLE_MIGRATIONS).returncode == 0
    release = copy_folder(EXAMPLE_MIGRATIONS, tmp_path / "previous-release", keep=11)
    app, marker = _app(tmp_path)
    with assert_untouched(production_db, pg_server.bin("pg_dump"), data=True):
        result = run_entrypoint(["--", *app], url=production_db, folder=release, WHEN_AHEAD="refuse")
        assert result.returncode == 7, output_of(result)
        assert assert_one_error(output_of(result)) == (
            "❌ Ledger sync refused, nothing was changed: the ledger has 12 rows but the journal only 11 entries: the "
            "database is ahead of this code (a newer release migrated it). Deploy the newer code, or restore the "
            "database from its backup"
        )
        gated = run_entrypoint(
            ["--require-migrated", "--", *app], url=production_db, folder=release, WHEN_AHEAD="refuse"
        )
        assert gated.returncode == 12, output_of(gated)
    assert not marker.exists()


def test_several_migrations_ahead(users_app: Any, database_url: str, tmp_path: Path, pg_server: Any) -> None:
    """Three migrations deployed, the release before the last two started: two ⚠️ lines, drizzle-orm finds nothing."""
    folder = users_app(
        ("add_nickname", 'ALTER TABLE "users" ADD COLUMN "nickname" text;'),
        ("add_bio", 'ALTER TABLE "users" ADD COLUMN "bio" text;'),
        ("add_score", 'ALTER TABLE "users" ADD COLUMN "score" integer;'),
    )
    assert run_entrypoint([], url=database_url, folder=folder).returncode == 0
    older = copy_folder(folder, tmp_path / "older", keep=2)
    with assert_untouched(database_url, pg_server.bin("pg_dump"), data=True):
        theirs = drizzle_migrate(database_url, older)
        assert theirs.returncode == 0, theirs.stderr
        result = run_entrypoint([], url=database_url, folder=older)
        out = output_of(result)
        assert result.returncode == 0, out
        assert [line.split(" (")[0] for line in _ahead_lines(out)] == [f"{AHEAD_LINE}3", f"{AHEAD_LINE}4"]
        assert "💤 No pending migrations (2 already applied)" in out


def test_drizzle_v1_folders_ahead(database_url: str, tmp_path: Path, pg_server: Any) -> None:
    """1.0 layout: five folders deployed, the first three started: ahead by the two named after them."""
    assert run_entrypoint([], url=database_url, folder=V1_MIGRATIONS).returncode == 0
    older = tmp_path / "drizzle"
    shutil.copytree(V1_MIGRATIONS, older)
    names = sorted(p.name for p in older.iterdir() if p.is_dir())
    for gone in names[3:]:
        shutil.rmtree(older / gone)
    before = query(database_url, V1_LEDGER)
    with assert_untouched(database_url, pg_server.bin("pg_dump"), data=True):
        theirs = drizzle_migrate_v1(database_url, older)
        assert theirs.returncode == 0, theirs.stderr
        result = run_entrypoint([], url=database_url, folder=older)
        out = output_of(result)
        assert result.returncode == 0, out
        assert [line.split(" a été")[0] for line in _ahead_lines(out)] == [
            f"{AHEAD_LINE}4 ({names[3]})",
            f"{AHEAD_LINE}5 ({names[4]})",
        ]
        gated = run_entrypoint(["--require-migrated"], url=database_url, folder=older)
        assert gated.returncode == 0, output_of(gated)
    assert query(database_url, V1_LEDGER) == before
    document = json.loads(run_entrypoint(["status", "--json"], url=database_url, folder=older).stdout)
    assert [row["name"] for row in document["ahead_rows"]] == names[3:]


DRIFT = {
    "a stray row between applied migrations": (
        EXAMPLE_MIGRATIONS,
        (
            "INSERT INTO drizzle.__drizzle_migrations (hash, created_at) "
            "SELECT 'stray', created_at + 1 FROM drizzle.__drizzle_migrations WHERE id = 5"
        ),
        "row 13 matches no migration and is not newer than 0011_performance_indexes",
    ),
    "a hash mismatch beside a newer row": (
        None,
        "UPDATE drizzle.__drizzle_migrations SET hash = 'edited' WHERE id = 4",
        "0003_loose_shocker has no row of its own",
    ),
    "a pending migration older than an unknown row": (
        EXAMPLE_MIGRATIONS,
        (
            "DELETE FROM drizzle.__drizzle_migrations WHERE id = 12; "
            "INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES ('f00d', 4102444800000), "
            "('beef', 4102444800001)"
        ),
        "0011_performance_indexes has no row of its own",
    ),
}


@pytest.mark.parametrize("case", list(DRIFT))
def test_drift_stays_refused(case: str, database_url: str, tmp_path: Path, pg_server: Any) -> None:
    """Rows no newer release would leave: one ❌ line naming what is off, exit 7, nothing changed, no app."""
    folder, tamper, detail = DRIFT[case]
    assert drizzle_migrate(database_url, EXAMPLE_MIGRATIONS).returncode == 0
    query(database_url, tamper)
    folder = folder or copy_folder(EXAMPLE_MIGRATIONS, tmp_path / "previous-release", keep=11)
    app, marker = _app(tmp_path)
    with assert_untouched(database_url, pg_server.bin("pg_dump"), data=True):
        result = run_entrypoint(["--", *app], url=database_url, folder=folder)
        out = output_of(result)
        assert result.returncode == 7, out
        line = assert_one_error(out)
        assert line.startswith("❌ Ledger sync refused, nothing was changed: the ledger has ")
        assert detail in line
        assert "That is drift, not a rollback" in line
        gated = run_entrypoint(["--require-migrated", "--", *app], url=database_url, folder=folder)
        assert gated.returncode == 12, output_of(gated)
    assert not marker.exists()
