"""The third hostile run's backup cases (issue 24): whose dump is reused, what is trusted, what is left behind.

Against real servers and moto's S3 server (tests/fix_s3.py, IAM auth on), with the suite's pg_dump. Each
refusal is one `❌` line, exit 15 or 21, and nothing migrated.
"""

from __future__ import annotations

import http.client
import http.server
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from entrypoint.backup.tools import check_archive
from harness.postgres import create_database
from tests.fix_s3 import MINIMAL_POLICY, S3Bucket, special_secret
from tests.support import (
    FIFTY_USERS,
    NO_IMDS,
    UPLOADED,
    assert_one_error,
    assert_untouched,
    deploy_with_backup_url,
    output_of,
    query,
    run_entrypoint,
    start_entrypoint,
    suite_pg_dump,
)

pytestmark = pytest.mark.usefixtures("suite_pg_tools")
BOOM = ("boom", "SELECT 1/0;")  # a release that fails after its backup: the state stays the same, a restart re-backs up


# --------------------------------------------------------------------------
# Item 2: the server's identity is part of "the same state".


def test_another_servers_app_backup_is_never_reused(
    cluster_factory: Callable[..., Any], s3_bucket: S3Bucket, tmp_path: Path, users_app: Callable[..., Path]
) -> None:
    """Staging and production both call their database `app`, same bucket, same release: each dumps its own.

    A restart of production's deploy reuses production's own backup, and the `♻️` line names the server.
    """
    urls = {}
    for name in ("staging", "production"):
        cluster = cluster_factory(start=True)
        create_database(cluster.url("postgres"), "app")
        urls[name] = cluster.url("app")
    folders = {name: users_app(BOOM, url=url, name=name) for name, url in urls.items()}

    staging = deploy_with_backup_url(urls["staging"], s3_bucket, tmp_path, folder=folders["staging"])
    assert staging.returncode == 6, output_of(staging)
    production = deploy_with_backup_url(urls["production"], s3_bucket, tmp_path, folder=folders["production"])
    out = output_of(production)
    assert production.returncode == 6, out
    assert "♻️" not in out
    uploaded = UPLOADED.search(out)
    assert uploaded, out
    assert len(s3_bucket.objects()) == 2

    restart = deploy_with_backup_url(urls["production"], s3_bucket, tmp_path, folder=folders["production"])
    again = output_of(restart)
    (sysid,) = query(urls["production"], "SELECT system_identifier::text FROM pg_control_system()")[0]
    (oid,) = query(urls["production"], "SELECT oid FROM pg_database WHERE datname = 'app'")[0]
    port = urls["production"].rsplit(":", 1)[1].split("/", 1)[0]
    assert re.search(
        rf"♻️  Backup of this same state \(server {sysid} at 127\.0\.0\.1:{port}, database app \(OID {oid}\), last "
        rf"applied migration 0000_init, pending set [0-9a-f]{{12}}\) taken \d+s ago: reused, not dumped again: "
        rf"{re.escape(uploaded.group(1))} \(",
        again,
    ), again
    assert len(s3_bucket.objects()) == 2


def test_a_server_that_hides_its_identity_never_reuses(
    database_url: str, role_factory: Callable[..., str], s3_bucket: S3Bucket, tmp_path: Path,
    users_app: Callable[..., Path],
) -> None:  # fmt: skip
    """pg_control_system() revoked (as a provider may): a `⚠️` line says why, and each run dumps its own."""
    query(database_url, "REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC")
    url = role_factory("s3cret-hidden")
    folder = users_app(BOOM, url=url)  # the role migrated it: it owns what it dumps
    for _ in range(2):
        result = deploy_with_backup_url(url, s3_bucket, tmp_path, folder=folder)
        out = output_of(result)
        assert result.returncode == 6, out
        assert (
            "⚠️  Cannot read this server's identity (permission denied for function pg_control_system): a backup is "
            "reused only when it is proven to be of this very database, so this one is dumped, not reused"
        ) in out
        assert "♻️" not in out
    assert len(s3_bucket.objects()) == 2
    assert all("-unknown-0000_init-" in key for key in s3_bucket.objects())


# --------------------------------------------------------------------------
# Item 8: a dump found in BACKUP_DIR is read whole before it is trusted.


def test_a_truncated_dump_in_backup_dir_is_neither_reused_nor_uploaded(
    database_url: str, s3_bucket: S3Bucket, tmp_path: Path, users_app: Callable[..., Path]
) -> None:
    """The kept dump cut in half since: a `⚠️` line names it, a new dump is taken, and that whole one is uploaded."""
    folder = users_app(BOOM, rows=FIFTY_USERS)
    backups = tmp_path / "backups"
    first = run_entrypoint([], url=database_url, folder=folder, BACKUP_DIR=str(backups), PG_DUMP=suite_pg_dump())
    assert first.returncode == 6, output_of(first)
    (kept,) = backups.iterdir()
    kept.write_bytes(kept.read_bytes()[: kept.stat().st_size // 2])

    second = deploy_with_backup_url(database_url, s3_bucket, tmp_path, folder=folder, BACKUP_DIR=str(backups))
    out = output_of(second)
    assert second.returncode == 6, out
    assert f"⚠️  {kept} is not a whole dump (pg_restore: " in out
    assert "♻️" not in out
    assert "💾 Backup written and checked (pg_restore read all of it)" in out
    (fresh,) = (path for path in backups.iterdir() if path != kept)  # its own name, to the millisecond
    (key,) = s3_bucket.objects()
    assert key.endswith(fresh.name)
    assert s3_bucket.objects()[key] == fresh.stat().st_size
    assert check_archive(fresh, str(Path(suite_pg_dump()).with_name("pg_restore"))) is None


# --------------------------------------------------------------------------
# Item 14: what a SIGKILL during the upload leaves behind is cleaned at the next start.


class _HoldParts(http.server.BaseHTTPRequestHandler):
    """Forwards every request to the S3 server, except that an UploadPart waits (as over a slow link)."""

    upstream: tuple[str, int] = ("127.0.0.1", 0)

    def _forward(self) -> None:
        if self.command == "PUT" and "partNumber=" in self.path:
            time.sleep(60)  # the test kills the deploy meanwhile
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            conn.request(self.command, self.path, body=body, headers=dict(self.headers))
            answer = conn.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in {"transfer-encoding", "connection"}:
                    self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        finally:
            conn.close()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward  # noqa: N815 - http.server's names

    def log_message(self, *_: object) -> None:
        return


@contextmanager
def _slow_parts(s3_server: Any) -> Iterator[str]:
    host, port = s3_server.endpoint.removeprefix("http://").rsplit(":", 1)
    handler = type("HoldParts", (_HoldParts,), {"upstream": (host, int(port))})
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    proxy.daemon_threads = True
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{proxy.server_address[1]}"
    finally:
        proxy.shutdown()
        proxy.server_close()


NOISE = (
    'CREATE TABLE "noise" ("b" bytea)',
    "INSERT INTO noise SELECT decode(md5(random()::text) || md5(random()::text), 'hex') FROM generate_series(1, 400000)",
)


def test_a_backup_killed_mid_upload_leaves_nothing_the_next_one_does_not_clean(
    database_url: str, s3_bucket: S3Bucket, tmp_path: Path, users_app: Callable[..., Path]
) -> None:
    """SIGKILL while a 13 MB dump is uploaded in parts: the next deploy removes the dump from TMPDIR and aborts the upload."""
    folder = users_app(BOOM, rows=NOISE)
    key = s3_bucket.server.make_key(
        [*MINIMAL_POLICY, "s3:ListBucketMultipartUploads", "s3:AbortMultipartUpload"], s3_bucket.name
    )
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    settings = {
        **s3_bucket.server.env(key),
        **NO_IMDS,
        "BACKUP_URL": s3_bucket.url(),
        "TMPDIR": str(tmp),
        "PG_DUMP": suite_pg_dump(),
    }
    admin = s3_bucket.server.admin
    with _slow_parts(s3_bucket.server) as endpoint:
        proc = start_entrypoint([], url=database_url, folder=folder, **{**settings, "AWS_ENDPOINT_URL": endpoint})
        deadline = time.monotonic() + 120
        while not admin.list_multipart_uploads(Bucket=s3_bucket.name).get("Uploads"):
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()[0]
            time.sleep(0.1)
        proc.kill()
        proc.communicate(timeout=30)
    (left,) = tmp.iterdir()  # the killed run's folder, its dump inside
    assert left.name.startswith("entrypoint-backup-")
    assert any(p.suffix == ".dump" for p in left.iterdir())
    (upload,) = admin.list_multipart_uploads(Bucket=s3_bucket.name)["Uploads"]

    result = run_entrypoint([], url=database_url, folder=folder, **settings)
    out = output_of(result)
    assert result.returncode == 6, out
    assert f"🧹 Removed {left} (" in out
    assert f"🧹 Aborted the incomplete upload of s3://{s3_bucket.name}/{upload['Key']} (started " in out
    assert "Uploads" not in admin.list_multipart_uploads(Bucket=s3_bucket.name)
    assert list(tmp.iterdir()) == []
    assert UPLOADED.search(out), out


# --------------------------------------------------------------------------
# Item 15: a store that never answers is waited for visibly, and not for long.


def test_a_black_hole_endpoint_is_waited_for_visibly_and_briefly(
    database_url: str, pg_server: Any, tmp_path: Path, users_app: Callable[..., Path]
) -> None:
    """An endpoint that accepts and never answers: ⏱️ lines while it waits, then exit 15 within S3_TIMEOUT's bound."""
    folder = users_app(("nick", 'ALTER TABLE "users" ADD COLUMN "nick" text;'))
    hole = socket.create_server(("127.0.0.1", 0), backlog=64)  # never accepts: connections wait, answers never come
    try:
        env = {
            "BACKUP_URL": "s3://backups/render",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{hole.getsockname()[1]}",
            "AWS_ACCESS_KEY_ID": "AKIAHOLE",
            "AWS_SECRET_ACCESS_KEY": special_secret(),
            "AWS_REGION": "us-east-1",
            "S3_TIMEOUT": "2",
            "HEARTBEAT_INTERVAL": "1",
            "PG_DUMP": suite_pg_dump(),
            "TMPDIR": str(tmp_path),
            **NO_IMDS,
        }
        started = time.monotonic()
        with assert_untouched(database_url, pg_server.bin("pg_dump")):
            result = run_entrypoint([], url=database_url, folder=folder, timeout=60, **env)
        elapsed = time.monotonic() - started
    finally:
        hole.close()
    out = output_of(result)
    assert result.returncode == 15, out
    assert elapsed < 2 * 3 * 2 + 10, elapsed  # one request's worst wait (S3_TIMEOUT per try, 3 tries), and the rest
    beats = [line for line in out.splitlines() if line.startswith("⏱️  Backup: still waiting for s3://backups/render")]
    assert beats, out
    assert "the S3 endpoint is unreachable" in assert_one_error(out)
