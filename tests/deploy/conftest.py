"""What drizzle-orm leaves after each online DDL scenario, made once a session (the database: tests/fix_online.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.postgres import create_database, drop_database
from tests.deploy.online_support import hashes, unique_name
from tests.drizzle_ref import drizzle_migrate
from tests.fix_pg import unique_db_name
from tests.support import schema_dump


@pytest.fixture(scope="session")
def online_dumps(
    online_migrations: Callable[[str], Path], online_filled: str, pg_server: Any, admin_url: str
) -> Callable[[str], tuple[str, list[tuple[Any, ...]]]]:
    """`of(scenario)`: `pg_dump -s` and the ledger (hash, created_at) after drizzle-orm applies it (once a session)."""
    found: dict[str, tuple[str, list[tuple[Any, ...]]]] = {}

    def of(scenario: str) -> tuple[str, list[tuple[Any, ...]]]:
        if scenario not in found:
            name = unique_db_name(f"drizzle_{scenario}")
            create_database(admin_url, name, template=unique_name(online_filled))
            url = pg_server.url(name)
            try:
                result = drizzle_migrate(url, online_migrations(scenario))
                assert result.returncode == 0, result.stderr
                found[scenario] = (schema_dump(Path(pg_server.bin("pg_dump")), url), hashes(url))
            finally:
                drop_database(admin_url, name)
        return found[scenario]

    return of
