"""Where a deploy is: one frozen `RunState`, replaced as the run moves, held by the `Tracker`.

A stop can come from outside at any instant (SIGTERM, DEPLOY_DEADLINE, a lost
connection), so what the run kept must be readable at any instant: it is a pure
function (`outcome.describe`) of the state the tracker holds then. The state is
never changed in place; each step replaces it whole. The tracker also tells the
heartbeat (`db.blockers.BlockerWatch`) which statement our backend is running.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from entrypoint.core.model import Migration

if TYPE_CHECKING:  # the no-op start never imports the transaction planner
    from entrypoint.core.indexes import IndexBuild
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
    resume_at: int = 1  # an `outside` or `concurrent` unit: its statements before this one are committed
    committed_at: int = 0  # an `own` unit: its statements through this one were committed by its own COMMIT
    cut: int | None = None  # the backend whose connection was closed because it did not answer a cancel
    reversing: bool = False  # a `rollback`: its units reverse migrations (`kept` holds those reversed)

    @property
    def where(self) -> str:
        """`0011_performance_indexes, statement 12/43` (a rollback: `… 0011's reversal, statement 3/43`), or ""."""
        if self.unit is None or self.migration is None:
            return ""
        what = f"{self.migration.tag}'s reversal" if self.reversing else self.migration.tag
        return f"{what}, statement {self.number}/{self.migration.statement_count}"

    def build(self) -> IndexBuild | None:
        """How the running statement builds its index, if it is one of an index-only migration's."""
        if self.unit is None or self.migration is None:
            return None
        return next((b for b in self.unit.builds_of(self.migration) if b.number == self.number), None)


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

    def idle(self) -> None:
        """The statement is over: nothing for the heartbeat to report until the next one starts."""
        if self.watch is not None:
            self.watch.idle()
