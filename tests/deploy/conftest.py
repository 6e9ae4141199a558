"""The online DDL's end-to-end tests share one filled database and drizzle-kit's migrations, made once a session.

The schema and rows are tests/db/test_online_rewrites.py's (tests/deploy/online_support.py says more).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.postgres import create_database, drop_database
from tests.db.test_online_rewrites import BASE, FILL, SCENARIOS
from tests.deploy.online_support import hashes, unique_name
from tests.drizzle_ref import drizzle_migrate
from tests.fix_pg import unique_db_name
from tests.folders import generated_folder, regenerate
from tests.support import clone_database, query, schema_dump


@pytest.fixture(scope="session")
def online_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The drizzle-kit project of BASE, generated once a session."""
    project = tmp_path_factory.mktemp("online_apply") / "app"
    generated_folder(project, [], schema=BASE)
    return project


@pytest.fixture(scope="session")
def online_filled(online_project: Path, pg_server: Any, admin_url: str) -> Iterator[str]:
    """A database with BASE applied by drizzle-orm and 20,000 rows in users, posts and members (tags empty)."""
    name = unique_db_name("online_apply_template")
    create_database(admin_url, name)
    url = pg_server.url(name)
    try:
        assert drizzle_migrate(url, online_project / "drizzle").returncode == 0
        for statement in FILL:
            query(url, statement)
        yield url
    finally:
        drop_database(admin_url, name)


@pytest.fixture(scope="session")
def online_migrations(online_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """`make(scenario)`: the folder of a copy of the base project with the scenario's migration generated (once)."""
    made: dict[str, Path] = {}

    def make(scenario: str) -> Path:
        if scenario not in made:
            project = tmp_path_factory.mktemp(scenario) / "app"
            shutil.copytree(online_project, project)
            regenerate(project, SCENARIOS[scenario][0], scenario.replace("-", "_"))
            made[scenario] = project / "drizzle"
        return made[scenario]

    return make


@pytest.fixture
def online_copies(online_filled: str, database_factory: Callable[..., str], admin_url: str) -> Callable[[], str]:
    """`make()`: a new database, a copy of `online_filled`, dropped after the test."""

    def make() -> str:
        url = database_factory()
        clone_database(admin_url, online_filled, url)
        return url

    return make


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
