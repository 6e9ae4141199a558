"""The corpus run's summary says which folders corpus.json keeps off this server's major, and where the data was."""

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
    from tests.corpus.test_corpus import MAJOR, NOT_HERE, corpus_root

    terminalreporter.write_sep("-", "corpus")
    terminalreporter.write_line(f"corpus root: {corpus_root()}")
    for folder in NOT_HERE:
        majors = ", ".join(map(str, folder.majors or []))
        terminalreporter.write_line(
            f"not run on PostgreSQL {MAJOR}: {folder.name} (corpus.json harness.majors: {majors})"
        )
