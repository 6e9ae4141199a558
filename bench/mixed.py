"""The mixed-migration scenarios of bench/run.py: the schema, its rows, drizzle-kit's migrations, the report table.

Issue 23's migration (two columns, a self-referencing foreign key, an index, a
unique pair and a NOT NULL, as drizzle-kit writes it), then one class at a
time, each in a mixed file (a new column beside it): a foreign key, a CHECK, a
NOT NULL, a unique constraint, an index. Every migration is drizzle-kit's own
output for a schema edit (`tests/folders.regenerate`), never typed by hand.
bench/run.py applies each to a copy of one database holding `users` and `posts`
rows while the old release updates `users` by primary key, with drizzle-orm's
migrator and with the entrypoint, and compares their worst and p99 write waits.
"""

from __future__ import annotations

import shutil
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.folders import generated_folder, regenerate

SCHEMA = """\
import { sql } from 'drizzle-orm';
import { check, index, integer, pgTable, serial, text, timestamp, unique, type AnyPgColumn } from 'drizzle-orm/pg-core';

export const users = pgTable('users', {
  id: serial('id').primaryKey(),
  email: text('email').notNull(),
  role: text('role').notNull().default('user'),
  lastName: text('last_name'),
  points: integer('points').notNull().default(0),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),/*columns*/
}, (t) => [/*users*/]);

export const posts = pgTable('posts', {
  id: serial('id').primaryKey(),
  authorId: integer('author_id'),
  title: text('title'),
});
"""
NOTE = "\n  note: text('note'),"  # the new column that makes each one-class migration a mixed file
# name: (the report's words, the schema edits: placeholder or old text -> what replaces it)
SCENARIOS: dict[str, tuple[str, dict[str, str]]] = {
    "issue-23": (
        "issue 23's migration: 2 columns, a self-referencing FK, an index, a unique pair, a NOT NULL",
        {
            "lastName: text('last_name'),": "lastName: text('last_name').notNull(),",
            "/*columns*/": (
                "\n  referrerId: integer('referrer_id').references((): AnyPgColumn => users.id, "
                "{ onDelete: 'set null' }),\n  score: integer('score').notNull().default(0),"
            ),
            "/*users*/": "index('idx_users_score').on(t.score), unique('users_email_role_unique').on(t.email, t.role)",
        },
    ),
    "foreign-key": (
        "a column, and a foreign key posts.author_id → users.id",
        {
            "/*columns*/": NOTE,
            "authorId: integer('author_id'),": "authorId: integer('author_id').references(() => users.id),",
        },
    ),
    "check": (
        "a column, and CHECK (points >= 0)",
        {"/*columns*/": NOTE, "/*users*/": "check('users_points_positive', sql`${t.points} >= 0`)"},
    ),
    "not-null": (
        "a column, and last_name SET NOT NULL",
        {"/*columns*/": NOTE, "lastName: text('last_name'),": "lastName: text('last_name').notNull(),"},
    ),
    "unique": (
        "a column, and UNIQUE (email, role)",
        {"/*columns*/": NOTE, "/*users*/": "unique('users_email_role_unique').on(t.email, t.role)"},
    ),
    "index": (
        "a column, and an index on points",
        {"/*columns*/": NOTE, "/*users*/": "index('idx_users_points').on(t.points)"},
    ),
}
QUICK = ("issue-23",)  # --quick runs only the migration, on the quick size
QUICK_ROWS = 200_000  # users over INDEX_BUILD_THRESHOLD's 10 MB, so --quick applies it online too


def schema_of(edits: Mapping[str, str]) -> str:
    """SCHEMA with each edit made (each must apply)."""
    text = SCHEMA
    for old, new in edits.items():
        if old not in text:
            raise ValueError(f"{old!r} is not in the bench schema")
        text = text.replace(old, new)
    return text


def projects(work: Path, names: Sequence[str]) -> tuple[Path, dict[str, Path]]:
    """The base folder, and per scenario a folder with drizzle-kit's migration for its schema edit."""
    base = work / "mixed" / "base"
    generated_folder(base, [], schema=SCHEMA)
    folders = {}
    for name in names:
        project = work / "mixed" / name
        shutil.copytree(base, project)
        regenerate(project, schema_of(SCENARIOS[name][1]), name.replace("-", "_"))
        folders[name] = project / "drizzle"
    return base / "drizzle", folders


def fill(url: str, rows: int) -> str:
    """`rows` users and `rows` posts (each post by the user of its id), vacuumed: users' size, as PostgreSQL says it."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (email, role, last_name, points) SELECT 'u' || n || '@example.com', "
            "CASE WHEN n %% 10 = 0 THEN 'admin' ELSE 'user' END, 'L' || n, n %% 1000 FROM generate_series(1, %s) n",
            (rows,),
        )
        conn.execute("INSERT INTO posts (author_id, title) SELECT n, 'T' || n FROM generate_series(1, %s) n", (rows,))
        conn.execute("VACUUM ANALYZE")
        found = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('users'))").fetchone()
    return str(found[0]) if found else "?"


class Round(Protocol):
    """What bench/run.py measures of one program's run: each write's wait, and the run's wall time."""

    waits: list[float]
    wall: float

    @property
    def worst(self) -> float: ...

    @property
    def p99(self) -> float: ...


def table(
    title: str, results: Mapping[str, Mapping[str, Sequence[Round]]], ratio: Callable[[str], float], goal: float
) -> list[str]:
    """The report's table: per scenario and program, the worst and p99 waits and the run's time; the ratio."""
    lines = [
        f"### {title}",
        "",
        (
            "A wait is one UPDATE's latency, for every UPDATE that started while the program ran (spawn to exit); "
            "medians of the rounds, the two programs alternating, each on a fresh copy of the same database. The "
            f"target: the entrypoint's worst wait ≤ {goal:.0%} of drizzle-orm's in every scenario."
        ),
        "",
        "| scenario | program | worst wait ms (median) | worst wait ms (max) | p99 wait ms (median) | run ms |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, rounds in results.items():
        for label, found in rounds.items():
            lines.append(
                f"| {name} | {label} | {1000 * statistics.median(r.worst for r in found):.0f} | "
                f"{1000 * max(r.worst for r in found):.0f} | {1000 * statistics.median(r.p99 for r in found):.0f} | "
                f"{1000 * statistics.median(r.wall for r in found):.0f} |"
            )
        lines.append(f"| {name} | **entrypoint / drizzle-orm** | **{ratio(name):.3f}** | | | |")
    lines += ["", *(f"- {name}: {SCENARIOS[name][0]}." for name in results), ""]
    return lines


def as_json(results: Mapping[str, Mapping[str, Sequence[Round]]]) -> dict[str, Any]:
    """The raw rounds, for --json."""
    return {
        name: {
            label: [{"worst": r.worst, "p99": r.p99, "writes": len(r.waits), "wall": r.wall} for r in found]
            for label, found in rounds.items()
        }
        for name, rounds in results.items()
    }
