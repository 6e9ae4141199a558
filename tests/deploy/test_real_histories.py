"""Real migration histories: every folder drizzle-orm applies, and the ones it chokes on, on a real server.

The folders are drizzle-kit's own output (tests/drizzle_folders/variants, each with the script that made
it): prefixes, no breakpoints, the old `pg` v5 journal, unlisted and empty files, an enum value added then
used, and a migration with its own `COMMIT;`. drizzle-orm 0.45.4 is the reference throughout.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.production import copy_folder, journal_entries
from tests.drizzle_ref import REPO, drizzle_migrate
from tests.folders import add_custom, generated_folder
from tests.support import assert_one_error, ledger, output_of, query, run_entrypoint, schema_dump

VARIANTS = REPO / "tests" / "drizzle_folders" / "variants"
APPLYING = ["prefix-timestamp", "prefix-unix", "prefix-supabase", "no-breakpoints", "legacy-pg-v5",
            "unlisted-sql", "empty-and-comment-only", "enum-commit-concurrently"]  # fmt: skip


def _ok(result: object) -> None:
    assert getattr(result, "returncode", None) == 0, output_of(result)  # type: ignore[arg-type]


def _same_database(pg_server: object, ours: str, theirs: str, *tables: str) -> None:
    """Same schema, same ledger (ids included), same rows in `tables`."""
    pg_dump = pg_server.bin("pg_dump")  # type: ignore[attr-defined]
    assert schema_dump(pg_dump, ours) == schema_dump(pg_dump, theirs)
    assert ledger(ours) == ledger(theirs)
    for table in tables:
        assert query(ours, f"SELECT * FROM {table} ORDER BY 1") == query(theirs, f"SELECT * FROM {table} ORDER BY 1")


@pytest.mark.parametrize("name", APPLYING)
def test_every_variant_drizzle_applies_we_apply_the_same(name: str, database_factory, pg_server) -> None:
    """On a fresh database: the same schema and ledger as drizzle-orm's, and each finds nothing to do after the other."""
    folder = VARIANTS / name / "drizzle"
    ours, theirs = database_factory(), database_factory()
    _ok(run_entrypoint([], url=ours, folder=folder))
    _ok(drizzle_migrate(theirs, folder))
    _same_database(pg_server, ours, theirs)
    rows = ledger(ours)
    _ok(drizzle_migrate(ours, folder))
    assert ledger(ours) == rows
    again = run_entrypoint([], url=theirs, folder=folder)
    _ok(again)
    assert f"💤 No pending migrations ({len(rows)} already applied)" in again.stdout


def test_a_folder_drizzle_cannot_apply_fails_the_same_way(database_factory) -> None:
    """prefix 'none' (drizzle-kit 0.31 re-creates the table each time): both fail at the 2nd entry, nothing kept."""
    folder = VARIANTS / "prefix-none" / "drizzle"
    ours, theirs = database_factory(), database_factory()
    failed = drizzle_migrate(theirs, folder)
    assert failed.returncode != 0
    assert "already exists" in failed.stderr
    result = run_entrypoint([], url=ours, folder=folder)
    assert result.returncode == 6, output_of(result)
    tag = journal_entries(folder)[1]["tag"]
    line = assert_one_error(output_of(result))
    assert f"already exists (in {tag}, statement 1/" in line
    assert line.endswith("Everything was rolled back: fix the migration, then redeploy")
    assert ledger(ours) == ledger(theirs) == []


def test_unlisted_files_are_ignored_and_shown_by_status(database_url: str) -> None:
    """A .sql file no journal entry names is never run (as drizzle-orm), and `status` mentions it."""
    folder = VARIANTS / "unlisted-sql" / "drizzle"
    _ok(run_entrypoint([], url=database_url, folder=folder))
    listed = {f"{e['tag']}.sql" for e in journal_entries(folder)}
    (unlisted,) = sorted(p.name for p in folder.glob("*.sql") if p.name not in listed)
    status = run_entrypoint(["status"], url=database_url, folder=folder)
    _ok(status)
    assert f"   (not in the journal, so never applied: {unlisted})" in status.stdout


# --------------------------------------------------------------------------
# A migration with its own COMMIT (the drizzle-orm#860 workaround), and enum values used later.

COMMIT_FOLDER = VARIANTS / "enum-commit-concurrently" / "drizzle"
ENUM_FOLDER = VARIANTS / "enum-add-value-then-use" / "drizzle"


def test_own_commit_then_concurrently_then_enum_value_then_its_use(database_factory, pg_server) -> None:
    """The issue's reproduction on a fresh database: drizzle-orm applies all four, and so do we, identically."""
    ours, theirs = database_factory(), database_factory()
    result = run_entrypoint([], url=ours, folder=COMMIT_FOLDER)
    _ok(result)
    _ok(drizzle_migrate(theirs, COMMIT_FOLDER))
    _same_database(pg_server, ours, theirs, "tickets")
    assert query(ours, "SELECT title, priority::text FROM tickets") == [("Production is down", "urgent")]
    assert "manages its own transaction (its own COMMIT, statement 3)" in result.stdout


@pytest.mark.parametrize(("applied", "drizzle_error"), [(1, "cannot run inside a transaction block"),
                                                         (2, "unsafe use of new value")])  # fmt: skip
def test_the_same_files_after_smaller_deploys(
    applied: int, drizzle_error: str, tmp_path: Path, database_factory, pg_server
) -> None:
    """Where drizzle-orm fails on the same files taken in smaller deploys (25001, 55P04), we end where it ends fresh."""
    earlier = copy_folder(COMMIT_FOLDER, tmp_path / "earlier", keep=applied)
    ours, theirs, fresh = database_factory(), database_factory(), database_factory()
    for url in (ours, theirs):
        _ok(drizzle_migrate(url, earlier))
    failed = drizzle_migrate(theirs, COMMIT_FOLDER)
    assert failed.returncode != 0
    assert drizzle_error in failed.stderr
    _ok(run_entrypoint([], url=ours, folder=COMMIT_FOLDER))
    _ok(drizzle_migrate(fresh, COMMIT_FOLDER))
    _same_database(pg_server, ours, fresh, "tickets")
    _ok(drizzle_migrate(ours, COMMIT_FOLDER))


def _one_release_at_a_time(url: str, folder: Path, tmp_path: Path) -> None:
    """drizzle-orm deploying the folder one migration per release: the reference where one run of it fails."""
    for keep in range(1, len(journal_entries(folder)) + 1):
        _ok(drizzle_migrate(url, copy_folder(folder, tmp_path / f"release-{keep}", keep=keep)))


def test_an_enum_value_used_later_on_a_fresh_database(tmp_path: Path, database_factory, pg_server) -> None:
    """Class 3, on a fresh database (CI, a preview environment): we apply the folder in one run on every major.

    drizzle-orm fails there on PostgreSQL before 18 (55P04); where it can, it ends where we end, and so does
    drizzle-orm deploying one migration per release.
    """
    ours, theirs, stepwise = database_factory(), database_factory(), database_factory()
    _ok(run_entrypoint([], url=ours, folder=ENUM_FOLDER))
    fresh = drizzle_migrate(theirs, ENUM_FOLDER)
    if pg_server.major < 18:
        assert fresh.returncode != 0
        assert "unsafe use of new value" in fresh.stderr
    else:
        _ok(fresh)
        _same_database(pg_server, ours, theirs, "orders")
    _one_release_at_a_time(stepwise, ENUM_FOLDER, tmp_path)
    _same_database(pg_server, ours, stepwise, "orders")
    _ok(drizzle_migrate(ours, ENUM_FOLDER))


def test_an_enum_value_added_then_used_in_a_later_migration(tmp_path: Path, database_factory, pg_server) -> None:
    """The type deployed earlier, the value added and used now: drizzle-orm fails (55P04), we commit between.

    We then end exactly where drizzle-orm ends when it can apply the folder at all (on a fresh database).
    """
    earlier = copy_folder(ENUM_FOLDER, tmp_path / "earlier", keep=1)
    ours, theirs, fresh = database_factory(), database_factory(), database_factory()
    for url in (ours, theirs):
        _ok(drizzle_migrate(url, earlier))
        query(url, "INSERT INTO orders (reference) VALUES ('first'), ('second')")
    query(fresh, "SELECT 1")
    failed = drizzle_migrate(theirs, ENUM_FOLDER)
    assert failed.returncode != 0
    assert "unsafe use of new value" in failed.stderr
    dry = run_entrypoint(["--dry-run"], url=ours, folder=ENUM_FOLDER)
    _ok(dry)
    tag = journal_entries(ENUM_FOLDER)[1]["tag"]
    assert (
        f"   ⤷ commit: {tag} adds an enum value, which later migrations can use only once it is committed" in dry.stdout
    )
    _ok(run_entrypoint([], url=ours, folder=ENUM_FOLDER))
    assert query(ours, "SELECT reference, status::text FROM orders ORDER BY id") == [
        ("first", "draft"),
        ("second", "draft"),
        ("welcome-draft", "draft"),
    ]
    _ok(drizzle_migrate(fresh, earlier))
    query(fresh, "INSERT INTO orders (reference) VALUES ('first'), ('second')")
    _ok(run_entrypoint([], url=fresh, folder=ENUM_FOLDER))
    _same_database(pg_server, ours, fresh, "orders")


def test_a_failure_after_a_commit_says_what_was_kept(tmp_path: Path, database_url: str) -> None:
    """A new value committed, then a later migration fails: the ❌ line names what is kept, never "Everything"."""
    project = tmp_path / "app"
    folder = generated_folder(
        project,
        [
            ("mood", "CREATE TYPE \"mood\" AS ENUM ('ok');"),
        ],
    )
    _ok(run_entrypoint([], url=database_url, folder=folder))
    add_custom(project, "sad", "ALTER TYPE \"mood\" ADD VALUE 'sad';")
    add_custom(project, "broken", "SELECT 'sad'::mood;\n--> statement-breakpoint\nSELECT * FROM missing_table;")
    add_custom(project, "after", 'CREATE TABLE "after" ("id" int);')
    result = run_entrypoint([], url=database_url, folder=folder)
    assert result.returncode == 6, output_of(result)
    line = assert_one_error(output_of(result))
    assert "Everything was rolled back" not in line
    assert "(in 0003_broken, statement 2/2)" in line
    assert line.endswith(
        "Applied and kept (committed before it): 0002_sad. Rolled back: 0003_broken, 0004_after: fix the migration, "
        "then redeploy"
    )
    assert [row[0] for row in query(database_url, "SELECT unnest(enum_range(NULL::mood))::text")] == ["ok", "sad"]
    assert len(ledger(database_url)) == 3
    assert query(database_url, "SELECT to_regclass('after')") == [(None,)]


# --------------------------------------------------------------------------
# A journal whose `when` does not increase: a branch merged after a later one.


def _merged(tmp_path: Path) -> tuple[Path, list[dict[str, object]]]:
    """0000 on main; branch B generated 0002_b first, branch A 0001_a later; A merged first, then B.

    drizzle-kit wrote every file and entry; the merge (a person's edit of the journal, resolving the
    conflict) leaves B's entry last with its older `when`.
    """
    project = tmp_path / "app"
    folder = generated_folder(project, [])
    add_custom(project, "feature_a", 'ALTER TABLE "users" ADD COLUMN "a" text;')
    add_custom(project, "feature_b", 'ALTER TABLE "users" ADD COLUMN "b" text;')
    path = folder / "meta" / "_journal.json"
    journal = json.loads(path.read_text())
    entries = journal["entries"]
    entries[2]["when"] = (entries[0]["when"] + entries[1]["when"]) // 2
    path.write_text(json.dumps(journal, indent=2))
    return folder, entries


def _release(folder: Path, target: Path, tags: list[str]) -> Path:
    """The folder as a release with only `tags` shipped, in that order."""
    copy = copy_folder(folder, target)
    path = copy / "meta" / "_journal.json"
    journal = json.loads(path.read_text())
    journal["entries"] = [e for tag in tags for e in journal["entries"] if e["tag"] == tag]
    path.write_text(json.dumps(journal, indent=2))
    return copy


def test_a_merged_journal_applies_on_a_fresh_database_like_drizzle(tmp_path: Path, database_factory, pg_server) -> None:
    """A `when` older than the entry before it: accepted (a warning, not exit 3), applied in journal order."""
    folder, entries = _merged(tmp_path)
    ours, theirs = database_factory(), database_factory()
    for args in (["--dry-run"], ["status"]):
        assert run_entrypoint(args, url=ours, folder=folder).returncode in {0, 12}
    result = run_entrypoint([], url=ours, folder=folder)
    _ok(result)
    assert (
        f"⚠️  {entries[2]['tag']} is dated before {entries[1]['tag']}, which comes earlier in the journal"
        in result.stdout
    )
    _ok(drizzle_migrate(theirs, folder))
    _same_database(pg_server, ours, theirs)
    _ok(run_entrypoint([], url=theirs, folder=folder))
    assert ledger(theirs) == ledger(ours)


def test_a_merged_branch_drizzle_would_skip_is_refused(tmp_path: Path, database_factory, pg_server) -> None:
    """A shipped (its later `when` applied), then B merged: drizzle-orm skips B forever, exit 0; we stop (exit 8).

    The database is left as it was, and ALLOW_OUT_OF_ORDER=1 applies B.
    """
    folder, entries = _merged(tmp_path)
    tags = [str(e["tag"]) for e in entries]
    shipped = _release(folder, tmp_path / "with-a", tags[:2])
    ours, theirs = database_factory(), database_factory()
    for url in (ours, theirs):
        _ok(drizzle_migrate(url, shipped))
    skipped = drizzle_migrate(theirs, folder)
    _ok(skipped)
    assert len(ledger(theirs)) == 2  # drizzle-orm's silent skip
    before = (ledger(ours), schema_dump(pg_server.bin("pg_dump"), ours))
    refused = run_entrypoint([], url=ours, folder=folder)
    assert refused.returncode == 8, output_of(refused)
    assert f"❌ {tags[2]} is older than the newest applied migration and never applied" in refused.stdout
    assert (ledger(ours), schema_dump(pg_server.bin("pg_dump"), ours)) == before
    _ok(run_entrypoint([], url=ours, folder=folder, ALLOW_OUT_OF_ORDER="1"))
    assert query(ours, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'b'") == [(1,)]


def test_the_earlier_branch_shipped_first_then_the_later_one_applies(
    tmp_path: Path, database_factory, pg_server
) -> None:
    """B shipped first (alone), then the merged journal: A's later `when` is pending for both; same end state."""
    folder, entries = _merged(tmp_path)
    tags = [str(e["tag"]) for e in entries]
    shipped = _release(folder, tmp_path / "with-b", [tags[0], tags[2]])
    ours, theirs = database_factory(), database_factory()
    for url in (ours, theirs):
        _ok(drizzle_migrate(url, shipped))
    _ok(run_entrypoint([], url=ours, folder=folder))
    _ok(drizzle_migrate(theirs, folder))
    _same_database(pg_server, ours, theirs)
