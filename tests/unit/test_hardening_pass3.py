"""The pure parts of the third hostile run's fixes (issue 24): no server needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from entrypoint import logs
from entrypoint.core import ddl
from entrypoint.core.baseline_plan import MISSING, UNPROVEN, unproven_by_position
from entrypoint.core.model import Migration
from entrypoint.core.text import iso
from entrypoint.db.blockers import shown_query
from entrypoint.journal import MAX_WHEN, split_statements


def test_the_latest_when_is_the_last_instant_a_date_can_show() -> None:
    """MAX_WHEN is 9999-12-31T23:59:59.999Z, and a row's bigint beyond any date is shown as its number."""
    assert iso(MAX_WHEN) == "9999-12-31T23:59:59.999Z"
    assert iso(2**53 - 1) == str(2**53 - 1)
    assert iso(-(2**62)) == str(-(2**62))


def test_a_chunk_the_scanner_rejects_is_one_syntax_error_finding() -> None:
    """Split inside a DO block: each half is a `syntax-error` danger with PostgreSQL's reason, nothing quoted after."""
    raw = b"DO $$ BEGIN\n  UPDATE t SET a = 1;\n--> statement-breakpoint\n  UPDATE t SET a = 2;\nEND $$;"
    found = ddl.findings([Migration(0, "0000_split", 1, "h", split_statements(raw))])
    assert [(f.statement, f.rule, f.severity, f.detail) for f in found] == [
        (1, "syntax-error", "danger", "PostgreSQL's parser rejects it (unterminated dollar-quoted string)"),
        (2, "syntax-error", "danger", "PostgreSQL's parser rejects it (unterminated dollar-quoted string)"),
    ]


def _migration(idx: int, sql: bytes) -> Migration:
    return Migration(idx, f"000{idx}_m", idx + 1, f"h{idx}", split_statements(sql))


def test_a_position_match_needs_evidence_not_the_absence_of_counter_evidence() -> None:
    """An UPDATE is never proven; a table that exists is; one that does not is missing; a rename is proven by its effect."""
    table = _migration(0, b'CREATE TABLE "t" ("id" int);')
    data = _migration(1, b'UPDATE "t" SET "id" = 1;')
    renamed = _migration(2, b'ALTER TABLE "t" RENAME COLUMN "id" TO "key";')
    catalog = {("table", "public", "t", None), ("column", "public", "key", "t")}
    found = unproven_by_position([table, data], {data.tag}, catalog)
    assert found is not None
    assert (found.evidence.migration, found.problem) == (data, UNPROVEN)
    assert (
        unproven_by_position([table], {table.tag}, {("table", "public", "t", None), ("column", "public", "id", "t")})
        is None
    )
    assert unproven_by_position([table, data, renamed], {renamed.tag}, catalog) is None
    missing = unproven_by_position([table], {table.tag}, set())
    assert missing is not None
    assert (missing.problem, [o.name for o in missing.objects]) == (MISSING, ["t", "id"])


def test_another_sessions_query_shows_its_command_only_unless_debugging() -> None:
    """By default the command word (comments skipped, unknown words hidden); with debug, scrubbed, then cut."""
    query = "/* report */ -- nightly\n  update users set token = 'S3cretTokenValue' where id = 1"
    assert shown_query(query, debug=False, cut=80) == "UPDATE …"
    assert shown_query("S3cretTokenValue is not SQL", debug=False, cut=80) == "…"
    assert shown_query(None, debug=False, cut=80) == "…"
    logs.configure("console", ("S3cretTokenValue",))
    try:
        assert shown_query(query, debug=True, cut=60) == (
            "/* report */ -- nightly update users set token = '***' where…"
        )
    finally:
        logs.configure("console", ())


def test_the_deadline_sentence_says_each_rollback_once() -> None:
    """In whatever unit and however far the run got, the deadline's sentence never says "rolled back" twice."""
    from entrypoint.core.transactions import Unit
    from entrypoint.deploy.outcome import OutOfTime, describe
    from entrypoint.deploy.progress import RunState

    first, second = (_migration(n, b"SELECT 1;") for n in (0, 1))
    units = [Unit(kind, (second,), "why") for kind in ("transaction", "outside", "own", "concurrent")]
    for unit in [None, *units]:
        for kept in ((), (first,)):
            for cut in (None, 4242):
                state = RunState(writing=True, applying=True, unit=unit, kept=kept, cut=cut, migration=second, number=1)
                sentence = describe(state, OutOfTime(60)).lower()
                assert sentence.count("rolled back") + sentence.count("rolls its transaction back") <= 1, sentence
                assert "lines above" not in sentence


def test_a_transaction_ended_unseen_is_described_as_the_server_says_it_ended() -> None:
    """COMMIT: what it kept, never "rolled back"; ROLLBACK: what it undid and what ran after it; unknown: how to look."""
    from entrypoint.core.transactions import Unit
    from entrypoint.deploy.outcome import COMMITTED, ROLLED_BACK, StatementFailed, describe
    from entrypoint.deploy.progress import RunState

    first, seed = _migration(1, b"CREATE TABLE s (n int);"), _migration(2, b"BEGIN; INSERT INTO s VALUES (1); COMMIT;")
    state = RunState(unit=Unit("transaction", (first, seed), "the end of the run"), migration=seed, number=1)
    committed = describe(state, StatementFailed(seed, 1, None, None, ended=COMMITTED, committed=(first,)))
    assert committed.startswith(
        "That COMMIT kept 0001_m (with their ledger rows) and what 0002_m's statement 1 ran; 0002_m's ledger row was "
        "not written. "
    )
    assert "rolled back" not in committed
    undone = describe(state, StatementFailed(seed, 1, None, None, ended=ROLLED_BACK))
    assert undone.startswith("That ROLLBACK undid this transaction (its migrations before 0002_m included)")
    unknown = describe(state, StatementFailed(seed, 1, None, None))
    assert unknown.startswith("Whether it committed is unknown: compare the ledger with `python -m entrypoint status`")


def test_an_index_statement_moves_to_a_stand_in_table_and_definitions_compare_across_schemas() -> None:
    """The stand-in keeps every word but the schema (and CONCURRENTLY); two server spellings compare across schemas."""
    from entrypoint.core.sql import in_schema, same_definition

    moved = in_schema(
        b'CREATE INDEX CONCURRENTLY IF NOT EXISTS "i" ON "users" ("email") WHERE "users"."p" > 5;', "pg_temp"
    )
    assert moved == "CREATE INDEX i ON pg_temp.users (email) WHERE users.p > 5"
    assert in_schema(b"SELECT 1", "pg_temp") is None
    ours = "CREATE INDEX i ON public.users USING btree (email) WHERE (p > 5)"
    assert same_definition(ours, "CREATE INDEX i ON pg_temp_3.users USING btree (email) WHERE (p > 5)")
    assert not same_definition(ours, "CREATE INDEX i ON pg_temp_3.users USING btree (email) WHERE (p > 6)")


def test_unqualified_names_live_in_the_schema_postgresql_creates_them_in() -> None:
    """With `alice` first in current_schemas(false), `users` is alice.users; `public.posts` stays where it says."""
    from entrypoint.core.schema import expected_objects

    sql = b'CREATE TABLE "users" ("id" int);\n--> statement-breakpoint\nCREATE TABLE "public"."posts" ("id" int);'
    model, _ = expected_objects([_migration(0, sql)], default_schema="alice")
    assert {(o.schema, o.name) for o in model.live if o.kind == "table"} == {("alice", "users"), ("public", "posts")}


def test_only_stale_folders_of_ours_are_swept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A live run's folder stays; a dead run's goes; an unowned one goes only once a day old; others are not ours."""
    import os
    import tempfile

    from entrypoint.backup import leftovers

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = tmp_path / "entrypoint-backup-dead"
    dead.mkdir()
    (dead / leftovers.OWNER).write_text("4242\n")  # its run died: nobody holds the lock
    (dead / "x.dump").write_bytes(b"dump" * 1000)
    old, fresh, other = (tmp_path / name for name in ("entrypoint-restore-old", "entrypoint-backup-new", "app-data"))
    for folder in (old, fresh, other):
        folder.mkdir()
    os.utime(old, (1, 1))
    with leftovers.PrivateFolder("entrypoint-backup-") as live:
        assert sorted(leftovers.sweep()) == sorted([dead, old])
        assert live.exists() and fresh.exists() and other.exists()
    assert not live.exists()


def test_every_s3_request_is_bounded_by_explicit_timeouts() -> None:
    """The client connects and reads within S3_TIMEOUT, 3 tries: by default at most 2 minutes per request."""
    from entrypoint.backup.store import Credentials, Store, worst_wait

    credentials = Credentials("AKIA", "secret", None, "us-east-1", "http://127.0.0.1:9")
    assert worst_wait(credentials) == 120
    config = Store(credentials, "backups", "backup").client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (20, 20)
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}


def test_a_dump_entry_is_found_by_its_names_spaces_included() -> None:
    """`SCHEMA - my schema postgres` is the schema `my schema`, not `my`; `TABLE DATA` is not `TABLE`."""
    from entrypoint.backup.archive import Archive
    from entrypoint.core.model import LedgerSnapshot

    toc = (
        "6; 2615 16391 SCHEMA - my schema postgres",
        "220; 1259 16392 TABLE my schema t postgres",
        "2568; 0 16392 TABLE DATA public users postgres",
    )
    archive = Archive(Path("x.dump"), {}, toc, LedgerSnapshot(exists=False, has_names=False, rows=()))
    assert archive.entry("SCHEMA", "-", "my schema") == toc[0]
    assert archive.entry("SCHEMA", "-", "my") is None
    assert archive.holds("TABLE", "my schema", "t")
    assert not archive.holds("TABLE", "public", "users")


def test_a_client_tool_dies_with_a_sigkilled_parent() -> None:
    """Linux: a child started by `tools.start_tool` is killed by the kernel when its parent is SIGKILLed."""
    import os
    import signal
    import subprocess
    import sys
    import time

    program = (
        "import sys, time\n"
        "from entrypoint.backup.tools import start_tool\n"
        "child = start_tool(['sleep', '60'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    with subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, text=True) as parent:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}").exists() and "Z" not in Path(f"/proc/{child}/stat").read_text().split()[2]:
        assert time.monotonic() < deadline, "the child outlived its SIGKILLed parent"
        time.sleep(0.05)
