"""The dry run: a `DeployPlan` as lines, and the pieces of it `status` and `lint` print too.

`render(plan)` prints what the deploy would do, in the order the deploy would do
it: the sync's lines (nothing written), the lint's findings, then each pending
migration, where the run would commit and which statements run online, and why.
`units` (where a run commits, and why; what runs online) is also `status`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from entrypoint.logs import get_logger

if TYPE_CHECKING:
    from entrypoint.core.model import Migration
    from entrypoint.core.online_parts import Plan
    from entrypoint.core.transactions import Unit
    from entrypoint.deploy.prepare import DeployPlan

_HOW = {
    "outside": "outside any transaction, each statement committing on its own ({why})",
    "own": "on its own, under {why}",
    "concurrent": "outside any transaction, one index at a time ({why})",
    "parts": "online in {parts} parts, each committing on its own ({why}):",
}


def _builds(unit: Unit, plan: Plan, migration: Migration) -> None:
    """How each index of an index-only migration is built, and why: a line per table and way."""
    ways: dict[tuple[str, bool, str], list[str]] = {}
    for decision in (d for d in plan.decisions if d.index_name):
        online = decision.online and unit.kind == "concurrent"
        ways.setdefault((decision.why.table, online, decision.why.text), []).append(decision.index_name)
    for (shown, concurrently, why), names in ways.items():
        if concurrently:
            how = "CONCURRENTLY, outside a transaction"
        elif unit.kind == "concurrent":
            how = "as written, each committing on its own"
        else:
            how = "as written, in the migration's transaction"
        get_logger().info(
            "plan.index_build",
            tag=migration.tag,
            table=shown,
            count=f"{len(names)} {'index' if len(names) == 1 else 'indexes'}",
            indexes=", ".join(names),
            how=how,
            why=why,
            concurrently=concurrently,
        )


def _statements(unit: Unit, plan: Plan, migration: Migration) -> None:
    """Each statement with an online form on a table that exists (or forced online): online or not, and why."""
    for decision in plan.decisions:
        online = decision.online and unit.kind == "concurrent"
        if not online and decision.why.rows is None:
            continue  # a table this deploy creates, or ONLINE_DDL=never: as written, nothing to weigh
        get_logger().info(
            "plan.online_statement",
            tag=migration.tag,
            statement=decision.source.chunk,
            what=decision.what,
            how=decision.how if online else "as written, in the migration's transaction",
            why=decision.why.text,
            online=online,
        )


def _parts(plan: Plan, migration: Migration) -> None:
    """Each part of an online plan, in order; those an earlier deploy committed say so."""
    from entrypoint.core.online_parts import what

    for number, part in enumerate(plan.parts, start=1):
        done = " (committed by an earlier deploy)" if number <= plan.done else ""
        get_logger().info("plan.part", tag=migration.tag, part=number, what=f"{what(part)}{done}")


def online(unit: Unit, migration: Migration) -> None:
    """What the online plan of `migration` does and why: a resumed plan's progress, each decision, each part."""
    plan = unit.plan_of(migration)
    if plan is None:
        return
    log = get_logger()
    if plan.done:
        from entrypoint.core.online_parts import first_parts, what

        left = plan.parts[plan.done] if plan.done < len(plan.parts) else None
        log.info(
            "plan.resume",
            tag=migration.tag,
            committed=first_parts(plan.done),
            done=plan.done,
            parts=len(plan.parts),
            next=plan.done + 1,
            what=what(left) if left is not None else "its ledger row",
        )
    if plan.index_only and plan.decisions:
        _builds(unit, plan, migration)
    else:
        _statements(unit, plan, migration)
    if unit.kind == "concurrent" and not (plan.index_only and plan.decisions):
        why = unit.why
        log.info("plan.alone", tag=migration.tag, how=_HOW["parts"].format(parts=len(plan.parts), why=why))
        _parts(plan, migration)
    elif unit.kind == "concurrent":
        log.info("plan.alone", tag=migration.tag, how=_HOW["concurrent"].format(why=unit.why))


def units(planned: Sequence[Unit], *, with_migrations: bool = False) -> None:
    """Where a run of `planned` commits, and why: a line per boundary and per unit that runs alone.

    `with_migrations` (the dry run) first lists each migration the unit would apply, and which of its
    statements would run online; without it (`status`), only the migrations that run online say so.
    """
    log = get_logger()
    for position, unit in enumerate(planned):
        for migration in unit.migrations if with_migrations else ():
            log.info("plan.pending", tag=migration.tag, statements=migration.statement_count)
            online(unit, migration)
        if unit.kind == "concurrent" and not with_migrations:
            online(unit, unit.migrations[0])
        if unit.kind in {"outside", "own"}:
            log.info("plan.alone", tag=unit.migrations[0].tag, how=_HOW[unit.kind].format(why=unit.why))
        elif unit.kind == "transaction" and position < len(planned) - 1:
            log.info("plan.commit", why=unit.why)


def render(plan: DeployPlan) -> None:
    """The dry run's lines for `plan`: what the deploy would do, with nothing written."""
    from entrypoint.deploy import repair

    course = plan.course
    repair.announce(course.plan)
    repair.preview(plan.ledger, course.plan)
    if course.findings:
        from entrypoint.deploy import findings

        findings.show(course.findings)
    log = get_logger()
    log.info("migrate.folder", folder=str(plan.journal.folder))
    units(course.units, with_migrations=True)
    log.info("plan.summary", count=len(course.plan.to_apply), tags=[m.tag for m in course.plan.to_apply])
