"""The corpus: 24 real drizzle-kit PostgreSQL folders, the entrypoint held against drizzle-orm on each.

Twenty are drizzle-kit 0.x folders (a journal), held against drizzle-orm 0.45.4; four are Drizzle 1.0
folders (one folder per migration, corpus-more's `v1/`), held against drizzle-orm 1.0.0-rc.5. Both are
compared the same way; a 1.0 ledger's `name` column is compared too.

Marked `corpus` and left out of the default run (pyproject's addopts): `scripts/corpus` runs them
(`scripts/test -m corpus`). The data is not in git; see tests/corpus/README.md and source.py for where it
is looked for. A folder that is absent or differs from its SHA256SUMS fails, it is never skipped.

Two scenarios per folder, each on databases prepared alike for both tools (corpus.json's `harness`):

- fresh: the whole folder on empty databases, ours on one, drizzle-orm's on the other;
- incremental: drizzle-orm applies the journal up to a point on two databases, then the whole folder
  is applied by each tool on one of them.

Where drizzle-orm succeeds, both end identical (pg_dump -s, ledger rows, row counts of every table) and
each then finds nothing to do on the other's database. Where drizzle-orm fails with one of the classes
the entrypoint fixes (25001 CONCURRENTLY in a transaction, 55P04 a new enum value used in its
transaction), the entrypoint must succeed, write the ledger drizzle-orm would, and end where drizzle-orm
ends fresh when it can; otherwise where drizzle-orm ends one migration per deploy (55P04) or on the files
with CONCURRENTLY removed (25001). Where drizzle-orm's pending rule skips an entry dated before an applied
one (whether it then exits 0 or fails for want of that entry), the entrypoint refuses (exit 8) and changes
nothing. Any other drizzle-orm failure must be ours too, at the same migration, with the same ledger rows
kept (or the different rows corpus.json declares, `harness.kept`). Where corpus.json states a scenario's
expected course (`harness.expect`), the run must take it: a change in either tool's behaviour fails, even
where the two still agree.
"""

from __future__ import annotations

import calendar
import difflib
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from harness.production import copy_folder, journal_entries
from tests.corpus.source import BY_NAME, FOLDERS, Folder, missing_message, verify
from tests.drizzle_ref import V045, Reference
from tests.drizzle_ref_v1 import V1
from tests.fix_pg import selected_major
from tests.support import output_of, query, run_entrypoint, schema_dump

pytestmark = pytest.mark.corpus

BREAKPOINT = "--> statement-breakpoint"
TIMEOUT = 1200  # seconds for one tool on one folder: the big folders take a few seconds, a slow CI much more
# drizzle-orm's failures the entrypoint is built to fix, by SQLSTATE, and PostgreSQL's message for each.
FIXED = {
    "25001": "cannot run inside a transaction block",
    "55P04": "unsafe use of new value",
}
# The entrypoint's exit code for a never-applied entry older than the newest applied one (drizzle-orm skips it).
OUT_OF_ORDER_EXIT = 8
CONCURRENTLY = re.compile(r"\bCONCURRENTLY\s+", re.IGNORECASE)


def collection_major() -> int:
    """The server major the session will use: TEST_DATABASE_URL's server's, else ENTRYPOINT_TEST_PG's."""
    external = os.environ.get("TEST_DATABASE_URL")
    if not external:
        return selected_major()
    with psycopg.connect(external, connect_timeout=10) as conn:
        return int(conn.info.server_version) // 10000


def once_majors() -> list[int]:
    """ENTRYPOINT_CORPUS_ONCE=18,15: each folder runs on the first of these majors it runs on, and only there.

    .ci/run sets it, and runs the corpus on 18 and then on 15: every folder once, on 18 where it can.
    """
    raw = os.environ.get("ENTRYPOINT_CORPUS_ONCE", "").strip()
    return [int(m) for m in raw.split(",") if m.strip()] if raw else []


def _collected(folder: Folder, major: int) -> bool:
    if not folder.runs_on(major):
        return False
    once = once_majors()
    return not once or next((m for m in once if folder.runs_on(m)), None) == major


MAJOR = collection_major()
RUNNABLE = [f for f in FOLDERS if _collected(f, MAJOR)]
NOT_HERE = [f for f in FOLDERS if not _collected(f, MAJOR)]


# --------------------------------------------------------------------------
# The two layouts: a drizzle-kit 0.x journal, or Drizzle 1.0's folder per migration.


def is_v1(folder: Path) -> bool:
    """Whether `folder` is a Drizzle 1.0 folder (no journal: `<YYYYMMDDHHMMSS>_<name>/migration.sql`)."""
    return not (folder / "meta" / "_journal.json").is_file()


def reference_for(folder: Path) -> Reference:
    """The drizzle-orm that reads this layout: 0.45.4 for a journal, 1.0.0-rc.5 for the 1.0 layout."""
    return V1 if is_v1(folder) else V045


def sql_file(folder: Path, tag: str) -> Path:
    return folder / tag / "migration.sql" if is_v1(folder) else folder / f"{tag}.sql"


def v1_names(folder: Path) -> list[str]:
    """The 1.0 migrations in drizzle-orm's order: names sorted with `localeCompare`, asked of node itself.

    Byte order differs from ICU's where two migrations share a timestamp (`_` and digits, case), and the
    corpus has two folders where they do; node decides as drizzle-orm does.
    """
    names = [p.name for p in folder.iterdir() if (p / "migration.sql").is_file()]
    script = "const n = JSON.parse(process.argv[1]); console.log(JSON.stringify(n.sort((a, b) => a.localeCompare(b))))"
    result = subprocess.run(
        ["node", "-e", script, json.dumps(names)], capture_output=True, text=True, timeout=60, check=True
    )
    ordered: list[str] = json.loads(result.stdout)
    return ordered


def tags_of(folder: Path) -> list[str]:
    """The migrations in the order drizzle-orm applies them: journal tags, or 1.0 folder names."""
    if is_v1(folder):
        return v1_names(folder)
    return [str(e["tag"]) for e in journal_entries(folder)]


def when_of(folder: Path) -> list[int]:
    """Each migration's `created_at` as drizzle-orm writes it: the journal's `when`, or 1.0's name as UTC millis."""
    if not is_v1(folder):
        return [int(e["when"]) for e in journal_entries(folder)]
    return [calendar.timegm(time.strptime(name[:14], "%Y%m%d%H%M%S")) * 1000 for name in v1_names(folder)]


def copy_release(source: Path, target: Path, *, keep: int | None = None) -> Path:
    """A copy of the folder; with `keep`, only its first `keep` migrations (an older release), either layout."""
    if not is_v1(source):
        return copy_folder(source, target, keep=keep)
    names = v1_names(source)
    shutil.copytree(source, target)
    if keep is not None:
        for name in names[keep:]:
            shutil.rmtree(target / name)
    return target


# --------------------------------------------------------------------------
# Outcomes of one tool's run.


@dataclass(frozen=True)
class Outcome:
    """How one run of one tool ended: ok, or the migration it failed in and why."""

    ok: bool
    exit_code: int
    failed_at: str | None
    error: str
    sqlstate: str | None
    seconds: float
    output: str

    def describe(self) -> str:
        if self.ok:
            return f"ok ({self.seconds:.1f} s)"
        state = f" [{self.sqlstate}]" if self.sqlstate else ""
        where = f" at {self.failed_at}" if self.failed_at else ""
        return f"failed{where} (exit {self.exit_code}){state}: {self.error} ({self.seconds:.1f} s)"


def _sqlstate(message: str) -> str | None:
    return next((code for code, text in FIXED.items() if text in message), None)


def _chunks(folder: Path, tag: str) -> list[str]:
    # Bytes decoded, not read_text(): drizzle-orm keeps \r\n, and so does the query it quotes.
    return sql_file(folder, tag).read_bytes().decode("utf-8").split(BREAKPOINT)


def drizzle_run(url: str, folder: Path, *, pending: list[str]) -> Outcome:
    """drizzle-orm's migrator on `folder`; on failure, the failed query is looked up among `pending` tags' chunks."""
    start = time.monotonic()
    result = reference_for(folder).migrate(url, folder, timeout=TIMEOUT)
    seconds = time.monotonic() - start
    output = output_of(result)
    if result.returncode == 0:
        return Outcome(ok=True, exit_code=0, failed_at=None, error="", sqlstate=None, seconds=seconds, output=output)
    cause = re.search(r"^cause: (.*)$", result.stderr, re.MULTILINE)
    error = cause.group(1) if cause else result.stderr.strip().splitlines()[0]
    failed = re.search(r"^Failed query: (.*?)\nparams: ", result.stderr, re.DOTALL | re.MULTILINE)
    failed_at = None
    if failed:
        statement = failed.group(1)
        failed_at = next((tag for tag in pending if statement in _chunks(folder, tag)), None)
    return Outcome(
        ok=False,
        exit_code=result.returncode,
        failed_at=failed_at or "(unknown migration)",
        error=error,
        sqlstate=_sqlstate(error),
        seconds=seconds,
        output=output,
    )


def entrypoint_run(url: str, folder: Path, **env: str) -> Outcome:
    """The entrypoint (no command) on `folder`; on failure, the tag its ❌ line names."""
    start = time.monotonic()
    result = run_entrypoint([], url=url, folder=folder, timeout=TIMEOUT, **env)
    seconds = time.monotonic() - start
    output = output_of(result)
    if result.returncode == 0:
        return Outcome(ok=True, exit_code=0, failed_at=None, error="", sqlstate=None, seconds=seconds, output=output)
    errors = [line for line in output.splitlines() if line.startswith("❌")]
    error = errors[0] if errors else f"exit {result.returncode}"
    where = re.search(r"\(in (\S+), statement \d+/\d+", error)
    return Outcome(
        ok=False,
        exit_code=result.returncode,
        failed_at=where.group(1) if where else None,
        error=error,
        sqlstate=_sqlstate(error),
        seconds=seconds,
        output=output,
    )


def record(folder: Folder, scenario: str, **outcomes: Outcome | str) -> None:
    """Append one line to $ENTRYPOINT_CORPUS_RESULTS (JSON lines) when set: the README's result table is made of them."""
    path = os.environ.get("ENTRYPOINT_CORPUS_RESULTS")
    if not path:
        return
    row: dict[str, Any] = {"folder": folder.name, "scenario": scenario, "postgres": MAJOR}
    for key, value in outcomes.items():
        row[key] = value.describe() if isinstance(value, Outcome) else value
        if key == "entrypoint" and isinstance(value, Outcome):
            row["entrypoint_warnings"] = [line for line in value.output.splitlines() if line.startswith("⚠️")]
    with Path(path).open("a", encoding="utf-8") as out:
        out.write(json.dumps(row, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------
# Databases and what is compared.


@dataclass
class Prepared:
    """A corpus folder checked against SHA256SUMS and ready to be run: its path and how to make its databases."""

    folder: Folder
    path: Path
    tags: list[str]
    make_database: Callable[[], str]


def prepare(name: str, database_factory: Callable[..., str], pg_server: Any) -> Prepared:
    """The folder, checked byte for byte, and a database maker applying corpus.json's preparation."""
    folder = BY_NAME[name]
    root = folder.root.path()
    path = folder.path()
    if not path.is_dir():
        pytest.fail(missing_message(folder, root))
    problems = verify(folder, root)
    if problems:
        pytest.fail(f"{folder.dir} in {root} is not the listed copy:\n" + "\n".join(problems))
    available = {row[0] for row in query(pg_server.url("postgres"), "SELECT name FROM pg_available_extensions")}
    unavailable = folder.unavailable_extensions
    missing = [e for e in folder.extensions if e not in available and e not in unavailable]
    if missing:
        pytest.fail(
            f"PostgreSQL {pg_server.major} lacks the extension {', '.join(missing)}, which {folder.name} needs: "
            "install it, or list the majors it runs on in corpus.json (harness.majors)"
        )
    now_there = [e for e in unavailable if e in available]
    if now_there:
        pytest.fail(
            f"{folder.name} is kept as the case where both tools stop at {', '.join(now_there)}, which no server "
            f"here had ({unavailable}); PostgreSQL {pg_server.major} has it now: update its corpus.json entry "
            "(harness.unavailable_extensions and harness.expect) to what the two tools do with it"
        )

    def make_database() -> str:
        url = database_factory(f"c_{folder.name}")
        for extension in folder.create_extensions:
            query(url, f'CREATE EXTENSION IF NOT EXISTS "{extension}"')
        if folder.url_options:
            url += ("&" if "?" in url else "?") + folder.url_options
        return url

    return Prepared(folder, path, tags_of(path), make_database)


def ledger(url: str) -> list[tuple[Any, ...]]:
    """The ledger's rows in id order: (id, hash, created_at), and `name` where the table has it (Drizzle 1.0)."""
    with psycopg.connect(url) as conn:
        has_name = conn.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = 'drizzle' "
            "AND table_name = '__drizzle_migrations' AND column_name = 'name'"
        ).fetchone()
        columns = "id, hash, created_at" + (", name" if has_name else "")
        rows = conn.execute(f"SELECT {columns} FROM drizzle.__drizzle_migrations ORDER BY id").fetchall()
    return [tuple(row) for row in rows]


def ledger_or_none(url: str) -> list[tuple[Any, ...]] | None:
    """The ledger's rows, or None when there is no ledger table."""
    try:
        return ledger(url)
    except psycopg.errors.UndefinedTable:
        return None


def row_counts(url: str) -> dict[str, int]:
    """count(*) of every user table (the ledger's schema aside: the ledger is compared row by row)."""
    tables = query(
        url,
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'drizzle') "
        "AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1",
    )
    return {name: query(url, f"SELECT count(*) FROM {name}")[0][0] for (name,) in tables}


def _excerpt(a: str, b: str, labels: tuple[str, str]) -> str:
    diff = list(difflib.unified_diff(a.splitlines(), b.splitlines(), *labels, lineterm="", n=2))
    return "\n".join(diff[:80]) + ("\n…" if len(diff) > 80 else "")


def assert_same_database(pg_server: Any, ours: str, theirs: str, labels: tuple[str, str]) -> None:
    """pg_dump -s, ledger rows (id, hash, created_at) and every table's row count are the same."""
    pg_dump = pg_server.bin("pg_dump")
    a, b = schema_dump(pg_dump, ours), schema_dump(pg_dump, theirs)
    assert a == b, "pg_dump -s differs:\n" + _excerpt(a, b, labels)
    la, lb = ledger_or_none(ours), ledger_or_none(theirs)
    assert la == lb, "ledgers differ:\n" + _excerpt(
        "\n".join(map(str, la or [])), "\n".join(map(str, lb or [])), labels
    )
    ca, cb = row_counts(ours), row_counts(theirs)
    assert ca == cb, "row counts differ: " + str(
        {t: (ca.get(t), cb.get(t)) for t in {*ca, *cb} if ca.get(t) != cb.get(t)}
    )


def expected_ledger(prepared: Prepared) -> list[tuple[Any, ...]]:
    """The rows drizzle-orm writes applying the whole folder in order: ids from 1, the file's sha256, `when`.

    A 1.0 ledger also names each row after its migration's folder.
    """
    v1 = is_v1(prepared.path)
    return [
        (i, hashlib.sha256(sql_file(prepared.path, tag).read_bytes()).hexdigest(), when, *([tag] if v1 else []))
        for i, (tag, when) in enumerate(zip(prepared.tags, when_of(prepared.path), strict=True), start=1)
    ]


def stepwise(prepared: Prepared, url: str, tmp_path: Path, *, start: int = 0) -> Outcome:
    """drizzle-orm deploying one migration at a time from entry `start`, one release per entry.

    It is drizzle-orm's own reference where it fails 55P04 in one go: each deploy commits an enum value
    before a later one uses it.
    """
    began = time.monotonic()
    for keep in range(start + 1, len(prepared.tags) + 1):
        release = copy_release(prepared.path, tmp_path / f"release-{keep}", keep=keep)
        step = drizzle_run(url, release, pending=[prepared.tags[keep - 1]])
        if not step.ok:
            return step
    return Outcome(ok=True, exit_code=0, failed_at=None, error="", sqlstate=None,
                   seconds=time.monotonic() - began, output="")  # fmt: skip


def without_concurrently(prepared: Prepared, target: Path) -> Path:
    """A copy of the folder with every CONCURRENTLY removed: the same indexes, built in drizzle-orm's transaction."""
    copy = copy_release(prepared.path, target)
    for tag in prepared.tags:
        path = sql_file(copy, tag)
        path.write_bytes(CONCURRENTLY.sub("", path.read_bytes().decode("utf-8")).encode("utf-8"))
    return copy


def assert_as_drizzle_would_end(
    prepared: Prepared, ours: str, failed: Outcome, *, scenario: str, pg_server: Any, tmp_path: Path, start: int = 0
) -> None:
    """Where drizzle-orm cannot apply the folder in one go, the entrypoint ends where drizzle-orm ends otherwise.

    55P04: drizzle-orm deploying one migration at a time, which commits each enum value before its use.
    The whole database must match. 25001: drizzle-orm on the files with CONCURRENTLY removed; pg_dump -s
    and the row counts must match (the ledger cannot: those files' hashes differ, and ours was checked
    against the journal). Both start from a new database with the same first `start` entries applied
    (a failed drizzle-orm run consumed ledger ids: sequences do not roll back).
    """
    reference = prepared.make_database()
    if start:
        earlier = copy_release(prepared.path, tmp_path / "reference-start", keep=start)
        assert_ok(drizzle_run(reference, earlier, pending=prepared.tags[:start]), "drizzle-orm, the first entries")
    if failed.sqlstate == "55P04":
        steps = stepwise(prepared, reference, tmp_path, start=start)
        record(prepared.folder, f"{scenario}: drizzle-orm one migration per deploy", drizzle=steps)
        assert_ok(steps, "drizzle-orm deploying one migration at a time")
        assert_same_database(pg_server, ours, reference, ("entrypoint", "drizzle-orm, one per deploy"))
        return
    plain = without_concurrently(prepared, tmp_path / "without-concurrently")
    built = drizzle_run(reference, plain, pending=prepared.tags[start:])
    record(prepared.folder, f"{scenario}: drizzle-orm without CONCURRENTLY", drizzle=built)
    assert_ok(built, "drizzle-orm on the files without CONCURRENTLY")
    pg_dump = pg_server.bin("pg_dump")
    a, b = schema_dump(pg_dump, ours), schema_dump(pg_dump, reference)
    labels = ("entrypoint", "drizzle-orm, without CONCURRENTLY")
    assert a == b, "pg_dump -s differs:\n" + _excerpt(a, b, labels)
    assert row_counts(ours) == row_counts(reference)
    assert [row[2] for row in ledger(reference)] == [row[2] for row in ledger(ours)]


def assert_ok(outcome: Outcome, what: str) -> None:
    assert outcome.ok, f"{what}: {outcome.describe()}\n{outcome.output[-4000:]}"


def assert_each_finds_nothing(prepared: Prepared, ours: str, theirs: str) -> None:
    """drizzle-orm on our database, and the entrypoint on drizzle-orm's, change nothing."""
    rows = ledger(ours)
    again = drizzle_run(ours, prepared.path, pending=[])
    assert_ok(again, "drizzle-orm on the entrypoint's database")
    assert ledger(ours) == rows, "drizzle-orm applied something on the entrypoint's database"
    theirs_rows = ledger(theirs)
    result = run_entrypoint([], url=theirs, folder=prepared.path, timeout=TIMEOUT)
    assert result.returncode == 0, output_of(result)
    assert f"💤 No pending migrations ({len(theirs_rows)} already applied)" in result.stdout, output_of(result)
    assert ledger(theirs) == theirs_rows, "the entrypoint changed drizzle-orm's ledger"


def assert_drizzle_finds_nothing(prepared: Prepared, ours: str) -> None:
    rows = ledger(ours)
    again = drizzle_run(ours, prepared.path, pending=[])
    assert_ok(again, "drizzle-orm on the entrypoint's database")
    assert ledger(ours) == rows, "drizzle-orm applied something on the entrypoint's database"


def assert_same_failure(
    prepared: Prepared,
    scenario: str,
    failures: tuple[Outcome, Outcome],
    urls: tuple[str, str],
    *,
    pg_server: Any,
    tmp_path: Path,
) -> None:
    """A failure the entrypoint does not fix: ours fails too, in the same migration, keeping the same ledger.

    Where corpus.json declares that the two keep different rows (`harness.kept`, by scenario: the last
    migration each tool keeps, and why), each ledger must be exactly that prefix of the folder, and our
    database must be the one drizzle-orm leaves deploying that prefix: a stop in a consistent state.
    """
    (ours, drizzle), (ours_url, theirs_url) = failures, urls
    assert not ours.ok, f"drizzle-orm {drizzle.describe()}; the entrypoint succeeded:\n{ours.output[-4000:]}"
    assert ours.failed_at == drizzle.failed_at, (
        f"drizzle-orm {drizzle.describe()}; the entrypoint {ours.describe()}\n{ours.output[-4000:]}"
    )
    kept = prepared.folder.kept(scenario)
    if kept is None:
        assert ledger_or_none(ours_url) == ledger_or_none(theirs_url), "the failed runs kept different ledger rows"
        return
    full = expected_ledger(prepared)
    theirs_kept, ours_kept = (prepared.tags.index(kept[tool]) + 1 for tool in ("drizzle-orm", "entrypoint"))
    assert ledger(theirs_url) == full[:theirs_kept], f"drizzle-orm did not keep up to {kept['drizzle-orm']}"
    assert ledger(ours_url) == full[:ours_kept], f"the entrypoint did not keep up to {kept['entrypoint']}"
    reference = prepared.make_database()
    release = copy_release(prepared.path, tmp_path / "kept", keep=ours_kept)
    assert_ok(drizzle_run(reference, release, pending=prepared.tags[:ours_kept]), "drizzle-orm, the kept prefix")
    assert_same_database(pg_server, ours_url, reference, ("entrypoint", f"drizzle-orm up to {kept['entrypoint']}"))


def drizzle_skips(prepared: Prepared, applied: int) -> list[str]:
    """What drizzle-orm 0.45 never applies once the first `applied` entries are: those dated at or before them.

    Its pending rule (DESIGN.md): an entry is pending when the newest row's created_at < its `when`. A
    1.0 folder has no such rule (pending is by name).
    """
    if is_v1(prepared.path) or applied == 0:
        return []
    whens = when_of(prepared.path)
    newest = max(whens[:applied])
    return [tag for tag, when in zip(prepared.tags[applied:], whens[applied:], strict=True) if when <= newest]


def course(drizzle: Outcome, *, skipped: bool = False) -> str:
    """Which way a scenario goes, in corpus.json's words (`harness.expect`), from drizzle-orm's outcome."""
    if skipped:
        return "refused"
    if drizzle.ok:
        return "same"
    if drizzle.sqlstate in FIXED:
        return "fixed"
    return f"same-failure at {drizzle.failed_at}"


def assert_expected(prepared: Prepared, scenario: str, went: str, drizzle: Outcome) -> None:
    """The scenario takes the course corpus.json states for it on this major, when it states one."""
    expected = prepared.folder.expected(scenario, MAJOR)
    assert expected is None or went == expected, (
        f"corpus.json expects {prepared.folder.name} {scenario} to go '{expected}' on PostgreSQL {MAJOR}; "
        f"it went '{went}' (drizzle-orm {drizzle.describe()})\n{drizzle.output[-2000:]}"
    )


# --------------------------------------------------------------------------
# The tests.


@pytest.mark.parametrize("name", [f.name for f in RUNNABLE])
def test_fresh_database(name: str, tmp_path: Path, database_factory, pg_server) -> None:
    """On empty databases the entrypoint ends exactly where drizzle-orm does, or succeeds where it hits 25001/55P04."""
    prepared = prepare(name, database_factory, pg_server)
    ours, theirs = prepared.make_database(), prepared.make_database()
    drizzle = drizzle_run(theirs, prepared.path, pending=prepared.tags)
    result = entrypoint_run(ours, prepared.path)
    record(prepared.folder, "fresh", drizzle=drizzle, entrypoint=result)
    assert_expected(prepared, "fresh", course(drizzle), drizzle)
    if drizzle.ok:
        assert_ok(result, f"drizzle-orm {drizzle.describe()}; the entrypoint")
        assert_same_database(pg_server, ours, theirs, ("entrypoint", "drizzle-orm"))
        assert_each_finds_nothing(prepared, ours, theirs)
    elif drizzle.sqlstate in FIXED:
        assert_ok(result, f"drizzle-orm {drizzle.describe()}, a class the entrypoint fixes; the entrypoint")
        assert ledger(ours) == expected_ledger(prepared)
        assert_drizzle_finds_nothing(prepared, ours)
        assert_as_drizzle_would_end(prepared, ours, drizzle, scenario="fresh", pg_server=pg_server, tmp_path=tmp_path)
    else:
        assert_same_failure(
            prepared, "fresh", (result, drizzle), (ours, theirs), pg_server=pg_server, tmp_path=tmp_path
        )


def _points() -> list[tuple[str, str]]:
    return [(f.name, point) for f in RUNNABLE for point in f.incremental]


def _resolve(prepared: Prepared, point: str) -> int:
    if point == "half":
        return len(prepared.tags) // 2
    if point not in prepared.tags:
        pytest.fail(f"corpus.json: {prepared.folder.name}'s incremental point {point} is not in its journal")
    return prepared.tags.index(point)


@pytest.mark.parametrize(("name", "point"), _points(), ids=[f"{n}-{p}" for n, p in _points()])
def test_incremental_deploy(name: str, point: str, tmp_path: Path, database_factory, pg_server) -> None:
    """Deployed by drizzle-orm up to POINT, then the rest: ours ends as drizzle-orm does (fresh, past 25001/55P04)."""
    prepared = prepare(name, database_factory, pg_server)
    applied = _resolve(prepared, point)
    earlier = copy_release(prepared.path, tmp_path / "earlier", keep=applied)
    ours, theirs = prepared.make_database(), prepared.make_database()
    for url in (ours, theirs):
        first = drizzle_run(url, earlier, pending=prepared.tags[:applied])
        if not first.ok:
            pytest.fail(f"corpus.json point {point}: drizzle-orm cannot apply the first {applied}: {first.describe()}")
    before = (ledger(ours), schema_dump(pg_server.bin("pg_dump"), ours))
    drizzle = drizzle_run(theirs, prepared.path, pending=prepared.tags[applied:])
    result = entrypoint_run(ours, prepared.path)
    scenario = f"incremental from {applied} ({point})"
    skips = drizzle_skips(prepared, applied)
    if drizzle.ok:
        # Files may share a hash (empty ones do): compare the ledger's hashes as a multiset.
        kept = [hashlib.sha256(sql_file(prepared.path, tag).read_bytes()).hexdigest() for tag in prepared.tags]
        kept = [digest for tag, digest in zip(prepared.tags, kept, strict=True) if tag not in skips]
        assert Counter(row[1] for row in ledger(theirs)) == Counter(kept), (
            "drizzle-orm skipped other entries than its rule"
        )
    assert_expected(prepared, point, course(drizzle, skipped=bool(skips)), drizzle)
    if skips:
        # drizzle-orm never applies an entry dated before the newest applied one: it exits 0 without it, or fails
        # later for want of it. We refuse (exit 8) and change nothing.
        then = "" if drizzle.ok else f", then failed at {drizzle.failed_at}: {drizzle.error.splitlines()[0]}"
        note = f"drizzle-orm skipped {', '.join(skips)}{then}"
        record(prepared.folder, scenario, drizzle=drizzle, entrypoint=result, note=note)
        assert not result.ok, f"drizzle-orm skipped entries silently; the entrypoint applied:\n{result.output[-4000:]}"
        assert result.exit_code == OUT_OF_ORDER_EXIT, result.output[-4000:]
        assert (ledger(ours), schema_dump(pg_server.bin("pg_dump"), ours)) == before, "the refusal changed the database"
    elif drizzle.ok:
        record(prepared.folder, scenario, drizzle=drizzle, entrypoint=result)
        assert_ok(result, f"drizzle-orm {drizzle.describe()}; the entrypoint")
        assert_same_database(pg_server, ours, theirs, ("entrypoint", "drizzle-orm"))
        assert_each_finds_nothing(prepared, ours, theirs)
    elif drizzle.sqlstate in FIXED:
        fresh = prepared.make_database()
        reference = drizzle_run(fresh, prepared.path, pending=prepared.tags)
        record(prepared.folder, scenario, drizzle=drizzle, entrypoint=result, drizzle_fresh=reference)
        assert_ok(result, f"drizzle-orm {drizzle.describe()}, a class the entrypoint fixes; the entrypoint")
        if reference.ok:
            assert_same_database(pg_server, ours, fresh, ("entrypoint, incremental", "drizzle-orm, fresh"))
        else:
            assert ledger(ours) == expected_ledger(prepared)
            assert_as_drizzle_would_end(
                prepared, ours, drizzle, scenario=scenario, pg_server=pg_server, tmp_path=tmp_path, start=applied
            )
        assert_drizzle_finds_nothing(prepared, ours)
    else:
        record(prepared.folder, scenario, drizzle=drizzle, entrypoint=result)
        assert_same_failure(prepared, point, (result, drizzle), (ours, theirs), pg_server=pg_server, tmp_path=tmp_path)
