"""The deploy's memory on a large data migration: the file's bytes once, not copies of it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support import entrypoint_env, query


def _peak_rss_kb(url: str, folder: Path) -> int:
    """The peak resident memory of one deploy, in KB, measured by a parent that runs nothing else."""
    code = (
        "import resource, subprocess, sys; "
        "done = subprocess.run([sys.executable, '-m', 'entrypoint'], capture_output=True); "
        "sys.stderr.write(done.stdout.decode()[-2000:]); "
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=entrypoint_env(url, MIGRATIONS_DIR=str(folder)),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    returncode, peak = result.stdout.split()
    assert returncode == "0", result.stderr
    return int(peak)


def test_a_large_data_migration_is_held_once(database_factory: Any, users_app: Callable[..., Path]) -> None:
    """A 60 MB data migration: its bytes once, plus libpq's own copy of the query it sends.

    libpq buffers a whole query (growing its buffer by doubling), so the floor is about two to three times the file;
    before, the file was also held as text, stripped and re-encoded: four times (measured on the previous main).
    """
    small, large = database_factory(), database_factory()
    table = ("table", 'CREATE TABLE "blob" ("n" int, "t" text);')
    baseline_folder = users_app(table, url=small, name="small")
    big_folder = users_app(table, ("data", ""), url=large, name="large")
    path = next(big_folder.glob("*_data.sql"))
    rows = ",".join(f"({n}, '{'x' * 50}')" for n in range(10_000))
    with path.open("a") as file:
        while path.stat().st_size < 60 * 2**20:
            file.write(f'INSERT INTO "blob" VALUES {rows};\n')
    size_kb = path.stat().st_size // 1024
    baseline = _peak_rss_kb(small, baseline_folder)
    peak = _peak_rss_kb(large, big_folder)
    assert peak - baseline < 3.3 * size_kb, (peak, baseline, size_kb)
    assert query(large, "SELECT count(*) > 0 FROM blob") == [(True,)]
