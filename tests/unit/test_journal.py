"""Reading a drizzle-kit folder in-process: hashes and statements exactly as drizzle-orm's readMigrationFiles.

The deploy refusing a broken folder (exit 3, before any connection) is tests/deploy/test_folder.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from entrypoint.errors import JournalError
from entrypoint.journal import read_journal
from harness.production import copy_folder
from tests.drizzle_ref import EXAMPLE_MIGRATIONS, REFERENCE_DIR
from tests.folders import edit_sql


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


def test_hashes_and_statements_match_drizzle(tmp_path: Path) -> None:
    """BOM, CRLF and non-ASCII files hash and split exactly as drizzle-orm 0.45.4 reads them."""
    folder = copy_folder(EXAMPLE_MIGRATIONS, tmp_path / "drizzle")
    edit_sql(folder, 0, lambda b: b"\xef\xbb\xbf" + b)
    edit_sql(folder, 1, lambda b: b.replace(b"\n", b"\r\n"))
    edit_sql(folder, 2, lambda b: b + "\n-- déploiement « café » ✓ 🚀\n".encode())
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
    edit_sql(folder, 0, lambda b: b + b"\n-->statement-breakpoint\nSELECT 1;\n--> STATEMENT-BREAKPOINT\nSELECT 2;")
    before = read_journal(EXAMPLE_MIGRATIONS).migrations[0].statements
    assert len(read_journal(folder).migrations[0].statements) == len(before)


def test_journal_error_carries_the_path(tmp_path: Path) -> None:
    """JournalError names the file that is wrong."""
    with pytest.raises(JournalError) as caught:
        read_journal(tmp_path)
    assert caught.value.exit_code == 3
    assert str(caught.value.facts["path"]).endswith("_journal.json")
