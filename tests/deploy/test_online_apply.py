"""The online apply end to end: each rewrite under a writer, the dry run and status, ONLINE_DDL and its alias.

Each migration is drizzle-kit's own output; the old release writes to users and posts by primary key
throughout. The end state is drizzle-orm's own (its `pg_dump -s`, its ledger), and drizzle-orm's migrator
is a no-op afterwards. The writes are checked structurally: the statements a blocked write waited for are
recorded, and no VALIDATE or CONCURRENTLY build is ever among them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from entrypoint.core import online
from tests.db.test_online_rewrites import SCENARIOS
from tests.deploy.online_support import (
    ONLINE,
    PROGRESS,
    Writer,
    assert_as_drizzle_left_it,
    hashes,
    wait_until,
)
from tests.support import assert_one_error, output_of, query, run_entrypoint

ONLINE_SCENARIOS = sorted(name for name, (_, steps) in SCENARIOS.items() if steps)


@pytest.mark.parametrize("scenario", ONLINE_SCENARIOS)
def test_each_rewrite_applies_online_while_the_old_release_writes(
    scenario: str,
    online_migrations: Callable[[str], Path],
    online_copies: Callable[[], str],
    online_dumps: Callable[..., Any],
    pg_server: Any,
) -> None:
    """The migration runs in parts under a writer that never waits for a VALIDATE or a build; drizzle-orm's end."""
    folder, url = online_migrations(scenario), online_copies()
    with Writer(url) as writer:
        result = run_entrypoint([], url=url, folder=folder, **ONLINE)
    out = output_of(result)
    assert result.returncode == 0, out
    assert not writer.errors, writer.errors
    assert writer.writes > 0
    assert not [q for q in writer.blocked_by if "VALIDATE" in q or "CONCURRENTLY" in q], writer.blocked_by
    assert "is built online" in out or "is applied online" in out, out
    assert_as_drizzle_left_it(url, scenario, folder, pg_server, online_dumps)


def test_the_writer_sees_what_blocks_it(online_copies: Callable[[], str]) -> None:
    """The control: a lock that stops writes is recorded, with the statement that holds it."""
    url = online_copies()
    with Writer(url) as writer, psycopg.connect(url) as holder:
        holder.execute("LOCK TABLE users IN SHARE MODE /* a plain build */")
        wait_until("a write waits", lambda: bool(writer.blocked_by))
        holder.rollback()
    assert any("a plain build" in q for q in writer.blocked_by), writer.blocked_by


ISSUE_PARTS = [
    "      1. transaction: statements 1-4 (1 as a NOT VALID check, 4 NOT VALID)",
    "      2. VALIDATE CONSTRAINT {helper} on users (no NULL in users.last_name, for SET NOT NULL)",
    "      3. SET NOT NULL users.last_name",
    "      4. VALIDATE CONSTRAINT users_referrer_id_users_id_fk on users",
    "      5. CREATE INDEX CONCURRENTLY idx_users_score on users",
    "      6. CREATE INDEX CONCURRENTLY users_email_role_unique on users",
    "      7. ADD CONSTRAINT users_email_role_unique USING INDEX on users",
]


def test_the_dry_run_and_status_say_what_runs_online_and_why(
    online_migrations: Callable[[str], Path], online_copies: Callable[[], str]
) -> None:
    """--dry-run and status (lines and JSON) show each statement online, why (table, live size, threshold), the parts."""
    folder, url = online_migrations("issue-23"), online_copies()
    helper = online.helper_name(None, "users", ("last_name",))
    parts = [line.format(helper=helper) for line in ISSUE_PARTS]
    why = "(users: ~20,000 rows, 1.8 MB ≥ INDEX_BUILD_THRESHOLD 256 kB)"
    for args in (["--dry-run"], ["status"]):
        result = run_entrypoint(args, url=url, folder=folder, **ONLINE)
        lines = output_of(result).splitlines()
        fk = "ADD CONSTRAINT users_referrer_id_users_id_fk FOREIGN KEY"
        assert f"   ⤷ statement 4 ({fk}) NOT VALID, then VALIDATE CONSTRAINT after the commit {why}" in lines, lines
        assert f"   ⤷ statement 5 (CREATE INDEX idx_users_score) built CONCURRENTLY after the commit {why}" in lines
        alone = lines.index(f"   ⤷ 0001_issue_23 runs online in 7 parts, each committing on its own (4 of its "
                            f"statements online; {why[1:-1]}):")  # fmt: skip
        assert lines[alone + 1 : alone + 8] == parts
    document = json.loads(run_entrypoint(["status", "--json"], url=url, folder=folder, **ONLINE).stdout)
    (unit,) = document["units"]
    assert unit["kind"] == "concurrent"
    (planned,) = unit["online"]
    assert [p["kind"] for p in planned["parts"]] == [
        "transaction", "validate", "set-not-null", "validate", "create-index", "create-index", "attach-constraint",
    ]  # fmt: skip
    assert {(s["statement"], s["online"], s["table"], s["rows"], s["threshold"]) for s in planned["statements"]} == {
        (n, True, "users", 20_000, 256 * 1024) for n in (1, 4, 5, 6)
    }
    small = run_entrypoint(["--dry-run"], url=url, folder=folder, INDEX_BUILD_THRESHOLD="1GB")
    held = "as written, in the migration's transaction (users: ~20,000 rows, 1.8 MB < INDEX_BUILD_THRESHOLD 1 GB)"
    assert f"   ⤷ statement 5 (CREATE INDEX idx_users_score) {held}" in output_of(small)
    assert "runs online" not in output_of(small)
    assert query(url, "SELECT to_regclass(%s)", (PROGRESS,)) == [(None,)]


@pytest.mark.parametrize("settings", [{"ONLINE_DDL": "never"}, {"INDEX_BUILD": "transaction"}])
def test_never_applies_exactly_as_drizzle_orm(
    settings: dict[str, str],
    online_migrations: Callable[[str], Path],
    online_copies: Callable[[], str],
    online_dumps: Callable[..., Any],
    pg_server: Any,
) -> None:
    """ONLINE_DDL=never (or INDEX_BUILD=transaction, its alias): one transaction, as written; drizzle-orm's end."""
    folder, url = online_migrations("issue-23"), online_copies()
    dry = output_of(run_entrypoint(["--dry-run"], url=url, folder=folder, **ONLINE, **settings))
    assert "runs online" not in dry and "⤷ statement" not in dry, dry
    result = run_entrypoint([], url=url, folder=folder, **ONLINE, **settings)
    out = output_of(result)
    assert result.returncode == 0, out
    assert "🧱" not in out and "part" not in out, out
    assert_as_drizzle_left_it(url, "issue-23", folder, pg_server, online_dumps)


def test_online_ddl_and_its_alias_must_agree(
    online_migrations: Callable[[str], Path], online_copies: Callable[[], str]
) -> None:
    """ONLINE_DDL=always with INDEX_BUILD=transaction is a contradiction: exit 2, nothing touched."""
    folder, url = online_migrations("issue-23"), online_copies()
    before = hashes(url)
    result = run_entrypoint([], url=url, folder=folder, ONLINE_DDL="always", INDEX_BUILD="transaction")
    assert result.returncode == 2, output_of(result)
    assert assert_one_error(output_of(result)) == (
        "❌ ONLINE_DDL=always and INDEX_BUILD=transaction disagree: INDEX_BUILD is ONLINE_DDL's old name (concurrent "
        "is always, transaction is never). Set ONLINE_DDL only"
    )
    assert hashes(url) == before
    single = run_entrypoint([], url=url, folder=folder, ONLINE_DDL="always", TRANSACTION_MODE="single")
    assert single.returncode == 6, output_of(single)
    assert "(ONLINE_DDL=always runs VALIDATE CONSTRAINT" in assert_one_error(output_of(single))
    assert hashes(url) == before
