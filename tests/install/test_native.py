"""Adding the entrypoint to an app of one's own (README): the native runtime's way, run as written.

A release wheel is built from this checkout (`uv build`), as a release would be. The README's
`buildCommand` runs in a folder holding only examples/minimal-app's files, with the wheel's `file://`
URL and sha256 in place of the placeholders; then its `startCommand` runs from there. No container
is involved: tests/container/test_own_app.py builds the two Dockerfiles, which must be the README's.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.postgres import find_free_port
from tests.own_app import (
    LISTENING,
    MINIMAL_APP,
    RELEASE,
    VERSION,
    assert_migrated,
    readme_dockerfile_blocks,
    readme_line,
    serving,
)
from tests.support import REPO, assert_no_secret

# What a native build sees: the platform's PATH, not this suite's environment (its venv, its settings).
_NOT_INHERITED = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "UV_PROJECT_ENVIRONMENT", "DATABASE_URL",
                  "MIGRATION_DATABASE_URL", "MIGRATIONS_DIR", "MIGRATIONS_TABLE", "MIGRATIONS_SCHEMA")  # fmt: skip


def platform_env(**extra: str) -> dict[str, str]:
    """The environment of a build or start command: this machine's, without the suite's venv on PATH."""
    venv_bin = str(Path(sys.prefix) / "bin")
    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin)
    return env | extra


@pytest.fixture(scope="module")
def release_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkout built as a release wheel, with `uv build` (what a release publishes)."""
    out = tmp_path_factory.mktemp("release")
    built = subprocess.run(
        [str(REPO / "scripts" / "uv"), "build", "--wheel", "--out-dir", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = out.glob("*.whl")
    assert wheel.name == f"entrypoint-{VERSION}-py3-none-any.whl"
    return wheel


def _app_folder(target: Path) -> Path:
    """The app's own files only, as a platform checks them out: nothing built, nothing installed."""
    return shutil.copytree(MINIMAL_APP, target, ignore=shutil.ignore_patterns("node_modules", "dist", ".entrypoint"))


def _documented_build(wheel: Path) -> str:
    build = readme_line("buildCommand")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert len(RELEASE.findall(build)) == 1, build
    return RELEASE.sub(f"file://{wheel}#sha256={digest}", build)


class _Lines:
    """A child's merged output, read on a thread: what it printed so far, and a wait for one line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.text = ""
        self._process = process
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def close(self) -> None:
        """Once the child is gone: the reader has seen the end of its output, and the pipe is closed."""
        self._reader.join(timeout=30)
        assert self._process.stdout is not None
        self._process.stdout.close()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self.text += line

    def wait_for(self, needle: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text:
            assert self._process.poll() is None, f"exited {self._process.returncode} before {needle!r}:\n{self.text}"
            assert time.monotonic() < deadline, f"no {needle!r} within {timeout}s:\n{self.text}"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def built_app(tmp_path_factory: pytest.TempPathFactory, release_wheel: Path) -> Path:
    """The app's folder after the README's buildCommand, the placeholders replaced by the local wheel."""
    app = _app_folder(tmp_path_factory.mktemp("render") / "app")
    build = subprocess.run(
        ["bash", "-c", _documented_build(release_wheel)],
        cwd=app,
        env=platform_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    return app


@pytest.fixture
def started(built_app: Path, database_url: str) -> Iterator[tuple[int, subprocess.Popen[str], _Lines]]:
    """The README's startCommand, from the built app's folder, against a new database: port, process, output."""
    port = find_free_port()
    process = subprocess.Popen(
        ["bash", "-c", readme_line("startCommand")],
        cwd=built_app,
        env=platform_env(DATABASE_URL=database_url, PORT=str(port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = _Lines(process)
    try:
        yield port, process, lines
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        lines.close()


def test_the_readme_pins_this_release() -> None:
    """The README's wheel and images name this version: the documented release is the one being tested."""
    (match,) = RELEASE.finditer(readme_line("buildCommand"))
    assert match.group("version") == VERSION
    for block in readme_dockerfile_blocks():
        if "ENTRYPOINT_IMAGE=" in block:
            assert f"ARG ENTRYPOINT_IMAGE=your-registry/entrypoint:{VERSION}\n" in block


def test_the_readme_dockerfiles_are_the_ones_the_container_tests_build() -> None:
    """The README's own-Dockerfile and image-as-base snippets are examples/minimal-app's two Dockerfiles, verbatim."""
    blocks = readme_dockerfile_blocks()
    for name in ("Dockerfile", "Dockerfile.entrypoint-base"):
        assert (MINIMAL_APP / name).read_text(encoding="utf-8") in blocks, (
            f"the README lacks examples/minimal-app/{name}"
        )


def test_native_build_then_start_from_the_apps_own_folder(
    built_app: Path, started: tuple[int, subprocess.Popen[str], _Lines], database_url: str
) -> None:
    """buildCommand installs the pinned wheel into the app's folder; startCommand migrates, then becomes node."""
    port, process, lines = started
    lines.wait_for(LISTENING.format(port=port))
    assert f"📁 Migrations folder: {built_app / 'drizzle'}" in lines.text
    assert "✅ Database migrations completed successfully" in lines.text
    assert "❌" not in lines.text
    serving(port)
    assert_migrated(database_url)
    # The entrypoint exec'd node: the process the platform started is the app, with no Python left.
    cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
    assert cmdline[:2] == [b"node", b"dist/main.js"], cmdline
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0, lines.text
    assert_no_secret(lines.text, database_url)


def test_the_install_is_inside_the_app_folder_and_says_its_version(built_app: Path) -> None:
    """Everything the start needs is in the app's folder (what Render keeps), and --version names the release."""
    app = built_app
    python = app / ".entrypoint" / "bin" / "python"
    version = subprocess.run(
        [str(python), "-m", "entrypoint", "--version"], cwd=app, env=platform_env(),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (version.returncode, version.stdout) == (0, f"entrypoint {VERSION}\n"), version.stderr
    where = subprocess.run(
        [str(python), "-c", "import entrypoint, psycopg; print(entrypoint.__file__); print(psycopg.__file__)"],
        cwd=Path("/"), env=platform_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert where.returncode == 0, where.stderr
    assert all(Path(line).is_relative_to(app / ".entrypoint") for line in where.stdout.splitlines()), where.stdout
