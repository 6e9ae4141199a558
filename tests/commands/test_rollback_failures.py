"""A rollback that stops midway: what was reversed stays reversed, the ❌ line says so, and a rerun finishes it.

Three ways to stop: a reversing statement the database refuses (something made
outside the migrations depends on what it drops), SIGTERM while a statement
waits for a lock the old release holds, and DEPLOY_DEADLINE passing there. Each
leaves the ledger in step with the schema (a reversed migration has no row, the
others keep theirs), prints exactly one ❌ line, and the next rollback goes on.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from tests.drizzle_ref import EXAMPLE_MIGRATIONS, drizzle_migrate
from tests.support import assert_one_error, ledger, output_of, query, run_entrypoint, start_entrypoint

IDX = "SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'idx\\_%'"
VALIDATED_BY = "SELECT count(*) FROM information_schema.columns WHERE column_name = 'validated_by'"
WAITING = (
    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'entrypoint' AND wait_event_type = 'Lock' "
    "AND query NOT LIKE '%pg_try_advisory_lock%'"
)


def test_a_failed_reversal_keeps_what_was_reversed(database_url: str) -> None:
    """0011 reversed, then 0010's DROP TYPE refused (a column made by hand uses it): exit 25, 0011 stays reversed."""
    assert drizzle_migrate(database_url, EXAMPLE_MIGRATIONS).returncode == 0
    query(database_url, 'ALTER TABLE "campaigns" ADD COLUMN "cadence" action_frequency')
    result = run_entrypoint(["rollback", "--last", "2", "--yes"], url=database_url, folder=EXAMPLE_MIGRATIONS)
    out = output_of(result)
    assert result.returncode == 25, out
    assert assert_one_error(out) == (
        "❌ Rollback failed: cannot drop type action_frequency because other objects depend on it (in "
        "0010_perpetual_magneto's reversal, statement 5/5). Reversed and kept (committed before it): "
        "0011_performance_indexes. Not reversed (its transaction rolled back, still applied): 0010_perpetual_magneto: "
        "fix what the message names (the database, or write a down file), then run the rollback again"
    )
    assert query(database_url, IDX) == [(0,)]
    assert len(ledger(database_url)) == 11
    assert query(database_url, VALIDATED_BY) == [(1,)]  # 0010's reversal rolled back whole

    query(database_url, 'ALTER TABLE "campaigns" DROP COLUMN "cadence"')
    again = run_entrypoint(
        ["rollback", "--to", "0009_daily_chat", "--yes"], url=database_url, folder=EXAMPLE_MIGRATIONS
    )
    assert again.returncode == 0, output_of(again)
    assert query(database_url, VALIDATED_BY) == [(0,)]
    assert len(ledger(database_url)) == 10


@contextmanager
def _old_release_reading(url: str, tables: str) -> Iterator[None]:
    """A session of the old release idle in a transaction that read TABLES: DDL on them waits for it."""
    with psycopg.connect(url) as blocker:
        blocker.execute(f"SELECT 1 FROM {tables} LIMIT 0".encode())
        yield
        blocker.rollback()


def _wait_until_waiting(url: str, proc: Any) -> None:
    for _ in range(300):
        if query(url, WAITING) == [(1,)]:
            return
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        time.sleep(0.1)
    pytest.fail("the rollback never waited for the lock")


NOTES = 'CREATE TABLE "notes" ("id" serial PRIMARY KEY, "body" text);'
POINTS_INDEX = 'CREATE INDEX "users_points_idx" ON "users" USING btree ("points");'
MIDWAY = (
    "❌ Stopped by SIGTERM during the rollback: reversed and kept (committed before it): 0002_points_index; the "
    "running reversal was cancelled and rolled back, and the lock released. Run the rollback again to reverse the rest"
)
OUTSIDE = (
    "❌ Stopped by SIGTERM during the rollback: the running statement was cancelled and rolled back, and the lock "
    "released. Its reversal runs outside a transaction: the statements before it stay done and its ledger row was "
    "not deleted; run the rollback again to finish it (IF EXISTS skips what is already dropped)"
)


def test_sigterm_between_two_reversals(users_app: Any, database_url: str) -> None:
    """SIGTERM while the second reversal waits for the old release: the first stays reversed, one ❌ line, a rerun ends it."""
    folder = users_app(("notes", NOTES), ("points_index", POINTS_INDEX))
    assert run_entrypoint([], url=database_url, folder=folder).returncode == 0
    with _old_release_reading(database_url, "notes"):
        proc = start_entrypoint(
            ["rollback", "--last", "2", "--yes"], url=database_url, folder=folder, DDL_LOCK_TIMEOUT="1min"
        )
        _wait_until_waiting(database_url, proc)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, out
    assert assert_one_error(out) == MIDWAY
    assert len(ledger(database_url)) == 2  # 0002's row deleted with its index; 0001's kept with its table
    assert query(database_url, "SELECT to_regclass('users_points_idx'), to_regclass('notes') IS NOT NULL") == [
        (None, True)
    ]
    finished = run_entrypoint(["rollback", "--to", "0000_init", "--yes"], url=database_url, folder=folder)
    assert finished.returncode == 0, output_of(finished)
    assert len(ledger(database_url)) == 1


def test_sigterm_in_a_concurrent_drop(database_url: str) -> None:
    """SIGTERM in a DROP INDEX CONCURRENTLY waiting for the old release: its row kept, one ❌ line, a rerun ends it."""
    assert drizzle_migrate(database_url, EXAMPLE_MIGRATIONS).returncode == 0
    with _old_release_reading(database_url, "actions, campaigns, challenges, user_actions, users"):
        proc = start_entrypoint(
            ["rollback", "--last", "1", "--yes"],
            url=database_url,
            folder=EXAMPLE_MIGRATIONS,
            DDL_LOCK_TIMEOUT="1min",
            INDEX_BUILD="concurrent",
        )
        _wait_until_waiting(database_url, proc)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, out
    assert assert_one_error(out) == OUTSIDE
    assert len(ledger(database_url)) == 12
    finished = run_entrypoint(
        ["rollback", "--last", "1", "--yes"], url=database_url, folder=EXAMPLE_MIGRATIONS, INDEX_BUILD="concurrent"
    )
    assert finished.returncode == 0, output_of(finished)
    assert query(database_url, IDX) == [(0,)]
    assert len(ledger(database_url)) == 11


def test_deploy_deadline_bounds_a_rollback(users_app: Any, database_url: str) -> None:
    """DEPLOY_DEADLINE passes while the second reversal waits (the heartbeat says so): exit 21, the first stays reversed."""
    folder = users_app(("notes", NOTES), ("points_index", POINTS_INDEX))
    assert run_entrypoint([], url=database_url, folder=folder).returncode == 0
    with _old_release_reading(database_url, "notes"):
        result = run_entrypoint(
            ["rollback", "--last", "2", "--yes"],
            url=database_url,
            folder=folder,
            DDL_LOCK_TIMEOUT="1min",
            DEPLOY_DEADLINE="4s",
            HEARTBEAT_INTERVAL="1",
        )
    out = output_of(result)
    assert result.returncode == 21, out
    # The deploy's heartbeat watches a reversal too, and says who it waits for.
    assert any(line.startswith("⏱️  0001_notes: statement 1/1 still running after ") for line in out.splitlines()), out
    assert assert_one_error(out).startswith(
        "❌ DEPLOY_DEADLINE (4s) passed in 0001_notes's reversal, statement 1/1, during the rollback: the running "
        "reversal was cancelled, and the migration lock released. Reversed and kept (committed before it): "
        "0002_points_index. Not reversed (its transaction rolled back, still applied): 0001_notes: run the rollback "
        "again to go on"
    )
    assert len(ledger(database_url)) == 2
