"""Once per state: what a backup saves, its name, and a recent backup of the same state found again.

A backup is named for the state it saves (the server's system identifier and the
database's OID among it: staging and production may both call theirs `app`), so a restart (Render restarts a failing
start command; a second instance starts) finds one of the same state younger than
BACKUP_REUSE_WINDOW at BACKUP_URL or in BACKUP_DIR and reuses it instead of dumping
again. Pure naming and matching here, and the two look-ups.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from entrypoint.backup.store import Store, join

# The stamp is UTC to the second, then milliseconds: two backups of one state taken in the same second (a restart,
# a second instance) would otherwise share a name, and the second would replace the first.
_SECOND = "%Y%m%dT%H%M%S"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
_CLOCK_SKEW_S = 60  # a backup stamped this far in the future (another instance's clock) still counts as fresh


@dataclass(frozen=True)
class State:
    """What a backup saves: which database (of which server), its last applied migration, and the pending set."""

    database: str
    last_tag: str
    pending: tuple[tuple[str, str], ...]  # (tag, sha256 of its file), in journal order
    server: str | None = None  # `<system identifier> at <address:port>`: None when this role may not read it
    database_oid: int = 0
    undoes: tuple[str, ...] | None = None  # `rollback`: the tags it reverses (then `pending` is them, marked)

    @property
    def digest(self) -> str:
        """12 hex digits of the sha256 of the pending set (tags and file hashes)."""
        text = "\n".join(f"{tag} {sha}" for tag, sha in self.pending)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def known(self) -> bool:
        """Whether the server told which it is: only then can a backup be proven to be of this very database."""
        return self.server is not None

    @property
    def instance(self) -> str:
        """8 hex digits of the server (system identifier, address) and the database's OID, or `unknown`.

        Two servers (staging and production) both hold a database called `app`: the name alone cannot tell
        their backups apart, this can (and a database dropped and created again has a new OID).
        """
        if self.server is None:
            return "unknown"
        return hashlib.sha256(f"{self.server}/{self.database_oid}".encode()).hexdigest()[:8]

    @property
    def prefix(self) -> str:
        """The name's part that says which database: `<database>-<instance>`, filename-safe."""
        return _SAFE.sub("_", f"{self.database}-{self.instance}")

    @property
    def stem(self) -> str:
        """The name's part that says the state: `<database>-<instance>-<last tag>-<digest>`, filename-safe."""
        return _SAFE.sub("_", f"{self.prefix}-{self.last_tag}-{self.digest}")

    def name(self, moment: datetime) -> str:
        """The dump's file (and object) name, taken at `moment`."""
        utc = moment.astimezone(UTC)
        return f"{self.stem}-{utc.strftime(_SECOND)}.{utc.microsecond // 1000:03d}Z.dump"

    def taken_at(self, name: str) -> datetime | None:
        """When the backup called `name` was taken, if it is a backup of this state; else None."""
        # Without milliseconds is how earlier versions named them: those are still found.
        match = re.fullmatch(re.escape(self.stem) + r"-(\d{8}T\d{6})(\.\d{3})?Z\.dump", name)
        if match is None:
            return None
        milliseconds = int(match.group(2)[1:]) if match.group(2) else 0
        return datetime.strptime(match.group(1), _SECOND).replace(tzinfo=UTC) + timedelta(milliseconds=milliseconds)


def _fresh(state: State, name: str, now: datetime, window: float) -> float | None:
    if not state.known:  # a backup is reused only when it is proven to be of this very database
        return None
    taken = state.taken_at(name)
    if taken is None:
        return None
    age = (now - taken).total_seconds()
    return age if -_CLOCK_SKEW_S <= age <= window else None


def reusable_file(folder: Path, state: State, now: datetime, window: float) -> tuple[Path, float] | None:
    """The newest backup of `state` in FOLDER taken less than WINDOW seconds ago, and its age."""
    if window <= 0 or not folder.is_dir():
        return None
    found = [(age, path) for path in folder.iterdir() if (age := _fresh(state, path.name, now, window)) is not None]
    found = [(age, path) for age, path in found if path.is_file() and path.stat().st_size > 0]
    return (min(found)[1], min(found)[0]) if found else None


def reusable_object(
    store: Store, prefix: str, state: State, now: datetime, window: float
) -> tuple[str, int, float] | None:
    """The newest object of `state` at BACKUP_URL younger than WINDOW that carries its sha256: (key, size, age)."""
    if window <= 0 or not state.known:
        return None
    candidates = []
    for found in store.find(join(prefix, state.stem + "-")):
        age = _fresh(state, found.key.rsplit("/", 1)[-1], now, window)
        if age is not None and found.size > 0:
            candidates.append((age, found.key))
    for age, key in sorted(candidates):
        head = store.head(key)
        if head.sha256 and head.size > 0:
            return key, head.size, age
    return None
