#!/usr/bin/env python3
"""Regenerate examples/backend/drizzle/ from the schema history in this folder.

Each NN_*.ts file is the full src/db/schema.ts as it stood at migration NN.
For every stage, in order, this copies the file to src/db/schema.ts and runs
the project's pinned `drizzle-kit generate` (with `--name` where the stage has
a fixed name), exactly as a developer would have done at the time.

drizzle-kit asks interactively whether a column is new or renamed; it needs a
terminal for that, so it runs under a pseudo-terminal here and every such
question is answered "rename" (the history contains renames only, no
drop-and-recreate).

Usage (from examples/backend, after `npm ci`):

    python3 scripts/history/generate.py --force

--force deletes the existing drizzle/ folder first. drizzle-kit stamps each
journal entry with the current time, so a regenerated folder has new `when`
values, and so new ledger rows: never regenerate migrations that were deployed.
"""

# ruff: noqa: T201  (a command-line script: printing progress is its job)
from __future__ import annotations

import argparse
import json
import os
import pty
import re
import select
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BACKEND = HERE.parent.parent
SCHEMA = BACKEND / "src" / "db" / "schema.ts"
OUT = BACKEND / "drizzle"
DRIZZLE_KIT = BACKEND / "node_modules" / ".bin" / "drizzle-kit"

# (stage file, --name). None lets drizzle-kit pick its usual random
# adjective_noun name, as it did for 0000-0007 in the committed folder; so a
# rerun reproduces those eight tags only up to their random suffix.
STAGES: list[tuple[str, str | None]] = [
    ("00_initial.ts", None),
    ("01_challenges.ts", None),
    ("02_actions.ts", None),
    ("03_user_actions.ts", None),
    ("04_profiles.ts", None),
    ("05_renames.ts", None),
    ("06_archived_status.ts", None),
    ("07_campaign_details.ts", None),
    ("08_brave_songbird.ts", "brave_songbird"),
    ("09_daily_chat.ts", "daily_chat"),
    ("10_perpetual_magneto.ts", "perpetual_magneto"),
    ("11_performance_indexes.ts", "performance_indexes"),
]

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
RENAME_QUESTION = b"created or renamed"
DOWN, ENTER = b"\x1b[B", b"\r"


def run_generate(name: str | None) -> str:
    """Run `drizzle-kit generate [--name NAME]` under a pty; return its output."""
    argv = [str(DRIZZLE_KIT), "generate"] + (["--name", name] if name else [])
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.chdir(BACKEND)
        os.environ.setdefault("DATABASE_URL", "postgres://localhost:5432/app")
        os.execv(argv[0], argv)  # noqa: S606 (a fixed, local program)
    out = b""
    answered = 0
    deadline = time.monotonic() + 180
    while True:
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            raise SystemExit(f"drizzle-kit generate --name {name} timed out")
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: child closed the terminal
                break
            if not chunk:
                break
            out += chunk
            plain = ANSI.sub(b"", out)
            if plain.count(RENAME_QUESTION) > answered:
                # hanji lists "create" first, then one "rename from" option per
                # dropped column: pick the first rename.
                time.sleep(0.3)
                os.write(fd, DOWN)
                time.sleep(0.2)
                os.write(fd, ENTER)
                answered += 1
    _, status = os.waitpid(pid, 0)
    text = ANSI.sub(b"", out).decode("utf-8", "replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"drizzle-kit failed for {name}:\n{text}")
    return text


def main() -> int:
    """Regenerate every stage in order; non-zero exit (SystemExit) on the first surprise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="delete drizzle/ first")
    args = parser.parse_args()
    if not DRIZZLE_KIT.exists():
        raise SystemExit("run `npm ci` in examples/backend first")
    if OUT.exists():
        if not args.force:
            raise SystemExit(f"{OUT} exists; pass --force to regenerate it")
        shutil.rmtree(OUT)
    for idx, (stage, name) in enumerate(STAGES):
        shutil.copyfile(HERE / stage, SCHEMA)
        print(f"== {idx:04d} {stage} --name {name or '(random)'}", flush=True)
        text = run_generate(name)
        entries = json.loads((OUT / "meta" / "_journal.json").read_text())["entries"]
        tag = entries[-1]["tag"] if len(entries) == idx + 1 else "?"
        if not tag.startswith(f"{idx:04d}_") or (name and tag != f"{idx:04d}_{name}"):
            raise SystemExit(f"unexpected journal after stage {stage}:\n{text}")
        print(f"   {tag}.sql", flush=True)
        time.sleep(0.05)  # strictly increasing journal `when`
    return 0


if __name__ == "__main__":
    sys.exit(main())
