"""The package's shape holds: imports point one way, the pure core stays pure, and `cli` is the top."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "entrypoint"
# The value types and the planning code: plain data in, plain data out.
PURE = {
    f"core.{m}"
    for m in ("model", "sync", "pending", "schema", "sql", "transactions", "ddl", "baseline_plan", "indexes")
}
# What a pure module may never import, directly or through another entrypoint module.
IMPURE = {"os", "psycopg", "structlog", "tenacity", "subprocess", "socket"}
EDGES = {
    "config",
    "logs",
    "db.connect",
    "db.ledger",
    "db.lock",
    "db.blockers",
    "backup.dump",
    "launch",
    "db.catalog",
    "cli",
}


def _imports(module: str) -> set[str]:
    """Every module `module` imports anywhere in its body, lazily or not (entrypoint ones by short name)."""
    tree = ast.parse((PACKAGE / f"{module.replace('.', '/')}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            package = PACKAGE.parent / node.module.replace(".", "/")
            if node.module.startswith("entrypoint") and package.is_dir():
                found |= {f"{node.module}.{alias.name}" for alias in node.names}
            else:
                found.add(node.module)
    return {name.removeprefix("entrypoint.") if name.startswith("entrypoint.") else name for name in found}


MODULES = sorted(
    str(p.relative_to(PACKAGE).with_suffix("")).replace("/", ".") for p in PACKAGE.rglob("*.py") if p.stem != "__init__"
)
GRAPH = {module: {name for name in _imports(module) if name in MODULES} for module in MODULES}


def _reachable(start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in GRAPH[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_no_import_cycle() -> None:
    """No module of the package reaches itself through its imports (lazy ones included)."""
    cycles = [module for module in MODULES if module in _reachable(module)]
    assert not cycles, f"import cycles through {cycles}"


def test_pure_modules_stay_pure() -> None:
    """The pure core imports no driver, no os, no logging, no settings, no database edge, even indirectly."""
    for module in sorted(PURE):
        reached = _reachable(module) | {module}
        assert reached <= PURE, (module, reached - PURE)
        third_party = set().union(*(_imports(m) for m in reached))
        assert not third_party & IMPURE, (module, third_party & IMPURE)
        assert not reached & EDGES, (module, reached & EDGES)


def test_only_main_imports_cli() -> None:
    """`cli` is the top: nothing but `__main__` imports it."""
    importers = sorted(module for module, imported in GRAPH.items() if "cli" in imported)
    assert importers == ["__main__"]


def test_the_checker_sees_lazy_imports() -> None:
    """The graph includes imports inside functions (deploy imports migrate lazily), so cycles cannot hide there."""
    assert "deploy.apply" in GRAPH["deploy.session"]
    assert "deploy.session" in GRAPH["cli"]
