"""Every line the package emits is in the catalogue, and every emit fills its template's fields.

Read statically from the source, so a line no test happens to print is held too:
each `log.<level>("event", ...)` call and each `(level, "event", {...})` line of
the repair, and each error raised with a template.
"""

from __future__ import annotations

import ast
import string
from pathlib import Path

from entrypoint import errors
from entrypoint.logs import LINES

PACKAGE = Path(__file__).resolve().parents[2] / "entrypoint"
LEVELS = {"debug", "info", "warning", "error"}
ERROR_EVENTS = {cls.event for cls, _ in errors.BY_EXIT_CODE.values()}
ERROR_CLASSES = {cls.__name__ for cls, _ in errors.BY_EXIT_CODE.values()}


def _fields(template: str) -> set[str]:
    return {name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(template) if name}


def _text(node: ast.expr) -> str | None:
    """A string literal (implicit concatenation included), else None."""
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _emits() -> list[tuple[str, str, set[str] | None]]:
    """(where, event, keyword names or None when they are built at run time) for every emitted line."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            where = f"{path.name}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in LEVELS:
                event = _text(node.args[0]) if node.args else None
                if event is not None:
                    dynamic = any(k.arg is None for k in node.keywords)
                    found.append((where, event, None if dynamic else {k.arg for k in node.keywords if k.arg}))
            elif isinstance(node, ast.Tuple) and len(node.elts) == 3 and _text(node.elts[0]) in LEVELS:
                event, fields = _text(node.elts[1]), node.elts[2]
                if event is not None and isinstance(fields, ast.Dict):
                    found.append((where, event, {k.value for k in fields.keys if isinstance(k, ast.Constant)}))
    return found


def _raises() -> list[tuple[str, str, str, set[str] | None]]:
    """(where, class, template, keyword names) for every error built with a literal template."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            template = _text(node.args[0])
            if name in ERROR_CLASSES and template is not None:
                dynamic = any(k.arg is None for k in node.keywords)
                keywords = None if dynamic else {k.arg for k in node.keywords if k.arg}
                found.append((f"{path.name}:{node.lineno}", name, template, keywords))
    return found


def test_the_scan_finds_the_lines() -> None:
    """The scan sees the deploy's lines and the repair's, and the errors' templates, so it cannot pass empty."""
    events = {event for _, event, _ in _emits()}
    assert {"migrate.applied", "sync.row_repaired", "status.row", "verify.missing"} <= events
    assert {"MigrationFailed", "LedgerRefused", "UsageError"} <= {name for _, name, _, _ in _raises()}


def test_every_emitted_event_is_in_the_catalogue() -> None:
    """Each event the package logs has a template in logs.LINES (errors bring their own)."""
    unknown = [(where, event) for where, event, _ in _emits() if event not in LINES and event not in ERROR_EVENTS]
    assert not unknown


def test_every_emit_fills_its_template() -> None:
    """Each call passes every field its line's template names."""
    short = [
        (where, event, _fields(LINES[event]) - keywords)
        for where, event, keywords in _emits()
        if keywords is not None and event in LINES and _fields(LINES[event]) - keywords
    ]
    assert not short


def test_every_error_fills_its_template() -> None:
    """Each error raised with a template passes every fact the template names, and starts with ❌."""
    for where, name, template, keywords in _raises():
        assert template.startswith("❌"), (where, name)
        if keywords is not None:
            assert _fields(template) <= keywords, (where, name, _fields(template) - keywords)


def test_every_catalogued_line_is_emitted() -> None:
    """No dead lines: each template in the catalogue is emitted somewhere."""
    events = {event for _, event, _ in _emits()}
    assert not set(LINES) - events
