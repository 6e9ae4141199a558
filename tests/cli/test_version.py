"""`python -m entrypoint --version`: the package's version, exit 0, without the database stack."""

from __future__ import annotations

import tomllib
from importlib import metadata

import pytest

from entrypoint import cli
from tests.support import REPO, imported_by, run_entrypoint

PYPROJECT_VERSION = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


def test_version_prints_the_package_version_and_exits_0() -> None:
    """One line, `entrypoint <version>`, the version pyproject.toml declares; nothing else, exit 0."""
    result = run_entrypoint(["--version"], url=None)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"entrypoint {PYPROJECT_VERSION}\n"
    assert result.stderr == ""


def test_version_needs_no_database_and_imports_no_driver() -> None:
    """--version with no DATABASE_URL works, and never imports psycopg, pglast or boto3 (start-up cost)."""
    result, modules = imported_by(["--version"], url=None)
    assert result.returncode == 0, result.stderr
    assert "psycopg" not in modules
    assert "pglast" not in modules
    assert "boto3" not in modules


def test_version_after_the_app_command_belongs_to_the_app() -> None:
    """`-- node --version` is the app's flag: the entrypoint does not answer it (it wants a database first)."""
    result = run_entrypoint(["--", "node", "--version"], url=None)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "entrypoint" not in result.stdout


def test_version_falls_back_to_pyproject_when_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from a checkout with no installed distribution, the version is read from pyproject.toml."""

    def not_installed(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    assert cli.version() == PYPROJECT_VERSION


def test_version_is_the_installed_distributions() -> None:
    """Installed (here: the project's own environment), the version comes from the distribution's metadata."""
    assert cli.version() == metadata.version("entrypoint") == PYPROJECT_VERSION
