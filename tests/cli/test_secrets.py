"""Secrets in what the entrypoint prints: a password is never echoed, and scrubbing one never mangles the lines.

Every run through `run_entrypoint` is also checked for a leaked password (tests/support.py); these are
the cases where the password hides somewhere unusual, or is a word the lines themselves contain.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.drizzle_ref import EXAMPLE_MIGRATIONS
from tests.support import output_of, run_entrypoint


def test_a_password_in_the_query_string_is_never_printed(database_url: str, pg_server: Any) -> None:
    """`?password=` (which libpq accepts) is a secret too: a mistyped flag echoing the URL prints it in no format."""
    secret = "qu3ry-s3cret"
    dbname = database_url.rsplit("/", 1)[1]
    url = pg_server.url(dbname, password=False) + f"?password={secret}"
    for log_format in ("console", "json"):
        result = run_entrypoint([f"--databse-url={url}"], url=None, LOG_FORMAT=log_format)
        assert result.returncode == 2, output_of(result)
        assert secret not in output_of(result)
        assert "***" in output_of(result)


@pytest.mark.parametrize("password", ["drizzle", "migrations", "info"])
def test_a_common_word_as_password_leaves_the_lines_intact(password: str, database_url: str, role_factory: Any) -> None:
    """Passwords that are words of the lines: templates keep their words, JSON keeps `level`."""
    url = role_factory(password)
    console = run_entrypoint([], url=url, folder=EXAMPLE_MIGRATIONS, check_secrets=False)
    assert console.returncode == 0, console.stdout
    assert "\n🚀 Running Drizzle migrations...\n" in console.stdout
    assert f"📁 Migrations folder: {EXAMPLE_MIGRATIONS}\n" in console.stdout
    result = run_entrypoint([], url=url, folder=EXAMPLE_MIGRATIONS, LOG_FORMAT="json", check_secrets=False)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert {record["level"] for record in records} == {"info"}
    assert any(record["event"] == "migrate.start" and "migrations" in record["message"] for record in records)
