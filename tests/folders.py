"""drizzle-kit folders made at test time: a schema, then custom migrations whose SQL the test writes.

This is how a team writes a hand-tuned migration: `drizzle-kit generate --custom --name X`, then
SQL typed below drizzle-kit's header; and how it adds indexes: edit the schema, `drizzle-kit generate`
(`regenerate`). Nothing drizzle-kit produces is hand-crafted here; `edit_sql` changes a copied folder's
file afterwards, as a test that needs a damaged or unusual file does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.drizzle_ref import drizzle_kit

USERS_SCHEMA = """\
import { index, integer, pgTable, serial, text } from 'drizzle-orm/pg-core';

export const users = pgTable('users', {
  id: serial('id').primaryKey(),
  email: text('email').notNull(),
  points: integer('points').notNull().default(0),
}, (t) => [index('users_email_index').on(t.email)]);
"""

CONFIG = """\
import { defineConfig } from 'drizzle-kit';
export default defineConfig({ dialect: 'postgresql', schema: './schema.ts', out: './drizzle' });
"""


def _run(args: list[str], cwd: Path) -> None:
    result = drizzle_kit(args, cwd)
    assert result.returncode == 0, result.stdout + result.stderr


def generated_folder(project: Path, customs: list[tuple[str, str]], schema: str = USERS_SCHEMA) -> Path:
    """A drizzle-kit project in PROJECT: the schema's first migration, then one custom migration per (name, sql)."""
    project.mkdir(parents=True, exist_ok=True)
    (project / "schema.ts").write_text(schema)
    (project / "drizzle.config.ts").write_text(CONFIG)
    _run(["generate", "--name", "init"], project)
    for name, body in customs:
        add_custom(project, name, body)
    return project / "drizzle"


def add_custom(project: Path, name: str, body: str) -> Path:
    """`drizzle-kit generate --custom --name NAME`, then BODY typed under its header."""
    _run(["generate", "--custom", "--name", name], project)
    (path,) = sorted((project / "drizzle").glob(f"*_{name}.sql"))
    path.write_text(path.read_text() + "\n" + body)
    return path


def regenerate(project: Path, schema: str, name: str) -> Path:
    """The schema edited to SCHEMA, then `drizzle-kit generate --name NAME`: the migration drizzle-kit writes."""
    (project / "schema.ts").write_text(schema)
    _run(["generate", "--name", name], project)
    (path,) = sorted((project / "drizzle").glob(f"*_{name}.sql"))
    return path


def push(url: str, project: Path, schema: str) -> None:
    """`drizzle-kit push --force` of SCHEMA (TypeScript) into URL, as a team starting with push does."""
    project.mkdir(parents=True)
    (project / "schema.ts").write_text(schema)
    (project / "drizzle.config.ts").write_text(
        "export default {\n"
        "  dialect: 'postgresql',\n"
        "  schema: './schema.ts',\n"
        f"  dbCredentials: {{ url: {json.dumps(url)} }},\n"
        "};\n"
    )
    result = drizzle_kit(["push", "--force"], project)
    assert result.returncode == 0, "drizzle-kit push failed:\n" + result.stdout[-2000:] + result.stderr[-2000:]


def edit_sql(folder: Path, index: int, change: Callable[[bytes], bytes]) -> None:
    """Rewrite the SQL file of the journal's entry INDEX in FOLDER with CHANGE (bytes in, bytes out)."""
    journal = json.loads((folder / "meta" / "_journal.json").read_text())
    path = folder / f"{journal['entries'][index]['tag']}.sql"
    path.write_bytes(change(path.read_bytes()))
