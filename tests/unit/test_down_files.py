"""Down files in the folder (`journal.read_down`): where each layout keeps them, and that drizzle-orm's reading ignores them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from entrypoint.errors import JournalError
from entrypoint.journal import down_path, read_down, read_journal
from tests.drizzle_ref import EXAMPLE_MIGRATIONS
from tests.drizzle_ref_v1 import V1_MIGRATIONS


def test_a_classic_down_file_sits_beside_its_migration(tmp_path: Path) -> None:
    """`<tag>.down.sql`: read and split like a migration, and not listed as a file no entry names."""
    folder = shutil.copytree(EXAMPLE_MIGRATIONS, tmp_path / "drizzle")
    (folder / "0011_performance_indexes.down.sql").write_text(
        'DROP INDEX "idx_actions_points";--> statement-breakpoint\nDROP INDEX "idx_users_role";\n'
    )
    (folder / "9999_orphan.down.sql").write_text("SELECT 1;")
    journal = read_journal(folder)
    last, before = journal.migrations[-1], journal.migrations[-2]
    down = read_down(journal, last)
    assert down is not None
    assert down.statements == (b'DROP INDEX "idx_actions_points";', b'\nDROP INDEX "idx_users_role";\n')
    assert (down.tag, down.when) == (last.tag, last.when)
    assert read_down(journal, before) is None
    assert journal.unlisted == ("9999_orphan.down.sql",)  # a down file of no entry is still unlisted


def test_a_folder_layout_down_file_is_down_sql(tmp_path: Path) -> None:
    """drizzle-kit 1.0: `<folder>/down.sql` beside `migration.sql`."""
    folder = shutil.copytree(V1_MIGRATIONS, tmp_path / "drizzle")
    journal = read_journal(folder)
    first = journal.migrations[0]
    assert down_path(journal, first) == folder / first.tag / "down.sql"
    (folder / first.tag / "down.sql").write_text('DROP TABLE "users";')
    down = read_down(journal, first)
    assert down is not None
    assert down.statements == (b'DROP TABLE "users";',)
    assert read_journal(folder).migrations == journal.migrations  # the layout's reader does not see it


def test_an_unreadable_down_file_is_a_broken_folder(tmp_path: Path) -> None:
    """A down file that is not UTF-8 text: exit 3, as a migration file would be."""
    folder = shutil.copytree(EXAMPLE_MIGRATIONS, tmp_path / "drizzle")
    (folder / "0011_performance_indexes.down.sql").write_bytes(b"DROP INDEX \xff;")
    journal = read_journal(folder)
    with pytest.raises(JournalError) as raised:
        read_down(journal, journal.migrations[-1])
    assert "is not valid UTF-8" in raised.value.message
