"""Our private folders in TMPDIR, and what a killed run left there: made owned, found stale, removed.

A dump for BACKUP_URL alone, and a dump `restore` downloads, live in a private
folder under TMPDIR (`entrypoint-backup-…`, `entrypoint-restore-…`) that the run
removes on its way out. A SIGKILL (an OOM kill, Render's kill after the grace
period) skips that, and the dump stays, taking the disk's room. So each folder
holds an owner file locked (`flock`) for as long as its run lives: the kernel
drops that lock when the process dies, however it dies. At the start of a
backup or a restore, a folder of ours whose owner file nobody holds is stale,
and is removed with a `🧹` line. Only ours: the name's prefix, our uid, and the
owner file (a folder without one, which an older version made, only once it is a
day old). Only stale: a live run holds its lock until it has removed the folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from pathlib import Path

from entrypoint.logs import get_logger

PREFIXES = ("entrypoint-backup-", "entrypoint-restore-")
OWNER = ".entrypoint-owner"
# A folder of ours without an owner file (made before there was one) is stale once it is this old.
UNOWNED_STALE_S = 24 * 3600


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _stale(folder: Path) -> bool:
    """Whether no live run owns `folder` (see the module docstring)."""
    owner = folder / OWNER
    try:
        fd = os.open(owner, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return time.time() - folder.stat().st_mtime > UNOWNED_STALE_S
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # its run is alive
    finally:
        os.close(fd)
    return True


def sweep(parent: Path | None = None) -> list[Path]:
    """Remove the stale folders of ours under `parent` (TMPDIR by default); each with a `🧹` line. Never raises."""
    where = parent or Path(tempfile.gettempdir())
    removed = []
    try:
        candidates = [p for p in where.iterdir() if p.name.startswith(PREFIXES)]
    except OSError:
        return []
    for folder in candidates:
        try:
            info = folder.lstat()
            if not folder.is_dir() or folder.is_symlink() or info.st_uid != os.getuid() or not _stale(folder):
                continue
            size = _size(folder)
        except OSError:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            get_logger().info("backup.stale_removed", path=str(folder), size_mb=round(size / 1_000_000, 1))
            removed.append(folder)
    return removed


class PrivateFolder:
    """A new folder under TMPDIR named PREFIX…, owned by this run (its owner file locked) until `remove()`.

    A context manager: the folder is removed on the way out, whatever happens. Making it raises `OSError`
    when TMPDIR cannot hold it; the caller says what to fix.
    """

    def __init__(self, prefix: str) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=prefix))
        try:
            self._owner = os.open(self.path / OWNER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            fcntl.flock(self._owner, fcntl.LOCK_EX)  # held until the folder is gone, or the process is
            os.write(self._owner, f"{os.getpid()}\n".encode())
        except OSError:
            shutil.rmtree(self.path, ignore_errors=True)
            raise

    def remove(self) -> None:
        """Remove the folder, then let go of it."""
        shutil.rmtree(self.path, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.close(self._owner)

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *_: object) -> None:
        self.remove()
