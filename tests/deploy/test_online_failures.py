"""A validation that fails on existing rows, in a migration applied in parts: one ❌ line, a resumable state.

Each migration is drizzle-kit's own; one row breaks the new constraint (a foreign key to a missing user, a
negative `points`, a NULL `last_name`, a duplicate key, a NULL in a primary key). The deploy stops with exit
6 and one line that names the constraint, gives a query that lists the offending rows, says what is
committed and what is left; the ledger is untouched. Deploying again before the rows are fixed fails the same
way without sending a committed part again; once they are fixed, the next deploy resumes and ends where
drizzle-orm ends. A stored plan whose file was edited, or whose committed work is gone, stops with exit 26.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests.deploy.online_support import (
    ONLINE,
    PROGRESS,
    assert_as_drizzle_left_it,
    hashes,
)
from tests.support import assert_one_error, output_of, query, run_entrypoint


class Bad(NamedTuple):
    """A row that breaks a scenario's constraint, what the ❌ line must say, and how to fix it."""

    insert: str
    says: str  # in the ❌ line: the constraint, and what stays committed
    found: int  # rows the line's query lists
    fix: str


BAD = {
    "foreign-key": Bad(
        "INSERT INTO posts (id, author_id, title) VALUES (900001, 999999, 'orphan')",
        "VALIDATE CONSTRAINT posts_author_id_users_id_fk on posts found rows that break it. Find them with: ",
        1,
        "DELETE FROM posts WHERE id = 900001",
    ),
    "check": Bad(
        "INSERT INTO users (id, email, points) VALUES (900001, 'neg@example.com', -5)",
        "VALIDATE CONSTRAINT users_points_positive on users found rows that break it. Find them with: ",
        1,
        "DELETE FROM users WHERE id = 900001",
    ),
    "not-null": Bad(
        "INSERT INTO users (id, email, last_name) VALUES (900001, 'anon@example.com', NULL)",
        "(no NULL in users.last_name, for SET NOT NULL) found rows that break it. Find them with: ",
        1,
        "UPDATE users SET last_name = 'X' WHERE id = 900001",
    ),
    "unique": Bad(
        "INSERT INTO users (id, email, role) VALUES (900001, 'u1@example.com', 'user')",
        'could not create unique index "users_email_role_unique"',
        1,
        "DELETE FROM users WHERE id = 900001",
    ),
    "unique-index": Bad(
        "INSERT INTO users (id, email) VALUES (900001, 'u2@example.com')",
        'could not create unique index "users_email_idx"',
        1,
        "DELETE FROM users WHERE id = 900001",
    ),
    "primary-key": Bad(
        "INSERT INTO members (user_id, group_id) VALUES (7, NULL)",
        "(no NULL in user_id, group_id, for the primary key members_user_id_group_id_pk) found rows that break it",
        1,
        "DELETE FROM members WHERE group_id IS NULL",
    ),
}
# What stays committed when the check fails, as the ❌ line says it.
COMMITTED = {
    "foreign-key": "part 1 is committed (transaction: statement 1 (1 NOT VALID)); left: 2. VALIDATE",
    "check": "part 1 is committed (transaction: statement 1 (1 NOT VALID)); left: 2. VALIDATE",
    "not-null": "part 1 is committed (transaction: statement 1 (1 as a NOT VALID check)); left: 2. VALIDATE",
    "unique": "no part is committed; left: 1. CREATE INDEX CONCURRENTLY users_email_role_unique on users",
    "unique-index": "builds its indexes one at a time, outside a transaction: none of its indexes was built yet",
    "primary-key": "part 1 is committed (transaction: statement 1 (1 as a NOT VALID check)); left: 2. VALIDATE",
}


def _query_in(line: str) -> str:
    for lead in ("Find them with: ", "Find the rows sharing a key with: "):
        if lead in line:
            return line.split(lead, 1)[1].split(";", 1)[0]
    pytest.fail(f"no query in {line}")


@pytest.mark.parametrize("scenario", sorted(BAD))
def test_a_failed_validation_names_the_rows_and_the_next_deploy_resumes(
    *,
    scenario: str,
    online_migrations: Callable[[str], Path],
    online_copies: Callable[[], str],
    online_dumps: Callable[..., Any],
    pg_server: Any,
) -> None:
    """Exit 6, one ❌ line (the constraint, the rows' query, committed and left); fixed rows, and it resumes."""
    bad = BAD[scenario]
    folder, url = online_migrations(scenario), online_copies()
    query(url, bad.insert)
    before = hashes(url)
    for attempt in (1, 2):  # the second attempt resumes the stored plan: the same failure, nothing sent twice
        result = run_entrypoint([], url=url, folder=folder, **ONLINE)
        out = output_of(result)
        assert result.returncode == 6, out
        line = assert_one_error(out)
        assert line.startswith("❌ Migration failed: "), line
        assert bad.says in line, line
        assert COMMITTED[scenario] in line, line
        advice = "remove the duplicates, then redeploy" if "unique" in scenario else "fix those rows, then redeploy"
        assert line.endswith(advice), line
        assert len(query(url, _query_in(line))) == bad.found
        assert hashes(url) == before
        assert query(url, "SELECT count(*) FROM pg_index WHERE NOT indisvalid") == [(0,)]
        if attempt == 2 and "part 1 is" in COMMITTED[scenario]:
            assert "⏯️  0001_" in out and "part 1/" not in out, out
    assert query(url, f"SELECT count(*) FROM {PROGRESS}")[0][0] > 0
    query(url, bad.fix)
    fixed = run_entrypoint([], url=url, folder=folder, **ONLINE)
    assert fixed.returncode == 0, output_of(fixed)
    assert_as_drizzle_left_it(url, scenario, folder, pg_server, online_dumps)


def test_a_stopped_migration_whose_file_changed_is_refused(
    online_migrations: Callable[[str], Path], online_copies: Callable[[], str], tmp_path: Path
) -> None:
    """A plan stored for the file as it was: an edited file stops the deploy (exit 26), nothing more applied."""
    import shutil

    folder, url = online_migrations("foreign-key"), online_copies()
    query(url, BAD["foreign-key"].insert)
    assert run_entrypoint([], url=url, folder=folder, **ONLINE).returncode == 6
    edited = tmp_path / "drizzle"
    shutil.copytree(folder, edited)
    sql = next(p for p in sorted(edited.glob("0001_*.sql")))
    sql.write_bytes(sql.read_bytes() + b"\n-- edited after the stop\n")
    stored = query(url, f"SELECT part, done_at IS NOT NULL FROM {PROGRESS} ORDER BY part")
    result = run_entrypoint([], url=url, folder=edited, **ONLINE)
    out = output_of(result)
    assert result.returncode == 26, out
    line = assert_one_error(out)
    assert line.startswith(
        "❌ 0001_foreign_key was stopped after part 1 of 2 by an earlier deploy, and its file has changed since (hash "
    ), line
    assert "Restore the file as it was, and the next deploy finishes it" in line, line
    assert query(url, f"SELECT part, done_at IS NOT NULL FROM {PROGRESS} ORDER BY part") == stored
    status = run_entrypoint(["status"], url=url, folder=edited, **ONLINE)
    assert "⚠️  The next deploy would stop before applying anything: 0001_foreign_key was stopped" in output_of(status)


def test_a_committed_part_the_catalogue_no_longer_shows_stops_the_deploy(
    online_migrations: Callable[[str], Path], online_copies: Callable[[], str]
) -> None:
    """The NOT VALID foreign key part 1 committed, dropped by hand: the deploy stops (exit 26), never guessing."""
    folder, url = online_migrations("foreign-key"), online_copies()
    query(url, BAD["foreign-key"].insert)
    assert run_entrypoint([], url=url, folder=folder, **ONLINE).returncode == 6
    query(url, BAD["foreign-key"].fix)
    query(url, "ALTER TABLE posts DROP CONSTRAINT posts_author_id_users_id_fk")
    result = run_entrypoint([], url=url, folder=folder, **ONLINE)
    out = output_of(result)
    assert result.returncode == 26, out
    assert assert_one_error(out).startswith(
        "❌ 0001_foreign_key was applied in part by an earlier deploy (part 1 of 2 committed), and the database no "
        "longer shows what part 1 did: constraint posts_author_id_users_id_fk on posts expected, missing found. "
    )
    assert query(url, "SELECT count(*) FROM pg_constraint WHERE conname = 'posts_author_id_users_id_fk'") == [(0,)]
