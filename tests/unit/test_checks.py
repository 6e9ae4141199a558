"""`verify`'s ledger checks (`core.checks`): in step exactly when every migration is recorded once, and nothing else."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from entrypoint.core.checks import ledger_problems, name_ledger_problems
from entrypoint.core.model import LedgerRow, Migration


def _m(position: int) -> Migration:
    digest = hashlib.sha256(f"migration {position}".encode()).hexdigest()
    return Migration(position, f"{position:04d}_m", 1_700_000_000_000 + 1000 * position, digest, (b"SELECT 1",))


def _journal(size: int) -> list[Migration]:
    return [_m(i) for i in range(size)]


def _drizzle_ledger(migrations: list[Migration], first_id: int = 1, *, named: bool = False) -> list[LedgerRow]:
    """The rows drizzle-orm writes: ids from its serial, each entry's hash and `when` (and name, for 1.0)."""
    return [LedgerRow(first_id + i, m.hash, m.when, m.tag if named else None) for i, m in enumerate(migrations)]


def _checks(problems: list[tuple[str, str]]) -> list[str]:
    return [check for check, _ in problems]


@given(st.integers(min_value=1, max_value=20), st.sampled_from([0, 1]))
def test_the_ledger_drizzle_writes_is_in_step(size: int, first_id: int) -> None:
    """Ids from 0 (the runbook's ledger) or 1 (drizzle-orm's), one row per entry in order: no problem."""
    migrations = _journal(size)
    assert ledger_problems(migrations, _drizzle_ledger(migrations, first_id)) == []


@given(st.integers(min_value=2, max_value=20), st.data())
def test_a_missing_row_is_not_applied_and_leaves_a_gap(size: int, data: st.DataObject) -> None:
    """Deleting one row names its migration as not applied; unless it was the last, the ids have a gap."""
    migrations = _journal(size)
    rows = _drizzle_ledger(migrations)
    gone = data.draw(st.integers(min_value=0, max_value=size - 1))
    del rows[gone]
    problems = ledger_problems(migrations, rows)
    assert (
        "not_applied",
        f"no row with the file's hash and `when` for 1 migration: {migrations[gone].tag}",
    ) in problems
    assert ("ids" in _checks(problems)) == (gone != size - 1)  # ids from 1: only the last one leaves no gap


def test_the_runbook_drifted_ledger_fails_on_each_count() -> None:
    """Ids 0-7 then 283-285 with the wrong hashes: three not applied, three unknown rows, the ids out of span."""
    migrations = _journal(11)
    rows = _drizzle_ledger(migrations[:8], 0) + [
        LedgerRow(283 + i, f"{i:064x}", 1_600_000_000_000 + i) for i in range(3)
    ]
    problems = dict(ledger_problems(migrations, rows))
    assert problems["not_applied"].endswith("3 migrations: 0008_m, 0009_m, 0010_m")
    assert problems["unknown_rows"] == "3 rows match no journal entry: ids 283, 284, 285"
    assert problems["ids"] == "ids 0..7, 283..285 are not numbered without gaps from 0 or 1"


def test_a_doubled_row_and_rows_out_of_journal_order() -> None:
    """A copied row is a duplicate; two rows swapped by id are out of order, unless the journal is not in date order."""
    migrations = _journal(3)
    rows = _drizzle_ledger(migrations)
    doubled = [*rows, LedgerRow(4, rows[1].hash, rows[1].created_at)]
    assert ("duplicates", "recorded more than once: 0001_m") in ledger_problems(migrations, doubled)
    swapped = [rows[0]._replace(id=2), rows[1]._replace(id=1), rows[2]]
    assert ledger_problems(migrations, swapped) == [
        ("order", "id 1 should record 0000_m: rows are not in journal order")
    ]
    assert ledger_problems(migrations, swapped, in_date_order=False) == []


def test_a_name_keyed_ledger_without_names_is_not_upgraded() -> None:
    """A 0.45 ledger under 1.0 folders: the one problem is that the deploy has not upgraded it yet."""
    migrations = _journal(2)
    problems = name_ledger_problems(migrations, _drizzle_ledger(migrations), has_names=False)
    assert problems == [("not_upgraded", "the ledger has no `name` column yet: deploy to upgrade it for Drizzle 1.0")]


@given(st.integers(min_value=1, max_value=15))
def test_a_name_keyed_ledger_in_step(size: int) -> None:
    """drizzle-orm 1.0's rows, one per folder by name with its hash: no problem."""
    migrations = _journal(size)
    assert name_ledger_problems(migrations, _drizzle_ledger(migrations, named=True), has_names=True) == []


def test_name_keyed_problems_each_named() -> None:
    """A folder with no row, a row naming no folder, a changed file and a doubled name are each reported."""
    migrations = _journal(4)
    rows = _drizzle_ledger(migrations[:3], named=True)
    rows[1] = rows[1]._replace(hash="0" * 64)
    rows += [LedgerRow(4, "f" * 64, 1, "9999_gone"), LedgerRow(5, rows[0].hash, rows[0].created_at, rows[0].name)]
    problems = dict(name_ledger_problems(migrations, rows, has_names=True))
    assert problems == {
        "not_applied": "no row named 1 migration: 0003_m",
        "unknown_rows": "1 row name no migration folder: ids 4",
        "hash_changed": "changed since applied (hash differs): 0001_m",
        "duplicates": "recorded more than once: 0000_m",
    }
