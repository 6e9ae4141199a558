"""The container check where podman is there but the base images cannot be had: NOT RUN, or a failure.

It runs from a copy of the files the check reads, in a folder with no ../shared beside it (a fresh
clone), against an empty image store and a registries.conf that blocks the two registries the
Dockerfiles pull from, so the pull fails on any machine. Part of the container tests (it needs podman).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.container import podman as container
from tests.support import REPO


@pytest.fixture
def clone_without_images(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The check's files in a folder with no ../shared, and podman's environment with no image to be had."""
    clone = tmp_path / "clone" / "entrypoint"
    for relative in (
        "tests/__init__.py",
        "tests/container/__init__.py",
        "tests/container/podman.py",
        *(str(d.relative_to(REPO)) for d in container.DOCKERFILES),
    ):
        (clone / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / relative, clone / relative)
    assert not (clone.parent / "shared").exists()
    storage = tmp_path / "storage.conf"
    storage.write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{tmp_path / "graph"}"\nrunroot = "{tmp_path / "run"}"\n'
    )
    registries = tmp_path / "registries.conf"
    registries.write_text(
        'unqualified-search-registries = ["docker.io"]\n'
        '[[registry]]\nlocation = "docker.io"\nblocked = true\n'
        '[[registry]]\nlocation = "ghcr.io"\nblocked = true\n'
    )
    env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(storage), "CONTAINERS_REGISTRIES_CONF": str(registries)}
    return clone, env


def _check(clone: Path, env: dict[str, str], *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.container.podman", "--check", *flags],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_unpullable_base_images_are_not_run_and_said_so(clone_without_images: tuple[Path, dict[str, str]]) -> None:
    """podman, no image, none to pull, no stand-in script: one NOT RUN line naming the image and why, exit 3."""
    container.podman_binary()
    clone, env = clone_without_images
    result = _check(clone, env)
    assert result.returncode == container.NOT_RUN, result.stdout + result.stderr
    (line,) = result.stdout.splitlines()
    assert line.startswith(
        "container tests: NOT RUN: the base images cannot be pulled: node:22-bookworm-slim: Error: "
    ), line
    assert "blocked" in line


def test_unpullable_base_images_are_a_failure_when_required(
    clone_without_images: tuple[Path, dict[str, str]],
) -> None:
    """The same machine under .ci/run (--required): exit 1, the reason on stderr, no NOT RUN line."""
    container.podman_binary()
    clone, env = clone_without_images
    result = _check(clone, env, "--required")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""
    assert "cannot run, and .ci/run requires them: the base images cannot be pulled: node:22-bookworm-slim" in (
        result.stderr
    )
