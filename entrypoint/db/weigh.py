"""What a rollback would lose, read on the live database before anything changes.

Each `reverse.DataCheck` becomes one count, in one READ ONLY transaction (so a
column default that calls a volatile function, `nextval()` say, can never
advance anything): the rows of a table a step drops, the values of a column
other than NULL and its default, the NULLs of a column that gets NOT NULL back.
Counts stop at `CAP` rows, so a large table costs one bounded scan. A table or
column that is not there counts nothing (the step itself will then say so). A
default that cannot be evaluated read-only is not trusted: every non-NULL value
then counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import psycopg
from psycopg import sql

from entrypoint.core.reverse import DataCheck

CAP = 1_000_000  # rows counted at most per check: "≥ 1,000,000" beyond
_ABSENT = ("42P01", "42703", "3F000")  # undefined table, column, schema


class Weighed(NamedTuple):
    """One check and what it found: rows (or values, or NULLs) counted, up to `CAP`."""

    check: DataCheck
    found: int


def _table(check: DataCheck) -> sql.Identifier:
    schema, name = check.table
    return sql.Identifier(schema, name) if schema else sql.Identifier(name)


def _query(check: DataCheck, *, with_default: bool) -> sql.Composed:
    column = sql.Identifier(check.column or "")
    if check.kind == "rows":
        where: sql.Composable = sql.SQL("true")
    elif check.kind == "nulls":
        where = sql.SQL("{} IS NULL").format(column)
    elif with_default and check.default is not None:
        # The default is the migration's own SQL text: running it here is what the migration already ran.
        where = sql.SQL("{} IS NOT NULL AND {} IS DISTINCT FROM ({})").format(column, column, sql.SQL(check.default))
    else:
        where = sql.SQL("{} IS NOT NULL").format(column)
    return sql.SQL("SELECT count(*) FROM (SELECT FROM {} WHERE {} LIMIT {}) AS found").format(
        _table(check), where, sql.Literal(CAP)
    )


def _count(conn: psycopg.Connection[Any], check: DataCheck) -> int:
    for with_default in (True, False):
        try:
            with conn.transaction():  # a savepoint: a failed count leaves the others' transaction usable
                row = conn.execute(_query(check, with_default=with_default)).fetchone()
            return int(row[0]) if row else 0
        except psycopg.Error as error:
            if error.sqlstate in _ABSENT:
                return 0
            if not with_default or check.default is None:
                raise
    return 0  # pragma: no cover - the loop returns or raises


def weigh(conn: psycopg.Connection[Any], checks: Iterable[DataCheck]) -> list[Weighed]:
    """Each check's count, read in one READ ONLY transaction; raises the driver's error for anything else."""
    with conn.transaction():
        conn.execute("SET TRANSACTION READ ONLY")
        return [Weighed(check, _count(conn, check)) for check in checks]
