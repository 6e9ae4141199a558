"""The command as a whole: argv and the settings' sources, --help, exit codes, JSON logs and the exec.

(The deploy's own lines: tests/deploy/test_deploy.py; signals: test_signals.py; secrets: test_secrets.py.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from entrypoint.config import DEPLOY, settings_of
from entrypoint.errors import BY_EXIT_CODE
from harness.production import journal_entries
from tests.drizzle_ref import EXAMPLE_MIGRATIONS
from tests.support import REPO, entrypoint_env, ledger, output_of, run_entrypoint, start_entrypoint

SETTINGS_HEADING = "settings (a flag wins over its environment variable, which wins over the default):"


def test_exec_keeps_the_pid(database_url: str, tmp_path: Path) -> None:
    """The app replaces the entrypoint: same PID, its own exit code, its own output."""
    script = "import os, sys; print('app pid', os.getpid()); sys.exit(7)"
    proc = start_entrypoint(["--", sys.executable, "-c", script], url=database_url, folder=EXAMPLE_MIGRATIONS)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 7, out
    assert f"app pid {proc.pid}" in out
    assert "🏁 Starting the app: " in out


def test_command_not_found_exits_127_before_migrating(database_url: str) -> None:
    """A missing app fails fast with exit 127 and the database untouched."""
    result = run_entrypoint(["--", "no-such-app-xyz"], url=database_url, folder=EXAMPLE_MIGRATIONS)
    assert result.returncode == 127
    assert output_of(result).strip().startswith("❌ App command not found")
    from tests.support import query

    assert query(database_url, "SELECT count(*) FROM pg_namespace WHERE nspname = 'drizzle'") == [(0,)]


def test_json_logs_one_object_per_line(database_url: str) -> None:
    """LOG_FORMAT=json: every line is an object with event, level, timestamp and message."""
    result = run_entrypoint([], url=database_url, folder=EXAMPLE_MIGRATIONS, LOG_FORMAT="json")
    assert result.returncode == 0, output_of(result)
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert all({"event", "level", "timestamp", "message"} <= set(e) for e in events)
    applied = [e for e in events if e["event"] == "migrate.applied"]
    assert [e["tag"] for e in applied] == [x["tag"] for x in journal_entries(EXAMPLE_MIGRATIONS)]
    assert all(isinstance(e["statements"], int) and isinstance(e["duration_ms"], int) for e in applied)
    folder = next(e for e in events if e["event"] == "migrate.folder")
    assert folder["folder"] == str(EXAMPLE_MIGRATIONS)
    assert folder["message"] == f"📁 Migrations folder: {EXAMPLE_MIGRATIONS}"


def test_missing_database_url_is_a_usage_error() -> None:
    """No URL: exit 2 and one ❌ line naming both variables."""
    result = run_entrypoint([], url=None, folder=EXAMPLE_MIGRATIONS)
    assert result.returncode == 2
    expected = (
        "❌ No database to migrate: set MIGRATION_DATABASE_URL or DATABASE_URL "
        "(postgresql://user:password@host:5432/dbname), or pass --database-url"
    )
    assert output_of(result).strip().splitlines() == [expected]


def test_migration_database_url_wins(database_url: str) -> None:
    """MIGRATION_DATABASE_URL is used before DATABASE_URL."""
    result = run_entrypoint(
        [],
        url="postgresql://nobody:nothing@127.0.0.1:1/nowhere",
        folder=EXAMPLE_MIGRATIONS,
        MIGRATION_DATABASE_URL=database_url,
    )
    assert result.returncode == 0, output_of(result)
    assert len(ledger(database_url)) == len(journal_entries(EXAMPLE_MIGRATIONS))


def _section(text: str, heading: str) -> list[str]:
    """The rows under HEADING in `--help`'s epilog, up to the next blank line."""
    lines = text.splitlines()
    start = lines.index(heading) + 1
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    return lines[start:end]


def test_help_lists_settings_and_exit_codes() -> None:
    """--help prints every setting of the deploy and every exit code, each as one whole row, in the table's order."""
    result = run_entrypoint(["--help"], url=None)
    assert result.returncode == 0
    settings = _section(result.stdout, SETTINGS_HEADING)
    exit_codes = _section(result.stdout, "exit codes:")
    # Whole rows: the variables (or the flag, for a setting with none), the meaning and the default, as printed.
    assert settings == [
        f"  {', then '.join(s.env) or s.flag:<40} {s.help} (default: {s.shown_default or s.default})"
        for s in settings_of(DEPLOY)
    ]
    assert exit_codes == ["  0    migrated (and the app was exec'd: from then on the code is the app's)"] + [
        f"  {code:<4} {meaning}" for code, (_, meaning) in sorted(BY_EXIT_CODE.items())
    ]
    # A few rows spelled out, so a change in how rows are laid out fails here too.
    for row in (
        "  MIGRATIONS_DIR                           the drizzle-kit `out` folder (default: ./drizzle, else ./dist/drizzle)",
        (
            "  DDL_LOCK_TIMEOUT                         lock_timeout of migration statements and of the restore (5s, "
            "500ms, 1min; a bare number is ms), retried with backoff (default: 5s)"
        ),
        "  LOCK_WAIT_TIMEOUT                        seconds to wait for another deploy's migration lock (default: 600)",
        (
            "  SYNC_ON_ERROR                            continue or fail when the ledger repair itself errors "
            "(default: continue)"
        ),
    ):
        assert row in settings, row
    for row in ("  127  the app command was not found", "  143  SIGTERM before the app started: likewise"):
        assert row in exit_codes, row


def test_closed_output_exits_141_without_a_traceback(database_url: str, tmp_path: Path) -> None:
    """stdout closed before the first line (a reader that went away): exit 141, no traceback, app not started."""
    marker = tmp_path / "started"
    proc = subprocess.Popen(
        [sys.executable, "-m", "entrypoint", "--", "touch", str(marker)],
        env=entrypoint_env(database_url, MIGRATIONS_DIR=str(EXAMPLE_MIGRATIONS)),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 141
    assert "Traceback" not in err
    assert not marker.exists()
