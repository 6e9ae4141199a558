"""Reading a drizzle-kit folder: hashes and statements exactly as drizzle-orm's readMigrationFiles, bad input refused."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from entrypoint.errors import JournalError
from entrypoint.journal import read_journal
from harness.production import copy_folder
from tests.drizzle_ref import EXAMPLE_MIGRATIONS, REFERENCE_DIR
from tests.support import output_of, query, run_entrypoint


def _drizzle_read(folder: Path) -> list[dict[str, object]]:
    script = (
        "import('drizzle-orm/migrator').then(m => process.stdout.write(JSON.stringify("
        f"m.readMigrationFiles({{migrationsFolder: {json.dumps(str(folder))}}}))))"
    )
    out = subprocess.run(
        ["node", "-e", script], cwd=REFERENCE_DIR, capture_output=True, text=True, check=True, timeout=60
    )
    result: list[dict[str, object]] = json.loads(out.stdout)
    return result


def _edit(folder: Path, index: int, change: Callable[[bytes], bytes]) -> None:
    journal = json.loads((folder / "meta" / "_journal.json").read_text())
    path = folder / f"{journal['entries'][index]['tag']}.sql"
    path.write_bytes(change(path.read_bytes()))


def test_hashes_and_statements_match_drizzle(tmp_path: Path) -> None:
    """BOM, CRLF and non-ASCII files hash and split exactly as drizzle-orm 0.45.4 reads them."""
    folder = copy_folder(EXAMPLE_MIGRATIONS, tmp_path / "drizzle")
    _edit(folder, 0, lambda b: b"\xef\xbb\xbf" + b)
    _edit(folder, 1, lambda b: b.replace(b"\n", b"\r\n"))
    _edit(folder, 2, lambda b: b + "\n-- déploiement « café » ✓ 🚀\n".encode())
    theirs = _drizzle_read(folder)
    ours = read_journal(folder).migrations
    assert [m.hash for m in ours] == [t["hash"] for t in theirs]
    assert [m.when for m in ours] == [t["folderMillis"] for t in theirs]
    for migration, reference in zip(ours, theirs, strict=True):
        chunks = [str(c) for c in reference["sql"]]  # type: ignore[attr-defined]
        chunks[0] = chunks[0].removeprefix("\ufeff")
        assert list(migration.statements) == [c.encode() for c in chunks if c.strip()]


def test_split_is_on_the_literal_breakpoint_only(tmp_path: Path) -> None:
    """`-->statement-breakpoint` without the space, or in other case, does not split."""
    folder = copy_folder(EXAMPLE_MIGRATIONS, tmp_path / "drizzle")
    _edit(folder, 0, lambda b: b + b"\n-->statement-breakpoint\nSELECT 1;\n--> STATEMENT-BREAKPOINT\nSELECT 2;")
    before = read_journal(EXAMPLE_MIGRATIONS).migrations[0].statements
    assert len(read_journal(folder).migrations[0].statements) == len(before)


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
    "non-utf8-sql": (lambda f: _edit(f, 1, lambda b: b + b"\n-- caf\xe9\n"), "is not valid UTF-8"),
    "duplicate-tag": (
        lambda f: _journal(f, lambda d: _entries(d)[2].update(tag=_entries(d)[1]["tag"])),
        "appears twice",
    ),
    "duplicate-idx": (lambda f: _journal(f, lambda d: _entries(d)[2].update(idx=1)), "idx 1 is used by both"),
    "when-repeated": (
        lambda f: _journal(f, lambda d: _entries(d)[4].update(when=_entries(d)[3]["when"])),
        "has the same `when`",
    ),
    "nul-byte-sql": (lambda f: _edit(f, 2, lambda b: b"-- a\x00b\n" + b), "holds a NUL byte at offset 4"),
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
        "at most 9007199254740991",
    ),
    "when-beyond-javascript": (
        lambda f: _journal(f, lambda d: _entries(d)[11].update(when=2**53 + 1)),
        "at most 9007199254740991",
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


def test_journal_error_carries_the_path(tmp_path: Path) -> None:
    """JournalError names the file that is wrong."""
    with pytest.raises(JournalError) as caught:
        read_journal(tmp_path)
    assert caught.value.exit_code == 3
    assert str(caught.value.facts["path"]).endswith("_journal.json")


def test_empty_folder(tmp_path: Path, database_url: str) -> None:
    """An empty folder (a build that forgot to copy the migrations) is refused before connecting."""
    empty = tmp_path / "drizzle"
    empty.mkdir()
    result = run_entrypoint([], url=database_url, folder=empty)
    assert result.returncode == 3, output_of(result)
    assert output_of(result).startswith(f"❌ No meta/_journal.json in {empty}")
    assert query(database_url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'drizzle'") == [(0,)]
