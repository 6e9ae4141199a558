"""The suite's layout holds (tests/README.md): test files live in the documented folders, each a package."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import REPO
from tests.unit.conftest import SERVER_FIXTURES

TESTS = REPO / "tests"
README = (TESTS / "README.md").read_text()
# Where the suite's fixtures are defined (the plugins tests/conftest.py loads).
PLUGINS = ("fix_pg.py", "fix_s3.py", "support.py")


def _test_folders() -> set[Path]:
    return {
        path.parent
        for path in TESTS.rglob("test_*.py")
        if path.parent != TESTS and "node_modules" not in path.parts and not path.parent.name.startswith("reference")
    }


def test_no_test_file_sits_at_the_top() -> None:
    """tests/ itself holds the shared helpers only; every test file is in a folder."""
    assert sorted(path.name for path in TESTS.glob("test_*.py")) == []


def test_every_test_folder_is_a_package_and_documented() -> None:
    """Each folder with test files has an __init__.py (up to tests/) and a line in tests/README.md."""
    folders = _test_folders()
    assert folders, "no test files found"
    for folder in sorted(folders):
        relative = folder.relative_to(TESTS)
        for package in [folder, *folder.parents]:
            if package == TESTS.parent:
                break
            assert (package / "__init__.py").is_file(), f"{package.relative_to(REPO)} has no __init__.py"
        assert f"`{relative.as_posix()}/`" in README, f"tests/README.md does not say what tests/{relative}/ holds"


def test_the_unit_guard_knows_every_server_fixture() -> None:
    """Every fixture the suite's plugins define stands on a server: tests/unit/conftest.py refuses each of them."""
    defined = set()
    for plugin in PLUGINS:
        tree = ast.parse((TESTS / plugin).read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and any(
                "fixture" in ast.unparse(decorator) for decorator in node.decorator_list
            ):
                defined.add(node.name)
    assert defined, "no fixtures found"
    assert defined - SERVER_FIXTURES == set()
