"""The ledger repair's steps (`deploy.repair._steps`): which lines announce each write, in which order, and its rows.

Pure: the steps come from the plan alone; no write runs here. Each step's lines
are what operators grep for (DESIGN.md's sync block), so they are held exactly.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from entrypoint.core import pending
from entrypoint.core.model import Journal, LedgerRow, LedgerSnapshot, Migration
from entrypoint.db.ledger import Ledger
from entrypoint.deploy.repair import _steps


def _m(position: int) -> Migration:
    digest = hashlib.sha256(f"migration {position}".encode()).hexdigest()
    return Migration(position, f"{position:04d}_m", 1_700_000_000_000 + 1000 * position, digest, (b"SELECT 1",))


def _journal(size: int, layout: str = "journal") -> Journal:
    return Journal(Path("/app/drizzle"), tuple(_m(i) for i in range(size)), layout)  # type: ignore[arg-type]


def _lines(ledger: Ledger, plan: pending.Plan) -> list[list[tuple[str, str, dict[str, object]]]]:
    return [list(step.lines) for step in _steps(ledger, plan)]


def test_the_runbook_drift_is_one_step_with_its_lines() -> None:
    """Rows 283-285 standing for 0008-0010 (ids 0-7 in step): one write, the drift lines, one line per row moved."""
    journal = _journal(11)
    rows = tuple(LedgerRow(i, m.hash, m.when) for i, m in enumerate(journal.migrations[:8]))
    rows += tuple(LedgerRow(283 + i, m.hash, m.when) for i, m in enumerate(journal.migrations[8:]))
    plan = pending.plan(journal, LedgerSnapshot(exists=True, has_names=False, rows=rows))
    (step,) = _steps(Ledger("drizzle", "__drizzle_migrations"), plan)
    assert step.rows == 3
    assert not step.upgrade
    assert list(step.lines) == [
        ("warning", "sync.drift", {}),
        ("info", "sync.repairing", {"count": 3}),
        ("info", "sync.row_repaired", {"old_id": 283, "new_id": 8, "tag": "0008_m"}),
        ("info", "sync.row_repaired", {"old_id": 284, "new_id": 9, "tag": "0009_m"}),
        ("info", "sync.row_repaired", {"old_id": 285, "new_id": 10, "tag": "0010_m"}),
    ]
    assert list(step.done) == [("info", "sync.repaired", {"count": 3})]


def test_a_ledger_in_step_has_no_step() -> None:
    """drizzle-orm's own ledger: nothing to write, nothing to announce."""
    journal = _journal(3)
    rows = tuple(LedgerRow(i + 1, m.hash, m.when) for i, m in enumerate(journal.migrations))
    plan = pending.plan(journal, LedgerSnapshot(exists=True, has_names=False, rows=rows))
    assert list(_steps(Ledger("drizzle", "__drizzle_migrations"), plan)) == []


def test_an_edited_file_is_rewritten_in_place_and_said() -> None:
    """A row found by its date whose hash differs: rewritten where it is, and the file named as edited."""
    journal = _journal(2)
    rows = (LedgerRow(1, journal.migrations[0].hash, journal.migrations[0].when),
            LedgerRow(2, "0" * 64, journal.migrations[1].when))  # fmt: skip
    plan = pending.plan(journal, LedgerSnapshot(exists=True, has_names=False, rows=rows))
    (lines,) = _lines(Ledger("drizzle", "__drizzle_migrations"), plan)
    assert ("info", "sync.row_rewritten", {"id": 2, "tag": "0001_m", "changed": "hash"}) in lines
    assert lines[-1] == ("warning", "sync.hash_changed", {"id": 2, "tag": "0001_m"})


def test_the_1_0_upgrade_comes_first_and_cannot_be_skipped() -> None:
    """1.0 folders on a 0.45 ledger: the upgrade step names every row, and is marked as one SYNC_ON_ERROR cannot skip."""
    journal = _journal(2, "folders")
    rows = tuple(LedgerRow(i + 1, m.hash, m.when) for i, m in enumerate(journal.migrations))
    plan = pending.plan(journal, LedgerSnapshot(exists=True, has_names=False, rows=rows))
    steps = list(_steps(Ledger("drizzle", "__drizzle_migrations", name_keyed=True), plan))
    assert steps[0].upgrade
    assert steps[0].rows == 2
    assert list(steps[0].lines) == [
        ("warning", "sync.upgrade", {"count": 2}),
        ("info", "sync.row_named", {"id": 1, "name": "0000_m"}),
        ("info", "sync.row_named", {"id": 2, "name": "0001_m"}),
    ]
    assert list(steps[0].done) == [("info", "sync.upgraded", {"count": 2})]


def test_unknown_rows_are_reported_never_written() -> None:
    """A 1.0 row naming no folder (dated before the last one) is a report step: its line, and no row written."""
    journal = _journal(1, "folders")
    first = journal.migrations[0]
    rows = (LedgerRow(1, first.hash, first.when, first.tag), LedgerRow(2, "f" * 64, 5, "0000_gone"))
    plan = pending.plan(journal, LedgerSnapshot(exists=True, has_names=True, rows=rows))
    (step,) = _steps(Ledger("drizzle", "__drizzle_migrations", name_keyed=True), plan)
    assert step.rows == 0
    assert list(step.lines) == [("warning", "sync.unknown_row", {"id": 2, "name": "0000_gone", "hash": "f" * 64})]


def test_a_renamed_folder_is_one_rename_step() -> None:
    """A 1.0 row whose folder was renamed (same hash): one step that renames it, announced as drift."""
    journal = _journal(1, "folders")
    first = journal.migrations[0]
    rows = (LedgerRow(1, first.hash, first.when, "0000_old_name"),)
    plan = pending.plan(journal, LedgerSnapshot(exists=True, has_names=True, rows=rows))
    (step,) = _steps(Ledger("drizzle", "__drizzle_migrations", name_keyed=True), plan)
    assert step.rows == 1
    assert list(step.lines) == [
        ("warning", "sync.drift", {}),
        ("info", "sync.row_renamed", {"id": 1, "old_name": "0000_old_name", "new_name": "0000_m"}),
    ]
