"""The ledger part of a plan carried out: its lines, its refusal, its evidence, its writes.

`plan.plan` decided; this module says what the decision is in the old
`pnpm db:sync` lines, refuses what must not be written, checks the schema backs
every row matched only by position, and writes the repair under the caller's
lock. A dry run calls `preview` (lines only) instead of `sync`: the same steps,
announced, with nothing written. When a write fails, SYNC_ON_ERROR decides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import psycopg

from entrypoint.config import Settings
from entrypoint.core.model import Journal, LedgerRow, RowRepair
from entrypoint.core.pending import Plan, ahead_label
from entrypoint.core.text import iso
from entrypoint.db.connect import describe, is_session_lost
from entrypoint.db.ledger import Ledger
from entrypoint.errors import LedgerRefused, SyncFailed, Untrusted
from entrypoint.logs import get_logger

_Line = tuple[str, str, dict[str, object]]  # (level, event, fields)
_SHOWN_HASH = 16  # a row's hash is shown this long: enough to find it, short enough for one line


class _Step(NamedTuple):
    """One write of the repair: the lines that announce it, the write, the lines once it is done."""

    lines: tuple[_Line, ...]
    write: Callable[[psycopg.Connection[Any]], None]
    done: tuple[_Line, ...]
    rows: int
    upgrade: bool = False  # without it a 1.0 migrator reruns everything: SYNC_ON_ERROR cannot skip it


def _emit(lines: tuple[_Line, ...]) -> None:
    log = get_logger()
    for level, event, fields in lines:
        getattr(log, level)(event, **fields)


def _steps(ledger: Ledger, plan: Plan) -> Iterator[_Step]:
    if plan.upgrade is not None:
        upgrade = plan.upgrade
        named: tuple[_Line, ...] = tuple(("info", "sync.row_named", {"id": r.old.id, "name": r.tag}) for r in upgrade)
        yield _Step(
            (("warning", "sync.upgrade", {"count": len(upgrade)}), *named),
            lambda conn: ledger.name_rows(conn, upgrade, upgrade=True),
            (("info", "sync.upgraded", {"count": len(upgrade)}),),
            len(upgrade),
            upgrade=True,
        )
    report: list[_Line] = [
        ("warning", "sync.unknown_row", {"id": row.id, "name": row.name or "NULL", "hash": row.hash})
        for row in plan.unknown
    ]
    report += [("warning", "sync.hash_changed", {"id": row.id, "tag": tag}) for row, tag in plan.changed]
    report += [ahead_line(row) for row in plan.ahead]
    if report:
        yield _Step(tuple(report), lambda _: None, (), 0)
    if not plan.repairs:
        return
    repairs = plan.repairs
    if ledger.name_keyed:
        renamed: tuple[_Line, ...] = tuple(
            ("info", "sync.row_renamed", {"id": r.old.id, "old_name": r.old.name, "new_name": r.tag}) for r in repairs
        )
        yield _Step(
            (("warning", "sync.drift", {}), *renamed),
            lambda conn: ledger.name_rows(conn, repairs, upgrade=False),
            (),
            len(repairs),
        )
        return
    rewritten = tuple(_repair_line(r) for r in repairs)
    # A row found by its date whose hash differs: the file was edited after it was applied.
    edited: tuple[_Line, ...] = tuple(
        ("warning", "sync.hash_changed", {"id": r.new.id, "tag": r.tag})
        for r in repairs
        if r.old.hash != r.new.hash and r.old.created_at == r.new.created_at
    )
    reason = "drift: rows rewritten to match meta/_journal.json"
    yield _Step(
        (("warning", "sync.drift", {}), ("info", "sync.repairing", {"count": len(repairs)}), *rewritten, *edited),
        lambda conn: ledger.repair(conn, repairs, reason=reason),
        (("info", "sync.repaired", {"count": len(repairs)}),),
        len(repairs),
    )


def ahead_line(row: LedgerRow) -> _Line:
    """The ⚠️ line of one migration a newer release applied: the schema is newer than this code, and kept."""
    return (
        "warning",
        "sync.ahead",
        {"id": row.id, "migration": ahead_label(row), "hash": row.hash, "created_at": row.created_at, "name": row.name},
    )


def _repair_line(repair: RowRepair) -> _Line:
    """`283 → 8 (tag)` when the row moves; otherwise what was rewritten in place."""
    if repair.old.id != repair.new.id:
        return ("info", "sync.row_repaired", {"old_id": repair.old.id, "new_id": repair.new.id, "tag": repair.tag})
    changed = [
        name
        for name, old, new in (
            ("hash", repair.old.hash, repair.new.hash),
            ("created_at", repair.old.created_at, repair.new.created_at),
        )
        if old != new
    ]
    return ("info", "sync.row_rewritten", {"id": repair.new.id, "tag": repair.tag, "changed": ", ".join(changed)})


def announce(plan: Plan) -> None:
    """The sync's opening lines: printed once the run is past its refusals, its backup and its restore point."""
    log = get_logger()
    log.info("sync.start")
    log.info("sync.rows", rows=len(plan.snapshot.rows))


def check(conn: psycopg.Connection[Any], ledger: Ledger, journal: Journal, plan: Plan) -> None:
    """Refuse an unsafe ledger, or rows the schema does not back; prints nothing.

    Raises `LedgerRefused` (exit 7). Rows matched only by position must be proven
    by the schema: without that, a stray row (a hand-written marker, a row copied
    from another database) would mark the next pending migration applied and it
    would never run.
    """
    if plan.refusal is not None:
        upgrade = journal.name_keyed and plan.refusal.reason != "ahead"
        what = "Ledger upgrade for Drizzle 1.0 refused" if upgrade else "Ledger sync refused"
        raise LedgerRefused(
            "❌ {what}, nothing was changed: {detail}",
            what=what,
            detail=plan.refusal.detail,
            reason=plan.refusal.reason,
        )
    if plan.by_position:
        _require_evidence(conn, ledger, journal, plan)


def _require_evidence(conn: psycopg.Connection[Any], ledger: Ledger, journal: Journal, plan: Plan) -> None:
    """Refuse (exit 7) unless the schema proves every migration a row matches only by position ran."""
    from entrypoint.core import baseline_plan as proof
    from entrypoint.db import catalog  # the SQL parser, only on this rare path

    found, default_schema = catalog.read(conn), catalog.creation_schema(conn)
    unproven = proof.unproven_by_position(journal.migrations, plan.by_position, found, default_schema=default_schema)
    if unproven is None:
        return
    migration = unproven.evidence.migration
    tag = migration.tag
    row = next(e.row for e in plan.entries if e.migration.tag == tag and e.row is not None)
    if unproven.problem == proof.UNPROVEN:
        from entrypoint.deploy.adopt import unchecked_why

        raise LedgerRefused(
            "❌ Ledger sync refused, nothing was changed: ledger row {id} (created_at {created_at}, hash {hash}) "
            "matches {tag} only by position, and {why}, so nothing in the schema shows that it ran; matching the "
            "row would mark {tag} applied without running it. If {tag} did not run here (the row was written by "
            "hand, or copied from another database), delete the row (DELETE FROM {ledger} WHERE id = {id}) and "
            "redeploy: {tag} is then applied. If it did run, record it as drizzle-orm does (UPDATE {ledger} SET "
            "hash = '{tag_hash}', created_at = {when} WHERE id = {id}) and redeploy",
            id=row.id,
            created_at=iso(row.created_at) or "NULL",
            hash=Untrusted(row.hash[:_SHOWN_HASH] + ("…" if len(row.hash) > _SHOWN_HASH else "")),
            tag=tag,
            why=unchecked_why(unproven.evidence),
            ledger=ledger.qualified_name,
            tag_hash=migration.hash,
            when=migration.when,
            reason="unproven",
        )
    objects = len(unproven.evidence.created) if unproven.problem == proof.MISSING else len(unproven.evidence.removed)
    example = unproven.objects[0]
    raise LedgerRefused(
        "❌ Ledger sync refused, nothing was changed: a ledger row matches {tag} only by position, but "
        "{count} of the {objects} objects it {verb} {state} (e.g. {kind} {example}), so it was never applied. "
        "Delete that row from {ledger} by hand (DELETE FROM {ledger} WHERE id = {id}), then redeploy",
        id=row.id,
        tag=tag,
        count=len(unproven.objects),
        objects=objects,
        verb="creates" if unproven.problem == proof.MISSING else "renames or drops",
        state="are missing" if unproven.problem == proof.MISSING else "are still there",
        kind=example.kind,
        example=example.describe(),
        ledger=ledger.qualified_name,
        reason="evidence",
    )


def preview(ledger: Ledger, plan: Plan) -> None:
    """A dry run: announce every step of the repair, write nothing."""
    steps = list(_steps(ledger, plan))
    for step in steps:
        _emit(step.lines)
    rows = sum(step.rows for step in steps)
    if rows:
        get_logger().info("sync.dry_run", count=rows)
    else:
        _ready(plan)


def _ready(plan: Plan) -> None:
    log = get_logger()
    if not plan.repairs and not plan.unknown and not plan.changed:
        log.info("sync.in_sync")
    log.info("sync.ready")


def sync(conn: psycopg.Connection[Any], ledger: Ledger, plan: Plan, settings: Settings) -> bool:
    """Write the repair, step by step; True when all of it was written.

    Raises `SyncFailed` (exit 9) when a write errors and SYNC_ON_ERROR=fail, or
    when the Drizzle 1.0 upgrade errors whatever it says; with `continue` it
    prints the failure and returns False, leaving the ledger as it was.
    """
    for step in _steps(ledger, plan):
        _emit(step.lines)
        if step.rows and not _write(conn, ledger, settings, step):
            return False
        _emit(step.done)
    _ready(plan)
    return True


def _write(conn: psycopg.Connection[Any], ledger: Ledger, settings: Settings, step: _Step) -> bool:
    """Run a step's ledger write; on a database error, follow SYNC_ON_ERROR. True when it was written."""
    try:
        step.write(conn)
    except psycopg.Error as error:
        if is_session_lost(error, conn):
            raise
        if step.upgrade:  # a 0.x ledger under a 1.0 folder: going on would apply every migration again
            raise SyncFailed(
                "❌ Ledger upgrade for Drizzle 1.0 failed: {error}. Without it every migration would run again, so "
                "nothing was applied, whatever SYNC_ON_ERROR says. Run the deploy as the owner of {ledger} (the "
                "upgrade adds its name and applied_at columns), then redeploy",
                error=describe(error),
                ledger=ledger.qualified_name,
                sqlstate=error.sqlstate,
            ) from None
        failure = SyncFailed(
            "❌ Ledger sync failed: {error}. Grant this user UPDATE on {ledger} and CREATE on its schema, "
            "or repair the ledger by hand",
            error=describe(error),
            ledger=ledger.qualified_name,
            sqlstate=error.sqlstate,
        )
        if settings.sync_on_error == "fail":
            raise failure from None
        log = get_logger()
        log.error("sync.failed", _template=failure.template, **failure.facts)
        log.warning("sync.error_ignored")
        return False
    return True
