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
from typing import TYPE_CHECKING, NamedTuple

from entrypoint.core.model import Migration
from entrypoint.deploy.progress import RunState

if TYPE_CHECKING:
    from entrypoint.core.transactions import Unit

FIX = "fix the migration, then redeploy"
REMOVE_DUPLICATES = "remove the duplicates, then redeploy"
FIX_ROWS = "fix those rows, then redeploy"
FIX_GRANT = "fix what the message names (a grant, a setting), then redeploy"
REDEPLOY_REST = "redeploy to apply the rest"
DEADLINE_ADVICE = "redeploy to go on, or apply the rest with no deadline (DEPLOY_DEADLINE=0) from a one-off shell"
STATEMENT_STOPPED = "the running statement was cancelled and rolled back, and the migration lock released"
COMMITTED, ROLLED_BACK = "committed", "rolled back"  # how a transaction a statement ended on its own ended
_HIDDEN = (
    "Put `--> statement-breakpoint` around its BEGIN and COMMIT (a chunk over 1 MiB is not read, so they went "
    "unseen), or remove them; if its statements all ran, record it by hand first, or the next deploy runs them again"
)


class Words(NamedTuple):
    """What the sentences call a run's work: a deploy applies migrations, a rollback (`reversing`) reverses them."""

    kept: str  # the units this run committed
    not_done: str  # the running unit, rolled back
    fix: str
    fix_grant: str
    rest: str
    deadline: str
    outside: str
    own: str  # {tag}, {through}
    none_yet: str
    running: str
    when_ready: str
    everything: str
    outside_guard: str  # {tag}


APPLYING = Words(
    kept="Applied and kept (committed before it)",
    not_done="Rolled back",
    fix=FIX,
    fix_grant=FIX_GRANT,
    rest=REDEPLOY_REST,
    deadline=DEADLINE_ADVICE,
    outside=(
        "This migration runs outside a transaction: the statements before it stay applied and its ledger row was "
        "not written. Make its statements idempotent (IF NOT EXISTS), then redeploy"
    ),
    own=(
        "{tag} commits on its own: its statements 1-{through} stay applied, and its ledger row was not written. "
        "Make them idempotent (IF NOT EXISTS), then redeploy"
    ),
    none_yet="no migration had been applied",
    running="the running migration",
    when_ready="Redeploy when ready",
    everything="Everything in this deploy's transaction was rolled back",
    outside_guard=(
        "{tag} ran outside a transaction, so its changes stay; its ledger row was not written: fix the migration, "
        "then redeploy"
    ),
)
RETRY = "run the rollback again"
REVERSING = Words(
    kept="Reversed and kept (committed before it)",
    not_done="Not reversed (its transaction rolled back, still applied)",
    fix=f"fix what the message names (the database, or write a down file), then {RETRY}",
    fix_grant=f"fix what the message names (a grant, a setting), then {RETRY}",
    rest=f"{RETRY} to reverse the rest",
    deadline=f"{RETRY} to go on, or with no deadline (DEPLOY_DEADLINE=0) from a one-off shell",
    outside=(
        "Its reversal runs outside a transaction: the statements before it stay done and its ledger row was not "
        f"deleted; {RETRY} to finish it (IF EXISTS skips what is already dropped)"
    ),
    own=(
        "{tag}'s down file commits on its own: its statements 1-{through} stay done, and its ledger row was not "
        f"deleted. Make them idempotent (IF EXISTS), then {RETRY}"
    ),
    none_yet="no migration had been reversed",
    running="the running reversal",
    when_ready=f"{RETRY[0].upper()}{RETRY[1:]} when ready",
    everything="Everything in this reversal's transaction was rolled back",
    outside_guard=(
        "{tag}'s reversal ran outside a transaction, so its changes stay; its ledger row was not deleted: look at "
        f"what moved, then {RETRY}"
    ),
)


def words(state: RunState) -> Words:
    """The deploy's words, or the rollback's."""
    return REVERSING if state.reversing else APPLYING


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
    offending: str | None = None  # an online validation met rows that break its constraint: the query that lists them
    check: str = ""  # that validation, in words: `VALIDATE CONSTRAINT users_x_fk on users`
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
    return f"{words(state).kept}: {tags(state.kept)}. " if state.kept else ""


def _concurrent(state: RunState, unit: Unit, cancelled: str) -> str:
    """What of a migration applied in parts stays: the parts committed, those left, and no ledger row."""
    migration = unit.migrations[0]
    plan = unit.plan_of(migration)
    tag, done = migration.tag, state.resume_at - 1
    left = f"drops the INVALID index {cancelled} the cancelled build left, " if cancelled else ""
    if plan is None or plan.index_only:  # one part per statement, in written order
        if not done:
            built = "none of its indexes was built yet by this run"
            rest = f"; the next deploy {left}builds them" if cancelled else ""
        else:
            built = f"its statements 1-{done} stay built and its ledger row was not written"
            rest = f"; the next deploy keeps those indexes, {left}and builds the rest"
        return f"{tag} builds its indexes one at a time, outside a transaction: {built}{rest}"
    from entrypoint.core.online_parts import first_parts, what  # only a stop in an online unit needs them

    count = len(plan.parts)
    kept = "; ".join(what(p) for p in plan.parts[:done])
    committed = (
        f"{first_parts(done)} {'is' if done == 1 else 'are'} committed ({kept})" if done else "no part is committed"
    )
    rest = "; ".join(f"{n}. {what(p)}" for n, p in enumerate(plan.parts[done:], start=done + 1))
    drop = f"drops the INVALID index {cancelled} the cancelled build left, then " if cancelled else ""
    return (
        f"{tag} is applied online in {count} parts, each committing on its own: {committed}; left: {rest}. Its ledger "
        f"row was not written, and the next deploy {drop}resumes at part {done + 1}"
    )


def _running(
    state: RunState, unit: Unit, *, advice: str, everything: str = "Everything was rolled back", cancelled: str = ""
) -> str:
    """What stays when the running `unit` stops where it is: "everything" only when it is true."""
    kept, said = _kept(state), words(state)
    if unit.kind == "concurrent":
        return f"{kept}{_concurrent(state, unit, cancelled)}: {advice}"
    if unit.kind == "outside":
        return kept + said.outside
    if unit.kind == "own" and state.committed_at:
        return kept + said.own.format(tag=unit.migrations[0].tag, through=state.committed_at)
    if not kept:
        return f"{everything}: {advice}" if advice else f"{everything}."
    not_run = f"; not run: {tags(state.later)}" if state.later else ""
    return f"{kept}{said.not_done}: {tags(unit.migrations)}{not_run}: {advice}"


def _stopped(state: RunState, advice: str) -> str:
    """What stays when the run is stopped from outside where it is now, then `advice`."""
    unit = state.unit
    if unit is None:
        return f"{_kept(state)}{advice[0].upper()}{advice[1:]}"
    step = state.step()
    cancelled = step.name if step is not None and step.kind == "create-index" and not state.recording else ""
    everything = (
        f"{words(state).running[0].upper()}{words(state).running[1:]} was cancelled and everything was rolled back"
    )
    return _running(state, unit, advice=advice, everything=everything, cancelled=cancelled)


def cut_sentence(pid: int) -> str:
    """The backend that did not answer the cancel: what happens to it, and how to end it."""
    return (
        f"the server did not answer the cancel (is backend pid {pid} stopped?), so the connection was closed: "
        f"PostgreSQL rolls its transaction back and releases the migration lock when that backend ends "
        f"(SELECT pg_terminate_backend({pid}) if it stays)"
    )


def _capital(text: str) -> str:
    return text[0].upper() + text[1:]


def _out_of_time(state: RunState) -> str:  # noqa: PLR0911 - one answer per place the deadline can find the run
    """What the deadline left: the rollback said once, by whichever sentence knows what was rolled back.

    The ❌ line's head already says where the run was; no line above is claimed to say more.
    """
    said = words(state)
    again = "Redeploy" if not state.reversing else _capital(RETRY)
    early = f"{again} (raise DEPLOY_DEADLINE if that step needs more time)"
    if not state.writing:
        if state.cut is not None:
            return f"{cut_sentence(state.cut)}; nothing was changed. {early}"
        return f"nothing had started, so nothing was changed. {early}"
    stopped = cut_sentence(state.cut) if state.cut is not None else STATEMENT_STOPPED
    if not state.applying:
        return f"{stopped}; {said.none_yet}. {_capital(said.deadline)}"
    unit = state.unit
    whole = unit is not None and (unit.kind == "transaction" or (unit.kind == "own" and not state.committed_at))
    if unit is None or not whole:  # what stays of a unit that commits as it goes is that unit's own sentence
        return f"{stopped}. {_stopped(state, said.deadline)}"
    not_run = f"; not run: {tags(state.later)}" if state.later else ""
    if state.cut is not None:  # the cut sentence says the transaction rolls back when the backend ends
        return f"{stopped}. {_kept(state)}That transaction held {tags(unit.migrations)}{not_run}: {said.deadline}"
    if not state.kept:
        return (
            f"{said.running} was cancelled and everything was rolled back, and the migration lock released: "
            f"{said.deadline}"
        )
    return (
        f"{said.running} was cancelled, and the migration lock released. {_kept(state)}"
        f"{said.not_done}: {tags(unit.migrations)}{not_run}: {said.deadline}"
    )


def _signalled(state: RunState) -> str:
    said = words(state)
    if not state.writing:
        return f"nothing had started (it was {state.doing}), so nothing was changed. {said.when_ready}"
    if state.unit is not None and state.unit.kind != "transaction":
        # Outside a transaction, or under its own COMMITs: part of the running migration may stay.
        stays = _stopped(state, said.rest)
        return f"the running statement was cancelled and rolled back, and the lock released. {stays}"
    if state.kept:
        return (
            f"{said.kept[0].lower()}{said.kept[1:]}: {tags(state.kept)}; {said.running} was cancelled and "
            f"rolled back, and the lock released. {_capital(said.rest)}"
        )
    return f"{said.running} was cancelled and rolled back, and the lock released. {said.when_ready}"


def _guard_changed(state: RunState, unit: Unit) -> str:
    said = words(state)
    if unit.kind in {"transaction", "own"}:  # checked inside the unit's transaction, which rolled back
        return _running(state, unit, advice=said.fix, everything=said.everything)
    return f"{_kept(state)}{said.outside_guard.format(tag=unit.migrations[0].tag)}"


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
    unit, said = state.unit, words(state)
    if isinstance(stop, StatementFailed) and stop.error is None and unit is not None and unit.kind == "transaction":
        return _ended_unseen(state, stop)
    if isinstance(stop, StatementFailed) and unit is not None:
        if stop.pushed and unit.kind == "transaction":
            return _running(state, unit, advice="")  # the hint says what to do: `baseline`, not a fix of the migration
        advice = REMOVE_DUPLICATES if stop.duplicates else FIX_ROWS if stop.offending else said.fix
        return _running(state, unit, advice=advice)
    if isinstance(stop, GuardChanged) and unit is not None:
        return _guard_changed(state, unit)
    if isinstance(stop, StatementFailed | GuardChanged | OwnStepFailed):  # a unit's stop seen between units
        return _stopped(state, said.fix_grant if isinstance(stop, OwnStepFailed) else said.fix)
    if isinstance(stop, Signalled):
        return _signalled(state)
    if isinstance(stop, OutOfTime):
        return _out_of_time(state)
    if state.kept:
        return f"{said.kept}: {tags(state.kept)}; the rest rolled back"
    return "Nothing half-applied was kept (the transaction rolled back)"


class Stopped(Exception):
    """Raised inside a unit (so its transaction rolls back), carrying the stop out to the apply loop."""

    def __init__(self, stop: StatementFailed | GuardChanged) -> None:
        super().__init__(stop)
        self.stop = stop
