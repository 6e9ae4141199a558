"""Guards (rows that must not change) and the backup before migrating: the runbook's checklist, automated."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.postgres import PgCluster, new_base_dir
from harness.production import copy_folder
from tests.drizzle_ref import EXAMPLE_MIGRATIONS, drizzle_migrate
from tests.folders import generated_folder
from tests.support import (
    assert_one_error,
    assert_untouched,
    imported_by,
    ledger,
    output_of,
    query,
    run_entrypoint,
    start_entrypoint,
)

ROLES = "select role, count(*) from users group by role order by role"
USERS_SCHEMA_WITH_ROLE = """\
import { pgTable, serial, text } from 'drizzle-orm/pg-core';

export const users = pgTable('users', {
  id: serial('id').primaryKey(),
  email: text('email').notNull(),
  role: text('role').notNull().default('fbo'),
});
"""


# 8 managers and 60 FBOs, as in the runbook's production (`users_app`'s rows, with USERS_SCHEMA_WITH_ROLE).
ROLE_ROWS = (
    "INSERT INTO users (email, role) SELECT 'm' || n, 'manager' FROM generate_series(1, 8) n",
    "INSERT INTO users (email, role) SELECT 'f' || n, 'fbo' FROM generate_series(1, 60) n",
)


def test_guard_catches_a_migration_that_deletes_a_user(
    database_url: str, pg_server, users_app: Callable[..., Path]
) -> None:
    """A migration deleting a user changes the guard: exit 14, before/after printed, everything rolled back."""
    folder = users_app(
        ("add_column", 'ALTER TABLE "users" ADD COLUMN "nickname" text;'),
        ("cleanup", "DELETE FROM users WHERE email = 'f1';"),
        schema=USERS_SCHEMA_WITH_ROLE,
        rows=ROLE_ROWS,
    )
    with assert_untouched(database_url, pg_server.bin("pg_dump")):
        result = run_entrypoint(["--guard", ROLES], url=database_url, folder=folder)
        out = output_of(result)
        assert result.returncode == 14, out
        expected = (
            f"❌ Guard changed: {ROLES} returned [('fbo', 60), ('manager', 8)] before the migrations and "
            "[('fbo', 59), ('manager', 8)] after. Everything in this deploy's transaction was rolled back: "
            "fix the migration, then redeploy"
        )
        assert assert_one_error(out) == expected
    assert query(database_url, "SELECT count(*) FROM users") == [(68,)]


def test_a_guard_that_changes_after_a_files_own_commit_says_what_stays(
    database_url: str, users_app: Callable[..., Path]
) -> None:
    """A custom file with its own COMMIT then a DELETE: the guard catches it, and the line says it stays applied."""
    folder = users_app(
        (
            "cleanup",
            (
                'ALTER TABLE "users" ADD COLUMN "nickname" text;\n--> statement-breakpoint\nCOMMIT;\n'
                "--> statement-breakpoint\nDELETE FROM users WHERE email = 'f1';"
            ),
        ),
        schema=USERS_SCHEMA_WITH_ROLE,
        rows=ROLE_ROWS,
    )
    result = run_entrypoint(["--guard", ROLES], url=database_url, folder=folder)
    out = output_of(result)
    assert result.returncode == 14, out
    (tag,) = [p.stem for p in folder.glob("*_cleanup.sql")]
    assert assert_one_error(out) == (
        f"❌ Guard changed: {ROLES} returned [('fbo', 60), ('manager', 8)] before the migrations and "
        f"[('fbo', 59), ('manager', 8)] after. {tag} commits on its own: its statements 1-3 stay applied, and its "
        "ledger row was not written. Make them idempotent (IF NOT EXISTS), then redeploy"
    )
    assert query(database_url, "SELECT count(*) FROM users") == [(67,)]  # what the line says stays, stays
    assert len(ledger(database_url)) == 1


@pytest.mark.parametrize(
    "ending",
    [pytest.param("", id="transaction"), pytest.param("\n--> statement-breakpoint\nCOMMIT;", id="own-commit")],
)
def test_the_apps_own_writes_during_a_guarded_migration_move_no_guard(
    ending: str, database_url: str, users_app: Callable[..., Path]
) -> None:
    """A user signing up while a guarded migration runs is not the migration's doing: one snapshot, exit 0.

    Both our transaction and a file ending in its own COMMIT (run inside ours) are REPEATABLE READ when guarded.
    """
    slow = 'CREATE TABLE "notes" ("id" integer);\n--> statement-breakpoint\nSELECT pg_sleep(2);'
    folder = users_app(("slow", slow + ending), schema=USERS_SCHEMA_WITH_ROLE, rows=ROLE_ROWS)
    proc = start_entrypoint(["--guard", ROLES], url=database_url, folder=folder)
    sleeping = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(2)%' AND pid <> pg_backend_pid()"
    deadline = time.monotonic() + 30
    while query(database_url, sleeping) == [(0,)]:
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("the migration never reached pg_sleep")
        time.sleep(0.05)
    query(database_url, "INSERT INTO users (email, role) VALUES ('signed-up-meanwhile', 'fbo')")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert query(database_url, "SELECT count(*) FROM users") == [(69,)]
    assert len(ledger(database_url)) == 2


def test_guards_from_the_environment_pass_when_rows_are_kept(database_url: str, users_app: Callable[..., Path]) -> None:
    """MIGRATION_GUARDS (one query a line) pass when the migrations leave those rows alone."""
    folder = users_app(
        ("add_column", 'ALTER TABLE "users" ADD COLUMN "nickname" text;'), schema=USERS_SCHEMA_WITH_ROLE, rows=ROLE_ROWS
    )
    guards = f"{ROLES}\n\nselect count(*) from users\n"
    result = run_entrypoint([], url=database_url, folder=folder, MIGRATION_GUARDS=guards)
    assert result.returncode == 0, output_of(result)
    assert len(ledger(database_url)) == 2


def test_backup_before_pending_migrations(database_url: str, tmp_path: Path, pg_server) -> None:
    """BACKUP_DIR: a checked pg_dump -Fc named for the database and last tag, printed with its size."""
    release = copy_folder(EXAMPLE_MIGRATIONS, tmp_path / "release", keep=11)
    assert run_entrypoint([], url=database_url, folder=release).returncode == 0
    backups = tmp_path / "backups"
    result = run_entrypoint(
        [], url=database_url, folder=EXAMPLE_MIGRATIONS, BACKUP_DIR=str(backups), PG_DUMP=str(pg_server.bin("pg_dump"))
    )
    out = output_of(result)
    assert result.returncode == 0, out
    (dump,) = backups.iterdir()
    dbname = database_url.rsplit("/", 1)[1]
    assert re.match(rf"{dbname}-[0-9a-f]{{8}}-0010_perpetual_magneto-", dump.name), dump.name
    assert dump.suffix == ".dump"
    assert f"💾 Backup written and checked (pg_restore read all of it): {dump} (" in out
    assert out.index("💾 Backup written") < out.index("🚀 Running Drizzle migrations...")
    listed = subprocess.run(
        [str(pg_server.bin("pg_restore")), "--list", str(dump)], capture_output=True, text=True, check=True
    )
    assert "idx_" not in listed.stdout  # taken before 0011 created the indexes
    assert "TABLE public users" in listed.stdout


def test_no_backup_when_nothing_is_pending(database_url: str, tmp_path: Path, pg_server) -> None:
    """Nothing pending: no pg_dump runs and the folder stays empty."""
    assert drizzle_migrate(database_url, EXAMPLE_MIGRATIONS).returncode == 0
    backups = tmp_path / "backups"
    backups.mkdir()
    result = run_entrypoint(
        [], url=database_url, folder=EXAMPLE_MIGRATIONS, BACKUP_DIR=str(backups), PG_DUMP=str(pg_server.bin("pg_dump"))
    )
    assert result.returncode == 0, output_of(result)
    assert list(backups.iterdir()) == []
    assert "💾" not in result.stdout


def test_failed_backup_aborts_before_anything(database_url: str, tmp_path: Path, pg_server) -> None:
    """A backup that cannot be written: exit 15, one ❌ line, the database untouched, the app not started."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the backup folder should be")
    marker = tmp_path / "started"
    result = run_entrypoint(
        ["--", "touch", str(marker)],
        url=database_url,
        folder=EXAMPLE_MIGRATIONS,
        BACKUP_DIR=str(blocker / "backups"),
        PG_DUMP=str(pg_server.bin("pg_dump")),
    )
    out = output_of(result)
    assert result.returncode == 15, out
    assert assert_one_error(out) == out.strip().splitlines()[-1]
    assert "Backup impossible: cannot create" in out
    assert query(database_url, "SELECT to_regclass('public.users') IS NULL") == [(True,)]
    assert query(database_url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'drizzle'") == [(0,)]
    assert not marker.exists()


def test_pg_dump_older_than_the_server_is_explained(tmp_path: Path, pg_server) -> None:
    """PostgreSQL 15's pg_dump against an 18 server: a clear ❌ naming both versions, nothing migrated."""
    from tests.fix_pg import bin_dir_for

    with PgCluster(bin_dir_for(18), new_base_dir()) as cluster:
        cluster.init()
        cluster.start()
        url = cluster.url("postgres")
        result = run_entrypoint(
            [],
            url=url,
            folder=EXAMPLE_MIGRATIONS,
            BACKUP_DIR=str(tmp_path / "backups"),
            PG_DUMP="/usr/lib/postgresql/15/bin/pg_dump",
        )
        out = output_of(result)
        assert result.returncode == 15, out
        assert "pg_dump 15 cannot dump a PostgreSQL 18 server" in out
        assert query(url, "SELECT to_regclass('public.users') IS NULL") == [(True,)]
        assert query(url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'drizzle'") == [(0,)]


def _dump_of(url: str, pg_server, target: Path) -> Path:
    subprocess.run(
        [str(pg_server.bin("pg_dump")), "-Fc", "-f", str(target), f"--dbname={url}"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return target


def test_a_truncated_dump_passes_pg_restore_list_but_not_the_check(
    database_url: str, tmp_path: Path, pg_server
) -> None:
    """`pg_restore --list` reads only the table of contents, so a cut dump passes it; the whole-read check does not."""
    from entrypoint.backup.tools import check_archive

    assert drizzle_migrate(database_url, EXAMPLE_MIGRATIONS).returncode == 0
    query(
        database_url,
        "INSERT INTO users (email, password_hash, first_name, last_name, role) "
        "SELECT 'u' || n || '@x', md5(n::text), 'F', 'L', 'fbo' FROM generate_series(1, 5000) n",
    )
    whole = _dump_of(database_url, pg_server, tmp_path / "whole.dump")
    cut = tmp_path / "cut.dump"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    pg_restore = str(pg_server.bin("pg_restore"))
    listed = subprocess.run([pg_restore, "--list", str(cut)], capture_output=True, text=True, check=False)
    assert listed.returncode == 0, "pg_restore --list must accept the cut dump, or this test proves nothing"
    assert check_archive(whole, pg_restore) is None
    problem = check_archive(cut, pg_restore)
    assert problem is not None
    assert "pg_restore" in problem


def test_sigterm_during_pg_dump_leaves_no_file_named_like_a_dump(database_url: str, tmp_path: Path, pg_server) -> None:
    """SIGTERM while pg_dump runs: exit 143, the partial file removed, nothing named *.dump, the database untouched."""
    import signal
    import time

    from tests.support import start_entrypoint

    release = copy_folder(EXAMPLE_MIGRATIONS, tmp_path / "release", keep=11)
    assert run_entrypoint([], url=database_url, folder=release).returncode == 0
    tools = tmp_path / "bin"
    tools.mkdir()
    dumped = tmp_path / "dumped"
    wrapper = tools / "pg_dump"
    real = pg_server.bin("pg_dump")
    wrapper.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "--version" ]; then exec "{real}" --version; fi\n'
        f'"{real}" "$@" || exit $?\n'
        f'touch "{dumped}"\n'
        "exec sleep 60\n"  # a slow dump: the file is there, not yet checked or renamed
    )
    wrapper.chmod(0o755)
    (tools / "pg_restore").symlink_to(pg_server.bin("pg_restore"))
    backups = tmp_path / "backups"
    with assert_untouched(database_url, pg_server.bin("pg_dump"), data=True):
        proc = start_entrypoint(
            [], url=database_url, folder=EXAMPLE_MIGRATIONS, BACKUP_DIR=str(backups), PG_DUMP=str(wrapper)
        )
        deadline = time.monotonic() + 60
        while not dumped.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert dumped.exists(), proc.communicate(timeout=30)[0]
        assert [p.name for p in backups.iterdir() if p.name.endswith(".partial")], "the dump is under a temporary name"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 143, out
    assert assert_one_error(out).startswith("❌ Stopped by SIGTERM before the app started: nothing had started")
    assert list(backups.iterdir()) == []


def test_a_start_with_nothing_to_back_up_never_imports_boto3(database_url: str, tmp_path: Path) -> None:
    """BACKUP_URL set, nothing pending: `python -X importtime` shows no boto3 or botocore (0.3 s saved)."""
    assert drizzle_migrate(database_url, EXAMPLE_MIGRATIONS).returncode == 0
    result, imported = imported_by(
        [], database_url, MIGRATIONS_DIR=str(EXAMPLE_MIGRATIONS), BACKUP_URL="s3://backups/app", AWS_REGION="auto"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "💤 No pending migrations" in result.stdout
    assert "entrypoint.deploy.session" in imported
    assert not [name for name in imported if name.split(".")[0] in {"boto3", "botocore", "s3transfer"}]


def test_a_guard_that_cannot_run_is_refused_before_any_change(
    database_url: str, pg_server, users_app: Callable[..., Path]
) -> None:
    """A guard with a syntax error is a setting to fix: exit 2, one ❌ line naming it, nothing changed."""
    folder = users_app(
        ("add_column", 'ALTER TABLE "users" ADD COLUMN "nickname" text;'), schema=USERS_SCHEMA_WITH_ROLE, rows=ROLE_ROWS
    )
    broken = "select role, count(*) form users group by role"
    with assert_untouched(database_url, pg_server.bin("pg_dump"), data=True):
        result = run_entrypoint(["--guard", broken], url=database_url, folder=folder)
        out = output_of(result)
        assert result.returncode == 2, out
        error = assert_one_error(out)
        assert error.startswith("❌ Guard query failed: syntax error at or near")
        assert error.endswith(f"({broken}). Fix it in --guard / MIGRATION_GUARDS; nothing was changed")


def test_a_guard_with_a_type_mistake_is_refused_not_waited_for(
    database_url: str, users_app: Callable[..., Path]
) -> None:
    """`integer = text` is SQLSTATE 42883, like a missing function: a setting to fix (exit 2), not "not there yet"."""
    folder = users_app(
        ("add_column", 'ALTER TABLE "users" ADD COLUMN "nickname" text;'), schema=USERS_SCHEMA_WITH_ROLE, rows=ROLE_ROWS
    )
    mistaken = "select count(*) from users where id = 'f1'::text"
    result = run_entrypoint(["--guard", mistaken], url=database_url, folder=folder)
    out = output_of(result)
    assert result.returncode == 2, out
    assert assert_one_error(out).startswith("❌ Guard query failed: operator does not exist: integer = text")
    assert len(ledger(database_url)) == 1


def test_a_guard_on_a_fresh_database_waits_for_the_table(database_url: str, tmp_path: Path) -> None:
    """A fresh database: the guard's table comes with the migrations, so it is said to protect nothing yet."""
    folder = generated_folder(tmp_path / "app", [], schema=USERS_SCHEMA_WITH_ROLE)
    result = run_entrypoint([], url=database_url, folder=folder, MIGRATION_GUARDS=ROLES)
    out = output_of(result)
    assert result.returncode == 0, out
    assert (
        f'⚠️  Guard {ROLES} reads what does not exist yet (relation "users" does not exist): it protects nothing '
        "until a migration creates what it reads"
    ) in result.stdout.splitlines()
    assert len(ledger(database_url)) == 1


def test_a_migration_that_drops_what_a_guard_reads_changes_it(
    database_url: str, pg_server, users_app: Callable[..., Path]
) -> None:
    """Rows before, an error after: the guard moved (exit 14), and the drop is rolled back."""
    folder = users_app(
        ("drop_role", 'ALTER TABLE "users" DROP COLUMN "role";'), schema=USERS_SCHEMA_WITH_ROLE, rows=ROLE_ROWS
    )
    with assert_untouched(database_url, pg_server.bin("pg_dump"), data=True):
        result = run_entrypoint(["--guard", ROLES], url=database_url, folder=folder)
        out = output_of(result)
        assert result.returncode == 14, out
        error = assert_one_error(out)
        assert error.startswith(
            f"❌ Guard changed: {ROLES} returned [('fbo', 60), ('manager', 8)] before the migrations and an error "
            '(column "role" does not exist'
        )
