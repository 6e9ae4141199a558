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
    for folder in NOT_HERE:
        if not folder.runs_on(MAJOR):
            why = "corpus.json harness.majors: " + ", ".join(map(str, folder.majors or []))
        else:
            why = f"ENTRYPOINT_CORPUS_ONCE={','.join(map(str, once_majors()))}: it runs on another of those majors"
        terminalreporter.write_line(f"not run on PostgreSQL {MAJOR}: {folder.name} ({why})")
