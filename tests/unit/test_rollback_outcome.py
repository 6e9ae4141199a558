"""What a stopped rollback leaves behind: `outcome.describe` and `failures.error_for` in the rollback's words.

The deploy's table (tests/unit/test_outcome.py) holds the deploy's sentences; a
rollback (`RunState.reversing`) is the same pure function with its own words:
what was *reversed* and kept, which reversal rolled back and is still applied,
and "run the rollback again" rather than "redeploy". Never "applied and kept".
"""

from __future__ import annotations

import signal
from dataclasses import replace

import pytest

from entrypoint.core.model import Migration
from entrypoint.core.transactions import Unit
from entrypoint.deploy.failures import error_for
from entrypoint.deploy.outcome import GuardChanged, OutOfTime, OwnStepFailed, Signalled, StatementFailed, Stop, describe
from entrypoint.deploy.progress import RunState
from entrypoint.errors import DeadlineExceeded, GuardViolated, Interrupted, RollbackFailed


def _m(n: int, tag: str, statements: int = 3) -> Migration:
    return Migration(n, tag, 1_700_000_000_000 + n, f"{n:064x}", tuple(b"DROP INDEX x;" for _ in range(statements)))


A, B, C = _m(2, "0002_c"), _m(1, "0001_b"), _m(0, "0000_a")
TRANSACTION = Unit("transaction", (B,), "per-migration", undo=True)
OUTSIDE = Unit("outside", (A,), "DROP INDEX CONCURRENTLY, statement 1", undo=True)
REVERSING = RunState(doing="reversing the migrations", writing=True, applying=True, reversing=True)

CASES: list[tuple[str, RunState, Stop, str]] = [
    ("the first reversal fails", RunState(unit=TRANSACTION, reversing=True), StatementFailed(B, 2, "boom", "2BP01"),
     ("Everything was rolled back: fix what the message names (the database, or write a down file), then run the "
     "rollback again")),
    ("the second reversal fails", RunState(unit=TRANSACTION, kept=(A,), later=(C,), reversing=True),
     StatementFailed(B, 2, "boom", "2BP01"),
     ("Reversed and kept (committed before it): 0002_c. Not reversed (its transaction rolled back, still applied): "
     "0001_b; not run: 0000_a: fix what the message names (the database, or write a down file), then run the "
     "rollback again")),
    ("a CONCURRENTLY drop fails", RunState(unit=OUTSIDE, reversing=True), StatementFailed(A, 2, "boom", "XX000"),
     ("Its reversal runs outside a transaction: the statements before it stay done and its ledger row was not "
     "deleted; run the rollback again to finish it (IF EXISTS skips what is already dropped)")),
    ("a guard moved in a reversal's transaction", RunState(unit=TRANSACTION, reversing=True),
     GuardChanged("select 1", "[(1,)]", "[(2,)]"),
     ("Everything in this reversal's transaction was rolled back: fix what the message names (the database, or "
     "write a down file), then run the rollback again")),
    ("a guard moved outside a transaction", RunState(unit=OUTSIDE, reversing=True),
     GuardChanged("select 1", "[(1,)]", "[(2,)]"),
     ("0002_c's reversal ran outside a transaction, so its changes stay; its ledger row was not deleted: look at "
     "what moved, then run the rollback again")),
    ("SIGTERM before any change", RunState(doing="taking the migration lock", reversing=True), Signalled(15),
     ("nothing had started (it was taking the migration lock), so nothing was changed. Run the rollback again when "
     "ready")),
    ("SIGTERM in the second reversal", replace(REVERSING, unit=TRANSACTION, kept=(A,)), Signalled(15),
     ("reversed and kept (committed before it): 0002_c; the running reversal was cancelled and rolled back, and the "
     "lock released. Run the rollback again to reverse the rest")),
    ("the deadline before any reversal", RunState(doing="backing up", writing=True, reversing=True), OutOfTime(840),
     ("the running statement was cancelled and rolled back, and the migration lock released; no migration had been "
     "reversed. Run the rollback again to go on, or with no deadline (DEPLOY_DEADLINE=0) from a one-off shell")),
    ("the database refused the row's deletion", RunState(unit=TRANSACTION, kept=(A,), reversing=True),
     OwnStepFailed("permission denied", "42501"),
     ("Reversed and kept (committed before it): 0002_c. Not reversed (its transaction rolled back, still applied): "
     "0001_b: fix what the message names (a grant, a setting), then run the rollback again")),
]  # fmt: skip


@pytest.mark.parametrize(("state", "stop", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_describe_in_the_rollbacks_words(state: RunState, stop: Stop, expected: str) -> None:
    """Each way a rollback stops, and what it leaves: reversed and kept, rolled back, and how to go on."""
    said = describe(state, stop)
    assert said == expected
    assert "pplied and kept" not in said
    assert "redeploy" not in said.lower()


def test_a_failed_reversing_statement_is_exit_25() -> None:
    """The ❌ line of a reversing statement the database refused: where, what stays, exit 25."""
    state = RunState(unit=TRANSACTION, kept=(A,), migration=B, number=2, reversing=True)
    error = error_for(state, StatementFailed(B, 2, "cannot drop type t", "2BP01"))
    assert isinstance(error, RollbackFailed)
    assert error.exit_code == 25
    assert error.message.startswith(
        "❌ Rollback failed: cannot drop type t (in 0001_b's reversal, statement 2/3). Reversed and kept (committed "
        "before it): 0002_c."
    )
    assert error.facts["kept"] == ["0002_c"]


def test_the_other_stops_keep_their_codes_in_the_rollbacks_words() -> None:
    """A guard (14), the deadline (21) and a signal (143) say "reversal" and "during the rollback"."""
    state = RunState(unit=TRANSACTION, migration=B, number=1, reversing=True, writing=True, applying=True)
    guard = error_for(state, GuardChanged("select 1", "[(1,)]", "[(2,)]"))
    deadline = error_for(state, OutOfTime(60))
    stopped = error_for(state, Signalled(signal.SIGTERM))
    assert isinstance(guard, GuardViolated)
    assert "before the reversal and [(2,)] after" in guard.message
    assert isinstance(deadline, DeadlineExceeded)
    assert deadline.message.startswith(
        "❌ DEPLOY_DEADLINE (60s) passed in 0001_b's reversal, statement 1/3, during the rollback: "
    )
    assert isinstance(stopped, Interrupted)
    assert stopped.exit_code == 143
    assert stopped.message.startswith("❌ Stopped by SIGTERM during the rollback: ")
