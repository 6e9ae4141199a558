"""What is pending: drizzle-orm's rules (0.45 and 1.0), and the entries 0.45 silently skips.

Pure functions over journal entries and ledger rows: no database, no files, no
logging. drizzle-orm 0.45 reads one row, `order by created_at desc limit 1`, in
which PostgreSQL sorts NULL first, and treats an entry as pending when there is
no row or `Number(created_at) < when`. Anything older than that row and never
recorded is skipped forever (drizzle#5769); we name those "out of order".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from entrypoint.journal import Migration


class LedgerRow(NamedTuple):
    """One row of `__drizzle_migrations`."""

    id: int
    hash: str
    created_at: int | None
    name: str | None = None  # drizzle-orm 1.0 ledgers only


class MigrationPlan(NamedTuple):
    """The migrations to apply, in journal order, and those drizzle-orm would skip."""

    to_apply: tuple[Migration, ...]
    out_of_order: tuple[Migration, ...]
    applied: int


def drizzle_watermark(rows: Sequence[LedgerRow]) -> float | None:
    """`Number(last.created_at)` of drizzle-orm's last row, or None for an empty ledger.

    `desc` puts NULL first in PostgreSQL, and `Number(null)` is 0. Comparing as
    floats reproduces JavaScript's number semantics for bigint text.
    """
    if not rows:
        return None
    if any(row.created_at is None for row in rows):
        return 0.0
    return float(max(row.created_at for row in rows if row.created_at is not None))


def drizzle_pending(migrations: Sequence[Migration], rows: Sequence[LedgerRow]) -> tuple[Migration, ...]:
    """Exactly the entries drizzle-orm 0.45's migrator would run, in its order."""
    watermark = drizzle_watermark(rows)
    if watermark is None:
        return tuple(migrations)
    return tuple(m for m in migrations if watermark < float(m.when))


def out_of_order(
    migrations: Sequence[Migration], rows: Sequence[LedgerRow], pending: Sequence[Migration] | None = None
) -> tuple[Migration, ...]:
    """Entries drizzle-orm skips although no row records them (by hash or by `when`).

    `pending` is drizzle-orm's pending set, when the caller has it already.
    """
    pending_tags = {m.tag for m in (drizzle_pending(migrations, rows) if pending is None else pending)}
    hashes = {row.hash for row in rows}
    stamps = {row.created_at for row in rows}
    return tuple(m for m in migrations if m.tag not in pending_tags and m.hash not in hashes and m.when not in stamps)


def drizzle_v1_pending(migrations: Sequence[Migration], rows: Sequence[LedgerRow]) -> tuple[Migration, ...]:
    """drizzle-orm 1.0's rule: pending when no row carries the migration's (folder) name."""
    names = {row.name for row in rows if row.name is not None}
    return tuple(m for m in migrations if m.tag not in names)


def plan_migrations(
    migrations: Sequence[Migration],
    rows: Sequence[LedgerRow],
    *,
    allow_out_of_order: bool,
    name_keyed: bool = False,
) -> MigrationPlan:
    """drizzle-orm's pending set, plus the out-of-order entries when explicitly allowed.

    A name-keyed (1.0) ledger has no out-of-order case: every unrecorded name is pending.
    """
    if name_keyed:
        return MigrationPlan(to_apply=drizzle_v1_pending(migrations, rows), out_of_order=(), applied=len(rows))
    pending = drizzle_pending(migrations, rows)
    skipped = out_of_order(migrations, rows, pending)
    chosen = {m.tag for m in pending} | ({m.tag for m in skipped} if allow_out_of_order else set())
    return MigrationPlan(
        to_apply=tuple(m for m in migrations if m.tag in chosen),
        out_of_order=skipped,
        applied=len(rows),
    )
