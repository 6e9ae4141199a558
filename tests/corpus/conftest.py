"""The corpus run's summary says which folders are not run on this server's major, and why, and where the data was."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """After a run that included corpus tests: the root used and the folders not collected on this major."""
    outcomes = ("passed", "failed", "error", "skipped")
    ran = any(
        "tests/corpus/" in getattr(report, "nodeid", "")
        for outcome in outcomes
        for report in terminalreporter.stats.get(outcome, [])
    )
    if not ran:
        return
    from tests.corpus.source import ROOTS
    from tests.corpus.test_corpus import MAJOR, NOT_HERE, once_majors

    terminalreporter.write_sep("-", "corpus")
    for root in ROOTS.values():
        terminalreporter.write_line(f"corpus root ({root.key}): {root.path()}")
    elsewhere = [folder.name for folder in NOT_HERE if folder.runs_on(MAJOR)]
    for folder in NOT_HERE:
        if not folder.runs_on(MAJOR):
            majors = ", ".join(map(str, folder.majors or []))
            terminalreporter.write_line(
                f"not run on PostgreSQL {MAJOR}: {folder.name} (corpus.json harness.majors: {majors})"
            )
    if elsewhere:
        terminalreporter.write_line(
            f"not run on PostgreSQL {MAJOR}: {len(elsewhere)} folders that run on another major of "
            f"ENTRYPOINT_CORPUS_ONCE={','.join(map(str, once_majors()))} ({', '.join(elsewhere)})"
        )
