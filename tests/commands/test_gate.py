"""`--require-migrated`: the start command that execs the app only on a migrated schema, and never migrates."""

from __future__ import annotations

import shlex
from pathlib import Path

import psycopg

from entrypoint.db.lock import lock_key
from harness.production import copy_folder
from tests.drizzle_ref import EXAMPLE_MIGRATIONS, drizzle_migrate
from tests.support import assert_one_error, imported_by, ledger, output_of, query, run_entrypoint

NO_LEDGER = "SELECT to_regclass('drizzle.__drizzle_migrations')"
# Never on the gate's way to the exec: the applying code, the lock, the SQL parser.
APPLYING = (
    "entrypoint.deploy.session",
    "entrypoint.deploy.apply",
    "entrypoint.core.transactions",
    "entrypoint.db.lock",
    "pglast",
)


def _app(tmp_path: Path) -> tuple[list[str], Path]:
    """An app command that leaves a marker file, so a test can tell whether it started."""
    marker = tmp_path / "app-started"
    return ["sh", "-c", f"echo app > {marker}"], marker


def test_a_migrated_database_starts_the_app(database_url: str, tmp_path: Path) -> None:
    """After drizzle-orm's migrator, the gate says so in one line and execs the app (exit 0)."""
    assert drizzle_migrate(database_url, EXAMPLE_MIGRATIONS).returncode == 0
    app, marker = _app(tmp_path)
    result = run_entrypoint(["--require-migrated", "--", *app], url=database_url, folder=EXAMPLE_MIGRATIONS)
    assert result.returncode == 0, output_of(result)
    assert result.stdout.splitlines() == [
        "🚦 Start gate: 12/12 migrations applied, ledger in step; nothing migrated here (--require-migrated)",
        f"🏁 Starting the app: {shlex.join(app)}",
    ]
    assert marker.exists()


def test_a_database_behind_never_starts_the_app(database_url: str, tmp_path: Path) -> None:
    """One migration pending: status's lines, one ❌ line, exit 12, no app, and nothing applied or created."""
    release = copy_folder(EXAMPLE_MIGRATIONS, tmp_path / "release", keep=11)
    assert drizzle_migrate(database_url, release).returncode == 0
    before = ledger(database_url)
    app, marker = _app(tmp_path)
    result = run_entrypoint(["--require-migrated", "--", *app], url=database_url, folder=EXAMPLE_MIGRATIONS)
    out = output_of(result)
    assert result.returncode == 12, out
    lines = result.stdout.splitlines()
    assert lines[0] == f"📋 Migrations in {EXAMPLE_MIGRATIONS} against drizzle.__drizzle_migrations"
    assert lines[-2].split() == ["11", "0011_performance_indexes", "2026-11-25T22:29:13Z", "pending", "-"]
    assert assert_one_error(out) == (
        f"❌ Not starting the app: the database is not in step with {EXAMPLE_MIGRATIONS} (11 applied, 1 pending). "
        "Migrate first: check that the pre-deploy command (`python -m entrypoint`) ran and succeeded, then redeploy"
    )
    assert "🏁" not in out
    assert not marker.exists()
    assert ledger(database_url) == before


def test_a_fresh_database_is_not_touched(database_url: str, tmp_path: Path) -> None:
    """Nothing migrated yet: exit 12 and the ledger is not even created (the gate only reads)."""
    app, marker = _app(tmp_path)
    result = run_entrypoint(["--require-migrated", "--", *app], url=database_url, folder=EXAMPLE_MIGRATIONS)
    assert result.returncode == 12, output_of(result)
    assert "(12 pending)" in assert_one_error(output_of(result))
    assert query(database_url, NO_LEDGER) == [(None,)]
    assert not marker.exists()


def test_a_drifted_ledger_is_not_in_step(production_db: str) -> None:
    """The runbook's drifted ledger (and 0011 pending) keeps the app down: the deploy must repair it first."""
    database_url = production_db
    before = ledger(database_url)
    result = run_entrypoint(["--require-migrated", "--", "true"], url=database_url, folder=EXAMPLE_MIGRATIONS)
    assert result.returncode == 12, output_of(result)
    assert "(8 applied, 1 pending, 3 hash mismatch)" in assert_one_error(output_of(result))
    assert ledger(database_url) == before


def test_the_gate_takes_no_lock_and_writes_nothing(database_url: str, tmp_path: Path) -> None:
    """While a deploy holds the migration lock and the database is read-only, the gate still starts the app."""
    assert drizzle_migrate(database_url, EXAMPLE_MIGRATIONS).returncode == 0
    dbname = database_url.rsplit("/", 1)[1].split("?", maxsplit=1)[0]
    query(database_url, f'ALTER DATABASE "{dbname}" SET default_transaction_read_only = on')
    app, marker = _app(tmp_path)
    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (lock_key(dbname, "drizzle", "__drizzle_migrations"),))
        result = run_entrypoint(
            ["--require-migrated", "--", *app], url=database_url, folder=EXAMPLE_MIGRATIONS, LOCK_WAIT_TIMEOUT="1"
        )
    assert result.returncode == 0, output_of(result)
    assert marker.exists()


def test_require_migrated_from_the_environment(database_url: str) -> None:
    """REQUIRE_MIGRATED=1 is the same switch (a Render start command keeps its usual form)."""
    result = run_entrypoint(["--", "true"], url=database_url, folder=EXAMPLE_MIGRATIONS, REQUIRE_MIGRATED="1")
    assert result.returncode == 12, output_of(result)
    assert query(database_url, NO_LEDGER) == [(None,)]


def test_the_gate_reads_only_status_settings(database_url: str, tmp_path: Path) -> None:
    """A deploy-only setting the pre-deploy command uses (and the gate never does) cannot stop the start command."""
    assert drizzle_migrate(database_url, EXAMPLE_MIGRATIONS).returncode == 0
    app, marker = _app(tmp_path)
    shared = {"REQUIRE_MIGRATED": "1", "DDL_LOCK_TIMEOUT": "five seconds", "MIGRATION_ATTEMPTS": "0"}
    result = run_entrypoint(["--", *app], url=database_url, folder=EXAMPLE_MIGRATIONS, **shared)
    assert result.returncode == 0, output_of(result)
    assert marker.exists()
    # The same environment without the gate is the deploy's, which reads them: a usage error (exit 2).
    deploy = run_entrypoint(
        ["--", *app], url=database_url, folder=EXAMPLE_MIGRATIONS, **{**shared, "REQUIRE_MIGRATED": "0"}
    )
    assert deploy.returncode == 2, output_of(deploy)


def test_the_app_command_is_checked_first_and_dry_run_is_refused(database_url: str) -> None:
    """A missing app fails with 127 before any connection; --dry-run with the gate is a usage error (2)."""
    missing = run_entrypoint(["--require-migrated", "--", "no-such-app-x"], url=database_url, folder=EXAMPLE_MIGRATIONS)
    assert missing.returncode == 127, output_of(missing)
    dry = run_entrypoint(["--require-migrated", "--dry-run"], url=database_url, folder=EXAMPLE_MIGRATIONS)
    assert dry.returncode == 2, output_of(dry)
    assert_one_error(output_of(dry))


def test_the_gate_imports_none_of_the_applying_code(database_url: str) -> None:
    """`-X importtime` of a gate that execs: no deploy, migrate, transactions, lock or pglast (a no-op start's cost)."""
    assert drizzle_migrate(database_url, EXAMPLE_MIGRATIONS).returncode == 0
    result, imported = imported_by(
        ["--require-migrated", "--", "true"], database_url, MIGRATIONS_DIR=str(EXAMPLE_MIGRATIONS)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The gate is status.gate since 322eb0b: the run went through it (its line) and imported status, nothing more.
    assert result.stdout.startswith("🚦 Start gate: 12/12 migrations applied, ledger in step;"), result.stdout
    assert "entrypoint.commands.status" in imported
    assert not {name for name in imported if name.startswith(APPLYING)}


def test_the_gate_works_through_a_transaction_pooler(database_url: str, pgbouncer_url: str) -> None:
    """No lock, one READ ONLY transaction: the gate may use the app's pooled URL, where the deploy refuses (10)."""
    assert drizzle_migrate(database_url, EXAMPLE_MIGRATIONS).returncode == 0
    gate = run_entrypoint(["--require-migrated", "--", "true"], url=pgbouncer_url, folder=EXAMPLE_MIGRATIONS)
    assert gate.returncode == 0, output_of(gate)
    deploy = run_entrypoint(["--", "true"], url=pgbouncer_url, folder=EXAMPLE_MIGRATIONS)
    assert deploy.returncode == 10, output_of(deploy)


def test_a_gate_switch_with_a_typo_neither_migrates_nor_starts(database_url: str, tmp_path: Path) -> None:
    """REQUIRE_MIGRATED=ture: exit 2 and one ❌ line, before a connection; nothing migrated, the app not started."""
    app, marker = _app(tmp_path)
    result = run_entrypoint(["--", *app], url=database_url, folder=EXAMPLE_MIGRATIONS, REQUIRE_MIGRATED="ture")
    out = output_of(result)
    assert result.returncode == 2, out
    assert (
        assert_one_error(out) == "❌ REQUIRE_MIGRATED='ture' is not a switch: use 1 or 0 (true/false, yes/no, on/off)"
    )
    assert query(database_url, NO_LEDGER) == [(None,)]
    assert not marker.exists()
