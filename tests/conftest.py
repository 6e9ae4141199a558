"""Shared test configuration: the PostgreSQL and S3 fixtures (tests/fix_pg.py, tests/fix_s3.py), the support plugin."""

pytest_plugins = ["tests.fix_pg", "tests.fix_s3", "tests.support", "tests.fix_online"]
