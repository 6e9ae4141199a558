"""SIGTERM and SIGINT before the app starts: exit 143 or 130 within seconds, nothing half done, and a line that says so.

Mid-migration the running statement is cancelled and rolled back; while waiting for the lock, nothing
had started. (A signal mid-backup, mid-index-build and mid-restore: tests/deploy/test_backup.py,
tests/deploy/test_online_indexes.py, tests/commands/test_restore.py.)
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from entrypoint.db.lock import lock_key
from tests.drizzle_ref import EXAMPLE_MIGRATIONS
from tests.support import FIFTY_USERS, assert_one_error, assert_untouched, query, start_entrypoint


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_migration(
    *, signum: int, code: int, database_url: str, tmp_path: Path, pg_server, users_app: Callable[..., Path]
) -> None:
    """SIGTERM/SIGINT during pg_sleep(30): exit 143/130 within seconds, no partial state, no query, no lock."""
    base = users_app(
        ("slow", 'ALTER TABLE "users" ADD COLUMN "slow" text;\n--> statement-breakpoint\nSELECT pg_sleep(30);'),
        rows=FIFTY_USERS,
    )
    marker = tmp_path / "started"
    with assert_untouched(database_url, pg_server.bin("pg_dump")):
        proc = start_entrypoint(["--", "touch", str(marker)], url=database_url, folder=base)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            sleeping = query(
                database_url,
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()",
            )
            if sleeping != [(0,)]:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the migration never reached pg_sleep")
        sent = time.monotonic()
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=20)
        elapsed = time.monotonic() - sent
        assert proc.returncode == code, out
        assert elapsed < 8, elapsed
        name = signal.Signals(signum).name
        assert out.splitlines()[-1].startswith(f"❌ Stopped by {name} before the app started")
        assert "Traceback" not in out
        assert not marker.exists()
    assert query(
        database_url,
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()",
    ) == [(0,)]
    assert query(database_url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == [(0,)]


def test_sigterm_while_waiting_for_the_lock_says_nothing_started(database_url: str) -> None:
    """SIGTERM during the lock wait: exit 143, and the line says nothing had started (no "rolled back")."""
    dbname = database_url.rsplit("/", 1)[1]
    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (lock_key(dbname, "drizzle", "__drizzle_migrations"),))
        proc = start_entrypoint([], url=database_url, folder=EXAMPLE_MIGRATIONS)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not query(
            database_url, "SELECT 1 FROM pg_stat_activity WHERE application_name = 'entrypoint'"
        ):
            time.sleep(0.1)
        time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 143, out
    line = assert_one_error(out)
    assert "nothing had started (it was taking the migration lock), so nothing was changed" in line
    assert "rolled back" not in line
