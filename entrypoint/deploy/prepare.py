"""Everything a deploy will do, decided under the lock before anything is written: one `DeployPlan`.

`prepare` reads the ledger once (adopting a pushed database first, with
BASELINE_ON_EMPTY), plans the repair and what is pending (`core.pending`), and
raises every refusal: a ledger that cannot be matched, a skip drizzle-orm would
make, a guard that cannot run, a migration no TRANSACTION_MODE can run, a
read-only session, DDL_POLICY=refuse. Each pending migration is parsed once
(`core.sql.parse`), and that parse decides where the run commits
(`core.transactions`), which statements run online, in parts (`core.online`, by
live table sizes, or the plan an earlier deploy stored in the progress table
when it stopped between parts) and what the lint finds (`core.ddl`). With SYNC_ON_ERROR=continue and a
repair to write, drizzle-orm's course on the unrepaired ledger is planned too
(`fallback`), its refusal kept for the moment it is taken, so a deploy whose
repair succeeds is never refused for migrations it would not run. The dry run
prints the plan (`render`); the deploy carries it out (`execute`); nothing
re-plans once writing has begun.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg

from entrypoint.config import Settings
from entrypoint.core import pending
from entrypoint.core.model import Journal, LedgerSnapshot, Migration, Refusal
from entrypoint.core.pending import Plan
from entrypoint.db.ledger import Ledger
from entrypoint.deploy import repair
from entrypoint.deploy.runner import Limits
from entrypoint.errors import (
    DatabaseRefused,
    DdlRefused,
    EntrypointError,
    JournalError,
    MigrationFailed,
    OutOfOrder,
    PlanChanged,
)

if TYPE_CHECKING:  # the no-op start never needs the parser, the planner of units or the baseline's catalog
    from entrypoint.core.baseline_plan import BaselinePlan
    from entrypoint.core.ddl import Finding
    from entrypoint.core.online_parts import Plan as OnlinePlan
    from entrypoint.core.sql import Parsed
    from entrypoint.core.transactions import Unit

# The lint's rules an online form answers: the statement no longer holds a lock that stops writes.
ONLINE_RULES = frozenset(
    {"create-index-not-concurrently", "constraint-not-valid", "unique-constraint-builds-index", "set-not-null"}
)


@dataclass(frozen=True)
class Course:
    """One way through the write phase: the ledger plan, where the run commits, and the lint's findings."""

    plan: Plan
    units: tuple[Unit, ...] = ()
    findings: tuple[Finding, ...] = ()  # warnings and dangers, printed before the migrations run


@dataclass(frozen=True)
class DeployPlan:
    """The whole deploy, decided: what to adopt, repair and apply, how, and what to do if the repair fails."""

    journal: Journal
    ledger: Ledger
    course: Course
    adopted: BaselinePlan | None  # BASELINE_ON_EMPTY: the prefix to record first
    fallback: Course | EntrypointError | None  # drizzle-orm's course if the repair's write fails, or its refusal
    limits: Limits
    backs_up: bool  # BACKUP_DIR or BACKUP_URL is set

    @property
    def writes(self) -> bool:
        """Whether the deploy changes anything: the ledger's creation, a repair, an adoption, a migration."""
        return _writes(self.course, self.adopted)


def _writes(course: Course, adopted: BaselinePlan | None) -> bool:
    plan = course.plan
    changes_ledger = not plan.snapshot.exists or bool(plan.repairs) or plan.upgrade is not None
    return changes_ledger or bool(course.units) or adopted is not None


def plan_units(
    conn: psycopg.Connection[Any], to_apply: tuple[Migration | Parsed, ...], settings: Settings
) -> tuple[Unit, ...] | Refusal:
    """Where a deploy of `to_apply` commits, and which of their statements run online, in parts.

    The deploy plans with this under the lock, `status` to show what it would do: the same parse, the
    same live table sizes (read only for the tables the candidates name, and not with ONLINE_DDL=never),
    the same stored plans of migrations an earlier deploy stopped between parts.
    """
    from entrypoint.core import online, transactions  # the SQL parser, only when something is pending
    from entrypoint.db import catalog

    facts = transactions.classify(to_apply, conn.info.server_version)
    stored = _stored(conn, settings, facts)
    if isinstance(stored, Refusal):
        return stored
    mode, said = settings.online_mode()
    tables = catalog.live_tables(conn, transactions.tables_to_size(facts)) if mode != "never" else {}
    policy = online.Policy(mode, settings.index_build_threshold, tables, setting=said)
    return transactions.plan_units(facts, settings.transaction_mode, policy, stored)


def _stored(conn: psycopg.Connection[Any], settings: Settings, facts: Sequence[Any]) -> dict[str, OnlinePlan] | Refusal:
    """The plans an earlier deploy stored for pending migrations it stopped between parts; a changed file refuses."""
    from entrypoint.db.parts import PartsTable

    table = PartsTable(Ledger(settings.migrations_schema, settings.migrations_table))
    found = table.read(conn)
    plans: dict[str, OnlinePlan] = {}
    for migration in (f.migration for f in facts if f.migration.tag in found):
        stored = found[migration.tag]
        if not stored.matches(migration):
            return Refusal(
                "plan-changed",
                f"{migration.tag} was stopped after part {stored.plan.done} of {len(stored.plan.parts)} by an earlier "
                f"deploy, and its file has changed since (hash {stored.hash[:12]}… then, {migration.hash[:12]}… now): "
                "nothing was changed. Restore the file as it was, and the next deploy finishes it; or finish it by "
                f"hand, record it in {settings.migrations_schema}.{settings.migrations_table} and delete its rows from "
                f"{table.qualified_name}",
            )
        plans[migration.tag] = stored.plan
    return plans


def lint_findings(conn: psycopg.Connection[Any], migrations: tuple[Migration | Parsed, ...]) -> tuple[Finding, ...]:
    """The lint's findings of `migrations`, weighed by the live size of their tables (one query)."""
    from entrypoint.core import ddl
    from entrypoint.db import catalog

    found = ddl.findings(migrations)
    sizes = catalog.table_sizes(conn, {f.table for f in found if f.table is not None})
    return tuple(ddl.weigh(found, {table: (size.rows, size.bytes) for table, size in sizes.items()}))


class _Parses:
    """Each pending migration parsed once, whichever course asks for it first."""

    def __init__(self) -> None:
        self._done: dict[str, Parsed] = {}

    def __call__(self, migrations: tuple[Migration, ...]) -> tuple[Parsed, ...]:
        from entrypoint.core.sql import parse

        for migration in migrations:
            if migration.tag not in self._done:
                self._done[migration.tag] = parse(migration)
        return tuple(self._done[m.tag] for m in migrations)


def _refuse_out_of_order(plan: Plan, settings: Settings) -> None:
    if plan.out_of_order and not settings.allow_out_of_order:
        tags = [m.tag for m in plan.out_of_order]
        raise OutOfOrder(
            "❌ {names} {verb} older than the newest applied migration and never applied: drizzle-orm would skip "
            "it silently. Regenerate it with drizzle-kit so it sorts last, or set ALLOW_OUT_OF_ORDER=1 to apply it",
            names=", ".join(tags),
            verb="is" if len(tags) == 1 else "are",
            tags=tags,
        )


def _units(conn: psycopg.Connection[Any], parsed: tuple[Parsed, ...], settings: Settings) -> tuple[Unit, ...]:
    """Where the run will commit (`transactions`); a migration no mode can run is refused here."""
    if not parsed:
        return ()
    units = plan_units(conn, parsed, settings)
    if not isinstance(units, Refusal):
        return units
    if units.reason == "rollback":
        raise JournalError("❌ {problem}", problem=units.detail, path=str(settings.migrations_dir))
    if units.reason == "plan-changed":
        raise PlanChanged("❌ {detail}", detail=units.detail)
    raise MigrationFailed("❌ {detail}", detail=units.detail, reason=units.reason)


def _findings(conn: psycopg.Connection[Any], parsed: tuple[Parsed, ...], units: tuple[Unit, ...]) -> tuple[Any, ...]:
    """The DDL lint's findings worth a line (warnings and dangers).

    A statement this run applies online (ONLINE_DDL) no longer blocks writes: its rule is no finding.
    """
    if not parsed:
        return ()
    from entrypoint.core import ddl

    plans = [(m, u.plan_of(m)) for u in units if u.kind == "concurrent" for m in u.migrations]
    online = {(m.tag, d.source.chunk) for m, plan in plans if plan for d in plan.decisions if d.online}
    found = ddl.at_least(lint_findings(conn, parsed), "warning")
    return tuple(f for f in found if (f.tag, f.statement) not in online or f.rule not in ONLINE_RULES)


def _course(
    conn: psycopg.Connection[Any], plan: Plan, settings: Settings, parses: _Parses, *, check_guards: bool
) -> Course:
    """The course for `plan`: a skip, a guard that cannot run, a migration no mode can run are refused."""
    from entrypoint.deploy import guards

    _refuse_out_of_order(plan, settings)
    if check_guards and plan.to_apply:  # nothing to guard: a restart pays no query for it
        guards.refuse_failing(conn, settings.guards)
    parsed = parses(plan.to_apply)
    units = _units(conn, parsed, settings)
    return Course(plan, units, _findings(conn, parsed, units))


def refuse_ddl(course: Course, settings: Settings) -> None:
    """DDL_POLICY=refuse: print the findings and stop (exit 20) before any change."""
    if course.findings and settings.ddl_policy == "refuse":
        from entrypoint.deploy import findings

        findings.show(course.findings)
        raise DdlRefused(
            "❌ DDL_POLICY=refuse: {count} pending statements lock, rewrite or break a table (the lines above); "
            "nothing was changed. Make them safe, or allow each one with `-- entrypoint:allow <rule>`, then redeploy",
            count=len(course.findings),
        )


def refuse_read_only(conn: psycopg.Connection[Any], writes: bool) -> None:
    """A read-only session (a replica, a read-only role) is said up front, not met at the first write."""
    if not writes:
        return
    row = conn.execute("SELECT current_setting('transaction_read_only') = 'on'").fetchone()
    if row and row[0]:
        raise DatabaseRefused(
            "❌ The database is read-only for this session (a hot standby, or default_transaction_read_only for "
            "this role), and this deploy must write: nothing was changed. Point MIGRATION_DATABASE_URL at the "
            "primary, with a role that can write",
            sqlstate="25006",
        )


def _snapshot(
    conn: psycopg.Connection[Any], ledger: Ledger, journal: Journal, settings: Settings
) -> tuple[LedgerSnapshot, BaselinePlan | None]:
    """The ledger, read once, and with BASELINE_ON_EMPTY on a pushed database the baseline to record.

    The run plans against the ledger as the baseline will leave it; the baseline itself is
    written in the write phase, after every refusal and the backup, like any other change.
    """
    snapshot = ledger.snapshot(conn)
    if not settings.baseline_on_empty or snapshot.rows:
        return snapshot, None
    from entrypoint.core.baseline_plan import ledger_after
    from entrypoint.deploy import adopt  # the catalog and the SQL parser, only for a ledger with no rows

    adopted = adopt.on_empty(conn, ledger, journal, snapshot)
    if adopted is None:
        return snapshot, None
    if settings.dry_run:
        adopt.would_record(ledger, adopted)
    rows = ledger_after(adopted.record, name_keyed=journal.name_keyed)
    return LedgerSnapshot(exists=True, has_names=journal.name_keyed, rows=rows), adopted


def _fallback(
    conn: psycopg.Connection[Any], journal: Journal, course: Course, settings: Settings, parses: _Parses
) -> Course | EntrypointError | None:
    """SYNC_ON_ERROR=continue: drizzle-orm's course on the ledger as read, should the repair's write fail."""
    plan = course.plan
    if not plan.repairs or settings.sync_on_error != "continue":
        return None
    carried_on = pending.unrepaired(journal, plan.snapshot, allow_out_of_order=settings.allow_out_of_order)
    try:  # the plan's own check ran the same guards when it has migrations to apply
        return _course(conn, carried_on, settings, parses, check_guards=not plan.to_apply)
    except EntrypointError as refusal:
        return refusal


def prepare(conn: psycopg.Connection[Any], journal: Journal, ledger: Ledger, settings: Settings) -> DeployPlan:
    """Read the ledger once and plan the whole deploy; raise every refusal before anything is written."""
    snapshot, adopted = _snapshot(conn, ledger, journal, settings)
    plan = pending.plan(
        journal, snapshot, allow_out_of_order=settings.allow_out_of_order, when_ahead=settings.when_ahead
    )
    parses = _Parses()
    try:
        repair.check(conn, ledger, journal, plan)
        course = _course(conn, plan, settings, parses, check_guards=True)
        refuse_read_only(conn, _writes(course, adopted))
    except EntrypointError:
        repair.announce(plan)  # a refusal reads as the sync's: under its opening lines
        raise
    refuse_ddl(course, settings)
    limits = Limits(
        lock_timeout_ms=settings.ddl_lock_timeout_ms,
        statement_timeout_ms=settings.statement_timeout_ms,
        attempts=settings.migration_attempts,
        watch_url=settings.database_url,
        guards=settings.guards,
        mode=settings.transaction_mode,
        ledger_was_empty=not plan.snapshot.rows,
        heartbeat_s=settings.heartbeat_interval,
        debug=settings.debug,
    )
    return DeployPlan(
        journal=journal,
        ledger=ledger,
        course=course,
        adopted=adopted,
        fallback=_fallback(conn, journal, course, settings, parses),
        limits=limits,
        backs_up=settings.backup_dir is not None or settings.backup_url is not None,
    )
