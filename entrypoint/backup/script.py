r"""pg_restore's plain-text script, run on a connection of ours, inside the caller's transaction, as psql runs it.

`pg_restore -f -` writes the restore as SQL text, each table's rows as a `COPY … FROM
stdin;` block. Running that text ourselves, rather than letting pg_restore connect,
lets `restore` put its own drops and the whole restore in one transaction of its own,
with its own lock_timeout, heartbeat and deadline (`commands/restoring`). The text
between two COPY blocks is sent as one simple query (it may hold many statements and
function bodies, which the server reads itself); each COPY block is streamed, a
megabyte at a time. Of psql's meta-commands, pg_dump writes `\restrict` and
`\unrestrict` (which only fence the script against psql commands hidden in it): they
are skipped, and any other is refused. The header's `SET lock_timeout = 0;` is left
out, so the caller's lock_timeout holds for the whole restore.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import psycopg

_FENCE = (b"\\restrict ", b"\\unrestrict ")
_NO_LOCK_TIMEOUT = b"SET lock_timeout = 0;"
_HEADER = (b"--", b"SET ", b"SELECT pg_catalog.set_config(")
_END_OF_COPY = b"\\."
_BLOCK = 1 << 20


class ScriptError(Exception):
    """The script holds what only psql could run: a meta-command other than pg_dump's fence."""


def _send(cur: psycopg.Cursor[Any], lines: list[bytes]) -> None:
    """The SQL text gathered so far, as one simple query (nothing to send for blank lines and comments)."""
    if any(line.strip() and not line.startswith(b"--") for line in lines):
        cur.execute(b"".join(lines))


def _copy(cur: psycopg.Cursor[Any], statement: bytes, rows: Iterator[bytes]) -> None:
    r"""One `COPY … FROM stdin;` block: its rows, up to the `\.` line, streamed a megabyte at a time."""
    block: list[bytes] = []
    size = 0
    with cur.copy(statement.rstrip()) as copy:
        for row in rows:
            if row.rstrip(b"\r\n") == _END_OF_COPY:
                break
            block.append(row)
            size += len(row)
            if size >= _BLOCK:
                copy.write(b"".join(block))
                block, size = [], 0
        if block:
            copy.write(b"".join(block))


def run(cur: psycopg.Cursor[Any], script: Iterable[bytes], at: Callable[[str], None] = lambda _: None) -> None:
    """Run `script` (pg_restore's output, line by line) on `cur`, in whatever transaction it is in.

    `at` is told what runs now (`COPY public.users`, or the schema's statements), for the heartbeat.
    Raises `ScriptError` for a meta-command it cannot run, and psycopg's errors as the server sends them.
    """
    lines = iter(script)
    gathered: list[bytes] = []
    header = True
    for line in lines:
        if line.startswith(b"\\"):
            if line.startswith(_FENCE):
                continue
            raise ScriptError(line.split(maxsplit=1)[0].decode(errors="replace"))
        if header and line.strip() == _NO_LOCK_TIMEOUT:
            continue
        header = header and (not line.strip() or line.startswith(_HEADER))
        if line.startswith(b"COPY ") and line.rstrip().endswith(b" FROM stdin;"):
            at("the schema's statements")
            _send(cur, gathered)
            gathered = []
            at(line.split(b" (", 1)[0].decode(errors="replace"))
            _copy(cur, line, lines)
            continue
        gathered.append(line)
    at("the schema's statements")
    _send(cur, gathered)
