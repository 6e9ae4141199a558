"""Shared test configuration; the PostgreSQL fixtures live in tests/fix_pg.py."""

pytest_plugins = ["tests.fix_pg"]
