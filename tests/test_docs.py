"""The README stays true to the code: every log line, exit code and setting is documented."""

from __future__ import annotations

import re

from entrypoint.config import SETTINGS
from entrypoint.errors import BY_EXIT_CODE
from entrypoint.logs import LINES
from tests.support import REPO

README = (REPO / "README.md").read_text()


def test_every_log_line_is_in_the_catalogue() -> None:
    """Each event of logs.LINES appears in the README's catalogue with its exact template."""
    for event, template in LINES.items():
        assert f"| `{event}` | `{template}`" in README, event


def test_every_exit_code_is_documented() -> None:
    """Each exit code an error class declares has a row in the README's table."""
    for code in [0, *BY_EXIT_CODE]:
        assert re.search(rf"^\| {code} \| ", README, re.MULTILINE), code


def test_every_setting_is_documented() -> None:
    """Each setting's environment variables and flag are in the README's settings table."""
    for setting in SETTINGS:
        for name in setting.env:
            assert f"`{name}`" in README, name
        if setting.flag:
            assert f"`{setting.flag}" in README, setting.flag


def test_the_demo_is_documented_as_a_script() -> None:
    """The README shows the demo as `scripts/demo` with its exit codes, never as an entrypoint subcommand."""
    from harness.demo import DemoFailed

    prose = " ".join(README.split())
    assert "python -m entrypoint demo" not in prose
    assert "`scripts/demo` (the same as `python -m harness.demo`" in prose
    assert f"It exits 0 when every check passed, {DemoFailed.exit_code} when one failed" in prose
