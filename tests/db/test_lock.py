"""The advisory lock: concurrent deploys apply each migration once; a held lock is waited for, then reported.

Its holder is named (or said to be another role's session), and a transaction pooler, behind which the lock
cannot be trusted, is refused.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg

from entrypoint.db.lock import lock_key
from harness.production import journal_entries
from tests.drizzle_ref import EXAMPLE_MIGRATIONS
from tests.folders import generated_folder
from tests.support import assert_one_error, ledger, output_of, query, run_entrypoint, start_entrypoint


def _key(url: str) -> int:
    with psycopg.connect(url) as conn:
        return lock_key(conn.info.dbname, "drizzle", "__drizzle_migrations")


def test_eight_instances_at_once(database_url: str, tmp_path: Path) -> None:
    """8 processes started together on a fresh database: all exit 0 and exec, each migration applied once."""
    marks = [tmp_path / f"app-{n}" for n in range(8)]
    procs = [
        start_entrypoint(["--", "touch", str(mark)], url=database_url, folder=EXAMPLE_MIGRATIONS) for mark in marks
    ]
    outputs = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, outputs
    assert all(mark.exists() for mark in marks)
    tags = [e["tag"] for e in journal_entries(EXAMPLE_MIGRATIONS)]
    rows = ledger(database_url)
    assert len(rows) == len(tags)
    assert [r[0] for r in rows] == list(range(1, len(tags) + 1))
    assert sum(out.count("   ✔ ") for out in outputs) == len(tags)
    assert sum("💤 No pending migrations" in out for out in outputs) == 7


def test_waits_for_a_held_lock_and_names_the_holder(database_url: str) -> None:
    """While another session holds the lock, we wait, say who holds it, then proceed once it is released."""
    with psycopg.connect(database_url, autocommit=True, application_name="other-deploy") as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (_key(database_url),))
        holder_pid = holder.info.backend_pid
        proc = start_entrypoint([], url=database_url, folder=EXAMPLE_MIGRATIONS)
        time.sleep(3)
        assert proc.poll() is None, "must still be waiting"
        assert query(database_url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'drizzle'") == [(0,)]
        holder.execute("SELECT pg_advisory_unlock_all()")
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert f"⏳ Waiting for the migration lock, held by pid {holder_pid} (other-deploy, connected since " in out
    assert "🔒 Migration lock acquired after" in out


def test_lock_timeout_exits_5_and_changes_nothing(database_url: str, tmp_path: Path) -> None:
    """A lock held past LOCK_WAIT_TIMEOUT: exit 5, one ❌ line naming the holder, app not started."""
    marker = tmp_path / "started"
    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (_key(database_url),))
        result = run_entrypoint(
            ["--", "touch", str(marker)], url=database_url, folder=EXAMPLE_MIGRATIONS, LOCK_WAIT_TIMEOUT="2"
        )
        pid = holder.info.backend_pid
    out = output_of(result)
    assert result.returncode == 5, out
    assert f"❌ Migration lock still held by pid {pid} after 2s" in out
    assert assert_one_error(out) == out.splitlines()[-1]
    assert not marker.exists()
    assert query(database_url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'drizzle'") == [(0,)]


def test_lock_is_released_after_the_run(database_url: str) -> None:
    """After a run, no advisory lock is left behind and the key can be taken at once."""
    assert run_entrypoint([], url=database_url, folder=EXAMPLE_MIGRATIONS).returncode == 0
    with psycopg.connect(database_url, autocommit=True) as conn:
        got = conn.execute("SELECT pg_try_advisory_lock(%s)", (_key(database_url),)).fetchone()
    assert got == (True,)


def test_transaction_pooler_is_refused(pgbouncer_url: str, database_url: str, tmp_path: Path) -> None:
    """Through PgBouncer in transaction mode the advisory lock is not ours: exit 10 with a hint, nothing applied."""
    folder = generated_folder(tmp_path / "app", [])
    result = run_entrypoint([], url=pgbouncer_url, folder=folder)
    out = output_of(result)
    assert result.returncode == 10, out
    assert "MIGRATION_DATABASE_URL" in out.splitlines()[-1]
    assert query(database_url, "SELECT to_regclass('public.users') IS NULL") == [(True,)]
    direct = run_entrypoint([], url=pgbouncer_url, folder=folder, MIGRATION_DATABASE_URL=database_url)
    assert direct.returncode == 0, output_of(direct)


def test_a_lock_held_by_another_role_is_named_so(database_url: str, role_factory: Any) -> None:
    """The holder is another role's session (pg_stat_activity hides its details): "a session of another role"."""
    url = role_factory("s3cret-waiter")
    dbname = database_url.rsplit("/", 1)[1]
    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (lock_key(dbname, "drizzle", "__drizzle_migrations"),))
        pid = holder.info.backend_pid
        result = run_entrypoint([], url=url, folder=EXAMPLE_MIGRATIONS, LOCK_WAIT_TIMEOUT="2")
    assert result.returncode == 5, output_of(result)
    assert f"⏳ Waiting for the migration lock, held by pid {pid} (a session of another role)..." in result.stdout
    assert "None" not in result.stdout
