"""Online index builds on a real server: writes go on during the build, the schema is drizzle-orm's, failures are clean.

Every folder is drizzle-kit's own output: a schema, then the same schema with indexes added and
`drizzle-kit generate` (drizzle-kit's "performance indexes" migration). A writer thread updates
`users` throughout while a monitor watches whether it ever waits on a lock: the measurement is
structural (a lock wait seen or not), not a timing, so a busy machine cannot make it flaky.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.drizzle_ref import drizzle_migrate
from tests.folders import generated_folder, regenerate
from tests.support import (
    assert_one_error,
    clone_database,
    ledger,
    output_of,
    query,
    run_entrypoint,
    schema_dump,
    start_entrypoint,
)

BASE = """\
import { integer, pgTable, serial, text } from 'drizzle-orm/pg-core';

export const users = pgTable('users', {
  id: serial('id').primaryKey(),
  email: text('email').notNull(),
  points: integer('points').notNull().default(0),
});

export const posts = pgTable('posts', {
  id: serial('id').primaryKey(),
  userId: integer('user_id').notNull(),
  title: text('title').notNull(),
});
"""

INDEXED = """\
import { index, integer, pgTable, serial, text } from 'drizzle-orm/pg-core';

export const users = pgTable('users', {
  id: serial('id').primaryKey(),
  email: text('email').notNull(),
  points: integer('points').notNull().default(0),
}, (t) => [
  index('idx_users_points').on(t.points),
  index('idx_users_email').on(t.email),
  index('idx_users_points_email').on(t.points, t.email),
]);

export const posts = pgTable('posts', {
  id: serial('id').primaryKey(),
  userId: integer('user_id').notNull(),
  title: text('title').notNull(),
}, (t) => [index('idx_posts_user_id').on(t.userId)]);
"""

# The same indexes, posts declared first: drizzle-kit writes them in table order, so users' come second.
_USERS, _POSTS = INDEXED.split("export const posts")
POSTS_THEN_USERS = (
    _USERS.split("export const users")[0]
    + "export const posts"
    + _POSTS
    + "\nexport const users"
    + _USERS.split("export const users")[1]
)
UNIQUE = BASE.replace("import { integer,", "import { integer, uniqueIndex,").replace(
    "  points: integer('points').notNull().default(0),\n});",
    "  points: integer('points').notNull().default(0),\n}, (t) => [uniqueIndex('users_email_idx').on(t.email)]);",
)
ROWS = 300_000  # about 25 MB with its primary key: above the default INDEX_BUILD_THRESHOLD (10 MB)


def _project(tmp_path: Path, url: str, rows: int = ROWS) -> Path:
    """users and posts, applied by drizzle-orm, with `rows` users; returns the drizzle-kit project."""
    project = tmp_path / "app"
    folder = generated_folder(project, [], schema=BASE)
    assert drizzle_migrate(url, folder).returncode == 0
    query(
        url,
        "INSERT INTO users (email, points) SELECT 'u' || n || '@example.com', n %% 1000 FROM generate_series(1, %s) n",
        (rows,),
    )
    query(url, "ANALYZE users")
    return project


class Writer:
    """Updates a `users` row every 20 ms on its own connection; a monitor records whether it ever waits on a lock."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latencies: list[float] = []
        self.during_build = 0  # updates that completed while an index build was in progress
        self.lock_waits = 0  # monitor samples that saw the writer waiting on a lock
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._pid = 0
        self._threads = [threading.Thread(target=self._write), threading.Thread(target=self._monitor)]

    def __enter__(self) -> Writer:  # noqa: PYI034 - a test helper, never subclassed
        self._threads[0].start()
        assert self._ready.wait(10)
        self._threads[1].start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _write(self) -> None:
        with psycopg.connect(self.url, autocommit=True, application_name="old-release") as conn:
            self._pid = conn.info.backend_pid
            self._ready.set()
            while not self._stop.is_set():
                started = time.monotonic()
                conn.execute("UPDATE users SET points = points + 1 WHERE id = 1")
                self.latencies.append(time.monotonic() - started)
                building = conn.execute("SELECT count(*) FROM pg_stat_progress_create_index").fetchone()
                self.during_build += bool(building and building[0])
                self._stop.wait(0.02)

    def _monitor(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.is_set():
                row = conn.execute(
                    "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (self._pid,)
                ).fetchone()
                self.lock_waits += bool(row and row[0] == "Lock")
                time.sleep(0.005)


def _indexes(url: str) -> list[tuple[Any, ...]]:
    return query(url, "SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE 'idx_%' ORDER BY 1")


def test_writes_go_on_while_the_indexes_of_a_large_table_build(
    database_factory: Callable[..., str], admin_url: str, tmp_path: Path, pg_server: Any
) -> None:
    """0001 adds 4 indexes: users' (300k rows) are built CONCURRENTLY, and the writer never waits on a lock.

    drizzle-orm, on a copy, makes the same writer wait; both end with the same schema and ledger.
    """
    ours, theirs = database_factory(), database_factory()
    project = _project(tmp_path, ours)
    folder = project / "drizzle"
    regenerate(project, INDEXED, "perf_indexes")
    clone_database(admin_url, ours, theirs)

    dry = run_entrypoint(["--dry-run"], url=ours, folder=folder)
    lines = output_of(dry).splitlines()
    assert dry.returncode == 0, lines
    assert "   ⏭  0001_perf_indexes would be applied (4 statements)" in lines
    built = next(line for line in lines if line.startswith("   ⤷ 3 indexes on users built CONCURRENTLY"))
    assert "(users: ~300,000 rows, " in built
    assert "≥ INDEX_BUILD_THRESHOLD 10 MB): " in built
    assert built.endswith("idx_users_points, idx_users_email, idx_users_points_email"), built
    assert any(
        line.startswith("   ⤷ 1 index on posts built as written, each committing on its own (posts: ~0 rows, ")
        for line in lines
    ), lines
    assert any(
        line.startswith("   ⤷ 0001_perf_indexes runs outside any transaction, one index at a time (") for line in lines
    )

    with Writer(ours) as writer:
        result = run_entrypoint([], url=ours, folder=folder)
    out = output_of(result)
    assert result.returncode == 0, out
    assert "🧱 0001_perf_indexes is built online (3 of its indexes built CONCURRENTLY; users: " in out
    assert "   · idx_users_points on users built CONCURRENTLY (" in out
    assert "   · idx_posts_user_id on posts built as written (" in out
    assert writer.during_build >= 3, (writer.during_build, len(writer.latencies))
    assert writer.lock_waits == 0, max(writer.latencies)

    with Writer(theirs) as blocked:
        assert drizzle_migrate(theirs, folder).returncode == 0
    assert blocked.lock_waits > 0, "the monitor must see drizzle-orm's plain build block the writer"

    assert schema_dump(pg_server.bin("pg_dump"), ours) == schema_dump(pg_server.bin("pg_dump"), theirs)
    assert _indexes(ours) == _indexes(theirs)
    assert [row[1:] for row in ledger(ours)] == [row[1:] for row in ledger(theirs)]  # the file's own hash
    assert query(ours, "SELECT count(*) FROM pg_index WHERE NOT indisvalid") == [(0,)]
    again = drizzle_migrate(ours, folder)
    assert again.returncode == 0, again.stderr
    assert len(ledger(ours)) == 2


def test_index_build_settings_force_either_way(database_url: str, tmp_path: Path) -> None:
    """A small table stays in the transaction; INDEX_BUILD=concurrent forces CONCURRENTLY, =transaction never."""
    project = _project(tmp_path, database_url, rows=10)
    folder = project / "drizzle"
    regenerate(project, INDEXED, "perf_indexes")

    auto = output_of(run_entrypoint(["--dry-run"], url=database_url, folder=folder))
    assert "   ⤷ 3 indexes on users built as written, in the migration's transaction (users: ~10 rows, " in auto
    assert "< INDEX_BUILD_THRESHOLD 10 MB)" in auto
    assert "runs outside any transaction" not in auto

    forced = output_of(run_entrypoint(["--dry-run"], url=database_url, folder=folder, INDEX_BUILD="concurrent"))
    assert (
        "   ⤷ 3 indexes on users built CONCURRENTLY, outside a transaction (INDEX_BUILD=concurrent; users: " in forced
    )
    lowered = output_of(
        run_entrypoint(["--dry-run", "--index-build-threshold", "1kB"], url=database_url, folder=folder)
    )
    assert "≥ INDEX_BUILD_THRESHOLD 1 kB)" in lowered

    never = output_of(run_entrypoint(["--dry-run"], url=database_url, folder=folder, INDEX_BUILD="transaction"))
    assert "in the migration's transaction (INDEX_BUILD=transaction): idx_users_points" in never, never

    single = run_entrypoint([], url=database_url, folder=folder, INDEX_BUILD="concurrent", TRANSACTION_MODE="single")
    assert single.returncode == 6, output_of(single)
    assert "INDEX_BUILD=concurrent builds idx_posts_user_id CONCURRENTLY" in assert_one_error(output_of(single))

    pending = run_entrypoint(["status", "--json"], url=database_url, folder=folder, INDEX_BUILD="concurrent")
    (unit,) = json.loads(pending.stdout)["units"]
    assert unit["kind"] == "concurrent"
    assert [(b["index"], b["concurrently"]) for b in unit["builds"]][:2] == [
        ("idx_posts_user_id", True),
        ("idx_users_points", True),
    ]
    shown = output_of(run_entrypoint(["status"], url=database_url, folder=folder, INDEX_BUILD="concurrent"))
    assert "   ⤷ 1 index on posts built CONCURRENTLY, outside a transaction (INDEX_BUILD=concurrent; " in shown

    applied = run_entrypoint([], url=database_url, folder=folder, INDEX_BUILD="concurrent")
    assert applied.returncode == 0, output_of(applied)
    assert "   · idx_posts_user_id on posts built CONCURRENTLY (" in output_of(applied)
    status = run_entrypoint(["status"], url=database_url, folder=folder)
    assert status.returncode == 0, output_of(status)


def test_a_unique_build_on_duplicates_drops_its_invalid_index_and_names_the_query(
    database_url: str, tmp_path: Path
) -> None:
    """Duplicate emails: exit 6, one ❌ line naming the index and a query that finds them, no INVALID index left."""
    project = _project(tmp_path, database_url, rows=20)
    query(database_url, "INSERT INTO users (email) VALUES ('u7@example.com'), ('u7@example.com')")
    folder = project / "drizzle"
    regenerate(project, UNIQUE, "unique_email")
    before = ledger(database_url)

    small = run_entrypoint([], url=database_url, folder=folder)  # 22 rows: built in the transaction
    assert small.returncode == 6, output_of(small)
    assert assert_one_error(output_of(small)) == (
        '❌ Migration failed: could not create unique index "users_email_idx" (in 0001_unique_email, statement 1/1). '
        "Find the rows sharing a key with: SELECT email, count(*) FROM users WHERE email IS NOT NULL GROUP BY 1 "
        "HAVING count(*) > 1; Everything was rolled back: remove the duplicates, then redeploy"
    )

    result = run_entrypoint([], url=database_url, folder=folder, INDEX_BUILD="concurrent")
    out = output_of(result)
    assert result.returncode == 6, out
    line = assert_one_error(out)
    assert line.startswith(
        '❌ Migration failed: could not create unique index "users_email_idx" (in 0001_unique_email, statement 1/1). '
        "The INVALID index public.users_email_idx its build left was dropped. Find the rows sharing a key with: "
    ), line
    assert line.endswith("remove the duplicates, then redeploy"), line
    assert "🧹 Dropped the INVALID index public.users_email_idx" in out
    found = line.split("Find the rows sharing a key with: ", 1)[1].split(";", 1)[0]
    assert query(database_url, found) == [("u7@example.com", 3)]
    assert query(database_url, "SELECT count(*) FROM pg_indexes WHERE indexname = 'users_email_idx'") == [(0,)]
    assert ledger(database_url) == before

    query(database_url, "DELETE FROM users WHERE email = 'u7@example.com' AND id > 20")
    again = run_entrypoint([], url=database_url, folder=folder, INDEX_BUILD="concurrent")
    assert again.returncode == 0, output_of(again)
    assert len(ledger(database_url)) == len(before) + 1


@contextmanager
def _open_write(url: str) -> Iterator[int]:
    """A session of the old release in the middle of a write transaction on users: its pid."""
    with psycopg.connect(url, application_name="old-release") as holder:
        holder.execute("UPDATE users SET points = points + 1 WHERE id = 2")
        try:
            yield holder.info.backend_pid
        finally:
            holder.rollback()


def test_deadline_mid_build_keeps_what_is_built_and_the_next_deploy_finishes(
    database_factory: Callable[..., str], admin_url: str, tmp_path: Path, pg_server: Any
) -> None:
    """An open write holds users' concurrent build up: the heartbeat names it, the deadline stops the run (21).

    posts' index, built before, is kept; the next deploy keeps it, drops the INVALID one and builds the rest.
    """
    ours, theirs = database_factory(), database_factory()
    project = _project(tmp_path, ours, rows=100)
    folder = project / "drizzle"
    regenerate(project, POSTS_THEN_USERS, "perf_indexes")
    clone_database(admin_url, ours, theirs)
    before = ledger(ours)
    settings = {
        "INDEX_BUILD": "concurrent",
        "HEARTBEAT_INTERVAL": "1",
        "DEPLOY_DEADLINE": "6s",
        "DDL_LOCK_TIMEOUT": "1s",
    }

    with _open_write(ours) as holder_pid:
        started = time.monotonic()
        result = run_entrypoint(["--", "true"], url=ours, folder=folder, **settings)
        elapsed = time.monotonic() - started
    out = output_of(result)
    assert result.returncode == 21, out
    assert elapsed < 20, elapsed
    beats = [line for line in out.splitlines() if line.startswith("⏱️  0001_perf_indexes: statement 2/4 still running")]
    assert beats, out
    assert "(CREATE INDEX CONCURRENTLY idx_users_points: waiting for writers before build" in beats[-1]
    assert f"now pid {holder_pid} (old-release, idle in transaction, in a transaction since " in beats[-1]
    line = assert_one_error(out)
    assert line.startswith("❌ DEPLOY_DEADLINE (6s) passed in 0001_perf_indexes, statement 2/4, before the app "
                           "started: the running statement was cancelled and rolled back, and the migration lock "
                           "released. "), line  # fmt: skip
    assert "0001_perf_indexes builds its indexes one at a time, outside a transaction: its statements 1-1 stay " in line
    assert "🏁" not in out
    assert "🔁" not in out  # a concurrent build waits with no lock_timeout: it blocks no one meanwhile
    assert ledger(ours) == before
    assert "the next deploy keeps those indexes, drops the INVALID index idx_users_points the cancelled build " in line
    assert query(
        ours,
        "SELECT indexrelid::regclass::text, indisvalid FROM pg_index WHERE indexrelid::regclass::text LIKE 'idx_%' ORDER BY 1",
    ) == [
        ("idx_posts_user_id", True),
        ("idx_users_points", False),
    ]
    assert query(ours, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == [(0,)]

    resumed = run_entrypoint([], url=ours, folder=folder, **settings)
    out = output_of(resumed)
    assert resumed.returncode == 0, out
    assert (
        "   · idx_posts_user_id on posts already built by an earlier attempt of 0001_perf_indexes (valid, the same): "
        "kept" in out
    )
    assert "🧹 Dropped the INVALID index public.idx_users_points left by a failed concurrent build" in out
    assert drizzle_migrate(theirs, folder).returncode == 0
    assert schema_dump(pg_server.bin("pg_dump"), ours) == schema_dump(pg_server.bin("pg_dump"), theirs)
    assert [row[1:] for row in ledger(ours)] == [row[1:] for row in ledger(theirs)]


def test_deadline_while_waiting_for_the_lock(database_url: str, tmp_path: Path) -> None:
    """Another deploy holds the lock: at DEPLOY_DEADLINE the run stops, exit 21, nothing changed, app not started."""
    project = _project(tmp_path, database_url, rows=1)
    folder = project / "drizzle"
    regenerate(project, INDEXED, "perf_indexes")
    from entrypoint.db.lock import lock_key

    dbname = query(database_url, "SELECT current_database()")[0][0]
    marker = tmp_path / "started"
    with psycopg.connect(database_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (lock_key(dbname, "drizzle", "__drizzle_migrations"),))
        result = run_entrypoint(
            ["--", "touch", str(marker)], url=database_url, folder=folder, DEPLOY_DEADLINE="2", LOCK_WAIT_TIMEOUT="60"
        )
    out = output_of(result)
    assert result.returncode == 21, out
    assert assert_one_error(out).startswith(
        "❌ DEPLOY_DEADLINE (2s) passed while taking the migration lock, before the app started: nothing had started, "
        "so nothing was changed. Redeploy (raise DEPLOY_DEADLINE if that step needs more time)"
    )
    assert not marker.exists()
    assert len(ledger(database_url)) == 1


def test_the_deadline_timer_is_gone_before_the_app_starts(database_url: str, tmp_path: Path) -> None:
    """An interval timer survives exec: the app must outlive DEPLOY_DEADLINE without a SIGALRM."""
    folder = generated_folder(tmp_path / "app", [])
    result = run_entrypoint(["--", "sleep", "3"], url=database_url, folder=folder, DEPLOY_DEADLINE="2")
    assert result.returncode == 0, output_of(result)


def _backend_running(url: str, text: str) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rows = query(
            url,
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'entrypoint' AND query LIKE %s AND state = 'active'",
            (f"%{text}%",),
        )
        if rows:
            return int(rows[0][0])
        time.sleep(0.05)
    pytest.fail(f"no entrypoint backend ever ran {text}")


def test_a_stopped_backend_is_not_waited_for_forever(database_url: str, users_app: Callable[..., Path]) -> None:
    """SIGSTOP on the backend mid-statement: heartbeats go on, and the deadline ends the run (exit 21, one ❌)."""
    import os
    import signal

    folder = users_app(("slow", "SELECT pg_sleep(20);"))
    before = ledger(database_url)
    proc = start_entrypoint(
        ["--", "true"], url=database_url, folder=folder, HEARTBEAT_INTERVAL="1", DEPLOY_DEADLINE="4"
    )
    pid = _backend_running(database_url, "pg_sleep(20)")
    os.kill(pid, signal.SIGSTOP)
    try:
        out, _ = proc.communicate(timeout=40)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert proc.returncode == 21, out
    assert any(line.startswith("⏱️  0001_slow: statement 1/1 still running after ") for line in out.splitlines()), out
    line = assert_one_error(out)
    assert line.startswith("❌ DEPLOY_DEADLINE (4s) passed in 0001_slow, statement 1/1, before the app started: "), line
    assert f"the server did not answer the cancel (is backend pid {pid} stopped?), so the connection was closed" in line
    assert "Traceback" not in out
    ended = time.monotonic() + 30
    while query(database_url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") != [(0,)]:
        assert time.monotonic() < ended, "the resumed backend never ended, so the lock stayed"
        time.sleep(0.1)
    assert ledger(database_url) == before


def test_sigterm_mid_build_names_what_stays(database_url: str, tmp_path: Path) -> None:
    """SIGTERM while an open write holds users' build up: the heartbeat names the writer; exit 143.

    The ❌ line says posts' index, built before, stays.
    """
    import signal

    project = _project(tmp_path, database_url, rows=100)
    folder = project / "drizzle"
    regenerate(project, POSTS_THEN_USERS, "perf_indexes")
    settings = {"INDEX_BUILD": "concurrent", "HEARTBEAT_INTERVAL": "1", "DDL_LOCK_TIMEOUT": "1s"}
    with _open_write(database_url) as holder_pid:
        proc = start_entrypoint(["--", "true"], url=database_url, folder=folder, **settings)
        _backend_running(database_url, "idx_users_points")
        time.sleep(3)  # past DDL_LOCK_TIMEOUT: a concurrent build waits with no lock_timeout, heartbeat on
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 143, out
    beats = [line for line in out.splitlines() if line.startswith("⏱️  0001_perf_indexes: statement 2/4 still running")]
    assert beats, out
    assert "(CREATE INDEX CONCURRENTLY idx_users_points: waiting for writers before build" in beats[-1]
    assert f"now pid {holder_pid} (old-release, idle in transaction, in a transaction since " in beats[-1]
    assert "🔁" not in out
    line = assert_one_error(out)
    assert line.startswith(
        "❌ Stopped by SIGTERM before the app started: the running statement was cancelled and rolled back, and "
        "the lock released. 0001_perf_indexes builds its indexes one at a time, outside a transaction: its "
        "statements 1-1 stay built"
    ), line
    assert line.endswith("builds the rest: redeploy to apply the rest"), line
