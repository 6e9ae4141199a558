"""A migration applied online, in parts (a `concurrent` unit): each part commits on its own, recorded as it commits.

The plan (`core.online`) is stored in the progress table beside the ledger
(`db.parts`) before the first part runs. Each transactional part (statements as
written, a VALIDATE, a SET NOT NULL, an ADD CONSTRAINT … USING INDEX) runs in one
transaction with the mark of its row; a CONCURRENTLY build runs alone, and its
mark follows at once. The last part's transaction also checks the guards and
writes the ledger row, and the migration's progress rows go with it.

A run that finds a stored plan resumes it: the committed parts are held against
the catalogue first (`Expect`): an INVALID index is dropped and built again, a
NOT VALID constraint is validated, anything else that no longer matches stops
the deploy (exit 26) rather than guess; then the run goes on at the first part
not done. A committed part is never sent again, and a migration is never
recorded before its last part. A transient failure (a lock timeout, a deadlock)
re-runs the unit, which starts again from what the progress table says.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

from entrypoint.core.model import Migration
from entrypoint.core.online_parts import Expect, Plan, Step, Transaction, Verdict, chunk_of, first_parts, what
from entrypoint.core.transactions import Unit
from entrypoint.db.parts import PartsTable
from entrypoint.deploy import builds, guards
from entrypoint.deploy.outcome import StatementFailed
from entrypoint.deploy.progress import RunState
from entrypoint.deploy.runner import IN_TRANSACTION, Run, begin, elapsed_ms, on_statement, rollback, statement
from entrypoint.errors import PlanChanged
from entrypoint.logs import get_logger

Timings = list[tuple[Migration, int]]
# The failures that mean rows break a new constraint: a foreign key, a CHECK (or a helper check), a unique key.
ROWS_BREAK_IT = frozenset({"23503", "23514", "23505"})


def announce(unit: Unit) -> None:
    """The line that says a migration runs online, in parts, and why."""
    migration = unit.migrations[0]
    plan = unit.plan_of(migration)
    if plan is None:
        return
    tables = ", ".join(sorted({step.why.table for step in plan.steps}))
    if plan.index_only:
        get_logger().info("migrate.concurrent", tag=migration.tag, count=len(plan.steps), tables=tables, why=unit.why)
        return
    get_logger().info("migrate.online", tag=migration.tag, parts=len(plan.parts), tables=tables, why=unit.why)


def run_parts(run: Run, unit: Unit) -> Timings:
    """Run the unit's one migration from its first part not done; record it with its last part."""
    (migration,) = unit.migrations
    plan = unit.plan_of(migration)
    if plan is None:  # pragma: no cover - a concurrent unit always carries its plan
        raise RuntimeError(f"{migration.tag} has no online plan")
    table = PartsTable(run.ledger)
    started = time.monotonic()
    done = _start(run, table, migration, plan)
    run.tracker.move(resume_at=done + 1, recording=False)
    before = guards.results(run.cur, run.limits.guards)

    def record(number: int) -> None:
        """Mark part `number` done; with the last, write the ledger row and forget the plan.

        First in the part's transaction: its own statements then hold their locks for no extra round trip.
        """
        table.mark(run.cur, migration, number)
        if number == len(plan.parts):
            run.ledger.record(run.cur, migration)  # the file's own hash and `when`, as drizzle-orm writes them
            table.finish(run.cur, migration)

    def check(number: int) -> None:
        """After the last part's statements, before its commit: the guards."""
        if number == len(plan.parts):
            guards.check(run.cur, run.limits.guards, before)

    for number in range(done + 1, len(plan.parts) + 1):
        part, part_started = plan.parts[number - 1], time.monotonic()
        marks = partial(record, number), partial(check, number)
        if isinstance(part, Step) and not part.transactional:
            builds.build(run, migration, part)
            run.tracker.move(recording=True)  # built: a stop now leaves a valid index, which the next deploy keeps
            _in_one_transaction(run, migration, [], *marks)
        else:
            _in_one_transaction(run, migration, _sends(part), *marks)
            _said(migration, plan, number, elapsed_ms(part_started))
        run.tracker.move(resume_at=number + 1, recording=False)
    return [(migration, elapsed_ms(started))]


def _sends(part: Transaction | Step) -> list[tuple[int, bytes, str]]:
    """(statement number, text, what for the heartbeat) of each statement a transactional part sends."""
    if isinstance(part, Transaction):
        return [(sent.chunk, sent.sql, "") for sent in part.statements]
    return [(part.source.chunk, text, part.what) for text in part.sql]


def _in_one_transaction(
    run: Run,
    migration: Migration,
    sends: list[tuple[int, bytes, str]],
    first: Callable[[], None] = lambda: None,
    then: Callable[[], None] = lambda: None,
) -> None:
    """BEGIN, `first()` (the part's mark, with the last one the ledger row), the statements, `then()`, COMMIT."""
    begin(run)
    try:
        first()
        for number, text, doing in sends:
            statement(run, migration, number, IN_TRANSACTION, send=text, what=doing)
        then()
        run.cur.execute(b"COMMIT")
    except BaseException:
        rollback(run.conn)
        raise


def _said(migration: Migration, plan: Plan, number: int, duration_ms: int) -> None:
    """What a transactional part did: an index-only plan's small index by its name, any other part by its words."""
    part = plan.parts[number - 1]
    built = [
        d for d in plan.decisions if d.index_name and isinstance(part, Transaction) and d.source.chunk in part.chunks
    ]
    if plan.index_only and built:
        for decision in built:
            get_logger().info(
                "migrate.index_built",
                tag=migration.tag,
                index=decision.index_name,
                table=decision.why.table,
                how="as written",
                duration_ms=duration_ms,
            )
        return
    get_logger().info(
        "migrate.part", tag=migration.tag, part=number, parts=len(plan.parts), what=what(part), duration_ms=duration_ms
    )


def _start(run: Run, table: PartsTable, migration: Migration, plan: Plan) -> int:
    """How many parts are done: the stored plan's, checked against the catalogue; or store the plan, none done."""
    stored = table.read(run.conn).get(migration.tag)
    if stored is None:
        _in_one_transaction(run, migration, [], partial(table.store, run.cur, migration, plan))
        return 0
    if not stored.matches(migration) or stored.plan.parts != plan.parts:
        raise PlanChanged(
            "❌ {tag} has a plan stored in {progress} that is not the one this deploy planned (its file changed "
            "while the deploy ran?): nothing more was applied. Redeploy",
            tag=migration.tag,
            progress=table.qualified_name,
        )
    if stored.plan.done:
        _check_committed(run, migration, stored.plan, said=plan.stored)
    return stored.plan.done


def _latest(plan: Plan) -> list[tuple[int, Expect]]:
    """What the committed parts must show now: for each object, what the last part that touched it left."""
    found: dict[tuple[str | None, str, str, str], tuple[int, Expect]] = {}
    for number, part in enumerate(plan.parts[: plan.done], start=1):
        for expect in part.done:
            family = {"index": "index", "not-null": "column"}.get(expect.kind, "constraint")
            found[(expect.schema, expect.table, expect.name, family)] = (number, expect)
    return list(found.values())


def _verdict(run: Run, expect: Expect) -> Verdict:
    return builds.verdict(run.cur, expect)


def _check_committed(run: Run, migration: Migration, plan: Plan, *, said: bool) -> None:
    """Hold each committed part against the catalogue; redo an INVALID index or a NOT VALID constraint; else stop.

    `said`: an earlier deploy committed them (a retry of this run's own unit goes on without a line).
    Raises `PlanChanged` (exit 26) when the catalogue no longer shows what a committed part did.
    """
    log = get_logger()
    next_part = plan.parts[plan.done] if plan.done < len(plan.parts) else None
    if said:
        log.info(
            "migrate.resume",
            tag=migration.tag,
            committed=first_parts(plan.done),
            done=plan.done,
            parts=len(plan.parts),
            next=plan.done + 1,
            what=what(next_part) if next_part is not None else "its ledger row",
        )
    for number, expect in _latest(plan):
        part = plan.parts[number - 1]
        with on_statement(run, migration, chunk_of(part), f"checking part {number}: {expect.says}"):
            verdict = _verdict(run, expect)
        if verdict == "done":
            if isinstance(part, Step) and part.kind == "create-index":
                log.info("migrate.index_kept", tag=migration.tag, index=part.name, table=part.why.table)
            continue
        if verdict == "invalid" and isinstance(part, Step) and part.kind == "create-index":
            log.warning("migrate.part_redone", tag=migration.tag, part=number, says=expect.says, verdict=verdict)
            builds.build(run, migration, part)  # drops the INVALID index first
            continue
        validate = _validator(plan, expect)
        if verdict == "not-valid" and validate is not None:
            log.warning("migrate.part_redone", tag=migration.tag, part=number, says=expect.says, verdict=verdict)
            _in_one_transaction(run, migration, _sends(validate))
            continue
        raise PlanChanged(
            "❌ {tag} was applied in part by an earlier deploy ({committed} of {parts} committed), and the database "
            "no longer shows what part {part} did: {says} expected, {verdict} found. Nothing more was applied. Put "
            "it back as part {part} left it, then redeploy; or finish the migration by hand, record it in {ledger} "
            "and delete its rows from {progress}",
            tag=migration.tag,
            committed=first_parts(plan.done),
            parts=len(plan.parts),
            part=number,
            says=expect.says,
            verdict=verdict,
            ledger=run.ledger.qualified_name,
            progress=PartsTable(run.ledger).qualified_name,
        )


def _validator(plan: Plan, expect: Expect) -> Step | None:
    """The committed VALIDATE step of this constraint, to run again."""
    return next(
        (p for p in plan.parts[: plan.done] if isinstance(p, Step) and p.kind == "validate" and p.name == expect.name),
        None,
    )


def failure_facts(unit: Unit, state: RunState, stop: StatementFailed) -> dict[str, Any]:
    """What only the plan knows of a failed statement: the query that lists the rows that break the new constraint.

    A unique build's duplicates (online or as written); a validation's offending rows, with what it checks.
    """
    plan = unit.plan_of(stop.migration)
    if plan is None or stop.sqlstate not in ROWS_BREAK_IT:
        return {}
    step = state.step()
    if step is not None and step.offending:
        if step.kind == "create-index":
            return {"duplicates": step.offending if stop.sqlstate == "23505" else None}
        return {"offending": step.offending, "check": step.what}
    decision = next((d for d in plan.decisions if d.source.chunk == stop.number and d.offending), None)
    if decision is not None and stop.sqlstate == "23505" and decision.index_name:
        return {"duplicates": decision.offending}
    return {}
