"""The ❌ line of each way a deploy stops: what happened, where, and `outcome.describe`'s sentence as a fact.

One function, `error_for(state, stop, mode)`, turns a stop into the error the CLI
prints and exits with; a rollback's stops (`state.reversing`) get the rollback's
words and `RollbackFailed` (exit 25) for a failed statement. The facts that only the failure knows (the server's
message, the failing statement, who blocked it) come with the stop; what the
run kept comes from the state.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from entrypoint.core.model import Mode
from entrypoint.db.connect import describe as described
from entrypoint.deploy.deadline import Deadline, DeadlinePassed
from entrypoint.deploy.outcome import (
    COMMITTED,
    ROLLED_BACK,
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
from entrypoint.errors import (
    DatabaseUnreachable,
    DeadlineExceeded,
    EntrypointError,
    GuardViolated,
    Interrupted,
    MigrationFailed,
    RollbackFailed,
    Untrusted,
)
from entrypoint.launch import SignalReceived, interrupted

# What PostgreSQL says when a run needs a commit it did not get.
_NEEDS_COMMIT = {"25001": "cannot run inside a transaction block", "55P04": "unsafe use of a new enum value"}
UNIQUE_VIOLATION = "23505"
_ADOPT = (
    " The ledger was empty, yet the database already holds what the migrations create (made with drizzle-kit push, "
    "or by hand): record what it holds with `python -m entrypoint baseline` (or set BASELINE_ON_EMPTY=1), then "
    "redeploy."
)
_UNSEEN = {
    COMMITTED: "the statement committed the transaction it ran in (a COMMIT no parser could see)",
    ROLLED_BACK: "the statement rolled back the transaction it ran in (a ROLLBACK no parser could see)",
}
_UNSEEN_EITHER = "the statement ended the transaction it ran in (a COMMIT or ROLLBACK no parser could see)"


def _hint(stop: StatementFailed, mode: Mode) -> str:
    """What to change when PostgreSQL needed a commit the run did not make."""
    state = stop.sqlstate or ""
    if state not in _NEEDS_COMMIT:
        return ""
    if mode == "single":
        return (
            f" TRANSACTION_MODE=single runs everything in one transaction, and PostgreSQL says it "
            f"{_NEEDS_COMMIT[state]}: set TRANSACTION_MODE=auto to commit where PostgreSQL requires it."
        )
    if state == "55P04":
        return " A new enum value cannot be used in the migration that adds it: move the use into a later migration."
    return ""


def _index_hint(stop: StatementFailed) -> str:
    """Rows that break a new constraint: the INVALID index a build left, dropped; the query that finds the rows."""
    dropped = f" The INVALID index {stop.dropped} its build left was dropped." if stop.dropped else ""
    if stop.duplicates:
        return f"{dropped} Find the rows sharing a key with: {stop.duplicates};"
    if stop.offending:
        return f"{dropped} {stop.check} found rows that break it. Find them with: {stop.offending};"
    return dropped


def _statement_failed(state: RunState, stop: StatementFailed, mode: Mode) -> EntrypointError:
    if state.reversing:
        return RollbackFailed(
            "❌ Rollback failed: {error} (in {tag}'s reversal, statement {statement}/{statements}{blockers}). "
            "{outcome}",
            error=Untrusted(stop.error if stop.error is not None else _UNSEEN),
            tag=stop.migration.tag,
            statement=stop.number,
            statements=stop.migration.statement_count,
            blockers=Untrusted(stop.blockers),
            outcome=describe(state, stop),
            sqlstate=stop.sqlstate,
            kept=[m.tag for m in state.kept],
        )
    hint = _ADOPT if stop.pushed else _hint(stop, mode) + _index_hint(stop)
    return MigrationFailed(
        "❌ Migration failed: {error} (in {tag}, statement {statement}/{statements}{blockers}).{hint} {outcome}",
        error=Untrusted(stop.error if stop.error is not None else _UNSEEN.get(stop.ended or "", _UNSEEN_EITHER)),
        tag=stop.migration.tag,
        statement=stop.number,
        statements=stop.migration.statement_count,
        blockers=Untrusted(stop.blockers),
        hint=hint,
        outcome=describe(state, stop),
        sqlstate=stop.sqlstate,
        kept=[m.tag for m in (*state.kept, *stop.committed)],
        dropped=stop.dropped or None,
        offending=stop.offending or stop.duplicates,
    )


def _deadline(state: RunState, stop: OutOfTime) -> DeadlineExceeded:
    where = f"in {state.where}" if state.where else f"while {state.doing}"
    return DeadlineExceeded(
        "❌ DEPLOY_DEADLINE ({deadline}) passed {where}, {when}: {outcome}",
        deadline=f"{stop.seconds:g}s",
        when="during the rollback" if state.reversing else "before the app started",
        where=where,
        outcome=describe(state, stop),
        deadline_s=stop.seconds,
        kept=[m.tag for m in state.kept],
    )


def _signalled(state: RunState, stop: Signalled, outcome: str) -> Interrupted:
    if not state.reversing:
        return interrupted(stop.signum, outcome)
    return Interrupted(
        "❌ Stopped by {name} during the rollback: {outcome}",
        name=signal.Signals(stop.signum).name,
        outcome=outcome,
        signal=stop.signum,
    )


def error_for(state: RunState, stop: Stop, mode: Mode = "auto") -> EntrypointError:
    """The error (its ❌ line and exit code) for a deploy that stopped with `stop` in `state`."""
    if isinstance(stop, StatementFailed):
        return _statement_failed(state, stop, mode)
    if isinstance(stop, OutOfTime):
        return _deadline(state, stop)
    outcome = describe(state, stop)
    if isinstance(stop, GuardChanged):
        return GuardViolated(
            "❌ Guard changed: {guard} returned {before} before the {what} and {after} after. {outcome}",
            guard=Untrusted(stop.guard),  # the app's own rows: nothing the entrypoint vouches for
            before=Untrusted(stop.before),
            after=Untrusted(stop.after),
            what="reversal" if state.reversing else "migrations",
            outcome=outcome,
        )
    if isinstance(stop, OwnStepFailed):
        unit = state.unit
        failed = RollbackFailed if state.reversing else MigrationFailed
        return failed(
            "❌ {what} failed: the database refused the entrypoint's own step ({error}, SQLSTATE {sqlstate}) while "
            "{doing} {where}. {outcome}",
            what="Rollback" if state.reversing else "Migration",
            doing="reversing" if state.reversing else "applying",
            error=Untrusted(stop.error),
            sqlstate=stop.sqlstate or "none",
            where=state.where or (unit.migrations[0].tag if unit else "the migrations"),
            outcome=outcome,
            tag=unit.migrations[0].tag if unit else None,
            kept=[m.tag for m in state.kept],
        )
    if isinstance(stop, Signalled):
        return _signalled(state, stop, outcome)
    return DatabaseUnreachable(  # ConnectionLost
        "❌ Lost the database connection: {reason}. {outcome}; check the database's health, then {then}",
        reason=Untrusted(stop.reason),
        outcome=outcome,
        then="run the rollback again" if state.reversing else "redeploy",
        sqlstate=stop.sqlstate,
        kept=[m.tag for m in state.kept],
    )


@contextmanager
def told(tracker: Tracker, deadline_s: float) -> Iterator[None]:
    """Run under DEPLOY_DEADLINE; a signal, the deadline or a lost connection becomes its error (`error_for`)."""
    try:
        with Deadline(deadline_s).armed():
            yield
    except SignalReceived as received:
        raise error_for(tracker.state, Signalled(received.signum)) from None
    except DeadlinePassed:
        raise error_for(tracker.state, OutOfTime(deadline_s)) from None
    except psycopg.OperationalError as error:
        raise error_for(tracker.state, ConnectionLost(described(error), error.sqlstate)) from None
