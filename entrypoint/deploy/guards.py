"""MIGRATION_GUARDS: queries whose results the migrations must not change.

Before the first write, every guard runs once (`refuse_failing`): a query that
cannot run is a setting to fix (exit 2); one that reads what does not exist yet
is left to the migrations, which may create it, with a line saying it protects
nothing this deploy. Inside each unit, the guards run before its first statement
and again before its commit (`results`, `check`); a changed result stops the unit
while its transaction is still open, so it rolls back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import psycopg

from entrypoint.db.connect import UNDEFINED_OBJECT_STATES, describe, is_session_lost
from entrypoint.deploy.outcome import GuardChanged, Stopped
from entrypoint.errors import Untrusted, UsageError
from entrypoint.logs import get_logger


def refuse_failing(conn: psycopg.Connection[Any], guards: Sequence[str]) -> None:
    """Run each guard once, rolled back; raise `UsageError` (exit 2) for one that cannot run."""
    for guard in guards:
        try:
            with conn.transaction(force_rollback=True):
                conn.execute(guard.encode()).fetchall()
        except psycopg.Error as error:
            if is_session_lost(error, conn):
                raise
            if error.sqlstate in UNDEFINED_OBJECT_STATES:
                get_logger().warning("migrate.guard_not_yet", guard=Untrusted(guard), error=describe(error))
                continue
            raise UsageError(
                "❌ Guard query failed: {error} ({guard}). Fix it in --guard / MIGRATION_GUARDS; nothing was changed",
                error=describe(error),
                guard=Untrusted(guard),
            ) from None


class Result(NamedTuple):
    """One guard's rows as text, or the error it met."""

    text: str  # the rows, or "an error (...)"
    absent: bool = False  # what it reads does not exist (yet)


def results(cur: psycopg.Cursor[Any], guards: Sequence[str]) -> list[Result]:
    """Each guard's rows, or the error it now meets (a migration dropped what it reads: a change too).

    Each runs under a savepoint, so an error leaves the unit's transaction usable.
    """
    found = []
    for guard in guards:
        try:
            with cur.connection.transaction():
                found.append(Result(repr([tuple(row) for row in cur.execute(guard.encode()).fetchall()])))
        except psycopg.Error as error:
            if is_session_lost(error, cur.connection):
                raise
            found.append(Result(f"an error ({describe(error)})", error.sqlstate in UNDEFINED_OBJECT_STATES))
    return found


def check(cur: psycopg.Cursor[Any], guards: Sequence[str], before: list[Result]) -> None:
    """Raise `Stopped(GuardChanged)` when a guard's result differs from `before`."""
    for guard, old, new in zip(guards, before, results(cur, guards), strict=True):
        if not old.absent and old.text != new.text:  # what did not exist yet had no rows to protect
            raise Stopped(GuardChanged(guard, old.text, new.text))
