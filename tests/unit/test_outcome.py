"""What a stopped deploy leaves behind: `outcome.describe` on a table of states and stops, and the ❌ lines."""

from __future__ import annotations

import signal

import pytest

from entrypoint.core.model import Migration
from entrypoint.core.online_parts import Expect, Plan, Sent, Source, Step, Transaction, Why
from entrypoint.core.transactions import Unit
from entrypoint.deploy.failures import error_for
from entrypoint.deploy.outcome import (
    ConnectionLost,
    GuardChanged,
    OutOfTime,
    OwnStepFailed,
    Signalled,
    StatementFailed,
    Stop,
    describe,
)
from entrypoint.deploy.progress import RunState, Tracker
from entrypoint.errors import DatabaseUnreachable, DeadlineExceeded, GuardViolated, Interrupted, MigrationFailed


def _m(n: int, tag: str, statements: int = 3) -> Migration:
    return Migration(n, tag, 1_700_000_000_000 + n, f"{n:064x}", tuple(b"SELECT 1;" for _ in range(statements)))


A, B, C, IDX = _m(0, "0000_a"), _m(1, "0001_b"), _m(2, "0002_c"), _m(3, "0003_idx", 2)
WHY = Why("users: big", "users", online=True)


def _build(chunk: int, name: str) -> Step:
    index = Expect("index", None, "users", name, b"CREATE INDEX ...")
    return Step(
        "create-index", Source(chunk, 1), None, "users", name, (b"CREATE INDEX CONCURRENTLY ...",), (index,), WHY
    )


MIXED = _m(4, "0004_mixed", 2)
NOT_VALID = Transaction(
    (Sent(1, (1,), b"ALTER TABLE users ADD COLUMN x int"), Sent(2, (1,), b"... NOT VALID", "not-valid"))
)
VALIDATE = Step("validate", Source(2, 1), None, "users", "users_x_fk", (b"ALTER TABLE users VALIDATE ...",),
                (Expect("validated", None, "users", "users_x_fk"),), WHY, "SELECT child.* FROM users AS child")  # fmt: skip
TRANSACTION = Unit("transaction", (B, C), "the end of the run")
OUTSIDE = Unit("outside", (B,), "VACUUM, statement 2")
OWN = Unit("own", (B,), "its own BEGIN, statement 1")
INDEXES = Plan((_build(1, "idx_users_id"), _build(2, "idx_users_email")), index_only=True)
CONCURRENT = Unit("concurrent", (IDX,), "2 of its indexes built CONCURRENTLY", plans=((IDX.tag, INDEXES),))
ONLINE = Unit("concurrent", (MIXED,), "1 of its statements online", plans=((MIXED.tag, Plan((NOT_VALID, VALIDATE))),))
FAILED = StatementFailed(B, 2, "boom", "42P01")
WRITING = RunState(doing="applying the migrations", writing=True, applying=True)
EVERYTHING = "The running migration was cancelled and everything was rolled back"

CASES: list[tuple[str, RunState, Stop, str]] = [
    ("a failure in the run's one transaction", RunState(unit=TRANSACTION), FAILED,
     "Everything was rolled back: fix the migration, then redeploy"),
    ("a failure after an earlier unit committed", RunState(unit=TRANSACTION, kept=(A,), later=(IDX,)), FAILED,
     ("Applied and kept (committed before it): 0000_a. Rolled back: 0001_b, 0002_c; not run: 0003_idx: "
     "fix the migration, then redeploy")),
    ("a unique build met duplicates", RunState(unit=TRANSACTION),
     StatementFailed(B, 2, "dup", "23505", duplicates="SELECT ..."),
     "Everything was rolled back: remove the duplicates, then redeploy"),
    ("a pushed schema: the hint says what to do", RunState(unit=TRANSACTION),
     StatementFailed(B, 1, "exists", "42P07", pushed=True), "Everything was rolled back."),
    ("outside a transaction, the statements before stay", RunState(unit=OUTSIDE, kept=(A,)), FAILED,
     ("Applied and kept (committed before it): 0000_a. This migration runs outside a transaction: the statements "
     "before it stay applied and its ledger row was not written. Make its statements idempotent (IF NOT EXISTS), "
     "then redeploy")),
    ("a file's own COMMIT committed part of it", RunState(unit=OWN, committed_at=2), FAILED,
     ("0001_b commits on its own: its statements 1-2 stay applied, and its ledger row was not written. Make them "
     "idempotent (IF NOT EXISTS), then redeploy")),
    ("an own unit that committed nothing rolls back whole", RunState(unit=OWN), FAILED,
     "Everything was rolled back: fix the migration, then redeploy"),
    ("a concurrent build before any index was built", RunState(unit=CONCURRENT, resume_at=1),
     StatementFailed(IDX, 1, "boom", "XX000"),
     ("0003_idx builds its indexes one at a time, outside a transaction: none of its indexes was built yet by this "
     "run: fix the migration, then redeploy")),
    ("a guard in a transaction unit", RunState(unit=TRANSACTION, kept=(A,)), GuardChanged("q", "[1]", "[2]"),
     ("Applied and kept (committed before it): 0000_a. Rolled back: 0001_b, 0002_c: fix the migration, then "
     "redeploy")),
    ("a guard with nothing kept", RunState(unit=TRANSACTION), GuardChanged("q", "[1]", "[2]"),
     "Everything in this deploy's transaction was rolled back: fix the migration, then redeploy"),
    ("a guard after an outside unit", RunState(unit=OUTSIDE), GuardChanged("q", "[1]", "[2]"),
     ("0001_b ran outside a transaction, so its changes stay; its ledger row was not written: fix the migration, "
     "then redeploy")),
    ("our own step refused, mid-unit", RunState(unit=TRANSACTION, migration=B, number=2), OwnStepFailed("no", "42501"),
     f"{EVERYTHING}: fix what the message names (a grant, a setting), then redeploy"),
    ("a signal before anything was written", RunState(doing="taking the migration lock"), Signalled(15),
     "nothing had started (it was taking the migration lock), so nothing was changed. Redeploy when ready"),
    ("a signal in the one transaction", RunState(writing=True, applying=True, unit=TRANSACTION), Signalled(15),
     "the running migration was cancelled and rolled back, and the lock released. Redeploy when ready"),
    ("a signal after a unit committed", RunState(writing=True, applying=True, unit=TRANSACTION, kept=(A,)),
     Signalled(2),
     ("applied and kept (committed before it): 0000_a; the running migration was cancelled and rolled back, and "
     "the lock released. Redeploy to apply the rest")),
    ("a signal during a concurrent build, one index built",
     RunState(writing=True, applying=True, unit=CONCURRENT, migration=IDX, number=1, resume_at=2), Signalled(15),
     ("the running statement was cancelled and rolled back, and the lock released. 0003_idx builds its indexes one "
     "at a time, outside a transaction: its statements 1-1 stay built and its ledger row was not written; the next "
     "deploy keeps those indexes, drops the INVALID index idx_users_email the cancelled build left, and builds the "
     "rest: redeploy to apply the rest")),
    ("a failed validation in a migration applied in parts", RunState(unit=ONLINE, resume_at=2),
     StatementFailed(MIXED, 2, "violates", "23503", offending="SELECT child.* FROM users AS child"),
     ("0004_mixed is applied online in 2 parts, each committing on its own: part 1 is committed (transaction: "
     "statements 1-2 (2 NOT VALID)); left: 2. VALIDATE CONSTRAINT users_x_fk on users. Its ledger row was not "
     "written, and the next deploy resumes at part 2: fix those rows, then redeploy")),
    ("a signal in the first part of a migration applied in parts",
     RunState(writing=True, applying=True, unit=ONLINE, resume_at=1), Signalled(15),
     ("the running statement was cancelled and rolled back, and the lock released. 0004_mixed is applied online in "
     "2 parts, each committing on its own: no part is committed; left: 1. transaction: statements 1-2 (2 NOT "
     "VALID); 2. VALIDATE CONSTRAINT users_x_fk on users. Its ledger row was not written, and the next deploy "
     "resumes at part 1: redeploy to apply the rest")),
    ("the deadline before anything was written", RunState(doing="waiting"), OutOfTime(840),
     "nothing had started, so nothing was changed. Redeploy (raise DEPLOY_DEADLINE if that step needs more time)"),
    ("the deadline while writing the ledger", RunState(writing=True), OutOfTime(840),
     ("the running statement was cancelled and rolled back, and the migration lock released; no migration had been "
     "applied. Redeploy to go on, or apply the rest with no deadline (DEPLOY_DEADLINE=0) from a one-off shell")),
    ("the deadline between units", RunState(writing=True, applying=True, kept=(A,)), OutOfTime(840),
     ("the running statement was cancelled and rolled back, and the migration lock released. Applied and kept "
     "(committed before it): 0000_a. Redeploy to go on, or apply the rest with no deadline (DEPLOY_DEADLINE=0) "
     "from a one-off shell")),
    ("the deadline in the run's one transaction: the rollback said once", RunState(writing=True, applying=True, unit=TRANSACTION),
     OutOfTime(840),
     ("the running migration was cancelled and everything was rolled back, and the migration lock released: "
     "redeploy to go on, or apply the rest with no deadline (DEPLOY_DEADLINE=0) from a one-off shell")),
    ("the deadline in a transaction after a unit committed",
     RunState(writing=True, applying=True, unit=TRANSACTION, kept=(A,), later=(IDX,)), OutOfTime(840),
     ("the running migration was cancelled, and the migration lock released. Applied and kept "
     "(committed before it): 0000_a. Rolled back: 0001_b, 0002_c; not run: 0003_idx: redeploy to go on, or apply "
     "the rest with no deadline (DEPLOY_DEADLINE=0) from a one-off shell")),
    ("the deadline, and the backend did not answer the cancel", RunState(cut=4242), OutOfTime(840),
     ("the server did not answer the cancel (is backend pid 4242 stopped?), so the connection was closed: PostgreSQL "
     "rolls its transaction back and releases the migration lock when that backend ends (SELECT "
     "pg_terminate_backend(4242) if it stays); nothing was changed. Redeploy (raise DEPLOY_DEADLINE if that step "
     "needs more time)")),
    ("the deadline in a transaction whose backend did not answer",
     RunState(writing=True, applying=True, unit=TRANSACTION, cut=4242), OutOfTime(840),
     ("the server did not answer the cancel (is backend pid 4242 stopped?), so the connection was closed: PostgreSQL "
     "rolls its transaction back and releases the migration lock when that backend ends (SELECT "
     "pg_terminate_backend(4242) if it stays). That transaction held 0001_b, 0002_c: redeploy to go on, or apply the "
     "rest with no deadline (DEPLOY_DEADLINE=0) from a one-off shell")),
    ("the connection lost with nothing kept", RunState(writing=True), ConnectionLost("EOF", None),
     "Nothing half-applied was kept (the transaction rolled back)"),
    ("the connection lost after a unit committed", RunState(writing=True, kept=(A, B)), ConnectionLost("EOF", None),
     "Applied and kept (committed before it): 0000_a, 0001_b; the rest rolled back"),
]  # fmt: skip


@pytest.mark.parametrize(("state", "stop", "sentence"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_describe(state: RunState, stop: Stop, sentence: str) -> None:
    """Each (state, stop) gives exactly the sentence operators read after the ❌ line's first part."""
    assert describe(state, stop) == sentence


def test_everything_is_never_claimed_when_something_stays() -> None:
    """Whatever stops a unit that committed part of itself, the sentence never says everything was rolled back."""
    for state in (RunState(unit=OWN, committed_at=1), RunState(unit=OUTSIDE, resume_at=2), RunState(kept=(A,))):
        for stop in (FAILED, Signalled(15), OutOfTime(1), ConnectionLost("x", None)):
            assert "everything was rolled back" not in describe(state, stop).lower(), (state, stop)


@pytest.mark.parametrize(
    ("stop", "kind", "start"),
    [
        (FAILED, MigrationFailed, "❌ Migration failed: boom (in 0001_b, statement 2/3, blocked by pid 7)."),
        (GuardChanged("q", "[1]", "[2]"), GuardViolated, "❌ Guard changed: q returned [1] before the migrations"),
        (
            OwnStepFailed("denied", "42501"),
            MigrationFailed,
            "❌ Migration failed: the database refused the entrypoint's",
        ),
        (Signalled(signal.SIGTERM), Interrupted, "❌ Stopped by SIGTERM before the app started: "),
        (OutOfTime(840), DeadlineExceeded, "❌ DEPLOY_DEADLINE (840s) passed in 0001_b, statement 2/3, before the app"),
        (ConnectionLost("EOF", None), DatabaseUnreachable, "❌ Lost the database connection: EOF. "),
    ],
)
def test_each_stop_has_its_error_and_takes_the_sentence_as_a_fact(stop: Stop, kind: type, start: str) -> None:
    """`error_for` gives each stop its class (exit code) and ❌ line, and carries `describe`'s sentence."""
    state = RunState(doing="applying the migrations", writing=True, applying=True, unit=TRANSACTION, migration=B,
                     number=2)  # fmt: skip
    if isinstance(stop, StatementFailed):
        stop = StatementFailed(B, 2, "boom", "42P01", blockers=", blocked by pid 7")
    error = error_for(state, stop)
    assert isinstance(error, kind)
    assert error.message.startswith(start), error.message
    assert describe(state, stop) in error.message


def test_the_tracker_replaces_the_state_whole() -> None:
    """`move` never changes a state in place: a stop reads the state as it was at that instant."""
    tracker = Tracker()
    before = tracker.state
    tracker.move(doing="backing up", kept=(A,))
    assert before == RunState()
    assert (tracker.state.doing, tracker.state.kept) == ("backing up", (A,))
    with pytest.raises(AttributeError):
        tracker.state.doing = "x"  # type: ignore[misc]
