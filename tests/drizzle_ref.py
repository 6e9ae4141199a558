"""The reference: drizzle-orm 0.45.4's own migrator and drizzle-kit 0.31.11, pinned in tests/reference (npm)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REFERENCE_DIR = REPO / "tests" / "reference"
REFERENCE_NODE_MODULES = REFERENCE_DIR / "node_modules"
MIGRATE_SCRIPT = REFERENCE_DIR / "migrate.mjs"
DRIZZLE_KIT_BIN = REFERENCE_NODE_MODULES / ".bin" / "drizzle-kit"

DRIZZLE_ORM_VERSION = "0.45.4"
DRIZZLE_KIT_VERSION = "0.31.11"

EXAMPLE_MIGRATIONS = REPO / "examples" / "backend" / "drizzle"
CUSTOM_MIGRATIONS = REPO / "tests" / "drizzle_folders" / "custom" / "drizzle"

# Settings the children must not inherit from the developer's shell.
_SCRUBBED = ("DATABASE_URL", "MIGRATION_DATABASE_URL", "MIGRATIONS_SCHEMA", "MIGRATIONS_TABLE")


def _installed_version(package: str) -> str | None:
    manifest = REFERENCE_NODE_MODULES / package / "package.json"
    try:
        version = json.loads(manifest.read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError):
        return None
    return version if isinstance(version, str) else None


def reference_installed() -> bool:
    """Whether tests/reference/node_modules holds the pinned drizzle-orm and drizzle-kit."""
    return (
        _installed_version("drizzle-orm") == DRIZZLE_ORM_VERSION
        and _installed_version("drizzle-kit") == DRIZZLE_KIT_VERSION
        and (REFERENCE_NODE_MODULES / "pg" / "package.json").is_file()
    )


def ensure_reference_installed() -> None:
    """`npm ci` in tests/reference unless the pinned versions are already there.

    Idempotent and safe to call from several processes at once (pytest-xdist workers):
    installs are serialised with a file lock and the check is repeated under it.
    """
    if reference_installed():
        return
    if shutil.which("npm") is None or shutil.which("node") is None:
        msg = "node and npm are needed for the drizzle-orm reference (tests/reference)"
        raise RuntimeError(msg)
    key = hashlib.sha256(str(REFERENCE_DIR).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"entrypoint-reference-{key}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if reference_installed():
                return
            result = subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=REFERENCE_DIR,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if result.returncode != 0 or not reference_installed():
                msg = f"npm ci in {REFERENCE_DIR} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
                raise RuntimeError(msg)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _node_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    # Let files outside tests/reference (drizzle.config.ts, schema.ts, apps) resolve the pinned packages.
    node_path = env.get("NODE_PATH")
    env["NODE_PATH"] = str(REFERENCE_NODE_MODULES) + (os.pathsep + node_path if node_path else "")
    env.update(extra)
    return env


def drizzle_migrate(
    url: str,
    folder: Path,
    *,
    schema: str = "drizzle",
    table: str = "__drizzle_migrations",
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Apply FOLDER with drizzle-orm's migrator (`migrate()` from drizzle-orm/node-postgres/migrator).

    Does not raise on a failed migration: the caller checks `returncode` (0 or 1) and reads `stderr`,
    which holds the error message and, on the next line, `cause: <message>` when the error has a cause.
    """
    env = _node_env(DATABASE_URL=url, MIGRATIONS_SCHEMA=schema, MIGRATIONS_TABLE=table)
    return subprocess.run(
        ["node", str(MIGRATE_SCRIPT), str(Path(folder).resolve())],
        cwd=REFERENCE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def drizzle_kit(args: list[str], cwd: Path, *, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run the pinned drizzle-kit (e.g. `["generate", "--name", "x"]`) in CWD, where drizzle.config.ts is.

    Non-interactive (no terminal): schema changes that make drizzle-kit ask about renames will fail.
    Does not raise; the caller checks `returncode`.
    """
    return subprocess.run(
        [str(DRIZZLE_KIT_BIN), *args],
        cwd=cwd,
        env=_node_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
