"""The third hostile run's deploy cases (issue 24), each against a real server and held to the usual refusal.

A refusal is one `❌` line, a documented exit code (never 70), nothing changed that the line does not name, and
no password printed (`run_entrypoint` checks that last one). Where drizzle-orm is the reference, the case is
held against its migrator on the same folder and database.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support import assert_one_error, assert_untouched, output_of, run_entrypoint


def _journal_when(folder: Path, index: int, when: int) -> None:
    """Set the `when` of the journal's entry INDEX in a drizzle-kit folder (as a hand edit or a bad merge would)."""
    path = folder / "meta" / "_journal.json"
    journal = json.loads(path.read_text())
    journal["entries"][index]["when"] = when
    path.write_text(json.dumps(journal, indent=2))


# --------------------------------------------------------------------------
# Item 11: a journal `when` no date can show.


def test_a_when_beyond_the_year_9999_is_refused_at_read_time(
    database_url: str, pg_server: Any, users_app: Callable[..., Path]
) -> None:
    """`when` = 2^53-1: the deploy, status (both forms) and the gate refuse the folder (exit 3), nothing applied."""
    folder = users_app(("seed", "UPDATE users SET points = 1;"))
    _journal_when(folder, 1, 2**53 - 1)
    for args in ([], ["status"], ["status", "--json"], ["--require-migrated", "--", "true"]):
        with assert_untouched(database_url, pg_server.bin("pg_dump")):
            result = run_entrypoint(args, url=database_url, folder=folder)
        assert result.returncode == 3, (args, output_of(result))
        assert "at most 253402300799999, 9999-12-31T23:59:59.999Z" in assert_one_error(output_of(result))
