"""A migration applied in parts, stopped at each resume point by SIGKILL and by SIGTERM, then deployed again.

The issue's migration (drizzle-kit's output) runs in 7 parts: the transaction (the columns, the NOT NULL's
helper check and the foreign key NOT VALID), the helper's VALIDATE, SET NOT NULL, the foreign key's
VALIDATE, two CONCURRENTLY builds and the unique key's attach (with the ledger row). The run is held at a
precise point with locks, never with sleeps: a gate on `users` holds the first part until the plan is
stored; then a row lock on a part's progress row holds the run in that part's own transaction (its work
done, its commit not yet), and an open write on `users` holds a CONCURRENTLY build mid-way. Then the run
is killed (SIGKILL, and its backend terminated as a dead client's would be) or stopped (SIGTERM), and the
next deploy must finish the migration without sending a committed part again, ending where drizzle-orm
ends.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
import pytest

from tests.deploy.online_support import (
    ONLINE,
    PROGRESS,
    assert_as_drizzle_left_it,
    backend,
    hashes,
    wait_until,
    waits_for,
)
from tests.support import assert_one_error, output_of, query, run_entrypoint, start_entrypoint

TAG = "0001_issue_23"


class Point(NamedTuple):
    """Where the run is held: in the transaction of part `row` (its work not done), or, `build`, mid-build after it."""

    row: int
    build: str = ""  # the index whose CONCURRENTLY build an open write holds (the part after `row`)

    @property
    def done(self) -> int:
        """The parts committed when the run is held there."""
        return self.row if self.build else self.row - 1


POINTS = {
    "part 1, the transaction": Point(1),
    "part 2, the NOT NULL check's validation": Point(2),
    "part 3, SET NOT NULL": Point(3),
    "part 4, the foreign key's validation": Point(4),
    "part 5, mid-build": Point(4, "idx_users_score"),
    "part 5, built, not yet recorded": Point(5),
    "part 6, the unique index mid-build": Point(5, "users_email_role_unique"),
    "part 7, the attach and the ledger row": Point(7),
}


@contextmanager
def _held(url: str, folder: Path, point: Point) -> Iterator[tuple[Any, int]]:
    """The deploy started and held at `point`: (its process, its backend's pid); the locks go on the way out.

    A gate on `users` holds part 1 once the plan is stored. Then the progress table is held with SHARE
    locks, which only a part's mark (the first thing in its transaction) waits for, taken in turn by
    sessions that hold no transaction id and no snapshot (LOCK TABLE needs neither), so no CONCURRENTLY
    build ever waits for them: each next one queues behind the run's part, and is granted as that commits.
    """
    with (
        psycopg.connect(url) as gate,
        psycopg.connect(url) as open_write,
        psycopg.connect(url) as first,
        psycopg.connect(url) as second,
    ):
        gate.execute("LOCK TABLE users IN ACCESS SHARE MODE")
        proc = start_entrypoint(["--", "true"], url=url, folder=folder, **ONLINE)
        try:
            wait_until("the run waits in part 1, at the gate", lambda: _waiting(url, gate.info.backend_pid))
            pid = backend(url)
            assert pid is not None
            held, spare = gate, first
            for part in range(2, point.row + 1):  # each part's mark comes first in its transaction
                _queue_behind(url, held, spare)
                held, spare = spare, (second if spare is first else first)
                blocker = held.info.backend_pid
                wait_until(f"the run waits at part {part}'s mark", lambda b=blocker: waits_for(url, pid, b))
            if point.build:
                open_write.execute("UPDATE users SET points = points WHERE id = 2")
                held.rollback()
                wait_until(f"{point.build} waits mid-build", lambda: waits_for(url, pid, open_write.info.backend_pid))
            assert _done(url) == list(range(1, point.done + 1))
            yield proc, pid
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=30)


def _queue_behind(url: str, held: psycopg.Connection[Any], spare: psycopg.Connection[Any]) -> None:
    """`spare` asks for the progress table's SHARE lock, queued behind the run's mark; `held` lets the mark go."""
    taken = threading.Thread(target=spare.execute, args=(f"LOCK TABLE {PROGRESS} IN SHARE MODE",))
    taken.start()
    wait_until(
        "the next lock queues",
        lambda: bool(query(url, "SELECT pg_blocking_pids(%s) <> '{}'", (spare.info.backend_pid,))[0][0]),
    )
    held.rollback()
    taken.join(30)
    assert not taken.is_alive()


def _waiting(url: str, blocker: int) -> bool:
    pid = backend(url)
    return pid is not None and waits_for(url, pid, blocker)


def _done(url: str) -> list[int]:
    if query(url, "SELECT to_regclass(%s)", (PROGRESS,)) == [(None,)]:
        return []
    return [row[0] for row in query(url, f"SELECT part FROM {PROGRESS} WHERE done_at IS NOT NULL ORDER BY part")]


def _index_valid(url: str, name: str) -> list[tuple[Any, ...]]:
    return query(url, "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", (name,))


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
@pytest.mark.parametrize("where", list(POINTS))
def test_a_run_stopped_there_resumes_and_never_sends_a_committed_part_again(
    *,
    where: str,
    how: str,
    online_migrations: Callable[[str], Path],
    online_copies: Callable[[], str],
    online_dumps: Callable[..., Any],
    pg_server: Any,
) -> None:
    """Stopped at each resume point: the ledger untouched, the committed parts kept; the next deploy finishes.

    SIGTERM's ❌ line (exit 143) says which parts are committed and where the next deploy resumes; after
    SIGKILL the dead run's backend is ended as PostgreSQL ends a dead client's. The next deploy checks the
    committed parts, drops an INVALID index a killed build left, keeps an index built but not recorded,
    sends no committed part again, and ends with drizzle-orm's schema and ledger.
    """
    point = POINTS[where]
    folder, url = online_migrations("issue-23"), online_copies()
    before = hashes(url)
    with _held(url, folder, point) as (proc, pid):
        if how == "SIGKILL":
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
            assert proc.returncode == -signal.SIGKILL
            query(url, "SELECT pg_terminate_backend(%s)", (pid,))  # the dead client's connection, gone
            wait_until("the dead run's backend ended", lambda: backend(url) is None)
        else:
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=30)
            assert proc.returncode == 128 + signal.SIGTERM, out
            line = assert_one_error(out)
            assert line.startswith(
                "❌ Stopped by SIGTERM before the app started: the running statement was cancelled"
            ), line
            committed = {0: "no part is committed", 1: "part 1 is committed"}.get(
                point.done, f"parts 1-{point.done} are committed"
            )
            assert f"{TAG} is applied online in 7 parts, each committing on its own: {committed}" in line, line
            assert (
                f"the next deploy {'drops the INVALID index ' + point.build + ' the cancelled build left, then ' if point.build else ''}resumes at part {point.done + 1}"
                in line
            ), line
    assert hashes(url) == before, "a migration with parts left must not be in the ledger"
    assert _done(url) == list(range(1, point.done + 1))
    if point.build:
        assert _index_valid(url, point.build) == [(False,)]  # what a killed concurrent build leaves
    if where == "part 5, built, not yet recorded":
        assert _index_valid(url, "idx_users_score") == [(True,)]

    resumed = run_entrypoint([], url=url, folder=folder, **ONLINE)
    out = output_of(resumed)
    assert resumed.returncode == 0, out
    if point.done:
        assert f"⏯️  {TAG} resumes at part {point.done + 1} of 7 (" in out, out
    for part in range(1, point.done + 1):  # a committed part is never sent again
        assert f"   · part {part}/7 committed" not in out, out
    if point.build:
        assert f"🧹 Dropped the INVALID index public.{point.build} left by a failed concurrent build" in out, out
    if where == "part 5, built, not yet recorded":
        assert "   · idx_users_score on users already built by an earlier attempt of 0001_issue_23" in out, out
    assert_as_drizzle_left_it(url, "issue-23", folder, pg_server, online_dumps)


def test_status_says_where_a_stopped_migration_stands(
    online_migrations: Callable[[str], Path], online_copies: Callable[[], str]
) -> None:
    """Between parts, status (lines and JSON) and the dry run say what is committed and where the deploy resumes."""
    folder, url = online_migrations("issue-23"), online_copies()
    with _held(url, folder, POINTS["part 4, the foreign key's validation"]) as (proc, _):
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    said = (
        f"   ⏸️  {TAG}: an earlier deploy committed parts 1-3 of 7 and stopped; the next deploy resumes at part 4 "
        "(VALIDATE CONSTRAINT users_referrer_id_users_id_fk on users)"
    )
    for args in (["status"], ["--dry-run"]):
        result = run_entrypoint(args, url=url, folder=folder, **ONLINE)
        lines = output_of(result).splitlines()
        assert said in lines, lines
        first = "      1. transaction: statements 1-4 (1 as a NOT VALID check, 4 NOT VALID)"
        assert f"{first} (committed by an earlier deploy)" in lines
    document = json.loads(run_entrypoint(["status", "--json"], url=url, folder=folder, **ONLINE).stdout)
    ((planned,),) = [u["online"] for u in document["units"]]
    assert planned["resume_at"] == 4
    assert [p["done"] for p in planned["parts"]] == [True, True, True, False, False, False, False]


@pytest.mark.parametrize(
    ("where", "undo", "says"),
    [
        (
            "part 6, the unique index mid-build",
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'idx_users_score'::regclass",
            "part 5: index idx_users_score on users valid, as planned expected, invalid found: done again",
        ),
        (
            "part 5, mid-build",
            "UPDATE pg_constraint SET convalidated = false WHERE conname = 'users_referrer_id_users_id_fk'",
            "part 4: constraint users_referrer_id_users_id_fk on users validated expected, not-valid found: done again",
        ),
    ],
)
def test_a_committed_part_found_undone_is_done_again(
    *,
    where: str,
    undo: str,
    says: str,
    online_migrations: Callable[[str], Path],
    online_copies: Callable[[], str],
    online_dumps: Callable[..., Any],
    pg_server: Any,
) -> None:
    """A committed build's index found INVALID is built again, a committed VALIDATE found NOT VALID is run again.

    (The catalogue is set back by hand, as superuser, to what a failed REINDEX or a dump restored NOT VALID
    leaves.) Anything else a committed part no longer shows stops the deploy: tests/deploy/test_online_failures.py.
    """
    folder, url = online_migrations("issue-23"), online_copies()
    with _held(url, folder, POINTS[where]) as (proc, _):
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    query(url, undo)
    resumed = run_entrypoint([], url=url, folder=folder, **ONLINE)
    out = output_of(resumed)
    assert resumed.returncode == 0, out
    assert f"🧹 {TAG}, {says}" in out, out
    assert_as_drizzle_left_it(url, "issue-23", folder, pg_server, online_dumps)
