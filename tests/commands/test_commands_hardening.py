"""The third hostile run's cases of the operator commands (issue 24): `baseline`, `lint`, `verify`.

Each against a real server (or the folder alone, for `lint` offline). Each refusal is one `❌` line with a
documented exit code; what a command says about the next deploy is held against what the next deploy does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.test_hardening_pass3 import SPLIT_INSIDE
from tests.drizzle_ref import drizzle_migrate
from tests.folders import USERS_SCHEMA, generated_folder, push, regenerate
from tests.support import assert_one_error, assert_untouched, ledger, output_of, query, run_entrypoint

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


# --------------------------------------------------------------------------
# Item 4: a chunk PostgreSQL's scanner rejects is a lint finding, not a crash.


@pytest.mark.parametrize("case", list(SPLIT_INSIDE))
def test_lint_reports_a_chunk_postgresql_rejects(case: str, database_url: str, users_app: Callable[..., Path]) -> None:
    """Offline and against the database: a `syntax-error` danger per half, with PostgreSQL's reason; exit 19, never 70."""
    body, reason = SPLIT_INSIDE[case]
    folder = users_app(("split", body))
    for url in (None, database_url):
        result = run_entrypoint(["lint"], url=url, folder=folder)
        assert result.returncode == 19, output_of(result)
        assert f"🛑 0001_split (statement 1/2) syntax-error: PostgreSQL's parser rejects it ({reason})" in result.stdout
        assert "0001_split (statement 2/2) syntax-error: PostgreSQL's parser rejects it (" in result.stdout
        assert "❌ 2 DDL lint findings at warning or worse" in assert_one_error(output_of(result))
        document = json.loads(run_entrypoint(["lint", "--json"], url=url, folder=folder).stdout)
        split = [(f["statement"], f["rule"], f["severity"]) for f in document["findings"] if f["tag"] == "0001_split"]
        assert split == [(1, "syntax-error", "danger"), (2, "syntax-error", "danger")]


# --------------------------------------------------------------------------
# Item 9: baseline promises nothing the next deploy cannot do.

WITH_POSTS = (
    USERS_SCHEMA.replace(
        "  points: integer('points').notNull().default(0),",
        "  points: integer('points').notNull().default(0),\n  nick: text('nick'),",
    )
    + "\nexport const posts = pgTable('posts', {\n  id: serial('id').primaryKey(),\n  title: text('title').notNull(),\n});\n"
)


def test_baseline_names_the_later_objects_the_next_deploy_would_meet(
    database_factory: Callable[..., str], pg_server: Any, tmp_path: Path
) -> None:
    """A pushed database missing one table: 0000 recorded, and the column of 0001 already there named, not promised.

    What it says is what the deploy then meets (exit 6, `already exists`); its advice (drop them) then works, and
    drizzle-orm finds nothing to do. BASELINE_ON_EMPTY refuses the same database, exit 18, nothing recorded.
    """
    project = tmp_path / "app"
    folder = generated_folder(project, [])
    migration = regenerate(project, WITH_POSTS, "posts").stem
    ours, adopting = database_factory(), database_factory()
    for url, where in ((ours, "ours"), (adopting, "adopting")):
        push(url, tmp_path / where, WITH_POSTS)
        query(url, "DROP TABLE posts")

    result = run_entrypoint(["baseline"], url=ours, folder=folder)
    assert result.returncode == 0, output_of(result)
    lines = result.stdout.splitlines()
    assert (
        f"   ⚠️  Not recorded: 1 migrations from {migration} on, but what they create is partly there already (1 "
        "object), so the next deploy would fail on it (already exists): create what is missing (listed above) and "
        "run baseline again, or drop these first:"
    ) in lines
    assert f"      already there: Column public.users.nick (from {migration})" in lines
    assert not any("which the next deploy will apply" in line for line in lines)
    assert len(ledger(ours)) == 1

    deploy = run_entrypoint([], url=ours, folder=folder)
    assert deploy.returncode == 6, output_of(deploy)
    assert 'column "nick" of relation "users" already exists' in assert_one_error(output_of(deploy))
    query(ours, "ALTER TABLE users DROP COLUMN nick")  # the line's advice: drop what is already there
    assert run_entrypoint([], url=ours, folder=folder).returncode == 0
    assert drizzle_migrate(ours, folder).returncode == 0
    assert len(ledger(ours)) == 2

    with assert_untouched(adopting, pg_server.bin("pg_dump")):
        refused = run_entrypoint([], url=adopting, folder=folder, BASELINE_ON_EMPTY="1")
    assert refused.returncode == 18, output_of(refused)
    assert assert_one_error(output_of(refused)) == (
        "❌ BASELINE_ON_EMPTY would record 1 migrations through 0000_init, but what the later ones create is partly "
        "there already (1 object, listed above), so applying them would fail (already exists). Nothing was changed: "
        "create what is missing (listed above), or drop these first, then redeploy"
    )


# --------------------------------------------------------------------------
# Item 10: unqualified names are where PostgreSQL put them (the search_path), not always in public.


def test_a_pushed_database_in_the_roles_own_schema_is_adopted_and_verified(
    database_url: str, role_factory: Callable[..., str], tmp_path: Path
) -> None:
    """Tables pushed into the role's own schema (`$user` first in its search_path): baseline records, verify passes.

    Before: the deploy said "run baseline", baseline said "looks new, deploy", forever.
    """
    url = role_factory("s3cret-own-schema")
    role = url.split("//", 1)[1].split(":", 1)[0]
    query(database_url, f'CREATE SCHEMA AUTHORIZATION "{role}"')
    folder = generated_folder(tmp_path / "app", [])
    push(url, tmp_path / "push", USERS_SCHEMA)
    assert query(database_url, "SELECT to_regclass(%s) IS NOT NULL", (f'"{role}".users',)) == [(True,)]

    deploy = run_entrypoint([], url=url, folder=folder)
    assert deploy.returncode == 6, output_of(deploy)
    assert "record what it holds with `python -m entrypoint baseline`" in assert_one_error(output_of(deploy))

    adopted = run_entrypoint(["baseline"], url=url, folder=folder)
    assert adopted.returncode == 0, output_of(adopted)
    assert "   ✔ 0000_init: 1 table, 3 columns, 1 index present" in adopted.stdout
    verified = run_entrypoint(["verify"], url=url, folder=folder)
    assert verified.returncode == 0, output_of(verified)
    assert "🎉 Verified: 1 migrations applied, 5 schema objects present" in verified.stdout
    again = run_entrypoint([], url=url, folder=folder)
    assert again.returncode == 0, output_of(again)
    assert "💤 No pending migrations (1 already applied)" in again.stdout
