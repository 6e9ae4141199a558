"""What a hostile run found, each case against a real server: refused cleanly, retried, or reported as it is.

A refusal is the usual one: one `❌` line, a documented exit code (never 70 for an operator's problem), the
database as it was, the app not started, and no password printed (`run_entrypoint` checks that last one).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from tests.drizzle_ref import EXAMPLE_MIGRATIONS, drizzle_migrate
from tests.support import (
    assert_one_error,
    assert_untouched,
    entrypoint_env,
    ledger,
    output_of,
    query,
    run_entrypoint,
    start_entrypoint,
)

NOT_A_VACUUM = "COMMENT ON TABLE \"noted\" IS E'it\\'s not a VACUUM';"


def _chunks(*statements: str) -> str:
    """Statements as drizzle-kit separates them."""
    return "\n--> statement-breakpoint\n".join(statements)


# --------------------------------------------------------------------------
# A migration's own transaction control, and the statement classifier.


def test_an_own_rollback_is_refused_before_anything(
    database_url: str, tmp_path: Path, pg_server: Any, users_app: Callable[..., Path]
) -> None:
    """A file with its own ROLLBACK (drizzle-orm silently undoes the batch with it): exit 3, nothing changed."""
    folder = users_app(
        ("nick", 'ALTER TABLE "users" ADD COLUMN "nick" text;'),
        ("undo", _chunks('CREATE TABLE "t" ("id" int);', "ROLLBACK;")),
    )
    marker = tmp_path / "started"
    with assert_untouched(database_url, pg_server.bin("pg_dump")):
        result = run_entrypoint(["--", "touch", str(marker)], url=database_url, folder=folder)
    assert result.returncode == 3, output_of(result)
    assert "0002_undo runs its own ROLLBACK (statement 2/2)" in assert_one_error(output_of(result))
    assert not marker.exists()


def test_an_own_commit_then_a_failure_says_what_stays(database_url: str, users_app: Callable[..., Path]) -> None:
    """`BEGIN; … COMMIT;` then a failing statement: never "Everything was rolled back"; what stays is named."""
    folder = users_app(
        (
            "wrapped",
            'BEGIN;\n--> statement-breakpoint\nCREATE TABLE "w" ("id" int);\n--> statement-breakpoint\nCOMMIT;',
        ),
        (
            "late",
            'CREATE TABLE "late" ("id" int);\n--> statement-breakpoint\nCOMMIT;\n--> statement-breakpoint\nSELECT 1/0;',
        ),
    )
    result = run_entrypoint([], url=database_url, folder=folder)
    assert result.returncode == 6, output_of(result)
    line = assert_one_error(output_of(result))
    assert "Everything was rolled back" not in line
    assert "Applied and kept (committed before it): 0001_wrapped" in line
    assert "0002_late commits on its own: its statements 1-2 stay applied" in line
    assert [
        row[0] for row in query(database_url, "SELECT to_regclass('w') IS NOT NULL, to_regclass('late') IS NOT NULL")
    ] == [True]
    assert len(ledger(database_url)) == 2  # 0000 and 0001_wrapped; 0002 has no row


def test_lock_timeout_holds_after_a_migrations_own_commit(database_url: str, users_app: Callable[..., Path]) -> None:
    """After a file's own COMMIT, a later ALTER behind a reader still gives up at DDL_LOCK_TIMEOUT (not 30 s)."""
    folder = users_app(
        ("committed", _chunks('CREATE TABLE "c" ("id" int);', "COMMIT;", 'ALTER TABLE "users" ADD COLUMN "x" int;')),
    )
    with psycopg.connect(database_url) as reader:
        reader.execute("SELECT count(*) FROM users")  # ACCESS SHARE, held by the open transaction
        started = time.monotonic()
        result = run_entrypoint(
            [], url=database_url, folder=folder, DDL_LOCK_TIMEOUT="300ms", MIGRATION_ATTEMPTS="1", timeout=60
        )
        elapsed = time.monotonic() - started
    assert result.returncode == 6, output_of(result)
    assert "canceling statement due to lock timeout" in assert_one_error(output_of(result))
    assert elapsed < 20


def test_a_string_literal_never_takes_a_migration_out_of_its_transaction(
    database_url: str, users_app: Callable[..., Path]
) -> None:
    r"""`E'it\'s not a VACUUM'` is a string: the migration stays in the transaction, so a failure undoes it all."""
    folder = users_app(
        ("comment", _chunks('CREATE TABLE "noted" ("id" int);', NOT_A_VACUUM, "SELECT 1/0;")),
    )
    result = run_entrypoint([], url=database_url, folder=folder)
    assert result.returncode == 6, output_of(result)
    assert assert_one_error(output_of(result)).endswith("Everything was rolled back: fix the migration, then redeploy")
    assert query(database_url, "SELECT to_regclass('noted')") == [(None,)]


# --------------------------------------------------------------------------
# Connections: what is retried, what is not, and how long.


class _Proxy:
    """A TCP forwarder to the server that can drop every connection at once, as a dying proxy would."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass

    def drop_all(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # close() alone would not wake a blocked recv, nor send a FIN
            sock.close()
        self.sockets.clear()


def test_a_socket_closed_without_sqlstate_restarts_the_session(
    database_url: str, pg_server: Any, users_app: Callable[..., Path]
) -> None:
    """The proxy dies mid-migration (no SQLSTATE, just a closed socket): the session restarts and applies once."""
    folder = users_app(("slow", 'SELECT pg_sleep(3);\n--> statement-breakpoint\nCREATE TABLE "s" ("id" int);'))
    proxy = _Proxy(pg_server.port)
    url = database_url.replace(f":{pg_server.port}/", f":{proxy.port}/")
    proc = start_entrypoint([], url=url, folder=folder)
    time.sleep(1.5)
    proxy.drop_all()
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "🔌 Lost the database connection (" in out
    assert query(database_url, "SELECT to_regclass('s') IS NOT NULL") == [(True,)]
    assert len(ledger(database_url)) == 2


# --------------------------------------------------------------------------
# Operator problems, not bugs.


def test_no_create_on_the_database_with_the_ledger_in_place(database_url: str, role_factory: Any) -> None:
    """The ledger exists and nothing is pending: a user without CREATE on the database deploys fine."""
    url = role_factory("s3cret-user", privileges="CONNECT")
    assert drizzle_migrate(database_url, EXAMPLE_MIGRATIONS).returncode == 0
    query(database_url, "GRANT USAGE ON SCHEMA drizzle TO " + url.split("//")[1].split(":")[0])
    query(database_url, "GRANT SELECT ON ALL TABLES IN SCHEMA drizzle TO " + url.split("//")[1].split(":")[0])
    result = run_entrypoint([], url=url, folder=EXAMPLE_MIGRATIONS)
    assert result.returncode == 0, output_of(result)


def test_no_create_on_the_database_without_a_ledger_names_the_privilege(
    database_url: str, role_factory: Any, pg_server: Any
) -> None:
    """The ledger must be created and cannot be: exit 16, the privilege named, nothing changed."""
    url = role_factory("s3cret-user", privileges="CONNECT")
    with assert_untouched(database_url, pg_server.bin("pg_dump")):
        result = run_entrypoint([], url=url, folder=EXAMPLE_MIGRATIONS)
    assert result.returncode == 16, output_of(result)
    line = assert_one_error(output_of(result))
    assert "does not exist yet and this user cannot create it" in line
    assert "CREATE on database" in line


def test_a_read_only_role_is_said_up_front(database_url: str, role_factory: Any, pg_server: Any) -> None:
    """default_transaction_read_only: the deploy and its dry run both say so (exit 16), nothing changed."""
    url = role_factory("s3cret-ro", "SET default_transaction_read_only = on")
    with assert_untouched(database_url, pg_server.bin("pg_dump")):
        for args in (["--dry-run"], []):
            result = run_entrypoint(args, url=url, folder=EXAMPLE_MIGRATIONS)
            assert result.returncode == 16, output_of(result)
            assert "The database is read-only for this session" in assert_one_error(output_of(result))


# --------------------------------------------------------------------------
# Secrets and lines.


def test_a_multi_line_server_message_stays_one_line(database_url: str, users_app: Callable[..., Path]) -> None:
    """A DO block raising a message with newlines: the ❌ line is still one line."""
    folder = users_app(("raise", "DO $$ BEGIN RAISE EXCEPTION E'first part\\nsecond part'; END $$;"))
    result = run_entrypoint([], url=database_url, folder=folder)
    assert result.returncode == 6, output_of(result)
    assert "first part second part" in assert_one_error(output_of(result))


# --------------------------------------------------------------------------
# Memory.


def _peak_rss_kb(url: str, folder: Path) -> int:
    """The peak resident memory of one deploy, in KB, measured by a parent that runs nothing else."""
    code = (
        "import resource, subprocess, sys; "
        "done = subprocess.run([sys.executable, '-m', 'entrypoint'], capture_output=True); "
        "sys.stderr.write(done.stdout.decode()[-2000:]); "
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=entrypoint_env(url, MIGRATIONS_DIR=str(folder)),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    returncode, peak = result.stdout.split()
    assert returncode == "0", result.stderr
    return int(peak)


def test_a_large_data_migration_is_held_once(database_factory: Any, users_app: Callable[..., Path]) -> None:
    """A 60 MB data migration: its bytes once, plus libpq's own copy of the query it sends.

    libpq buffers a whole query (growing its buffer by doubling), so the floor is about two to three times the file;
    before, the file was also held as text, stripped and re-encoded: four times (measured on the previous main).
    """
    small, large = database_factory(), database_factory()
    table = ("table", 'CREATE TABLE "blob" ("n" int, "t" text);')
    baseline_folder = users_app(table, url=small, name="small")
    big_folder = users_app(table, ("data", ""), url=large, name="large")
    path = next(big_folder.glob("*_data.sql"))
    rows = ",".join(f"({n}, '{'x' * 50}')" for n in range(10_000))
    with path.open("a") as file:
        while path.stat().st_size < 60 * 2**20:
            file.write(f'INSERT INTO "blob" VALUES {rows};\n')
    size_kb = path.stat().st_size // 1024
    baseline = _peak_rss_kb(small, baseline_folder)
    peak = _peak_rss_kb(large, big_folder)
    assert peak - baseline < 3.3 * size_kb, (peak, baseline, size_kb)
    assert query(large, "SELECT count(*) > 0 FROM blob") == [(True,)]
