"""The ledger table `drizzle.__drizzle_migrations`, read and written as drizzle-orm does.

Owns every SQL statement that touches the ledger and its audit table; takes the
connection it is handed and never commits on its own (each write that must be
atomic is one transaction, or a savepoint inside the caller's). A read returns a
`LedgerSnapshot` (the planner's input) and never creates anything. Names are
composed with `psycopg.sql`, values are always parameters.

The audit table (`<table>_audit`) keeps every row a repair, a baseline or a
rollback changed (reason `drift…`, `name…`, `baseline`, `rollback`), and every
backup a deploy or a rollback took (reason `backup`: where it is, the state it
saves and the restore point, in `detail`), so a later rollback can point to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from entrypoint.core.model import LedgerRow, LedgerSnapshot, Migration, RowRepair
from entrypoint.db.connect import describe
from entrypoint.errors import DatabaseRefused

AUDIT_SUFFIX = "_audit"


_COLUMNS_045 = "id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint"
# drizzle-orm 1.0 creates a new ledger with these; it upgrades an old one by adding the last two.
_COLUMNS_V1 = _COLUMNS_045 + ", name text, applied_at timestamp with time zone DEFAULT now()"
_FOUND = """
SELECT t.oid IS NOT NULL, EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = t.oid AND attname = 'name'
                                  AND attnum > 0 AND NOT attisdropped)
FROM (SELECT to_regclass(%s) AS oid) t
"""


class Ledger:
    """The ledger table at `schema.table`; `name_keyed` for drizzle-orm 1.0 folders."""

    def __init__(self, schema: str, table: str, *, name_keyed: bool = False) -> None:
        self.schema = schema
        self.table = table
        self.name_keyed = name_keyed
        self._schema = sql.Identifier(schema)
        self._table = sql.Identifier(schema, table)

    @property
    def qualified_name(self) -> str:
        """`schema.table`, for messages."""
        return f"{self.schema}.{self.table}"

    def snapshot(self, conn: psycopg.Connection[Any]) -> LedgerSnapshot:
        """The table as it is now: whether it exists, whether it has 1.0's `name`, every row. Creates nothing."""
        found = conn.execute(_FOUND, (self._table.as_string(conn),)).fetchone()
        exists, has_names = (bool(found[0]), bool(found[1])) if found else (False, False)
        if not exists:
            return LedgerSnapshot(exists=False, has_names=self.name_keyed, rows=())
        name = sql.SQL('"name"' if has_names and self.name_keyed else "NULL")
        rows = conn.execute(sql.SQL("SELECT id, hash, created_at, {} FROM {} ORDER BY id").format(name, self._table))
        return LedgerSnapshot(exists=True, has_names=has_names, rows=tuple(LedgerRow(*row) for row in rows))

    def create(self, conn: psycopg.Connection[Any]) -> None:
        """Create the table (and its schema, if missing) exactly as drizzle-orm does, outside any transaction.

        The schema is created only when it is missing: `CREATE SCHEMA IF NOT EXISTS` needs CREATE on the
        database even when the schema exists. Raises `DatabaseRefused` (exit 16) naming the privilege
        this user lacks.
        """
        row = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)", (self.schema,)).fetchone()
        schema_exists = bool(row and row[0])
        columns = sql.SQL(_COLUMNS_V1 if self.name_keyed else _COLUMNS_045)
        create = sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(self._table, columns)
        if not schema_exists:
            create = sql.SQL("CREATE SCHEMA IF NOT EXISTS {}; ").format(self._schema) + create
        try:
            conn.execute(create)
        except psycopg.errors.InsufficientPrivilege as error:
            where = f"schema {self.schema}" if schema_exists else f"database {conn.info.dbname}"
            raise DatabaseRefused(
                "❌ The ledger {ledger} does not exist yet and this user cannot create it: {error}. Grant it "
                "CREATE on {where} (or create the ledger once as the owner), then redeploy; nothing was changed",
                ledger=self.qualified_name,
                error=describe(error),
                where=where,
                sqlstate=error.sqlstate,
            ) from None

    def record(self, cur: psycopg.Cursor[Any], migration: Migration, *, clock: bool = False) -> None:
        """drizzle-orm's insert: the id comes from the serial sequence (1.0 adds the name).

        With `clock`, the insert also returns the transaction's start and the server's clock as it ran
        (`now()`, `clock_timestamp()`): a pipelined unit times its migrations from them. The row is the same.
        """
        returning = sql.SQL(" RETURNING now(), clock_timestamp()" if clock else "")
        if self.name_keyed:
            cur.execute(
                sql.SQL('INSERT INTO {} ("hash", "created_at", "name") VALUES (%s, %s, %s){}').format(
                    self._table, returning
                ),
                (migration.hash, migration.when, migration.tag),
            )
            return
        cur.execute(
            sql.SQL('INSERT INTO {} ("hash", "created_at") VALUES (%s, %s){}').format(self._table, returning),
            (migration.hash, migration.when),
        )

    def recorded(self, cur: psycopg.Cursor[Any], migrations: Sequence[Migration]) -> tuple[Migration, ...]:
        """Those of `migrations` whose row (their hash and `when`) the ledger holds, in their order."""
        if not migrations:
            return ()
        rows = cur.execute(
            sql.SQL("SELECT hash, created_at FROM {} WHERE hash = ANY(%s)").format(self._table),
            ([m.hash for m in migrations],),
        ).fetchall()
        found = {(str(row[0]), row[1]) for row in rows}
        return tuple(m for m in migrations if (m.hash, m.when) in found)

    def forget(self, cur: psycopg.Cursor[Any], migration: Migration) -> None:
        """Delete `migration`'s row (`rollback`), copy it to the audit table (reason rollback), reset the ids.

        The row is drizzle-orm's own: found by name (1.0), else by hash and `created_at`. The id sequence
        is then set past the max id left, so the next insert, ours or drizzle-orm's, follows it without a
        gap. One transaction (a savepoint inside the caller's).
        """
        where = sql.SQL('"name" = %s') if self.name_keyed else sql.SQL('"hash" = %s AND "created_at" = %s')
        params = (migration.tag,) if self.name_keyed else (migration.hash, migration.when)
        name = sql.SQL('"name"' if self.name_keyed else "NULL")
        audit = sql.Identifier(self.schema, self.table + AUDIT_SUFFIX)
        with cur.connection.transaction():
            gone = cur.execute(
                sql.SQL("DELETE FROM {} WHERE {} RETURNING id, hash, created_at, {}").format(self._table, where, name),
                params,
            ).fetchall()
            self._audit_rows(cur, audit, [(migration.tag, LedgerRow(*row), None) for row in gone], reason="rollback")
            self._reset_ids(cur)

    def _reset_ids(self, cur: psycopg.Cursor[Any]) -> None:
        """The id sequence at the max id (an empty ledger: the next id is 1)."""
        cur.execute(
            sql.SQL(
                "SELECT setval(pg_get_serial_sequence(%s, 'id'), greatest(max(id), 1), coalesce(max(id) >= 1, false)) "
                "FROM {}"
            ).format(self._table),
            (self._table.as_string(cur.connection),),
        )

    def note_backup(self, conn: psycopg.Connection[Any], detail: dict[str, Any]) -> None:
        """Record a backup in the audit table (reason backup; `detail`: where it is, its state, the restore point).

        Its own transaction, written before the first ledger change of the run that took it, so a
        later `rollback` finds the backup of the state before that run's migrations.
        """
        audit = sql.Identifier(self.schema, self.table + AUDIT_SUFFIX)
        with conn.transaction(), conn.cursor() as cur:
            self._audit_table(cur, audit)
            cur.execute(
                sql.SQL("INSERT INTO {} (reason, tag, detail) VALUES ('backup', %s, %s)").format(audit),
                (detail.get("last_tag"), Jsonb(detail)),
            )

    def backups(self, conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
        """Every backup the audit table records, newest first, each `detail` with its `audited_at`; creates nothing."""
        audit = sql.Identifier(self.schema, self.table + AUDIT_SUFFIX)
        found = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = 'detail' "
            "AND NOT attisdropped)",
            (audit.as_string(conn),),
        ).fetchone()
        if not found or not found[0]:
            return []
        rows = conn.execute(
            sql.SQL("SELECT audited_at, detail FROM {} WHERE reason = 'backup' ORDER BY audited_at DESC").format(audit)
        ).fetchall()
        return [
            dict(
                detail or {},
                audited_at=audited_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            )
            for audited_at, detail in rows
        ]

    def adopt(self, conn: psycopg.Connection[Any], migrations: Sequence[Migration], *, reason: str) -> None:
        """Record `migrations` as applied with drizzle-orm's own inserts, and copy each new row to the audit table.

        For `baseline`: the caller holds the lock and has seen the ledger empty, so
        every row of the table afterwards is one of ours, numbered from 1. Runs in one transaction
        (a savepoint inside the caller's).
        """
        audit = sql.Identifier(self.schema, self.table + AUDIT_SUFFIX)
        by_hash: dict[tuple[str, int | None], str] = {(m.hash, m.when): m.tag for m in migrations}
        with conn.transaction(), conn.cursor() as cur:
            # An empty ledger may have used up ids (a deploy that failed after its inserts rolled back): start
            # again from 1, as drizzle-orm's rows on a new ledger do, so the ids hold no gap.
            cur.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), 1, false)", (self._table.as_string(conn),))
            for migration in migrations:
                self.record(cur, migration)
            name = sql.SQL('"name"' if self.name_keyed else "NULL")
            written = cur.execute(
                sql.SQL("SELECT id, hash, created_at, {} FROM {} ORDER BY id").format(name, self._table)
            ).fetchall()
            rows = [LedgerRow(*row) for row in written]
            self._audit_rows(cur, audit, [(by_hash[(r.hash, r.created_at)], None, r) for r in rows], reason=reason)

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
            self._audit(cur, audit, repairs, reason=reason)
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

    def name_rows(self, conn: psycopg.Connection[Any], repairs: Sequence[RowRepair], *, upgrade: bool) -> None:
        """Give rows their 1.0 names (and file hashes), in one transaction, after auditing them.

        With `upgrade`, first add drizzle-orm 1.0's columns exactly as its own
        upgrade does, and clear `applied_at` of the named rows as it does.
        """
        audit = sql.Identifier(self.schema, self.table + AUDIT_SUFFIX)
        with conn.transaction(), conn.cursor() as cur:
            if upgrade:
                cur.execute(sql.SQL('ALTER TABLE {} ADD COLUMN IF NOT EXISTS "name" text').format(self._table))
                cur.execute(
                    sql.SQL(
                        'ALTER TABLE {} ADD COLUMN IF NOT EXISTS "applied_at" timestamp with time zone DEFAULT now()'
                    ).format(self._table)
                )
            changed = [r for r in repairs if r.old.hash != r.new.hash or r.old.name is not None]
            if changed:
                self._audit(cur, audit, changed, reason="name: rows matched to drizzle-kit 1.0 folders")
            cur.executemany(
                sql.SQL(
                    'UPDATE {} SET "name" = %s, hash = %s'
                    + (', "applied_at" = NULL' if upgrade else "")
                    + " WHERE id = %s"
                ).format(self._table),
                [(r.new.name, r.new.hash, r.old.id) for r in repairs],
            )

    def _audit(
        self, cur: psycopg.Cursor[Any], audit: sql.Identifier, repairs: Sequence[RowRepair], *, reason: str
    ) -> None:
        self._audit_rows(cur, audit, [(r.tag, r.old, r.new) for r in repairs], reason=reason)

    def _audit_table(self, cur: psycopg.Cursor[Any], audit: sql.Identifier) -> None:
        """The audit table, created if needed, with the columns later releases added."""
        cur.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (audited_at timestamptz NOT NULL DEFAULT now(), "
                "reason text NOT NULL, tag text, old_id integer, old_hash text, old_created_at bigint, "
                "new_id integer, new_hash text, new_created_at bigint)"
            ).format(audit)
        )
        cur.execute(
            sql.SQL(
                "ALTER TABLE {} ADD COLUMN IF NOT EXISTS old_name text, ADD COLUMN IF NOT EXISTS new_name text, "
                "ADD COLUMN IF NOT EXISTS detail jsonb"
            ).format(audit)
        )

    def _audit_rows(
        self,
        cur: psycopg.Cursor[Any],
        audit: sql.Identifier,
        rows: Sequence[tuple[str, LedgerRow | None, LedgerRow | None]],
        *,
        reason: str,
    ) -> None:
        """Copy (tag, row before or None for a new row, row after or None for a deleted one) into the audit table."""
        self._audit_table(cur, audit)
        if not rows:
            return
        cur.executemany(
            sql.SQL(
                "INSERT INTO {} (reason, tag, old_id, old_hash, old_created_at, new_id, new_hash, new_created_at, "
                "old_name, new_name) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            ).format(audit),
            [
                (
                    reason,
                    tag,
                    old.id if old else None,
                    old.hash if old else None,
                    old.created_at if old else None,
                    new.id if new else None,
                    new.hash if new else None,
                    new.created_at if new else None,
                    old.name if old else None,
                    new.name if new else None,
                )
                for tag, old, new in rows
            ],
        )
