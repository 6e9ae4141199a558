"""`scripts/test` where the container tests cannot run: they are left out and said so, the rest decides.

A fresh clone on a user's machine has no ../shared beside it and maybe no podman. These tests run the
README's test command (on one small module) with podman and runc hidden from PATH, as on a machine
without them, and the container check itself with `--required`, as .ci/run asks for it.
(tests/container/test_check.py covers an engine whose base images cannot be pulled.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import REPO

HIDDEN = ("podman", "runc")
NO_ENGINE = (
    "container tests: NOT RUN: no container engine (the container tests drive podman with runc, and they are "
    "not both on PATH: apt-get install -y podman runc)"
)


def path_without_engine(bin_dir: Path) -> str:
    """A PATH with every program of this one but podman and runc (a machine without a container engine)."""
    bin_dir.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        folder = Path(directory)
        if not folder.is_dir():
            continue
        for program in folder.iterdir():
            link = bin_dir / program.name
            if program.name not in HIDDEN and not link.exists() and not link.is_symlink():
                link.symlink_to(program)
    return str(bin_dir)


def scripts_test(args: list[str], path: str) -> subprocess.CompletedProcess[str]:
    """`scripts/test ARGS` as a user runs it: ENTRYPOINT_TEST_CONTAINER unset."""
    env = {k: v for k, v in os.environ.items() if k != "ENTRYPOINT_TEST_CONTAINER"} | {"PATH": path}
    return subprocess.run(
        [str(REPO / "scripts" / "test"), *args, "-q", "-p", "no:cacheprovider"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_without_an_engine_the_rest_runs_and_the_last_line_says_not_run(tmp_path: Path) -> None:
    """No podman: the selected tests run and pass, exit 0, and the last line names what was not run and why."""
    result = scripts_test(["tests/cli/test_version.py"], path_without_engine(tmp_path / "bin"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 passed" in result.stdout
    assert result.stdout.splitlines()[-1] == NO_ENGINE


def test_without_an_engine_the_exit_code_is_the_suites(tmp_path: Path) -> None:
    """The NOT RUN line never turns a run green: pytest's own exit code comes through (5: nothing collected)."""
    result = scripts_test(["tests/cli/test_version.py", "-k", "no_such_test"], path_without_engine(tmp_path / "bin"))
    assert result.returncode == 5, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == NO_ENGINE


def test_required_without_an_engine_is_a_failure(tmp_path: Path) -> None:
    """.ci/run's check (--required): no podman is exit 1 with the reason, never NOT RUN."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.container.podman", "--check", "--required"],
        cwd=REPO,
        env={**os.environ, "PATH": path_without_engine(tmp_path / "bin")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""
    assert "container tests: cannot run, and .ci/run requires them: no container engine" in result.stderr
