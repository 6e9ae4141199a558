"""The settings of one run, and the only place that reads the environment.

Each setting comes from its flag, else its environment variable, else its
default (README "Settings"). `Settings` is frozen and its repr never shows the
connection password; `secrets()` lists every form of it so the log pipeline can
scrub it from any line, including the driver's own error text.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import quote, unquote

from entrypoint.errors import UsageError

LogFormat = Literal["console", "json"]
SyncOnError = Literal["continue", "fail"]

# PostgreSQL accepts these units for time settings such as lock_timeout.
# Every variable `load` (and the early helpers) read. A child that must get exactly the settings it is
# given (the demo's deploy, the tests' runs) drops these from the environment it inherits.
ENVIRONMENT_VARIABLES = frozenset(
    {
        "MIGRATION_DATABASE_URL",
        "DATABASE_URL",
        "MIGRATIONS_DIR",
        "MIGRATIONS_SCHEMA",
        "MIGRATIONS_TABLE",
        "LOG_FORMAT",
        "CONNECT_TIMEOUT",
        "DDL_LOCK_TIMEOUT",
        "STATEMENT_TIMEOUT",
        "LOCK_WAIT_TIMEOUT",
        "MIGRATION_ATTEMPTS",
        "SYNC_ON_ERROR",
        "ALLOW_OUT_OF_ORDER",
        "MIGRATION_GUARDS",
        "BACKUP_DIR",
        "PG_DUMP",
        "PGPASSWORD",
        "ENTRYPOINT_DEBUG",
    }
)

_PG_UNITS_MS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
_PG_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?\s*$")
_URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@:]*:([^@/]*)@", re.IGNORECASE)
_DSN_PASSWORD = re.compile(r"(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


@dataclass(frozen=True)
class Settings:
    """Everything one run needs; built by `load()`, never mutated."""

    database_url: str = field(repr=False)
    migrations_dir: Path
    migrations_schema: str = "drizzle"
    migrations_table: str = "__drizzle_migrations"
    log_format: LogFormat = "console"
    connect_timeout: float = 60.0
    ddl_lock_timeout_ms: int = 5000
    statement_timeout_ms: int = 0
    lock_wait_timeout: float = 600.0
    migration_attempts: int = 5
    sync_on_error: SyncOnError = "continue"
    allow_out_of_order: bool = False
    dry_run: bool = False
    debug: bool = False
    command: tuple[str, ...] = ()
    guards: tuple[str, ...] = ()
    backup_dir: Path | None = None
    pg_dump: str | None = None
    extra_secrets: tuple[str, ...] = field(default=(), repr=False)

    def secrets(self) -> tuple[str, ...]:
        """Every string that must never be printed: the password, raw and URL-encoded."""
        found = set(self.extra_secrets)
        match = _URL_PASSWORD.match(self.database_url) or _DSN_PASSWORD.search(self.database_url)
        if match:
            raw = match.group(1).strip("'")
            found |= {raw, unquote(raw), quote(unquote(raw), safe="")}
        return tuple(sorted((s for s in found if s), key=len, reverse=True))


def _duration_ms(name: str, value: str) -> int:
    match = _PG_DURATION.match(value)
    if not match:
        raise UsageError(f"❌ {name}={value!r} is not a duration: use PostgreSQL's form, e.g. 5s, 500ms or 2min")
    number, unit = match.groups()
    # Like PostgreSQL: a bare number of a time setting is milliseconds.
    return round(float(number) * _PG_UNITS_MS[unit or "ms"])


def _seconds(name: str, value: str) -> float:
    match = _PG_DURATION.match(value)
    if not match:
        raise UsageError(f"❌ {name}={value!r} is not a number of seconds: use e.g. 60 or 90s")
    number, unit = match.groups()
    return float(number) * _PG_UNITS_MS[unit or "s"] / 1000


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise UsageError(f"❌ {name}={value!r} is not valid: use one of {', '.join(allowed)}")
    return value


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def default_migrations_dir(cwd: Path) -> Path:
    """`./drizzle`, else `./dist/drizzle`, else `./drizzle` (so the error names it)."""
    for candidate in (cwd / "drizzle", cwd / "dist" / "drizzle"):
        if candidate.is_dir():
            return candidate
    return cwd / "drizzle"


def load(
    flags: Mapping[str, object],
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Merge flags over the environment over the defaults.

    Raises `UsageError` for a missing database URL or any malformed value.
    """
    env = os.environ if environ is None else environ
    here = Path.cwd() if cwd is None else cwd

    def pick(flag: str, *names: str) -> str | None:
        value = flags.get(flag)
        if value is not None:
            return str(value)
        for name in names:
            if env.get(name):
                return env[name]
        return None

    url = pick("database_url", "MIGRATION_DATABASE_URL", "DATABASE_URL")
    if not url or not url.strip():
        raise UsageError(
            "❌ No database to migrate: set MIGRATION_DATABASE_URL or DATABASE_URL "
            "(postgresql://user:password@host:5432/dbname), or pass --database-url"
        )
    _validate_url(url.strip())
    folder = pick("migrations_dir", "MIGRATIONS_DIR")
    migrations_dir = (here / folder) if folder else default_migrations_dir(here)

    schema = pick("migrations_schema", "MIGRATIONS_SCHEMA") or "drizzle"
    table = pick("migrations_table", "MIGRATIONS_TABLE") or "__drizzle_migrations"
    attempts_text = pick("migration_attempts", "MIGRATION_ATTEMPTS") or "5"
    if not attempts_text.isdigit() or int(attempts_text) < 1:
        raise UsageError(f"❌ MIGRATION_ATTEMPTS={attempts_text!r} must be a whole number ≥ 1")

    guards = [str(g) for g in flags.get("guard") or ()]  # type: ignore[attr-defined]
    guards += [line.strip() for line in env.get("MIGRATION_GUARDS", "").splitlines()]
    backup_dir = pick("backup_dir", "BACKUP_DIR")
    return Settings(
        database_url=url.strip(),
        migrations_dir=migrations_dir.resolve(),
        migrations_schema=schema,
        migrations_table=table,
        log_format=_choice(  # type: ignore[arg-type]
            "LOG_FORMAT", pick("log_format", "LOG_FORMAT") or "console", ("console", "json")
        ),
        connect_timeout=_seconds("CONNECT_TIMEOUT", pick("connect_timeout", "CONNECT_TIMEOUT") or "60"),
        ddl_lock_timeout_ms=_duration_ms("DDL_LOCK_TIMEOUT", pick("ddl_lock_timeout", "DDL_LOCK_TIMEOUT") or "5s"),
        statement_timeout_ms=_duration_ms("STATEMENT_TIMEOUT", pick("statement_timeout", "STATEMENT_TIMEOUT") or "0"),
        lock_wait_timeout=_seconds("LOCK_WAIT_TIMEOUT", pick("lock_wait_timeout", "LOCK_WAIT_TIMEOUT") or "600"),
        migration_attempts=int(attempts_text),
        sync_on_error=_choice(  # type: ignore[arg-type]
            "SYNC_ON_ERROR", pick("sync_on_error", "SYNC_ON_ERROR") or "continue", ("continue", "fail")
        ),
        allow_out_of_order=bool(flags.get("allow_out_of_order")) or _flag(env.get("ALLOW_OUT_OF_ORDER", "")),
        dry_run=bool(flags.get("dry_run")),
        debug=_flag(env.get("ENTRYPOINT_DEBUG", "")),
        command=tuple(str(arg) for arg in flags.get("command") or ()),  # type: ignore[attr-defined]
        extra_secrets=tuple(s for s in (env.get("PGPASSWORD", ""),) if s),
        guards=tuple(g for g in guards if g and not g.startswith("#")),
        backup_dir=(here / backup_dir).resolve() if backup_dir else None,
        pg_dump=pick("pg_dump", "PG_DUMP"),
    )


def _validate_url(url: str) -> None:
    from psycopg import conninfo  # keep --help and usage errors free of the driver import

    try:
        params = conninfo.conninfo_to_dict(url)
    except Exception:  # noqa: BLE001 - the driver's text may quote the password, so it is not shown
        params = None
    # libpq only checks the port at connect time, after every retry: check it now.
    ports = str((params or {}).get("port") or "5432").split(",")
    if params is None or not all(port.strip().isdigit() for port in ports):
        raise UsageError(
            "❌ DATABASE_URL is not a valid PostgreSQL connection string: use "
            "postgresql://user:password@host:5432/dbname (percent-encode special characters in the password)"
        )


def early_log_format(argv: list[str], environ: Mapping[str, str] | None = None) -> str:
    """The log format before the full settings exist, so even a usage error is rendered right."""
    env = os.environ if environ is None else environ
    for index, arg in enumerate(argv):
        if arg == "--":
            break
        if arg.startswith("--log-format="):
            return arg.split("=", 1)[1]
        if arg == "--log-format" and index + 1 < len(argv):
            return argv[index + 1]
    return "json" if env.get("LOG_FORMAT") == "json" else "console"


def early_secrets(argv: list[str], environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Passwords visible in argv or the environment, scrubbed from output before settings load."""
    env = os.environ if environ is None else environ
    candidates = [*argv, env.get("MIGRATION_DATABASE_URL", ""), env.get("DATABASE_URL", "")]
    found: set[str] = {env["PGPASSWORD"]} if env.get("PGPASSWORD") else set()
    for text in candidates:
        for piece in (text, text.split("=", 1)[-1]):
            found |= set(Settings(database_url=piece, migrations_dir=Path()).secrets())
    return tuple(found)


def debug_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """ENTRYPOINT_DEBUG=1: print tracebacks for internal errors."""
    env = os.environ if environ is None else environ
    return _flag(env.get("ENTRYPOINT_DEBUG", ""))
