"""The one ledger-planning decision: a journal and one ledger snapshot in, the whole plan out. Pure.

A deploy plans once under the lock and carries the plan out; a dry run prints
the same plan; `status` renders it. The plan says whether the ledger can be
repaired (or why not), which rows the repair rewrites, which rows only schema
evidence can vouch for, what drizzle-orm would then apply, and each entry's state.

drizzle-orm 0.45 reads one row, `order by created_at desc limit 1`, in which
PostgreSQL sorts NULL first, and treats an entry as pending when there is no row
or `Number(created_at) < when`. Anything older than that row and never recorded
is skipped forever (drizzle#5769); we name those "out of order". drizzle-orm 1.0
keys rows by migration name instead: every unrecorded name is pending.

A database is *ahead* of the folder when an older release starts on the schema a
newer one left (Render's Rollback button, the runbook's code-only rollback): every
entry applied and in step, and every other row newer than the folder's newest
entry (by `created_at`, which drizzle-orm's rule reads; 1.0: by name, after the
last folder). drizzle-orm then finds nothing to do, and so does the plan:
`ahead` lists those rows and nothing is written (WHEN_AHEAD=start), or the
ledger is refused as before (WHEN_AHEAD=refuse). More rows than entries in any
other shape is drift, and refused.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from entrypoint.core.model import Journal, LedgerRow, LedgerSnapshot, Migration, Refusal, RowRepair, WhenAhead
from entrypoint.core.sync import SyncPlan, plan_name_sync, plan_sync, plan_upgrade
from entrypoint.core.text import iso, plural

APPLIED, PENDING, DRIFTED_ID, HASH_MISMATCH, OUT_OF_ORDER = (
    "applied",
    "pending",
    "drifted id",
    "hash mismatch",
    "out of order",
)
# drizzle-kit 1.0 folders only: a 0.45 row the next deploy will name, a row whose folder was renamed.
UNNAMED, RENAMED = "unnamed", "renamed"
STATES = (APPLIED, PENDING, DRIFTED_ID, HASH_MISMATCH, OUT_OF_ORDER, UNNAMED, RENAMED)
# States whose entry a ledger row records (so its schema can be verified).
RECORDED = frozenset({APPLIED, DRIFTED_ID, HASH_MISMATCH, UNNAMED, RENAMED})


class EntryState(NamedTuple):
    """One journal entry, the ledger row matched to it (if any), its id after the repair, and its state."""

    migration: Migration
    state: str
    row: LedgerRow | None
    expected_id: int | None


@dataclass(frozen=True)
class Plan:
    """Everything one session will do to the ledger and the schema, decided before anything is written.

    Only the snapshot is required: a plan that changes nothing has every other part empty.
    """

    snapshot: LedgerSnapshot  # the ledger as read, under the lock
    refusal: Refusal | None = None  # the ledger cannot be matched: nothing may be written
    upgrade: tuple[RowRepair, ...] | None = None  # 1.0 folders on a 0.45 ledger: add the columns, name every row
    repairs: tuple[RowRepair, ...] = ()  # rows rewritten: drift (0.x), renamed folders (1.0)
    by_position: tuple[str, ...] = ()  # tags whose row matched on neither hash nor date: the schema must back them
    unknown: tuple[LedgerRow, ...] = ()  # rows no entry accounts for (reported, never deleted)
    changed: tuple[tuple[LedgerRow, str], ...] = ()  # applied files whose hash changed (reported; 1.0)
    rows_after: tuple[LedgerRow, ...] = ()  # the ledger once the repairs are written
    to_apply: tuple[Migration, ...] = ()
    out_of_order: tuple[Migration, ...] = ()  # never applied, older than the newest applied: drizzle-orm skips them
    entries: tuple[EntryState, ...] = ()
    ahead: tuple[LedgerRow, ...] = ()  # rows a newer release wrote, newer than every entry (WHEN_AHEAD=start)

    @property
    def clean(self) -> bool:
        """Everything applied and in step: nothing for the next deploy to do."""
        return self.refusal is None and not self.unknown and all(e.state == APPLIED for e in self.entries)

    def counts(self) -> Counter[str]:
        """Entries per state."""
        return Counter(e.state for e in self.entries)


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


def skipped_by_drizzle(
    migrations: Sequence[Migration], rows: Sequence[LedgerRow], pending: Sequence[Migration]
) -> tuple[Migration, ...]:
    """Entries drizzle-orm skips although no row records them (by hash or by `when`)."""
    pending_tags = {m.tag for m in pending}
    hashes = {row.hash for row in rows}
    stamps = {row.created_at for row in rows}
    return tuple(m for m in migrations if m.tag not in pending_tags and m.hash not in hashes and m.when not in stamps)


def plan(
    journal: Journal, snapshot: LedgerSnapshot, *, allow_out_of_order: bool = False, when_ahead: WhenAhead = "start"
) -> Plan:
    """The whole plan for `journal` against `snapshot`; see `Plan` for what each part means.

    `when_ahead` says what a database ahead of the folder is: a state to start on (`start`, the rows
    in `ahead`), or a refusal (`refuse`, reason "ahead", as before WHEN_AHEAD existed).
    """
    if journal.name_keyed:
        return _plan_by_name(journal.migrations, snapshot, when_ahead=when_ahead)
    return _plan_by_date(journal.migrations, snapshot, allow_out_of_order=allow_out_of_order, when_ahead=when_ahead)


def ahead_by_date(migrations: Sequence[Migration], rows: Sequence[LedgerRow]) -> tuple[LedgerRow, ...]:
    """The rows a newer release wrote, when the ledger is exactly that; else ().

    Ahead means: every entry has its own row, in step (its hash, its `when`, an id in the ledger's
    convention: the repair would change nothing), and every other row is dated after the newest
    entry, so drizzle-orm's rule (the last row by `created_at`) finds nothing pending. A NULL
    `created_at` counts as 0 for drizzle-orm, so such a row is never newer.
    """
    if not migrations:
        return ()
    newest = max(m.when for m in migrations)
    newer = tuple(r for r in rows if r.created_at is not None and r.created_at > newest)
    rest = [r for r in rows if r not in newer]
    if not newer or len(rest) != len(migrations):
        return ()
    sync = plan_sync(migrations, rest)
    return newer if isinstance(sync, SyncPlan) and not sync.repairs else ()


def ahead_by_name(migrations: Sequence[Migration], rows: Sequence[LedgerRow]) -> tuple[LedgerRow, ...]:
    """1.0 folders: the rows named after the last folder, when every folder has its own row, in step; else ()."""
    if not migrations or any(row.name is None for row in rows):
        return ()
    last = max(m.tag for m in migrations)
    newer = tuple(r for r in rows if str(r.name) > last)
    rest = {str(r.name): r for r in rows if r not in newer}
    in_step = len(rest) == len(rows) - len(newer) == len(migrations) and all(
        m.tag in rest and rest[m.tag].hash == m.hash for m in migrations
    )
    return newer if newer and in_step else ()


def ahead_label(row: LedgerRow) -> str:
    """How a line names a newer release's row: its 1.0 name, else its hash prefix and `when`."""
    return str(row.name) if row.name is not None else f"hash {row.hash[:12]}…, {iso(row.created_at)}"


def _refuse_ahead_by_name(newer: Sequence[LedgerRow], last: str) -> Refusal:
    return Refusal(
        "ahead",
        f"the ledger has {plural(len(newer), 'row')} named after {last}, the last migration folder here: the "
        "database is ahead of this code (a newer release migrated it). Deploy the newer code, or restore the "
        "database from its backup (WHEN_AHEAD=refuse)",
    )


_NAMED = 5  # a refusal names this many rows or entries, then "…"


def _first(names: Sequence[str]) -> str:
    return ", ".join(names[:_NAMED]) + (" …" if len(names) > _NAMED else "")


def _drift(migrations: Sequence[Migration], rows: Sequence[LedgerRow]) -> Refusal:
    """More rows than entries, but not a newer release's: name what is not in step."""
    newest = max(migrations, key=lambda m: m.when)
    exact = {(m.hash, m.when) for m in migrations}
    stray = [r for r in rows if (r.hash, r.created_at) not in exact and (r.created_at or 0) <= newest.when]
    recorded = {(r.hash, r.created_at) for r in rows}
    unrecorded = [m.tag for m in migrations if (m.hash, m.when) not in recorded]
    why = []
    if stray:
        ids, one = _first([str(r.id) for r in stray]), len(stray) == 1
        verbs = "matches no migration and is" if one else "match no migration and are"
        why.append(f"{'row' if one else 'rows'} {ids} {verbs} not newer than {newest.tag}")
    if unrecorded:
        names = _first(unrecorded)
        one = len(unrecorded) == 1
        why.append(f"{names} {'has' if one else 'have'} no row of {'its' if one else 'their'} own")
    return Refusal(
        "drift",
        f"the ledger has {len(rows)} rows but the journal only {len(migrations)} entries, and they are not a newer "
        f"release's (every migration here applied and in step, the other rows newer than {newest.tag}): "
        f"{'; '.join(why) or 'rows do not line up with the journal'}. That is drift, not a rollback: compare the "
        "ledger with meta/_journal.json and repair it by hand, or restore the database from its backup",
    )


def _ahead_plan(
    snapshot: LedgerSnapshot, migrations: Sequence[Migration], newer: tuple[LedgerRow, ...], *, by_name: bool
) -> Plan:
    """Everything applied and in step, `newer` kept: nothing to write, nothing to apply."""
    rows = {(r.name if by_name else (r.hash, r.created_at)): r for r in snapshot.rows if r not in newer}
    entries = []
    for m in migrations:
        row = rows[m.tag if by_name else (m.hash, m.when)]
        entries.append(EntryState(m, APPLIED, row, row.id))
    return Plan(snapshot, rows_after=snapshot.rows, entries=tuple(entries), ahead=newer)


def unrepaired(journal: Journal, snapshot: LedgerSnapshot, *, allow_out_of_order: bool = False) -> Plan:
    """The plan without any ledger write: for carrying on when the repair itself failed (SYNC_ON_ERROR=continue).

    What is pending is then what drizzle-orm would run on the ledger exactly as `snapshot` read it. (A
    plan with the 1.0 upgrade has no repair to fail: the upgrade names every row after its folder, and
    its own failure is never carried past.)
    """
    rows = snapshot.rows
    if journal.name_keyed:
        recorded = {row.name for row in rows}
        to_apply = tuple(m for m in journal.migrations if m.tag not in recorded)
        return Plan(snapshot, rows_after=rows, to_apply=to_apply)
    to_apply, skipped = _pending(journal.migrations, rows, allow_out_of_order=allow_out_of_order)
    return Plan(snapshot, rows_after=rows, to_apply=to_apply, out_of_order=skipped)


def _pending(
    migrations: Sequence[Migration], rows: Sequence[LedgerRow], *, allow_out_of_order: bool
) -> tuple[tuple[Migration, ...], tuple[Migration, ...]]:
    """(to apply, out of order): drizzle-orm's pending set, plus what it skips when that is allowed."""
    pending = drizzle_pending(migrations, rows)
    skipped = skipped_by_drizzle(migrations, rows, pending)
    chosen = {m.tag for m in pending} | ({m.tag for m in skipped} if allow_out_of_order else set())
    return tuple(m for m in migrations if m.tag in chosen), skipped


def _unclaimed_states(migrations: Sequence[Migration], rows: Sequence[LedgerRow]) -> dict[str, str]:
    """The state of each entry no row records: pending, out of order, or (recorded by hash/date) a mismatch."""
    pending = {m.tag for m in drizzle_pending(migrations, rows)}
    skipped = {m.tag for m in skipped_by_drizzle(migrations, rows, drizzle_pending(migrations, rows))}
    return {
        m.tag: PENDING if m.tag in pending else OUT_OF_ORDER if m.tag in skipped else HASH_MISMATCH for m in migrations
    }


def _plan_by_date(
    migrations: Sequence[Migration], snapshot: LedgerSnapshot, *, allow_out_of_order: bool, when_ahead: WhenAhead
) -> Plan:
    rows = snapshot.rows
    newer = ahead_by_date(migrations, rows)
    if newer and when_ahead == "start":
        return _ahead_plan(snapshot, migrations, newer, by_name=False)
    sync = plan_sync(migrations, rows)
    if isinstance(sync, Refusal) and sync.reason == "ahead" and not newer:
        sync = _drift(migrations, rows)  # more rows than entries, in a shape no newer release leaves
    if not isinstance(sync, SyncPlan):
        # No matching can be trusted: only rows with the entry's own hash and `when` count as applied,
        # and every row is reported.
        unclaimed = _unclaimed_states(migrations, rows)
        exact = {(row.hash, row.created_at): row for row in rows}
        exact_only = tuple(
            EntryState(m, APPLIED, exact[(m.hash, m.when)], None)
            if (m.hash, m.when) in exact
            else EntryState(m, unclaimed[m.tag], None, None)
            for m in migrations
        )
        skipped = _pending(migrations, rows, allow_out_of_order=False)[1]
        return Plan(snapshot, refusal=sync, unknown=rows, rows_after=rows, out_of_order=skipped, entries=exact_only)
    to_apply, skipped = _pending(migrations, sync.rows_after, allow_out_of_order=allow_out_of_order)
    unclaimed = _unclaimed_states(migrations, sync.rows_after)
    claimed = {position: (old, new) for position, old, new in sync.matched}
    states = []
    for position, m in enumerate(migrations):
        if position not in claimed:
            states.append(EntryState(m, unclaimed[m.tag], None, None))
            continue
        old, new = claimed[position]
        if old == new:
            state = APPLIED
        elif (old.hash, old.created_at) == (new.hash, new.created_at):
            state = DRIFTED_ID
        else:
            state = HASH_MISMATCH
        states.append(EntryState(m, state, old, new.id))
    return Plan(
        snapshot=snapshot,
        refusal=None,
        upgrade=None,
        repairs=sync.repairs,
        by_position=sync.by_position,
        unknown=(),
        changed=(),
        rows_after=sync.rows_after,
        to_apply=to_apply,
        out_of_order=skipped,
        entries=tuple(states),
    )


def _plan_by_name(migrations: Sequence[Migration], snapshot: LedgerSnapshot, *, when_ahead: WhenAhead) -> Plan:
    rows = snapshot.rows
    newer = ahead_by_name(migrations, rows) if snapshot.has_names else ()
    if newer and when_ahead == "start":
        return _ahead_plan(snapshot, migrations, newer, by_name=True)
    if newer:
        applied = tuple(EntryState(m, APPLIED, r, r.id) for m in migrations for r in rows if r.name == m.tag)
        refusal = _refuse_ahead_by_name(newer, max(m.tag for m in migrations))
        return Plan(snapshot, refusal=refusal, unknown=newer, rows_after=rows, entries=applied)
    upgrade: tuple[RowRepair, ...] | None = None
    by_position: tuple[str, ...] = ()
    if snapshot.exists and not snapshot.has_names:
        named = plan_upgrade(migrations, rows)
        if isinstance(named, Refusal):
            pending = tuple(EntryState(m, PENDING, None, None) for m in migrations)
            return Plan(snapshot, refusal=named, unknown=rows, rows_after=rows, entries=pending)
        upgrade, by_position, rows = named.repairs, named.by_position, named.rows_after
    names = plan_name_sync(migrations, rows)
    renamed = {r.tag: r.old for r in names.renames}
    by_name = {row.name: row for row in names.rows_after if row.name is not None}
    unnamed = {r.old.id for r in upgrade or ()}
    states = []
    for m in migrations:
        row = by_name.get(m.tag)
        if row is None:
            states.append(EntryState(m, PENDING, None, None))
        elif m.tag in renamed:
            states.append(EntryState(m, RENAMED, renamed[m.tag], row.id))
        elif row.id in unnamed:
            states.append(EntryState(m, UNNAMED, row, row.id))
        else:
            states.append(EntryState(m, APPLIED if row.hash == m.hash else HASH_MISMATCH, row, row.id))
    return Plan(
        snapshot=snapshot,
        refusal=None,
        upgrade=upgrade,
        repairs=names.renames,
        by_position=by_position,
        unknown=names.unknown,
        changed=names.changed,
        rows_after=names.rows_after,
        to_apply=tuple(m for m in migrations if m.tag not in by_name),
        out_of_order=(),
        entries=tuple(states),
    )
