"""Property tests of the pure planners: the ledger repair, the 1.0 upgrade and name sync, and the plan.

Generated ledgers stand for a known truth: the set of journal entries that were
applied. Every row stands for one applied entry; mutations then shuffle or
shift ids, corrupt hashes, shift `created_at`, delete, duplicate or add rows.
Every plan must either refuse, or yield a ledger from which drizzle-orm's rule
picks exactly the entries never applied. And refusing is not free: the
generator knows when the truth can be read back from the ledger (the oracle
`must_repair`), and there the planner must not refuse.

One case is undecidable by any planner, so there the property only demands a
refusal or a prefix: a row whose hash and `created_at` both no longer point at
its own entry, alongside a deleted row. The ledger then reads the same whether
that row stands for the deleted entry (or the entry its date names) or for its
own, e.g. row "hash X, created_at = when of 0000" beside no row for 0000.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from entrypoint.core import pending as planner
from entrypoint.core.model import Journal, LedgerRow, LedgerSnapshot, Migration, Refusal
from entrypoint.core.pending import PENDING, drizzle_pending, skipped_by_drizzle
from entrypoint.core.sync import SyncPlan, UpgradePlan, plan_name_sync, plan_sync, plan_upgrade


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
def journals_in_seconds(draw: st.DrawFn) -> list[Migration]:
    """A 1.0 folder's entries: `when` is the folder's UTC second, one second apart at least."""
    size = draw(st.integers(min_value=1, max_value=14))
    gaps = draw(st.lists(st.integers(min_value=1, max_value=10**4), min_size=size, max_size=size))
    start = draw(st.integers(min_value=1_600_000_000, max_value=1_800_000_000))
    return [_migration(i, (start + sum(gaps[: i + 1])) * 1000) for i in range(size)]


Scenario = tuple[list[Migration], list[LedgerRow], set[int], bool]


@st.composite
def scenarios(draw: st.DrawFn, *, seconds: bool = False) -> Scenario:
    """(journal, ledger rows, truly applied positions, decidable); see `oracle_scenarios` for the oracle."""
    journal, rows, applied, decidable, _ = draw(oracle_scenarios(seconds=seconds))
    return journal, rows, applied, decidable


@st.composite
def oracle_scenarios(
    draw: st.DrawFn, *, seconds: bool = False
) -> tuple[list[Migration], list[LedgerRow], set[int], bool, bool]:
    """(journal, rows, truly applied positions, decidable, must_repair).

    `must_repair`: no row deleted, copied or added, ids in order, and every row
    still names its entry by hash or date, but for rows that name nothing at all
    at the tail of the applied prefix. Any planner can then read the truth back.
    With `seconds`, `when` is a whole second and each row's `created_at` a
    millisecond inside it: a 0.45 ledger of a folder that `drizzle-kit up` turned 1.0.
    """
    journal = draw(journals_in_seconds() if seconds else journals())
    applied_count = draw(st.integers(min_value=0, max_value=len(journal)))
    applied = set(range(applied_count))
    deleted = set(draw(st.sets(st.sampled_from(sorted(applied)), max_size=2))) if applied else set()
    offset = draw(st.sampled_from([0, 1, 1, 7]))
    positions = sorted(applied - deleted)
    jitter = [draw(st.integers(min_value=0, max_value=999)) if seconds else 0 for _ in positions]
    rows = [
        LedgerRow(id=p + offset, hash=journal[p].hash, created_at=journal[p].when + j)
        for p, j in zip(positions, jitter, strict=True)
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
    stamp = (lambda ms: ms // 1000) if seconds else (lambda ms: ms)
    dates = {stamp(m.when) for m in journal}
    nameless = {i for i in fully_corrupted if rows[i].created_at is None or stamp(rows[i].created_at) not in dates}
    tail = set(range(len(rows) - len(fully_corrupted), len(rows)))

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
    must_repair = (
        not deleted
        and extra == "none"
        and id_change != "shuffle"
        and nameless == fully_corrupted == fully_corrupted & tail
    )
    return journal, rows, applied, decidable, must_repair


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


@settings(max_examples=600, deadline=None)
@given(oracle_scenarios())
def test_a_readable_ledger_is_never_refused(
    scenario: tuple[list[Migration], list[LedgerRow], set[int], bool, bool],
) -> None:
    """Where the truth can be read back (the oracle), the repair is planned, not refused, and is exact."""
    journal, rows, applied, _, must_repair = scenario
    if not must_repair:
        return
    result = plan_sync(journal, rows)
    assert isinstance(result, SyncPlan), result
    assert drizzle_pending(journal, result.rows_after) == tuple(m for p, m in enumerate(journal) if p not in applied)


@settings(max_examples=400, deadline=None)
@given(oracle_scenarios(seconds=True))
def test_the_upgrade_names_exactly_the_applied_folders(
    scenario: tuple[list[Migration], list[LedgerRow], set[int], bool, bool],
) -> None:
    """Naming a 0.45 ledger for 1.0 folders: refused, or every row named after a folder with ids and dates kept.

    Where the ledger is readable it is never refused, and drizzle-orm 1.0 then
    finds exactly the never-applied folders pending.
    """
    journal, rows, applied, _, must_repair = scenario
    result = plan_upgrade(journal, rows)
    if must_repair:
        assert isinstance(result, UpgradePlan), result
    if isinstance(result, Refusal):
        assert result.reason in {"ahead", "duplicate", "gap", "order"}
        return
    assert [(r.id, r.created_at) for r in result.rows_after] == [(r.id, r.created_at) for r in rows]
    names = [r.name for r in result.rows_after]
    tags = {m.tag: m for m in journal}
    assert all(name in tags for name in names)
    assert all(r.hash == tags[str(r.name)].hash for r in result.rows_after)
    if len(set(names)) != len(names):
        return  # two rows named alike: the flow's name sync then reports it
    pending = [p for p, m in enumerate(journal) if m.tag not in set(names)]
    if must_repair:
        assert pending == [p for p in range(len(journal)) if p not in applied]


@st.composite
def named_ledgers(draw: st.DrawFn) -> tuple[list[Migration], list[LedgerRow], dict[str, set[int]]]:
    """A 1.0 ledger (rows named after folders) and what was done to each row: kept, renamed, changed, unknown."""
    journal = draw(journals_in_seconds())
    applied = draw(st.integers(min_value=0, max_value=len(journal)))
    fates: dict[str, set[int]] = {"kept": set(), "renamed": set(), "changed": set(), "unknown": set()}
    rows = []
    for position in range(applied):
        m = journal[position]
        fate = draw(st.sampled_from(["kept", "kept", "renamed", "changed", "unknown"]))
        fates[fate].add(position)
        name, digest = m.tag, m.hash
        if fate == "renamed":
            name = f"{m.tag}_before_rename"
        elif fate == "changed":
            digest = hashlib.sha256(f"edited {position}".encode()).hexdigest()
        elif fate == "unknown":
            name, digest = f"gone_{position}", hashlib.sha256(f"gone {position}".encode()).hexdigest()
        rows.append(LedgerRow(position + 1, digest, m.when, name))
    return journal, rows, fates


@settings(max_examples=400, deadline=None)
@given(named_ledgers())
def test_name_sync_renames_reports_and_leaves_exactly_the_rest_pending(
    scenario: tuple[list[Migration], list[LedgerRow], dict[str, set[int]]],
) -> None:
    """Renamed folders are renamed (by hash); edited files and unknown rows are reported, nothing else touched.

    Then exactly the never-applied folders, and those whose row is unknown, are pending.
    """
    journal, rows, fates = scenario
    result = plan_name_sync(journal, rows)
    assert {journal.index(next(m for m in journal if m.tag == r.tag)) for r in result.renames} == fates["renamed"]
    assert {journal.index(next(m for m in journal if m.tag == tag)) for _, tag in result.changed} == fates["changed"]
    assert {r.id - 1 for r in result.unknown} == fates["unknown"]
    assert len(result.rows_after) == len(rows)
    named = {r.name for r in result.rows_after}
    pending = {p for p, m in enumerate(journal) if m.tag not in named}
    assert pending == {p for p in range(len(journal)) if p >= len(rows)} | fates["unknown"]


@settings(max_examples=300, deadline=None)
@given(oracle_scenarios())
def test_the_plan_applies_what_its_states_call_pending(
    scenario: tuple[list[Migration], list[LedgerRow], set[int], bool, bool],
) -> None:
    """The one plan: refused plans apply nothing; otherwise the entries shown `pending` are exactly those applied."""
    migrations, rows, applied, _, must_repair = scenario
    journal = Journal(Path("drizzle"), tuple(migrations))
    plan = planner.plan(journal, LedgerSnapshot(exists=True, has_names=False, rows=tuple(rows)))
    if plan.refusal is not None:
        assert not must_repair
        assert plan.to_apply == ()
        assert set(plan.unknown) == set(rows)
        return
    assert [e.migration for e in plan.entries if e.state == PENDING] == list(plan.to_apply)
    if must_repair:
        assert plan.to_apply == tuple(m for p, m in enumerate(migrations) if p not in applied)


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


@settings(max_examples=300, deadline=None)
@given(oracle_scenarios())
def test_carrying_on_without_the_repair_applies_what_drizzle_orm_would(
    scenario: tuple[list[Migration], list[LedgerRow], set[int], bool, bool],
) -> None:
    """SYNC_ON_ERROR=continue after a failed repair: exactly drizzle-orm 0.45's course on the ledger as read."""
    migrations, rows, _, _, _ = scenario
    journal = Journal(Path("drizzle"), tuple(migrations))
    carried_on = planner.unrepaired(journal, LedgerSnapshot(exists=True, has_names=False, rows=tuple(rows)))
    pending = drizzle_pending(migrations, rows)
    assert carried_on.to_apply == pending
    assert carried_on.out_of_order == skipped_by_drizzle(migrations, rows, pending)
    assert carried_on.rows_after == tuple(rows)


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
