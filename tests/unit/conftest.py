"""tests/unit/ needs no server (tests/README.md): a test here that asks for one fails before it starts it."""

from __future__ import annotations

import pytest

# The fixtures that start a server (PostgreSQL, pgbouncer, the S3 one) or stand on one.
SERVER_FIXTURES = frozenset(
    {
        "pg_server",
        "admin_url",
        "database_factory",
        "database_url",
        "cluster_factory",
        "pgbouncer",
        "pgbouncer_url",
        "production_db",
        "role_factory",
        "users_app",
        "suite_pg_tools",
        "s3_server",
        "s3_bucket",
        "tampering_proxy",
    }
)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail a unit test that uses a server fixture, naming it and where the test belongs instead."""
    used = SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
    if used:
        pytest.fail(
            f"{item.nodeid} uses {', '.join(sorted(used))}: tests/unit is for tests that need no server; "
            "move it to the folder of what it exercises (tests/README.md)",
            pytrace=False,
        )
