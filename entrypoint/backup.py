"""The runbook's mandatory backup, taken by the tool: `pg_dump -Fc` before anything is applied.

Runs only when migrations are pending and BACKUP_DIR is set. The file is named
for the database, the last applied migration and the time, and is checked
(exists, non-empty, `pg_restore --list` reads it) before any migration runs.
The password reaches pg_dump through PGPASSWORD, never its command line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from entrypoint.errors import BackupFailed, Untrusted

_VERSION = re.compile(r"(\d+)(?:\.(\d+))?")


def _tool(pg_dump: str, name: str) -> str:
    """`pg_restore` next to the given `pg_dump`, else on PATH."""
    sibling = Path(pg_dump).with_name(name)
    return str(sibling) if sibling.parent != Path() and sibling.exists() else name


def _client_major(pg_dump: str) -> int:
    try:
        out = subprocess.run([pg_dump, "--version"], capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        raise BackupFailed(
            "❌ Backup impossible: cannot run {pg_dump!r}. Install the PostgreSQL client tools "
            "(postgresql-client) or set PG_DUMP to pg_dump's path; nothing was migrated",
            pg_dump=pg_dump,
        ) from None
    match = _VERSION.search(out.rsplit(")", 1)[-1]) or _VERSION.search(out)
    return int(match.group(1)) if match else 0


def _split_password(url: str) -> tuple[str, str | None]:
    from psycopg import conninfo

    params = conninfo.conninfo_to_dict(url)
    password = params.pop("password", None)
    return conninfo.make_conninfo("", **{k: v for k, v in params.items() if v is not None}), (
        str(password) if password is not None else None
    )


def take_backup(url: str, directory: Path, *, server_major: int, dbname: str, last_tag: str, pg_dump: str) -> Path:
    """Dump the database to DIRECTORY and check the file; returns its path.

    Raises `BackupFailed` (exit 15) when pg_dump is missing or older than the
    server, when it fails, or when the file is empty or unreadable by pg_restore.
    """
    client_major = _client_major(pg_dump)
    if client_major < server_major:
        raise BackupFailed(
            "❌ Backup impossible: pg_dump {client} cannot dump a PostgreSQL {server} server (pg_dump must be at "
            "least as new as the server). Install postgresql-client-{server} or set PG_DUMP to a newer pg_dump; "
            "nothing was migrated",
            client=client_major,
            server=server_major,
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BackupFailed(
            "❌ Backup impossible: cannot create {directory} ({reason}). "
            "Set BACKUP_DIR to a writable folder; nothing was migrated",
            directory=str(directory),
            reason=error.strerror,
        ) from None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{dbname}-{last_tag}-{stamp}")
    target = directory / f"{safe}.dump"
    dsn, password = _split_password(url)
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password
    try:
        dump = subprocess.run(
            [pg_dump, "-Fc", "--no-password", "-f", str(target), f"--dbname={dsn}"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    except BaseException:  # DEPLOY_DEADLINE or a signal: pg_dump was killed, its half-written file is no backup
        target.unlink(missing_ok=True)
        raise
    if dump.returncode != 0:
        first = (dump.stderr.strip().splitlines() or ["no output"])[0]
        target.unlink(missing_ok=True)
        raise BackupFailed(
            "❌ Backup failed, nothing was migrated: {error}. Fix it, or unset BACKUP_DIR", error=Untrusted(first)
        )
    listed = subprocess.run(
        [_tool(pg_dump, "pg_restore"), "--list", str(target)], capture_output=True, text=True, check=False
    )
    if not target.exists() or target.stat().st_size == 0 or listed.returncode != 0:
        raise BackupFailed(
            "❌ Backup {path} is empty or unreadable by pg_restore; nothing was migrated. "
            "Check the disk and pg_dump, or unset BACKUP_DIR",
            path=str(target),
        )
    return target


def find_pg_dump(configured: str | None) -> str:
    """PG_DUMP if set, else `pg_dump` on PATH (checked when the backup runs)."""
    return configured or shutil.which("pg_dump") or "pg_dump"
