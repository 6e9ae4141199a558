"""The package's shape holds: the layers are its folders, imports point one way, and modules stay short.

The layers are read from the folders, not from a list kept by hand, so a new
module falls under its folder's rule the day it is added:

    cli -> commands/ -> deploy/ -> db/, backup/ -> core/ -> the standard library and pglast

Every import counts, at the top of a module or inside a function (the lazy ones
that keep the start fast), and under `TYPE_CHECKING` too.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "entrypoint"
# Longest module allowed; config.py holds the settings table, one entry per setting, and is exempt.
MAX_LINES = 400
EXEMPT_FROM_LENGTH = {"config"}
# What the pure core may import from outside the package.
CORE_THIRD_PARTY = {"pglast"}
# Which layers a layer must never import.
FORBIDDEN = {
    "core": {"db", "deploy", "backup", "commands", "cli", "config", "logs", "launch", "journal", "errors"},
    "db": {"deploy", "commands", "cli"},
    "backup": {"deploy", "commands", "cli"},
    "deploy": {"commands", "cli"},
    "commands": {"cli"},
}


def _module_name(path: Path) -> str:
    return str(path.relative_to(PACKAGE).with_suffix("")).replace("/", ".")


MODULES = sorted(_module_name(p) for p in PACKAGE.rglob("*.py") if p.stem != "__init__")
LAYERS = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists())


def layer(module: str) -> str:
    """A module's layer: its folder, or its own name at the top (`cli`, `config`, `logs`...)."""
    return module.split(".", maxsplit=1)[0]


def _imports(module: str) -> tuple[set[str], set[str]]:
    """(entrypoint modules, other top-level packages) that `module` imports anywhere in its body."""
    tree = ast.parse((PACKAGE / f"{module.replace('.', '/')}.py").read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            folder = PACKAGE.parent / node.module.replace(".", "/")
            if node.module.startswith("entrypoint") and folder.is_dir():  # `from entrypoint.db import ledger`
                names |= {f"{node.module}.{alias.name}" for alias in node.names}
            else:
                names.add(node.module)
    ours = {n.removeprefix("entrypoint.") for n in names if n.startswith("entrypoint.")}
    theirs = {n.split(".")[0] for n in names if not n.startswith("entrypoint")}
    return {n for n in ours if n in MODULES or n in LAYERS}, theirs


GRAPH = {module: _imports(module)[0] for module in MODULES}


def _reachable(start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in GRAPH.get(todo.pop(), set()) - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_the_layers_are_the_folders() -> None:
    """The package has exactly the layers the rules name, so a new folder needs a rule before it can land."""
    assert set(LAYERS) == {"core", "db", "deploy", "backup", "commands"}


def test_no_import_cycle() -> None:
    """No module of the package reaches itself through its imports (lazy ones included)."""
    cycles = [module for module in MODULES if module in _reachable(module)]
    assert not cycles, f"import cycles through {cycles}"


def test_imports_point_one_way() -> None:
    """No layer imports one above it: core nothing but core, db and backup no deploy, deploy no command."""
    wrong = [
        (module, imported)
        for module, imported_set in GRAPH.items()
        for imported in imported_set
        if layer(imported) in FORBIDDEN.get(layer(module), set())
    ]
    assert not wrong


def test_core_imports_only_core_the_standard_library_and_pglast() -> None:
    """The pure core imports no driver, no os, no logging, no settings: only itself, stdlib and pglast."""
    stdlib = set(sys.stdlib_module_names) - {"os", "subprocess", "socket", "logging", "threading", "signal"}
    for module in (m for m in MODULES if layer(m) == "core"):
        ours, theirs = _imports(module)
        assert {layer(m) for m in ours} <= {"core"}, (module, ours)
        assert theirs <= stdlib | CORE_THIRD_PARTY | {"__future__"}, (module, theirs - stdlib - CORE_THIRD_PARTY)


def test_only_main_imports_cli() -> None:
    """`cli` is the top: nothing but `__main__` imports it."""
    importers = sorted(module for module, imported in GRAPH.items() if "cli" in imported)
    assert importers == ["__main__"]


def test_modules_stay_short() -> None:
    """No module is over 400 lines (the settings table in config.py aside)."""
    long = {
        module: lines
        for module in MODULES
        if module not in EXEMPT_FROM_LENGTH
        and (lines := len((PACKAGE / f"{module.replace('.', '/')}.py").read_text().splitlines())) > MAX_LINES
    }
    assert not long


def test_the_checker_sees_lazy_and_package_imports() -> None:
    """Imports inside functions and `from entrypoint.deploy import x` count, so nothing hides from the rules."""
    assert "deploy.apply" in GRAPH["deploy.execute"]  # imported inside a function
    assert "deploy.session" in GRAPH["cli"]  # `from entrypoint.deploy import session`, lazily
    assert layer("deploy.session") == "deploy"
    assert layer("cli") == "cli"
