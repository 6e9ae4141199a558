"""The settings, declared once, and the only place that reads the environment.

`SETTINGS` is the one table: for each setting its environment variables, its
flag, its default, its parser, its help and the commands that read it. Loading,
each command's flags, `--help` and the documented list all come from it, and a
command reads only its own settings (so a typo in DDL_LOCK_TIMEOUT cannot stop
`status`). A flag wins over its environment variable, which wins over the default;
a repeatable flag (`--guard`) adds to its variable instead.

`Settings` is frozen and its repr never shows the password; `secrets()` lists
every form of it (URL userinfo, `?password=`, `password=` in a key=value string,
PGPASSWORD), so the log pipeline can scrub it from any value that may quote it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal
from urllib.parse import quote, unquote

from entrypoint.core.model import (
    INDEX_BUILD_MEANS,
    INDEX_MODES,
    MODES,
    ONLINE_MODES,
    WHEN_AHEAD,
    IndexMode,
    Mode,
    OnlineMode,
    WhenAhead,
)
from entrypoint.errors import Untrusted, UsageError

LogFormat = Literal["console", "json"]
SyncOnError = Literal["continue", "fail"]
DdlPolicy = Literal["warn", "refuse"]
Parser = Callable[[str, str, Path], object]

DEPLOY, STATUS, VERIFY, LINT, BASELINE, RESTORE = "deploy", "status", "verify", "lint", "baseline", "restore"
ROLLBACK = "rollback"
COMMANDS = (DEPLOY, STATUS, VERIFY, LINT, BASELINE, RESTORE, ROLLBACK)
_ALL = frozenset(COMMANDS)
# Commands that can run without a database: `lint` lints the folder offline when none is set.
OFFLINE_COMMANDS: frozenset[str] = frozenset({LINT})


@dataclass(frozen=True)
class Settings:
    """Everything one run needs; built by `load()` from `SETTINGS`, never mutated. No defaults here."""

    database_url: str = field(repr=False)
    migrations_dir: Path
    migrations_schema: str
    migrations_table: str
    log_format: LogFormat
    connect_timeout: float
    ddl_lock_timeout_ms: int
    statement_timeout_ms: int
    lock_wait_timeout: float
    migration_attempts: int
    sync_on_error: SyncOnError
    transaction_mode: Mode
    ddl_policy: DdlPolicy
    online_ddl: OnlineMode | None
    index_build: IndexMode
    index_build_threshold: int
    heartbeat_interval: float
    deploy_deadline: float
    allow_out_of_order: bool
    when_ahead: WhenAhead
    guards: tuple[str, ...]
    backup_dir: Path | None
    backup_url: str | None
    backup_reuse_window: float
    pg_dump: str | None
    baseline_on_empty: bool
    require_migrated: bool
    aws_access_key_id: str | None
    aws_secret_access_key: str | None = field(repr=False)
    aws_session_token: str | None = field(repr=False)
    aws_region: str | None
    aws_endpoint_url: str | None
    s3_timeout: float
    dry_run: bool
    through: str | None
    debug: bool
    pgpassword: str = field(repr=False)

    def online_mode(self) -> tuple[OnlineMode, str]:
        """ONLINE_DDL (else its alias INDEX_BUILD): the mode, and the setting as the operator wrote it, for lines."""
        if self.online_ddl is not None:
            return self.online_ddl, f"ONLINE_DDL={self.online_ddl}"
        if self.index_build != "auto":
            return INDEX_BUILD_MEANS[self.index_build], f"INDEX_BUILD={self.index_build}"
        return "auto", "ONLINE_DDL=auto"

    def secrets(self) -> tuple[str, ...]:
        """Every string that must never be printed: the password in each form it may take, and the S3 secrets."""
        s3 = tuple(s for s in (self.aws_secret_access_key, self.aws_session_token) if s)
        return secrets_in(self.database_url, bare=(self.pgpassword, *s3))


# --------------------------------------------------------------------------
# Parsers: (name, text, cwd) -> value; each raises UsageError naming the setting.

# PostgreSQL's units for time settings such as lock_timeout.
_PG_UNITS_MS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
_PG_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?\s*$")


def _text(_: str, text: str, __: Path) -> str:
    return text


def _duration_ms(name: str, text: str, _: Path) -> int:
    match = _PG_DURATION.match(text)
    if not match:
        raise UsageError(
            "❌ {name}={value!r} is not a duration: use PostgreSQL's form, e.g. 5s, 500ms or 2min",
            name=name,
            value=Untrusted(text),
        )
    number, unit = match.groups()
    return round(float(number) * _PG_UNITS_MS[unit or "ms"])  # a bare number is ms, as in PostgreSQL


def _seconds(name: str, text: str, _: Path) -> float:
    match = _PG_DURATION.match(text)
    if not match:
        raise UsageError(
            "❌ {name}={value!r} is not a number of seconds: use e.g. 60 or 90s", name=name, value=Untrusted(text)
        )
    number, unit = match.groups()
    return float(number) * _PG_UNITS_MS[unit or "s"] / 1000


def _positive_seconds(name: str, text: str, here: Path) -> float:
    seconds = _seconds(name, text, here)
    if seconds <= 0:
        raise UsageError("❌ {name}={value!r} must be more than 0 seconds", name=name, value=Untrusted(text))
    return seconds


# PostgreSQL's units for memory settings; a bare number is bytes.
_SIZE_UNITS = {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)?\s*$")


def _size_bytes(name: str, text: str, _: Path) -> int:
    match = _SIZE.match(text)
    unit = (match.group(2) or "b").lower() if match else ""
    if not match or unit not in _SIZE_UNITS:
        raise UsageError(
            "❌ {name}={value!r} is not a size: use PostgreSQL's units, e.g. 10MB, 512kB or 1GB",
            name=name,
            value=Untrusted(text),
        )
    return round(float(match.group(1)) * _SIZE_UNITS[unit])


def _positive_int(name: str, text: str, _: Path) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise UsageError("❌ {name}={value!r} must be a whole number ≥ 1", name=name, value=Untrusted(text))
    return int(text)


def _choice(*allowed: str) -> Parser:
    def parse(name: str, text: str, _: Path) -> str:
        if text not in allowed:
            raise UsageError(
                "❌ {name}={value!r} is not valid: use one of {allowed}",
                name=name,
                value=Untrusted(text),
                allowed=", ".join(allowed),
            )
        return text

    return parse


_ON, _OFF = frozenset({"1", "true", "yes", "on"}), frozenset({"", "0", "false", "no", "off"})


def _online_ddl(name: str, text: str, here: Path) -> OnlineMode | None:
    return _choice(*ONLINE_MODES)(name, text, here) if text else None  # type: ignore[return-value]


def _flag(name: str, text: str, _: Path) -> bool:
    # A typo must not read as "off": REQUIRE_MIGRATED=ture would serve an unmigrated schema.
    word = text.strip().lower()
    if word not in _ON | _OFF:
        raise UsageError(
            "❌ {name}={value!r} is not a switch: use 1 or 0 (true/false, yes/no, on/off)",
            name=name,
            value=Untrusted(text),
        )
    return word in _ON


def _path(_: str, text: str, here: Path) -> Path:
    return (here / text).resolve()


def _optional_path(name: str, text: str, here: Path) -> Path | None:
    return _path(name, text, here) if text else None


def _optional_text(_: str, text: str, __: Path) -> str | None:
    return text or None


def _lines(_: str, text: str, __: Path) -> tuple[str, ...]:
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#"))


# s3://bucket/prefix: S3's bucket naming rules (R2, B2 and MinIO follow them), then any key prefix.
_S3_URL = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(.*))?$")


def parse_s3_url(text: str) -> tuple[str, str] | None:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix"), slashes trimmed; None if it is not one."""
    match = _S3_URL.match(text.strip())
    if not match:
        return None
    return match.group(1), (match.group(2) or "").strip("/")


def _backup_url(name: str, text: str, _: Path) -> str | None:
    if not text.strip():
        return None
    if parse_s3_url(text) is None:
        raise UsageError(
            "❌ {name}={value!r} is not an S3 location: use s3://bucket or s3://bucket/prefix (a bucket name of "
            "3-63 lowercase letters, digits, dots and hyphens); set AWS_ENDPOINT_URL for R2, B2 or MinIO",
            name=name,
            value=Untrusted(text),
        )
    return text.strip()


def _database_url(_: str, text: str, __: Path) -> str:
    url = text.strip()
    if url:
        _validate_url(url)
    return url


def default_migrations_dir(cwd: Path) -> Path:
    """`./drizzle`, else `./dist/drizzle`, else `./drizzle` (so the error names it)."""
    for candidate in (cwd / "drizzle", cwd / "dist" / "drizzle"):
        if candidate.is_dir():
            return candidate
    return cwd / "drizzle"


def _migrations_dir(name: str, text: str, here: Path) -> Path:
    return _path(name, text, here) if text else default_migrations_dir(here).resolve()


# --------------------------------------------------------------------------
# The table.


@dataclass(frozen=True)
class Setting:
    """One setting: where it is read from, its default (as text, parsed like input), and who reads it."""

    field: str
    env: tuple[str, ...]
    flag: str | None
    default: str
    parse: Parser
    help: str
    commands: frozenset[str] = _ALL
    shown_default: str | None = None  # for --help when `default` is not what a reader should see
    choices: tuple[str, ...] = ()
    metavar: str = "VALUE"
    kind: Literal["value", "switch", "repeatable"] = "value"

    @property
    def name(self) -> str:
        """How messages name it: its first environment variable, else its flag."""
        return self.env[0] if self.env else str(self.flag)

    @property
    def dest(self) -> str:
        """The argparse attribute of its flag."""
        return self.field


_D = frozenset({DEPLOY})  # read by the main command only
# How statements run (timeouts, retries, the heartbeat, the deadline): the deploy's, and `rollback`'s.
_RUNNING = frozenset({DEPLOY, ROLLBACK})
_LOCKING = frozenset({DEPLOY, BASELINE, RESTORE, ROLLBACK})  # read by the commands that take the migration lock
_DR = frozenset({DEPLOY, RESTORE, ROLLBACK})  # read by the commands that back up, restore, or run the guards
# How index builds (and a rollback's drops) run: the deploy runs them, `status` and `restore` show it.
_PLANNING = frozenset({DEPLOY, STATUS, RESTORE})
_INDEXES = _PLANNING | {ROLLBACK}
# What the ledger is read against: the deploy, and the commands that say where the database stands.
_READING = frozenset({DEPLOY, STATUS, VERIFY, RESTORE})
# fmt: off
SETTINGS: tuple[Setting, ...] = (
    Setting("database_url", ("MIGRATION_DATABASE_URL", "DATABASE_URL"), "--database-url", "", _database_url,
            "where to migrate: a postgresql:// URL or a libpq key=value string", shown_default="required",
            metavar="URL"),
    Setting("migrations_dir", ("MIGRATIONS_DIR",), "--migrations-dir", "", _migrations_dir,
            "the drizzle-kit `out` folder", shown_default="./drizzle, else ./dist/drizzle", metavar="DIR"),
    Setting("migrations_schema", ("MIGRATIONS_SCHEMA",), "--migrations-schema", "drizzle", _text,
            "the ledger's schema (drizzle-orm's migrationsSchema)", metavar="NAME"),
    Setting("migrations_table", ("MIGRATIONS_TABLE",), "--migrations-table", "__drizzle_migrations", _text,
            "the ledger's table (drizzle-orm's migrationsTable)", metavar="NAME"),
    Setting("log_format", ("LOG_FORMAT",), "--log-format", "console", _choice("console", "json"),
            "console (the exact lines) or json (one object a line)", choices=("console", "json")),
    Setting("connect_timeout", ("CONNECT_TIMEOUT",), "--connect-timeout", "60", _seconds,
            "seconds to keep retrying an unreachable database", metavar="SECONDS"),
    Setting("ddl_lock_timeout_ms", ("DDL_LOCK_TIMEOUT",), "--ddl-lock-timeout", "5s", _duration_ms,
            "lock_timeout of migration statements and of the restore (5s, 500ms, 1min; a bare number is ms), retried "
            "with backoff",
            _DR, metavar="DURATION"),
    Setting("statement_timeout_ms", ("STATEMENT_TIMEOUT",), "--statement-timeout", "0", _duration_ms,
            "statement_timeout of migration statements; 0 is off", _RUNNING, metavar="DURATION"),
    Setting("lock_wait_timeout", ("LOCK_WAIT_TIMEOUT",), "--lock-wait-timeout", "600", _seconds,
            "seconds to wait for another deploy's migration lock", _LOCKING, metavar="SECONDS"),
    Setting("migration_attempts", ("MIGRATION_ATTEMPTS",), "--migration-attempts", "5", _positive_int,
            "tries of a migration (or restore) transaction on transient errors, and of a lost session", _DR,
            metavar="N"),
    Setting("sync_on_error", ("SYNC_ON_ERROR",), "--sync-on-error", "continue", _choice("continue", "fail"),
            "continue or fail when the ledger repair itself errors", _D, choices=("continue", "fail")),
    Setting("transaction_mode", ("TRANSACTION_MODE",), "--transaction-mode", "auto", _choice(*MODES),
            "auto (one transaction, committing only where PostgreSQL requires it), per-migration, or single "
            "(strictly one, as drizzle-orm)", _PLANNING, choices=MODES),
    Setting("ddl_policy", ("DDL_POLICY",), "--ddl-policy", "warn", _choice("warn", "refuse"),
            "warn: print the DDL lint's warnings and dangers before migrating; refuse: stop before any change "
            "(exit 20) unless each statement carries -- entrypoint:allow <rule>", _D, choices=("warn", "refuse")),
    Setting("online_ddl", ("ONLINE_DDL",), "--online-ddl", "", _online_ddl,
            "auto: apply an index, foreign key, CHECK, NOT NULL or unique key on a table of at least "
            "INDEX_BUILD_THRESHOLD online, in parts that never stop its writes (CONCURRENTLY, NOT VALID then "
            "VALIDATE); always: whatever the size; never: as drizzle-orm, in the migration's transaction; rollback "
            "drops an index-only migration's indexes the same way", _INDEXES, shown_default="auto",
            choices=ONLINE_MODES),
    Setting("index_build", ("INDEX_BUILD",), "--index-build", "auto", _choice(*INDEX_MODES),
            "ONLINE_DDL's old name, kept as its alias: concurrent is always, transaction is never, auto is auto",
            _INDEXES, choices=INDEX_MODES),
    Setting("index_build_threshold", ("INDEX_BUILD_THRESHOLD", "ONLINE_DDL_THRESHOLD"), "--index-build-threshold",
            "10MB", _size_bytes, "ONLINE_DDL=auto applies a statement online (rollback: drops an index "
            "CONCURRENTLY) when its table's size on disk is at least this", _INDEXES, metavar="SIZE"),
    Setting("heartbeat_interval", ("HEARTBEAT_INTERVAL",), "--heartbeat-interval", "30", _positive_seconds,
            "while a migration statement (a backup, a restore) runs longer than this, a line every this many "
            "seconds says how far it is",
            _DR, metavar="SECONDS"),
    Setting("deploy_deadline", ("DEPLOY_DEADLINE",), "--deploy-deadline", "14min", _seconds,
            "from the start, when to cancel the running statement, roll back, release the lock and exit 21, "
            "before Render's 15-minute limit kills the deploy mid-statement (a rollback or a restore: exit 21 too); "
            "0 is off", _DR, metavar="DURATION"),
    Setting("allow_out_of_order", ("ALLOW_OUT_OF_ORDER",), "--allow-out-of-order", "", _flag,
            "1 applies never-applied migrations older than the newest applied one", _D, shown_default="off",
            kind="switch"),
    Setting("when_ahead", ("WHEN_AHEAD",), "--when-ahead", "start", _choice(*WHEN_AHEAD),
            "a database ahead of the folder (every migration applied, the other rows newer: an older release "
            "after a rollback): start (a warning line per newer migration, nothing written, the app started) or "
            "refuse (exit 7; status and the start gate exit 12)", _READING, choices=WHEN_AHEAD),
    Setting("guards", ("MIGRATION_GUARDS",), "--guard", "", _lines,
            "queries (one a line; --guard repeatable) whose results must not change across the migrations "
            "(restore prints them after restoring; rollback holds them across its reversals)", _DR,
            shown_default="none", metavar="SQL", kind="repeatable"),
    Setting("backup_dir", ("BACKUP_DIR",), "--backup-dir", "", _optional_path,
            "keep a checked pg_dump -Fc in this folder, taken before the first change when migrations are pending "
            "(rollback: before it reverses anything)", _RUNNING, shown_default="off", metavar="DIR"),
    Setting("backup_url", ("BACKUP_URL",), "--backup-url", "", _backup_url,
            "upload that checked dump to s3://bucket/prefix (AWS S3, R2, B2, MinIO: see AWS_ENDPOINT_URL)", _RUNNING,
            shown_default="off", metavar="S3_URL"),
    Setting("backup_reuse_window", ("BACKUP_REUSE_WINDOW",), "--backup-reuse-window", "1h", _seconds,
            "a restart reuses a backup of the same state (server, database, last applied, pending set) this recent; "
            "0 never",
            _RUNNING, metavar="SECONDS"),
    Setting("pg_dump", ("PG_DUMP",), "--pg-dump", "", _optional_text,
            "the pg_dump used for the backup; pg_restore (the check, and restore) is taken from beside it", _DR,
            shown_default="pg_dump on PATH", metavar="PATH"),
    Setting("baseline_on_empty", ("BASELINE_ON_EMPTY",), "--baseline-on-empty", "", _flag,
            "1: when there is no ledger (or an empty one) but the first migration's objects already exist "
            "(drizzle-kit push), record the migrations the schema proves, as `baseline` does, then deploy", _D,
            shown_default="off", kind="switch"),
    Setting("require_migrated", ("REQUIRE_MIGRATED",), "--require-migrated", "", _flag,
            "the start gate: migrate nothing, take no lock; exec COMMAND only if every migration is applied and "
            "the ledger in step, else print status's lines and exit 12 (when preDeployCommand migrates)", _D,
            shown_default="off", kind="switch"),
    Setting("aws_access_key_id", ("AWS_ACCESS_KEY_ID",), None, "", _optional_text,
            "the S3 key id for BACKUP_URL and restore from s3://", _DR, shown_default="boto3's usual sources"),
    Setting("aws_secret_access_key", ("AWS_SECRET_ACCESS_KEY",), None, "", _optional_text,
            "its secret: scrubbed from every output", _DR, shown_default="boto3's usual sources"),
    Setting("aws_session_token", ("AWS_SESSION_TOKEN",), None, "", _optional_text,
            "a temporary credential's token: scrubbed from every output", _DR, shown_default="unset"),
    Setting("aws_region", ("AWS_REGION", "AWS_DEFAULT_REGION"), None, "", _optional_text,
            "the bucket's region (auto for R2)", _DR, shown_default="boto3's default"),
    Setting("aws_endpoint_url", ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"), None, "", _optional_text,
            "the S3 API's URL for R2, B2 or MinIO (e.g. https://<account>.r2.cloudflarestorage.com)", _DR,
            shown_default="AWS S3"),
    Setting("s3_timeout", ("S3_TIMEOUT",), "--s3-timeout", "20", _positive_seconds,
            "seconds one S3 request may wait to connect, or for the store's answer, before it is retried (3 tries "
            "in all), then the backup or restore stops", _DR, metavar="SECONDS"),
    Setting("dry_run", (), "--dry-run", "", _flag,
            "print what would be done (deploy: the ledger repairs, the pending migrations, where the run commits "
            "and how each index is built; baseline: what it would record; restore: the dump's contents and the "
            "ledgers; rollback: each reversing statement and what it costs); change nothing, exec nothing", _LOCKING,
            shown_default="off", kind="switch"),
    Setting("through", (), "--through", "", _optional_text,
            "baseline: record no migration after TAG, and take your word for those up to it that nothing can be "
            "checked for (data migrations, functions)", frozenset({BASELINE}), shown_default="the last migration",
            metavar="TAG"),
    Setting("debug", ("ENTRYPOINT_DEBUG",), None, "", _flag,
            "1 prints a traceback for internal errors, and other sessions' SQL in the heartbeat and blocker lines "
            "(scrubbed, then cut) instead of its command word alone", shown_default="off"),
    Setting("pgpassword", ("PGPASSWORD",), None, "", _text,
            "libpq's password variable: used by libpq, and scrubbed from every output", shown_default="unset"),
)
# fmt: on
BY_FIELD = {setting.field: setting for setting in SETTINGS}
# Every variable this module reads. A child that must get exactly the settings it is given (the
# tests' runs) drops these from the environment it inherits.
ENVIRONMENT_VARIABLES = frozenset(name for setting in SETTINGS for name in setting.env)


def settings_of(command: str) -> tuple[Setting, ...]:
    """The settings `command` reads, in table order."""
    return tuple(s for s in SETTINGS if command in s.commands)


def _raw(setting: Setting, flags: Mapping[str, object], env: Mapping[str, str]) -> str:
    given = flags.get(setting.dest)
    from_env = next((env[name] for name in setting.env if env.get(name)), None)
    if setting.kind == "repeatable":
        values = [str(v) for v in given or ()]  # type: ignore[attr-defined]
        return "\n".join([*values, from_env or ""])
    if given is not None and given is not False:
        return "1" if given is True else str(given)
    return from_env if from_env is not None else setting.default


def load(
    command: str,
    flags: Mapping[str, object],
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Merge flags over the environment over the defaults, for the settings `command` reads.

    The others keep their parsed default, whatever the environment says. Raises
    `UsageError` (exit 2) for a missing database URL or any malformed value.
    """
    env = os.environ if environ is None else environ
    here = Path.cwd() if cwd is None else cwd
    values: dict[str, object] = {}
    for setting in SETTINGS:
        text = _raw(setting, flags, env) if command in setting.commands else setting.default
        values[setting.field] = setting.parse(setting.name, text, here)
    _agree(values)
    if not values["database_url"] and command not in OFFLINE_COMMANDS:
        raise UsageError(
            "❌ No database to migrate: set MIGRATION_DATABASE_URL or DATABASE_URL "
            "(postgresql://user:password@host:5432/dbname), or pass --database-url"
        )
    return Settings(**values)  # type: ignore[arg-type]  # each parser returns its field's type


def _agree(values: Mapping[str, object]) -> None:
    """ONLINE_DDL and its old name INDEX_BUILD, both set, must say the same thing."""
    online, index = values["online_ddl"], str(values["index_build"])
    if online is not None and index != "auto" and INDEX_BUILD_MEANS[index] != online:
        raise UsageError(
            "❌ ONLINE_DDL={online} and INDEX_BUILD={index} disagree: INDEX_BUILD is ONLINE_DDL's old name "
            "(concurrent is always, transaction is never). Set ONLINE_DDL only",
            online=online,
            index=index,
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


# --------------------------------------------------------------------------
# Secrets, and what the CLI needs before the settings exist.

_URL_USERINFO = re.compile(r"[a-z][a-z0-9+.-]*://[^/@:\s]*:([^@/\s]*)@", re.IGNORECASE)
_URL_QUERY = re.compile(r"[?&]password=([^&#\s]*)", re.IGNORECASE)
_DSN_PASSWORD = re.compile(r"(?:^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def secrets_in(*conninfos: str, bare: Iterable[str] = ()) -> tuple[str, ...]:
    """The passwords in connection strings (userinfo, `?password=`, key=value) and `bare` ones, in every encoding."""
    raws = list(bare)
    for text in conninfos:
        raws += [m.group(1) for pattern in (_URL_USERINFO, _URL_QUERY) for m in pattern.finditer(text)]
        raws += [m.group(1).strip("'") for m in _DSN_PASSWORD.finditer(text)]
    found = {form for raw in raws for form in (raw, unquote(raw), quote(unquote(raw), safe=""))}
    return tuple(sorted((s for s in found if s), key=len, reverse=True))


def early_log_format(argv: Iterable[str], environ: Mapping[str, str] | None = None) -> str:
    """The log format before the settings exist, so even a usage error is rendered right."""
    env = os.environ if environ is None else environ
    args = list(argv)
    for index, arg in enumerate(args):
        if arg == "--":
            break
        if arg.startswith("--log-format="):
            return arg.split("=", 1)[1]
        if arg == "--log-format" and index + 1 < len(args):
            return args[index + 1]
    return "json" if env.get("LOG_FORMAT") == "json" else "console"


def early_secrets(argv: Iterable[str], environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Passwords visible in argv or the environment, scrubbed from output before the settings load."""
    env = os.environ if environ is None else environ
    texts = [*argv, *(env.get(name, "") for name in BY_FIELD["database_url"].env)]
    texts += [text.split("=", 1)[1] for text in texts if text.startswith("--") and "=" in text]
    bare = (env.get(name, "") for name in ("PGPASSWORD", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"))
    return secrets_in(*texts, bare=bare)


def early_switch(name: str, argv: Iterable[str], environ: Mapping[str, str] | None = None) -> bool:
    """Whether the switch setting `name` (a field) is on in argv (before `--`) or the environment."""
    setting = BY_FIELD[name]
    for arg in argv:
        if arg == "--":
            break
        if arg == setting.flag:
            return True
    env = os.environ if environ is None else environ
    return bool(setting.parse(setting.name, _raw(setting, {}, env), Path()))


def debug_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """ENTRYPOINT_DEBUG=1: print tracebacks for internal errors.

    A value that is no switch is off here; loading the settings then refuses it.
    """
    env = os.environ if environ is None else environ
    setting = BY_FIELD["debug"]
    try:
        return bool(setting.parse(setting.name, _raw(setting, {}, env), Path()))
    except UsageError:
        return False


def field_names() -> tuple[str, ...]:
    """The fields of `Settings`, for the test that holds them equal to the table's."""
    return tuple(f.name for f in fields(Settings))
