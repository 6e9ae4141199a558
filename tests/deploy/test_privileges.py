"""What the database lets the deploy's user do: enough is fine, too little is exit 16 naming what is missing, nothing changed."""

from __future__ import annotations

from typing import Any

from tests.drizzle_ref import EXAMPLE_MIGRATIONS, drizzle_migrate
from tests.support import assert_one_error, assert_untouched, output_of, query, run_entrypoint


def test_no_create_on_the_database_with_the_ledger_in_place(database_url: str, role_factory: Any) -> None:
    """The ledger exists and nothing is pending: a user without CREATE on the database deploys fine."""
    url = role_factory("s3cret-user", privileges="CONNECT")
    assert drizzle_migrate(database_url, EXAMPLE_MIGRATIONS).returncode == 0
    query(database_url, "GRANT USAGE ON SCHEMA drizzle TO " + url.split("//")[1].split(":")[0])
    query(database_url, "GRANT SELECT ON ALL TABLES IN SCHEMA drizzle TO " + url.split("//")[1].split(":")[0])
    result = run_entrypoint([], url=url, folder=EXAMPLE_MIGRATIONS)
    assert result.returncode == 0, output_of(result)


def test_no_create_on_the_database_without_a_ledger_names_the_privilege(
    database_url: str, role_factory: Any, pg_server: Any
) -> None:
    """The ledger must be created and cannot be: exit 16, the privilege named, nothing changed."""
    url = role_factory("s3cret-user", privileges="CONNECT")
    with assert_untouched(database_url, pg_server.bin("pg_dump")):
        result = run_entrypoint([], url=url, folder=EXAMPLE_MIGRATIONS)
    assert result.returncode == 16, output_of(result)
    line = assert_one_error(output_of(result))
    assert "does not exist yet and this user cannot create it" in line
    assert "CREATE on database" in line


def test_a_read_only_role_is_said_up_front(database_url: str, role_factory: Any, pg_server: Any) -> None:
    """default_transaction_read_only: the deploy and its dry run both say so (exit 16), nothing changed."""
    url = role_factory("s3cret-ro", "SET default_transaction_read_only = on")
    with assert_untouched(database_url, pg_server.bin("pg_dump")):
        for args in (["--dry-run"], []):
            result = run_entrypoint(args, url=url, folder=EXAMPLE_MIGRATIONS)
            assert result.returncode == 16, output_of(result)
            assert "The database is read-only for this session" in assert_one_error(output_of(result))
