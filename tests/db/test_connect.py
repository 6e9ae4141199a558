"""Connecting: waiting for a database that is not up yet (or full), failing clearly when it never is or cannot be.

Never longer than CONNECT_TIMEOUT, at once for what waiting cannot fix (a refused login, a bad parameter),
never leaking the password, and our own queries safe from a role's statement_timeout.
"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import quote

import psycopg

from harness.production import journal_entries
from tests.drizzle_ref import EXAMPLE_MIGRATIONS
from tests.support import assert_one_error, ledger, output_of, run_entrypoint, start_entrypoint


def test_waits_for_a_database_that_starts_late(cluster_factory) -> None:
    """The database comes up 5 s after the entrypoint starts: it retries, then migrates."""
    cluster = cluster_factory()
    url = cluster.url("postgres")
    proc = start_entrypoint([], url=url, folder=EXAMPLE_MIGRATIONS, CONNECT_TIMEOUT="60")
    time.sleep(5)
    assert proc.poll() is None
    cluster.start()
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out
    assert "⏳ Database not reachable yet (" in out
    assert len(ledger(url)) == len(journal_entries(EXAMPLE_MIGRATIONS))
    assert cluster.password not in out
    assert quote(cluster.password, safe="") not in out


def test_unreachable_database_exits_4_after_connect_timeout(cluster_factory, tmp_path) -> None:
    """Nothing listening: retried for CONNECT_TIMEOUT, then one ❌ line, exit 4, app not started."""
    cluster = cluster_factory()
    marker = tmp_path / "started"
    started = time.monotonic()
    result = run_entrypoint(
        ["--", "touch", str(marker)], url=cluster.url("postgres"), folder=EXAMPLE_MIGRATIONS, CONNECT_TIMEOUT="3"
    )
    out = output_of(result)
    assert result.returncode == 4, out
    assert time.monotonic() - started >= 3
    assert out.splitlines()[-1].startswith("❌ Database unreachable after 3s: ")
    assert_one_error(out)
    assert "Traceback" not in out
    assert not marker.exists()
    assert cluster.password not in out


def test_wrong_password_fails_fast_without_printing_it(pg_server, database_url) -> None:
    """A rejected password is not retried for CONNECT_TIMEOUT and is never printed."""
    secret = "wr0ng-p@ss/w%rd"
    dbname = database_url.rsplit("/", 1)[1]
    url = pg_server.url(dbname, password=False).replace("postgres@", f"postgres:{quote(secret, safe='')}@", 1)
    for log_format in ("console", "json"):
        started = time.monotonic()
        result = run_entrypoint([], url=url, folder=EXAMPLE_MIGRATIONS, LOG_FORMAT=log_format, CONNECT_TIMEOUT="30")
        out = output_of(result)
        assert result.returncode == 4, out
        assert time.monotonic() - started < 15
        assert "Database refused the connection" in out
        assert secret not in out
        assert quote(secret, safe="") not in out


def test_malformed_url_is_a_usage_error_without_the_password() -> None:
    """A URL libpq cannot parse: exit 2, and the text around the password is not echoed."""
    result = run_entrypoint([], url="postgresql://u:hunter2@host:notaport/db", folder=EXAMPLE_MIGRATIONS)
    out = output_of(result)
    assert result.returncode == 2, out
    assert "hunter2" not in out
    assert out.startswith("❌ DATABASE_URL is not a valid PostgreSQL connection string")


def test_password_in_argv_is_scrubbed_from_usage_errors() -> None:
    """A mistyped flag carrying a URL is refused without echoing the password."""
    result = run_entrypoint(["--databse-url=postgresql://u:s3cr3tpw@h/db"], url=None)
    out = output_of(result)
    assert result.returncode == 2
    assert "s3cr3tpw" not in out
    assert out.startswith("❌ ")


def test_a_full_server_is_waited_for(database_url: str, role_factory: Any) -> None:
    """A full server ("too many connections", after the password, no SQLSTATE) is retried, not a rejected login."""
    url = role_factory("s3cret-full", "CONNECTION LIMIT 1")
    holder = psycopg.connect(url)
    threading.Timer(3, holder.close).start()
    result = run_entrypoint([], url=url, folder=EXAMPLE_MIGRATIONS, CONNECT_TIMEOUT="30")
    assert result.returncode == 0, output_of(result)
    assert "⏳ Database not reachable yet (" in result.stdout


def test_a_bad_connection_parameter_fails_at_once(database_url: str) -> None:
    """`?sslmode=bogus` is permanent: exit 2 at once, naming the parameter, never retried for CONNECT_TIMEOUT."""
    started = time.monotonic()
    result = run_entrypoint([], url=database_url + "?sslmode=bogus", folder=EXAMPLE_MIGRATIONS, CONNECT_TIMEOUT="30")
    assert result.returncode == 2, output_of(result)
    assert 'invalid sslmode value: "bogus"' in assert_one_error(output_of(result))
    assert time.monotonic() - started < 10


def test_the_whole_wait_stays_within_connect_timeout(cluster_factory: Any) -> None:
    """CONNECT_TIMEOUT=5 against nothing listening: about 5 s in all, never a last back-off past the deadline."""
    cluster = cluster_factory()
    started = time.monotonic()
    result = run_entrypoint([], url=cluster.url("postgres"), folder=EXAMPLE_MIGRATIONS, CONNECT_TIMEOUT="5")
    elapsed = time.monotonic() - started
    assert result.returncode == 4, output_of(result)
    assert 5 <= elapsed < 7


def test_a_roles_statement_timeout_does_not_cancel_our_own_queries(database_url: str, role_factory: Any) -> None:
    """A role with statement_timeout=1ms: the deploy, status and verify still run their own queries."""
    url = role_factory("s3cret-timeout", "SET statement_timeout = '1ms'")
    for args in ([], ["status"], ["verify"]):
        result = run_entrypoint(args, url=url, folder=EXAMPLE_MIGRATIONS)
        assert result.returncode == 0, (args, output_of(result))
