"""The runbook's mandatory backup, taken by the tool: a checked `pg_dump -Fc`, kept and/or uploaded, once per state.

Runs under the migration lock, before the first change, when migrations are
pending and BACKUP_DIR or BACKUP_URL is set. A backup is named for the state it
saves: `<database>-<8 hex of the server and database>-<last applied tag>-<12 hex of
the pending set>-<UTC time>.dump` (backup/reuse.py).
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

import contextlib
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from entrypoint.backup import leftovers
from entrypoint.backup.heartbeat import waiting
from entrypoint.backup.reuse import State, reusable_file, reusable_object
from entrypoint.backup.store import Store, join, sha256_of  # store imports boto3 only when a client is built
from entrypoint.backup.tools import (
    check_archive,
    find_pg_dump,
    find_pg_restore,
    first_line,
    libpq_env,
    run_tool,
    tool_major,
)
from entrypoint.config import Settings
from entrypoint.errors import BackupFailed, Untrusted
from entrypoint.logs import get_logger


@dataclass(frozen=True)
class Backup:
    """Where the checked backup is: a kept file and/or an uploaded object."""

    path: Path | None
    url: str | None
    size: int


# --------------------------------------------------------------------------
# The dump.


def dump(
    url: str, folder: Path, name: str, *, server_major: int, pg_dump: str, pg_restore: str, heartbeat: float = 30.0
) -> Path:
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
        _dump_checked(url, partial, target, pg_dump=pg_dump, pg_restore=pg_restore, heartbeat=heartbeat)
        partial.replace(target)
    except BaseException:
        partial.unlink(missing_ok=True)  # never a file named like a good dump that is not one
        raise
    return target


def _dump_checked(url: str, partial: Path, target: Path, *, pg_dump: str, pg_restore: str, heartbeat: float) -> None:
    """pg_dump into PARTIAL, then read it whole (a line every `heartbeat` s); raises `BackupFailed` if either fails."""
    dsn, env = libpq_env(url)
    with waiting("dumping (pg_dump)", heartbeat):
        done = run_tool(
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
    with waiting("reading the dump back whole (pg_restore)", heartbeat):
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


def run(settings: Settings, state: State, *, server_major: int, database_bytes: int) -> Backup:
    """Back up `state` as the settings say (BACKUP_DIR and/or BACKUP_URL), or reuse a recent backup of it.

    Raises `BackupFailed` (exit 15) on any failure: nothing has been changed yet.
    """
    now = datetime.now(UTC)
    window = settings.backup_reuse_window
    store: Store | None = None
    prefix = ""
    leftovers.sweep()  # what a killed backup or restore left in TMPDIR
    if settings.backup_url is not None:
        store, prefix = Store.at(settings, settings.backup_url, "backup")
        if state.known:  # uploads of this very database are made under the lock we hold: an open one is dead
            _abort_incomplete(store, join(prefix, state.prefix + "-"))
        found = reusable_object(store, prefix, state, now, window)
        if found is not None:
            key, size, age = found
            _reused(state, store.url(key), age, size)
            return Backup(None, store.url(key), size)
    kept = _whole(settings, reusable_file(settings.backup_dir, state, now, window)) if settings.backup_dir else None
    if kept is not None:
        path, age = kept
        size = path.stat().st_size
        _reused(state, str(path), age, size)
    with contextlib.ExitStack() as stack:  # the temporary copy is removed, uploaded or not
        folder = settings.backup_dir or stack.enter_context(_temporary_folder())
        if kept is None:
            path = _dump(settings, state, folder, now, server_major=server_major, database_bytes=database_bytes)
        if store is None:
            return Backup(path, None, path.stat().st_size)
        key = _upload(store, prefix, path)
        return Backup(path if settings.backup_dir else None, store.url(key), path.stat().st_size)
    raise AssertionError("unreachable")  # pragma: no cover - the block returns or raises


def _abort_incomplete(store: Store, prefix: str) -> None:
    """Abort the multipart uploads a killed backup of this database left open, each with a `🧹` line.

    Best effort: a key without s3:ListBucketMultipartUploads or s3:AbortMultipartUpload gets a `⚠️` line
    (a lifecycle rule can do it instead), and the backup goes on.
    """
    log = get_logger()
    aborted = store.abort_incomplete(prefix)
    if aborted is None:
        log.warning("backup.uploads_unchecked", url=store.url(prefix))
        return
    for key, initiated in aborted:
        log.info("backup.upload_aborted", url=store.url(key), initiated=initiated)


def _whole(settings: Settings, found: tuple[Path, float] | None) -> tuple[Path, float] | None:
    """A backup found in BACKUP_DIR, if pg_restore reads all of it: a truncated one is never trusted, nor uploaded."""
    if found is None:
        return None
    problem = check_archive(found[0], find_pg_restore(settings.pg_dump))
    if problem is None:
        return found
    get_logger().warning("backup.not_whole", path=str(found[0]), problem=Untrusted(problem))
    return None


def _reused(state: State, location: str, age: float, size: int) -> None:
    """The `♻️` line: which server and database, the last applied migration, the pending set, and where."""
    get_logger().info(
        "backup.reused",
        server=state.server,
        database=state.database,
        database_oid=state.database_oid,
        last_tag=state.last_tag,
        pending=state.digest,
        age_s=round(age),
        location=location,
        size_kb=round(size / 1024),
    )


def _temporary_folder() -> leftovers.PrivateFolder:
    """A private folder under TMPDIR for a dump that is only uploaded (removed on the way out, `leftovers`)."""
    try:
        return leftovers.PrivateFolder("entrypoint-backup-")
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
        heartbeat=settings.heartbeat_interval,
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
