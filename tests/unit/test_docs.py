"""The README stays true to the code, both ways: what the code has is documented, and what is documented exists.

Code to README: every log line, exit code and setting has its row. README to code: every row of
the settings, exit-code and log-line tables (and every event the log-line section names) is
something the code still has, so a setting, code or line removed from the code cannot live on in
the README.
"""

from __future__ import annotations

import re

import pytest

from entrypoint.config import SETTINGS, Setting
from entrypoint.errors import BY_EXIT_CODE
from entrypoint.logs import LINES
from tests.support import REPO

README = (REPO / "README.md").read_text()
SETTINGS_HEADER = "| environment | flag | meaning | default |"
EXIT_CODES_HEADER = "| code | meaning |"
LOG_LINES_HEADER = "| event | line |"
# Rows of the settings table that are not settings: variables the entrypoint documents but never reads itself.
NOT_SETTINGS = {
    "PORT": "passed through to the app untouched",
    "TMPDIR": "read by Python's tempfile, where a dump for BACKUP_URL is written",
}
ERROR_EVENTS = {cls.event for cls, _ in BY_EXIT_CODE.values()}
EVENT = re.compile(r"`([a-z_]+\.[a-z_]+)`")


def _cells(row: str) -> list[str]:
    r"""A Markdown table row's cells, stripped; a `|` inside a code span or escaped (`\|`) does not split."""
    assert row.startswith("|") and row.endswith("|"), row
    cells, cell, in_code, escaped = [], "", False, False
    for char in row[1:-1]:
        if escaped:
            cell, escaped = cell + char, False
        elif char == "\\":
            cell, escaped = cell + char, True
        elif char == "`":
            cell, in_code = cell + char, not in_code
        elif char == "|" and not in_code:
            cells, cell = [*cells, cell.strip()], ""
        else:
            cell += char
    return [*cells, cell.strip()]


def _table(header: str) -> list[list[str]]:
    """The body rows of the README's one table whose header row is HEADER, as cells."""
    lines = README.splitlines()
    assert lines.count(header) == 1, f"the README should have exactly one table headed {header}"
    start = lines.index(header)
    assert re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[start + 1]), lines[start + 1]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = _cells(line)
        assert len(cells) == len(_cells(header)), line
        rows.append(cells)
    assert rows, header
    return rows


def _code_spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def _section(title: str) -> str:
    """The README's `## TITLE` section, up to the next `## ` heading."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else len(README)]


def _settings_rows() -> list[tuple[list[str], list[str], str]]:
    """Each settings row: its environment variables, its flags (without a metavar), its default as plain text."""
    rows = []
    for environment, flag, _, default in _table(SETTINGS_HEADER):
        names = [span for span in _code_spans(environment) if re.fullmatch(r"[A-Z][A-Z0-9_]*", span)]
        flags = [span.split()[0] for span in _code_spans(flag) if span.startswith("--")]
        rows.append((names, flags, default.replace("`", "")))
    return rows


def _setting_of(name: str) -> Setting | None:
    return next((s for s in SETTINGS if name in s.env or name == s.flag), None)


def test_every_log_line_is_in_the_catalogue() -> None:
    """Each event of logs.LINES appears in the README's catalogue with its exact template."""
    rows = {_code_spans(event)[0]: line for event, line in _table(LOG_LINES_HEADER)}
    for event, template in LINES.items():
        assert f"| `{event}` | `{template}`" in README, event
        assert event in rows, event
        assert _code_spans(rows[event])[0] == template, event


def test_every_catalogued_line_exists() -> None:
    """Each event of the README's catalogue is a line the code has (exact template), or a failure's event."""
    for event_cell, line in _table(LOG_LINES_HEADER):
        (event,) = _code_spans(event_cell)
        if event in LINES:
            assert _code_spans(line)[0] == LINES[event], event
        else:
            assert event in ERROR_EVENTS, f"{event} is in the README's catalogue but the code emits no such line"
            assert line.startswith("`❌ "), event


def test_every_event_the_log_lines_section_names_exists() -> None:
    """Every `area.name` the log-line section names is an event the code has; every failure's event is named there."""
    named = set(EVENT.findall(_section("The log lines")))
    assert named - set(LINES) - ERROR_EVENTS == set()
    assert ERROR_EVENTS - named == set()


def test_every_exit_code_is_documented() -> None:
    """Each exit code an error class declares has a row in the README's table."""
    for code in [0, *BY_EXIT_CODE]:
        assert re.search(rf"^\| {code} \| ", README, re.MULTILINE), code


def test_every_documented_exit_code_exists() -> None:
    """Each row of the README's exit-code table is 0 or a code an error class declares, once."""
    documented = [int(code) for code, _ in _table(EXIT_CODES_HEADER)]
    assert len(documented) == len(set(documented)), documented
    assert set(documented) - {0, *BY_EXIT_CODE} == set()
    assert sorted(documented) == sorted([0, *BY_EXIT_CODE])


def test_every_setting_is_documented() -> None:
    """Each setting's environment variables and flag are in the README's settings table."""
    rows = _settings_rows()
    documented_names = {name for names, _, _ in rows for name in names}
    documented_flags = {flag for _, flags, _ in rows for flag in flags}
    for setting in SETTINGS:
        for name in setting.env:
            assert f"`{name}`" in README, name
            assert name in documented_names, name
        if setting.flag:
            assert f"`{setting.flag}" in README, setting.flag
            assert setting.flag in documented_flags, setting.flag


def test_every_documented_setting_exists() -> None:
    """Each variable and flag of the settings table is a setting's (a row's variables and flag the same one's)."""
    rows = _settings_rows()
    for names, flags, _ in rows:
        assert names or flags, (names, flags)
        settings = set()
        for name in names:
            if name in NOT_SETTINGS:
                assert _setting_of(name) is None, f"{name} is a setting now: drop it from NOT_SETTINGS"
                continue
            setting = _setting_of(name)
            assert setting is not None, f"{name} is in the README's settings table but is no setting of the code"
            settings.add(setting.field)
        for flag in flags:
            setting = _setting_of(flag)
            assert setting is not None, f"{flag} is in the README's settings table but is no flag of the code"
            settings.add(setting.field)
        assert len(settings) <= 1 or not flags, f"one row, several settings: {names} {flags}"
    documented = {name for names, _, _ in rows for name in names}
    assert set(NOT_SETTINGS) <= documented, "NOT_SETTINGS lists a variable the README no longer documents"


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.field)
def test_each_documented_default_is_the_codes(setting: Setting) -> None:
    """The default column says what the code defaults to (what `--help` shows)."""
    (default,) = {default for names, flags, default in _settings_rows() if _row_is(setting, names, flags)}
    assert default == (setting.shown_default or setting.default), setting.field


def _row_is(setting: Setting, names: list[str], flags: list[str]) -> bool:
    return bool(set(setting.env) & set(names)) or (setting.flag in flags and not names)


def test_the_demo_is_documented_as_a_script() -> None:
    """The README shows the demo as `scripts/demo` with its exit codes, never as an entrypoint subcommand."""
    from harness.demo import DemoFailed

    prose = " ".join(README.split())
    assert "python -m entrypoint demo" not in prose
    assert "`scripts/demo` (the same as `python -m harness.demo`" in prose
    assert f"It exits 0 when every check passed, {DemoFailed.exit_code} when one failed" in prose
