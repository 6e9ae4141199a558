"""pytest plugin and helpers: run the entrypoint as operators do, and check what it left behind.

This module owns what the test files share, once: starting the entrypoint
(`run_entrypoint`, `start_entrypoint`, in a clean environment, every run
checked for a leaked password), reading the database back (`ledger`, `query`,
`schema_dump`), the two assertions every failure test makes
(`assert_untouched`: the database as it was; `assert_one_error`: exactly one
`❌` line, built on `error_lines`), and the `production_db`, `users_app` and
`role_factory` fixtures. Loaded from tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

import psycopg
import pytest

from entrypoint.config import ENVIRONMENT_VARIABLES
from harness import production
from harness.postgres import create_database, drop_database
from tests.drizzle_ref import EXAMPLE_MIGRATIONS, drizzle_migrate
from tests.folders import USERS_SCHEMA, add_custom, generated_folder

if TYPE_CHECKING:
    from tests.fix_s3 import S3Bucket

REPO = Path(__file__).resolve().parent.parent
# DESIGN.md's sync lines on the runbook's drifted ledger (`production_db`), exactly as operators grep for them.
RUNBOOK_SYNC_LINES = [
    "🔄 Synchronisation des migrations...",
    "📊 Migrations actuelles en base: 11",
    "⚠️  Désynchronisation détectée - correction en cours...",
    "🔧 Mise à jour de 3 migrations...",
    "   283 → 8 (0008_brave_songbird)",
    "   284 → 9 (0009_daily_chat)",
    "   285 → 10 (0010_perpetual_magneto)",
    "✅ Migrations synchronisées avec succès !",
    "🎯 Système de migrations prêt pour Drizzle",
]


def entrypoint_env(url: str | None, **extra: str) -> dict[str, str]:
    """A clean environment for a child entrypoint: only what the test sets."""
    env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT_VARIABLES}
    env["PYTHONPATH"] = str(REPO)
    if url is not None:
        env["DATABASE_URL"] = url
    env.update(extra)
    return env


def imported_by(args: list[str], url: str, **extra: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `python -X importtime -m entrypoint ARGS`; the run, and every module it imported."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "entrypoint", *args],
        env=entrypoint_env(url, **extra),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    modules = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "import time:" in line}
    return result, modules


def _settings(folder: Path | None, env: dict[str, str]) -> dict[str, str]:
    """What a test sets for one run: its variables, and MIGRATIONS_DIR for `folder`."""
    return env | ({"MIGRATIONS_DIR": str(folder)} if folder is not None else {})


def run_entrypoint(
    args: list[str],
    *,
    url: str | None,
    folder: Path | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
    check_secrets: bool = True,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    """`python -m entrypoint ARGS` in a subprocess, output captured (`output_of` merges the two streams).

    `check_secrets=False` only where the password is a word the lines themselves contain (`drizzle`).
    """
    extra = _settings(folder, env)
    result = subprocess.run(
        [sys.executable, "-m", "entrypoint", *args],
        env=entrypoint_env(url, **extra),
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check_secrets:
        assert_no_secret(output_of(result), url, *extra.values(), *args)
        assert_no_bare_secret(output_of(result), *(extra.get(name) for name in BARE_SECRETS))
    return result


def start_entrypoint(
    args: list[str], *, url: str | None, folder: Path | None = None, **env: str
) -> subprocess.Popen[str]:
    """`python -m entrypoint ARGS` started in the background, stderr merged into its stdout pipe."""
    return subprocess.Popen(
        [sys.executable, "-m", "entrypoint", *args],
        env=entrypoint_env(url, **_settings(folder, env)),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def assert_no_secret(output: str, *sources: str | None) -> None:
    """Every run, whatever its outcome: no password from any URL it was given appears in its output."""
    for source in sources:
        password = urlsplit(source).password if source and "://" in source else None
        if password:
            for form in {password, unquote(password), quote(unquote(password), safe="")}:
                assert form not in output, "a password leaked into the output"


# Variables whose whole value is a secret (not a URL holding one).
BARE_SECRETS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "PGPASSWORD")


def assert_no_bare_secret(output: str, *secrets_: str | None) -> None:
    """No secret appears, raw or as JSON escapes it (a quote or a backslash in it would otherwise hide a leak)."""
    for secret in secrets_:
        if secret:
            for form in {secret, json.dumps(secret, ensure_ascii=False)[1:-1]}:
                assert form not in output, "a secret leaked into the output"


def output_of(result: subprocess.CompletedProcess[str]) -> str:
    """Everything the process printed, both streams."""
    return result.stdout + result.stderr


def ledger(url: str, schema: str = "drizzle", table: str = "__drizzle_migrations") -> list[tuple[Any, ...]]:
    """(id, hash, created_at) rows in id order."""
    with psycopg.connect(url) as conn:
        query = psycopg.sql.SQL("SELECT id, hash, created_at FROM {} ORDER BY id").format(
            psycopg.sql.Identifier(schema, table)
        )
        return [tuple(row) for row in conn.execute(query).fetchall()]


def query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement and return its rows (autocommit)."""
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql.encode(), params or None)
        return [tuple(row) for row in cur.fetchall()] if cur.description else []


def clone_database(admin_url: str, source_url: str, target_url: str) -> None:
    """Replace the (fresh) database of `target_url` with a copy of `source_url`'s, made from it as a template."""
    source, target = (unquote(urlsplit(url).path.lstrip("/")) for url in (source_url, target_url))
    drop_database(admin_url, target)
    create_database(admin_url, target, template=source)


def schema_dump(pg_dump: Path, url: str, *, data: bool = False, exclude: Sequence[str] = ()) -> str:
    """`pg_dump --schema-only` (with `data`, the whole database), minus lines that differ between equal databases.

    `exclude`: tables left out (`--exclude-table`), e.g. the audit table drizzle-orm never makes.
    """
    scope = ([] if data else ["--schema-only"]) + [f"--exclude-table={table}" for table in exclude]
    out = subprocess.run(
        [str(pg_dump), *scope, "--no-owner", "--no-privileges", f"--dbname={url}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    keep = [
        line
        for line in out.splitlines()
        if line.strip() and not line.startswith(("--", "\\restrict", "\\unrestrict", "SET ", "SELECT pg_catalog"))
    ]
    return "\n".join(keep)


@contextlib.contextmanager
def assert_untouched(url: str, pg_dump: Path, *, data: bool = False) -> Iterator[None]:
    """The database as it was: the ledger rows and `schema_dump` (with `data`, of the rows too) equal after the block."""
    before = _snapshot(url, pg_dump, data=data)
    yield
    assert _snapshot(url, pg_dump, data=data) == before, "the database changed"


def _snapshot(url: str, pg_dump: Path, *, data: bool) -> tuple[list[tuple[Any, ...]] | None, str]:
    exists = query(url, "SELECT to_regclass('drizzle.__drizzle_migrations') IS NOT NULL") == [(True,)]
    return (ledger(url) if exists else None), schema_dump(pg_dump, url, data=data)


def error_lines(output: str) -> list[str]:
    """Every line of `output` that starts with ❌, in order (none for a run that succeeded)."""
    return [line for line in output.splitlines() if line.startswith("❌")]


def assert_one_error(output: str) -> str:
    """The one line of `output` that starts with ❌ (every failure prints exactly one); fails the test otherwise."""
    errors = error_lines(output)
    assert len(errors) == 1, output
    return errors[0]


@pytest.fixture
def production_db(database_url: str, tmp_path: Path) -> str:
    """A fresh database as the runbook's production stood before the deploy, 0000-0010 applied by drizzle-orm."""
    production.build(database_url, tmp_path, drizzle_migrate)
    return database_url


# `users_app`'s rows when a test wants the table not empty: fifty users.
FIFTY_USERS = ("INSERT INTO users (email) SELECT 'u' || n || '@example.com' FROM generate_series(1, 50) n",)


@pytest.fixture
def users_app(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Path]:
    """`make(*customs, url=, schema=, rows=, name=) -> folder`: a users app already migrated, with custom migrations pending.

    A drizzle-kit project in tmp_path/NAME (tests/folders.py) from SCHEMA (the users table by default),
    applied by drizzle-orm to URL (this test's `database_url` unless given), each statement of ROWS run
    there (seed rows, ANALYZE), then each (name, sql) of CUSTOMS added by `drizzle-kit generate --custom`
    and left pending. Returns the drizzle-kit `out` folder (its project is the folder's parent).
    """

    def make(
        *customs: tuple[str, str],
        url: str | None = None,
        schema: str = USERS_SCHEMA,
        rows: Sequence[str] = (),
        name: str = "app",
    ) -> Path:
        target = url if url is not None else request.getfixturevalue("database_url")
        project = tmp_path / name
        folder = generated_folder(project, [], schema=schema)
        assert drizzle_migrate(target, folder).returncode == 0
        for statement in rows:
            query(target, statement)
        for custom, body in customs:
            add_custom(project, custom, body)
        return folder

    return make


@pytest.fixture
def role_factory(pg_server: Any, database_url: str, admin_url: str) -> Iterator[Any]:
    """`make(password, *settings) -> url`: a new non-superuser role that may log in to this test's database.

    Each `setting` is run as `ALTER ROLE <role> <setting>` (e.g. `SET statement_timeout = '1ms'`). The
    roles and what they own are dropped after the test.
    """
    made: list[str] = []
    dbname = unquote(urlsplit(database_url).path.lstrip("/"))

    def make(password: str, *settings: str, privileges: str = "CREATE, CONNECT, TEMPORARY") -> str:
        name = f"app_{secrets.token_hex(4)}"
        ident = psycopg.sql.Identifier(name)
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                psycopg.sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(ident, psycopg.sql.Literal(password))
            )
            admin.execute(
                psycopg.sql.SQL("GRANT " + privileges + " ON DATABASE {} TO {}").format(
                    psycopg.sql.Identifier(dbname), ident
                )
            )
            for setting in settings:
                admin.execute(psycopg.sql.SQL("ALTER ROLE {} ").format(ident) + psycopg.sql.SQL(setting))
        with psycopg.connect(database_url, autocommit=True) as db:
            db.execute(psycopg.sql.SQL("GRANT ALL ON SCHEMA public TO {}").format(ident))
        made.append(name)
        return pg_server.url(dbname, user=name, password=password)

    try:
        yield make
    finally:
        for name in made:
            ident = psycopg.sql.Identifier(name)
            with contextlib.suppress(psycopg.Error), psycopg.connect(database_url, autocommit=True) as db:
                db.execute(psycopg.sql.SQL("DROP OWNED BY {} CASCADE").format(ident))
            with contextlib.suppress(psycopg.Error), psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(psycopg.sql.SQL("DROP ROLE IF EXISTS {}").format(ident))


# Backups as the deploy and `restore` tests take them: the suite's own client tools, the test bucket.
# No instance metadata service here: boto3 must never try 169.254.169.254 for credentials.
NO_IMDS = {"AWS_EC2_METADATA_DISABLED": "true"}
UPLOADED = re.compile(r"📤 Backup uploaded and checked \(size and sha256\): (s3://\S+) \((\d+) KB, ")


@pytest.fixture
def suite_pg_tools(pg_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite's pg_dump (and the pg_restore beside it), for `suite_pg_dump()`, during the test."""
    monkeypatch.setenv("ENTRYPOINT_TEST_PG_DUMP", str(pg_server.bin("pg_dump")))


def suite_pg_dump() -> str:
    """The pg_dump `suite_pg_tools` set (a module using these helpers marks its tests with that fixture)."""
    return os.environ["ENTRYPOINT_TEST_PG_DUMP"]


def deploy_with_backup_url(
    url: str, bucket: S3Bucket, tmp_path: Path, *args: str, folder: Path = EXAMPLE_MIGRATIONS, **env: str
) -> subprocess.CompletedProcess[str]:
    """The deploy with BACKUP_URL at BUCKET and its key, the suite's pg_dump, TMPDIR in tmp_path/tmp; ENV wins."""
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    settings = {
        "BACKUP_URL": bucket.url(),
        "TMPDIR": str(tmp),
        "PG_DUMP": suite_pg_dump(),
        **NO_IMDS,
        **bucket.env,
        **env,
    }
    return run_entrypoint(list(args), url=url, folder=folder, **settings)
