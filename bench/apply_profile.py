"""Where one fresh apply's time goes: `python -m entrypoint` under cProfile, summed by what it does.

    DATABASE_URL=... MIGRATIONS_DIR=... python bench/apply_profile.py [OUT.prof]

Runs `entrypoint.cli.main` with no command (exit after migrating; its lines go nowhere) under cProfile, then prints, as
Markdown: the run's wall and CPU time, the time spent in each part of the apply (cumulative time of the
function that does it, so a part includes what it calls), and the functions with the most own time.
cProfile's overhead inflates the Python-heavy parts (the parse, the planning) more than the waits; the
waits on the server are `Connection.wait` and the pipeline's sends. bench/run.py runs it once per
recorded run, on a new database.
"""

import gc
import time

T_START = time.monotonic()
gc.disable()  # as `python -m entrypoint` runs (entrypoint/__main__.py)

import cProfile  # noqa: E402 - after the first mark on purpose
import os  # noqa: E402
import pstats  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# (what it is, file suffix, function name): the cumulative time of each is a part of the run.
PARTS = [
    ("the whole run (cli.main)", "entrypoint/cli.py", "main"),
    ("imports (all, first import of each module)", "<frozen importlib._bootstrap>", "_find_and_load"),
    ("reading the folder (journal.read_journal)", "entrypoint/journal.py", "read_journal"),
    ("connecting (db.connect.connect)", "entrypoint/db/connect.py", "connect"),
    ("planning the deploy under the lock (deploy.prepare.prepare)", "entrypoint/deploy/prepare.py", "prepare"),
    ("… the one parse (core.sql.parse)", "entrypoint/core/sql.py", "parse"),
    ("… the commit planning's facts (core.transactions.classify)", "entrypoint/core/transactions.py", "classify"),
    ("… the lint (core.ddl.findings)", "entrypoint/core/ddl.py", "findings"),
    ("applying (deploy.apply.apply)", "entrypoint/deploy/apply.py", "apply"),
    ("… pipelined batches, sent and answered (deploy.pipeline.send)", "entrypoint/deploy/pipeline.py", "send"),
    ("… statements sent on their own (deploy.runner.statement)", "entrypoint/deploy/runner.py", "statement"),
    ("waiting on the server (psycopg Connection.wait)", "psycopg/connection.py", "wait"),
    ("log lines (structlog's processors, rendering, print)", "structlog/_base.py", "_proxy_to_logger"),
]


def main() -> int:
    from entrypoint import cli

    profile = cProfile.Profile()
    out = sys.argv[1] if len(sys.argv) > 1 else None
    sys.argv = ["entrypoint"]
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    shown, sys.stdout = sys.stdout, Path(os.devnull).open("w", encoding="utf-8")  # noqa: SIM115 - the run's lines
    try:
        code = profile.runcall(cli.main)
    finally:
        sys.stdout.close()
        sys.stdout = shown
    wall = time.monotonic() - T_START
    used = resource.getrusage(resource.RUSAGE_SELF)
    if out is not None:
        profile.dump_stats(out)
    stats = pstats.Stats(profile)
    table = stats.stats  # type: ignore[attr-defined] # {(file, line, name): (calls, primitive, own, cumulative, callers)}
    print(f"Exit code {code}; wall {wall * 1000:.0f} ms from the interpreter's start (profiled), CPU "
          f"{(used.ru_utime + used.ru_stime) * 1000:.0f} ms (of which before cli.main: "
          f"{(cpu.ru_utime + cpu.ru_stime) * 1000:.0f} ms).\n")  # fmt: skip
    print("| part | calls | cumulative ms |\n|---|---:|---:|")
    for label, suffix, name in PARTS:
        found = [(v[0], v[3]) for (file, _, func), v in table.items() if func == name and file.endswith(suffix)]
        calls, cumulative = sum(c for c, _ in found), sum(t for _, t in found)
        print(f"| {label} | {calls} | {cumulative * 1000:.0f} |")
    print("\nThe 15 functions with the most own time:\n")
    print("| function | calls | own ms | cumulative ms |\n|---|---:|---:|---:|")
    ranked = sorted(table.items(), key=lambda item: item[1][2], reverse=True)[:15]
    for (file, line, func), (calls, _, own, cumulative, _) in ranked:
        where = file.split("site-packages/")[-1].removeprefix(f"{REPO}/")
        print(f"| `{where}:{line}({func})` | {calls} | {own * 1000:.0f} | {cumulative * 1000:.0f} |")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
