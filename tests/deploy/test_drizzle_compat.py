"""Held against drizzle-orm 0.45.4's own migrator, on drizzle-kit folders, on real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.drizzle_ref import CUSTOM_MIGRATIONS, EXAMPLE_MIGRATIONS, drizzle_migrate
from tests.support import assert_untouched, ledger, output_of, run_entrypoint, schema_dump

FOLDERS = [pytest.param(EXAMPLE_MIGRATIONS, id="example-app"), pytest.param(CUSTOM_MIGRATIONS, id="custom-sql")]


def _drizzle(url: str, folder: Path, **kw: str) -> None:
    result = drizzle_migrate(url, folder, **kw)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("folder", FOLDERS)
def test_same_schema_and_ledger_as_drizzle(folder: Path, database_factory, pg_server) -> None:
    """On a fresh database, our schema and ledger equal what drizzle-orm produces."""
    ours, theirs = database_factory(), database_factory()
    result = run_entrypoint([], url=ours, folder=folder)
    assert result.returncode == 0, output_of(result)
    _drizzle(theirs, folder)

    pg_dump = pg_server.bin("pg_dump")
    assert schema_dump(pg_dump, ours) == schema_dump(pg_dump, theirs)
    assert [row[1:] for row in ledger(ours)] == [row[1:] for row in ledger(theirs)]
    assert [row[0] for row in ledger(ours)] == [row[0] for row in ledger(theirs)]


@pytest.mark.parametrize("folder", FOLDERS)
def test_drizzle_finds_nothing_to_do_after_us(folder: Path, database_url: str, pg_server) -> None:
    """After our run, drizzle-orm's migrator changes neither the ledger nor the schema."""
    assert run_entrypoint([], url=database_url, folder=folder).returncode == 0
    with assert_untouched(database_url, pg_server.bin("pg_dump")):
        _drizzle(database_url, folder)


@pytest.mark.parametrize("folder", FOLDERS)
def test_we_find_nothing_to_do_after_drizzle(folder: Path, database_url: str) -> None:
    """After drizzle-orm's migrator, we apply nothing and repair nothing."""
    _drizzle(database_url, folder)
    rows = ledger(database_url)
    result = run_entrypoint([], url=database_url, folder=folder)
    out = output_of(result)
    assert result.returncode == 0, out
    assert f"💤 No pending migrations ({len(rows)} already applied)" in out
    assert "✅ Migrations déjà synchronisées" in out
    assert ledger(database_url) == rows


def test_custom_schema_and_table(database_url: str, database_factory) -> None:
    """MIGRATIONS_SCHEMA / MIGRATIONS_TABLE name the same ledger drizzle-orm's options do."""
    theirs = database_factory()
    result = run_entrypoint(
        [], url=database_url, folder=CUSTOM_MIGRATIONS, MIGRATIONS_SCHEMA="ops", MIGRATIONS_TABLE="Schema Log"
    )
    assert result.returncode == 0, output_of(result)
    _drizzle(theirs, CUSTOM_MIGRATIONS, schema="ops", table="Schema Log")
    assert ledger(database_url, "ops", "Schema Log") == ledger(theirs, "ops", "Schema Log")
    again = drizzle_migrate(database_url, CUSTOM_MIGRATIONS, schema="ops", table="Schema Log")
    assert again.returncode == 0, again.stderr
    assert len(ledger(database_url, "ops", "Schema Log")) == len(ledger(theirs, "ops", "Schema Log"))


def test_upgrade_one_release_at_a_time_like_drizzle(tmp_path: Path, database_url: str, database_factory) -> None:
    """Deploying release after release (one more migration each time) ends where drizzle-orm ends."""
    from harness.production import copy_folder, journal_entries

    theirs = database_factory()
    total = len(journal_entries(EXAMPLE_MIGRATIONS))
    for keep in (3, 8, total):
        folder = copy_folder(EXAMPLE_MIGRATIONS, tmp_path / f"release-{keep}", keep=keep)
        result = run_entrypoint([], url=database_url, folder=folder)
        assert result.returncode == 0, output_of(result)
        _drizzle(theirs, folder)
        assert ledger(database_url) == ledger(theirs)
