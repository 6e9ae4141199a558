"""The PostgreSQL client tools the backup and `restore` run: where they are, their version, how they connect.

pg_dump and pg_restore get the connection string without its password, which
travels as PGPASSWORD, never on their command line. `check_archive` reads a whole
archive, since `pg_restore --list` alone passes a truncated one. Every one of them
is started by `run` or `start`, which on Linux ask the kernel to kill it when this
process dies (PR_SET_PDEATHSIG): a SIGKILL'd entrypoint never leaves a pg_dump
holding its snapshot, nor a pg_restore writing on, after the migration lock is gone.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from entrypoint.errors import Untrusted

_VERSION = re.compile(r"(\d+)(?:\.(\d+))?")
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _dies_with_us() -> Callable[[], None] | None:
    """Linux: what a child runs before it execs, so that it is killed when we die, however we die.

    libc is loaded here, in the parent: between fork and exec the child only calls one function.
    Elsewhere (macOS, for development) None: a child outlives a SIGKILL'd parent there.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # we died before the request took: do not outlive us
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def run_tool(args: list[str], *, check: bool, **options: Any) -> subprocess.CompletedProcess[Any]:
    """`subprocess.run` of a client tool that dies with us (see the module docstring)."""
    return subprocess.run(args, check=check, preexec_fn=_dies_with_us(), **options)


def start_tool(args: list[str], **options: Any) -> subprocess.Popen[Any]:
    """`subprocess.Popen` of a client tool that dies with us (see the module docstring)."""
    return subprocess.Popen(args, preexec_fn=_dies_with_us(), **options)  # noqa: PLW1509 - one prctl call, libc loaded before the fork


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
            read = run_tool([pg_restore, *args, str(path)], capture_output=True, text=True, check=False)
        except OSError as error:
            return f"cannot run {pg_restore}: {error.strerror}"
        if read.returncode != 0:
            return str(first_line(read.stderr))
    return None
