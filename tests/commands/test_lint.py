"""The DDL lint on drizzle-kit's folders: offline for CI, weighed by live sizes, and at deploy (DDL_POLICY)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.drizzle_ref import EXAMPLE_MIGRATIONS
from tests.support import assert_one_error, assert_untouched, output_of, run_entrypoint


def test_offline_lint_of_the_example_backend() -> None:
    """No database: every migration linted; 0011's plain CREATE INDEXes are warnings, exit 19 unless --fail-on danger."""
    result = run_entrypoint(["lint"], url=None, folder=EXAMPLE_MIGRATIONS)
    assert result.returncode == 19, output_of(result)
    lines = result.stdout.splitlines()
    indexes = [line for line in lines if line.startswith("⚠️  0011_performance_indexes (statement ")]
    assert len(indexes) == 43
    assert "create-index-not-concurrently: CREATE INDEX" in indexes[0]
    assert "takes a SHARE lock: writes to the table wait until the index is built" in indexes[0]
    assert any("breaks-old-release: RENAME COLUMN" in line for line in lines)
    assert "offline: not weighed by live table sizes" in lines[-2]
    assert run_entrypoint(["lint", "--fail-on", "danger"], url=None, folder=EXAMPLE_MIGRATIONS).returncode == 0


def test_lint_json_document(users_app: Callable[..., Path]) -> None:
    """`--json`: one document with each finding's rule, lock, table and severity."""
    result = run_entrypoint(
        ["lint", "--json", "--from", "0011_performance_indexes"], url=None, folder=EXAMPLE_MIGRATIONS
    )
    assert result.returncode == 19, result.stderr
    document = json.loads(result.stdout)
    assert document["migrations"] == ["0011_performance_indexes"]
    assert document["weighed"] is False
    assert document["counts"] == {"note": 0, "warning": 43, "danger": 0}
    first = document["findings"][0]
    assert (first["rule"], first["lock"], first["severity"]) == ("create-index-not-concurrently", "SHARE", "warning")
    assert first["table"].startswith("public.")


# The users app's rows for a live lint (`users_app(("points_index", sql), rows=BUSY)`): 20,000 users, analysed.
BUSY = ("INSERT INTO users (email) SELECT 'u' || n FROM generate_series(1, 20000) n", "ANALYZE users")


def test_live_lint_weighs_the_pending_migration(database_url: str, users_app: Callable[..., Path]) -> None:
    """With a database: only what is pending, and the table's live rows and size in the line."""
    folder = users_app(("points_index", 'CREATE INDEX "users_points_idx" ON "users" ("points");'), rows=BUSY)
    result = run_entrypoint(["lint"], url=database_url, folder=folder)
    assert result.returncode == 19, output_of(result)
    (line,) = [line for line in result.stdout.splitlines() if "create-index-not-concurrently" in line]
    assert line.startswith("⚠️  0001_points_index (statement 1/1)")
    assert "on public.users (20,000 rows, " in line
    assert "weighed by live table sizes" in result.stdout


def test_deploy_warns_before_migrating(database_url: str, users_app: Callable[..., Path]) -> None:
    """DDL_POLICY=warn (the default): the finding is printed after the sync, before the migrations, and they run."""
    folder = users_app(("points_index", 'CREATE INDEX "users_points_idx" ON "users" ("points");'), rows=BUSY)
    result = run_entrypoint([], url=database_url, folder=folder)
    assert result.returncode == 0, output_of(result)
    lines = result.stdout.splitlines()
    finding = next(i for i, line in enumerate(lines) if "create-index-not-concurrently" in line)
    assert lines[finding - 1] == "🎯 Système de migrations prêt pour Drizzle"
    assert lines[finding + 2] == "🚀 Running Drizzle migrations..."


def test_an_index_built_concurrently_is_no_finding(database_url: str, users_app: Callable[..., Path]) -> None:
    """INDEX_BUILD=concurrent builds the index CONCURRENTLY, so the deploy neither warns about it nor refuses it."""
    folder = users_app(("points_index", 'CREATE INDEX "users_points_idx" ON "users" ("points");'), rows=BUSY)
    result = run_entrypoint([], url=database_url, folder=folder, INDEX_BUILD="concurrent", DDL_POLICY="refuse")
    assert result.returncode == 0, output_of(result)
    assert "create-index-not-concurrently" not in result.stdout


def test_ddl_policy_refuse_stops_before_any_change(
    database_url: str, tmp_path: Path, pg_server: Any, users_app: Callable[..., Path]
) -> None:
    """DDL_POLICY=refuse: exit 20, the finding and one ❌ line, nothing changed; an allow comment lets it through."""
    folder = users_app(("points_index", 'CREATE INDEX "users_points_idx" ON "users" ("points");'), rows=BUSY)
    marker = tmp_path / "started"
    with assert_untouched(database_url, pg_server.bin("pg_dump")):
        result = run_entrypoint(["--", "touch", str(marker)], url=database_url, folder=folder, DDL_POLICY="refuse")
    assert result.returncode == 20, output_of(result)
    assert "DDL_POLICY=refuse: 1 pending statements lock, rewrite or break a table" in assert_one_error(result.stdout)
    assert not marker.exists()
    path = next(folder.glob("*_points_index.sql"))
    path.write_text(
        path.read_text().replace("CREATE INDEX", "-- entrypoint:allow create-index-not-concurrently\nCREATE INDEX")
    )
    allowed = run_entrypoint([], url=database_url, folder=folder, DDL_POLICY="refuse")
    assert allowed.returncode == 0, output_of(allowed)


def test_dry_run_prints_the_findings(database_url: str, users_app: Callable[..., Path]) -> None:
    """--dry-run lists the same findings, and changes nothing."""
    folder = users_app(("points_index", 'ALTER TABLE "users" ALTER COLUMN "points" SET DATA TYPE bigint;'), rows=BUSY)
    result = run_entrypoint(["--dry-run"], url=database_url, folder=folder)
    assert result.returncode == 0, output_of(result)
    assert "column-type-rewrite: ALTER COLUMN points TYPE on public.users (20,000 rows" in result.stdout
