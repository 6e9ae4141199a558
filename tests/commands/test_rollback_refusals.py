"""`rollback` refuses before any change: statements with no safe inverse, and data that would be lost.

Each irreversible kind (a drop, a data change, an added enum value, a type
change, a DO block), in a migration drizzle-kit generated (`--custom`), refuses
the whole rollback with the database byte-for-byte as it was, names the
statement, and points to `restore` with the backup the deploy recorded before
applying it. A step that would drop rows or values refuses unless
--allow-data-loss, and then only after a backup, which holds what was dropped.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support import assert_one_error, assert_untouched, ledger, output_of, query, run_entrypoint

ROWS = ["INSERT INTO users (email) SELECT 'user' || n || '@example.com' FROM generate_series(1, 3) n"]
BREAK = "\n--> statement-breakpoint\n"
IRREVERSIBLE = {
    "a dropped column": ('ALTER TABLE "users" DROP COLUMN "points";', 1, "it drops a column",
                         "ALTER TABLE users DROP COLUMN points"),
    "a data change": ('UPDATE "users" SET "points" = "points" + 1;', 1, "it changes data",
                      "UPDATE users SET points = points + 1"),
    "an added enum value": (f"CREATE TYPE \"tier\" AS ENUM('free');{BREAK}ALTER TYPE \"tier\" ADD VALUE 'pro';", 2,
                            "it adds an enum value, and PostgreSQL cannot remove one", "ALTER TYPE tier ADD VALUE 'pro'"),
    "a type change": ('ALTER TABLE "users" ALTER COLUMN "points" TYPE bigint;', 1, "it changes a column's type",
                      "ALTER TABLE users ALTER COLUMN points TYPE bigint"),
    "a DO block": ('DO $$ BEGIN UPDATE "users" SET "points" = 0; END $$;', 1, "a DO block", "DO $$ BEGIN UPDATE"),
}  # fmt: skip


def _tags(folder: Path) -> list[str]:
    return [entry["tag"] for entry in json.loads((folder / "meta" / "_journal.json").read_text())["entries"]]


def _backed_up(url: str, folder: Path, backups: Path, pg_server: Any) -> Path:
    """Deploy FOLDER's pending migrations with BACKUP_DIR: the one dump it took."""
    deployed = run_entrypoint(
        [], url=url, folder=folder, BACKUP_DIR=str(backups), PG_DUMP=str(pg_server.bin("pg_dump"))
    )
    assert deployed.returncode == 0, output_of(deployed)
    (dump,) = backups.glob("*.dump")
    return dump


@pytest.mark.parametrize("case", list(IRREVERSIBLE))
def test_each_irreversible_kind_refuses_with_nothing_changed(
    case: str, users_app: Any, database_url: str, tmp_path: Path, pg_server: Any
) -> None:
    """No safe inverse: exit 24, one ❌ line naming the statement and the backup to restore, the database as it was."""
    body, number, why, shown = IRREVERSIBLE[case]
    folder = users_app(("change", body), rows=ROWS)
    dump = _backed_up(database_url, folder, tmp_path / "backups", pg_server)
    tag = _tags(folder)[-1]
    with assert_untouched(database_url, pg_server.bin("pg_dump"), data=True):
        result = run_entrypoint(["rollback", "--last", "1", "--yes"], url=database_url, folder=folder)
        out = output_of(result)
        assert result.returncode == 24, out
    line = assert_one_error(out)
    assert line.startswith(
        f"❌ Rollback refused, nothing was changed: {tag} cannot be undone: its statement {number}/{number} has no "
        f"safe inverse ({why}"
    )
    assert shown in line
    assert f"Restore the backup taken before it was deployed: `python -m entrypoint restore {dump}` (taken " in line
    assert "; restore point " in line
    assert f"or write its down file {folder}/{tag}.down.sql" in line


def test_without_a_recorded_backup_the_refusal_says_so(users_app: Any, database_url: str, pg_server: Any) -> None:
    """Deployed without BACKUP_DIR/BACKUP_URL: the refusal says no backup is recorded, and what else to restore."""
    folder = users_app(("change", 'UPDATE "users" SET "points" = 1;'), rows=ROWS)
    assert run_entrypoint([], url=database_url, folder=folder).returncode == 0
    with assert_untouched(database_url, pg_server.bin("pg_dump"), data=True):
        result = run_entrypoint(["rollback", "--last", "1", "--yes"], url=database_url, folder=folder)
    assert result.returncode == 24, output_of(result)
    assert (
        "No backup taken before it was deployed is recorded in drizzle.__drizzle_migrations_audit: restore one you "
        "took (`python -m entrypoint restore SOURCE`) or use point-in-time recovery"
    ) in assert_one_error(output_of(result))


NOTES = 'CREATE TABLE "notes" ("id" serial PRIMARY KEY, "body" text);'
NICKNAME = 'ALTER TABLE "users" ADD COLUMN "nickname" text DEFAULT \'\';'


def test_data_a_step_would_drop_is_refused_without_allow_data_loss(
    users_app: Any, database_url: str, pg_server: Any
) -> None:
    """Rows in a table it drops, values in a column it drops: refused (exit 24) unless --allow-data-loss and a backup."""
    folder = users_app(("notes", f"{NOTES}{BREAK}{NICKNAME}"), rows=ROWS)
    assert run_entrypoint([], url=database_url, folder=folder).returncode == 0
    query(database_url, "INSERT INTO notes (body) SELECT 'note ' || n FROM generate_series(1, 3) n")
    query(database_url, "UPDATE users SET nickname = 'nick' WHERE id = 1")
    with assert_untouched(database_url, pg_server.bin("pg_dump"), data=True):
        refused = run_entrypoint(["rollback", "--last", "1", "--yes"], url=database_url, folder=folder)
        assert refused.returncode == 24, output_of(refused)
        assert assert_one_error(output_of(refused)) == (
            "❌ Rollback refused, nothing was changed: reversing would lose data: users.nickname holds 1 value other "
            "than NULL or its default ''; notes holds 3 rows. Pass --allow-data-loss to drop it anyway (after a "
            "backup: set BACKUP_DIR or BACKUP_URL), or write a down file that keeps it"
        )
        unsaved = run_entrypoint(
            ["rollback", "--last", "1", "--yes", "--allow-data-loss"], url=database_url, folder=folder
        )
        assert unsaved.returncode == 24, output_of(unsaved)
        assert "only after a backup, and neither BACKUP_DIR nor BACKUP_URL is set" in assert_one_error(
            output_of(unsaved)
        )


def test_allow_data_loss_takes_the_backup_first(
    users_app: Any, database_url: str, tmp_path: Path, pg_server: Any
) -> None:
    """--allow-data-loss with BACKUP_DIR: the dump is taken before any change, holds the rows, and restores them."""
    folder = users_app(("notes", f"{NOTES}{BREAK}{NICKNAME}"), rows=ROWS)
    assert run_entrypoint([], url=database_url, folder=folder).returncode == 0
    query(database_url, "INSERT INTO notes (body) SELECT 'note ' || n FROM generate_series(1, 3) n")
    query(database_url, "UPDATE users SET nickname = 'nick' WHERE id = 1")
    before = ledger(database_url)
    backups = tmp_path / "backups"
    pg_dump = str(pg_server.bin("pg_dump"))
    result = run_entrypoint(
        ["rollback", "--last", "1", "--yes", "--allow-data-loss"],
        url=database_url,
        folder=folder,
        BACKUP_DIR=str(backups),
        PG_DUMP=pg_dump,
    )
    out = output_of(result)
    assert result.returncode == 0, out
    lines = out.splitlines()
    order = [
        next(i for i, line in enumerate(lines) if line.startswith(prefix))
        for prefix in ("⚠️  --allow-data-loss: notes holds 3 rows", "💾 Backing up the database before rolling back",
                       "💾 Backup written and checked", "📍 Restore point", "   ↩ 0001_notes reversed")
    ]  # fmt: skip
    assert order == sorted(order), out
    assert query(database_url, "SELECT to_regclass('notes')") == [(None,)]
    assert ledger(database_url) == before[:-1]
    (dump,) = backups.glob("*.dump")
    listing = subprocess.run(
        [str(pg_server.bin("pg_restore")), "--list", str(dump)], capture_output=True, text=True, check=True
    ).stdout
    assert "TABLE DATA public notes" in listing
    recorded = query(
        database_url,
        "SELECT detail->>'path', detail->>'for' FROM drizzle.__drizzle_migrations_audit WHERE reason = 'backup'",
    )
    assert recorded == [(str(dump), "rollback")]

    restored = run_entrypoint(["restore", str(dump), "--yes"], url=database_url, folder=folder, PG_DUMP=pg_dump)
    assert restored.returncode == 0, output_of(restored)
    assert query(database_url, "SELECT count(*) FROM notes") == [(3,)]
    assert query(database_url, "SELECT nickname FROM users WHERE id = 1") == [("nick",)]
    assert ledger(database_url) == before
