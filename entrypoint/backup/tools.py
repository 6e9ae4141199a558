"""The PostgreSQL client tools the backup and `restore` run: where they are, their version, how they connect.

pg_dump and pg_restore get the connection string without its password, which
travels as PGPASSWORD, never on their command line. `check_archive` reads a whole
archive, since `pg_restore --list` alone passes a truncated one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from entrypoint.errors import Untrusted

_VERSION = re.compile(r"(\d+)(?:\.(\d+))?")


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
