"""The third hostile run's `baseline` cases (issue 24), against a real server: what it records, and what it says.

Each refusal is one `❌` line with a documented exit code; what it says about the next deploy is held against
what the next deploy then does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support import assert_one_error, assert_untouched, output_of, query, run_entrypoint

# --------------------------------------------------------------------------
# Item 17: a refused write is classified by its SQLSTATE.


def test_a_ledger_that_drizzle_could_not_fill_is_named_not_a_missing_grant(
    database_url: str, pg_server: Any, users_app: Callable[..., Path]
) -> None:
    """An empty ledger with an extra NOT NULL column: exit 16 naming the table's shape (23502), never a grant."""
    folder = users_app()
    query(
        database_url,
        "DROP TABLE drizzle.__drizzle_migrations; CREATE TABLE drizzle.__drizzle_migrations "
        "(id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint, deployed_by text NOT NULL)",
    )
    with assert_untouched(database_url, pg_server.bin("pg_dump")):
        result = run_entrypoint(["baseline"], url=database_url, folder=folder)
    assert result.returncode == 16, output_of(result)
    line = assert_one_error(output_of(result))
    assert 'null value in column "deployed_by"' in line
    assert "(SQLSTATE 23502)" in line
    assert "is not the table drizzle-orm writes (id, hash, created_at)" in line
    assert "grant" not in line.lower()
