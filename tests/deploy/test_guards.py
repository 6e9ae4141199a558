"""Guards (rows that must not change): the runbook's checklist, automated, around the deploy's migrations.

A guard whose result changes is exit 14 and the migrations roll back (the ❌ line names what a file's own COMMIT
kept); the app's own writes meanwhile move no guard; a guard that cannot run is a setting to fix (exit 2).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.folders import generated_folder
from tests.support import assert_one_error, assert_untouched, ledger, output_of, query, run_entrypoint, start_entrypoint

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
