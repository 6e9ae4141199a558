"""The backup before the deploy's first change: BACKUP_DIR, and BACKUP_URL against a real S3 server.

A checked `pg_dump -Fc`, taken only when migrations are pending, reused by a restart of the same state, and every
way it fails (exit 15, one ❌ line, no secret printed) before anything changed. The S3 server is moto's, on
loopback, with IAM auth on (tests/fix_s3.py), so wrong credentials and denied actions fail as they do on AWS. The
BACKUP_URL cases run on the runbook's production database (`production_db`): 0000-0010 applied, the drifted
ledger, 68 users. (`restore` from these dumps: tests/commands/test_restore.py.)
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness.postgres import PgCluster, new_base_dir
from harness.production import EXAMPLE_MIGRATIONS, copy_folder
from tests.drizzle_ref import drizzle_migrate
from tests.fix_pg import bin_dir_for
from tests.fix_s3 import S3Bucket, S3Server, special_secret
from tests.support import (
    RUNBOOK_SYNC_LINES,
    UPLOADED,
    assert_one_error,
    assert_untouched,
    deploy_with_backup_url,
    imported_by,
    output_of,
    query,
    run_entrypoint,
    start_entrypoint,
)

pytestmark = pytest.mark.usefixtures("suite_pg_tools")
RESTORE_POINT = re.compile(
    r"📍 Restore point: (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) \(WAL ([0-9A-F]+/[0-9A-F]+)\), just before this "
    r"deploy's first change to (\S+): point-in-time recovery to this time undoes the deploy"
)


def test_backup_before_pending_migrations(database_url: str, tmp_path: Path, pg_server) -> None:
    """BACKUP_DIR: a checked pg_dump -Fc named for the database and last tag, printed with its size."""
    release = copy_folder(EXAMPLE_MIGRATIONS, tmp_path / "release", keep=11)
    assert run_entrypoint([], url=database_url, folder=release).returncode == 0
    backups = tmp_path / "backups"
    result = run_entrypoint(
        [], url=database_url, folder=EXAMPLE_MIGRATIONS, BACKUP_DIR=str(backups), PG_DUMP=str(pg_server.bin("pg_dump"))
    )
    out = output_of(result)
    assert result.returncode == 0, out
    (dump,) = backups.iterdir()
    dbname = database_url.rsplit("/", 1)[1]
    assert re.match(rf"{dbname}-[0-9a-f]{{8}}-0010_perpetual_magneto-", dump.name), dump.name
    assert dump.suffix == ".dump"
    assert f"💾 Backup written and checked (pg_restore read all of it): {dump} (" in out
    assert out.index("💾 Backup written") < out.index("🚀 Running Drizzle migrations...")
    listed = subprocess.run(
        [str(pg_server.bin("pg_restore")), "--list", str(dump)], capture_output=True, text=True, check=True
    )
    assert "idx_" not in listed.stdout  # taken before 0011 created the indexes
    assert "TABLE public users" in listed.stdout


def test_no_backup_when_nothing_is_pending(database_url: str, tmp_path: Path, pg_server) -> None:
    """Nothing pending: no pg_dump runs and the folder stays empty."""
    assert drizzle_migrate(database_url, EXAMPLE_MIGRATIONS).returncode == 0
    backups = tmp_path / "backups"
    backups.mkdir()
    result = run_entrypoint(
        [], url=database_url, folder=EXAMPLE_MIGRATIONS, BACKUP_DIR=str(backups), PG_DUMP=str(pg_server.bin("pg_dump"))
    )
    assert result.returncode == 0, output_of(result)
    assert list(backups.iterdir()) == []
    assert "💾" not in result.stdout


def test_failed_backup_aborts_before_anything(database_url: str, tmp_path: Path, pg_server) -> None:
    """A backup that cannot be written: exit 15, one ❌ line, the database untouched, the app not started."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the backup folder should be")
    marker = tmp_path / "started"
    result = run_entrypoint(
        ["--", "touch", str(marker)],
        url=database_url,
        folder=EXAMPLE_MIGRATIONS,
        BACKUP_DIR=str(blocker / "backups"),
        PG_DUMP=str(pg_server.bin("pg_dump")),
    )
    out = output_of(result)
    assert result.returncode == 15, out
    assert assert_one_error(out) == out.strip().splitlines()[-1]
    assert "Backup impossible: cannot create" in out
    assert query(database_url, "SELECT to_regclass('public.users') IS NULL") == [(True,)]
    assert query(database_url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'drizzle'") == [(0,)]
    assert not marker.exists()


def test_pg_dump_older_than_the_server_is_explained(tmp_path: Path, pg_server) -> None:
    """PostgreSQL 15's pg_dump against an 18 server: a clear ❌ naming both versions, nothing migrated."""
    with PgCluster(bin_dir_for(18), new_base_dir()) as cluster:
        cluster.init()
        cluster.start()
        url = cluster.url("postgres")
        result = run_entrypoint(
            [],
            url=url,
            folder=EXAMPLE_MIGRATIONS,
            BACKUP_DIR=str(tmp_path / "backups"),
            PG_DUMP="/usr/lib/postgresql/15/bin/pg_dump",
        )
        out = output_of(result)
        assert result.returncode == 15, out
        assert "pg_dump 15 cannot dump a PostgreSQL 18 server" in out
        assert query(url, "SELECT to_regclass('public.users') IS NULL") == [(True,)]
        assert query(url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'drizzle'") == [(0,)]


def test_sigterm_during_pg_dump_leaves_no_file_named_like_a_dump(database_url: str, tmp_path: Path, pg_server) -> None:
    """SIGTERM while pg_dump runs: exit 143, the partial file removed, nothing named *.dump, the database untouched."""
    release = copy_folder(EXAMPLE_MIGRATIONS, tmp_path / "release", keep=11)
    assert run_entrypoint([], url=database_url, folder=release).returncode == 0
    tools = tmp_path / "bin"
    tools.mkdir()
    dumped = tmp_path / "dumped"
    wrapper = tools / "pg_dump"
    real = pg_server.bin("pg_dump")
    wrapper.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "--version" ]; then exec "{real}" --version; fi\n'
        f'"{real}" "$@" || exit $?\n'
        f'touch "{dumped}"\n'
        "exec sleep 60\n"  # a slow dump: the file is there, not yet checked or renamed
    )
    wrapper.chmod(0o755)
    (tools / "pg_restore").symlink_to(pg_server.bin("pg_restore"))
    backups = tmp_path / "backups"
    with assert_untouched(database_url, pg_server.bin("pg_dump"), data=True):
        proc = start_entrypoint(
            [], url=database_url, folder=EXAMPLE_MIGRATIONS, BACKUP_DIR=str(backups), PG_DUMP=str(wrapper)
        )
        deadline = time.monotonic() + 60
        while not dumped.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert dumped.exists(), proc.communicate(timeout=30)[0]
        assert [p.name for p in backups.iterdir() if p.name.endswith(".partial")], "the dump is under a temporary name"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 143, out
    assert assert_one_error(out).startswith("❌ Stopped by SIGTERM before the app started: nothing had started")
    assert list(backups.iterdir()) == []


def test_a_start_with_nothing_to_back_up_never_imports_boto3(database_url: str, tmp_path: Path) -> None:
    """BACKUP_URL set, nothing pending: `python -X importtime` shows no boto3 or botocore (0.3 s saved)."""
    assert drizzle_migrate(database_url, EXAMPLE_MIGRATIONS).returncode == 0
    result, imported = imported_by(
        [], database_url, MIGRATIONS_DIR=str(EXAMPLE_MIGRATIONS), BACKUP_URL="s3://backups/app", AWS_REGION="auto"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "💤 No pending migrations" in result.stdout
    assert "entrypoint.deploy.session" in imported
    assert not [name for name in imported if name.split(".")[0] in {"boto3", "botocore", "s3transfer"}]


def _failing_release(tmp_path: Path) -> Path:
    """The example's folder plus a 0012 that fails (division by zero): every deploy of it rolls back."""
    folder = copy_folder(EXAMPLE_MIGRATIONS, tmp_path / "failing")
    journal_path = folder / "meta" / "_journal.json"
    journal = json.loads(journal_path.read_text())
    last = journal["entries"][-1]
    journal["entries"].append({**last, "idx": last["idx"] + 1, "when": last["when"] + 1000, "tag": "0012_boom"})
    journal_path.write_text(json.dumps(journal, indent=2))
    (folder / "0012_boom.sql").write_text("SELECT 1/0;")
    return folder


def test_deploy_uploads_a_checked_dump_once_and_a_restart_reuses_it(
    production_db: str, s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    """BACKUP_URL: the restore point, one checked upload; a restart of the same state reuses it; a new set dumps."""
    failing = _failing_release(tmp_path)
    first = deploy_with_backup_url(production_db, s3_bucket, tmp_path, folder=failing)
    out = output_of(first)
    assert first.returncode == 6, out
    uploaded = UPLOADED.search(out)
    assert uploaded, out
    dbname = production_db.rsplit("/", 1)[1]
    (key,) = s3_bucket.objects()
    assert re.fullmatch(
        rf"backups/{dbname}-[0-9a-f]{{8}}-0010_perpetual_magneto-[0-9a-f]{{12}}-\d{{8}}T\d{{6}}\.\d{{3}}Z\.dump", key
    ), key
    assert uploaded.group(1) == f"s3://{s3_bucket.name}/{key}"
    assert s3_bucket.objects()[key] > 10 * 1024  # 68 users and 12 tables, compressed
    assert list((tmp_path / "tmp").iterdir()) == [], "the temporary dump is removed after the upload"
    point = RESTORE_POINT.search(out)
    assert point, out
    assert point.group(3) == dbname
    assert out.index("📤 Backup uploaded") < out.index("📍 Restore point") < out.index(RUNBOOK_SYNC_LINES[0])

    restart = deploy_with_backup_url(production_db, s3_bucket, tmp_path, folder=failing)
    again = output_of(restart)
    assert restart.returncode == 6, again
    assert "💾 Backing up" not in again
    assert re.search(
        rf"♻️  Backup of this same state .* reused, not dumped again: s3://{s3_bucket.name}/{key} \(", again
    )
    assert list(s3_bucket.objects()) == [key]

    fixed = deploy_with_backup_url(
        production_db, s3_bucket, tmp_path
    )  # 0012 dropped: another pending set, another backup
    done = output_of(fixed)
    assert fixed.returncode == 0, done
    assert len(s3_bucket.objects()) == 2
    assert "✅ Database migrations completed successfully" in done


def test_local_backup_is_reused_on_restart(production_db: str, tmp_path: Path, pg_server) -> None:
    """BACKUP_DIR: a restart of the same state reuses the file it finds there instead of dumping again."""
    failing = _failing_release(tmp_path)
    backups = tmp_path / "backups"
    env = {"BACKUP_DIR": str(backups), "PG_DUMP": str(pg_server.bin("pg_dump"))}
    first = run_entrypoint([], url=production_db, folder=failing, **env)
    assert first.returncode == 6, output_of(first)
    (dump,) = backups.iterdir()
    second = run_entrypoint([], url=production_db, folder=failing, **env)
    assert second.returncode == 6, output_of(second)
    assert f"reused, not dumped again: {dump} (" in second.stdout
    assert list(backups.iterdir()) == [dump]
    never = run_entrypoint([], url=production_db, folder=failing, BACKUP_REUSE_WINDOW="0", **env)
    assert never.returncode == 6, output_of(never)
    assert "💾 Backing up" in never.stdout
    assert len(list(backups.iterdir())) in {1, 2}  # two unless both were taken within the same second


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_wrong_secret_key_stops_before_anything_and_is_never_printed(
    production_db: str, s3_bucket: S3Bucket, tmp_path: Path, pg_server, log_format: str
) -> None:
    """A wrong AWS_SECRET_ACCESS_KEY full of special characters: exit 15, one ❌ line, no secret, nothing changed."""
    secret = special_secret()
    marker = tmp_path / "started"
    with assert_untouched(production_db, pg_server.bin("pg_dump"), data=True):
        result = deploy_with_backup_url(
            production_db,
            s3_bucket,
            tmp_path,
            "--log-format",
            log_format,
            "--",
            "touch",
            str(marker),
            AWS_SECRET_ACCESS_KEY=secret,
        )
    out = output_of(result)
    assert result.returncode == 15, out
    assert secret not in out
    assert json.dumps(secret)[1:-1] not in out
    assert not marker.exists()
    if log_format == "json":
        (error,) = [json.loads(line) for line in result.stdout.splitlines() if '"level": "error"' in line]
        message = error["message"]
        assert error["event"] == "backup.failed"
        assert error["exit_code"] == 15
    else:
        message = assert_one_error(out)
    assert "the secret key is wrong (SignatureDoesNotMatch): check AWS_SECRET_ACCESS_KEY" in message
    assert "nothing was migrated" in message
    assert "Traceback" not in out


def _key_env(server: S3Server, key: tuple[str, str]) -> dict[str, str]:
    env = server.env(key)
    return {k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}


FAILURES = {
    "bucket_missing": "the bucket 'no-such-bucket-here' does not exist: create it",
    "unknown_key": "the store does not know this key (InvalidAccessKeyId): check AWS_ACCESS_KEY_ID",
    "write_only_key": "access denied: the key may not list there. Grant it s3:ListBucket",
    "upload_refused": "access denied: the key may not write there. Grant it s3:PutObject",
    "no_credentials": "no S3 credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
    "unreachable": "the S3 endpoint is unreachable (",
    "checksum_mismatch": "does not check out: the store has",
}


@pytest.mark.parametrize("failure", list(FAILURES))
def test_each_backup_failure_is_one_line_exit_15_and_changes_nothing(
    *,
    failure: str,
    production_db: str,
    s3_server: S3Server,
    s3_bucket: S3Bucket,
    tmp_path: Path,
    pg_server,
    request: pytest.FixtureRequest,
) -> None:
    """Bucket missing, unknown key, write-only key, refused upload, no credentials, no endpoint, bad checksum."""
    env: dict[str, str] = {}
    if failure == "bucket_missing":
        env["BACKUP_URL"] = "s3://no-such-bucket-here/backups"  # the admin may list any bucket: NoSuchBucket
        env |= _key_env(s3_server, s3_server.admin_key)
    elif failure == "unknown_key":
        env["AWS_ACCESS_KEY_ID"] = "AKIANOSUCHKEY0000000"
    elif failure == "write_only_key":
        env |= _key_env(s3_server, s3_server.make_key(["s3:PutObject"], s3_bucket.name))
    elif failure == "upload_refused":
        env |= _key_env(s3_server, s3_server.make_key(["s3:ListBucket", "s3:GetObject"], s3_bucket.name))
    elif failure == "no_credentials":
        env |= {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "HOME": str(tmp_path)}
    elif failure == "unreachable":
        env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"  # discard: nothing listens
    elif failure == "checksum_mismatch":
        env["AWS_ENDPOINT_URL"] = request.getfixturevalue("tampering_proxy")
    marker = tmp_path / "started"
    with assert_untouched(production_db, pg_server.bin("pg_dump"), data=True):
        result = deploy_with_backup_url(production_db, s3_bucket, tmp_path, "--", "touch", str(marker), **env)
    out = output_of(result)
    assert result.returncode == 15, out
    line = assert_one_error(out)
    assert FAILURES[failure] in line, line
    assert line.endswith("nothing was migrated"), line
    assert "Traceback" not in out
    assert not marker.exists()
    assert "📍" not in out  # no change was about to be made
    assert list((tmp_path / "tmp").iterdir()) == []
    assert s3_bucket.key[1] not in out
