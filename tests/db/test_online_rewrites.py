"""Each online rewrite (entrypoint/core/online.py) on a real server: drizzle-orm's schema, writes flowing, no scan.

Every migration is drizzle-kit's own output (`drizzle-kit generate` after a schema edit), or, for the order
rule, a custom migration typed under drizzle-kit's header as teams do. One database applies it as written
with drizzle-orm's migrator; a copy applies the planned parts (autocommit for a CONCURRENTLY build, one
transaction for every other part), and `pg_dump -s` of both must be equal. The tables hold 20,000 rows,
over the 256 kB threshold the tests plan with; `tags` stays empty, under it. Lock checks are structural (a
write with a short lock_timeout while a part holds its lock), never timings, so a busy machine cannot make
them flaky.
"""

from __future__ import annotations

import itertools
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from entrypoint.core import online
from entrypoint.core.sql import parse_chunk
from entrypoint.db.catalog import live_tables
from entrypoint.journal import read_journal
from tests.drizzle_ref import drizzle_migrate
from tests.folders import add_custom
from tests.support import query, schema_dump

THRESHOLD = 256 * 1024
ROWS = 20_000
IMPORTS = """\
import { sql } from 'drizzle-orm';
import {
  check, foreignKey, index, integer, pgTable, primaryKey, serial, text, unique, uniqueIndex, type AnyPgColumn,
} from 'drizzle-orm/pg-core';
"""
BASE = (
    IMPORTS
    + """
export const users = pgTable('users', {
  id: serial('id').primaryKey(),
  email: text('email').notNull(),
  role: text('role').notNull().default('user'),
  lastName: text('last_name'),
  points: integer('points').notNull().default(0),
}, (t) => [/*users*/]);

export const posts = pgTable('posts', {
  id: serial('id').primaryKey(),
  authorId: integer('author_id'),
  authorEmail: text('author_email'),
  title: text('title'),
}, (t) => [/*posts*/]);

export const members = pgTable('members', {
  userId: integer('user_id').notNull(),
  groupId: integer('group_id'),
  note: text('note'),
}, (t) => [/*members*/]);

export const tags = pgTable('tags', {
  id: serial('id').primaryKey(),
  name: text('name'),
}, (t) => [/*tags*/]);
"""
)
FILL = [
    (
        "INSERT INTO users (email, role, last_name, points) SELECT 'u' || n || '@example.com', "
        "CASE WHEN n % 10 = 0 THEN 'admin' ELSE 'user' END, 'L' || n, n % 1000 FROM generate_series(1, 20000) n"
    ),
    (
        "INSERT INTO posts (author_id, author_email, title) SELECT CASE WHEN n % 7 = 0 THEN NULL ELSE n END, "
        "'u' || n || '@example.com', 'T' || n FROM generate_series(1, 20000) n"
    ),
    "INSERT INTO members (user_id, group_id, note) SELECT n, n % 50, 'note ' || n FROM generate_series(1, 20000) n",
    "ANALYZE",
]
ISSUE_23 = [  # the issue's migration, as drizzle-kit writes it (its order differs: it puts SET NOT NULL first)
    'ALTER TABLE "users" ADD COLUMN "referrer_id" integer;',
    'ALTER TABLE "users" ADD COLUMN "score" integer DEFAULT 0 NOT NULL;',
    'ALTER TABLE "users" ALTER COLUMN "last_name" SET NOT NULL;',
    (
        'ALTER TABLE "users" ADD CONSTRAINT "users_referrer_id_users_id_fk" FOREIGN KEY ("referrer_id") REFERENCES '
        '"public"."users"("id") ON DELETE set null ON UPDATE no action;'
    ),
    'CREATE INDEX "idx_users_score" ON "users" USING btree ("score");',
    'ALTER TABLE "users" ADD CONSTRAINT "users_email_role_unique" UNIQUE("email","role");',
]


def _schema(**edits: str) -> str:
    """BASE with `table=extra config` put in each table's `[...]`, and `old->new` replacements (`_x` keys)."""
    text = BASE
    for name, edit in edits.items():
        if "->" in edit:
            old, new = edit.split("->")
            assert old in text, old
            text = text.replace(old, new)
        else:
            text = text.replace(f"/*{name}*/", edit)
    return text


# name: (the schema edit drizzle-kit turns into a migration, the online steps the plan must hold, in order)
SCENARIOS: dict[str, tuple[str, tuple[str, ...]]] = {
    "index": (_schema(users="index('idx_users_points').on(t.points)"), ("create-index",)),
    "unique-index": (_schema(users="uniqueIndex('users_email_idx').on(t.email)"), ("create-index",)),
    "foreign-key": (
        _schema(_fk="authorId: integer('author_id'),->authorId: integer('author_id').references(() => users.id),"),
        ("validate",),
    ),
    "check": (_schema(users="check('users_points_positive', sql`${t.points} >= 0`)"), ("validate",)),
    "not-null": (_schema(_nn="text('last_name'),->text('last_name').notNull(),"), ("validate", "set-not-null")),
    "unique": (
        _schema(users="unique('users_email_role_unique').on(t.email, t.role)"),
        ("create-index", "attach-constraint"),
    ),
    "unique-nulls-not-distinct": (
        _schema(posts="unique('posts_author_title_nnd').on(t.authorId, t.title).nullsNotDistinct()"),
        ("create-index", "attach-constraint"),
    ),
    "primary-key": (
        _schema(members="primaryKey({ columns: [t.userId, t.groupId] })"),
        ("validate", "create-index", "attach-constraint"),
    ),
    "small-table": (_schema(tags="index('idx_tags_name').on(t.name)"), ()),
    "issue-23": (
        _schema(
            _nn="text('last_name'),->text('last_name').notNull(),",
            _cols="points: integer('points').notNull().default(0),\n}, (t) => [/*users*/]);->"
            "points: integer('points').notNull().default(0),\n"
            "  referrerId: integer('referrer_id').references((): AnyPgColumn => users.id, { onDelete: 'set null' }),\n"
            "  score: integer('score').notNull().default(0),\n}, (t) => [/*users*/]);",
            users="index('idx_users_score').on(t.score), unique('users_email_role_unique').on(t.email, t.role)",
        ),
        ("validate", "set-not-null", "validate", "create-index", "create-index", "attach-constraint"),
    ),
}


@pytest.fixture
def pg_dump(pg_server: Any) -> Path:
    """The server's own pg_dump."""
    return Path(pg_server.bin("pg_dump"))


def _last(folder: Path) -> tuple[bytes, ...]:
    """The newest migration's chunks, as the entrypoint sends them."""
    return read_journal(folder).migrations[-1].statements


def _plan(url: str, chunks: tuple[bytes, ...], mode: online.OnlineMode = "auto") -> online.Plan:
    """The plan, with the live sizes read as the deploy reads them."""
    parsed = [parse_chunk(chunk) for chunk in chunks]
    with psycopg.connect(url) as conn:
        sizes = live_tables(conn, online.tables_to_size(parsed))
    return online.plan(parsed, online.Policy(mode=mode, threshold=THRESHOLD, sizes=sizes))


def _verdicts(conn: psycopg.Connection[Any], expects: tuple[online.Expect, ...]) -> list[str]:
    verdicts = []
    for expect in expects:
        text, params = expect.query()
        verdicts.append(expect.judge(conn.execute(text, params).fetchone()))
    return verdicts


def _send(conn: psycopg.Connection[Any], part: online.Part) -> None:
    """One part as the executor will send it: CONCURRENTLY alone, anything else in one transaction."""
    if isinstance(part, online.Step) and not part.transactional:
        (statement,) = part.sql
        conn.execute(statement)
        return
    statements = [s.sql for s in part.statements] if isinstance(part, online.Transaction) else part.sql
    with conn.transaction():
        for statement in statements:
            conn.execute(statement)


def _apply(url: str, plan: online.Plan, *, upto: int | None = None) -> None:
    """Send the parts (the first `upto` of them), checking each step's catalogue expectations before and after."""
    with psycopg.connect(url, autocommit=True) as conn:
        for part in plan.parts[:upto]:
            if isinstance(part, online.Step):
                assert _verdicts(conn, part.done) != ["done"] * len(part.done), f"{part.what} done before it ran"
            _send(conn, part)
            assert set(_verdicts(conn, part.done)) <= {"done"}, part


def _steps(plan: online.Plan) -> tuple[str, ...]:
    return tuple(part.kind for part in plan.parts if isinstance(part, online.Step))


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_each_rewrite_leaves_drizzle_orms_schema(
    scenario: str, online_migrations: Callable[[str], Path], online_copies: Callable[[], str], pg_dump: Path
) -> None:
    """drizzle-kit's migration as written (drizzle-orm) and as planned parts end in the same `pg_dump -s`.

    The plan holds the online steps the rewrite promises, and each step's catalogue check is false before
    it runs and true after; on a table under the threshold the plan is the migration as written.
    """
    folder = online_migrations(scenario)
    ours, theirs = online_copies(), online_copies()
    chunks = _last(folder)
    plan = _plan(ours, chunks)
    assert _steps(plan) == SCENARIOS[scenario][1], [p.what for p in plan.parts if isinstance(p, online.Step)]
    if not plan.online:
        assert plan.parts == (online.Transaction(tuple(online.Sent(n, (1,), c) for n, c in enumerate(chunks, 1))),)
        assert "< INDEX_BUILD_THRESHOLD 256 kB" in plan.decisions[0].why.text
    _apply(ours, plan)
    result = drizzle_migrate(theirs, folder)
    assert result.returncode == 0, result.stderr
    assert schema_dump(pg_dump, ours) == schema_dump(pg_dump, theirs)
    assert query(ours, "SELECT count(*) FROM pg_constraint WHERE conname LIKE 'entrypoint_nn_%'") == [(0,)]


def test_the_issues_migration_is_what_drizzle_kit_writes(online_migrations: Callable[[str], Path]) -> None:
    """The issue-23 scenario's migration holds exactly the issue's six statements (drizzle-kit orders them its way)."""
    chunks = _last(online_migrations("issue-23"))
    assert sorted(chunk.decode().strip() for chunk in chunks) == sorted(ISSUE_23)


CUSTOM = {
    # A unique index, then a foreign key that needs it: the index must be built before the key is added.
    "fk-needs-unique-index": (
        (
            'CREATE UNIQUE INDEX "users_email_idx" ON "users" USING btree ("email");--> statement-breakpoint\n'
            'ALTER TABLE "posts" ADD CONSTRAINT "posts_author_email_fk" FOREIGN KEY ("author_email") '
            'REFERENCES "public"."users"("email") ON DELETE no action ON UPDATE no action;'
        ),
        ["create-index", "transaction", "validate"],
    ),
    # NOT NULL, then a rename of that column: the SET NOT NULL (as written) must run before the rename.
    "rename-after-not-null": (
        (
            'ALTER TABLE "users" ALTER COLUMN "last_name" SET NOT NULL;--> statement-breakpoint\n'
            'ALTER TABLE "users" RENAME COLUMN "last_name" TO "family_name";'
        ),
        ["transaction", "validate", "set-not-null", "transaction"],
    ),
    # A CHECK, then a backfill: the rows must be checked before the backfill, as drizzle-orm's run does.
    "backfill-after-check": (
        (
            'ALTER TABLE "users" ADD CONSTRAINT "users_points_positive" CHECK ("users"."points" >= 0);'
            "--> statement-breakpoint\n"
            "UPDATE users SET points = points + 1 WHERE id <= 10;"
        ),
        ["transaction", "validate", "transaction"],
    ),
}


@pytest.mark.parametrize("name", sorted(CUSTOM))
def test_a_later_statement_waits_for_the_online_step_it_needs(
    name: str, online_project: Path, tmp_path: Path, online_copies: Callable[[], str], pg_dump: Path
) -> None:
    """A custom migration whose 2nd statement needs the 1st's online step: it runs first; drizzle-orm's end state.

    The plan commits before the dependent statement and runs the waiting steps there; a transaction that
    starts after a step says what it waited for.
    """
    project = tmp_path / "app"
    shutil.copytree(online_project, project)
    body, kinds = CUSTOM[name]
    add_custom(project, name.replace("-", "_"), body)
    ours, theirs = online_copies(), online_copies()
    plan = _plan(ours, _last(project / "drizzle"))
    assert [p.kind if isinstance(p, online.Step) else "transaction" for p in plan.parts] == kinds
    for before, part in itertools.pairwise(plan.parts):  # a transaction after a step says what it waited for
        assert isinstance(part, online.Step) or isinstance(before, online.Transaction) or part.after, part
    _apply(ours, plan)
    result = drizzle_migrate(theirs, project / "drizzle")
    assert result.returncode == 0, result.stderr
    assert schema_dump(pg_dump, ours) == schema_dump(pg_dump, theirs)
    assert query(ours, "SELECT sum(points) FROM users") == query(theirs, "SELECT sum(points) FROM users")


# ------------------------------------------------------------------------------------------------ locks


def _write_waits(url: str, write: str) -> bool:
    """Whether `write` waits on a lock (it gives up after 300 ms); False if it went through."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '300ms'")
        try:
            conn.execute(write)
        except psycopg.errors.LockNotAvailable:
            return True
    return False


WRITES = {
    "users": "UPDATE users SET points = points + 1 WHERE id = 1",
    "posts": "UPDATE posts SET title = title || '.' WHERE id = 1",
}
BLOCKING_MODES = {"ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"}


def _locks(conn: psycopg.Connection[Any], pid: int, table: str) -> set[str]:
    rows = conn.execute(
        "SELECT mode FROM pg_locks WHERE pid = %s AND relation = to_regclass(%s) AND granted", (pid, table)
    ).fetchall()
    return {str(mode) for (mode,) in rows}


@pytest.mark.parametrize(("scenario", "table"), [("foreign-key", "posts"), ("check", "users"), ("not-null", "users")])
def test_a_validation_does_not_stop_writes(
    scenario: str, table: str, online_migrations: Callable[[str], Path], online_copies: Callable[[], str]
) -> None:
    """VALIDATE CONSTRAINT, held open in its transaction, takes no lock a write waits for.

    The statement as written, held the same way, makes the same write wait.
    """
    url = online_copies()
    chunks = _last(online_migrations(scenario))
    as_written = next(c for c in chunks if c.strip())
    with psycopg.connect(url) as holder:
        holder.execute(as_written)
        assert _write_waits(url, WRITES[table])
        holder.rollback()
    plan = _plan(url, chunks)
    first_validation = next(n for n, p in enumerate(plan.parts) if isinstance(p, online.Step))
    _apply(url, plan, upto=first_validation)
    step = plan.parts[first_validation]
    assert isinstance(step, online.Step)
    assert step.kind == "validate"
    with psycopg.connect(url) as holder, psycopg.connect(url, autocommit=True) as watcher:
        (statement,) = step.sql
        holder.execute(statement)
        held = _locks(watcher, holder.info.backend_pid, table)
        assert "ShareUpdateExclusiveLock" in held, held
        assert not held & BLOCKING_MODES, held
        assert not _write_waits(url, WRITES[table])
        holder.commit()


def _while_a_write_is_open(url: str, statement: bytes) -> tuple[set[str], bool]:
    """Run `statement` while another session holds an open write on users; meanwhile, a third session writes.

    Returns the locks the statement held on users while it waited, and whether the third write waited.
    """
    failure: list[BaseException] = []
    with (
        psycopg.connect(url) as open_write,
        psycopg.connect(url, autocommit=True) as builder,
        psycopg.connect(url, autocommit=True) as watcher,
    ):
        open_write.execute("UPDATE users SET points = points + 1 WHERE id = 2")
        pid = builder.info.backend_pid

        def build() -> None:
            try:
                builder.execute(statement)
            except BaseException as error:  # reported by the main thread
                failure.append(error)

        thread = threading.Thread(target=build)
        thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            waiting = watcher.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
            if waiting and waiting[0] == "Lock":
                break
            time.sleep(0.01)
        else:
            pytest.fail("the build never waited for the open write")
        held = _locks(watcher, pid, "users")
        waited = _write_waits(url, "UPDATE users SET points = points + 1 WHERE id = 3")
        open_write.commit()
        thread.join(30)
    assert not failure, failure
    return held, waited


@pytest.mark.parametrize("scenario", ["index", "unique"])
def test_a_concurrent_build_does_not_stop_writes(
    scenario: str, online_migrations: Callable[[str], Path], online_copies: Callable[[], str]
) -> None:
    """While the CONCURRENTLY build waits for an open write, a new write goes through.

    The build holds SHARE UPDATE EXCLUSIVE meanwhile; as drizzle-kit wrote it, the statement waits for its
    lock and the new write waits behind it.
    """
    url = online_copies()
    chunks = _last(online_migrations(scenario))
    plan = _plan(url, chunks)
    build = next(p for p in plan.parts if isinstance(p, online.Step) and p.kind == "create-index")
    held, waited = _while_a_write_is_open(url, build.sql[0])
    assert "ShareUpdateExclusiveLock" in held, held
    assert not held & BLOCKING_MODES, held
    assert not waited
    query(url, f"DROP INDEX {build.name}")
    held, waited = _while_a_write_is_open(url, next(c for c in chunks if c.strip()))
    assert not held & BLOCKING_MODES, held  # it waits for its lock, and the new write waits behind it
    assert waited


def _notices(conn: psycopg.Connection[Any]) -> list[str]:
    said: list[str] = []
    conn.add_notice_handler(lambda diagnostic: said.append(str(diagnostic.message_primary)))
    conn.execute("SET client_min_messages = debug1")
    return said


@pytest.mark.parametrize(
    ("scenario", "kind", "proven"),
    [
        ("not-null", "set-not-null", ['"users.last_name"']),
        ("primary-key", "attach-constraint", ['"members.group_id"']),  # user_id is NOT NULL already
    ],
)
def test_not_null_after_a_validated_check_skips_the_scan(
    scenario: str,
    kind: str,
    proven: list[str],
    online_migrations: Callable[[str], Path],
    online_copies: Callable[[], str],
) -> None:
    """SET NOT NULL after the validated helper check does not scan; as written, it does ("verifying table").

    Attaching a primary key sets its columns NOT NULL too: PostgreSQL says the check proves it needless.
    """
    url = online_copies()
    chunks = _last(online_migrations(scenario))
    with psycopg.connect(url) as conn:
        said = _notices(conn)
        conn.execute(next(c for c in chunks if c.strip()))
        conn.rollback()
    assert any(line.startswith("verifying table") for line in said), said
    plan = _plan(url, chunks)
    at = next(n for n, p in enumerate(plan.parts) if isinstance(p, online.Step) and p.kind == kind)
    _apply(url, plan, upto=at)
    with psycopg.connect(url, autocommit=True) as conn:
        said = _notices(conn)
        _send(conn, plan.parts[at])
    assert not [line for line in said if line.startswith("verifying table")], said
    for column in proven:
        sufficient = f"existing constraints on column {column} are sufficient to prove that it does not contain nulls"
        assert sufficient in said, said


# ------------------------------------------------------------------------------------------------ failures

BAD_ROWS = {
    "foreign-key": ("INSERT INTO posts (id, author_id, title) VALUES (900001, 999999, 'orphan')", "23503", [900001]),
    "check": ("INSERT INTO users (id, email, points) VALUES (900001, 'neg@example.com', -5)", "23514", [900001]),
    "not-null": (
        "INSERT INTO users (id, email, last_name) VALUES (900001, 'anon@example.com', NULL)",
        "23514",
        [900001],
    ),
    "unique": ("INSERT INTO users (id, email, role) VALUES (900001, 'u1@example.com', 'user')", "23505", None),
    "unique-index": ("INSERT INTO users (id, email) VALUES (900001, 'u2@example.com')", "23505", None),
    "primary-key": ("INSERT INTO members (user_id, group_id) VALUES (7, NULL)", "23514", None),
}


def _first_failure(conn: psycopg.Connection[Any], plan: online.Plan) -> tuple[int, psycopg.Error]:
    """Send the parts until one fails: its place and error (each transaction before it left what it said)."""
    for at, part in enumerate(plan.parts):
        try:
            _send(conn, part)
        except psycopg.Error as error:
            return at, error
        assert set(_verdicts(conn, part.done)) <= {"done"}
    pytest.fail("no part failed on the offending row")


@pytest.mark.parametrize("scenario", sorted(BAD_ROWS))
def test_a_failed_validation_names_its_rows_and_can_resume(
    scenario: str, online_migrations: Callable[[str], Path], online_copies: Callable[[], str]
) -> None:
    """A row breaking the new constraint: the step fails, its query lists that row, and the run can resume.

    The failure is drizzle-orm's (same SQLSTATE); the catalogue shows what is committed (NOT VALID, INVALID)
    and what is not; once the row is fixed, the failed step and the rest of the plan complete.
    """
    url = online_copies()
    bad, sqlstate, ids = BAD_ROWS[scenario]
    query(url, bad)
    plan = _plan(url, _last(online_migrations(scenario)))
    with psycopg.connect(url, autocommit=True) as conn:
        at, error = _first_failure(conn, plan)
        assert error.sqlstate == sqlstate, error
        failed = plan.parts[at]
        assert isinstance(failed, online.Step)
        assert failed.offending is not None
        found = conn.execute(failed.offending.encode()).fetchall()
        if ids is not None:
            assert [row[0] for row in found] == ids, found
        else:
            assert len(found) == 1, found  # one key value held twice (or one NULL key)
        left = set(_verdicts(conn, failed.done))
        assert left & {"not-valid", "invalid", "missing"}, left
        if "invalid" in left:  # what the executor does on resume: a failed concurrent build's index goes first
            conn.execute(f"DROP INDEX CONCURRENTLY {failed.name}".encode())
        conn.execute(
            {
                "foreign-key": "DELETE FROM posts WHERE id = 900001",
                "primary-key": "DELETE FROM members WHERE group_id IS NULL",
            }.get(scenario, "DELETE FROM users WHERE id = 900001")
        )
        for part in plan.parts[at:]:
            _send(conn, part)
            assert set(_verdicts(conn, part.done)) <= {"done"}
