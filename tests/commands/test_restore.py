"""`python -m entrypoint restore`: the runbook's rollback from a checked dump, on a file or at an s3:// URL.

The dumps are the deploy's own (BACKUP_DIR, or BACKUP_URL on moto's S3 server with IAM auth on, tests/fix_s3.py);
the database is the runbook's production one (`production_db`): 0000-0010 applied, the drifted ledger, 68 users.
Each failure is one ❌ line: exit 22 when nothing was changed, 23 when the restore stands but a check after it failed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.production import EXAMPLE_MIGRATIONS, copy_folder
from tests.fix_s3 import S3Bucket, special_secret
from tests.support import (
    NO_IMDS,
    RUNBOOK_SYNC_LINES,
    UPLOADED,
    assert_one_error,
    assert_untouched,
    deploy_with_backup_url,
    ledger,
    output_of,
    query,
    run_entrypoint,
    suite_pg_dump,
)

pytestmark = pytest.mark.usefixtures("suite_pg_tools")
ROLES = "select role, count(*) from users group by role order by role"


def _restore(
    url: str, *args: str, pg_dump: Path | None = None, folder: Path = EXAMPLE_MIGRATIONS, **env: str
) -> subprocess.CompletedProcess[str]:
    """`python -m entrypoint restore ARGS` with the suite's client tools (or PG_DUMP's), as a test runs it."""
    return run_entrypoint(
        ["restore", *args, "--pg-dump", str(pg_dump or suite_pg_dump())], url=url, folder=folder, **env
    )


def _deployed_with_a_local_backup(url: str, tmp_path: Path) -> Path:
    """Deploy the example with BACKUP_DIR (0011 applied after the dump); the dump it wrote."""
    backups = tmp_path / "backups"
    deploy = run_entrypoint([], url=url, folder=EXAMPLE_MIGRATIONS, BACKUP_DIR=str(backups), PG_DUMP=suite_pg_dump())
    assert deploy.returncode == 0, output_of(deploy)
    (dump,) = backups.glob("*.dump")
    return dump


def test_backup_then_migrate_then_restore_brings_back_users_and_ledger(
    production_db: str, s3_bucket: S3Bucket, tmp_path: Path, pg_server
) -> None:
    """The runbook's rollback: backup -> migrate -> `restore s3://…` brings back the 68 users and the old ledger."""
    before_ledger = ledger(production_db)
    before_schema = query(production_db, "SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'idx\\_%'")
    deploy = deploy_with_backup_url(production_db, s3_bucket, tmp_path)
    assert deploy.returncode == 0, output_of(deploy)
    (source,) = UPLOADED.findall(output_of(deploy))
    assert query(production_db, "SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'idx\\_%'") == [(43,)]
    assert len(ledger(production_db)) == 12
    query(production_db, "DELETE FROM users WHERE role = 'fbo' AND id % 2 = 0")  # the damage to undo

    restored = _restore(
        production_db, source[0], "--yes", "--guard", ROLES, **NO_IMDS, **s3_bucket.env, TMPDIR=str(tmp_path)
    )
    out = output_of(restored)
    assert restored.returncode == 0, out
    assert query(production_db, "SELECT count(*) FROM users") == [(68,)]
    assert query(production_db, ROLES) == [("manager", 8), ("fbo", 60)]  # role is an enum: manager first
    assert ledger(production_db) == before_ledger
    assert query(production_db, "SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'idx\\_%'") == before_schema
    # The audit table the deploy's sync created survives (its schema is kept), with the repair it recorded,
    # and the backup, as the deploy recorded it just before the repair (in the dump: taken before that row).
    assert query(production_db, "SELECT count(*) FROM drizzle.__drizzle_migrations_audit WHERE reason <> 'backup'") == [
        (3,)
    ]
    lines = out.splitlines()
    assert f"↩️  Restore of {source[0]} into {production_db.rsplit('/', 1)[1]}" in lines
    assert "   ledger now: 12 rows, ids 0..11: 12 applied" in lines
    assert "   ledger after the restore: 11 rows, ids 0..7, 283..285: 8 applied, 1 pending, 3 hash mismatch" in lines
    assert f"   🛡  {ROLES} → [('manager', 8), ('fbo', 60)]" in lines
    assert "   ✔ 0010_perpetual_magneto: 3/3 columns, 1/1 enum types, 1/1 constraints present" in lines
    assert "   ⏭  0011_performance_indexes: not applied, schema not checked" in lines
    assert any(re.fullmatch(r"   10 +0010_perpetual_magneto .* hash mismatch +285 → 10", line) for line in lines), out
    assert "❓" not in out  # --yes: no question
    assert lines[-1] == "🎉 Restore checked: the schema its ledger records is present; the ledger it left is above"
    assert "❌" not in out
    assert list(tmp_path.glob("entrypoint-restore-*")) == []

    redeploy = run_entrypoint([], url=production_db, folder=EXAMPLE_MIGRATIONS)
    assert redeploy.returncode == 0, output_of(redeploy)
    assert [line for line in redeploy.stdout.splitlines() if line in RUNBOOK_SYNC_LINES] == RUNBOOK_SYNC_LINES
    _ = pg_server


def test_restore_dry_run_lists_the_dump_and_changes_nothing(production_db: str, tmp_path: Path, pg_server) -> None:
    """`restore --dry-run FILE`: the dump's entries, the ledger now and in the dump; no lock, no change."""
    dump = _deployed_with_a_local_backup(production_db, tmp_path)
    with assert_untouched(production_db, pg_server.bin("pg_dump"), data=True):
        result = _restore(production_db, "--dry-run", str(dump))
    out = output_of(result)
    assert result.returncode == 0, out
    assert "   TABLE public users" in out.splitlines()
    assert "   TABLE DATA drizzle __drizzle_migrations" in out.splitlines()
    assert "   ledger now: 12 rows, ids 0..11: 12 applied" in out
    assert "🔍 Dry run: nothing was restored or changed" in out


def test_restore_refuses_without_yes_off_a_terminal(production_db: str, tmp_path: Path, pg_server) -> None:
    """Standard input is not a terminal and --yes is missing: exit 2 before anything, the database untouched."""
    dump = tmp_path / "x.dump"
    dump.write_bytes(b"not read")
    with assert_untouched(production_db, pg_server.bin("pg_dump"), data=True):
        result = run_entrypoint(["restore", str(dump)], url=production_db, folder=EXAMPLE_MIGRATIONS)
    out = output_of(result)
    assert result.returncode == 2, out
    assert assert_one_error(out).startswith("❌ restore replaces what the dump holds in the database: pass --yes")


def test_restore_of_a_truncated_dump_is_refused(production_db: str, tmp_path: Path, pg_server) -> None:
    """A dump cut short (an interrupted copy): `restore` reads it whole first, exit 22, nothing changed."""
    dump = _deployed_with_a_local_backup(production_db, tmp_path)
    cut = tmp_path / "cut.dump"
    cut.write_bytes(dump.read_bytes()[: dump.stat().st_size // 2])
    with assert_untouched(production_db, pg_server.bin("pg_dump"), data=True):
        result = _restore(production_db, "--yes", str(cut))
    out = output_of(result)
    assert result.returncode == 22, out
    assert "is not a dump pg_restore can read whole" in assert_one_error(out)


def test_restore_that_pg_restore_refuses_changes_nothing(production_db: str, tmp_path: Path, pg_server) -> None:
    """A view in a schema the dump does not restore reads a table in the dump: the restore fails, all rolled back."""
    dump = _deployed_with_a_local_backup(production_db, tmp_path)
    query(production_db, "CREATE SCHEMA reporting; CREATE VIEW reporting.managers AS SELECT id FROM users")
    with assert_untouched(production_db, pg_server.bin("pg_dump"), data=True):
        result = _restore(production_db, "--yes", str(dump))
    out = output_of(result)
    assert result.returncode == 22, out
    line = assert_one_error(out)
    assert line.startswith("❌ Restore failed, nothing was changed (its one transaction was rolled back): ")
    assert "Objects outside the schemas it restores depend on objects in the dump" in line
    shutil.rmtree(dump.parent)


def test_restore_from_a_missing_object_or_with_a_wrong_key(
    production_db: str, s3_bucket: S3Bucket, tmp_path: Path, pg_server
) -> None:
    """An s3:// object that is not there, or a wrong secret: exit 22, one ❌ line, no secret, nothing changed."""
    secret = special_secret()
    source = f"{s3_bucket.url()}/nothing-here.dump"
    with assert_untouched(production_db, pg_server.bin("pg_dump"), data=True):
        missing = _restore(production_db, "--yes", source, **NO_IMDS, **s3_bucket.env)
        wrong = _restore(
            production_db, "--yes", source, **NO_IMDS, **(s3_bucket.env | {"AWS_SECRET_ACCESS_KEY": secret})
        )
    assert missing.returncode == 22, output_of(missing)
    assert "no such object" in assert_one_error(output_of(missing))
    assert wrong.returncode == 22, output_of(wrong)
    assert "the secret key is wrong" in assert_one_error(output_of(wrong))


@pytest.mark.parametrize("answer", ["no", "yes"])
def test_restore_asks_on_a_terminal(answer: str, production_db: str, tmp_path: Path, pg_server) -> None:
    """On a terminal without --yes it asks: anything but `yes` is exit 22 and nothing changed; `yes` restores."""
    import os
    import pty
    import sys

    from tests.support import REPO, entrypoint_env

    dump = _deployed_with_a_local_backup(production_db, tmp_path)
    query(production_db, "DELETE FROM users WHERE role = 'fbo'")
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "entrypoint", "restore", str(dump), "--pg-dump", suite_pg_dump()],
            env=entrypoint_env(production_db, MIGRATIONS_DIR=str(EXAMPLE_MIGRATIONS)),
            cwd=REPO,
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        os.write(controller, f"{answer}\n".encode())
        out, _ = proc.communicate(timeout=120)
    finally:
        os.close(controller)
        os.close(terminal)
    database = production_db.rsplit("/", 1)[1]
    assert f"❓ Restore {database} from this dump? Type yes to go on: " in out.splitlines()
    if answer == "yes":
        assert proc.returncode == 0, out
        assert query(production_db, "SELECT count(*) FROM users") == [(68,)]
    else:
        assert proc.returncode == 22, out
        assert (
            assert_one_error(out) == "❌ Restore not confirmed: nothing was changed (pass --yes to skip the question)"
        )
        assert query(production_db, "SELECT count(*) FROM users") == [(8,)]


def _tools_with_pg_restore_doing(tmp_path: Path, pg_server, flag: str, then: str) -> Path:
    """The real client tools (the path of their pg_dump), with one change to pg_restore.

    Called with FLAG, it runs the shell line THEN instead (`"$real" "$@"` in it runs the real one).
    """
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "pg_dump").symlink_to(pg_server.bin("pg_dump"))
    wrapper = tools / "pg_restore"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"real={pg_server.bin('pg_dump').parent / 'pg_restore'}\n"
        'for arg in "$@"; do\n'
        f'  if [ "$arg" = {flag} ]; then {then}; fi\n'
        "done\n"
        'exec "$real" "$@"\n'
    )
    wrapper.chmod(0o755)
    return tools / "pg_dump"


def _tools_whose_restore_then_runs(tmp_path: Path, pg_server, after: str) -> Path:
    """pg_restore writes the restore's script for real, then runs the shell line AFTER, then exits as it did."""
    return _tools_with_pg_restore_doing(
        tmp_path, pg_server, "--clean", f'"$real" "$@"; status=$?; {after}; exit $status'
    )


def test_a_check_failing_after_the_commit_is_exit_23_and_says_the_restore_stands(
    production_db: str, tmp_path: Path, pg_server
) -> None:
    """The folder vanishes once pg_restore committed: verify cannot run, and the line says the restore stands."""
    dump = _deployed_with_a_local_backup(production_db, tmp_path)
    folder = copy_folder(EXAMPLE_MIGRATIONS, tmp_path / "release")
    pg_dump = _tools_whose_restore_then_runs(tmp_path, pg_server, f"rm {folder / 'meta' / '_journal.json'}")
    query(production_db, "DELETE FROM users WHERE role = 'fbo'")
    result = _restore(production_db, "--yes", str(dump), pg_dump=pg_dump, folder=folder)
    out = output_of(result)
    assert result.returncode == 23, out
    error = assert_one_error(out)
    assert error.startswith("❌ Restored, but checking it failed: "), error
    assert error.endswith(". The database is the restored one: run `python -m entrypoint verify` once this is fixed")
    assert "othing was changed" not in error
    assert query(production_db, "SELECT count(*) FROM users") == [(68,)]


def test_sigterm_while_restoring_rolls_the_restore_back_and_says_so(
    production_db: str, tmp_path: Path, pg_server
) -> None:
    """SIGTERM while the restore's transaction runs: exit 143, the line says it was rolled back, and it was."""
    dump = _deployed_with_a_local_backup(production_db, tmp_path)
    pg_dump = _tools_whose_restore_then_runs(tmp_path, pg_server, "kill -TERM $PPID; sleep 2")
    query(production_db, "DELETE FROM users WHERE role = 'fbo'")
    result = _restore(production_db, "--yes", str(dump), pg_dump=pg_dump)
    out = output_of(result)
    assert result.returncode == 143, out
    assert assert_one_error(out).startswith(
        "❌ Stopped by SIGTERM while restoring: the restore's one transaction was cancelled and rolled back, and the "
        "migration lock released: nothing was changed."
    )
    assert query(production_db, "SELECT count(*) FROM users") == [(8,)]  # not restored: the line did not lie


def test_pg_restore_dying_while_the_dump_is_read_is_exit_22(production_db: str, tmp_path: Path, pg_server) -> None:
    """pg_restore dies reading the dump's ledger (a disk error): one ❌ line naming it, exit 22, nothing changed."""
    dump = _deployed_with_a_local_backup(production_db, tmp_path)
    # pg_restore fails the way a bad disk makes it fail on --data-only.
    pg_dump = _tools_with_pg_restore_doing(
        tmp_path,
        pg_server,
        "--data-only",
        'echo "pg_restore: error: could not read from input file: Input/output error" >&2; exit 1',
    )
    with assert_untouched(production_db, pg_server.bin("pg_dump"), data=True):
        result = _restore(production_db, "--yes", str(dump), pg_dump=pg_dump)
    out = output_of(result)
    assert result.returncode == 22, out
    assert assert_one_error(out) == (
        "❌ Restore impossible while reading the dump: pg_restore exited 1: pg_restore: error: could not read from "
        "input file: Input/output error. Nothing was changed; fix it (TMPDIR, the disk, the PostgreSQL client tools), "
        "then run the restore again"
    )
    assert "Traceback" not in out
