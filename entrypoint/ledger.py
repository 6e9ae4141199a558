"""The ledger table `drizzle.__drizzle_migrations`, read and written as drizzle-orm does.

Owns every SQL statement that touches the ledger; takes the connection it is
handed and never commits on its own. Names are composed with `psycopg.sql`,
values are always parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from entrypoint.journal import Migration
from entrypoint.plan import LedgerRow
from entrypoint.sync import RowRepair

AUDIT_SUFFIX = "_audit"


class Ledger:
    """The ledger table at `schema.table`."""

    def __init__(self, schema: str, table: str) -> None:
        self.schema = schema
        self.table = table
        self._schema = sql.Identifier(schema)
        self._table = sql.Identifier(schema, table)

    @property
    def qualified_name(self) -> str:
        """`schema.table`, for messages."""
        return f"{self.schema}.{self.table}"

    def _select(self) -> sql.Composed:
        return sql.SQL("SELECT id, hash, created_at FROM {} ORDER BY id").format(self._table)

    def ensure_and_read(self, conn: psycopg.Connection[Any]) -> list[LedgerRow]:
        """Create the schema and table exactly as drizzle-orm does, then read every row.

        One round trip: the three statements go as one simple query, which
        PostgreSQL runs as one implicit transaction.
        """
        query = sql.SQL(
            "CREATE SCHEMA IF NOT EXISTS {schema}; "
            "CREATE TABLE IF NOT EXISTS {table} (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint); "
            "{select}"
        ).format(schema=self._schema, table=self._table, select=self._select())
        cur = conn.execute(query)
        while cur.nextset():
            pass
        return [LedgerRow(*row) for row in cur.fetchall()]

    def read_if_exists(self, conn: psycopg.Connection[Any]) -> list[LedgerRow]:
        """Every row, or none when the table does not exist yet. Creates nothing (dry runs)."""
        exists = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL",
            (sql.Identifier(self.schema, self.table).as_string(conn),),
        ).fetchone()
        if not exists or not exists[0]:
            return []
        return [LedgerRow(*row) for row in conn.execute(self._select()).fetchall()]

    def record(self, cur: psycopg.Cursor[Any], migration: Migration) -> None:
        """drizzle-orm's insert: the id comes from the serial sequence."""
        cur.execute(
            sql.SQL('INSERT INTO {} ("hash", "created_at") VALUES (%s, %s)').format(self._table),
            (migration.hash, migration.when),
        )

    @property
    def audit_name(self) -> str:
        """The audit table beside the ledger, for messages and the README."""
        return f"{self.schema}.{self.table}{AUDIT_SUFFIX}"

    def repair(self, conn: psycopg.Connection[Any], repairs: Sequence[RowRepair], *, reason: str) -> None:
        """Rewrite the rows in one transaction, after copying the originals to the audit table.

        Renumbered rows first move to ids below every id in play, so the primary
        key never collides mid-update; then the sequence is set past the max id.
        """
        audit = sql.Identifier(self.schema, self.table + AUDIT_SUFFIX)
        in_play = [r.old.id for r in repairs] + [r.new.id for r in repairs] + [0]
        parking = min(in_play) - 1
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (audited_at timestamptz NOT NULL DEFAULT now(), "
                    "reason text NOT NULL, tag text, old_id integer, old_hash text, old_created_at bigint, "
                    "new_id integer, new_hash text, new_created_at bigint)"
                ).format(audit)
            )
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {} (reason, tag, old_id, old_hash, old_created_at, new_id, new_hash, new_created_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                ).format(audit),
                [
                    (
                        reason,
                        r.tag,
                        r.old.id,
                        r.old.hash,
                        r.old.created_at,
                        r.new.id,
                        r.new.hash,
                        r.new.created_at,
                    )
                    for r in repairs
                ],
            )
            parked = [(parking - n, r) for n, r in enumerate(repairs)]
            cur.executemany(
                sql.SQL("UPDATE {} SET id = %s WHERE id = %s").format(self._table),
                [(temp, r.old.id) for temp, r in parked],
            )
            cur.executemany(
                sql.SQL("UPDATE {} SET id = %s, hash = %s, created_at = %s WHERE id = %s").format(self._table),
                [(r.new.id, r.new.hash, r.new.created_at, temp) for temp, r in parked],
            )
            cur.execute(
                sql.SQL(
                    "SELECT setval(pg_get_serial_sequence(%s, 'id'), greatest(max(id), 1), max(id) >= 1) FROM {}"
                ).format(self._table),
                (self._table.as_string(conn),),
            )
