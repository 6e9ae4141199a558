"""The runbook's mandatory backup, taken by the tool: a checked `pg_dump -Fc`, kept and/or uploaded, once per state.

Runs under the migration lock, before the first change, when migrations are
pending and BACKUP_DIR or BACKUP_URL is set. A backup is named for the state it
saves: `<database>-<last applied tag>-<12 hex of the pending set>-<UTC time>.dump`.
A restart that finds one of the same state, younger than BACKUP_REUSE_WINDOW, at
BACKUP_URL or in BACKUP_DIR, reuses it instead of dumping again.

A dump is written under a temporary name (`.<name>.partial`), read back whole
(`pg_restore --list` reads only the table of contents, so a truncated archive
passes it; `pg_restore -f /dev/null` reads every block), and only then renamed:
a file named like a good dump always is one. The partial file is removed on
every failure path, SIGTERM included. With BACKUP_URL alone the dump lives in
a temporary folder (TMPDIR) and is removed once uploaded and checked. The
password reaches pg_dump through PGPASSWORD, never its command line.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from entrypoint.backup.store import Store, join, sha256_of  # store imports boto3 only when a client is built
from entrypoint.config import Settings
from entrypoint.errors import BackupFailed, Untrusted
from entrypoint.logs import get_logger

_VERSION = re.compile(r"(\d+)(?:\.(\d+))?")
_STAMP = "%Y%m%dT%H%M%SZ"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
_CLOCK_SKEW_S = 60  # a backup stamped this far in the future (another instance's clock) still counts as fresh


@dataclass(frozen=True)
class State:
    """What a backup saves: the database, its last applied migration, and the set this deploy would apply."""

    database: str
    last_tag: str
    pending: tuple[tuple[str, str], ...]  # (tag, sha256 of its file), in journal order
    undoes: tuple[str, ...] | None = None  # `rollback`: the tags it reverses (then `pending` is them, marked)

    @property
    def digest(self) -> str:
        """12 hex digits of the sha256 of the pending set (tags and file hashes)."""
        text = "\n".join(f"{tag} {sha}" for tag, sha in self.pending)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def stem(self) -> str:
        """The name's part that says the state: `<database>-<last tag>-<digest>`, filename-safe."""
        return _SAFE.sub("_", f"{self.database}-{self.last_tag}-{self.digest}")

    def name(self, moment: datetime) -> str:
        """The dump's file (and object) name, taken at `moment`."""
        return f"{self.stem}-{moment.astimezone(UTC).strftime(_STAMP)}.dump"

    def taken_at(self, name: str) -> datetime | None:
        """When the backup called `name` was taken, if it is a backup of this state; else None."""
        match = re.fullmatch(re.escape(self.stem) + r"-(\d{8}T\d{6}Z)\.dump", name)
        return datetime.strptime(match.group(1), _STAMP).replace(tzinfo=UTC) if match else None


@dataclass(frozen=True)
class Backup:
    """Where the checked backup is: a kept file and/or an uploaded object."""

    path: Path | None
    url: str | None
    size: int


# --------------------------------------------------------------------------
# The tools.


def find_pg_dump(configured: str | None) -> str:
    """PG_DUMP if set, else `pg_dump` on PATH (checked when the backup runs)."""
    return configured or shutil.which("pg_dump") or "pg_dump"


def find_pg_restore(pg_dump: str | None) -> str:
    """`pg_restore` beside PG_DUMP (or beside the `pg_dump` on PATH), else `pg_restore` on PATH."""
    beside = Path(find_pg_dump(pg_dump)).with_name("pg_restore")
    if beside.parent != Path() and beside.is_file():
        return str(beside)
    return shutil.which("pg_restore") or "pg_restore"


def tool_major(tool: str) -> int | None:
    """The major version `tool --version` prints, or None when the tool cannot be run."""
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION.search(out.rsplit(")", 1)[-1]) or _VERSION.search(out)
    return int(match.group(1)) if match else 0


def split_password(url: str) -> tuple[str, str | None]:
    """The connection string without its password, and the password (for PGPASSWORD)."""
    from psycopg import conninfo

    params = conninfo.conninfo_to_dict(url)
    password = params.pop("password", None)
    return conninfo.make_conninfo("", **{k: v for k, v in params.items() if v is not None}), (
        str(password) if password is not None else None
    )


def libpq_env(url: str) -> tuple[str, dict[str, str]]:
    """(`--dbname` value, environment) for a PostgreSQL client tool: the password travels as PGPASSWORD."""
    dsn, password = split_password(url)
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password
    return dsn, env


def first_line(stderr: str) -> Untrusted:
    """A child's first line of stderr (`Untrusted`: it may quote the connection string)."""
    return Untrusted((stderr.strip().splitlines() or ["no output"])[0])


def check_archive(path: Path, pg_restore: str) -> str | None:
    """None when pg_restore reads the whole archive; else its first line of complaint.

    `--list` reads only the table of contents, which a truncated dump still has;
    `-f /dev/null` writes the whole restore script, so every data block is read
    and decompressed.
    """
    for args in (["--list", "-f", os.devnull], ["-f", os.devnull]):
        try:
            read = subprocess.run([pg_restore, *args, str(path)], capture_output=True, text=True, check=False)
        except OSError as error:
            return f"cannot run {pg_restore}: {error.strerror}"
        if read.returncode != 0:
            return str(first_line(read.stderr))
    return None


# --------------------------------------------------------------------------
# The dump.


def dump(url: str, folder: Path, name: str, *, server_major: int, pg_dump: str, pg_restore: str) -> Path:
    """Dump the database into FOLDER/NAME, checked whole before it gets that name; returns its path.

    Raises `BackupFailed` (exit 15) when pg_dump is missing or older than the
    server, when it fails, or when pg_restore cannot read the whole file. No
    partial file is left behind, whatever happens (a signal included).
    """
    client_major = tool_major(pg_dump)
    if client_major is None:
        raise BackupFailed(
            "❌ Backup impossible: cannot run {pg_dump!r}. Install the PostgreSQL client tools "
            "(postgresql-client) or set PG_DUMP to pg_dump's path; nothing was migrated",
            pg_dump=pg_dump,
        )
    if client_major < server_major:
        raise BackupFailed(
            "❌ Backup impossible: pg_dump {client} cannot dump a PostgreSQL {server} server (pg_dump must be at "
            "least as new as the server). Install postgresql-client-{server} or set PG_DUMP to a newer pg_dump; "
            "nothing was migrated",
            client=client_major,
            server=server_major,
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BackupFailed(
            "❌ Backup impossible: cannot create {directory} ({reason}). "
            "Set BACKUP_DIR to a writable folder; nothing was migrated",
            directory=str(folder),
            reason=error.strerror,
        ) from None
    target = folder / name
    partial = folder / f".{name}.partial"
    try:
        _dump_checked(url, partial, target, pg_dump=pg_dump, pg_restore=pg_restore)
        partial.replace(target)
    except BaseException:
        partial.unlink(missing_ok=True)  # never a file named like a good dump that is not one
        raise
    return target


def _dump_checked(url: str, partial: Path, target: Path, *, pg_dump: str, pg_restore: str) -> None:
    """pg_dump into PARTIAL, then read it whole; raises `BackupFailed` if either fails."""
    dsn, env = libpq_env(url)
    done = subprocess.run(
        [pg_dump, "-Fc", "--no-password", "-f", str(partial), f"--dbname={dsn}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BackupFailed(
            "❌ Backup failed, nothing was migrated: {error}. Fix it (a full disk: point TMPDIR or BACKUP_DIR "
            "at a bigger one), or unset BACKUP_DIR and BACKUP_URL",
            error=first_line(done.stderr),
        )
    problem = check_archive(partial, pg_restore) if partial.is_file() and partial.stat().st_size else "empty"
    if problem is not None:
        raise BackupFailed(
            "❌ Backup {path} is unreadable by pg_restore ({problem}); nothing was migrated. "
            "Check the disk and pg_dump, or unset BACKUP_DIR and BACKUP_URL",
            path=str(target),
            problem=Untrusted(problem),
        )


def _low_disk(folder: Path, database_bytes: int) -> None:
    """Warn when the folder has less room than the database's size (a -Fc dump is usually much smaller)."""
    probe = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if probe is None:
        return
    free = shutil.disk_usage(probe).free
    if free < database_bytes:
        get_logger().warning(
            "backup.low_disk",
            directory=str(folder),
            free_mb=free // 1_000_000,
            database_mb=database_bytes // 1_000_000,
        )


# --------------------------------------------------------------------------
# Once per state: find a recent backup of the same state, locally or at BACKUP_URL.


def _fresh(state: State, name: str, now: datetime, window: float) -> float | None:
    taken = state.taken_at(name)
    if taken is None:
        return None
    age = (now - taken).total_seconds()
    return age if -_CLOCK_SKEW_S <= age <= window else None


def reusable_file(folder: Path, state: State, now: datetime, window: float) -> tuple[Path, float] | None:
    """The newest backup of `state` in FOLDER taken less than WINDOW seconds ago, and its age."""
    if window <= 0 or not folder.is_dir():
        return None
    found = [(age, path) for path in folder.iterdir() if (age := _fresh(state, path.name, now, window)) is not None]
    found = [(age, path) for age, path in found if path.is_file() and path.stat().st_size > 0]
    return (min(found)[1], min(found)[0]) if found else None


def run(settings: Settings, state: State, *, server_major: int, database_bytes: int) -> Backup:
    """Back up `state` as the settings say (BACKUP_DIR and/or BACKUP_URL), or reuse a recent backup of it.

    Raises `BackupFailed` (exit 15) on any failure: nothing has been changed yet.
    """
    log = get_logger()
    now = datetime.now(UTC)
    window = settings.backup_reuse_window
    store: Store | None = None
    prefix = ""
    if settings.backup_url is not None:
        store, prefix = Store.at(settings, settings.backup_url, "backup")
        found = _reusable_object(store, prefix, state, now, window)
        if found is not None:
            key, size, age = found
            log.info("backup.reused", location=store.url(key), age_s=round(age), size_kb=round(size / 1024))
            return Backup(None, store.url(key), size)
    kept = reusable_file(settings.backup_dir, state, now, window) if settings.backup_dir else None
    if kept is not None:
        path, age = kept
        size = path.stat().st_size
        log.info("backup.reused", location=str(path), age_s=round(age), size_kb=round(size / 1024))
    folder = settings.backup_dir or _temporary_folder()
    try:
        if kept is None:
            path = _dump(settings, state, folder, now, server_major=server_major, database_bytes=database_bytes)
        if store is None:
            return Backup(path, None, path.stat().st_size)
        key = _upload(store, prefix, path)
        return Backup(path if settings.backup_dir else None, store.url(key), path.stat().st_size)
    finally:
        if settings.backup_dir is None:
            shutil.rmtree(folder, ignore_errors=True)  # the temporary copy, uploaded or not


def _temporary_folder() -> Path:
    """A private folder under TMPDIR for a dump that is only uploaded (removed by the caller)."""
    try:
        return Path(tempfile.mkdtemp(prefix="entrypoint-backup-"))
    except OSError as error:
        raise BackupFailed(
            "❌ Backup impossible: cannot make a temporary folder in {directory} ({reason}). Point TMPDIR (or "
            "BACKUP_DIR) at a writable folder; nothing was migrated",
            directory=tempfile.gettempdir(),
            reason=error.strerror,
        ) from None


def _dump(
    settings: Settings, state: State, folder: Path, now: datetime, *, server_major: int, database_bytes: int
) -> Path:
    log = get_logger()
    log.info("backup.start", directory=str(folder), before="migrating" if state.undoes is None else "rolling back")
    _low_disk(folder, database_bytes)
    started = time.monotonic()
    pg_dump = find_pg_dump(settings.pg_dump)
    path = dump(
        settings.database_url,
        folder,
        state.name(now),
        server_major=server_major,
        pg_dump=pg_dump,
        pg_restore=find_pg_restore(settings.pg_dump),
    )
    size = path.stat().st_size
    log.info(
        "backup.done",
        path=str(path),
        bytes=size,
        size_kb=round(size / 1024),
        seconds=round(time.monotonic() - started, 1),
    )
    return path


def _reusable_object(
    store: Store, prefix: str, state: State, now: datetime, window: float
) -> tuple[str, int, float] | None:
    """The newest object of `state` at BACKUP_URL younger than WINDOW that carries its sha256: (key, size, age)."""
    if window <= 0:
        return None
    candidates = []
    for found in store.find(join(prefix, state.stem + "-")):
        age = _fresh(state, found.key.rsplit("/", 1)[-1], now, window)
        if age is not None and found.size > 0:
            candidates.append((age, found.key))
    for age, key in sorted(candidates):
        head = store.head(key)
        if head.sha256 and head.size > 0:
            return key, head.size, age
    return None


def _upload(store: Store, prefix: str, path: Path) -> str:
    """Upload the checked dump, then check the object's size and sha256 as the store reports them."""
    log = get_logger()
    started = time.monotonic()
    key = join(prefix, path.name)
    size, sha = path.stat().st_size, sha256_of(path)
    store.upload(path, key, sha)
    stored = store.head(key)
    if stored.size != size or stored.sha256 != sha:
        raise BackupFailed(
            "❌ Backup upload to {url} does not check out: the store has {stored_size} bytes with sha256 "
            "{stored_sha}, the dump has {size} bytes with sha256 {sha}. Check the store (a proxy rewriting "
            "uploads?), then redeploy; nothing was migrated",
            url=store.url(key),
            stored_size=stored.size,
            stored_sha=Untrusted(stored.sha256 or "none"),
            size=size,
            sha=sha,
        )
    log.info(
        "backup.uploaded",
        url=store.url(key),
        bytes=size,
        size_kb=round(size / 1024),
        sha256=sha,
        seconds=round(time.monotonic() - started, 1),
    )
    return key
