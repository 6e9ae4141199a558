"""What the online apply's end-to-end tests share: the filled database, drizzle-kit's migrations, a writer, locks.

The schema and the rows are tests/db/test_online_rewrites.py's: users, posts and members hold 20,000 rows
each, over the 256 kB threshold these tests deploy with (INDEX_BUILD_THRESHOLD), and `tags` stays empty,
under it. Every migration is drizzle-kit's own output, generated once a session (the fixtures are
tests/deploy/conftest.py's).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.drizzle_ref import drizzle_migrate
from tests.support import ledger, query, schema_dump

THRESHOLD = "256kB"
PROGRESS = "drizzle.__drizzle_migrations_progress"
ONLINE = {"INDEX_BUILD_THRESHOLD": THRESHOLD, "DDL_LOCK_TIMEOUT": "30s", "HEARTBEAT_INTERVAL": "1"}


def unique_name(url: str) -> str:
    """The database name of a URL."""
    from urllib.parse import unquote, urlsplit

    return unquote(urlsplit(url).path.lstrip("/"))


def hashes(url: str) -> list[tuple[Any, ...]]:
    """The ledger as drizzle-orm reads it: (hash, created_at), in id order."""
    return [row[1:] for row in ledger(url)]


def assert_as_drizzle_left_it(url: str, scenario: str, folder: Path, pg_server: Any, of: Callable[..., Any]) -> None:
    """`pg_dump -s` and the ledger are drizzle-orm's; nothing of ours is left; drizzle-orm's migrator is a no-op."""
    dump, rows = of(scenario)
    assert schema_dump(Path(pg_server.bin("pg_dump")), url) == dump
    assert hashes(url) == rows
    assert query(url, "SELECT to_regclass(%s)", (PROGRESS,)) == [(None,)]
    assert query(url, "SELECT count(*) FROM pg_index WHERE NOT indisvalid") == [(0,)]
    assert query(url, "SELECT count(*) FROM pg_constraint WHERE conname LIKE 'entrypoint_nn_%%'") == [(0,)]
    again = drizzle_migrate(url, folder)
    assert again.returncode == 0, again.stderr
    assert hashes(url) == rows


class Writer:
    """The old release: one open connection updating users (and posts) by primary key every 10 ms.

    A monitor samples the writer's backend every 2 ms: whenever it waits on a lock, the statements of the
    sessions blocking it are recorded, so a test can say structurally what the writes ever waited for.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.writes = 0
        self.errors: list[BaseException] = []
        self.blocked_by: list[str] = []  # the query of each session seen blocking a write
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
        try:
            with psycopg.connect(self.url, autocommit=True, application_name="old-release") as conn:
                self._pid = conn.info.backend_pid
                self._ready.set()
                n = 0
                while not self._stop.is_set():
                    n += 1
                    conn.execute("UPDATE users SET points = points + 1 WHERE id = %s", (1 + n % 500,))
                    conn.execute("UPDATE posts SET title = title WHERE id = %s", (1 + n % 500,))
                    self.writes += 1
                    self._stop.wait(0.01)
        except BaseException as error:  # reported by the test
            self.errors.append(error)
            self._ready.set()

    def _monitor(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.is_set():
                rows = conn.execute(
                    "SELECT b.query FROM pg_stat_activity w, unnest(pg_blocking_pids(w.pid)) AS blocker(pid) "
                    "JOIN pg_stat_activity b ON b.pid = blocker.pid WHERE w.pid = %s",
                    (self._pid,),
                ).fetchall()
                self.blocked_by += [str(row[0]) for row in rows]
                time.sleep(0.002)


def backend(url: str) -> int | None:
    """The entrypoint's migrating backend, if it is connected."""
    rows = query(
        url,
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'entrypoint' AND datname = current_database() "
        "AND backend_type = 'client backend' ORDER BY backend_start LIMIT 1",
    )
    return int(rows[0][0]) if rows else None


def wait_until(what: str, check: Callable[[], bool], seconds: float = 60) -> None:
    """Poll `check` until it holds; fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    pytest.fail(f"never: {what}")


def waits_for(url: str, pid: int, blocker: int) -> bool:
    """Whether backend `pid` waits on a lock `blocker` holds (or, for a concurrent build, on its transaction)."""
    rows = query(url, "SELECT %s = ANY(pg_blocking_pids(%s))", (blocker, pid))
    if rows and rows[0][0]:
        return True
    progress = query(url, "SELECT current_locker_pid FROM pg_stat_progress_create_index WHERE pid = %s", (pid,))
    return bool(progress) and progress[0][0] == blocker
