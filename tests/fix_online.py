"""The online DDL's database and drizzle-kit migrations, made once a session for tests/db and tests/deploy.

The schema, rows and scenarios are tests/db/test_online_rewrites.py's (tests/deploy/online_support.py says more).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.postgres import create_database, drop_database
from tests.db.test_online_rewrites import BASE, FILL, SCENARIOS
from tests.drizzle_ref import drizzle_migrate
from tests.fix_pg import unique_db_name
from tests.folders import generated_folder, regenerate
from tests.support import clone_database, query


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
