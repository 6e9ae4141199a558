"""The README stays true to the code: every log line, exit code and setting is documented."""

from __future__ import annotations

import re

from entrypoint.config import SETTINGS
from entrypoint.errors import BY_EXIT_CODE
from entrypoint.logs import LINES
from tests.helpers import REPO

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
