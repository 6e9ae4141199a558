"""The migrations folder as the deploy finds it: the default places, and every broken folder refused before a connection.

Each is one ❌ line and exit 3, nothing created, the app not started. (Reading a good folder exactly as
drizzle-orm's readMigrationFiles does: tests/unit/test_journal.py.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.production import copy_folder
from tests.drizzle_ref import EXAMPLE_MIGRATIONS
from tests.folders import edit_sql
from tests.support import output_of, query, run_entrypoint


def _journal(folder: Path, change: Callable[[dict[str, object]], object]) -> None:
    path = folder / "meta" / "_journal.json"
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def _entries(document: dict[str, object]) -> list[dict[str, object]]:
    entries = document["entries"]
    assert isinstance(entries, list)
    return entries


BAD_FOLDERS: dict[str, tuple[Callable[[Path], None], str]] = {
    "invalid-json": (lambda f: (f / "meta" / "_journal.json").write_text("{ not json"), "is not valid JSON"),
    "no-journal": (lambda f: (f / "meta" / "_journal.json").unlink(), "No meta/_journal.json"),
    "mysql-journal": (lambda f: _journal(f, lambda d: d.update(dialect="mysql")), "is for dialect 'mysql'"),
    "missing-sql": (
        lambda f: (f / f"{_entries(json.loads((f / 'meta/_journal.json').read_text()))[3]['tag']}.sql").unlink(),
        "is listed in meta/_journal.json but missing",
    ),
    "unreadable-sql": (
        lambda f: _replace_with_dir(f, 2),
        "Cannot read",
    ),
    "non-utf8-sql": (lambda f: edit_sql(f, 1, lambda b: b + b"\n-- caf\xe9\n"), "is not valid UTF-8"),
    "duplicate-tag": (
        lambda f: _journal(f, lambda d: _entries(d)[2].update(tag=_entries(d)[1]["tag"])),
        "appears twice",
    ),
    "duplicate-idx": (lambda f: _journal(f, lambda d: _entries(d)[2].update(idx=1)), "idx 1 is used by both"),
    "when-repeated": (
        lambda f: _journal(f, lambda d: _entries(d)[4].update(when=_entries(d)[3]["when"])),
        "has the same `when`",
    ),
    "nul-byte-sql": (lambda f: edit_sql(f, 2, lambda b: b"-- a\x00b\n" + b), "holds a NUL byte at offset 4"),
    "absolute-tag": (
        lambda f: _journal(f, lambda d: _entries(d)[2].update(tag=str(f / "elsewhere"))),
        "a control character or an absolute path",
    ),
    "tag-with-newline": (
        lambda f: _journal(
            f, lambda d: _entries(d)[2].update(tag="0002\n✅ Database migrations completed successfully")
        ),
        "a control character or an absolute path",
    ),
    "tag-with-nul": (lambda f: _journal(f, lambda d: _entries(d)[2].update(tag="0002\x00x")), "a control character"),
    "when-beyond-bigint": (
        lambda f: _journal(f, lambda d: _entries(d)[2].update(when=2**63)),
        "at most 253402300799999",
    ),
    "when-beyond-javascript": (
        lambda f: _journal(f, lambda d: _entries(d)[11].update(when=2**53 + 1)),
        "at most 253402300799999",
    ),
    "journal-nested-deeply": (
        lambda f: (f / "meta" / "_journal.json").write_text("[" * 100_000 + "]" * 100_000),
        "nested too deeply",
    ),
    "fifo-sql": (lambda f: _replace_with_fifo(f, 3), "It must be a readable regular file"),
    "entry-without-tag": (lambda f: _journal(f, lambda d: _entries(d)[0].pop("tag")), "needs an integer `idx`"),
    "no-entries": (lambda f: _journal(f, lambda d: d.update(entries=[])), "lists no migrations"),
    "entries-not-a-list": (lambda f: _journal(f, lambda d: d.update(entries={})), "has no `entries` list"),
}


def _replace_with_fifo(folder: Path, index: int) -> None:
    journal = json.loads((folder / "meta" / "_journal.json").read_text())
    path = folder / f"{journal['entries'][index]['tag']}.sql"
    path.unlink()
    os.mkfifo(path)


def _replace_with_dir(folder: Path, index: int) -> None:
    journal = json.loads((folder / "meta" / "_journal.json").read_text())
    path = folder / f"{journal['entries'][index]['tag']}.sql"
    path.unlink()
    path.mkdir()


@pytest.mark.parametrize("case", list(BAD_FOLDERS))
def test_bad_folder_one_line_exit_3_database_untouched(case: str, tmp_path: Path, database_url: str) -> None:
    """Each broken folder: one ❌ line, exit 3, no traceback, nothing created, app not started."""
    folder = copy_folder(EXAMPLE_MIGRATIONS, tmp_path / "drizzle")
    breaker, expected = BAD_FOLDERS[case]
    breaker(folder)
    marker = tmp_path / "app-started"
    result = run_entrypoint(["--", "touch", str(marker)], url=database_url, folder=folder)
    out = output_of(result)
    assert result.returncode == 3, out
    assert out.count("\n") == 1, out
    assert out.startswith("❌ ")
    assert expected in out
    assert "Traceback" not in out
    assert not marker.exists()
    assert query(database_url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'drizzle'") == [(0,)]


def test_missing_folder(tmp_path: Path, database_url: str) -> None:
    """A folder that does not exist is named, absolute, with the setting to fix."""
    result = run_entrypoint([], url=database_url, folder=tmp_path / "nope")
    assert result.returncode == 3
    assert output_of(result).strip() == (
        f"❌ Migrations folder not found: {tmp_path / 'nope'}. Set MIGRATIONS_DIR to your drizzle-kit `out` folder"
    )


def test_default_folder_is_drizzle_then_dist_drizzle(tmp_path: Path, database_url: str) -> None:
    """Without MIGRATIONS_DIR, ./dist/drizzle is used when ./drizzle does not exist."""
    copy_folder(EXAMPLE_MIGRATIONS, tmp_path / "dist" / "drizzle")
    result = run_entrypoint([], url=database_url, cwd=tmp_path)
    assert result.returncode == 0, output_of(result)
    assert f"📁 Migrations folder: {tmp_path / 'dist' / 'drizzle'}" in result.stdout


def test_empty_folder(tmp_path: Path, database_url: str) -> None:
    """An empty folder (a build that forgot to copy the migrations) is refused before connecting."""
    empty = tmp_path / "drizzle"
    empty.mkdir()
    result = run_entrypoint([], url=database_url, folder=empty)
    assert result.returncode == 3, output_of(result)
    assert output_of(result).startswith(f"❌ No meta/_journal.json in {empty}")
    assert query(database_url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'drizzle'") == [(0,)]
