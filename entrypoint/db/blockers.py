"""Who is blocking our migration, and how far a long statement is: watched from a second connection.

When a migration statement times out on `lock_timeout` (55P03), its lock wait
is already gone, so `pg_blocking_pids` can no longer name the blocker. A
watcher thread therefore looks while the statement is still waiting. It
connects only if an attempt lasts longer than a short grace period, so quick
migrations pay nothing.

The same thread is the heartbeat: while one statement runs longer than the
interval (HEARTBEAT_INTERVAL), it says so every interval, with the phase and
the blocks done of an index build (`pg_stat_progress_create_index`) and, while
a concurrent build waits for older transactions (the old release's long ones),
which session it waits for. When statements were sent together (a pipeline,
`deploy.pipeline`), the client cannot know which of them runs: the server can,
so the watcher reads our backend's `query` and `query_start` in
`pg_stat_activity` and finds that statement among the ones sent. It runs in
autocommit, one short query at a time, so it never holds the snapshot a
concurrent build would wait for; and it keeps answering when our own backend
does not (a stopped or stuck server process).

Another session's SQL is never shown beyond its command word (`UPDATE …`) and the
relation our statement waits on: it may quote anything, a password included. With
ENTRYPOINT_DEBUG=1 its text is shown, scrubbed first, then cut.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, NamedTuple, Self

import psycopg

from entrypoint.db.connect import APPLICATION_NAME
from entrypoint.errors import Untrusted
from entrypoint.logs import get_logger
from entrypoint.scrub import scrub

# Who blocks our backend, and on which relation it waits (the first it waits for, if any is a relation).
_QUERY = """
SELECT a.pid, coalesce(nullif(a.application_name, ''), '?'), a.query,
       (SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE l.pid = %(pid)s AND NOT l.granted LIMIT 1)
FROM pg_stat_activity a WHERE a.pid = ANY(pg_blocking_pids(%(pid)s)) ORDER BY a.pid
"""
# How far an index build is, and, while it waits for older transactions, for whom.
_PROGRESS = """
SELECT p.phase, p.blocks_done, p.blocks_total, p.tuples_done, p.tuples_total, p.lockers_done, p.lockers_total,
       nullif(p.current_locker_pid, 0), coalesce(nullif(a.application_name, ''), '?'), a.state,
       to_char(a.xact_start AT TIME ZONE 'UTC', 'HH24:MI:SS "UTC"'), a.query
FROM pg_stat_progress_create_index p LEFT JOIN pg_stat_activity a ON a.pid = nullif(p.current_locker_pid, 0)
WHERE p.pid = %s
"""
# What our own backend runs, and for how long: which statement of a pipelined batch is the slow one.
_OURS = """
SELECT query, extract(epoch FROM clock_timestamp() - query_start)::float8 FROM pg_stat_activity
WHERE pid = %s AND state = 'active'
"""
HEARTBEAT_S = 30.0
_PROGRESS_SINCE = 120000  # pg_stat_progress_create_index is PostgreSQL 12's
# Another session's SQL may hold anything, a password in a literal included, so by default only its command
# is shown, and only when it is one of these words; with ENTRYPOINT_DEBUG=1 its text, scrubbed, then cut.
# fmt: off
_COMMANDS = frozenset({
    "ABORT", "ALTER", "ANALYZE", "BEGIN", "CALL", "CHECKPOINT", "CLOSE", "CLUSTER", "COMMENT", "COMMIT", "COPY",
    "CREATE", "DEALLOCATE", "DECLARE", "DELETE", "DISCARD", "DO", "DROP", "END", "EXECUTE", "EXPLAIN", "FETCH",
    "GRANT", "IMPORT", "INSERT", "LISTEN", "LOCK", "MERGE", "MOVE", "NOTIFY", "PREPARE", "REFRESH", "REINDEX",
    "RELEASE", "RESET", "REVOKE", "ROLLBACK", "SAVEPOINT", "SECURITY", "SELECT", "SET", "SHOW", "START", "TABLE",
    "TRUNCATE", "UNLISTEN", "UPDATE", "VACUUM", "VALUES", "WITH",
})
# fmt: on
_FIRST_WORD = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*([A-Za-z]+)", re.DOTALL)
BLOCKER_CUT, LOCKER_CUT = 80, 60  # characters of another session's query shown with ENTRYPOINT_DEBUG=1


def shown_query(query: str | None, *, debug: bool, cut: int) -> str:
    """Another session's query as a line may show it: `UPDATE …` (its command only), or with `debug` scrubbed, cut.

    Scrubbed before it is cut: a secret the cut splits would no longer be recognised.
    """
    if debug:
        text = scrub(" ".join((query or "").split()))
        return text if len(text) <= cut else text[:cut] + "…"
    match = _FIRST_WORD.match(query or "")
    word = match.group(1).upper() if match else ""
    return f"{word} …" if word in _COMMANDS else "…"


class Running(NamedTuple):
    """The statement our backend is running: which, since when (monotonic), and what it is, for the heartbeat."""

    tag: str
    number: int
    statements: int
    what: str  # e.g. "CREATE INDEX CONCURRENTLY idx_users_email", or ""
    started: float


class Sent(NamedTuple):
    """One statement of a pipelined batch, as the heartbeat needs it: which it is, and its text as sent."""

    tag: str
    number: int
    statements: int
    text: bytes


class _Batch(NamedTuple):
    sent: tuple[Sent, ...]
    started: float  # monotonic, when it was sent


def _counted(done: Any, total: Any, noun: str) -> str:
    return f", {int(done or 0):,}/{int(total):,} {noun}" if total else ""


def describe_progress(row: Any, *, debug: bool = False) -> str:
    """`building index: scanning table, 1,234/5,678 blocks`, and for a wait, the session it waits for."""
    phase, blocks, blocks_total, tuples, tuples_total, lockers, lockers_total, locker, app, state, since, query = row
    text = str(phase) + _counted(blocks, blocks_total, "blocks")
    if not blocks_total:
        text += _counted(tuples, tuples_total, "tuples")
    if lockers_total:
        text += f", {int(lockers or 0)}/{int(lockers_total)} transactions"
    if locker:
        shown = shown_query(query, debug=debug, cut=LOCKER_CUT)
        text += f"; now pid {locker} ({app}, {state or '?'}, in a transaction since {since or '?'}: {shown})"
    return text


class BlockerWatch:
    """Context manager: while open, remembers the last sessions seen blocking backend `pid`, and beats."""

    def __init__(
        self,
        url: str,
        pid: int,
        *,
        grace: float = 0.5,
        every: float = 0.25,
        heartbeat: float = HEARTBEAT_S,
        debug: bool = False,
        restore: bool = False,
    ) -> None:
        self._url = url
        self._pid = pid
        self._debug = debug  # ENTRYPOINT_DEBUG: other sessions' query text (scrubbed, cut), not only its command
        self._restore = restore  # `restore`'s one transaction, not a migration statement: its own heartbeat line
        self._grace = grace
        self._every = every
        self._heartbeat = heartbeat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="blocker-watch", daemon=True)
        self._running: Running | None = None
        self._batch: _Batch | None = None
        self._found: tuple[_Batch, int, Running] | None = None  # the batch's statement last seen running, where
        self._beaten: tuple[float | None, float] = (None, 0.0)  # the start of the work last beaten for, and when
        self.seen: list[tuple[int, str, str]] = []  # (pid, application, query as shown)
        self.relation: str | None = None  # the relation our backend waits on, when it is one

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def running(self, tag: str, number: int, count: int, what: str = "") -> None:
        """Our backend starts statement `number`/`count` of `tag` now (the heartbeat counts from here)."""
        # A restore is one long transaction whose steps (a table's COPY…) are told as they come: its time
        # counts from its start, not from each step's.
        going = self._running if self._restore else None
        self._batch = None
        self._running = Running(tag, number, count, what, going.started if going else time.monotonic())

    def pipelined(self, sent: Sequence[Sent]) -> None:
        """Our backend was sent these statements at once: which one runs is asked of the server."""
        self._running = None
        self._batch = _Batch(tuple(sent), time.monotonic())

    def idle(self) -> None:
        """Our backend's statement (or batch) is over."""
        self._running = self._batch = None

    def describe(self) -> str:
        """`, blocked by pid 123 (app: UPDATE …) on public.users` or an empty string."""
        return _blocked_by(self.seen, self.relation)

    def _watch(self) -> None:
        if self._stop.wait(self._grace):
            return
        try:
            with psycopg.connect(
                self._url, autocommit=True, application_name=f"{APPLICATION_NAME} (lock watch)", connect_timeout=5
            ) as conn:
                while not self._stop.is_set():
                    rows: list[Any] = conn.execute(_QUERY, {"pid": self._pid}).fetchall()
                    blocking = [
                        (int(r[0]), str(r[1]), shown_query(r[2], debug=self._debug, cut=BLOCKER_CUT)) for r in rows
                    ]
                    if blocking:
                        self.seen = blocking
                        self.relation = str(rows[0][3]) if rows[0][3] is not None else None
                    self._beat(conn, blocking)
                    self._stop.wait(self._every)
        except psycopg.Error:
            return  # diagnostics only: never let the watcher fail a deploy

    def _in_batch(self, conn: psycopg.Connection[Any]) -> Running | None:
        """The statement of the pipelined batch our backend runs, by its text in `pg_stat_activity`.

        Statements run in the order sent, so the search starts at the one last seen. The server keeps
        the first `track_activity_query_size` bytes of the text: a prefix of what was sent.
        """
        batch = self._batch
        if batch is None or time.monotonic() - batch.started < self._heartbeat:  # none of it can be due yet
            return None
        row = conn.execute(_OURS, (self._pid,)).fetchone()
        if row is None or not row[0]:
            return None
        query, seconds = str(row[0]).encode(), float(row[1] or 0)
        found = self._found if self._found and self._found[0] is batch else None
        for position in range(found[1] if found else 0, len(batch.sent)):
            sent = batch.sent[position]
            if sent.text.startswith(query):
                if found is None or found[1] != position:  # a new statement: the heartbeat counts from its start
                    found = (
                        batch,
                        position,
                        Running(sent.tag, sent.number, sent.statements, "", time.monotonic() - seconds),
                    )
                    self._found = found
                return found[2]
        return None

    def _beat(self, conn: psycopg.Connection[Any], blocking: list[tuple[int, str, str]]) -> None:
        """Every `heartbeat` seconds of one statement, one line saying how far it is."""
        running, now = self._running or self._in_batch(conn), time.monotonic()
        if running is None or now - running.started < self._heartbeat:
            return
        last, at = self._beaten
        if last == running.started and now - at < self._heartbeat:
            return
        self._beaten = (running.started, now)
        has_progress = conn.info.server_version >= _PROGRESS_SINCE
        row = conn.execute(_PROGRESS, (self._pid,)).fetchone() if has_progress else None
        progress = describe_progress(row, debug=self._debug) if row else ""
        detail = ": ".join(part for part in (running.what, progress) if part)
        named = row[7] if row else None  # the build names the session it waits for: no need to say it twice
        blockers = _blocked_by([(p, a, q) for p, a, q in blocking if p != named], self.relation)
        if self._restore:
            get_logger().info(
                "restore.heartbeat",
                elapsed_s=round(now - running.started),
                detail=Untrusted(f" ({detail})" if detail else ""),
                blockers=Untrusted(blockers),
            )
            return
        get_logger().info(
            "migrate.heartbeat",
            tag=running.tag,
            statement=running.number,
            statements=running.statements,
            elapsed_s=round(now - running.started),
            detail=Untrusted(f" ({detail})" if detail else ""),
            blockers=Untrusted(blockers),
            phase=str(row[0]) if row else None,
            blocks_done=int(row[1] or 0) if row else None,
            blocks_total=int(row[2] or 0) if row else None,
        )


def _blocked_by(blocking: list[tuple[int, str, str]], relation: str | None) -> str:
    """`, blocked by pid 123 (app: UPDATE …), pid 456 (…) on public.users`, or "" when nobody blocks."""
    if not blocking:
        return ""
    parts = ", ".join(f"pid {pid} ({app}: {query})" for pid, app, query in blocking)
    return f", blocked by {parts}" + (f" on {relation}" if relation else "")
