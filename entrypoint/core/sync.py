"""Matching ledger rows to journal entries, the pieces the planner (`plan`) composes. Pure.

Every ledger row is taken to stand for one applied migration. Rows are matched
to journal entries first by hash, then by `created_at == when`, then by
position, but only to extend a contiguous prefix of exactly matched entries,
and only when the result keeps the journal's order in the row ids. The repair
rewrites each matched row's hash and `created_at` to its entry's. Ids keep the
ledger's own convention: the span `offset .. offset + rows - 1`, the offset
inferred from the rows that already match exactly (0 in the runbook's ledger,
1 in drizzle-orm's). A row that matches exactly keeps its id when it lies in
that span, whatever its position: drizzle-orm numbers rows in the order they
were applied, which a merged branch makes differ from journal order. The
others get their position's id when free, else the next free one. Anything
ambiguous is a `Refusal`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

from entrypoint.core.model import LedgerRow, Migration, Refusal, RowRepair


class SyncPlan(NamedTuple):
    """The repairs (possibly none), the ledger as it will read afterwards, and each entry's row."""

    repairs: tuple[RowRepair, ...]
    rows_after: tuple[LedgerRow, ...]
    offset: int
    by_position: tuple[str, ...] = ()
    matched: tuple[tuple[int, LedgerRow, LedgerRow], ...] = ()  # (journal position, row, row after)


def _refuse_ahead(rows: int, entries: int) -> Refusal:
    return Refusal(
        "ahead",
        f"the ledger has {rows} rows but the journal only {entries} entries: the database is ahead of this "
        "code (a newer release migrated it). Deploy the newer code, or restore the database from its backup",
    )


def _stamp(millis: int, *, by_second: bool) -> int:
    """A `created_at` as it is compared: to the millisecond, or (drizzle-orm 1.0's upgrade) to the second."""
    return millis // 1000 * 1000 if by_second else millis


def _refuse_duplicate(tag: str) -> Refusal:
    return Refusal(
        "duplicate",
        f"two ledger rows claim {tag}: delete the duplicate row from the ledger by hand, then redeploy",
    )


def _match_exact(
    migrations: Sequence[Migration],
    rows: Sequence[LedgerRow],
    claims: dict[int, int],
    *,
    by_second: bool,
) -> Refusal | None:
    """Steps 1 and 2: claim entries by hash, then by `created_at` (to the millisecond, or to the second)."""
    by_hash: dict[str, list[int]] = {}
    by_when: dict[int, list[int]] = {}
    for position, migration in enumerate(migrations):
        by_hash.setdefault(migration.hash, []).append(position)
        by_when.setdefault(_stamp(migration.when, by_second=by_second), []).append(position)
    claimed: set[int] = set()
    for index, row in enumerate(rows):
        candidates = by_hash.get(row.hash, [])
        free = [p for p in candidates if p not in claimed]
        if candidates and not free:
            return _refuse_duplicate(migrations[candidates[0]].tag)
        if free:
            pick = next((p for p in free if migrations[p].when == row.created_at), free[0])
            claims[index] = pick
            claimed.add(pick)
    for index, row in enumerate(rows):
        stamped = _stamp(row.created_at, by_second=by_second) if row.created_at is not None else None
        candidates = by_when.get(stamped, []) if stamped is not None else []
        if index in claims or not candidates:
            continue
        free = [p for p in candidates if p not in claimed]
        if not by_second and not free:
            return _refuse_duplicate(migrations[candidates[0]].tag)
        if len(free) == 1:  # several entries in one second: only the hash could tell, and it did not
            claims[index] = free[0]
            claimed.add(free[0])
    return None


def _match_by_position(
    migrations: Sequence[Migration], rows: Sequence[LedgerRow], claims: dict[int, int]
) -> Refusal | None:
    """Step 3: the rows left continue the exactly matched prefix, in id order, or we refuse.

    Only a contiguous prefix may be extended: with a hole in the middle, an
    unknown row could stand for the hole or for a later entry, and no rule can tell.
    """
    unmatched = sorted((i for i in range(len(rows)) if i not in claims), key=lambda i: rows[i].id)
    copies = Counter((rows[i].hash, rows[i].created_at) for i in unmatched)
    if any(count > 1 for count in copies.values()):
        return Refusal(
            "duplicate",
            "several ledger rows are copies of one unknown migration: delete the duplicates by hand, then redeploy",
        )
    matched = sorted(claims.values())
    if matched != list(range(len(matched))):
        hole = next(p for p in range(len(matched) + 1) if p not in claims.values())
        return Refusal(
            "gap",
            f"{len(unmatched)} ledger rows match no migration while {migrations[hole].tag} has no row but later "
            "ones do: the ledger has a gap, so matching rows by position is unsafe. "
            "Compare it with meta/_journal.json and repair it by hand",
        )
    claims.update(zip(unmatched, range(len(matched), len(rows)), strict=True))
    in_id_order = [claims[i] for i in sorted(range(len(rows)), key=lambda i: rows[i].id)]
    if in_id_order != sorted(in_id_order):
        return Refusal(
            "order",
            "the rows that match no migration by hash or date would not line up with the journal in id "
            "order, so matching them by position is unsafe. Repair the ledger by hand",
        )
    return None


def _match(
    migrations: Sequence[Migration], rows: Sequence[LedgerRow], *, by_second: bool = False
) -> dict[int, int] | Refusal:
    """Row index → journal position, by hash, then `created_at`, then position.

    Duplicates are named before the row count is compared, so a copied row
    reads as a duplicate rather than as a database ahead of the code.
    """
    claims: dict[int, int] = {}
    refusal = _match_exact(migrations, rows, claims, by_second=by_second)
    if refusal is None and len(rows) > len(migrations):
        refusal = _refuse_ahead(len(rows), len(migrations))
    if refusal is None and len(claims) < len(rows):
        refusal = _match_by_position(migrations, rows, claims)
    return refusal or claims


def _offset(migrations: Sequence[Migration], rows: Sequence[LedgerRow], claims: dict[int, int]) -> int:
    exact = [
        rows[i].id - p
        for i, p in claims.items()
        if rows[i].hash == migrations[p].hash and rows[i].created_at == migrations[p].when
    ]
    counts = Counter(exact or [rows[i].id - p for i, p in claims.items()])
    if not counts:
        return 1
    best = max(counts.values())
    # On a tie, prefer drizzle-orm's own convention (ids from 1), then the runbook's (from 0).
    return min((o for o, c in counts.items() if c == best), key=lambda o: (o != 1, o != 0, abs(o)))


def plan_sync(migrations: Sequence[Migration], rows: Sequence[LedgerRow]) -> SyncPlan | Refusal:
    """The repair that puts every row in step with its journal entry, or why there is none."""
    claims = _match(migrations, rows)
    if isinstance(claims, Refusal):
        return claims
    offset = _offset(migrations, rows, claims)
    ids = _ids(migrations, rows, claims, offset)
    repairs = []
    matched = []
    for index, row in enumerate(rows):
        migration = migrations[claims[index]]
        wanted = LedgerRow(id=ids[index], hash=migration.hash, created_at=migration.when)
        matched.append((claims[index], row, wanted))
        if wanted != row:
            repairs.append(RowRepair(old=row, new=wanted, tag=migration.tag))
    return SyncPlan(
        repairs=tuple(sorted(repairs, key=lambda r: r.new.id)),
        rows_after=tuple(sorted((new for _, _, new in matched), key=lambda r: r.id)),
        offset=offset,
        by_position=_by_position(migrations, rows, claims, by_second=False),
        matched=tuple(sorted(matched)),
    )


def _ids(
    migrations: Sequence[Migration], rows: Sequence[LedgerRow], claims: dict[int, int], offset: int
) -> dict[int, int]:
    """Row index → its id after the repair (see the module docstring)."""
    span = range(offset, offset + len(rows))
    ids = {
        i: rows[i].id
        for i, p in claims.items()
        if rows[i].id in span and (rows[i].hash, rows[i].created_at) == (migrations[p].hash, migrations[p].when)
    }
    rest = sorted(set(claims) - ids.keys(), key=lambda i: claims[i])
    for i in rest:
        if claims[i] + offset not in ids.values():
            ids[i] = claims[i] + offset
    free = iter(sorted(set(span) - set(ids.values())))
    for i in rest:
        if i not in ids:
            ids[i] = next(free)
    return ids


class UpgradePlan(NamedTuple):
    """Naming an old (0.45) ledger for drizzle-orm 1.0: each row with its entry's name and file hash."""

    rows_after: tuple[LedgerRow, ...]
    repairs: tuple[RowRepair, ...]
    by_position: tuple[str, ...] = ()


def _by_position(
    migrations: Sequence[Migration], rows: Sequence[LedgerRow], claims: dict[int, int], *, by_second: bool
) -> tuple[str, ...]:
    """Tags whose row matched on neither hash nor date: only evidence in the schema can back those."""
    tags = []
    for index, position in sorted(claims.items(), key=lambda item: item[1]):
        row, migration = rows[index], migrations[position]
        dated = row.created_at is not None and _stamp(row.created_at, by_second=by_second) == _stamp(
            migration.when, by_second=by_second
        )
        if row.hash != migration.hash and not dated:
            tags.append(migration.tag)
    return tuple(tags)


def plan_upgrade(migrations: Sequence[Migration], rows: Sequence[LedgerRow]) -> UpgradePlan | Refusal:
    """Match old rows to 1.0 folders and name them, or refuse.

    drizzle-orm 1.0 matches on the second of `created_at` first, so on a drifted
    ledger it names rows after the wrong folder. We match by hash first, then by
    that second, then by position, with the same refusals as the sync; ids and
    `created_at` are kept, as drizzle-orm keeps them.
    """
    claims = _match(migrations, rows, by_second=True)
    if isinstance(claims, Refusal):
        return claims
    repairs = []
    after = []
    for index, row in enumerate(rows):
        migration = migrations[claims[index]]
        new = LedgerRow(id=row.id, hash=migration.hash, created_at=row.created_at, name=migration.tag)
        after.append(new)
        repairs.append(RowRepair(old=row, new=new, tag=migration.tag))
    return UpgradePlan(
        rows_after=tuple(after),
        repairs=tuple(repairs),
        by_position=_by_position(migrations, rows, claims, by_second=True),
    )


class NameSync(NamedTuple):
    """A name-keyed (1.0) ledger against its folders: renames we can prove, and what we can only report."""

    renames: tuple[RowRepair, ...]
    unknown: tuple[LedgerRow, ...]
    changed: tuple[tuple[LedgerRow, str], ...]
    rows_after: tuple[LedgerRow, ...]


def plan_name_sync(migrations: Sequence[Migration], rows: Sequence[LedgerRow]) -> NameSync:
    """Match rows by name first; a row whose name is gone but whose hash is a pending folder's was renamed.

    Rows matching nothing, and applied files whose hash changed, are reported, never silently skipped.
    """
    by_name = {m.tag: m for m in migrations}
    recorded = {row.name for row in rows if row.name in by_name}
    by_hash = {m.hash: m for m in migrations if m.tag not in recorded}
    renames: list[RowRepair] = []
    unknown: list[LedgerRow] = []
    changed: list[tuple[LedgerRow, str]] = []
    after: list[LedgerRow] = []
    for row in rows:
        if row.name in by_name:
            if by_name[row.name].hash != row.hash:
                changed.append((row, row.name))
            after.append(row)
        elif row.hash in by_hash:
            target = by_hash.pop(row.hash)
            new = LedgerRow(row.id, row.hash, row.created_at, target.tag)
            renames.append(RowRepair(old=row, new=new, tag=target.tag))
            after.append(new)
        else:
            unknown.append(row)
            after.append(row)
    return NameSync(tuple(renames), tuple(unknown), tuple(changed), tuple(after))
