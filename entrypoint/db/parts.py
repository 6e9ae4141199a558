"""The progress table beside the ledger: the stored plan of a migration applied online, in parts, and what committed.

A migration applied in parts (`core.online`) can be stopped between them: a
crash, a SIGTERM, DEPLOY_DEADLINE, a validation that finds bad rows. So before
its first part, its whole plan is stored here, one row a part; each part marks
its row done in the same transaction as its own work (a CONCURRENTLY build,
which cannot run in a transaction, right after it); and the last part's
transaction writes the ledger row and deletes the migration's rows. A migration
is in the ledger exactly when every part is done, and never both recorded and in
progress. The table exists only while some migration is in progress: it is
created with the first stored plan and dropped with the last row, so a finished
deploy leaves drizzle-orm's schema, table for table.

Takes the connection or cursor it is handed and never commits on its own; names
are composed with `psycopg.sql`, values are parameters.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import psycopg
from psycopg import sql

from entrypoint.core.model import Migration
from entrypoint.core.online_parts import Plan, from_record, record, what
from entrypoint.db.ledger import Ledger

PROGRESS_SUFFIX = "_progress"
_COLUMNS = """
tag text NOT NULL,
hash text NOT NULL,
created_at bigint,
part integer NOT NULL,
parts integer NOT NULL,
what text NOT NULL,
sql text[] NOT NULL,
detail jsonb NOT NULL,
stored_at timestamptz NOT NULL DEFAULT now(),
done_at timestamptz,
PRIMARY KEY (tag, part)
"""


class Stored(NamedTuple):
    """One migration's stored plan: the file it was planned from, and its parts with the leading ones done."""

    tag: str
    hash: str
    created_at: int | None
    plan: Plan  # `done`: the parts committed, in order

    def matches(self, migration: Migration) -> bool:
        """Whether it was planned from this very file (its hash and its journal `when`)."""
        return (self.hash, self.created_at) == (migration.hash, migration.when)


class PartsTable:
    """`<ledger>_progress`, in the ledger's schema."""

    def __init__(self, ledger: Ledger) -> None:
        self.schema = ledger.schema
        self.table = ledger.table + PROGRESS_SUFFIX
        self._name = sql.Identifier(self.schema, self.table)

    @property
    def qualified_name(self) -> str:
        """`schema.table`, for messages and the README."""
        return f"{self.schema}.{self.table}"

    def read(self, conn: psycopg.Connection[Any]) -> dict[str, Stored]:
        """Every stored plan, by tag; empty when the table does not exist. Creates nothing."""
        found = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (self._name.as_string(conn),)).fetchone()
        if not found or not found[0]:
            return {}
        wanted = sql.SQL("SELECT tag, hash, created_at, part, detail, done_at IS NOT NULL FROM {} ORDER BY tag, part")
        rows = conn.execute(wanted.format(self._name)).fetchall()
        stored: dict[str, Stored] = {}
        for tag in dict.fromkeys(str(row[0]) for row in rows):
            mine = [row for row in rows if row[0] == tag]
            parts = tuple(from_record(row[4]) for row in mine)
            done = next((n for n, row in enumerate(mine) if not row[5]), len(mine))  # the committed ones lead
            index_only = bool(mine[0][4].get("index_only"))
            plan = Plan(parts, index_only=index_only, done=done, stored=True)
            stored[tag] = Stored(tag, str(mine[0][1]), mine[0][2], plan)
        return stored

    def store(self, cur: psycopg.Cursor[Any], migration: Migration, plan: Plan) -> None:
        """Create the table if needed, and store `plan`'s parts for `migration`, none of them done."""
        cur.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (" + _COLUMNS + ")").format(self._name))
        cur.executemany(
            sql.SQL(
                "INSERT INTO {} (tag, hash, created_at, part, parts, what, sql, detail) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            ).format(self._name),
            [
                (
                    migration.tag,
                    migration.hash,
                    migration.when,
                    number,
                    len(plan.parts),
                    what(part),
                    [s.decode() for s in _texts(part)],
                    json.dumps({**record(part), "index_only": plan.index_only}),
                )
                for number, part in enumerate(plan.parts, start=1)
            ],
        )

    def mark(self, cur: psycopg.Cursor[Any], migration: Migration, part: int) -> None:
        """Part `part` of `migration` is done (in the transaction that did it, or right after a build)."""
        cur.execute(
            sql.SQL("UPDATE {} SET done_at = now() WHERE tag = %s AND part = %s").format(self._name),
            (migration.tag, part),
        )

    def finish(self, cur: psycopg.Cursor[Any], migration: Migration) -> None:
        """Forget `migration`'s plan (with its ledger row), and drop the table once no plan is left in it."""
        cur.execute(sql.SQL("DELETE FROM {} WHERE tag = %s").format(self._name), (migration.tag,))
        left = cur.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(self._name)).fetchone()
        if left is not None and not left[0]:
            cur.execute(sql.SQL("DROP TABLE {}").format(self._name))


def _texts(part: Any) -> tuple[bytes, ...]:
    """What a part sends, statement by statement."""
    return tuple(s.sql for s in part.statements) if hasattr(part, "statements") else tuple(part.sql)
