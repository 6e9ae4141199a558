"""The values every other module passes around: migrations, the journal, ledger rows and snapshots.

Pure data, no behaviour beyond a few derived properties: the file reader
(`journal`) makes `Journal`s, the ledger edge (`ledger`) makes `LedgerSnapshot`s,
and the planner (`plan`) turns one of each into a `Plan`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, NamedTuple

FOLDERS_LAYOUT = "folders"
Layout = Literal["journal", "folders"]
# How a run groups pending migrations into transactions (`transactions` plans it). Here, not there, so
# that reading the settings never imports the transaction planner (the start gate never needs it).
Mode = Literal["auto", "per-migration", "single"]  # TRANSACTION_MODE
MODES: tuple[Mode, ...] = ("auto", "per-migration", "single")
OnlineMode = Literal["auto", "always", "never"]  # ONLINE_DDL: which statements the online planner rewrites
ONLINE_MODES: tuple[OnlineMode, ...] = ("auto", "always", "never")
IndexMode = Literal["auto", "concurrent", "transaction"]  # INDEX_BUILD: ONLINE_DDL's old name, kept as its alias
INDEX_MODES: tuple[IndexMode, ...] = ("auto", "concurrent", "transaction")
INDEX_BUILD_MEANS: dict[str, OnlineMode] = {"auto": "auto", "concurrent": "always", "transaction": "never"}
WhenAhead = Literal["start", "refuse"]  # WHEN_AHEAD: an older release on a newer schema
WHEN_AHEAD: tuple[WhenAhead, ...] = ("start", "refuse")


class Migration(NamedTuple):
    """One journal entry and its SQL, as drizzle-orm sees it."""

    idx: int
    tag: str
    when: int
    hash: str
    statements: tuple[bytes, ...]  # as sent: bytes sliced from the file, never re-encoded

    @property
    def statement_count(self) -> int:
        """Statements that will actually be sent (blank chunks are skipped)."""
        return len(self.statements)


class Journal(NamedTuple):
    """The folder's entries in journal order.

    `layout` is drizzle-kit 0.x's `meta/_journal.json` (`journal`) or 1.0's folder
    per migration (`folders`); `unlisted` are SQL files drizzle-orm ignores because
    no entry names them.
    """

    folder: Path
    migrations: tuple[Migration, ...]
    layout: Layout = "journal"
    unlisted: tuple[str, ...] = ()

    @property
    def name_keyed(self) -> bool:
        """drizzle-orm 1.0: the ledger is keyed by migration name, not by `created_at`."""
        return self.layout == FOLDERS_LAYOUT


class LedgerRow(NamedTuple):
    """One row of `__drizzle_migrations`."""

    id: int
    hash: str
    created_at: int | None
    name: str | None = None  # drizzle-orm 1.0 ledgers only


class LedgerSnapshot(NamedTuple):
    """The ledger as one read found it: whether the table exists, whether it has 1.0's `name`, its rows."""

    exists: bool
    has_names: bool
    rows: tuple[LedgerRow, ...]


class RowRepair(NamedTuple):
    """One ledger row to rewrite: the old row, what it becomes, and the migration it records."""

    old: LedgerRow
    new: LedgerRow
    tag: str


class Refusal(NamedTuple):
    """Why the ledger cannot be repaired safely. `reason` is a stable code, `detail` the operator's sentence."""

    reason: str
    detail: str
