"""How the deploy holds migrations in transactions, and what a failure keeps.

One transaction for the run where PostgreSQL allows it; a statement that cannot run in one (CREATE INDEX
CONCURRENTLY) on its own, after the ones before it committed; a file's own COMMIT or ROLLBACK taken at its word
(or refused); a string that only looks like such a statement never taken for one. A failure is one ❌ line that
says what was kept and what rolled back; a DDL lock waits politely behind a long transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from tests.drizzle_ref import drizzle_migrate
from tests.support import (
    FIFTY_USERS,
    assert_one_error,
    assert_untouched,
    ledger,
    output_of,
    query,
    run_entrypoint,
    start_entrypoint,
)

NOT_A_VACUUM = "COMMENT ON TABLE \"noted\" IS E'it\\'s not a VACUUM';"


def _chunks(*statements: str) -> str:
    """Statements as drizzle-kit separates them."""
    return "\n--> statement-breakpoint\n".join(statements)


def test_failing_statement_rolls_back_the_whole_batch(
    database_url: str, tmp_path: Path, pg_server, users_app: Callable[..., Path]
) -> None:
    """A statement failing mid-batch: `❌ Migration failed: <server message>`, exit 6, nothing kept."""
    base = users_app(
        ("add_column", 'ALTER TABLE "users" ADD COLUMN "nickname" text;'),
        (
            "broken",
            "UPDATE users SET points = 1;\n--> statement-breakpoint\nALTER TABLE missing_table ADD COLUMN x int;",
        ),
        rows=FIFTY_USERS,
    )
    marker = tmp_path / "started"
    with assert_untouched(database_url, pg_server.bin("pg_dump")):
        result = run_entrypoint(["--", "touch", str(marker)], url=database_url, folder=base)
        out = output_of(result)
        assert result.returncode == 6, out
        expected = (
            '❌ Migration failed: relation "missing_table" does not exist (in 0002_broken, statement 2/2). '
            "Everything was rolled back: fix the migration, then redeploy"
        )
        assert assert_one_error(out) == expected
    assert query(database_url, "SELECT count(*) FROM users WHERE points = 1") == [(0,)]
    assert not marker.exists()


def test_an_own_rollback_is_refused_before_anything(
    database_url: str, tmp_path: Path, pg_server: Any, users_app: Callable[..., Path]
) -> None:
    """A file with its own ROLLBACK (drizzle-orm silently undoes the batch with it): exit 3, nothing changed."""
    folder = users_app(
        ("nick", 'ALTER TABLE "users" ADD COLUMN "nick" text;'),
        ("undo", _chunks('CREATE TABLE "t" ("id" int);', "ROLLBACK;")),
    )
    marker = tmp_path / "started"
    with assert_untouched(database_url, pg_server.bin("pg_dump")):
        result = run_entrypoint(["--", "touch", str(marker)], url=database_url, folder=folder)
    assert result.returncode == 3, output_of(result)
    assert "0002_undo runs its own ROLLBACK (statement 2/2)" in assert_one_error(output_of(result))
    assert not marker.exists()


def test_an_own_commit_then_a_failure_says_what_stays(database_url: str, users_app: Callable[..., Path]) -> None:
    """`BEGIN; … COMMIT;` then a failing statement: never "Everything was rolled back"; what stays is named."""
    folder = users_app(
        (
            "wrapped",
            'BEGIN;\n--> statement-breakpoint\nCREATE TABLE "w" ("id" int);\n--> statement-breakpoint\nCOMMIT;',
        ),
        (
            "late",
            'CREATE TABLE "late" ("id" int);\n--> statement-breakpoint\nCOMMIT;\n--> statement-breakpoint\nSELECT 1/0;',
        ),
    )
    result = run_entrypoint([], url=database_url, folder=folder)
    assert result.returncode == 6, output_of(result)
    line = assert_one_error(output_of(result))
    assert "Everything was rolled back" not in line
    assert "Applied and kept (committed before it): 0001_wrapped" in line
    assert "0002_late commits on its own: its statements 1-2 stay applied" in line
    # Both stay: w from 0001_wrapped, and late, which 0002's own COMMIT kept before its failing statement.
    assert query(database_url, "SELECT to_regclass('w') IS NOT NULL, to_regclass('late') IS NOT NULL") == [(True, True)]
    assert len(ledger(database_url)) == 2  # 0000 and 0001_wrapped; 0002 has no row


def test_a_string_literal_never_takes_a_migration_out_of_its_transaction(
    database_url: str, users_app: Callable[..., Path]
) -> None:
    r"""`E'it\'s not a VACUUM'` is a string: the migration stays in the transaction, so a failure undoes it all."""
    folder = users_app(
        ("comment", _chunks('CREATE TABLE "noted" ("id" int);', NOT_A_VACUUM, "SELECT 1/0;")),
    )
    result = run_entrypoint([], url=database_url, folder=folder)
    assert result.returncode == 6, output_of(result)
    assert assert_one_error(output_of(result)).endswith("Everything was rolled back: fix the migration, then redeploy")
    assert query(database_url, "SELECT to_regclass('noted')") == [(None,)]


def test_a_multi_line_server_message_stays_one_line(database_url: str, users_app: Callable[..., Path]) -> None:
    """A DO block raising a message with newlines: the ❌ line is still one line."""
    folder = users_app(("raise", "DO $$ BEGIN RAISE EXCEPTION E'first part\\nsecond part'; END $$;"))
    result = run_entrypoint([], url=database_url, folder=folder)
    assert result.returncode == 6, output_of(result)
    assert "first part second part" in assert_one_error(output_of(result))


def test_lock_timeout_holds_after_a_migrations_own_commit(database_url: str, users_app: Callable[..., Path]) -> None:
    """After a file's own COMMIT, a later ALTER behind a reader still gives up at DDL_LOCK_TIMEOUT (not 30 s)."""
    folder = users_app(
        ("committed", _chunks('CREATE TABLE "c" ("id" int);', "COMMIT;", 'ALTER TABLE "users" ADD COLUMN "x" int;')),
    )
    with psycopg.connect(database_url) as reader:
        reader.execute("SELECT count(*) FROM users")  # ACCESS SHARE, held by the open transaction
        started = time.monotonic()
        result = run_entrypoint(
            [], url=database_url, folder=folder, DDL_LOCK_TIMEOUT="300ms", MIGRATION_ATTEMPTS="1", timeout=60
        )
        elapsed = time.monotonic() - started
    assert result.returncode == 6, output_of(result)
    assert "canceling statement due to lock timeout" in assert_one_error(output_of(result))
    assert elapsed < 20


def test_ddl_waits_politely_for_a_long_transaction(database_url: str, users_app: Callable[..., Path]) -> None:
    """A 12 s write transaction: our DDL leaves the lock queue every DDL_LOCK_TIMEOUT, then succeeds.

    Other writers never wait much longer than DDL_LOCK_TIMEOUT behind our queued CREATE INDEX.
    """
    base = users_app(
        ("points_index", 'CREATE INDEX "users_points_index" ON "users" ("points");'),
        rows=FIFTY_USERS,
    )
    holder = psycopg.connect(database_url, application_name="long-writer")
    holder.execute("UPDATE users SET points = points + 1 WHERE id = 1")  # holds ROW EXCLUSIVE until commit
    holder_pid = holder.info.backend_pid
    proc = start_entrypoint([], url=database_url, folder=base, DDL_LOCK_TIMEOUT="2s", MIGRATION_ATTEMPTS="10")
    waits = []
    started = time.monotonic()
    with psycopg.connect(database_url, autocommit=True) as writer:
        while time.monotonic() - started < 12:
            t0 = time.monotonic()
            writer.execute("UPDATE users SET points = points + 1 WHERE id = 2")
            waits.append(time.monotonic() - t0)
            time.sleep(0.2)
    holder.commit()
    holder.close()
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert max(waits) < 2 + 1.5, waits
    assert "🔁 Migration transaction timed out waiting for a lock (SQLSTATE 55P03)" in out
    assert f"blocked by pid {holder_pid} (long-writer" in out
    assert query(database_url, "SELECT count(*) FROM pg_indexes WHERE indexname = 'users_points_index'") == [(1,)]


def test_concurrent_index_where_drizzle_cannot(
    database_url: str, database_factory, users_app: Callable[..., Path]
) -> None:
    """A CREATE INDEX CONCURRENTLY migration: drizzle-orm fails on it, we apply it, and drizzle-orm is then a no-op."""
    base = users_app(
        (
            "points_concurrently",
            'CREATE INDEX CONCURRENTLY IF NOT EXISTS "users_points_cc" ON "users" USING btree ("points");',
        ),
        ("bio", 'ALTER TABLE "users" ADD COLUMN "bio" text;'),
        rows=FIFTY_USERS,
    )

    theirs = database_factory()
    failed = drizzle_migrate(theirs, base)
    assert failed.returncode != 0
    assert "cannot run inside a transaction block" in failed.stderr

    result = run_entrypoint([], url=database_url, folder=base)
    out = output_of(result)
    assert result.returncode == 0, out
    assert "🧱 0001_points_concurrently cannot run in a transaction" in out
    assert query(
        database_url,
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.users_points_cc'::regclass",
    ) == [(True,)]
    rows = ledger(database_url)
    assert len(rows) == 3
    again = drizzle_migrate(database_url, base)
    assert again.returncode == 0, again.stderr
    assert ledger(database_url) == rows


def test_failed_concurrent_build_is_cleaned_up_on_the_next_deploy(
    database_url: str, users_app: Callable[..., Path]
) -> None:
    """A unique concurrent build that fails leaves an INVALID index; the next deploy drops and rebuilds it."""
    base = users_app(
        (
            "unique_email",
            'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "users_email_unique" ON "users" USING btree ("email");',
        ),
        rows=FIFTY_USERS,
    )
    query(database_url, "INSERT INTO users (email) VALUES ('u1@example.com')")
    rows = ledger(database_url)
    first = run_entrypoint([], url=database_url, folder=base)
    out = output_of(first)
    assert first.returncode == 6, out
    assert "❌ Migration failed: could not create unique index" in out
    assert "runs outside a transaction" in out
    assert ledger(database_url) == rows
    invalid = "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('public.users_email_unique')"
    assert query(database_url, invalid) == [(False,)]

    query(database_url, "DELETE FROM users WHERE id = (SELECT max(id) FROM users)")
    second = run_entrypoint([], url=database_url, folder=base)
    out = output_of(second)
    assert second.returncode == 0, out
    assert "🧹 Dropped the INVALID index public.users_email_unique left by a failed concurrent build" in out
    assert query(database_url, invalid) == [(True,)]
    assert len(ledger(database_url)) == len(rows) + 1


def test_two_instances_with_a_concurrent_build(database_url: str, users_app: Callable[..., Path]) -> None:
    """Two instances start together on a CONCURRENTLY migration: the waiter holds no snapshot, so no deadlock."""
    base = users_app(
        (
            "points_concurrently",
            'CREATE INDEX CONCURRENTLY IF NOT EXISTS "users_points_cc" ON "users" USING btree ("points");',
        ),
        rows=FIFTY_USERS,
    )
    procs = [start_entrypoint(["--", "true"], url=database_url, folder=base, LOCK_WAIT_TIMEOUT="60") for _ in range(2)]
    outputs = [p.communicate(timeout=90)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert sum("   ✔ 0001_points_concurrently (" in out for out in outputs) == 1
    assert len(ledger(database_url)) == 2
