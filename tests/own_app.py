"""examples/minimal-app, the second Drizzle app the README's "Adding it to your own app" is tested on.

What its two test modules share: where the app is, what the README says to do with it, and how to
check that the app came up and its migrations are applied (`serving`, `assert_migrated`).
`tests/install/test_native.py` runs the native-runtime way without containers; `tests/container/test_own_app.py`
builds and runs the two Dockerfiles with podman.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import time
import tomllib
from pathlib import Path
from typing import Any

from harness.production import journal_entries
from tests.drizzle_ref import drizzle_migrate
from tests.support import REPO, ledger

MINIMAL_APP = REPO / "examples" / "minimal-app"
MIGRATIONS = MINIMAL_APP / "drizzle"
README = (REPO / "README.md").read_text(encoding="utf-8")
VERSION = str(tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"])
LISTENING = "minimal-app listening on port {port}"
# The README's release wheel: a placeholder for where releases live and for the wheel's sha256.
RELEASE = re.compile(r"https://<[^>]+>/entrypoint-(?P<version>[^-]+)-py3-none-any\.whl#sha256=<[^>]+>")


def readme_line(key: str) -> str:
    """The one README line starting with `key: ` (the native runtime's buildCommand / startCommand), its value."""
    lines = [line for line in README.splitlines() if line.startswith(f"{key}: ")]
    assert len(lines) == 1, f"the README should hold one `{key}:` line, not {len(lines)}"
    return lines[0].removeprefix(f"{key}: ")


def readme_dockerfile_blocks() -> list[str]:
    """The README's ```dockerfile blocks, as written."""
    return re.findall(r"^```dockerfile\n(.*?)^```$", README, re.MULTILINE | re.DOTALL)


def journal_rows(folder: Path = MIGRATIONS) -> list[tuple[int, str, int]]:
    """The ledger drizzle-orm writes for the whole folder on a fresh ledger: ids from 1, sha256, `when`."""
    return [
        (i, hashlib.sha256((folder / f"{e['tag']}.sql").read_bytes()).hexdigest(), int(e["when"]))
        for i, e in enumerate(journal_entries(folder), start=1)
    ]


def get(port: int, path: str) -> tuple[int, Any]:
    """GET http://127.0.0.1:port/path: the status and the decoded JSON body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def serving(port: int, *, timeout: float = 30) -> None:
    """The app answers /health with 200 (it reached its database) and /notes with the migrated table's rows."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, body = get(port, "/health")
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
            continue
        break
    assert (status, body) == (200, {"status": "ok"})
    # drizzle-orm selects every column of the schema, `pinned` (0001) included: the app's schema is there.
    assert get(port, "/notes") == (200, [])


def assert_migrated(url: str, *, table: str = "__drizzle_migrations") -> None:
    """The app's two migrations are applied, with drizzle-orm's ledger, and drizzle-orm then finds nothing."""
    rows = ledger(url, table=table)
    assert rows == journal_rows()
    again = drizzle_migrate(url, MIGRATIONS, table=table)
    assert again.returncode == 0, again.stderr
    assert ledger(url, table=table) == rows
