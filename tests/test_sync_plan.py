"""Property tests of the pure planners: the ledger repair and drizzle-orm's pending rule.

Generated ledgers stand for a known truth: the set of journal entries that were
applied. Every row stands for one applied entry; mutations then shuffle or
shift ids, corrupt hashes, shift `created_at`, delete, duplicate or add rows.
Every plan must either refuse, or yield a ledger from which drizzle-orm's rule
picks exactly the entries never applied.

One case is undecidable by any planner, so there the property only demands a
refusal or a prefix: a row whose hash and `created_at` both no longer point at
its own entry, alongside a deleted row. The ledger then reads the same whether
that row stands for the deleted entry (or the entry its date names) or for its
own, e.g. row "hash X, created_at = when of 0000" beside no row for 0000.
"""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from entrypoint.model import LedgerRow, Migration, Refusal
from entrypoint.plan import drizzle_pending, skipped_by_drizzle
from entrypoint.sync import SyncPlan, plan_sync


def _migration(position: int, when: int) -> Migration:
    digest = hashlib.sha256(f"migration {position}".encode()).hexdigest()
    return Migration(idx=position, tag=f"{position:04d}_m", when=when, hash=digest, statements=("SELECT 1",))


@st.composite
def journals(draw: st.DrawFn) -> list[Migration]:
    size = draw(st.integers(min_value=1, max_value=14))
    gaps = draw(st.lists(st.integers(min_value=1, max_value=10**6), min_size=size, max_size=size))
    start = draw(st.integers(min_value=1_600_000_000_000, max_value=1_800_000_000_000))
    whens = [start + sum(gaps[: i + 1]) for i in range(size)]
    return [_migration(i, w) for i, w in enumerate(whens)]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Migration], list[LedgerRow], set[int], bool]:
    """(journal, ledger rows, truly applied positions, decidable)."""
    journal = draw(journals())
    applied_count = draw(st.integers(min_value=0, max_value=len(journal)))
    applied = set(range(applied_count))
    deleted = set(draw(st.sets(st.sampled_from(sorted(applied)), max_size=2))) if applied else set()
    offset = draw(st.sampled_from([0, 1, 1, 7]))
    rows = [
        LedgerRow(id=p + offset, hash=journal[p].hash, created_at=journal[p].when) for p in sorted(applied - deleted)
    ]
    applied -= deleted  # a deleted row means the ledger no longer records it: drizzle-orm would run it again

    fully_corrupted: set[int] = set()
    for index in range(len(rows)):
        row = rows[index]
        corrupt_hash = draw(st.booleans()) and draw(st.booleans())
        created = row.created_at
        change = draw(st.sampled_from(["keep", "keep", "shift", "null", "other"]))
        if change == "shift":
            created = (created or 0) + draw(st.integers(min_value=-5, max_value=5).filter(bool))
        elif change == "null":
            created = None
        elif change == "other":
            created = draw(st.sampled_from([m.when for m in journal]))
        new_hash = hashlib.sha256(f"old generation {index}".encode()).hexdigest() if corrupt_hash else row.hash
        rows[index] = LedgerRow(id=row.id, hash=new_hash, created_at=created)
        if corrupt_hash and created != row.created_at:
            fully_corrupted.add(index)

    id_change = draw(st.sampled_from(["keep", "keep", "shift-tail", "shuffle"]))
    if id_change == "shift-tail" and rows:
        cut = draw(st.integers(min_value=0, max_value=len(rows) - 1))
        rows = [r if i < cut else LedgerRow(r.id + 275, r.hash, r.created_at) for i, r in enumerate(rows)]
    elif id_change == "shuffle":
        ids = draw(st.permutations([r.id for r in rows]))
        rows = [LedgerRow(i, r.hash, r.created_at) for i, r in zip(ids, rows, strict=True)]

    extra = draw(st.sampled_from(["none", "none", "duplicate", "ahead"]))
    next_id = max((r.id for r in rows), default=0) + 1
    if extra == "duplicate" and rows:
        copy = draw(st.sampled_from(rows))
        rows.append(LedgerRow(next_id, copy.hash, copy.created_at))
    elif extra == "ahead":
        missing = len(journal) - len(rows) + 1
        rows += [LedgerRow(next_id + i, f"future{i}", 9_000_000_000_000 + i) for i in range(missing)]
    decidable = not (fully_corrupted and deleted)
    return journal, rows, applied, decidable


@settings(max_examples=600, deadline=None)
@given(scenarios())
def test_every_plan_refuses_or_leaves_exactly_the_unapplied_pending(
    scenario: tuple[list[Migration], list[LedgerRow], set[int], bool],
) -> None:
    """A repair either refuses, or drizzle-orm's rule then picks exactly the never-applied entries."""
    journal, rows, applied, decidable = scenario
    result = plan_sync(journal, rows)
    if isinstance(result, Refusal):
        assert result.reason in {"ahead", "duplicate", "gap", "order"}
        return
    assert isinstance(result, SyncPlan)
    after = list(result.rows_after)
    assert len(after) == len(rows)
    assert len({r.id for r in after}) == len(after)
    known = {(m.hash, m.when) for m in journal}
    assert all((r.hash, r.created_at) in known for r in after)
    if skipped_by_drizzle(journal, after, drizzle_pending(journal, after)):
        return  # the flow refuses this (exit 8) unless ALLOW_OUT_OF_ORDER is set
    pending = [journal.index(m) for m in drizzle_pending(journal, after)]
    if decidable:
        assert pending == [p for p in range(len(journal)) if p not in applied]
    else:
        assert pending == list(range(len(after), len(journal)))


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_repairs_only_touch_rows_that_change(scenario: tuple[list[Migration], list[LedgerRow], set[int], bool]) -> None:
    """Rows already in step are never rewritten, and each repair names a real old row."""
    journal, rows, _, _ = scenario
    result = plan_sync(journal, rows)
    if isinstance(result, Refusal):
        return
    old_rows = set(rows)
    for repair in result.repairs:
        assert repair.old in old_rows
        assert repair.old != repair.new
    assert len(result.repairs) == len(set(rows) - set(result.rows_after))


def test_the_runbook_ledger() -> None:
    """ids 0-7 in step, 283-285 from an older generation of 0008-0010: three rows renumbered 8-10."""
    journal = [_migration(i, 1_700_000_000_000 + i * 1000) for i in range(12)]
    rows = [LedgerRow(i, journal[i].hash, journal[i].when) for i in range(8)]
    rows += [LedgerRow(283 + i, f"old{i}", 1_690_000_000_000 + i) for i in range(3)]
    result = plan_sync(journal, rows)
    assert isinstance(result, SyncPlan)
    assert [(r.old.id, r.new.id, r.tag) for r in result.repairs] == [
        (283, 8, "0008_m"),
        (284, 9, "0009_m"),
        (285, 10, "0010_m"),
    ]
    assert result.offset == 0
    assert drizzle_pending(journal, result.rows_after) == (journal[11],)


def test_fresh_drizzle_ledger_counts_from_one() -> None:
    """A ledger drizzle-orm wrote (ids from 1) keeps that convention when one row drifted."""
    journal = [_migration(i, 1_700_000_000_000 + i) for i in range(5)]
    rows = [LedgerRow(i + 1, journal[i].hash, journal[i].when) for i in range(4)]
    rows[3] = LedgerRow(9, "stale", 5)
    result = plan_sync(journal, rows)
    assert isinstance(result, SyncPlan)
    assert [(r.old.id, r.new.id) for r in result.repairs] == [(9, 4)]


def test_null_created_at_makes_drizzle_rerun_everything() -> None:
    """drizzle-orm sorts NULL first in `desc`: one NULL row makes every entry pending."""
    journal = [_migration(i, 1_700_000_000_000 + i) for i in range(3)]
    rows = [LedgerRow(1, journal[0].hash, None), LedgerRow(2, journal[1].hash, journal[1].when)]
    assert drizzle_pending(journal, rows) == tuple(journal)
    repaired = plan_sync(journal, rows)
    assert isinstance(repaired, SyncPlan)
    assert drizzle_pending(journal, repaired.rows_after) == (journal[2],)


def test_refusals_have_stable_reasons() -> None:
    """Ahead, duplicate and gap ledgers are refused with their reason codes."""
    journal = [_migration(i, 1_700_000_000_000 + i) for i in range(4)]
    exact = [LedgerRow(i + 1, m.hash, m.when) for i, m in enumerate(journal)]
    ahead = plan_sync(journal, [*exact, LedgerRow(9, "x", 1)])
    duplicate = plan_sync(journal, [exact[0], LedgerRow(5, exact[0].hash, exact[0].created_at)])
    gap = plan_sync(journal, [exact[0], exact[2], LedgerRow(7, "unknown", 3)])
    assert isinstance(ahead, Refusal) and ahead.reason == "ahead"
    assert isinstance(duplicate, Refusal) and duplicate.reason == "duplicate"
    assert isinstance(gap, Refusal) and gap.reason == "gap"
