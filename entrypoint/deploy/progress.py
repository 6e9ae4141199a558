"""Where a deploy is: one frozen `RunState`, replaced as the run moves, held by the `Tracker`.

A stop can come from outside at any instant (SIGTERM, DEPLOY_DEADLINE, a lost
connection), so what the run kept must be readable at any instant: it is a pure
function (`outcome.describe`) of the state the tracker holds then. The state is
never changed in place; each step replaces it whole. The tracker also tells the
heartbeat (`db.blockers.BlockerWatch`) which statement our backend is running.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from entrypoint.core.model import Migration

if TYPE_CHECKING:  # the no-op start never imports the transaction planner
    from entrypoint.core.online_parts import Step
    from entrypoint.core.transactions import Unit
    from entrypoint.db.blockers import BlockerWatch


@dataclass(frozen=True)
class RunState:
    """How far one deploy got: enough to say exactly what it leaves behind if it stops now."""

    doing: str = "connecting"  # what the run is doing, for a line that says where it stopped
    writing: bool = False  # the first change (the ledger's creation, a repair, a migration) has begun
    applying: bool = False  # the migrations are being applied (the sync is done)
    # Printed once per run (a new session after a lost one is not the instant before): server_time, wal_lsn.
    restore_point: dict[str, str] | None = None
    kept: tuple[Migration, ...] = ()  # migrations this run committed, in order
    unit: Unit | None = None  # the unit running
    later: tuple[Migration, ...] = ()  # the migrations of the units after it
    migration: Migration | None = None  # the statement running (or last run): its migration and number
    number: int = 0
    resume_at: int = 1  # an `outside` unit: its statements before this one are committed; `concurrent`: its parts
    committed_at: int = 0  # an `own` unit: its statements through this one were committed by its own COMMIT
    recording: bool = False  # a `concurrent` unit: its part `resume_at` (a CONCURRENTLY build) is built, not marked
    cut: int | None = None  # the backend whose connection was closed because it did not answer a cancel
    reversing: bool = False  # a `rollback`: its units reverse migrations (`kept` holds those reversed)

    @property
    def where(self) -> str:
        """`0011_performance_indexes, statement 12/43` (a rollback: `… 0011's reversal, statement 3/43`), or ""."""
        if self.unit is None or self.migration is None:
            return ""
        what = f"{self.migration.tag}'s reversal" if self.reversing else self.migration.tag
        return f"{what}, statement {self.number}/{self.migration.statement_count}"

    def step(self) -> Step | None:
        """The online step a `concurrent` unit is at (its part `resume_at`), if that part is one."""
        from entrypoint.core.online_parts import Step as OnlineStep  # only a stop asks: a no-op start never imports it

        unit = self.unit
        plan = unit.plan_of(unit.migrations[0]) if unit is not None and unit.kind == "concurrent" else None
        if plan is None or not 0 < self.resume_at <= len(plan.parts):
            return None
        part = plan.parts[self.resume_at - 1]
        return part if isinstance(part, OnlineStep) else None


class Tracker:
    """Holds the current `RunState`; the only thing in a run that changes."""

    def __init__(self) -> None:
        self.state = RunState()
        self.watch: BlockerWatch | None = None

    def move(self, **changes: Any) -> None:
        """Replace the state with one that differs by `changes`."""
        self.state = replace(self.state, **changes)

    def running(self, migration: Migration, number: int, what: str = "") -> None:
        """Statement `number` of `migration` starts now (the heartbeat counts from here)."""
        self.move(migration=migration, number=number)
        if self.watch is not None:
            self.watch.running(migration.tag, number, migration.statement_count, what)

    def pipelined(self, statements: Sequence[tuple[Migration, int]]) -> None:
        """These statements (migration, number) were sent at once: the run is at the first until they answer.

        The heartbeat asks the server which of them runs (`BlockerWatch.pipelined`).
        """
        if not statements:
            return
        self.move(migration=statements[0][0], number=statements[0][1])
        if self.watch is not None:
            from entrypoint.db.blockers import Sent

            self.watch.pipelined([Sent(m.tag, n, m.statement_count, m.statements[n - 1]) for m, n in statements])

    def idle(self) -> None:
        """The statement is over: nothing for the heartbeat to report until the next one starts."""
        if self.watch is not None:
            self.watch.idle()
