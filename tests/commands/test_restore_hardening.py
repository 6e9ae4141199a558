"""The third hostile run's `restore` cases (issue 24), against a real server with the suite's client tools.

The dumps are the deploy's own (BACKUP_DIR). Each refusal is one `❌` line: exit 22 when nothing was changed,
23 when the restore stands but a check after it failed, 21 when DEPLOY_DEADLINE passed.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.drizzle_ref import drizzle_migrate
from tests.folders import add_custom, generated_folder
from tests.support import (
    FIFTY_USERS,
    assert_one_error,
    assert_untouched,
    ledger,
    output_of,
    query,
    run_entrypoint,
    start_entrypoint,
    suite_pg_dump,
)

pytestmark = pytest.mark.usefixtures("suite_pg_tools")


def _restore(url: str, dump: Path, folder: Path, *args: str, timeout: float = 120, **env: str) -> Any:
    """`python -m entrypoint restore --yes DUMP` with the suite's client tools."""
    return run_entrypoint(
        ["restore", "--yes", str(dump), *args, "--pg-dump", suite_pg_dump()],
        url=url,
        folder=folder,
        timeout=timeout,
        **env,
    )


def _backed_up(url: str, folder: Path, tmp_path: Path, **env: str) -> Path:
    """Deploy FOLDER with BACKUP_DIR: the dump it took before its first change."""
    backups = tmp_path / "backups"
    deploy = run_entrypoint([], url=url, folder=folder, BACKUP_DIR=str(backups), PG_DUMP=suite_pg_dump(), **env)
    assert deploy.returncode == 0, output_of(deploy)
    (dump,) = backups.glob("*.dump")
    return dump


# --------------------------------------------------------------------------
# Item 16: a schema whose name has a space.


def test_a_ledger_schema_with_a_space_is_kept_as_a_schema_that_exists(database_url: str, tmp_path: Path) -> None:
    """MIGRATIONS_SCHEMA="my ledger": the restore keeps that schema (and the audit table the repair made in it)."""
    project = tmp_path / "app"
    folder = generated_folder(project, [])
    assert drizzle_migrate(database_url, folder, schema="my ledger").returncode == 0
    add_custom(project, "nick", 'ALTER TABLE "users" ADD COLUMN "nick" text;')
    query(
        database_url, 'UPDATE "my ledger".__drizzle_migrations SET created_at = created_at - 1'
    )  # drift: the sync repairs it
    env = {"MIGRATIONS_SCHEMA": "my ledger"}
    dumped_ledger = ledger(database_url, schema="my ledger")
    dump = _backed_up(database_url, folder, tmp_path, **env)
    audited = query(database_url, 'SELECT reason FROM "my ledger".__drizzle_migrations_audit ORDER BY audited_at')
    assert any("drift" in reason for (reason,) in audited), audited  # the repair's row, made after the dump

    result = _restore(database_url, dump, folder, **env)
    assert result.returncode == 0, output_of(result)
    assert ledger(database_url, schema="my ledger") == dumped_ledger
    assert query(database_url, 'SELECT reason FROM "my ledger".__drizzle_migrations_audit ORDER BY audited_at') == (
        audited
    )
    assert query(database_url, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'nick'") == [(0,)]


# --------------------------------------------------------------------------
# Item 5: the restore leaves exactly the dumped state in the schemas it restores, so the redeploy works.

LATER = (
    "later",
    (
        "CREATE TYPE \"mood\" AS ENUM ('calm', 'busy');\n--> statement-breakpoint\n"
        'CREATE SEQUENCE "ticket_seq";\n--> statement-breakpoint\n'
        'CREATE TABLE "audit_log" ("id" serial PRIMARY KEY, "mood" "mood", "note" text);'
    ),
)


def test_restore_drops_what_the_rolled_back_migration_created_and_the_redeploy_works(
    database_url: str, pg_server: Any, tmp_path: Path, users_app: Callable[..., Path]
) -> None:
    """A table (with rows written since), an enum and a sequence 0001 made: listed, dropped with the restore.

    Then the redeploy applies 0001 again, and drizzle-orm finds nothing to do.
    """
    folder = users_app(LATER, rows=FIFTY_USERS)
    dump = _backed_up(database_url, folder, tmp_path)
    query(database_url, "INSERT INTO audit_log (mood, note) VALUES ('busy', 'written since the dump')")
    dry = _restore(database_url, dump, folder, "--dry-run")
    plan = [
        (
            "   not in the dump, so dropped with it (3 objects of drizzle, public, created since it was taken, e.g. by "
            "the migrations it rolls back):"
        ),
        "      TABLE public.audit_log",
        "      SEQUENCE public.ticket_seq",
        "      TYPE public.mood",
    ]
    assert [line for line in dry.stdout.splitlines() if line in plan] == plan, output_of(dry)

    result = _restore(database_url, dump, folder)
    assert result.returncode == 0, output_of(result)
    for lines in plan:
        assert lines in result.stdout
    assert query(
        database_url,
        "SELECT to_regclass('audit_log'), to_regclass('ticket_seq'), to_regtype('mood'), (SELECT count(*) FROM users)",
    ) == [(None, None, None, 50)]
    assert len(ledger(database_url)) == 1

    redeploy = run_entrypoint([], url=database_url, folder=folder)
    assert redeploy.returncode == 0, output_of(redeploy)
    assert "   ✔ 0001_later (3 statements, " in redeploy.stdout
    rows = ledger(database_url)
    assert drizzle_migrate(database_url, folder).returncode == 0
    assert ledger(database_url) == rows  # drizzle-orm found nothing to do


def test_a_drop_that_would_reach_outside_the_restored_schemas_is_refused(
    database_url: str, pg_server: Any, tmp_path: Path, users_app: Callable[..., Path]
) -> None:
    """A view in another schema reads a table the dump does not hold: exit 22 naming the view, nothing changed."""
    folder = users_app(LATER)
    dump = _backed_up(database_url, folder, tmp_path)
    query(database_url, "CREATE SCHEMA reporting; CREATE VIEW reporting.busy AS SELECT id FROM audit_log")
    with assert_untouched(database_url, pg_server.bin("pg_dump"), data=True):
        result = _restore(database_url, dump, folder)
    assert result.returncode == 22, output_of(result)
    assert assert_one_error(output_of(result)) == (
        "❌ Restore refused, nothing was changed: dropping what the dump does not hold would also drop 1 object "
        "outside the schemas it restores: view reporting.busy. Drop or change them first, or restore into a new "
        "database"
    )


# --------------------------------------------------------------------------
# Item 12: the restore waits as a deploy does: bounded, retried, visible, within DEPLOY_DEADLINE.

NICK = ("nick", 'ALTER TABLE "users" ADD COLUMN "nick" text;')


@contextmanager
def _app_reading_users(url: str) -> Iterator[int]:
    """An app session in the middle of a transaction that read users (ACCESS SHARE, held): its pid."""
    with psycopg.connect(url, application_name="web") as app:
        app.execute("SELECT count(*) FROM users")
        try:
            yield app.info.backend_pid
        finally:
            app.rollback()


def _restore_waits_on_a_lock(url: str) -> None:
    """Until the restore's session (ours, or pg_restore's own) waits on a lock."""
    deadline = time.monotonic() + 60
    waiting = (
        "SELECT 1 FROM pg_stat_activity WHERE application_name IN ('entrypoint', 'pg_restore') "
        "AND wait_event_type = 'Lock'"
    )
    while not query(url, waiting):
        assert time.monotonic() < deadline, "the restore never waited on the app's lock"
        time.sleep(0.1)


def test_restore_behind_an_apps_lock_times_out_retries_and_names_the_blocker(
    database_url: str, pg_server: Any, tmp_path: Path, users_app: Callable[..., Path]
) -> None:
    """DDL_LOCK_TIMEOUT per try, a retry, a heartbeat naming the app's session; exit 22, nothing changed.

    Meanwhile the app's other queries on users wait at most about one DDL_LOCK_TIMEOUT, never for the whole restore.
    """
    folder = users_app(NICK, rows=FIFTY_USERS)
    dump = _backed_up(database_url, folder, tmp_path)
    waits: list[float] = []
    with assert_untouched(database_url, pg_server.bin("pg_dump"), data=True), _app_reading_users(database_url) as pid:
        proc = start_entrypoint(
            ["restore", "--yes", str(dump), "--pg-dump", suite_pg_dump()], url=database_url, folder=folder,
            DDL_LOCK_TIMEOUT="2500ms", MIGRATION_ATTEMPTS="2", HEARTBEAT_INTERVAL="1",
        )  # fmt: skip
        _restore_waits_on_a_lock(database_url)
        try:  # the app's other queries on users, each given 10 s (one queued behind an unbounded DROP waits forever)
            with psycopg.connect(database_url, autocommit=True, options="-c statement_timeout=10s") as other:
                until = time.monotonic() + 40
                while proc.poll() is None and time.monotonic() < until:
                    started = time.monotonic()
                    with contextlib.suppress(psycopg.errors.QueryCanceled):
                        other.execute("SELECT count(*) FROM users")
                    waits.append(time.monotonic() - started)
                    time.sleep(0.1)
            out, _ = proc.communicate(timeout=5)
        finally:
            proc.kill()
    assert proc.returncode == 22, out
    blocked = f"blocked by pid {pid} (web: SELECT …) on public.users"
    assert any(line.startswith("⏱️  Restore still running after ") and blocked in line for line in out.splitlines()), out
    assert any(
        line.startswith("🔁 Restore transaction timed out waiting for a lock (SQLSTATE 55P03), ") and blocked in line
        for line in out.splitlines()
    ), out
    line = assert_one_error(out)
    assert line.startswith("❌ Restore failed, nothing was changed (its one transaction was rolled back): "), line
    assert f"canceling statement due to lock timeout ({blocked}). The app's sessions hold locks" in line
    assert "scale the app down" in line
    assert max(waits) < 2.5 + 1.5, waits


def test_restore_stops_at_the_deploy_deadline(
    database_url: str, pg_server: Any, tmp_path: Path, users_app: Callable[..., Path]
) -> None:
    """A long DDL_LOCK_TIMEOUT behind the app's lock: DEPLOY_DEADLINE ends it, exit 21, rolled back, nothing changed."""
    folder = users_app(NICK)
    dump = _backed_up(database_url, folder, tmp_path)
    with assert_untouched(database_url, pg_server.bin("pg_dump"), data=True), _app_reading_users(database_url):
        started = time.monotonic()
        result = _restore(database_url, dump, folder, DDL_LOCK_TIMEOUT="5min", DEPLOY_DEADLINE="3", timeout=60)
        elapsed = time.monotonic() - started
    assert result.returncode == 21, output_of(result)
    assert elapsed < 20, elapsed
    assert assert_one_error(output_of(result)).startswith(
        "❌ DEPLOY_DEADLINE (3s) passed while restoring: the restore's one transaction was cancelled and rolled back, "
        "and the migration lock released: nothing was changed."
    )


# --------------------------------------------------------------------------
# Item 15: nothing of a SIGKILL'd restore goes on.


def _children(pid: int, name: str) -> list[int]:
    """The processes named NAME whose parent is PID (from /proc: Linux)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)
            if fields[0].split("(", 1)[1] == name and int(fields[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def test_a_sigkilled_restore_leaves_no_pg_restore_and_no_session(
    database_url: str, pg_server: Any, tmp_path: Path, users_app: Callable[..., Path]
) -> None:
    """SIGKILL while the restore waits behind the app's lock: pg_restore dies with it, its sessions end, nothing changed."""
    folder = users_app(NICK, rows=FIFTY_USERS)
    dump = _backed_up(database_url, folder, tmp_path)
    with assert_untouched(database_url, pg_server.bin("pg_dump"), data=True), _app_reading_users(database_url):
        proc = start_entrypoint(
            ["restore", "--yes", str(dump), "--pg-dump", suite_pg_dump()], url=database_url, folder=folder,
            DDL_LOCK_TIMEOUT="2s", MIGRATION_ATTEMPTS="5",
        )  # fmt: skip
        _restore_waits_on_a_lock(database_url)
        left = _children(proc.pid, "pg_restore")
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        deadline = time.monotonic() + 15
        sessions = "SELECT count(*) FROM pg_stat_activity WHERE application_name IN ('entrypoint', 'pg_restore')"
        while query(database_url, sessions) != [(0,)] or any(Path(f"/proc/{p}").exists() for p in left):
            assert time.monotonic() < deadline, (query(database_url, sessions), left)
            time.sleep(0.2)
    assert query(database_url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == [(0,)]
