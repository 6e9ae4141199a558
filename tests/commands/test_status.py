"""`python -m entrypoint status`: every entry's state against the ledger, read-only, and its JSON contract."""

from __future__ import annotations

import json
from typing import Any

from harness.production import journal_entries
from tests.drizzle_ref import EXAMPLE_MIGRATIONS, drizzle_migrate
from tests.support import assert_untouched, output_of, query, run_entrypoint

ENTRY_KEYS = {"idx", "tag", "when", "when_iso", "state", "ledger_id", "hash"}
STATES = {"applied", "pending", "drifted id", "hash mismatch", "out of order", "unnamed", "renamed"}
SUMMARY_KEYS = {
    "entries",
    "applied",
    "pending",
    "drifted_id",
    "hash_mismatch",
    "out_of_order",
    "unnamed",
    "renamed",
    "unknown_rows",
    "ahead",
    "refusal",
}


def _status_json(url: str, **env: str) -> tuple[int, dict[str, Any]]:
    result = run_entrypoint(["status", "--json"], url=url, folder=EXAMPLE_MIGRATIONS, **env)
    return result.returncode, json.loads(result.stdout)


def _states(document: dict[str, Any]) -> dict[str, str]:
    return {entry["tag"]: entry["state"] for entry in document["entries"]}


def test_fresh_database_is_all_pending(database_url: str) -> None:
    """On an empty database every entry is pending, exit 12, and no ledger table is created."""
    result = run_entrypoint(["status"], url=database_url, folder=EXAMPLE_MIGRATIONS)
    out = output_of(result)
    assert result.returncode == 12, out
    lines = result.stdout.splitlines()
    assert lines[0] == f"📋 Migrations in {EXAMPLE_MIGRATIONS} against drizzle.__drizzle_migrations"
    assert sum(" pending " in line or line.endswith(" pending") for line in lines) == 12
    assert lines[-1].startswith("❌ Not in step: 12 pending.")
    assert query(database_url, "SELECT to_regclass('drizzle.__drizzle_migrations')") == [(None,)]


def test_after_drizzle_migrate_all_applied(database_url: str) -> None:
    """After drizzle-orm's own migrator, every entry is applied with ids 1..12, exit 0, one ✅ summary."""
    assert drizzle_migrate(database_url, EXAMPLE_MIGRATIONS).returncode == 0
    result = run_entrypoint(["status"], url=database_url, folder=EXAMPLE_MIGRATIONS)
    assert result.returncode == 0, output_of(result)
    assert result.stdout.splitlines()[-1] == "✅ 12/12 migrations applied, ledger in step"
    code, document = _status_json(database_url)
    assert code == 0
    assert document["clean"] is True
    assert set(_states(document).values()) == {"applied"}
    assert [e["ledger_id"] for e in document["entries"]] == list(range(1, 13))


def test_runbook_drifted_ledger(production_db: str) -> None:
    """The runbook's ledger: 0000-0007 applied, 0008-0010 hash mismatch with ids 283-285, 0011 pending, exit 12."""
    result = run_entrypoint(["status"], url=production_db, folder=EXAMPLE_MIGRATIONS)
    out = output_of(result)
    assert result.returncode == 12, out
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if line.split()[0].isdigit()}
    assert rows["0008_brave_songbird"].endswith("hash mismatch  283 → 8")
    assert rows["0010_perpetual_magneto"].endswith("hash mismatch  285 → 10")
    assert rows["0011_performance_indexes"].endswith("pending        -")
    code, document = _status_json(production_db)
    assert code == 12
    states = _states(document)
    assert [states[t] for t in sorted(states)] == ["applied"] * 8 + ["hash mismatch"] * 3 + ["pending"]
    assert [e["ledger_id"] for e in document["entries"]] == [*range(8), 283, 284, 285, None]
    assert document["unknown_rows"] == []


def test_drifted_id_only(database_url: str) -> None:
    """A row with the right hash and created_at but an id off the ledger's convention shows `drifted id`."""
    assert drizzle_migrate(database_url, EXAMPLE_MIGRATIONS).returncode == 0
    query(database_url, "UPDATE drizzle.__drizzle_migrations SET id = 300 WHERE id = 12")
    code, document = _status_json(database_url)
    assert code == 12
    last = document["entries"][-1]
    assert (last["state"], last["ledger_id"]) == ("drifted id", 300)
    assert document["summary"]["drifted_id"] == 1


def test_unknown_row_is_listed(database_url: str) -> None:
    """With WHEN_AHEAD=refuse, a row no entry accounts for (ahead of the journal) is listed with the refusal reason."""
    assert drizzle_migrate(database_url, EXAMPLE_MIGRATIONS).returncode == 0
    query(database_url, "INSERT INTO drizzle.__drizzle_migrations (hash, created_at) VALUES ('f00d', 4102444800000)")
    result = run_entrypoint(["status"], url=database_url, folder=EXAMPLE_MIGRATIONS, WHEN_AHEAD="refuse")
    assert result.returncode == 12, output_of(result)
    lines = result.stdout.splitlines()
    assert any(line.startswith("⚠️  Ledger not matched to the journal (ahead)") for line in lines)
    assert "❓ 13 ledger rows not matched to an entry:" in lines
    assert any(line.split() == ["13", "2100-01-01T00:00:00.000Z", "f00d"] for line in lines)
    _, document = _status_json(database_url, WHEN_AHEAD="refuse")
    assert document["unknown_rows"][-1] == {
        "id": 13,
        "hash": "f00d",
        "created_at": 4102444800000,
        "created_at_iso": "2100-01-01T00:00:00.000Z",
    }
    assert set(_states(document).values()) == {"applied"}  # exact matches still count
    assert document["summary"]["refusal"]["reason"] == "ahead"
    assert document["clean"] is False


def test_unknown_rows_on_the_runbook_ledger(production_db: str) -> None:
    """Two stray rows on the runbook's ledger make the sync refuse (drift: 0011 pending, older than them)."""
    query(
        production_db,
        "INSERT INTO drizzle.__drizzle_migrations (id, hash, created_at) "
        "VALUES (286, 'f00d', 4102444800000), (287, 'beef', 4102444800001)",
    )
    code, document = _status_json(production_db)
    assert code == 12
    assert [row["id"] for row in document["unknown_rows"]] == [*range(8), 283, 284, 285, 286, 287]
    assert document["summary"]["refusal"]["reason"] == "drift"
    states = _states(document)
    assert [states[t] for t in sorted(states)][:8] == ["applied"] * 8


def test_json_schema(production_db: str) -> None:
    """`--json` prints one document with exactly the documented keys and types (docs/operator-commands.md)."""
    code, document = _status_json(production_db)
    assert code == 12
    assert set(document) == {
        "folder",
        "ledger",
        "entries",
        "unknown_rows",
        "ahead_rows",
        "summary",
        "units",
        "units_refused",
        "unlisted",
        "clean",
    }
    assert document["folder"] == str(EXAMPLE_MIGRATIONS)
    assert document["ledger"] == {"schema": "drizzle", "table": "__drizzle_migrations", "exists": True, "rows": 11}
    journal = journal_entries(EXAMPLE_MIGRATIONS)
    for entry, source in zip(document["entries"], journal, strict=True):
        assert set(entry) == ENTRY_KEYS
        assert (entry["idx"], entry["tag"], entry["when"]) == (source["idx"], source["tag"], source["when"])
        assert entry["when_iso"].endswith("Z")
        assert entry["state"] in STATES
        assert isinstance(entry["hash"], str)
        assert len(entry["hash"]) == 64
    assert set(document["summary"]) == SUMMARY_KEYS
    assert document["summary"] | {"refusal": None} == {
        "entries": 12,
        "applied": 8,
        "pending": 1,
        "drifted_id": 0,
        "hash_mismatch": 3,
        "out_of_order": 0,
        "unnamed": 0,
        "renamed": 0,
        "unknown_rows": 0,
        "ahead": 0,
        "refusal": None,
    }
    assert document["clean"] is False


def test_status_changes_nothing(production_db: str, pg_server: Any) -> None:
    """status on the drifted ledger leaves the ledger rows and `pg_dump --schema-only` byte-identical."""
    with assert_untouched(production_db, pg_server.bin("pg_dump")):
        assert run_entrypoint(["status"], url=production_db, folder=EXAMPLE_MIGRATIONS).returncode == 12
        assert run_entrypoint(["status", "--json"], url=production_db, folder=EXAMPLE_MIGRATIONS).returncode == 12


def test_log_format_json(database_url: str) -> None:
    """With LOG_FORMAT=json every line is one event object: a header, one `status.row` per entry, the failure."""
    result = run_entrypoint(["status"], url=database_url, folder=EXAMPLE_MIGRATIONS, LOG_FORMAT="json")
    assert result.returncode == 12, output_of(result)
    events = [json.loads(line) for line in result.stdout.splitlines()]
    rows = [e for e in events if e["event"] == "status.row"]
    assert [(e["tag"], e["state"]) for e in rows] == [
        (entry["tag"], "pending") for entry in journal_entries(EXAMPLE_MIGRATIONS)
    ]
    assert events[0]["event"] == "status.header"
    assert (events[-1]["event"], events[-1]["exit_code"]) == ("status.not_clean", 12)
