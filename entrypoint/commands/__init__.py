"""The operator commands besides the deploy: each `run(settings)` returns a report, `show` prints it.

Each command declares its own help here in one `Help`: what it does, what its
exit 0 means, and the exit codes of its own failures (the CLI adds the ones
any command that reads the database can meet).
"""

from __future__ import annotations

from typing import NamedTuple

# What a signal stops in a command that only reads: nothing to undo.
READ_ONLY = "read-only, nothing was changed"


class Help(NamedTuple):
    """A command's `--help`: its description, what exit 0 means, and its own exit codes."""

    description: str
    success: str
    codes: tuple[int, ...] = ()
