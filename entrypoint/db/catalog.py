"""The catalogue reader: which tables, columns, indexes, enums and constraints the database holds, and how big.

One query over pg_catalog lists every object of the kinds `schema.SchemaModel`
tracks, as `(kind, schema, name, parent)` rows; an INVALID index (a failed
concurrent build) does not count. `table_sizes` reads the live size of the tables
a migration touches; `live_tables` finds them first as a statement names them
(`users` through the search_path, or `public.users`), for the online
planner. Read-only; it takes the connection it is handed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import psycopg

from entrypoint.core.online_parts import LiveTable, TableName
from entrypoint.core.sql import DEFAULT_SCHEMA
from entrypoint.db.connect import describe, is_session_lost
from entrypoint.errors import Untrusted

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


def creation_schema(conn: psycopg.Connection[Any]) -> str:
    """Where PostgreSQL puts what a statement names without a schema: the first of `current_schemas(false)`.

    That is the first schema of the session's search_path that exists (`$user` when the role has its own
    schema, else usually `public`). A search_path naming no existing schema gives `public`, as offline.
    """
    row = conn.execute("SELECT (current_schemas(false))[1]").fetchone()
    return str(row[0]) if row and row[0] is not None else DEFAULT_SCHEMA


class ServerIdentity(NamedTuple):
    """Which server and database this is, as the backup's state names them."""

    system_identifier: str | None  # pg_control_system()'s, unique per initdb; None: hidden from this role
    address: str  # the server's own address and port (`10.0.0.5:5432`), or `local socket`
    database_oid: int
    hidden: Untrusted | None = None  # why the identifier could not be read

    @property
    def server(self) -> str | None:
        """The server as the `♻️` line names it; None when its system identifier is hidden."""
        return None if self.system_identifier is None else f"{self.system_identifier} at {self.address}"


_WHERE = """
SELECT d.oid, coalesce(host(inet_server_addr()) || ':' || inet_server_port(), 'local socket')
FROM pg_database d WHERE d.datname = current_database()
"""


def server_identity(conn: psycopg.Connection[Any]) -> ServerIdentity:
    """The cluster's system identifier, the server's address, the database's OID (a refused read changes nothing).

    A copy made from a physical backup (a promoted standby, a point-in-time restore into a new server) keeps
    the system identifier and every OID, so the server's own address and port count too. PostgreSQL lets
    every role call pg_control_system(); a provider may revoke it, and then the identifier is None with the
    server's reason.
    """
    row = conn.execute(_WHERE).fetchone()
    oid, address = (int(row[0]), str(row[1])) if row else (0, "local socket")
    try:
        found = conn.execute("SELECT system_identifier::text FROM pg_control_system()").fetchone()
    except psycopg.Error as error:
        if is_session_lost(error, conn):
            raise
        return ServerIdentity(None, address, oid, describe(error))
    return ServerIdentity(str(found[0]) if found and found[0] is not None else None, address, oid)


class TableSize(NamedTuple):
    """A table's estimated rows and its total size on disk (indexes and TOAST included), in bytes."""

    rows: int
    bytes: int


def read(conn: psycopg.Connection[Any]) -> set[tuple[str, str, str, str | None]]:
    """Every object the catalog holds, as `SchemaObject.key`s."""
    return {(str(kind), str(schema), str(name), parent) for kind, schema, name, parent in conn.execute(CATALOG)}


# pg_total_relation_size opens the table, so it would queue behind an app's ACCESS EXCLUSIVE
# lock (held or awaited) and the deploy would stall before it started. Such a table is
# weighed from the page counts VACUUM and ANALYZE keep in pg_class, which take no lock.
_SIZES = """
SELECT n.nspname, c.relname, greatest(c.reltuples, 0)::bigint,
       CASE WHEN EXISTS (SELECT FROM pg_locks l WHERE l.relation = c.oid AND l.mode = 'AccessExclusiveLock'
                                                  AND l.pid <> pg_backend_pid())
            THEN (c.relpages::bigint
                  + coalesce((SELECT t.relpages FROM pg_class t WHERE t.oid = c.reltoastrelid), 0)
                  + coalesce((SELECT sum(i.relpages) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
                              WHERE x.indrelid = c.oid), 0)) * current_setting('block_size')::bigint
            ELSE pg_total_relation_size(c.oid) END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND (n.nspname, c.relname) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
"""


def table_sizes(conn: psycopg.Connection[Any], tables: Iterable[tuple[str, str]]) -> dict[tuple[str, str], TableSize]:
    """The live size of each (schema, table) that exists: estimated rows (`reltuples`) and bytes on disk.

    `reltuples` is the planner's estimate (-1, shown as 0, before the first VACUUM or ANALYZE of a new table).
    A table another session holds (or waits for) in ACCESS EXCLUSIVE mode is weighed from pg_class's page
    counts instead of its files, so the deploy does not queue behind that lock here.
    """
    wanted = sorted(set(tables))
    if not wanted:
        return {}
    rows = conn.execute(_SIZES, ([s for s, _ in wanted], [t for _, t in wanted])).fetchall()
    return {(str(schema), str(table)): TableSize(int(count), int(size)) for schema, table, count, size in rows}


_RESOLVE = """
SELECT w.schema, w.name, n.nspname, c.relname, c.relkind = 'p'
FROM unnest(%s::text[], %s::text[]) AS w(schema, name)
JOIN pg_class c ON c.oid = to_regclass(CASE WHEN w.schema IS NULL THEN quote_ident(w.name)
                                            ELSE quote_ident(w.schema) || '.' || quote_ident(w.name) END)
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm')
"""


def live_tables(conn: psycopg.Connection[Any], names: Iterable[TableName]) -> dict[TableName, LiveTable]:
    """Each table that exists, keyed as a statement names it (schema None: found through the search_path)."""
    wanted = sorted(set(names), key=lambda name: (name[0] or "", name[1]))
    if not wanted:
        return {}
    found = conn.execute(_RESOLVE, ([s for s, _ in wanted], [t for _, t in wanted])).fetchall()
    sizes = table_sizes(conn, [(str(row[2]), str(row[3])) for row in found])
    tables = {}
    for schema, name, real_schema, real_name, partitioned in found:
        size = sizes.get((str(real_schema), str(real_name)))
        if size is not None:
            live = LiveTable(str(real_schema), str(real_name), size.rows, size.bytes, bool(partitioned))
            tables[(schema, str(name))] = live
    return tables


class RestoredObject(NamedTuple):
    """An object of a schema a restore covers: how pg_dump's list names it, and how to drop it."""

    catalog: str  # pg_class, pg_type or pg_proc
    oid: int
    desc: str  # pg_dump's word for it: TABLE, VIEW, SEQUENCE, TYPE, DOMAIN, FUNCTION…
    schema: str
    name: str  # as pg_dump's list names it: a function with its argument types, `f(integer)`
    drop: str  # the object, as DROP reads it (quoted, qualified)


# Every object a schema holds on its own: tables (partitions go with their parent), views, sequences (those a
# column owns go with its table), foreign tables, enum, range and composite types, domains, functions; not what
# an extension owns. pg_dump's words for each, so the dump's list can be asked whether it holds it.
_RESTORED = """
SELECT 'pg_class', c.oid, CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                              WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
       n.nspname, c.relname, format('%%I.%%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND NOT c.relispartition
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                    AND (d.deptype = 'e' OR (d.deptype IN ('a', 'i') AND d.refobjsubid > 0)))
UNION ALL
SELECT 'pg_type', t.oid, CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, n.nspname, t.typname,
       format('%%I.%%I', n.nspname, t.typname)
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = ANY(%(schemas)s)
  AND (t.typtype IN ('e', 'd', 'r')
       OR (t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c'))
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                   WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
UNION ALL
SELECT 'pg_proc', p.oid, CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END,
       n.nspname, p.proname || '(' || coalesce((SELECT string_agg(format_type(a.t, NULL), ', ' ORDER BY a.i)
                                               FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY a(t, i)), '') || ')',
       format('%%I.%%I(%%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = ANY(%(schemas)s)
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                   WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
ORDER BY 1, 4, 5
"""


def restored_objects(conn: psycopg.Connection[Any], schemas: Iterable[str]) -> list[RestoredObject]:
    """Every object the schemas hold on their own (see `_RESTORED`), for a restore to hold against its dump."""
    rows = conn.execute(_RESTORED, {"schemas": sorted(schemas)}).fetchall()
    return [RestoredObject(str(r[0]), int(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5])) for r in rows]


# What depends on the given objects, however deep: what DROP … CASCADE would drop with them, and in which schema.
# A rule, a trigger, a policy or a column default has no schema of its own: it is in its table's (a view's rule
# stands for its view).
_DEPENDENTS = """
WITH RECURSIVE dropped(classid, objid) AS (
    SELECT (x.catalog)::regclass::oid, x.oid FROM unnest(%(catalogs)s::text[], %(oids)s::oid[]) AS x(catalog, oid)
  UNION
    SELECT d.classid, d.objid FROM pg_depend d JOIN dropped ON d.refclassid = dropped.classid
                                                          AND d.refobjid = dropped.objid
    WHERE d.deptype IN ('n', 'a')
), attached AS (
  SELECT d.classid, d.objid, CASE d.classid
           WHEN 'pg_rewrite'::regclass THEN (SELECT ev_class FROM pg_rewrite WHERE oid = d.objid)
           WHEN 'pg_trigger'::regclass THEN (SELECT tgrelid FROM pg_trigger WHERE oid = d.objid)
           WHEN 'pg_policy'::regclass THEN (SELECT polrelid FROM pg_policy WHERE oid = d.objid)
           WHEN 'pg_attrdef'::regclass THEN (SELECT adrelid FROM pg_attrdef WHERE oid = d.objid) END AS relid
  FROM dropped d
)
SELECT DISTINCT CASE WHEN a.classid = 'pg_rewrite'::regclass THEN 'view ' || a.relid::regclass::text
                     ELSE pg_describe_object(a.classid, a.objid, 0) END,
       coalesce((pg_identify_object(a.classid, a.objid, 0)).schema,
                (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = a.relid))
FROM attached a
"""


def dependents_outside(
    conn: psycopg.Connection[Any], objects: Iterable[RestoredObject], schemas: Iterable[str]
) -> list[str]:
    """What dropping `objects` with CASCADE would also drop outside `schemas`, described (`view reporting.v`)."""
    chosen = list(objects)
    if not chosen:
        return []
    inside = set(schemas)
    found = conn.execute(_DEPENDENTS, {"catalogs": [o.catalog for o in chosen], "oids": [o.oid for o in chosen]})
    return sorted(str(what) for what, schema in found.fetchall() if schema is not None and schema not in inside)
