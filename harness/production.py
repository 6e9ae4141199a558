"""The runbook's production database, as it stood before the deploy: built here once, for the tests and the demo.

This module owns that database and nothing about deploying to it: the previous
release (0000-0010 of examples/backend/drizzle) applied by the migrator the
caller passes (drizzle-orm's in the tests, the entrypoint itself in the demo),
then the ledger drifted as production's had (ids 0-7, then 283-285 holding
0008-0010 with the hashes of an earlier generation of their files and a
`created_at` between 0007's and 0008's `when`; the id sequence at 285), and 8
managers and 60 FBOs in `users`. It reads drizzle-kit folders itself (journal
entries, sha256 of each whole file, a copy as an older release shipped it),
never through `entrypoint.journal`, so it stays an independent witness.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_MIGRATIONS = REPO / "examples" / "backend" / "drizzle"
PREVIOUS_RELEASE = 11  # entries 0000-0010; 0011 is the deploy's
OLD_IDS = (283, 284, 285)  # the ids production's ledger gave 0008-0010
MANAGERS, FBOS = 8, 60

# Applies a folder to a database URL, as `python -m entrypoint` or drizzle-orm's migrate() would; never raises.
Migrator = Callable[[str, Path], subprocess.CompletedProcess[str]]


class BuildFailed(RuntimeError):
    """The previous release could not be applied, or left a ledger other than drizzle-orm's; `output` says why."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message + (f"\n{output}" if output else ""))
        self.message = message
        self.output = output


@dataclass(frozen=True)
class Entry:
    """One journal entry, with the sha256 of its whole SQL file (drizzle-orm's hash)."""

    tag: str
    when: int
    hash: str


def journal_entries(folder: Path) -> list[dict[str, Any]]:
    """The journal's entries as drizzle-kit wrote them."""
    journal = json.loads((folder / "meta" / "_journal.json").read_text(encoding="utf-8"))
    listed: list[dict[str, Any]] = journal["entries"]
    return listed


def entries(folder: Path) -> list[Entry]:
    """The journal's entries, each hashed as drizzle-orm hashes it."""
    return [
        Entry(e["tag"], int(e["when"]), hashlib.sha256((folder / f"{e['tag']}.sql").read_bytes()).hexdigest())
        for e in journal_entries(folder)
    ]


def copy_folder(source: Path, target: Path, *, keep: int | None = None) -> Path:
    """Copy a drizzle folder; with `keep`, only its first `keep` journal entries (as of an older release)."""
    shutil.copytree(source, target)
    if keep is not None:
        journal_path = target / "meta" / "_journal.json"
        journal = json.loads(journal_path.read_text(encoding="utf-8"))
        for entry in journal["entries"][keep:]:
            (target / f"{entry['tag']}.sql").unlink()
        journal["entries"] = journal["entries"][:keep]
        journal_path.write_text(json.dumps(journal, indent=2), encoding="utf-8")
    return target


def build(url: str, workdir: Path, migrate: Migrator, progress: Callable[[str], None] = lambda _: None) -> None:
    """Turn the empty database at `url` into the runbook's production one; the release copy goes in `workdir`.

    `progress` hears "previous_release", "drifted" and "users" as each step is
    committed. Raises `BuildFailed` when `migrate` fails or leaves another
    ledger than ids 1..11 holding 0000-0010's hashes and `when`s.
    """
    listed = entries(EXAMPLE_MIGRATIONS)
    release = copy_folder(EXAMPLE_MIGRATIONS, workdir / "release-0010", keep=PREVIOUS_RELEASE)
    applied = migrate(url, release)
    if applied.returncode != 0:
        raise BuildFailed(
            f"applying the previous release (0000-0010) failed with exit code {applied.returncode}",
            applied.stdout + applied.stderr,
        )
    progress("previous_release")
    with psycopg.connect(url) as conn:
        _drift(conn, listed)
    progress("drifted")
    with psycopg.connect(url) as conn:
        _insert_users(conn)
    progress("users")


def _drift(conn: psycopg.Connection[Any], listed: list[Entry]) -> None:
    """Rewrite drizzle-orm's ledger (ids 1..11) as production's: ids 0-7, then 283-285 from an earlier generation."""
    rows = [
        tuple(row) for row in conn.execute("SELECT id, hash, created_at FROM drizzle.__drizzle_migrations ORDER BY id")
    ]
    expected = [(n, e.hash, e.when) for n, e in enumerate(listed[:PREVIOUS_RELEASE], start=1)]
    if rows != expected:
        raise BuildFailed(f"the previous release left an unexpected ledger: {rows!r}, expected {expected!r}")
    first_old = PREVIOUS_RELEASE - len(OLD_IDS)  # 8: rows up to 0007's keep their hash and `when`
    # Two steps, so the primary key never sees two rows with one id mid-statement: ids 1-8 become 0-7.
    conn.execute("UPDATE drizzle.__drizzle_migrations SET id = -id WHERE id <= %s", (first_old,))
    conn.execute("UPDATE drizzle.__drizzle_migrations SET id = -id - 1 WHERE id < 0")
    when_0007 = listed[first_old - 1].when
    for n, old_id in zip(range(first_old + 1, PREVIOUS_RELEASE + 1), OLD_IDS, strict=True):
        old_hash = hashlib.sha256(f"earlier generation of migration {n - 1}".encode()).hexdigest()
        conn.execute(
            "UPDATE drizzle.__drizzle_migrations SET id = %s, hash = %s, created_at = %s WHERE id = %s",
            (old_id, old_hash, when_0007 + n, n),  # `when_0007 + n` stays below 0008's `when`
        )
    conn.execute("SELECT setval('drizzle.__drizzle_migrations_id_seq', %s)", (OLD_IDS[-1],))


def _insert_users(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "INSERT INTO users (email, password_hash, first_name, last_name, role) "
        "SELECT 'manager' || n || '@example.com', 'x', 'Manager', 'M' || n, 'manager' FROM generate_series(1, %s) n",
        (MANAGERS,),
    )
    conn.execute(
        "INSERT INTO users (email, password_hash, first_name, last_name, role, manager_id) "
        "SELECT 'fbo' || n || '@example.com', 'x', 'Fbo', 'F' || n, 'fbo', "
        "(SELECT id FROM users WHERE role = 'manager' ORDER BY id LIMIT 1 OFFSET (n %% %s)) "
        "FROM generate_series(1, %s) n",
        (MANAGERS, FBOS),
    )
