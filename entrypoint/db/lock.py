"""The migration lock: one PostgreSQL session-level advisory lock per ledger.

We poll `pg_try_advisory_lock` in autocommit instead of blocking in
`pg_advisory_lock`, so a waiting instance never holds an open snapshot (which
would stall another instance's `CREATE INDEX CONCURRENTLY`) and can say who it
is waiting for. The key is the first 8 bytes, as a signed bigint, of the
sha256 of "entrypoint", the database, the schema and the table joined by NUL
bytes, so two apps sharing one server but not one ledger never wait for each other.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_exponential_jitter

from entrypoint.errors import LockNotHeld, LockTimeout
from entrypoint.logs import get_logger

# pg_stat_activity hides another role's application and start time from a non-superuser (NULL).
_HOLDER = """
SELECT l.pid, CASE WHEN a.backend_start IS NULL THEN 'a session of another role'
                   ELSE coalesce(nullif(a.application_name, ''), '?') || ', connected since ' ||
                        to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"') END
FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.classid = %(classid)s::oid AND l.objid = %(objid)s::oid
LIMIT 1
"""
_HELD_BY_ME = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
    "AND pid = pg_backend_pid() AND classid = {classid}::oid AND objid = {objid}::oid), pg_backend_pid()"
)


def lock_key(database: str, schema: str, table: str) -> int:
    """The advisory lock key for one ledger (see the module docstring)."""
    digest = hashlib.sha256(f"entrypoint\0{database}\0{schema}\0{table}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _key_parts(key: int) -> dict[str, int]:
    # pg_locks shows a bigint key as classid = high 32 bits, objid = low 32 bits.
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return {"classid": unsigned >> 32, "objid": unsigned & 0xFFFF_FFFF}


def _key_literals(key: int) -> dict[str, sql.Composable]:
    return {name: sql.Literal(value) for name, value in _key_parts(key).items()}


def lock_holder(conn: psycopg.Connection[Any], key: int) -> tuple[int, str] | None:
    """(pid, "application, connected since …" or "a session of another role") of the lock's holder, if any."""
    row = conn.execute(_HOLDER, _key_parts(key)).fetchone()
    return (int(row[0]), str(row[1])) if row else None


@contextmanager
def advisory_lock(conn: psycopg.Connection[Any], key: int, *, wait_timeout: float) -> Iterator[None]:
    """Hold the lock for the block; poll with backoff for up to `wait_timeout` seconds.

    Raises `LockTimeout` (exit 5) if it stays taken, `LockNotHeld` (exit 10) if
    the server says our session does not hold it after all (a transaction-mode pooler).
    """
    log = get_logger()
    started = time.monotonic()
    last_holder: list[int | None] = [None]

    def before_sleep(_: Any) -> None:
        holder = lock_holder(conn, key)
        pid = holder[0] if holder else None
        if holder and pid != last_holder[0]:
            log.info("lock.waiting", holder_pid=holder[0], holder=holder[1])
        last_holder[0] = pid

    held: list[tuple[bool, int]] = []

    def try_lock() -> bool:
        # One round trip: take the lock, then ask pg_locks whether this backend holds it.
        cur = conn.execute(
            sql.SQL("SELECT pg_try_advisory_lock({key}); {held}").format(
                key=sql.Literal(key), held=sql.SQL(_HELD_BY_ME).format(**_key_literals(key))
            )
        )
        got = cur.fetchone()
        cur.nextset()
        row = cur.fetchone()
        held[:] = [(bool(row[0]), int(row[1]))] if row else []
        return bool(got and got[0])

    retrying = Retrying(
        stop=stop_after_delay(wait_timeout),
        wait=wait_exponential_jitter(initial=0.05, max=0.5, jitter=0.1),  # short: waiters start soon after
        retry=retry_if_result(lambda got: got is False),
        before_sleep=before_sleep,
    )
    try:
        retrying(try_lock)
    except RetryError:
        raise LockTimeout(
            "❌ Migration lock still held by pid {holder_pid} after {wait_s:g}s: another deploy is migrating. "
            "Wait for it, or check the holder in pg_stat_activity, then redeploy (LOCK_WAIT_TIMEOUT sets the wait)",
            holder_pid=last_holder[0],
            wait_s=wait_timeout,
        ) from None
    waited = time.monotonic() - started
    if last_holder[0] is not None or waited > 1:
        log.info("lock.acquired", waited_s=round(waited, 1))
    try:
        _check_held(conn, held[0] if held else (False, -1))
        yield
    finally:
        _release(conn, key)


def _check_held(conn: psycopg.Connection[Any], held: tuple[bool, int]) -> None:
    """Refuse unless the backend running our statements holds the lock, with no pooler in between.

    A pooler answers the startup with its own backend key, so the pid libpq was
    given differs from `pg_backend_pid()`. In transaction mode the next statement
    may run on another backend, where the session lock is not held; even when it
    happens to be the same one, it can be lent to another client between our
    transactions. So any pooler is refused, not only an unlucky one.
    """
    holds, pid = held
    if not holds or pid != conn.info.backend_pid:
        raise LockNotHeld(
            "❌ The migration lock cannot be trusted: the database URL goes through a connection pooler "
            "(e.g. PgBouncer in transaction mode), where a session's advisory lock does not follow its "
            "statements. Set MIGRATION_DATABASE_URL to a direct connection to PostgreSQL"
        )


def _release(conn: psycopg.Connection[Any], key: int) -> None:
    if conn.closed or conn.broken:
        return  # the server released it with the session
    try:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        row = conn.execute("SELECT pg_advisory_unlock(%s)", (key,)).fetchone()
    except psycopg.OperationalError:
        return  # connection lost: the server releases the lock with it
    if not (row and row[0]):
        get_logger().warning("lock.release_failed")
