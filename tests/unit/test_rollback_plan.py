"""Which migrations a rollback reverses, and how they run (`core.rollback_plan`). Pure.

`choose` works on the deploy's own ledger plan: the property draws ledgers in
step and checks that after deleting the chosen rows drizzle-orm's rule finds
exactly those migrations pending again, newest reversed first. The table covers
the refusals, the CONCURRENTLY decision of an index-only reversal, and the run
units (their own transaction, or outside one, their bookkeeping an undo).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from entrypoint.core import pending as planner
from entrypoint.core.model import Journal, LedgerRow, LedgerSnapshot, Migration, Refusal
from entrypoint.core.online_parts import LiveTable, Policy
from entrypoint.core.pending import drizzle_pending
from entrypoint.core.reverse import DataCheck, Reversal, Step
from entrypoint.core.rollback_plan import (
    Choice,
    Sent,
    backup_before,
    choose,
    cost,
    loss_text,
    restore_advice,
    reverse_all,
    sent,
    units,
)
from entrypoint.core.sql import parse
from entrypoint.journal import read_journal, split_statements
from tests.drizzle_ref import EXAMPLE_MIGRATIONS
from tests.unit.test_plan_properties import journals


def _journal(migrations: list[Migration], layout: str = "journal") -> Journal:
    return Journal(Path("/app/drizzle"), tuple(migrations), layout)  # type: ignore[arg-type]


def _plan(migrations: list[Migration], rows: list[LedgerRow]) -> planner.Plan:
    return planner.plan(_journal(migrations), LedgerSnapshot(exists=True, has_names=False, rows=tuple(rows)))


@st.composite
def applied_ledgers(draw: st.DrawFn) -> tuple[list[Migration], list[LedgerRow], int]:
    """(journal, its ledger with the first k entries applied in step, how many to roll back)."""
    journal = draw(journals())
    applied = draw(st.integers(min_value=0, max_value=len(journal)))
    offset = draw(st.sampled_from([0, 1]))
    rows = [LedgerRow(p + offset, m.hash, m.when) for p, m in enumerate(journal[:applied])]
    return journal, rows, draw(st.integers(min_value=0, max_value=applied + 1))


@settings(max_examples=300, deadline=None)
@given(applied_ledgers())
def test_the_last_n_become_exactly_drizzles_pending_again(drawn: tuple[list[Migration], list[LedgerRow], int]) -> None:
    """--last N: the N newest applied, newest first; once their rows are gone drizzle-orm finds just them (and the rest)."""
    journal, rows, count = drawn
    chosen = choose(_plan(journal, rows), last=count)
    assert isinstance(chosen, Choice)
    applied = journal[: len(rows)]
    expected = applied[len(applied) - min(count, len(applied)) :]
    assert list(chosen.migrations) == list(reversed(expected))
    left = [r for r in rows if (r.hash, r.created_at) not in {(m.hash, m.when) for m in expected}]
    assert drizzle_pending(journal, left) == tuple(journal[len(left) :])
    assert chosen.stays == (applied[len(left) - 1] if left else None)


@settings(max_examples=200, deadline=None)
@given(applied_ledgers())
def test_to_tag_keeps_everything_up_to_it(drawn: tuple[list[Migration], list[LedgerRow], int]) -> None:
    """--to TAG: every applied migration after TAG, newest first; TAG itself and those before it stay."""
    journal, rows, _ = drawn
    if not rows:
        return
    for position in range(len(rows)):
        chosen = choose(_plan(journal, rows), to=journal[position].tag)
        assert isinstance(chosen, Choice)
        assert list(chosen.migrations) == list(reversed(journal[position + 1 : len(rows)]))
        assert chosen.stays == journal[position]


def _m(position: int, when: int | None = None) -> Migration:
    digest = hashlib.sha256(f"migration {position}".encode()).hexdigest()
    return Migration(position, f"{position:04d}_m", when or 1_700_000_000_000 + 1000 * position, digest, (b"SELECT 1",))


JOURNAL = [_m(i) for i in range(4)]
IN_STEP = [LedgerRow(i + 1, m.hash, m.when) for i, m in enumerate(JOURNAL)]


def test_a_ledger_the_sync_must_repair_is_refused() -> None:
    """Drifted ids (the runbook's 283-285): roll back only once the deploy's sync has repaired them."""
    rows = [*IN_STEP[:2], IN_STEP[2]._replace(id=283), IN_STEP[3]._replace(id=284)]
    refused = choose(_plan(JOURNAL, rows), last=1)
    assert isinstance(refused, Refusal)
    assert refused.reason == "not_in_step"
    assert "run the deploy (or its --dry-run) first" in refused.detail


def test_a_database_ahead_is_refused() -> None:
    """The folder is older than the database: the newer migrations are not here to undo."""
    rows = [*IN_STEP, LedgerRow(9, "f" * 64, JOURNAL[-1].when + 1)]
    refused = choose(_plan(JOURNAL, rows), last=1)
    assert isinstance(refused, Refusal)
    assert "ahead of this folder by 1 migration" in refused.detail


def test_rolling_back_to_a_migration_not_applied_is_refused() -> None:
    """--to a pending migration: nothing to roll back to."""
    refused = choose(_plan(JOURNAL, IN_STEP[:2]), to=JOURNAL[3].tag)
    assert isinstance(refused, Refusal)
    assert refused.reason == "not_applied"


def test_a_reversal_drizzle_would_never_reapply_is_refused() -> None:
    """A merged branch: 0003 dated before 0002 stays; rolling back only 0003 would hide it from drizzle-orm forever."""
    journal = [_m(0), _m(1), _m(2, 1_700_000_009_000), _m(3, 1_700_000_005_000)]
    rows = [LedgerRow(i + 1, m.hash, m.when) for i, m in enumerate(journal)]
    refused = choose(_plan(journal, rows), last=1)
    assert isinstance(refused, Refusal)
    assert refused.reason == "order"
    assert "0003_m is dated before 0002_m" in refused.detail
    assert isinstance(choose(_plan(journal, rows), last=2), Choice)


def test_nothing_after_the_target_is_an_empty_choice() -> None:
    """--to the newest applied migration: nothing to reverse (the command says so and exits 0)."""
    chosen = choose(_plan(JOURNAL, IN_STEP), to=JOURNAL[-1].tag)
    assert chosen == Choice((), JOURNAL[-1])


def _example_reversal(tag: str) -> Reversal:
    journal = read_journal(EXAMPLE_MIGRATIONS)
    parses = [parse(m) for m in journal.migrations]
    (migration,) = [m for m in journal.migrations if m.tag == tag]
    found = reverse_all(parses, [migration], {})
    (reversal,) = found.reversals
    return reversal


def test_index_drops_go_concurrently_on_large_tables_only() -> None:
    """0011 undone: the indexes of a table at or over INDEX_BUILD_THRESHOLD are dropped CONCURRENTLY, the others not."""
    reversal = _example_reversal("0011_performance_indexes")
    users = LiveTable("public", "users", 1_000_000, 300 << 20)
    actions = LiveTable("public", "actions", 12, 16 << 10)
    how = sent(reversal, Policy("auto", 10 << 20, {(None, "users"): users, (None, "actions"): actions}))
    by_table = {step.table[1]: s for step, s in zip(reversal.steps, how, strict=True) if step.table}
    assert by_table["users"].concurrently
    assert by_table["users"].sql.startswith('DROP INDEX CONCURRENTLY IF EXISTS "idx_users_')
    assert "users: ~1,000,000 rows, 300 MB ≥ INDEX_BUILD_THRESHOLD 10 MB" in by_table["users"].why
    assert not by_table["actions"].concurrently
    assert by_table["actions"].sql.startswith('DROP INDEX IF EXISTS "idx_actions_')
    assert not any(s.concurrently for s in sent(reversal, Policy("never", 0, {})))


def test_the_units_run_each_reversal_alone_and_undo_its_row() -> None:
    """An index-only reversal with a CONCURRENTLY drop runs outside a transaction; 0010's in its own; both undo."""
    indexes, columns = _example_reversal("0011_performance_indexes"), _example_reversal("0010_perpetual_magneto")
    policy = Policy("always", 0, {})
    planned = units([indexes, columns], [sent(indexes, policy), sent(columns, policy)], 180000)
    assert not isinstance(planned, Refusal)
    assert [(u.kind, u.undo, u.migrations[0].tag) for u in planned] == [
        ("outside", True, "0011_performance_indexes"),
        ("transaction", True, "0010_perpetual_magneto"),
    ]
    undoing = planned[0].migrations[0]
    assert undoing.hash == indexes.migration.hash  # the row it deletes is the migration's own
    assert undoing.statements[0].startswith(b'DROP INDEX CONCURRENTLY IF EXISTS "idx_')
    assert planned[1].migrations[0].statement_count == 5


def test_a_down_file_with_its_own_rollback_is_refused() -> None:
    """A down file holding its own ROLLBACK cannot run inside a unit: refused like such a migration."""
    migration = _m(1)
    down = split_statements(b"BEGIN;\n--> statement-breakpoint\nDROP TABLE x;\n--> statement-breakpoint\nROLLBACK;")
    reversal = Reversal(migration, tuple(Step(chunk.decode(), 0, "", None) for chunk in down), down="x.down.sql")
    refused = units([reversal], [sent(reversal, Policy())], 180000)
    assert isinstance(refused, Refusal)
    assert refused.reason == "rollback"


def test_what_each_step_costs_and_loses_reads_as_a_sentence() -> None:
    """The dry run's cost of a step: its lock, table and size (an index drop: why CONCURRENTLY); what a check found."""
    users = LiveTable("public", "users", 68, 176 << 10)
    drop = Step('DROP INDEX IF EXISTS "idx_users_role"', 7, "DROP INDEX idx_users_role", (None, "users"))
    table = Step('DROP TABLE "notes"', 1, "DROP TABLE notes", (None, "notes"))
    why = "users: ~68 rows, 176 kB ≥ INDEX_BUILD_THRESHOLD 60 kB"
    assert cost(drop, Sent("DROP INDEX CONCURRENTLY …", concurrently=True, why=why), {(None, "users"): users}) == (
        f"CONCURRENTLY, outside a transaction: SHARE UPDATE EXCLUSIVE on users; {why}"
    )
    assert cost(table, Sent(table.sql), {(None, "notes"): LiveTable("public", "notes", 3, 8192)}) == (
        "ACCESS EXCLUSIVE on notes (~3 rows, 8 kB)"
    )
    assert cost(Step("DELETE FROM x;", 0, "", None), Sent("DELETE FROM x;"), {}) == "as written"
    assert loss_text(DataCheck("rows", ("public", "notes")), 1, 100) == "public.notes holds 1 row"
    assert loss_text(DataCheck("values", (None, "users"), "bio", "''"), 100, 100) == (
        "users.bio holds 100+ values other than NULL or its default ''"
    )
    assert loss_text(DataCheck("nulls", (None, "users"), "phone"), 2, 100) == "users.phone holds 2 NULLs"


def test_the_backup_to_restore_is_the_one_before_the_deploy_that_applied_it() -> None:
    """A refused rollback points to the newest backup whose pending set named the migration, or says there is none."""
    older = {"pending": ["0001_m"], "path": "/b/old.dump", "audited_at": "t1"}
    newer = {
        "pending": ["0002_m", "0003_m"],
        "url": "s3://b/app-0001_m-abc-20261201T000000Z.dump",
        "audited_at": "t2",
        "restore_point": {"server_time": "2026-12-01T00:00:00.000Z", "wal_lsn": "0/16B3740"},
    }
    backups = [newer, older]  # newest first, as the ledger reads them
    assert backup_before(backups, "0003_m") is newer
    assert backup_before(backups, "0001_m") is older
    assert backup_before(backups, "0004_m") is None
    assert restore_advice(newer, "drizzle.audit") == (
        "Restore the backup taken before it was deployed: `python -m entrypoint restore "
        "s3://b/app-0001_m-abc-20261201T000000Z.dump` (taken t2; restore point 2026-12-01T00:00:00.000Z, WAL 0/16B3740)"
    )
    assert restore_advice(None, "drizzle.audit").startswith("No backup taken before it was deployed is recorded")
