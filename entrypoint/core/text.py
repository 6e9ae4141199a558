"""The small text helpers every report shares: counts, dates, sizes, id runs, columns. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

_ONE_DECIMAL_BELOW = 10  # 1.5 GB, but 15 GB


def plural(number: int, noun: str) -> str:
    """`1 row`, `2 rows`."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def iso(ms: int | None) -> str | None:
    """A drizzle `when` / `created_at` (ms since the epoch) as JavaScript's `toISOString()`, UTC.

    A ledger row may hold any bigint (a row written by hand): one outside the years 1-9999 is shown as its number.
    """
    if ms is None:
        return None
    try:
        moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return str(ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def size_text(size: int) -> str:
    """`812 kB`, `312 MB`, `1.5 GB`: PostgreSQL's units, as pg_size_pretty writes them."""
    for unit, factor in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if size >= factor:
            value = size / factor
            decimal = value < _ONE_DECIMAL_BELOW and value != int(value)
            return f"{value:.1f} {unit}" if decimal else f"{round(value)} {unit}"
    return f"{size} bytes"


def id_ranges(ids: Sequence[int]) -> str:
    """`0..7, 283..285`: sorted ids as runs."""
    spans: list[list[int]] = []
    for i in ids:
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in spans)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell, the header first."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
