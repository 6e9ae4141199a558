"""A database ahead of the folder (an older release on a newer schema) is a state of the plan, not drift. Pure.

The truth the generators know: which rows a newer release wrote. Ahead must be
found exactly when every entry has its own row in step and every other row is
dated after the newest entry (1.0: named after the last folder); it must then
write nothing and apply nothing, and drizzle-orm's own rule must agree that
nothing is pending. Every other shape with more rows than entries is refused.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from entrypoint.core import pending as planner
from entrypoint.core.model import Journal, LedgerRow, LedgerSnapshot, Migration
from entrypoint.core.pending import APPLIED, drizzle_pending
from entrypoint.db.ledger import Ledger
from entrypoint.deploy.repair import _steps
from tests.unit.test_plan_properties import journals, journals_in_seconds, oracle_scenarios


def _journal(migrations: list[Migration], layout: str = "journal") -> Journal:
    return Journal(Path("/app/drizzle"), tuple(migrations), layout)  # type: ignore[arg-type]


def _snapshot(rows: list[LedgerRow], *, names: bool = False) -> LedgerSnapshot:
    return LedgerSnapshot(exists=True, has_names=names, rows=tuple(rows))


def _future_hash(n: int) -> str:
    return hashlib.sha256(f"newer release {n}".encode()).hexdigest()


@st.composite
def ahead_ledgers(draw: st.DrawFn) -> tuple[list[Migration], list[LedgerRow], list[LedgerRow]]:
    """(journal, ledger, the rows a newer release wrote): every entry applied in step, then 1-4 newer rows."""
    journal = draw(journals())
    offset = draw(st.sampled_from([0, 1]))
    rows = [LedgerRow(p + offset, m.hash, m.when) for p, m in enumerate(journal)]
    newest = max(m.when for m in journal)
    gaps = draw(st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=4))
    newer = [
        LedgerRow(len(journal) + offset + n, _future_hash(n), newest + sum(gaps[: n + 1])) for n in range(len(gaps))
    ]
    return journal, rows + newer, newer


@settings(max_examples=300, deadline=None)
@given(ahead_ledgers())
def test_a_newer_releases_rows_are_ahead_and_nothing_is_written(
    scenario: tuple[list[Migration], list[LedgerRow], list[LedgerRow]],
) -> None:
    """Every entry in step plus newer rows: ahead by exactly those rows, nothing to repair or apply, drizzle agrees."""
    journal, rows, newer = scenario
    plan = planner.plan(_journal(journal), _snapshot(rows))
    assert plan.refusal is None
    assert plan.ahead == tuple(newer)
    assert plan.clean
    assert (plan.repairs, plan.to_apply, plan.unknown, plan.out_of_order) == ((), (), (), ())
    assert plan.rows_after == tuple(rows)
    assert [e.state for e in plan.entries] == [APPLIED] * len(journal)
    assert drizzle_pending(journal, rows) == ()  # drizzle-orm's migrator on the older folder: nothing to do


@settings(max_examples=200, deadline=None)
@given(ahead_ledgers())
def test_when_ahead_refuse_keeps_the_old_refusal(
    scenario: tuple[list[Migration], list[LedgerRow], list[LedgerRow]],
) -> None:
    """WHEN_AHEAD=refuse: the same ledger is the sync's "ahead" refusal, every row listed, as before the setting."""
    journal, rows, _ = scenario
    plan = planner.plan(_journal(journal), _snapshot(rows), when_ahead="refuse")
    assert plan.refusal is not None
    assert plan.refusal.reason == "ahead"
    assert "the database is ahead of this code" in plan.refusal.detail
    assert plan.ahead == ()
    assert plan.unknown == tuple(rows)
    assert not plan.clean


@st.composite
def ledgers_with_extra_rows(draw: st.DrawFn) -> tuple[list[Migration], list[LedgerRow]]:
    """Any generated ledger (drifted or not), plus rows no entry accounts for, dated anywhere (or NULL)."""
    journal, rows, _, _, _ = draw(oracle_scenarios())
    newest = max(m.when for m in journal)
    count = draw(st.integers(min_value=0, max_value=3))
    stamps = st.one_of(st.none(), st.integers(min_value=0, max_value=newest + 10**6))
    next_id = max((r.id for r in rows), default=0) + 1
    extra = [LedgerRow(next_id + n, _future_hash(n), draw(stamps)) for n in range(count)]
    return journal, rows + extra


@settings(max_examples=600, deadline=None)
@given(ledgers_with_extra_rows())
def test_ahead_is_only_ever_a_safe_state(scenario: tuple[list[Migration], list[LedgerRow]]) -> None:
    """Whatever the ledger: ahead implies every entry in step, the rest newer, nothing pending for drizzle-orm.

    And more rows than entries that are not ahead are always refused, never repaired into something.
    """
    journal, rows = scenario
    plan = planner.plan(_journal(journal), _snapshot(rows))
    newest = max(m.when for m in journal)
    if plan.ahead:
        assert all(r.created_at is not None and r.created_at > newest for r in plan.ahead)
        assert [e.state for e in plan.entries] == [APPLIED] * len(journal)
        assert len(rows) - len(plan.ahead) == len(journal)
        assert not plan.repairs
        assert not plan.to_apply
        assert drizzle_pending(journal, rows) == ()
    elif len(rows) > len(journal):
        assert plan.refusal is not None


def _applied(journal: list[Migration], offset: int = 1) -> list[LedgerRow]:
    return [LedgerRow(p + offset, m.hash, m.when) for p, m in enumerate(journal)]


def _m(position: int) -> Migration:
    digest = hashlib.sha256(f"migration {position}".encode()).hexdigest()
    return Migration(position, f"{position:04d}_m", 1_700_000_000_000 + 1000 * position, digest, (b"SELECT 1",))


JOURNAL = [_m(i) for i in range(4)]
NEWEST = JOURNAL[-1].when


def test_a_stray_row_between_applied_entries_is_drift() -> None:
    """A row dated between two applied entries is not a newer release's: refused as drift, naming it."""
    rows = [*_applied(JOURNAL), LedgerRow(5, "f" * 64, JOURNAL[1].when + 1)]
    plan = planner.plan(_journal(JOURNAL), _snapshot(rows))
    assert plan.refusal is not None
    assert plan.refusal.reason == "drift"
    assert "row 5 matches no migration and is not newer than 0003_m" in plan.refusal.detail
    assert plan.ahead == ()


def test_a_hash_mismatch_beside_newer_rows_is_drift() -> None:
    """An applied entry whose row carries another hash, next to a newer row: drift, not ahead."""
    rows = _applied(JOURNAL)
    rows[1] = rows[1]._replace(hash="0" * 64)
    rows.append(LedgerRow(5, "f" * 64, NEWEST + 1))
    plan = planner.plan(_journal(JOURNAL), _snapshot(rows))
    assert plan.refusal is not None
    assert plan.refusal.reason == "drift"
    assert "0001_m has no row of its own" in plan.refusal.detail


def test_a_pending_entry_older_than_an_unknown_row_is_drift() -> None:
    """The newest entry never applied, two newer unknown rows: drizzle-orm would skip it forever, so refused."""
    rows = [*_applied(JOURNAL[:3]), LedgerRow(4, "e" * 64, NEWEST + 1), LedgerRow(5, "f" * 64, NEWEST + 2)]
    plan = planner.plan(_journal(JOURNAL), _snapshot(rows))
    assert plan.refusal is not None
    assert plan.refusal.reason == "drift"
    assert "0003_m has no row of its own" in plan.refusal.detail


def test_a_null_created_at_is_never_newer() -> None:
    """drizzle-orm reads a NULL created_at as 0 and would rerun everything: such a row is no newer release's."""
    rows = [*_applied(JOURNAL), LedgerRow(5, "f" * 64, None)]
    plan = planner.plan(_journal(JOURNAL), _snapshot(rows))
    assert plan.ahead == ()
    assert plan.refusal is not None


def test_drifted_ids_beside_newer_rows_are_not_ahead() -> None:
    """The runbook's rows 283-285 (ids off the convention) beside a newer row: refused, the repair cannot run there."""
    rows = _applied(JOURNAL, offset=0)
    rows[3] = rows[3]._replace(id=285)
    rows.append(LedgerRow(286, "f" * 64, NEWEST + 1))
    plan = planner.plan(_journal(JOURNAL), _snapshot(rows))
    assert plan.ahead == ()
    assert plan.refusal is not None


@st.composite
def ahead_folders(draw: st.DrawFn) -> tuple[list[Migration], list[LedgerRow], list[LedgerRow]]:
    """1.0 folders, every one recorded by name, then newer rows named after the last folder."""
    journal = [m._replace(tag=f"{m.when // 1000:014d}_m{m.idx}") for m in draw(journals_in_seconds())]
    rows = [LedgerRow(p + 1, m.hash, m.when, m.tag) for p, m in enumerate(journal)]
    count = draw(st.integers(min_value=1, max_value=3))
    last = journal[-1].when // 1000
    newer = [
        LedgerRow(len(journal) + 1 + n, _future_hash(n), (last + 1 + n) * 1000, f"{last + 1 + n:014d}_new{n}")
        for n in range(count)
    ]
    return journal, rows + newer, newer


@settings(max_examples=200, deadline=None)
@given(ahead_folders())
def test_a_name_keyed_ledger_is_ahead_by_the_rows_named_after_the_last_folder(
    scenario: tuple[list[Migration], list[LedgerRow], list[LedgerRow]],
) -> None:
    """1.0: every folder recorded by name with its hash, the others named later: ahead, nothing unknown or pending."""
    journal, rows, newer = scenario
    plan = planner.plan(_journal(journal, "folders"), _snapshot(rows, names=True))
    assert plan.ahead == tuple(newer)
    assert (plan.unknown, plan.to_apply, plan.repairs, plan.refusal) == ((), (), (), None)
    assert plan.clean
    refused = planner.plan(_journal(journal, "folders"), _snapshot(rows, names=True), when_ahead="refuse")
    assert refused.refusal is not None
    assert refused.refusal.reason == "ahead"


def test_a_name_keyed_row_named_before_the_last_folder_stays_unknown() -> None:
    """1.0: a row whose name sorts before the last folder is not a newer release's: reported as unknown, as before."""
    journal = [m._replace(tag=f"2026010100000{m.idx}_m") for m in JOURNAL]
    rows = [LedgerRow(p + 1, m.hash, m.when, m.tag) for p, m in enumerate(journal)]
    rows.append(LedgerRow(9, "f" * 64, 5, "20260101000001_gone"))
    plan = planner.plan(_journal(journal, "folders"), _snapshot(rows, names=True))
    assert plan.ahead == ()
    assert [r.id for r in plan.unknown] == [9]


def test_the_deploy_announces_one_line_per_newer_migration() -> None:
    """The repair's steps on an ahead ledger: one ⚠️ line per newer row, no write."""
    rows = [*_applied(JOURNAL), LedgerRow(5, "ab" * 32, NEWEST + 1), LedgerRow(6, "cd" * 32, NEWEST + 2)]
    plan = planner.plan(_journal(JOURNAL), _snapshot(rows))
    (step,) = _steps(Ledger("drizzle", "__drizzle_migrations"), plan)
    assert step.rows == 0
    assert [(level, event, fields["id"]) for level, event, fields in step.lines] == [
        ("warning", "sync.ahead", 5),
        ("warning", "sync.ahead", 6),
    ]
    assert step.lines[0][2]["migration"] == f"hash {'ab' * 6}…, 2023-11-14T22:13:23.001Z"
