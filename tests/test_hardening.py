"""Production hardening: a failing statement, SIGTERM mid-migration, poolers, and lock-queue-safe DDL."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

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


def test_connection_killed_mid_migration_restarts_the_session(
    database_url: str, users_app: Callable[..., Path]
) -> None:
    """57P01 mid-transaction: nothing was committed, so a new session re-plans and applies it once."""
    base = users_app(
        ("slow_column", 'ALTER TABLE "users" ADD COLUMN "slow" text;\n--> statement-breakpoint\nSELECT pg_sleep(2);'),
        rows=FIFTY_USERS,
    )
    proc = start_entrypoint([], url=database_url, folder=base)
    deadline = time.monotonic() + 30
    killed: list[tuple[object, ...]] = []
    while not killed and time.monotonic() < deadline:
        killed = query(
            database_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE '%pg_sleep(2)%' AND pid <> pg_backend_pid() AND application_name = 'entrypoint'",
        )
        time.sleep(0.05)
    assert killed == [(True,)]
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "🔌 Lost the database connection (" in out
    assert out.count("   ✔ 0001_slow_column (") == 1
    assert len(ledger(database_url)) == 2
    assert query(database_url, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'slow'") == [(1,)]


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
