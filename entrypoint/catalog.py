"""The catalogue reader: which tables, columns, indexes, enums and constraints the database holds.

One query over pg_catalog lists every object of the kinds `schema.SchemaModel`
tracks, as `(kind, schema, name, parent)` rows; an INVALID index (a failed
concurrent build) does not count. Read-only; it takes the connection it is handed.
"""

from __future__ import annotations

from typing import Any

import psycopg

CATALOG = """
SELECT 'table', n.nspname, c.relname, NULL FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
UNION ALL
SELECT 'column', n.nspname, a.attname, c.relname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
UNION ALL
SELECT 'index', n.nspname, ic.relname, tc.relname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_class tc ON tc.oid = i.indrelid JOIN pg_namespace n ON n.oid = ic.relnamespace
 WHERE i.indisvalid
UNION ALL
SELECT 'enum type', n.nspname, t.typname, NULL FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE t.typtype = 'e'
UNION ALL
SELECT 'enum value', n.nspname, e.enumlabel, t.typname FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
  JOIN pg_namespace n ON n.oid = t.typnamespace
UNION ALL
SELECT 'constraint', n.nspname, co.conname, c.relname FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
"""


def read(conn: psycopg.Connection[Any]) -> set[tuple[str, str, str, str | None]]:
    """Every object the catalog holds, as `SchemaObject.key`s."""
    return {(str(kind), str(schema), str(name), parent) for kind, schema, name, parent in conn.execute(CATALOG)}
