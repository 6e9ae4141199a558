"""Who is blocking our migration: watched from a second connection while a statement waits.

When a migration statement times out on `lock_timeout` (55P03), its lock wait
is already gone, so `pg_blocking_pids` can no longer name the blocker. A
watcher thread therefore looks while the statement is still waiting. It
connects only if an attempt lasts longer than a short grace period, so quick
migrations pay nothing.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any, Self

import psycopg

from entrypoint.database import APPLICATION_NAME

_QUERY = """
SELECT pid, coalesce(nullif(application_name, ''), '?'), left(regexp_replace(query, '\\s+', ' ', 'g'), 80)
FROM pg_stat_activity WHERE pid = ANY(pg_blocking_pids(%s)) ORDER BY pid
"""


class BlockerWatch:
    """Context manager: while open, remembers the last sessions seen blocking backend `pid`."""

    def __init__(self, url: str, pid: int, *, grace: float = 0.5, every: float = 0.25) -> None:
        self._url = url
        self._pid = pid
        self._grace = grace
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="blocker-watch", daemon=True)
        self.seen: list[tuple[int, str, str]] = []

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def describe(self) -> str:
        """`, blocked by pid 123 (app: UPDATE users ...)` or an empty string."""
        if not self.seen:
            return ""
        parts = [f"pid {pid} ({app}: {query})" for pid, app, query in self.seen]
        return ", blocked by " + ", ".join(parts)

    def _watch(self) -> None:
        if self._stop.wait(self._grace):
            return
        try:
            with psycopg.connect(
                self._url, autocommit=True, application_name=f"{APPLICATION_NAME} (lock watch)", connect_timeout=5
            ) as conn:
                while not self._stop.is_set():
                    rows: list[Any] = conn.execute(_QUERY, (self._pid,)).fetchall()
                    if rows:
                        self.seen = [(int(r[0]), str(r[1]), str(r[2])) for r in rows]
                    self._stop.wait(self._every)
        except psycopg.Error:
            return  # diagnostics only: never let the watcher fail a deploy
