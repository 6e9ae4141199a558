"""Which SQL statements cannot run inside a transaction block. Pure: text in, answers out.

drizzle-orm runs every pending migration in one transaction, so a migration
with `CREATE INDEX CONCURRENTLY` can never be applied by it (drizzle#860). We
look for such statements, after blanking out comments and quoted text so a
word inside a string or a function body does not count, and run their
migration on its own, outside a transaction.
"""

from __future__ import annotations

import re

_QUOTED = re.compile(
    r"""
      --[^\n]*                          # line comment
    | /\*.*?\*/                         # block comment (not nested; good enough for a keyword scan)
    | '(?:[^']|'')*'                    # string
    | "(?:[^"]|"")*"                    # quoted identifier
    | (\$[A-Za-z_0-9]*\$).*?\1          # dollar-quoted body
    """,
    re.DOTALL | re.VERBOSE,
)
_OUTSIDE_TRANSACTION = re.compile(
    r"""
      \bCREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\b
    | \bDROP\s+INDEX\s+CONCURRENTLY\b
    | \bREINDEX\b[^;]*\bCONCURRENTLY\b
    | \bVACUUM\b
    """,
    re.IGNORECASE | re.VERBOSE,
)
_ADD_VALUE = re.compile(r"\bALTER\s+TYPE\b[^;]*\bADD\s+VALUE\b", re.IGNORECASE)
_CONCURRENT_INDEX = re.compile(
    r"""\bCREATE\s+(?:UNIQUE\s+)?INDEX\s+CONCURRENTLY\s+(?:IF\s+NOT\s+EXISTS\s+)?(?!ON\b)
        ((?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)(?:\s*\.\s*(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*))?)""",
    re.IGNORECASE | re.VERBOSE,
)
# PostgreSQL 12 is the first to allow ALTER TYPE ... ADD VALUE inside a transaction block.
ADD_VALUE_IN_TRANSACTION_SINCE = 120000


def _code_only(sql: str) -> str:
    return _QUOTED.sub(lambda m: " " if m.group(0).startswith(("--", "/*")) else "''", sql)


def needs_autocommit(statement: str, server_version: int) -> bool:
    """True when PostgreSQL refuses to run `statement` inside a transaction block."""
    code = _code_only(statement)
    if _OUTSIDE_TRANSACTION.search(code):
        return True
    return server_version < ADD_VALUE_IN_TRANSACTION_SINCE and bool(_ADD_VALUE.search(code))


def concurrent_index_name(statement: str) -> str | None:
    """The index a `CREATE INDEX CONCURRENTLY` builds, as written (quoted or not), if it names one."""
    match = _CONCURRENT_INDEX.search(
        _QUOTED.sub(lambda m: m.group(0) if m.group(0).startswith('"') else " ", statement)
    )
    return match.group(1) if match else None
