"""The references: drizzle-orm's own migrators and drizzle-kit, pinned from npm.

- tests/reference: drizzle-orm 0.45.4 and drizzle-kit 0.31.11 (the 0.x journal layout);
- tests/reference-v1: drizzle-orm and drizzle-kit 1.0.0-rc.5 (folder per migration, see docs/drizzle-1.0.md).

Both are driven the same way (`migrate.mjs <folder>` with DATABASE_URL, MIGRATIONS_SCHEMA and
MIGRATIONS_TABLE), so one `Reference` class serves both; module-level names keep the 0.45 one handy.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_MIGRATIONS = REPO / "examples" / "backend" / "drizzle"
CUSTOM_MIGRATIONS = REPO / "tests" / "drizzle_folders" / "custom" / "drizzle"
# Settings the children must not inherit from the developer's shell.
_SCRUBBED = ("DATABASE_URL", "MIGRATION_DATABASE_URL", "MIGRATIONS_SCHEMA", "MIGRATIONS_TABLE")


@dataclass(frozen=True)
class Reference:
    """One pinned npm install of drizzle-orm + drizzle-kit + pg, and how to run them."""

    directory: Path
    orm_version: str
    kit_version: str

    @property
    def node_modules(self) -> Path:
        return self.directory / "node_modules"

    @property
    def migrate_script(self) -> Path:
        return self.directory / "migrate.mjs"

    @property
    def kit_bin(self) -> Path:
        return self.node_modules / ".bin" / "drizzle-kit"

    def _installed_version(self, package: str) -> str | None:
        try:
            version = json.loads((self.node_modules / package / "package.json").read_text()).get("version")
        except (OSError, ValueError):
            return None
        return version if isinstance(version, str) else None

    def installed(self) -> bool:
        """Whether node_modules holds the pinned drizzle-orm, drizzle-kit and pg."""
        return (
            self._installed_version("drizzle-orm") == self.orm_version
            and self._installed_version("drizzle-kit") == self.kit_version
            and (self.node_modules / "pg" / "package.json").is_file()
        )

    def ensure_installed(self) -> None:
        """`npm ci` unless the pinned versions are there; serialised across processes by a file lock."""
        if self.installed():
            return
        if shutil.which("npm") is None or shutil.which("node") is None:
            msg = f"node and npm are needed for the drizzle-orm reference ({self.directory})"
            raise RuntimeError(msg)
        key = hashlib.sha256(str(self.directory).encode()).hexdigest()[:16]
        with (Path(tempfile.gettempdir()) / f"entrypoint-reference-{key}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if self.installed():
                    return
                result = subprocess.run(
                    ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                    cwd=self.directory,
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=False,
                )
                if result.returncode != 0 or not self.installed():
                    msg = f"npm ci in {self.directory} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
                    raise RuntimeError(msg)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def node_env(self, **extra: str) -> dict[str, str]:
        """The environment for node: ours minus the settings, and NODE_PATH to the pinned packages."""
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
        node_path = env.get("NODE_PATH")
        env["NODE_PATH"] = str(self.node_modules) + (os.pathsep + node_path if node_path else "")
        env.update(extra)
        return env

    def migrate(
        self,
        url: str,
        folder: Path,
        *,
        schema: str = "drizzle",
        table: str = "__drizzle_migrations",
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Apply FOLDER with drizzle-orm's migrator; never raises on a failed migration.

        Check `returncode`; `stderr` holds the error message and, on the next line, `cause: <message>`.
        """
        return subprocess.run(
            ["node", str(self.migrate_script), str(Path(folder).resolve())],
            cwd=self.directory,
            env=self.node_env(DATABASE_URL=url, MIGRATIONS_SCHEMA=schema, MIGRATIONS_TABLE=table),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def kit(self, args: list[str], cwd: Path, *, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """The pinned drizzle-kit in CWD (where drizzle.config.ts is); never raises.

        It runs without a terminal, so schema changes that make drizzle-kit ask about renames fail.
        """
        return subprocess.run(
            [str(self.kit_bin), *args],
            cwd=cwd,
            env=self.node_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


V045 = Reference(REPO / "tests" / "reference", orm_version="0.45.4", kit_version="0.31.11")

REFERENCE_DIR = V045.directory
REFERENCE_NODE_MODULES = V045.node_modules
MIGRATE_SCRIPT = V045.migrate_script
DRIZZLE_KIT_BIN = V045.kit_bin
DRIZZLE_ORM_VERSION = V045.orm_version
DRIZZLE_KIT_VERSION = V045.kit_version
reference_installed = V045.installed
ensure_reference_installed = V045.ensure_installed
drizzle_migrate = V045.migrate
drizzle_kit = V045.kit
