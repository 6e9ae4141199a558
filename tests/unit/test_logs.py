"""The log pipeline: exact lines, one object a line in JSON, and secrets scrubbed from values only."""

from __future__ import annotations

import io
import json
import subprocess
import sys

from entrypoint import logs
from entrypoint.errors import DatabaseUnreachable, Untrusted


def _lines(log_format: str, secrets: tuple[str, ...], emit: object) -> list[str]:
    stream = io.StringIO()
    logs.configure(log_format, secrets, stream=stream)
    assert callable(emit)
    emit(logs.get_logger())
    return stream.getvalue().splitlines()


def test_a_short_password_never_rewrites_a_template() -> None:
    """Password `drizzle`/`migrations`: the folder line and the start line keep their words."""

    def emit(log: object) -> None:
        log.info("migrate.start")  # type: ignore[attr-defined]
        log.info("migrate.folder", folder="/app/drizzle")  # type: ignore[attr-defined]

    assert _lines("console", ("drizzle", "migrations"), emit) == [
        "",
        "🚀 Running Drizzle migrations...",
        "📁 Migrations folder: /app/drizzle",
    ]


def test_untrusted_values_are_scrubbed_and_the_template_kept() -> None:
    """Password `host`: the driver's text loses it where it stands, the error's own sentence keeps "host and port"."""
    error = DatabaseUnreachable(
        "❌ Database unreachable after {timeout:g}s: {reason}. Check DATABASE_URL's host and port",
        timeout=3,
        reason=Untrusted('could not connect to "db" as host for postgresql://app:host@db/app'),
    )

    def emit(log: object) -> None:
        log.error(error.event, _template=error.template, **error.facts)  # type: ignore[attr-defined]

    (line,) = _lines("console", ("host",), emit)
    assert line == (
        '❌ Database unreachable after 3s: could not connect to "db" as host for postgresql://app:***@db/app. '
        "Check DATABASE_URL's host and port"
    )


def test_json_keeps_level_and_event_with_a_common_password() -> None:
    """Password `info`: `level` stays `info`, the event name and the message keep their words, the URL loses it."""

    def emit(log: object) -> None:
        log.info("launch.exec", command=Untrusted("node main.js --db postgresql://app:info@db/app"))  # type: ignore[attr-defined]

    (line,) = _lines("json", ("info",), emit)
    record = json.loads(line)
    assert record["level"] == "info"
    assert record["event"] == "launch.exec"
    assert record["message"] == "🏁 Starting the app: node main.js --db postgresql://app:***@db/app"
    assert record["command"] == "node main.js --db postgresql://app:***@db/app"


def test_a_multi_line_value_stays_on_one_line() -> None:
    """A server message with newlines (a DO block's context) is folded into one line."""

    def emit(log: object) -> None:
        log.error(  # type: ignore[attr-defined]
            "migrate.failed", _template="❌ Migration failed: {error}", error=Untrusted("boom\nCONTEXT: PL/pgSQL\n  x")
        )

    assert _lines("console", (), emit) == ["❌ Migration failed: boom CONTEXT: PL/pgSQL x"]


def test_psycopg_warnings_print_no_stray_line() -> None:
    """psycopg's own standard-library warnings (a failed executemany's pipeline) never reach the output.

    In a process of its own: pytest's log capture would otherwise stand in for Python's last-resort handler.
    """
    program = (
        "import logging\n"
        "from entrypoint import logs\n"
        "logs.configure('json', ('s3cret',))\n"
        "logging.getLogger('psycopg._pipeline').warning(\n"
        "    'error ignored terminating %r: %s', '<psycopg.Pipeline [INERROR] (user=deployer)>', 'pipeline aborted'\n"
        ")\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert (result.stdout, result.stderr) == ("", "")
