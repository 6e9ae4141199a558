"""Adopting a database drizzle never migrated: which migrations its schema proves, shown, then recorded.

Shared by `baseline` (the command) and the deploy with BASELINE_ON_EMPTY=1. The
pure planner (`core.baseline_plan`) picks the longest prefix of the journal whose
schema the catalog holds; this module reads the catalog, prints each migration's
evidence and what stops the prefix, and records the prefix as drizzle-orm records
migrations (hash, `created_at`, and `name` for 1.0 folders), in one transaction
that also creates the ledger if needed and copies each row to the audit table
with reason `baseline`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import psycopg

from entrypoint.core.baseline_plan import MISSING, THROUGH, BaselinePlan, Evidence, first_holds_any, plan_baseline
from entrypoint.core.model import Journal, LedgerSnapshot
from entrypoint.core.schema import KINDS, SchemaObject
from entrypoint.core.text import plural
from entrypoint.db import catalog
from entrypoint.db.connect import describe, is_session_lost
from entrypoint.db.ledger import Ledger
from entrypoint.errors import DatabaseRefused, NothingToBaseline
from entrypoint.logs import get_logger

REASON = "baseline"
# Objects listed per migration that stops the prefix; the rest are counted.
SHOWN = 10


def ledger_state(snapshot: LedgerSnapshot) -> str:
    """How the baseline lines describe a ledger it may adopt."""
    return "does not exist yet" if not snapshot.exists else "is empty"


def _counted(objects: Sequence[SchemaObject]) -> str:
    counts = Counter(o.kind for o in objects)
    return ", ".join(f"{counts[k]} {k if counts[k] == 1 else label}" for k, label in KINDS.items() if counts[k])


def evidence_text(found: Evidence) -> str:
    """`2 tables, 15 columns present`, and what it renames or drops being gone."""
    parts = []
    if found.created:
        parts.append(f"{_counted(found.created)} present")
    if found.removed:
        parts.append(f"{_counted(found.removed)} it renames or drops gone")
    return "; ".join(parts)


def unchecked_why(found: Evidence) -> str:
    """Why nothing about a migration can be checked."""
    if found.unparsed:
        return f"{plural(found.unparsed, 'statement')} of it could not be analysed"
    return "it creates, renames or drops no table, column, index, enum or constraint (data, functions, DO blocks…)"


def _more(objects: Sequence[SchemaObject]) -> None:
    if len(objects) > SHOWN:
        get_logger().info("baseline.more", count=len(objects) - SHOWN)


def show(plan: BaselinePlan) -> None:
    """The evidence for each migration recorded, then what stops the prefix and what is left."""
    log = get_logger()
    for found in plan.evidence[: len(plan.record)]:
        tag = found.migration.tag
        if found.checkable:
            log.info("baseline.present", tag=tag, evidence=evidence_text(found))
        else:
            log.warning("baseline.vouched", tag=tag, why=unchecked_why(found), through=plan.through)
    following = plan.next
    if following is None:
        return
    _show_stop(plan, following)
    _show_rest(plan, following.migration.tag)


def _show_stop(plan: BaselinePlan, following: Evidence) -> None:
    """Why the prefix stops before `following`: what is missing or still there, --through, or nothing to check."""
    log = get_logger()
    tag = following.migration.tag
    if plan.stop == THROUGH:
        log.info("baseline.through", through=plan.through)
        return
    if plan.stop != MISSING:
        log.warning("baseline.unproven", tag=tag, why=unchecked_why(following))
        return
    problems = [f"{plural(len(following.missing), 'schema object')} missing"] if following.missing else []
    if following.lingering:
        problems.append(f"{plural(len(following.lingering), 'object')} it renames or drops still there")
    log.warning("baseline.not_present", tag=tag, problem=" and ".join(problems))
    for obj in following.missing[:SHOWN]:
        log.info("baseline.missing_object", kind_label=obj.kind.capitalize(), object=obj.describe(), kind=obj.kind)
    _more(following.missing)
    for obj in following.lingering[:SHOWN]:
        label = obj.kind.capitalize()
        log.info("baseline.lingering_object", kind_label=label, object=obj.describe(), kind=obj.kind, tag=tag)
    _more(following.lingering)


def _show_rest(plan: BaselinePlan, first: str) -> None:
    """What is left for the next deploy, and what of it already exists (the deploy would fail on it)."""
    log = get_logger()
    rest = [e.migration.tag for e in plan.evidence[len(plan.record) :]]
    there = plan.already_there
    if not there:
        log.info("baseline.rest", count=len(rest), first=first, tags=rest)
        return
    existing = plural(len(there), "object")
    advice = _blocked_advice(plan)
    log.warning("baseline.rest_blocked", count=len(rest), first=first, existing=existing, advice=advice, tags=rest)
    for obj, owner in there[:SHOWN]:
        label = obj.kind.capitalize()
        log.warning("baseline.existing_object", kind_label=label, object=obj.describe(), tag=owner, kind=obj.kind)
    _more([obj for obj, _ in there])


def _blocked_advice(plan: BaselinePlan, *, command: bool = True) -> str:
    """What to do when the next deploy would meet objects that already exist, by why the prefix stopped.

    `command`: the advice of `baseline` itself (run it again), else of BASELINE_ON_EMPTY (redeploy).
    """
    following = plan.next
    tag = following.migration.tag if following else ""
    if plan.stop == MISSING:
        again = " and run baseline again" if command else ""
        return f"create what is missing (listed above){again}, or drop these first"
    if plan.stop == THROUGH:
        return "run baseline again with a later --through, or drop these first"
    through = "rerun with --through" if command else "run `python -m entrypoint baseline --through"
    closing = "" if command else "`"
    return f"if {tag} did run, {through} {tag}{closing} or a later tag; if not, drop these first"


def decide(conn: psycopg.Connection[Any], journal: Journal, through: str | None) -> BaselinePlan:
    """Read the catalog and plan (pglast is imported here, on this path only)."""
    found = catalog.read(conn)
    return plan_baseline(journal.migrations, found, through=through, default_schema=catalog.creation_schema(conn))


def nothing(plan: BaselinePlan) -> NothingToBaseline:
    """The ❌ line for a prefix of nothing: why not even the first migration can be recorded."""
    first = plan.evidence[0]
    tag = first.migration.tag
    if plan.stop == MISSING and not first.found:
        why = f"none of {tag}'s schema objects exist: the database looks new, so deploy as usual to create them"
    elif plan.stop == MISSING:
        why = (
            f"{tag}'s schema is only partly there ({first.found} objects found, {len(first.missing)} missing, listed "
            "above): create what is missing (or drop what is there), then run baseline again"
        )
    else:
        why = f"nothing shows whether {tag} ran: if it did, rerun with --through {tag} or a later tag"
    return NothingToBaseline("❌ Nothing recorded: {why}. Nothing was changed", why=why, tag=tag, stop=plan.stop)


def record(conn: psycopg.Connection[Any], ledger: Ledger, snapshot: LedgerSnapshot, plan: BaselinePlan) -> None:
    """Create the ledger if needed and record the plan's prefix, all in one transaction, audited.

    Raises `DatabaseRefused` (exit 16) when the database refuses a write; a lost
    connection is let through for the caller.
    """
    try:
        with conn.transaction():
            if not snapshot.exists:
                ledger.create(conn)
            elif ledger.name_keyed and not snapshot.has_names:
                ledger.name_rows(conn, (), upgrade=True)  # an empty 0.45 ledger: add drizzle-orm 1.0's columns
            ledger.adopt(conn, plan.record, reason=REASON)
    except psycopg.Error as error:
        if is_session_lost(error, conn):
            raise
        raise DatabaseRefused(
            "❌ Baseline failed: {error} (SQLSTATE {sqlstate}). Rolled back, nothing was recorded: {advice}",
            error=describe(error),
            advice=_record_advice(error.sqlstate or "", ledger),
            sqlstate=error.sqlstate or "none",
        ) from None
    get_logger().info(
        "baseline.recorded",
        count=len(plan.record),
        ledger=ledger.qualified_name,
        last=plan.record[-1].tag,
        audit=ledger.audit_name,
        tags=[m.tag for m in plan.record],
    )


# The ledger is not the table drizzle-orm writes: a column it does not fill (NOT NULL, no default), a check, a
# column it needs missing or of another type. Its own inserts would fail the same way.
_NOT_DRIZZLES = frozenset({"42703", "42804", "22P02"})


def _record_advice(sqlstate: str, ledger: Ledger) -> str:
    """What to do when the baseline's write is refused, by SQLSTATE: a grant, the ledger's shape, or the message."""
    if sqlstate == "42501":
        return (
            f"grant this user CREATE on the {ledger.schema} schema and INSERT on {ledger.qualified_name}, then run "
            "it again"
        )
    if sqlstate.startswith("23") or sqlstate in _NOT_DRIZZLES:
        return (
            f"{ledger.qualified_name} is not the table drizzle-orm writes (id, hash, created_at), so drizzle-orm's "
            "own inserts would fail the same way. Give the column the message names a default or drop it (or drop "
            "the empty table: baseline creates it as drizzle-orm does), then run it again"
        )
    return "fix what the message names (a setting, the server's state), then run it again"


def on_empty(
    conn: psycopg.Connection[Any], ledger: Ledger, journal: Journal, snapshot: LedgerSnapshot
) -> BaselinePlan | None:
    """BASELINE_ON_EMPTY, under the deploy's lock: what to adopt of a database whose ledger has no rows.

    It applies when `snapshot` (the ledger as the deploy read it) has no rows and
    objects of the first migration already exist. Returns the plan when it applies
    (shown, not yet written: the deploy records it with `record` in its write
    phase, after its refusals and its backup), None when the deploy should go on
    as usual. Raises `NothingToBaseline` (exit 18) when the first migration's
    schema is only partly there: applying it would fail.
    """
    if snapshot.rows:
        return None
    plan = decide(conn, journal, None)
    if not first_holds_any(plan.evidence):
        return None  # nothing there yet: an ordinary first deploy
    log = get_logger()
    log.warning(
        "baseline.on_empty",
        ledger=ledger.qualified_name,
        ledger_state=ledger_state(snapshot),
        tag=journal.migrations[0].tag,
    )
    show(plan)
    if not plan.record:
        raise nothing(plan)
    if plan.already_there:
        raise NothingToBaseline(
            "❌ BASELINE_ON_EMPTY would record {count} migrations through {last}, but what the later ones create is "
            "partly there already ({existing}, listed above), so applying them would fail (already exists). Nothing "
            "was changed: {advice}, then redeploy",
            count=len(plan.record),
            last=plan.record[-1].tag,
            existing=plural(len(plan.already_there), "object"),
            advice=_blocked_advice(plan, command=False),
            tag=plan.record[-1].tag,
            stop="already there",
        )
    return plan


def would_record(ledger: Ledger, plan: BaselinePlan) -> None:
    """The dry run's line: what the baseline would record, and that nothing was."""
    get_logger().info(
        "baseline.would_record",
        count=len(plan.record),
        ledger=ledger.qualified_name,
        last=plan.record[-1].tag,
        tags=[m.tag for m in plan.record],
    )
