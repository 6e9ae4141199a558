"""The third hostile run's deploy cases (issue 24), each against a real server and held to the usual refusal.

A refusal is one `❌` line, a documented exit code (never 70), nothing changed that the line does not name, and
no password printed (`run_entrypoint` checks that last one). Where drizzle-orm is the reference, the case is
held against its migrator on the same folder and database.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from entrypoint.journal import read_journal
from tests.drizzle_ref import EXAMPLE_MIGRATIONS, drizzle_migrate
from tests.folders import regenerate
from tests.support import (
    assert_one_error,
    assert_untouched,
    clone_database,
    ledger,
    output_of,
    query,
    run_entrypoint,
    schema_dump,
)

BREAKPOINT = "\n--> statement-breakpoint\n"
# Files drizzle splits inside a statement (on a breakpoint line it cannot tell from the rest), and what
# PostgreSQL (and its scanner, in pglast) says of the first chunk.
SPLIT_INSIDE = {
    "in a DO block": (
        f"DO $$ BEGIN\n  UPDATE users SET points = 1;{BREAKPOINT}  UPDATE users SET points = 2;\nEND $$;",
        "unterminated dollar-quoted string",
    ),
    "in a comment": (
        f"/* the backfill,{BREAKPOINT}in two steps */ UPDATE users SET points = 1;",
        "unterminated /* comment",
    ),
    "in a string": (f"UPDATE users SET email = 'a;{BREAKPOINT}b';", "unterminated quoted string"),
}


def _journal_when(folder: Path, index: int, when: int) -> None:
    """Set the `when` of the journal's entry INDEX in a drizzle-kit folder (as a hand edit or a bad merge would)."""
    path = folder / "meta" / "_journal.json"
    journal = json.loads(path.read_text())
    journal["entries"][index]["when"] = when
    path.write_text(json.dumps(journal, indent=2))


# --------------------------------------------------------------------------
# Item 1: a stray ledger row never swallows a migration nothing in the schema can vouch for.

POINTS = "SELECT sum(points) FROM users"


def test_a_stray_row_never_swallows_a_data_migration(
    database_url: str, database_factory: Callable[..., str], admin_url: str, pg_server: Any,
    users_app: Callable[..., Path],
) -> None:  # fmt: skip
    """A hand-written row dated between 0000 and a pending UPDATE: refused (exit 7, the row and both fixes named).

    drizzle-orm, on a copy of the same database, applies the UPDATE (the row is older than its `when`): we
    never mark it applied instead. After the fix the line gives, the deploy applies it and drizzle-orm then
    finds nothing to do.
    """
    folder = users_app(
        ("bonus", "UPDATE users SET points = points + 10;"), rows=["INSERT INTO users (email) VALUES ('a@x')"]
    )
    first, bonus = read_journal(folder).migrations
    stray = (first.when + bonus.when) // 2
    query(
        database_url, "INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES ('hotfix-42', %s)", (stray,)
    )
    (stray_id,) = [row[0] for row in ledger(database_url) if row[1] == "hotfix-42"]

    theirs = database_factory()
    clone_database(admin_url, database_url, theirs)
    assert drizzle_migrate(theirs, folder).returncode == 0
    assert query(theirs, POINTS) == [(10,)]  # drizzle-orm ran the UPDATE

    with assert_untouched(database_url, pg_server.bin("pg_dump"), data=True):
        result = run_entrypoint([], url=database_url, folder=folder)
    assert result.returncode == 7, output_of(result)
    line = assert_one_error(output_of(result))
    assert line.startswith(f"❌ Ledger sync refused, nothing was changed: ledger row {stray_id} (created_at ")
    assert f"matches {bonus.tag} only by position, and it creates, renames or drops no table" in line
    assert f"(DELETE FROM drizzle.__drizzle_migrations WHERE id = {stray_id})" in line
    assert f"SET hash = '{bonus.hash}', created_at = {bonus.when} WHERE id = {stray_id}" in line
    assert "💤 No pending migrations" not in result.stdout

    query(database_url, "DELETE FROM drizzle.__drizzle_migrations WHERE id = %s", (stray_id,))
    fixed = run_entrypoint([], url=database_url, folder=folder)
    assert fixed.returncode == 0, output_of(fixed)
    assert query(database_url, POINTS) == [(10,)]
    assert [row[1:] for row in ledger(database_url)] == [(first.hash, first.when), (bonus.hash, bonus.when)]
    assert drizzle_migrate(database_url, folder).returncode == 0
    assert query(database_url, POINTS) == [(10,)]  # drizzle-orm found nothing to do


# --------------------------------------------------------------------------
# Item 11: a journal `when` no date can show.


def test_a_when_beyond_the_year_9999_is_refused_at_read_time(
    database_url: str, pg_server: Any, users_app: Callable[..., Path]
) -> None:
    """`when` = 2^53-1: the deploy, status (both forms) and the gate refuse the folder (exit 3), nothing applied."""
    folder = users_app(("seed", "UPDATE users SET points = 1;"))
    _journal_when(folder, 1, 2**53 - 1)
    for args in ([], ["status"], ["status", "--json"], ["--require-migrated", "--", "true"]):
        with assert_untouched(database_url, pg_server.bin("pg_dump")):
            result = run_entrypoint(args, url=database_url, folder=folder)
        assert result.returncode == 3, (args, output_of(result))
        assert "at most 253402300799999, 9999-12-31T23:59:59.999Z" in assert_one_error(output_of(result))


# --------------------------------------------------------------------------
# Item 4: a chunk PostgreSQL's scanner rejects fails as drizzle-orm fails it.


@pytest.mark.parametrize("case", list(SPLIT_INSIDE))
def test_a_chunk_the_scanner_rejects_fails_as_drizzle_orm_fails_it(
    case: str, database_url: str, database_factory: Callable[..., str], pg_server: Any,
    users_app: Callable[..., Path],
) -> None:  # fmt: skip
    """Split inside a statement: the dry run lists it; the deploy fails on PostgreSQL's error, exit 6, all rolled back."""
    body, reason = SPLIT_INSIDE[case]
    folder = users_app(("nick", 'ALTER TABLE "users" ADD COLUMN "nick" text;'), ("split", body))
    reference = database_factory()
    theirs = drizzle_migrate(reference, folder)
    assert theirs.returncode != 0
    assert reason in theirs.stderr
    assert ledger(reference) == []  # drizzle-orm's one transaction rolled back: nothing applied, not even 0000
    finding = f"🛑 0002_split (statement 1/2) syntax-error: PostgreSQL's parser rejects it ({reason})"
    with assert_untouched(database_url, pg_server.bin("pg_dump")):
        dry = run_entrypoint(["--dry-run"], url=database_url, folder=folder)
        assert dry.returncode == 0, output_of(dry)
        assert finding in dry.stdout
        result = run_entrypoint([], url=database_url, folder=folder)
    assert result.returncode == 6, output_of(result)
    assert finding in result.stdout
    line = assert_one_error(output_of(result))
    assert line.startswith(f"❌ Migration failed: {reason} at or near ")
    assert line.endswith("(in 0002_split, statement 1/2). Everything was rolled back: fix the migration, then redeploy")


# --------------------------------------------------------------------------
# Item 13: a short password is masked where it stands, never in libpq's own words.


@pytest.mark.parametrize("password", ["e", "1"])
def test_a_short_password_leaves_libpqs_text_whole(password: str, database_url: str, pg_server: Any) -> None:
    """A 1-character (wrong) password: libpq's failure reads whole (`connection`, `127.0.0.1`); it is masked in a URL."""
    dbname = database_url.rsplit("/", 1)[1]
    url = pg_server.url(dbname, password=password)
    for log_format in ("console", "json"):
        refused = run_entrypoint([], url=url, folder=EXAMPLE_MIGRATIONS, LOG_FORMAT=log_format, check_secrets=False)
        assert refused.returncode == 4, output_of(refused)
        text = output_of(refused)
        assert "connection to server at" in text
        assert "127.0.0.1" in text
        assert "password authentication failed for user" in text
        assert "***" not in text
    echoed = run_entrypoint([f"--databse-url={url}"], url=None, check_secrets=False)
    assert echoed.returncode == 2, output_of(echoed)
    line = assert_one_error(output_of(echoed))
    assert f"{url.split('://')[0]}://{pg_server.superuser}:***@127.0.0.1:{pg_server.port}/{dbname}" in line


# --------------------------------------------------------------------------
# Item 3: another session's SQL is never printed past its command word (a cut password is still a leak).


def _secret_blocker(url: str, password: str) -> psycopg.Connection[Any]:
    """A session holding ACCESS SHARE on users, its last query quoting PASSWORD from character 70 on (a cut at 80)."""
    holder = psycopg.connect(url, application_name="reporting")
    padding = "x" * (70 - len("SELECT '") - len("' || '"))
    holder.execute(
        psycopg.sql.SQL("SELECT {} || {} FROM users").format(
            psycopg.sql.Literal(padding), psycopg.sql.Literal(password)
        )
    )
    return holder


@pytest.mark.parametrize("debug", ["0", "1"])
def test_a_blockers_query_never_leaks_a_cut_password(
    debug: str, database_url: str, pg_server: Any, users_app: Callable[..., Path]
) -> None:
    """The heartbeat, retry and ❌ lines show a blocker's command (debug: its query scrubbed, then cut), never the password."""
    folder = users_app(("nick", 'ALTER TABLE "users" ADD COLUMN "nick" text;'))
    password = pg_server.password
    with _secret_blocker(database_url, password) as holder:
        result = run_entrypoint(
            [], url=database_url, folder=folder, DDL_LOCK_TIMEOUT="1500ms", MIGRATION_ATTEMPTS="2",
            HEARTBEAT_INTERVAL="1", ENTRYPOINT_DEBUG=debug,
        )  # fmt: skip
        pid = holder.info.backend_pid
    out = output_of(result)
    assert result.returncode == 6, out
    assert password[:6] not in out
    shown = "SELECT 'xxxx" if debug == "1" else "SELECT …) on public.users"
    blocked = f"blocked by pid {pid} (reporting: {shown}"
    assert any(
        line.startswith("⏱️  0001_nick: statement 1/1 still running") and blocked in line for line in out.splitlines()
    )
    assert any(line.startswith("🔁 Migration transaction timed out") and blocked in line for line in out.splitlines())
    line = assert_one_error(out)
    assert blocked in line
    if debug == "1":
        assert "' || '***' FROM …) on public.users" in line  # scrubbed whole, then cut after it


# --------------------------------------------------------------------------
# Item 18: the DEPLOY_DEADLINE line says the rollback once, and points at no line that is not there.


def test_the_deadline_in_the_one_transaction_says_the_rollback_once(
    database_url: str, users_app: Callable[..., Path]
) -> None:
    """A statement still running at DEPLOY_DEADLINE: exit 21, "rolled back" said once, no claim about lines above."""
    folder = users_app(("slow", "SELECT pg_sleep(30);"))
    result = run_entrypoint(["--", "true"], url=database_url, folder=folder, DEPLOY_DEADLINE="3")
    assert result.returncode == 21, output_of(result)
    line = assert_one_error(output_of(result))
    assert line == (
        "❌ DEPLOY_DEADLINE (3s) passed in 0001_slow, statement 1/1, before the app started: the running migration "
        "was cancelled and everything was rolled back, and the migration lock released: redeploy to go on, or apply "
        "the rest with no deadline (DEPLOY_DEADLINE=0) from a one-off shell"
    )
    assert len(ledger(database_url)) == 1


def test_the_deadline_during_the_backup_says_where_it_was(
    database_url: str, pg_server: Any, tmp_path: Path, users_app: Callable[..., Path]
) -> None:
    """pg_dump waits behind an app's lock until DEPLOY_DEADLINE: exit 21, "while backing up", no dump left behind."""
    folder = users_app(("nick", 'ALTER TABLE "users" ADD COLUMN "nick" text;'))
    backups = tmp_path / "backups"
    with assert_untouched(database_url, pg_server.bin("pg_dump")), psycopg.connect(database_url) as holder:
        holder.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        result = run_entrypoint(
            [], url=database_url, folder=folder, DEPLOY_DEADLINE="3", BACKUP_DIR=str(backups),
            PG_DUMP=str(pg_server.bin("pg_dump")),
        )  # fmt: skip
        holder.rollback()
    assert result.returncode == 21, output_of(result)
    assert assert_one_error(output_of(result)) == (
        "❌ DEPLOY_DEADLINE (3s) passed while backing up, before the app started: nothing had started, so nothing "
        "was changed. Redeploy (raise DEPLOY_DEADLINE if that step needs more time)"
    )
    assert list(backups.iterdir()) == []  # neither a dump nor its partial file


# --------------------------------------------------------------------------
# Item 7: a COMMIT in a chunk too large to read: the line says what stays, as the server and the ledger prove it.


def test_a_commit_hidden_in_a_large_seed_file_is_said_to_have_committed(
    database_url: str, users_app: Callable[..., Path]
) -> None:
    """A >1 MiB seed with its own BEGIN … COMMIT, after a migration of the same run: what that COMMIT kept is named."""
    rows = ",".join(f"({n}, 'seed row number {n:08d} of the big seed file')" for n in range(20_000))
    seed = f"BEGIN;\nINSERT INTO seeds (n, note) VALUES {rows};\nCOMMIT;"
    assert len(seed.encode()) > 1 << 20  # one chunk over 1 MiB: not parsed, so its COMMIT is not seen before it runs
    folder = users_app(("seeds", 'CREATE TABLE "seeds" ("n" int, "note" text);'), ("seed", seed))
    result = run_entrypoint([], url=database_url, folder=folder)
    assert result.returncode == 6, output_of(result)
    line = assert_one_error(output_of(result))
    assert line.startswith(
        "❌ Migration failed: the statement committed the transaction it ran in (a COMMIT no parser could see) "
        "(in 0002_seed, statement 1/1). That COMMIT kept 0001_seeds (with their ledger rows) and what 0002_seed's "
        "statement 1 ran; 0002_seed's ledger row was not written. Put `--> statement-breakpoint` around its BEGIN"
    ), line
    assert "rolled back" not in line.lower()
    assert query(database_url, "SELECT count(*) FROM seeds") == [(20_000,)]
    assert len(ledger(database_url)) == 2  # 0000 and 0001_seeds, committed by the seed's own COMMIT


# --------------------------------------------------------------------------
# Item 6: a resumed concurrent build knows an earlier attempt's index by what it is, not by how it is spelled.

SPENDERS = """\
import { sql } from 'drizzle-orm';
import { index, integer, pgTable, serial, text, uniqueIndex } from 'drizzle-orm/pg-core';

export const users = pgTable('users', {
  id: serial('id').primaryKey(),
  email: text('email').notNull(),
  points: integer('points').notNull().default(0),
}, (t) => [
  index('users_email_index').on(t.email),
  index('idx_users_big_spenders').on(t.email).where(sql`${t.points} > 5`),
  uniqueIndex('users_email_unique').on(t.email),
]);
"""


def test_a_resumed_build_keeps_a_partial_index_in_drizzle_kits_spelling(
    database_url: str, database_factory: Callable[..., str], pg_server: Any, users_app: Callable[..., Path]
) -> None:
    """drizzle-kit's `WHERE "users"."points" > 5` (PostgreSQL: `WHERE (points > 5)`): the retry keeps the index."""
    folder = users_app(rows=["INSERT INTO users (email, points) SELECT 'u' || n % 40, n FROM generate_series(1, 50) n"])
    path = regenerate(folder.parent, SPENDERS, "spenders")
    assert 'WHERE "users"."points" > 5' in path.read_text()  # drizzle-kit's own spelling
    first = run_entrypoint([], url=database_url, folder=folder, INDEX_BUILD="concurrent")
    assert first.returncode == 6, output_of(first)  # the unique index meets duplicate emails; the partial one stays
    assert query(database_url, "SELECT pg_get_indexdef('idx_users_big_spenders'::regclass)") == [
        ("CREATE INDEX idx_users_big_spenders ON public.users USING btree (email) WHERE (points > 5)",)
    ]
    query(database_url, "DELETE FROM users WHERE id > 40")
    again = run_entrypoint([], url=database_url, folder=folder, INDEX_BUILD="concurrent")
    assert again.returncode == 0, output_of(again)
    assert (
        "   · idx_users_big_spenders on users already built by an earlier attempt of 0001_spenders (valid, the same): "
        "kept" in again.stdout
    )
    theirs = database_factory()
    assert drizzle_migrate(theirs, folder).returncode == 0  # drizzle-orm's result on a fresh database: the same schema
    assert schema_dump(pg_server.bin("pg_dump"), database_url) == schema_dump(pg_server.bin("pg_dump"), theirs)
    assert drizzle_migrate(database_url, folder).returncode == 0
