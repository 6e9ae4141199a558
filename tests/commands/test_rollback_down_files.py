"""Down files, in both layouts: `<tag>.down.sql` beside a 0.x migration, `<folder>/down.sql` in a 1.0 folder.

Each migration here has no computed inverse (a DO block), so only its down file
can undo it; after the rollback drizzle-orm's own migrator applies it again.
MIGRATION_GUARDS hold across a rollback as across a deploy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tests.drizzle_ref import drizzle_migrate
from tests.drizzle_ref_v1 import V1_MIGRATIONS, drizzle_migrate_v1
from tests.support import assert_one_error, assert_untouched, ledger, output_of, query, run_entrypoint

MOOD = (
    "DO $$ BEGIN\n CREATE TYPE \"public\".\"mood\" AS ENUM('happy', 'sad');\n"
    "EXCEPTION WHEN duplicate_object THEN null;\nEND $$;"
)
MOODS = "SELECT count(*) FROM pg_type WHERE typname = 'mood'"


def test_a_classic_down_file_undoes_what_nothing_else_can(users_app: Any, database_url: str) -> None:
    """`<tag>.down.sql` reverses a DO-block migration; its row goes; drizzle-orm 0.45 then applies it again."""
    folder = users_app(("mood", MOOD))
    tag = json.loads((folder / "meta" / "_journal.json").read_text())["entries"][-1]["tag"]
    assert run_entrypoint([], url=database_url, folder=folder).returncode == 0
    (folder / f"{tag}.down.sql").write_text('DROP TYPE "public"."mood";\n')
    result = run_entrypoint(["rollback", "--last", "1", "--yes"], url=database_url, folder=folder)
    out = output_of(result)
    assert result.returncode == 0, out
    assert (
        f"↩️  {tag}: 1 reversing statements, from its down file {folder}/{tag}.down.sql, run in one transaction" in out
    )
    assert '   ↩ 1/1 DROP TYPE "public"."mood"; — as written' in out
    assert query(database_url, MOODS) == [(0,)]
    assert len(ledger(database_url)) == 1
    again = drizzle_migrate(database_url, folder)  # the down file is no journal entry: drizzle-orm ignores it
    assert again.returncode == 0, again.stderr
    assert query(database_url, MOODS) == [(1,)]
    assert len(ledger(database_url)) == 2


def _v1_release(tmp_path: Path, keep: int) -> tuple[Path, list[str]]:
    folder = tmp_path / "drizzle"
    shutil.copytree(V1_MIGRATIONS, folder)
    names = sorted(p.name for p in folder.iterdir() if p.is_dir())
    for gone in names[keep:]:
        shutil.rmtree(folder / gone)
    return folder, names[:keep]


SEED_DOWN = (
    'DROP TRIGGER "users_normalize_email" ON "users";\n--> statement-breakpoint\n'
    'DROP FUNCTION "normalize_email"();\n--> statement-breakpoint\n'
    'DELETE FROM "organizations" WHERE "name" = \'Opérations\';\n'
)
V1_ROWS = "SELECT name FROM drizzle.__drizzle_migrations ORDER BY id"


def test_a_folder_layout_down_sql_is_used(database_url: str, tmp_path: Path) -> None:
    """drizzle-kit 1.0: `<folder>/down.sql` reverses the seed migration; drizzle-orm 1.0 then applies it again."""
    folder, names = _v1_release(tmp_path, 2)
    assert run_entrypoint([], url=database_url, folder=folder).returncode == 0
    (folder / names[1] / "down.sql").write_text(SEED_DOWN)
    result = run_entrypoint(["rollback", "--to", names[0], "--yes"], url=database_url, folder=folder)
    out = output_of(result)
    assert result.returncode == 0, out
    assert f"from its down file {folder}/{names[1]}/down.sql" in out
    assert query(database_url, "SELECT count(*) FROM organizations") == [(0,)]
    assert query(database_url, "SELECT count(*) FROM pg_trigger WHERE tgname = 'users_normalize_email'") == [(0,)]
    assert query(database_url, V1_ROWS) == [(names[0],)]
    again = drizzle_migrate_v1(database_url, folder)
    assert again.returncode == 0, again.stderr
    assert query(database_url, V1_ROWS) == [(names[0],), (names[1],)]
    assert query(database_url, "SELECT name FROM organizations") == [("Opérations",)]


def test_guards_hold_across_the_rollback(database_url: str, tmp_path: Path, pg_server: Any) -> None:
    """A guard whose result a reversal moves: exit 14, the reversal's transaction rolled back, nothing changed."""
    folder, names = _v1_release(tmp_path, 2)
    assert run_entrypoint([], url=database_url, folder=folder).returncode == 0
    (folder / names[1] / "down.sql").write_text(SEED_DOWN)
    guard = "SELECT count(*) FROM organizations"
    with assert_untouched(database_url, pg_server.bin("pg_dump"), data=True):
        result = run_entrypoint(
            ["rollback", "--last", "1", "--yes"], url=database_url, folder=folder, MIGRATION_GUARDS=guard
        )
        assert result.returncode == 14, output_of(result)
    assert assert_one_error(output_of(result)) == (
        f"❌ Guard changed: {guard} returned [(1,)] before the reversal and [(0,)] after. Everything in this "
        "reversal's transaction was rolled back: fix what the message names (the database, or write a down file), "
        "then run the rollback again"
    )
