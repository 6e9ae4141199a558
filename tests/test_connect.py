"""Connecting: waiting for a database that is not up yet, failing clearly when it never is, never leaking the password."""

from __future__ import annotations

import time
from urllib.parse import quote

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
