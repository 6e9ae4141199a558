"""Shared test configuration: the PostgreSQL fixtures (tests/fix_pg.py) and the support plugin (tests/support.py)."""

pytest_plugins = ["tests.fix_pg", "tests.support"]
