"""`python -m entrypoint verify`: the runbook's step 6 derived from the migrations, against real PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from entrypoint.core.schema import KINDS
from tests.drizzle_ref import CUSTOM_MIGRATIONS, EXAMPLE_MIGRATIONS, drizzle_migrate
from tests.support import assert_one_error, error_lines, output_of, query, run_entrypoint

VERIFY_FAILED = 13


def _applied(url: str, folder: Any = EXAMPLE_MIGRATIONS) -> None:
    result = drizzle_migrate(url, folder)
    assert result.returncode == 0, result.stderr


def _verify(url: str, folder: Any = EXAMPLE_MIGRATIONS) -> tuple[int, str]:
    result = run_entrypoint(["verify"], url=url, folder=folder)
    return result.returncode, output_of(result)


def test_applied_example_folder_passes(database_url: str) -> None:
    """After drizzle-orm applies the example folder, verify (and --json) exits 0 and counts 0011's 43 indexes."""
    _applied(database_url)
    code, out = _verify(database_url)
    lines = out.splitlines()
    assert code == 0, out
    assert "   ✔ 0011_performance_indexes: 43/43 indexes present" in lines
    assert "✅ Ledger: 12 rows, ids 1..12 without gaps, each hash and created_at matching its journal entry" in lines
    assert lines[-1].startswith("🎉 Verified: 12 migrations applied,")
    assert error_lines(out) == []
    result = run_entrypoint(["verify", "--json"], url=database_url, folder=EXAMPLE_MIGRATIONS)
    assert (result.returncode, json.loads(result.stdout)["ok"]) == (0, True)


def test_dropped_index_is_named(database_url: str) -> None:
    """Dropping one idx_* index fails verify (exit 13) with exactly one ❌ line naming it and its migration."""
    _applied(database_url)
    query(database_url, "DROP INDEX idx_actions_points")
    code, out = _verify(database_url)
    assert code == VERIFY_FAILED, out
    assert "   ✘ 0011_performance_indexes: 42/43 indexes present" in out.splitlines()
    errors = error_lines(out)
    named = [line for line in errors if "idx_actions_points" in line]
    assert named == [
        "❌ Index public.idx_actions_points on public.actions from 0011_performance_indexes is missing (or INVALID)"
    ]
    assert len(errors) == 2
    assert errors[-1].startswith("❌ Verification failed: 1 schema object missing, 0 ledger checks failed.")


def test_renamed_column_is_named(database_url: str) -> None:
    """A column renamed by hand is reported missing under the name its migration gave it."""
    _applied(database_url)
    query(database_url, "ALTER TABLE users RENAME COLUMN phone TO phone_number")
    code, out = _verify(database_url)
    lines = out.splitlines()
    assert code == VERIFY_FAILED, out
    assert "❌ Column public.users.phone from 0004_curvy_sage is missing" in lines
    assert "   ✘ 0004_curvy_sage: 4/5 columns, 1/1 indexes present" in lines


def test_deleted_ledger_row_fails_the_ledger_check(database_url: str) -> None:
    """Deleting a ledger row fails verify: the migration is named as not recorded, and the id gap is shown."""
    _applied(database_url)
    query(database_url, "DELETE FROM drizzle.__drizzle_migrations WHERE id = 5")
    code, out = _verify(database_url)
    lines = out.splitlines()
    assert code == VERIFY_FAILED, out
    assert (
        "❌ Ledger drizzle.__drizzle_migrations: no row with the file's hash and `when` for 1 migration: "
        "0004_curvy_sage" in lines
    )
    assert "❌ Ledger drizzle.__drizzle_migrations: ids 1..4, 6..12 are not numbered without gaps from 0 or 1" in lines
    assert "   ⏭  0004_curvy_sage: not applied, schema not checked" in lines


def test_custom_folder_passes(database_url: str) -> None:
    """The custom folder (a second schema, functions, triggers, a DO block, data) verifies cleanly."""
    _applied(database_url, CUSTOM_MIGRATIONS)
    code, out = _verify(database_url, CUSTOM_MIGRATIONS)
    lines = out.splitlines()
    assert code == 0, out
    assert "   ✔ 0000_odd_wraith: 3/3 tables, 17/17 columns, 1/1 enum types, 2/2 constraints present" in lines
    assert "   ✔ 0003_backfill_slugs: no tables, columns, indexes, enums or constraints to check" in lines
    assert "   ✔ 0004_fat_machine_man: 2/2 tables, 5/5 columns, 4/4 constraints present" in lines
    assert error_lines(out) == []


def test_json_schema(database_url: str) -> None:
    """`--json` prints one document with the documented keys, per-migration counts and the missing objects."""
    _applied(database_url)
    query(database_url, "DROP INDEX idx_actions_points")
    result = run_entrypoint(["verify", "--json"], url=database_url, folder=EXAMPLE_MIGRATIONS)
    assert result.returncode == VERIFY_FAILED, output_of(result)
    document = json.loads(result.stdout)
    assert set(document) == {"folder", "ledger", "migrations", "missing", "ok"}
    assert document["ok"] is False
    assert document["ledger"] == {
        "schema": "drizzle",
        "table": "__drizzle_migrations",
        "exists": True,
        "rows": 12,
        "ok": True,
        "problems": [],
        "ahead": [],
    }
    assert len(document["migrations"]) == 12
    for migration in document["migrations"]:
        assert set(migration) == {"idx", "tag", "checked", "counts", "unanalysed_statements"}
        assert set(migration["counts"]) == {label.replace(" ", "_") for label in KINDS.values()}
    last = document["migrations"][-1]
    assert last["counts"]["indexes"] == {"expected": 43, "present": 42}
    assert document["missing"] == [
        {
            "kind": "index",
            "schema": "public",
            "name": "idx_actions_points",
            "parent": "actions",
            "migration": "0011_performance_indexes",
        }
    ]


def test_verify_is_not_fooled_by_a_nul_byte(database_url: str, users_app: Callable[..., Path]) -> None:
    """A NUL byte would cut the statement short: the deploy and verify both refuse the file (exit 3)."""
    folder = users_app(("nul", "-- a\x00b\nCREATE TABLE t (id int);"))
    for args in ([], ["verify"], ["status"]):
        result = run_entrypoint(args, url=database_url, folder=folder)
        assert result.returncode == 3, output_of(result)
        assert "holds a NUL byte at offset" in assert_one_error(output_of(result))
    assert query(database_url, "SELECT to_regclass('t')") == [(None,)]
