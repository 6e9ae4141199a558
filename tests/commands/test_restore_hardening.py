"""The third hostile run's `restore` cases (issue 24), against a real server with the suite's client tools.

The dumps are the deploy's own (BACKUP_DIR). Each refusal is one `❌` line: exit 22 when nothing was changed,
23 when the restore stands but a check after it failed, 21 when DEPLOY_DEADLINE passed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.drizzle_ref import drizzle_migrate
from tests.folders import add_custom, generated_folder
from tests.support import ledger, output_of, query, run_entrypoint, suite_pg_dump

pytestmark = pytest.mark.usefixtures("suite_pg_tools")


def _restore(url: str, dump: Path, folder: Path, *args: str, **env: str) -> Any:
    """`python -m entrypoint restore --yes DUMP` with the suite's client tools."""
    return run_entrypoint(
        ["restore", "--yes", str(dump), *args, "--pg-dump", suite_pg_dump()], url=url, folder=folder, **env
    )


def _backed_up(url: str, folder: Path, tmp_path: Path, **env: str) -> Path:
    """Deploy FOLDER with BACKUP_DIR: the dump it took before its first change."""
    backups = tmp_path / "backups"
    deploy = run_entrypoint([], url=url, folder=folder, BACKUP_DIR=str(backups), PG_DUMP=suite_pg_dump(), **env)
    assert deploy.returncode == 0, output_of(deploy)
    (dump,) = backups.glob("*.dump")
    return dump


# --------------------------------------------------------------------------
# Item 16: a schema whose name has a space.


def test_a_ledger_schema_with_a_space_is_kept_as_a_schema_that_exists(database_url: str, tmp_path: Path) -> None:
    """MIGRATIONS_SCHEMA="my ledger": the restore keeps that schema (and the audit table the repair made in it)."""
    project = tmp_path / "app"
    folder = generated_folder(project, [])
    assert drizzle_migrate(database_url, folder, schema="my ledger").returncode == 0
    add_custom(project, "nick", 'ALTER TABLE "users" ADD COLUMN "nick" text;')
    query(
        database_url, 'UPDATE "my ledger".__drizzle_migrations SET created_at = created_at - 1'
    )  # drift: the sync repairs it
    env = {"MIGRATIONS_SCHEMA": "my ledger"}
    dumped_ledger = ledger(database_url, schema="my ledger")
    dump = _backed_up(database_url, folder, tmp_path, **env)
    assert query(database_url, 'SELECT count(*) FROM "my ledger".__drizzle_migrations_audit') == [(1,)]

    result = _restore(database_url, dump, folder, **env)
    assert result.returncode == 0, output_of(result)
    assert ledger(database_url, schema="my ledger") == dumped_ledger
    assert query(database_url, 'SELECT count(*) FROM "my ledger".__drizzle_migrations_audit') == [(1,)]
    assert query(database_url, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'nick'") == [(0,)]
