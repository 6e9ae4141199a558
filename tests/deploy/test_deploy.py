"""The main command end to end on the example folder: the runbook's lines, a restart, the dry run, the restore point."""

from __future__ import annotations

import json
import re
from pathlib import Path

from harness.production import journal_entries
from tests.drizzle_ref import EXAMPLE_MIGRATIONS
from tests.support import output_of, query, run_entrypoint


def test_fresh_deploy_prints_the_runbook_lines(database_url: str) -> None:
    """A first deploy prints DESIGN.md's lines in order, one line per applied migration."""
    result = run_entrypoint([], url=database_url, folder=EXAMPLE_MIGRATIONS)
    assert result.returncode == 0, output_of(result)
    lines = result.stdout.splitlines()
    tags = [e["tag"] for e in journal_entries(EXAMPLE_MIGRATIONS)]
    # Just before the first change (creating the ledger): the restore point, before the sync's lines.
    assert lines.pop(0).startswith("📍 Restore point: ")
    assert lines[:4] == [
        "🔄 Synchronisation des migrations...",
        "📊 Migrations actuelles en base: 0",
        "✅ Migrations déjà synchronisées",
        "🎯 Système de migrations prêt pour Drizzle",
    ]
    assert lines[4:7] == ["", "🚀 Running Drizzle migrations...", f"📁 Migrations folder: {EXAMPLE_MIGRATIONS}"]
    applied = lines[7 : 7 + len(tags)]
    for tag, line in zip(tags, applied, strict=True):
        assert re.fullmatch(rf"   ✔ {re.escape(tag)} \(\d+ statements, \d+ ms\)", line), line
    assert lines[7 + len(tags) :] == [
        "✅ Database migrations completed successfully",
        "🎉 All tables and indexes created via Drizzle migrations",
        "🏁 No app command given: migrations done, exiting",
    ]
    assert "\u26a0\ufe0f" not in result.stdout


def test_second_deploy_says_nothing_is_pending(database_url: str) -> None:
    """A restart with nothing pending says so and still prints the success lines operators grep for."""
    assert run_entrypoint([], url=database_url, folder=EXAMPLE_MIGRATIONS).returncode == 0
    result = run_entrypoint([], url=database_url, folder=EXAMPLE_MIGRATIONS)
    count = len(journal_entries(EXAMPLE_MIGRATIONS))
    assert result.returncode == 0
    assert f"💤 No pending migrations ({count} already applied)" in result.stdout
    assert "✅ Database migrations completed successfully" in result.stdout


def test_dry_run_changes_nothing(database_url: str) -> None:
    """--dry-run lists pending migrations with statement counts, creates nothing and execs nothing."""
    result = run_entrypoint(["--dry-run", "--", "false"], url=database_url, folder=EXAMPLE_MIGRATIONS)
    assert result.returncode == 0, output_of(result)
    tags = [e["tag"] for e in journal_entries(EXAMPLE_MIGRATIONS)]
    for tag in tags:
        assert re.search(rf"   ⏭  {re.escape(tag)} would be applied \(\d+ statements\)", result.stdout)
    assert f"🔍 Dry run complete: {len(tags)} migrations would be applied" in result.stdout
    assert "Starting the app" not in result.stdout
    from tests.support import query

    assert query(database_url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'drizzle'") == [(0,)]


def test_restore_point_only_before_a_change(production_db: str, tmp_path: Path) -> None:
    """No setting needed: JSON fields server_time and wal_lsn before the first change; nothing to do, no line."""
    result = run_entrypoint(["--log-format", "json"], url=production_db, folder=EXAMPLE_MIGRATIONS)
    assert result.returncode == 0, output_of(result)
    events = [json.loads(line) for line in result.stdout.splitlines()]
    names = [e["event"] for e in events]
    (point,) = [e for e in events if e["event"] == "deploy.restore_point"]
    assert names.index("deploy.restore_point") < names.index("sync.start")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", point["server_time"])
    assert re.fullmatch(r"[0-9A-F]+/[0-9A-F]+", point["wal_lsn"])
    assert point["database"] == production_db.rsplit("/", 1)[1]
    # The insert position: the suite's servers run synchronous_commit=off, so the write position may lag.
    assert query(production_db, "SELECT pg_current_wal_insert_lsn() > %s::pg_lsn", (point["wal_lsn"],)) == [(True,)]

    nothing = run_entrypoint([], url=production_db, folder=EXAMPLE_MIGRATIONS)
    assert nothing.returncode == 0, output_of(nothing)
    assert "📍" not in nothing.stdout
