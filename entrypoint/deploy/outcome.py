"""What a stopped deploy leaves behind, as the ❌ line's closing sentences: one pure function of the state.

Every way a deploy can stop before the app starts is one `Stop`: a statement
failed, a guard changed, the database refused our own step, a signal,
DEPLOY_DEADLINE, the connection lost for good. `describe(state, stop)` says
what the run kept (committed before it), what was rolled back, what stays of
a migration that commits as it goes, and what to do next. It never claims
"everything was rolled back" unless the state proves it. `failures` builds the
❌ lines around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from entrypoint.core.model import Migration
from entrypoint.deploy.progress import RunState

if TYPE_CHECKING:
    from entrypoint.core.transactions import Unit

FIX = "fix the migration, then redeploy"
COMMITTED, ROLLED_BACK = "committed", "rolled back"  # how a transaction a statement ended on its own ended
_HIDDEN = (
    "Put `--> statement-breakpoint` around its BEGIN and COMMIT (a chunk over 1 MiB is not read, so they went "
    "unseen), or remove them; if its statements all ran, record it by hand first, or the next deploy runs them again"
)
REMOVE_DUPLICATES = "remove the duplicates, then redeploy"
FIX_GRANT = "fix what the message names (a grant, a setting), then redeploy"
REDEPLOY_REST = "redeploy to apply the rest"
DEADLINE_ADVICE = "redeploy to go on, or apply the rest with no deadline (DEPLOY_DEADLINE=0) from a one-off shell"
# The deadline passed before the first change: the ❌ line's head already says which step it was in.
DEADLINE_EARLY = "Redeploy (raise DEPLOY_DEADLINE if that step needs more time)"
STATEMENT_STOPPED = "the running statement was cancelled and rolled back, and the migration lock released"
_OUTSIDE = (
    "This migration runs outside a transaction: the statements before it stay applied and its ledger row was "
    "not written. Make its statements idempotent (IF NOT EXISTS), then redeploy"
)


@dataclass(frozen=True)
class StatementFailed:
    """A migration statement failed (`error` None: it ended its transaction in a way no parser saw)."""

    migration: Migration
    number: int
    error: str | None
    sqlstate: str | None
    retryable: bool = True  # a transient SQLSTATE may re-run the unit, unless part of it stays committed
    blockers: str = ""  # `, blocked by pid …` as the watcher saw it
    dropped: str = ""  # the INVALID index a failed concurrent build left, dropped at once
    duplicates: str | None = None  # a unique build met duplicate keys: the query that lists them
    pushed: bool = False  # "already exists" in the first migration of a run on an empty ledger
    ended: str | None = None  # error None: how the server says the transaction ended, COMMITTED or ROLLED_BACK
    committed: tuple[Migration, ...] = ()  # COMMITTED: the unit's migrations whose ledger rows that commit kept


@dataclass(frozen=True)
class GuardChanged:
    """A guard query's result differs after the unit's statements."""

    guard: str
    before: str
    after: str


@dataclass(frozen=True)
class OwnStepFailed:
    """The database refused the entrypoint's own step (the ledger row, a cleanup), not a migration statement."""

    error: str
    sqlstate: str | None


@dataclass(frozen=True)
class Signalled:
    """SIGTERM or SIGINT before the app started."""

    signum: int


@dataclass(frozen=True)
class OutOfTime:
    """DEPLOY_DEADLINE passed."""

    seconds: float


@dataclass(frozen=True)
class ConnectionLost:
    """The connection was lost, and the new sessions tried for it were lost too."""

    reason: str
    sqlstate: str | None


Stop = StatementFailed | GuardChanged | OwnStepFailed | Signalled | OutOfTime | ConnectionLost


def tags(migrations: Sequence[Migration]) -> str:
    """`0008_x, 0009_y`."""
    return ", ".join(m.tag for m in migrations)


def _kept(state: RunState) -> str:
    return f"Applied and kept (committed before it): {tags(state.kept)}. " if state.kept else ""


def _concurrent(state: RunState, unit: Unit, cancelled: str) -> str:
    """What of a concurrent unit stays: the statements before the one that stopped, and no ledger row."""
    tag, done = unit.migrations[0].tag, state.resume_at - 1
    left = f"drops the INVALID index {cancelled} the cancelled build left, " if cancelled else ""
    if not done:
        built = "none of its indexes was built yet by this run"
        rest = f"; the next deploy {left}builds them" if cancelled else ""
    else:
        built = f"its statements 1-{done} stay built and its ledger row was not written"
        rest = f"; the next deploy keeps those indexes, {left}and builds the rest"
    return f"{tag} builds its indexes one at a time, outside a transaction: {built}{rest}"


def _running(
    state: RunState, unit: Unit, *, advice: str, everything: str = "Everything was rolled back", cancelled: str = ""
) -> str:
    """What stays when the running `unit` stops where it is: "everything" only when it is true."""
    kept = _kept(state)
    if unit.kind == "concurrent":
        return f"{kept}{_concurrent(state, unit, cancelled)}: {advice}"
    if unit.kind == "outside":
        return kept + _OUTSIDE
    if unit.kind == "own" and state.committed_at:
        return (
            f"{kept}{unit.migrations[0].tag} commits on its own: its statements 1-{state.committed_at} stay applied, "
            "and its ledger row was not written. Make them idempotent (IF NOT EXISTS), then redeploy"
        )
    if not kept:
        return f"{everything}: {advice}" if advice else f"{everything}."
    not_run = f"; not run: {tags(state.later)}" if state.later else ""
    return f"{kept}Rolled back: {tags(unit.migrations)}{not_run}: {advice}"


def _stopped(state: RunState, advice: str) -> str:
    """What stays when the run is stopped from outside where it is now, then `advice`."""
    unit = state.unit
    if unit is None:
        return f"{_kept(state)}{advice[0].upper()}{advice[1:]}"
    build = state.build()
    cancelled = build.name if build and build.concurrently and unit.kind == "concurrent" else ""
    everything = "The running migration was cancelled and everything was rolled back"
    return _running(state, unit, advice=advice, everything=everything, cancelled=cancelled)


def cut_sentence(pid: int) -> str:
    """The backend that did not answer the cancel: what happens to it, and how to end it."""
    return (
        f"the server did not answer the cancel (is backend pid {pid} stopped?), so the connection was closed: "
        f"PostgreSQL rolls its transaction back and releases the migration lock when that backend ends "
        f"(SELECT pg_terminate_backend({pid}) if it stays)"
    )


def _out_of_time(state: RunState) -> str:  # noqa: PLR0911 - one answer per place the deadline can find the run
    """What the deadline left: the rollback said once, by whichever sentence knows what was rolled back."""
    if not state.writing:
        if state.cut is not None:
            return f"{cut_sentence(state.cut)}; nothing was changed. {DEADLINE_EARLY}"
        return f"nothing had started, so nothing was changed. {DEADLINE_EARLY}"
    stopped = cut_sentence(state.cut) if state.cut is not None else STATEMENT_STOPPED
    if not state.applying:
        return f"{stopped}; no migration had been applied. {DEADLINE_ADVICE[0].upper()}{DEADLINE_ADVICE[1:]}"
    unit = state.unit
    whole = unit is not None and (unit.kind == "transaction" or (unit.kind == "own" and not state.committed_at))
    if unit is None or not whole:  # what stays of a unit that commits as it goes is that unit's own sentence
        return f"{stopped}. {_stopped(state, DEADLINE_ADVICE)}"
    not_run = f"; not run: {tags(state.later)}" if state.later else ""
    if state.cut is not None:  # the cut sentence says the transaction rolls back when the backend ends
        return f"{stopped}. {_kept(state)}That transaction held {tags(unit.migrations)}{not_run}: {DEADLINE_ADVICE}"
    if not state.kept:
        return (
            "the running migration was cancelled and everything was rolled back, and the migration lock "
            f"released: {DEADLINE_ADVICE}"
        )
    return (
        f"the running migration was cancelled, and the migration lock released. {_kept(state)}"
        f"Rolled back: {tags(unit.migrations)}{not_run}: {DEADLINE_ADVICE}"
    )


def _signalled(state: RunState) -> str:
    if not state.writing:
        return f"nothing had started (it was {state.doing}), so nothing was changed. Redeploy when ready"
    if state.unit is not None and state.unit.kind != "transaction":
        # Outside a transaction, or under its own COMMITs: part of the running migration may stay.
        stays = _stopped(state, REDEPLOY_REST)
        return f"the running statement was cancelled and rolled back, and the lock released. {stays}"
    if state.kept:
        return (
            f"applied and kept (committed before it): {tags(state.kept)}; the running migration was cancelled and "
            "rolled back, and the lock released. Redeploy to apply the rest"
        )
    return "the running migration was cancelled and rolled back, and the lock released. Redeploy when ready"


def _guard_changed(state: RunState, unit: Unit) -> str:
    if unit.kind in {"transaction", "own"}:  # checked inside the unit's transaction, which rolled back
        everything = "Everything in this deploy's transaction was rolled back"
        return _running(state, unit, advice=FIX, everything=everything)
    return (
        f"{_kept(state)}{unit.migrations[0].tag} ran outside a transaction, so its changes stay; its ledger row was "
        "not written: fix the migration, then redeploy"
    )


def _ended_unseen(state: RunState, stop: StatementFailed) -> str:
    """A statement ended its unit's transaction itself: what the server's transaction status and the ledger prove."""
    tag, upto = stop.migration.tag, f"statements 1-{stop.number}" if stop.number > 1 else "statement 1"
    not_run = f"; not run: {tags(state.later)}" if state.later else ""
    if stop.ended == COMMITTED:
        rows = f"{tags(stop.committed)} (with their ledger rows) and " if stop.committed else ""
        return (
            f"{_kept(state)}That COMMIT kept {rows}what {tag}'s {upto} ran; {tag}'s ledger row was not written"
            f"{not_run}. {_HIDDEN}"
        )
    if stop.ended == ROLLED_BACK:
        return (
            f"{_kept(state)}That ROLLBACK undid this transaction (its migrations before {tag} included), but what "
            f"{tag}'s statement {stop.number} ran after it was committed on its own and stays{not_run}. Remove the "
            "ROLLBACK (to undo a migration, write a new one that reverses it), then redeploy"
        )
    return (
        f"{_kept(state)}Whether it committed is unknown: compare the ledger with `python -m entrypoint status`"
        f"{not_run}. {_HIDDEN}"
    )


def describe(state: RunState, stop: Stop) -> str:  # noqa: PLR0911 - one answer per kind of stop
    """What the run leaves behind when it stops with `stop` in `state`, and what to do next."""
    unit = state.unit
    if isinstance(stop, StatementFailed) and stop.error is None and unit is not None and unit.kind == "transaction":
        return _ended_unseen(state, stop)
    if isinstance(stop, StatementFailed) and unit is not None:
        if stop.pushed and unit.kind == "transaction":
            return _running(state, unit, advice="")  # the hint says what to do: `baseline`, not a fix of the migration
        return _running(state, unit, advice=REMOVE_DUPLICATES if stop.duplicates else FIX)
    if isinstance(stop, GuardChanged) and unit is not None:
        return _guard_changed(state, unit)
    if isinstance(stop, StatementFailed | GuardChanged | OwnStepFailed):  # a unit's stop seen between units
        return _stopped(state, FIX_GRANT if isinstance(stop, OwnStepFailed) else FIX)
    if isinstance(stop, Signalled):
        return _signalled(state)
    if isinstance(stop, OutOfTime):
        return _out_of_time(state)
    if state.kept:
        return f"Applied and kept (committed before it): {tags(state.kept)}; the rest rolled back"
    return "Nothing half-applied was kept (the transaction rolled back)"


class Stopped(Exception):
    """Raised inside a unit (so its transaction rolls back), carrying the stop out to the apply loop."""

    def __init__(self, stop: StatementFailed | GuardChanged) -> None:
        super().__init__(stop)
        self.stop = stop
