"""The shared assertions themselves (tests/support.py): each one fails when it should."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import assert_one_error, assert_untouched, error_lines, ledger, query, run_entrypoint


def test_assert_untouched_notices_schema_ledger_and_data_changes(database_url: str, pg_server) -> None:
    """A new column, a new ledger row, or (with data) a changed row each fail it; a read-only block passes."""
    pg_dump = pg_server.bin("pg_dump")
    query(
        database_url,
        "CREATE TABLE t (x int); CREATE SCHEMA drizzle; "
        "CREATE TABLE drizzle.__drizzle_migrations (id serial PRIMARY KEY, hash text NOT NULL, created_at bigint)",
    )
    with assert_untouched(database_url, pg_dump, data=True):
        query(database_url, "SELECT * FROM t")
    for change, data in (
        ("ALTER TABLE t ADD COLUMN y int", False),
        ("INSERT INTO drizzle.__drizzle_migrations (hash) VALUES ('h')", False),
        ("INSERT INTO t VALUES (1)", True),
    ):
        with (
            pytest.raises(AssertionError, match="the database changed"),
            assert_untouched(database_url, pg_dump, data=data),
        ):
            query(database_url, change)


def test_assert_one_error_wants_exactly_one() -> None:
    """It returns the one ❌ line, and fails on none or two."""
    assert assert_one_error("🔄 ok\n❌ Broken: fix it\n") == "❌ Broken: fix it"
    for output in ("🔄 ok\n", "❌ one\n❌ two\n"):
        with pytest.raises(AssertionError):
            assert_one_error(output)


def test_error_lines_are_the_lines_that_start_with_the_mark() -> None:
    """Only lines starting with ❌, in order; a ❌ inside a line is not one."""
    assert error_lines("🔄 ok\n") == []
    assert error_lines("❌ one\n   quoted ❌ not a line\n❌ two") == ["❌ one", "❌ two"]


def test_users_app_is_applied_seeded_and_leaves_its_customs_pending(
    database_url: str, users_app: Callable[..., Path]
) -> None:
    """The schema's migration applied by drizzle-orm, the rows in, each custom migration generated and pending."""
    folder = users_app(
        ("nickname", 'ALTER TABLE "users" ADD COLUMN "nickname" text;'),
        rows=("INSERT INTO users (email) VALUES ('a@example.com')",),
    )
    assert [path.stem.split("_", 1)[1] for path in sorted(folder.glob("*.sql"))] == ["init", "nickname"]
    assert len(ledger(database_url)) == 1
    assert query(database_url, "SELECT email FROM users") == [("a@example.com",)]
    status = run_entrypoint(["status", "--json"], url=database_url, folder=folder)
    assert [entry["state"] for entry in json.loads(status.stdout)["entries"]] == ["applied", "pending"]
