"""Online index builds: one CREATE INDEX CONCURRENTLY, and recovering what an earlier attempt left.

A `create-index` part of an online plan (`core.online`, run by `parts`) is sent
alone, outside any transaction, under no `lock_timeout`: such a build blocks no
one while it waits, and a lock_timeout would throw the half-built index away and
start over; the heartbeat shows whom it waits for and DEPLOY_DEADLINE ends the
wait. An index an earlier attempt already built, valid and the same, is kept (the
same as PostgreSQL spells both: when the texts differ, the statement is built on
an empty stand-in of its table, in a transaction rolled back, and the two
definitions compared); one it left INVALID is dropped first, and so is the one a
failed build leaves.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import psycopg
from psycopg import sql

from entrypoint.core.model import Migration
from entrypoint.core.online_parts import Expect, Step, Verdict
from entrypoint.core.sql import in_schema, same_definition
from entrypoint.db.connect import is_session_lost
from entrypoint.deploy.outcome import StatementFailed, Stopped
from entrypoint.deploy.runner import IDLE, Run, elapsed_ms, lock_timeout, on_statement, rollback, statement
from entrypoint.logs import get_logger

TRANSIENT_STATES = {
    "40001": "hit a serialization failure",
    "40P01": "was chosen as a deadlock victim",
    "55P03": "timed out waiting for a lock",
}

_EXISTING_INDEX = """
SELECT i.indisvalid, pg_get_indexdef(i.indexrelid), n.nspname, c.relname, tn.nspname, tc.relname
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_class tc ON tc.oid = i.indrelid JOIN pg_namespace tn ON tn.oid = tc.relnamespace
WHERE i.indexrelid = to_regclass(%s)
"""


def is_transient(stop: StatementFailed) -> bool:
    """Whether re-running the unit may succeed (serialization, deadlock, lock timeout), and is allowed."""
    return stop.retryable and stop.sqlstate in TRANSIENT_STATES


def _index_name(cur: psycopg.Cursor[Any], schema: str | None, name: str) -> str:
    wanted = sql.Identifier(schema, name) if schema else sql.Identifier(name)
    return wanted.as_string(cur)


def drop_invalid(cur: psycopg.Cursor[Any], schema: str | None, name: str) -> tuple[str, str] | None:
    """Drop the INVALID index a failed build of this index left, if any; the (schema, index) it was."""
    row = cur.execute(_EXISTING_INDEX, (_index_name(cur, schema, name),)).fetchone()
    if row is None or row[0]:
        return None
    get_logger().warning("migrate.invalid_index_dropped", index=f"{row[2]}.{row[3]}")
    cur.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(row[2], row[3])))
    return str(row[2]), str(row[3])


def _already_built(cur: psycopg.Cursor[Any], step: Step) -> bool:
    """Whether an earlier attempt built this very index (valid, same definition): then it is kept.

    An INVALID one is dropped so it can be built again; one that differs is left for the statement
    to fail on, as drizzle-orm would.
    """
    if drop_invalid(cur, step.schema, step.name):
        return False
    (expect,) = step.done
    return verdict(cur, expect) == "done"


def verdict(cur: psycopg.Cursor[Any], expect: Expect) -> Verdict:
    """What the catalogue shows of `expect` now; an index whose text differs is compared as PostgreSQL spells both."""
    text, params = expect.query()
    found = expect.judge(cur.execute(text, params).fetchone())
    if found != "different" or expect.kind != "index":
        return found
    row = cur.execute(_EXISTING_INDEX, (_index_name(cur, expect.schema, expect.name),)).fetchone()
    if row is None:
        return found
    existing, schema, table = str(row[1]), str(row[4]), str(row[5])
    return "done" if _builds_the_same(cur, expect.definition, expect.name, existing, (schema, table)) else found


def _builds_the_same(
    cur: psycopg.Cursor[Any], statement: bytes, name: str, existing: str, table: tuple[str, str]
) -> bool:
    """Whether `statement` builds `existing`, as PostgreSQL itself spells both.

    The statement builds its index on an empty stand-in of the table (a temporary table with the same
    columns, types and collations), in a transaction that is rolled back, and PostgreSQL's definitions
    of the two indexes are compared: `WHERE "users"."points" > 5` and `WHERE (points > 5)` are then one
    spelling. Nothing is written, and only the table's ACCESS SHARE lock is taken, for an instant.
    """
    probe = in_schema(statement, "pg_temp")
    if probe is None:
        return False
    conn = cur.connection
    try:
        with conn.transaction(force_rollback=True):
            cur.execute(
                sql.SQL("CREATE TEMPORARY TABLE {} (LIKE {})").format(sql.Identifier(table[1]), sql.Identifier(*table))
            )
            cur.execute(probe.encode())
            built = cur.execute("SELECT pg_get_indexdef(%s::regclass)", (_index_name(cur, "pg_temp", name),)).fetchone()
    except psycopg.Error as error:
        if is_session_lost(error, conn) or error.sqlstate in TRANSIENT_STATES:
            raise  # a lock wait, a deadlock: the unit's retry handles it
        return False  # it cannot be built there: not sure it is the same, so the statement fails as drizzle-orm's would
    return built is not None and same_definition(existing, str(built[0]))


@contextmanager
def lock_wait(run: Run, *, allowed: bool) -> Iterator[None]:
    """One autocommitted statement; `allowed` (CREATE INDEX CONCURRENTLY) waits for locks with no lock_timeout.

    A failure rolls back; a stop from outside leaves the reset to `apply`.
    """
    if allowed:
        lock_timeout(run.conn, 0)
    try:
        yield
    except Stopped:
        rollback(run.conn)
        if allowed:
            lock_timeout(run.conn, run.limits.lock_timeout_ms)
        raise
    if allowed:
        lock_timeout(run.conn, run.limits.lock_timeout_ms)


def _drop_quietly(run: Run, step: Step) -> str:
    """Drop what a failed concurrent build left; if that fails too, the next deploy does it first."""
    try:
        dropped = drop_invalid(run.cur, step.schema, step.name)
    except psycopg.Error as error:
        if is_session_lost(error, run.conn):
            raise
        rollback(run.conn)
        return ""
    return f"{dropped[0]}.{dropped[1]}" if dropped else ""


def build(run: Run, migration: Migration, step: Step) -> None:
    """Build one index as planned, CONCURRENTLY; a failed build's INVALID index is dropped at once.

    Raises `Stopped` for a build the server refused (the INVALID index it left named as dropped).
    """
    number, table = step.source.chunk, step.why.table
    what = f"CREATE INDEX CONCURRENTLY {step.name}"
    with on_statement(run, migration, number, f"{what}: checking for an earlier attempt's index"):  # a DROP may wait
        kept = _already_built(run.cur, step)
    if kept:
        get_logger().info("migrate.index_kept", tag=migration.tag, index=step.name, table=table)
        return
    started = time.monotonic()
    (sent,) = step.sql
    try:
        with lock_wait(run, allowed=True):
            statement(run, migration, number, IDLE, send=sent, what=what)
    except Stopped as stopped:
        stop = stopped.stop
        if isinstance(stop, StatementFailed) and not is_transient(stop):
            raise Stopped(replace(stop, dropped=_drop_quietly(run, step))) from None
        raise
    get_logger().info(
        "migrate.index_built",
        tag=migration.tag,
        index=step.name,
        table=table,
        how="CONCURRENTLY",
        duration_ms=elapsed_ms(started),
    )
