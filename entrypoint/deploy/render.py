"""The dry run: a `DeployPlan` as lines, and the pieces of it `status` and `lint` print too.

`render(plan)` prints what the deploy would do, in the order the deploy would do
it: the sync's lines (nothing written), the lint's findings, then each pending
migration, where the run would commit and how each index would be built.
`units` (where a run commits, and why) is also `status`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from entrypoint.logs import get_logger

if TYPE_CHECKING:
    from entrypoint.core.model import Migration
    from entrypoint.core.transactions import Unit
    from entrypoint.deploy.prepare import DeployPlan

_HOW = {
    "outside": "outside any transaction, each statement committing on its own ({why})",
    "own": "on its own, under {why}",
    "concurrent": "outside any transaction, one index at a time ({why})",
}


def _builds(unit: Unit, migration: Migration) -> None:
    """How each index of an index-only migration is built, and why: a line per table and way."""
    ways: dict[tuple[str, bool, str], list[str]] = {}
    for build in unit.builds_of(migration):
        ways.setdefault((build.table, build.concurrently, build.why), []).append(build.name)
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


def units(planned: Sequence[Unit], *, with_migrations: bool = False) -> None:
    """Where a run of `planned` commits, and why: a line per boundary and per unit that runs alone.

    `with_migrations` (the dry run) first lists each migration the unit would apply, and how
    each index-only migration builds its indexes.
    """
    log = get_logger()
    for position, unit in enumerate(planned):
        for migration in unit.migrations if with_migrations else ():
            log.info("plan.pending", tag=migration.tag, statements=migration.statement_count)
            _builds(unit, migration)
        if unit.kind == "concurrent" and not with_migrations:
            _builds(unit, unit.migrations[0])
        if unit.kind != "transaction":
            log.info("plan.alone", tag=unit.migrations[0].tag, how=_HOW[unit.kind].format(why=unit.why))
        elif position < len(planned) - 1:
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
