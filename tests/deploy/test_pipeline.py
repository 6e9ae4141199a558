"""A transaction unit's statements are pipelined: a round trip per batch, not per statement, all else per statement.

Each test runs the real entrypoint against a real server; the round trips are counted by a proxy
between them (`harness.latency.DelayProxy`, with no delay).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from harness.latency import DelayProxy
from tests.drizzle_ref import drizzle_migrate
from tests.folders import generated_folder
from tests.support import (
    assert_one_error,
    assert_untouched,
    imported_by,
    ledger,
    output_of,
    query,
    run_entrypoint,
    schema_dump,
    start_entrypoint,
)

BREAK = "\n--> statement-breakpoint\n"


def _tables(prefix: str, count: int) -> str:
    return BREAK.join(f'CREATE TABLE "{prefix}_{n}" ("id" integer);' for n in range(count))


@pytest.fixture
def proxied(database_url: str) -> Iterator[tuple[str, DelayProxy]]:
    """The test's database through a counting proxy (no delay): its URL, and the proxy."""
    parts = urlsplit(database_url)
    with DelayProxy((parts.hostname or "127.0.0.1", parts.port or 5432), 0.0) as proxy:
        netloc = parts.netloc.rsplit(":", 1)[0] + f":{proxy.port}"
        yield urlunsplit(parts._replace(netloc=netloc)), proxy


def test_statements_cost_no_round_trips(
    tmp_path: Path, database_factory: Callable[..., str], proxied: tuple[str, DelayProxy]
) -> None:
    """60 statements in a unit take the same round trips as 2: the unit's batch is one round trip."""
    url, proxy = proxied
    few = generated_folder(tmp_path / "few", [("few", _tables("a", 2))])
    many = generated_folder(tmp_path / "many", [("many", _tables("b", 60))])
    result = run_entrypoint([], url=url, folder=few)
    assert result.returncode == 0, output_of(result)
    few_trips = proxy.by_connection[0]
    proxy.reset()
    other = database_factory()
    parts = urlsplit(url)
    other_url = urlunsplit(parts._replace(path=urlsplit(other).path))
    result = run_entrypoint([], url=other_url, folder=many)
    assert result.returncode == 0, output_of(result)
    many_trips = proxy.by_connection[0]
    assert query(other, "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'b\\_%'") == [(60,)]
    assert many_trips - few_trips <= 1, (few_trips, many_trips)
    assert many_trips <= 20, many_trips  # connect, lock, ledger, plan, the unit, unlock: not one per statement


def test_a_failing_statement_is_named_in_its_batch(
    database_url: str, pg_server: Any, users_app: Callable[..., Path]
) -> None:
    """Three migrations in one batch, the second's third statement fails: that statement, in the ❌ line."""
    folder = users_app(
        ("first", _tables("first", 3)),
        ("second", BREAK.join(['CREATE TABLE "s1" ("id" integer);', 'CREATE TABLE "s2" ("id" integer);',
                               'ALTER TABLE "missing" ADD COLUMN "x" integer;', 'CREATE TABLE "s4" ("id" integer);'])),
        ("third", _tables("third", 2)),
    )  # fmt: skip
    with assert_untouched(database_url, pg_server.bin("pg_dump")):
        result = run_entrypoint([], url=database_url, folder=folder)
    out = output_of(result)
    assert result.returncode == 6, out
    assert assert_one_error(out) == (
        '❌ Migration failed: relation "missing" does not exist (in 0002_second, statement 3/4). '
        "Everything was rolled back: fix the migration, then redeploy"
    )


def test_the_heartbeat_names_the_running_statement_of_a_batch(
    database_url: str, users_app: Callable[..., Path]
) -> None:
    """A slow statement mid-batch: the server says which one runs, and the heartbeat names it."""
    folder = users_app(("slow", BREAK.join(['CREATE TABLE "a" ("id" integer);', "SELECT pg_sleep(2.5);",
                                            'CREATE TABLE "b" ("id" integer);'])))  # fmt: skip
    result = run_entrypoint([], url=database_url, folder=folder, HEARTBEAT_INTERVAL="1")
    out = output_of(result)
    assert result.returncode == 0, out
    beats = [line for line in out.splitlines() if line.startswith("⏱️  0001_slow: statement ")]
    assert beats, out
    assert all(line.startswith("⏱️  0001_slow: statement 2/3 still running after ") for line in beats), beats


def test_durations_are_the_servers(database_url: str, users_app: Callable[..., Path]) -> None:
    """Each migration's time comes from its ledger row's clock: the slow one's, not its neighbours'."""
    folder = users_app(("quick", _tables("q", 2)), ("slow", "SELECT pg_sleep(0.6);"), ("after", _tables("z", 1)))
    result = run_entrypoint([], url=database_url, folder=folder)
    out = output_of(result)
    assert result.returncode == 0, out
    times = {
        line.split()[1]: int(line.rsplit(", ", 1)[1].split()[0])
        for line in out.splitlines()
        if line.startswith("   ✔ ")
    }
    assert times["0002_slow"] >= 600, out
    assert times["0001_quick"] < 600, out
    assert times["0003_after"] < 600, out


SLEEPING = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()"


def test_sigterm_mid_batch_cancels_at_the_statement(
    database_url: str, pg_server: Any, users_app: Callable[..., Path]
) -> None:
    """SIGTERM while the batch's third statement sleeps: cancelled at once, rolled back, exit 143, nothing kept."""
    folder = users_app(("slow", BREAK.join([_tables("a", 2), "SELECT pg_sleep(30);", _tables("b", 2)])))
    with assert_untouched(database_url, pg_server.bin("pg_dump")):
        proc = start_entrypoint([], url=database_url, folder=folder)
        try:
            ends = time.monotonic() + 30
            while query(database_url, SLEEPING) == [(0,)]:
                assert time.monotonic() < ends, "the batch never reached pg_sleep"
                time.sleep(0.05)
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=20)
        finally:
            proc.kill()
            proc.communicate()
        assert proc.returncode == 143, out
        assert time.monotonic() - sent < 8
    assert assert_one_error(out).startswith("❌ Stopped by SIGTERM before the app started"), out
    assert query(database_url, SLEEPING) == [(0,)]


def test_the_deadline_mid_batch_names_the_statement_cancelled(
    database_url: str, users_app: Callable[..., Path]
) -> None:
    """DEPLOY_DEADLINE while the batch's third statement of four runs: the ❌ line says statement 3/4."""
    folder = users_app(("slow", BREAK.join([_tables("a", 2), "SELECT pg_sleep(30);", _tables("b", 1)])))
    before = ledger(database_url)
    result = run_entrypoint([], url=database_url, folder=folder, DEPLOY_DEADLINE="3")
    out = output_of(result)
    assert result.returncode == 21, out
    assert assert_one_error(out).startswith(
        "❌ DEPLOY_DEADLINE (3s) passed in 0001_slow, statement 3/4, before the app started: "
    ), out
    assert ledger(database_url) == before


def test_chunks_that_end_a_batch_apply_as_drizzle_orm_applies_them(
    tmp_path: Path, database_factory: Callable[..., str], pg_server: Any
) -> None:
    """A chunk of several statements and one over 1 MiB are sent on their own, between batches: same result."""
    rows = ", ".join(f"({n}, '{'x' * 40}')" for n in range(20_000))  # > 1 MiB: the parser never reads it
    folder = generated_folder(
        tmp_path / "app",
        [
            ("several", 'CREATE TABLE "s" ("id" integer); CREATE TABLE "t" ("id" integer, "v" text);' + BREAK
             + 'CREATE TABLE "u" ("id" integer);'),
            ("big", f'INSERT INTO "t" VALUES {rows};' + BREAK + 'CREATE INDEX "t_id" ON "t" ("id");'),
        ],
    )  # fmt: skip
    ours, theirs = database_factory(), database_factory()
    result = run_entrypoint([], url=ours, folder=folder)
    assert result.returncode == 0, output_of(result)
    assert drizzle_migrate(theirs, folder).returncode == 0
    assert [row[1:] for row in ledger(ours)] == [row[1:] for row in ledger(theirs)]
    assert schema_dump(pg_server.bin("pg_dump"), ours, data=True) == schema_dump(
        pg_server.bin("pg_dump"), theirs, data=True
    )


def test_a_commit_no_parser_read_is_still_caught(database_url: str, users_app: Callable[..., Path]) -> None:
    """A COMMIT inside a chunk over 1 MiB ends the transaction unseen: the status check after it stops the run."""
    padding = "-- " + "x" * (1 << 20) + "\n"
    folder = users_app(("first", _tables("a", 1)), ("hidden", _tables("b", 1) + BREAK + padding + "COMMIT;"))
    result = run_entrypoint([], url=database_url, folder=folder)
    out = output_of(result)
    assert result.returncode == 6, out
    line = assert_one_error(out)
    # The transaction's id, read in the first batch, lets the server say how it ended: committed, so the
    # line names what stays, and the ledger holds the rows that COMMIT kept, no more.
    assert line.startswith(
        "❌ Migration failed: the statement committed the transaction it ran in (a COMMIT no parser could see) "
        "(in 0002_hidden, statement 2/2). That COMMIT kept 0001_first (with their ledger rows) and what "
        "0002_hidden's statements 1-2 ran; 0002_hidden's ledger row was not written."
    ), line
    assert len(ledger(database_url)) == 2  # 0000_init and 0001_first
    kept = query(database_url, "SELECT relname FROM pg_class WHERE relname IN ('a_0', 'b_0') ORDER BY 1")
    assert kept == [("a_0",), ("b_0",)]


def test_a_start_with_nothing_pending_never_loads_the_parser(database_url: str, users_app: Callable[..., Path]) -> None:
    """The no-op start imports nothing of pglast; a start with something pending does."""
    folder = users_app(("one", _tables("a", 1)))
    result, pending = imported_by(["--", "true"], database_url, MIGRATIONS_DIR=str(folder))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pglast" in pending
    result, noop = imported_by(["--", "true"], database_url, MIGRATIONS_DIR=str(folder))
    assert result.returncode == 0, result.stdout + result.stderr
    assert not {name for name in noop if name.split(".")[0] == "pglast"}, sorted(noop)
