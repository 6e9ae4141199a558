"""Where a run commits: the pending migrations grouped into units, each boundary with its reason. Pure.

drizzle-orm runs every pending migration in one transaction. That is what keeps a
failed deploy from leaving anything half-applied, so by default (`auto`) we do
the same and commit only where PostgreSQL requires it:

- after a migration that adds an enum value, when another migration follows
  (PostgreSQL refuses to use a value before the transaction that added it commits);
- around a migration holding a statement PostgreSQL refuses in a transaction
  (`CREATE INDEX CONCURRENTLY`, `VACUUM`, ...), which runs outside any;
- around a migration with its own `BEGIN`/`COMMIT`, which runs as its file says;
- around a migration with a statement to apply online (`online`: an index, a
  foreign key, a CHECK, a NOT NULL or a unique key on a large table): it runs
  in parts, each committing on its own (`concurrent`), so the app's writes go
  on meanwhile; a migration an earlier deploy stopped between parts resumes
  the plan that deploy stored, whatever the sizes say now.

`per-migration` gives each migration its own transaction (Flyway's, dbmate's and
Atlas's default); `single` is strictly one transaction for everything, and is
refused up front where PostgreSQL cannot do that. A file with its own `ROLLBACK`
is refused in every mode: under drizzle-orm it silently undoes the migrations
before it while each is reported applied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, NamedTuple

from entrypoint.core import online
from entrypoint.core.model import Migration, Mode, Refusal
from entrypoint.core.online_parts import Plan, Policy
from entrypoint.core.sql import BEGIN, COMMIT, ROLLBACK, ChunkFacts, Parsed, classify_all, parse

Kind = Literal["transaction", "outside", "own", "concurrent"]


class MigrationFacts(NamedTuple):
    """A migration's statements, classified; `outside` and `own` name the first statement that decides."""

    migration: Migration
    chunks: tuple[ChunkFacts, ...]
    parsed: Parsed | None = None  # its one parse, which the online planner reads

    def _first(self, test: object) -> int | None:
        return next((n for n, chunk in enumerate(self.chunks, start=1) if test(chunk)), None)  # type: ignore[operator]

    @property
    def outside(self) -> tuple[int, str] | None:
        """(statement number, what) of the first statement PostgreSQL refuses in a transaction."""
        number = self._first(lambda c: c.outside)
        return (number, str(self.chunks[number - 1].outside)) if number else None

    @property
    def own_control(self) -> tuple[int, str] | None:
        """(statement number, BEGIN/COMMIT/ROLLBACK) of its first own transaction control."""
        number = self._first(lambda c: c.controls)
        return (number, self.chunks[number - 1].controls[0]) if number else None

    @property
    def rolls_back(self) -> int | None:
        """The statement number of its own ROLLBACK, if any."""
        return self._first(lambda c: ROLLBACK in c.controls)

    @property
    def adds_enum_value(self) -> bool:
        """Whether it runs `ALTER TYPE … ADD VALUE`."""
        return any(c.adds_enum_value for c in self.chunks)

    @property
    def unparsed(self) -> int:
        """Chunks too large or too unusual to classify (taken as ordinary SQL)."""
        return sum(not c.parsed for c in self.chunks)


class Unit(NamedTuple):
    """Migrations run together: in one `transaction`, `outside` any, under their `own` control, or `concurrent`.

    A `concurrent` unit is one migration applied online, in the parts of its plan, each
    committing on its own (its name is older than the plans that hold more than indexes, and
    `status --json` shows it). `plans` holds each migration's online plan (whatever the unit's
    kind): its parts, and for each statement that has an online form, whether it runs online and why.
    An `undo` unit runs a rollback's reversing statements (its migrations carry
    them in place of their own), and its bookkeeping deletes their ledger rows
    instead of inserting them.
    """

    kind: Kind
    migrations: tuple[Migration, ...]
    why: str  # why this unit is separate from the one before or after it
    facts: tuple[MigrationFacts, ...] = ()
    plans: tuple[tuple[str, Plan], ...] = ()  # (tag, its online plan) per migration
    undo: bool = False  # `rollback`: reverses its migrations and deletes their ledger rows

    def plan_of(self, migration: Migration) -> Plan | None:
        """`migration`'s online plan, if it was planned."""
        return next((found for tag, found in self.plans if tag == migration.tag), None)

    @property
    def resume_at(self) -> int:
        """Where the unit starts: 1, or for a resumed online plan the first part an earlier deploy left."""
        plan = self.plan_of(self.migrations[0]) if self.kind == "concurrent" else None
        return plan.done + 1 if plan else 1


def classify(migrations: Sequence[Migration | Parsed], server_version: int) -> tuple[MigrationFacts, ...]:
    """Every pending migration's statements, classified from their one parse (made here if not given)."""
    found = (parse(m) for m in migrations)
    return tuple(MigrationFacts(p.migration, tuple(classify_all(p, server_version)), p) for p in found)


def tables_to_size(facts: Sequence[MigrationFacts]) -> set[online.TableName]:
    """The tables whose live size decides how the pending migrations run online."""
    return {table for fact in facts if fact.parsed for table in online.tables_to_size(fact.parsed.chunks)}


def _refuse_rollback(facts: Sequence[MigrationFacts]) -> Refusal | None:
    for fact in facts:
        number = fact.rolls_back
        if number:
            return Refusal(
                "rollback",
                f"{fact.migration.tag} runs its own ROLLBACK (statement {number}/{fact.migration.statement_count}): "
                "under drizzle-orm it would silently undo the migrations before it while reporting each one "
                "applied. Remove the ROLLBACK (to undo a migration, write a new one that reverses it)",
            )
    return None


def _plans(facts: Sequence[MigrationFacts], policy: Policy, stored: Mapping[str, Plan]) -> dict[str, Plan]:
    """Each migration's online plan: the one an earlier deploy stored, else planned now.

    A table an earlier migration of the run creates is empty when the later one runs: small.
    """
    plans, created = {}, set(policy.created)
    for fact in facts:
        tag = fact.migration.tag
        chunks = fact.parsed.chunks if fact.parsed else ()
        if tag in stored:
            plans[tag] = stored[tag]
        elif fact.parsed:
            plans[tag] = online.plan(chunks, policy._replace(created=frozenset(created)))
        created |= online.creates(chunks)
    return plans


def _online_why(plan: Plan) -> str:
    """Why a migration runs online: how much of it, and its first large table."""
    if plan.stored:
        return f"resuming the plan an earlier deploy stored: {plan.done} of its {len(plan.parts)} parts committed"
    steps, first = plan.steps, next(d for d in plan.decisions if d.online)
    if plan.index_only:
        return f"{len(steps)} of its indexes built CONCURRENTLY; {first.why.text}"
    count = len({d.source for d in plan.decisions if d.online})
    return f"{count} of its statements online; {first.why.text}"


def _alone(fact: MigrationFacts, plan: Plan | None) -> tuple[str, Unit] | None:
    """A migration that runs on its own, and why the unit before it commits; None if it can share a transaction."""
    tag = fact.migration.tag
    if plan is not None and plan.online:
        why = f"commits before {tag}, which is applied online, in parts"
        return why, Unit("concurrent", (fact.migration,), _online_why(plan), (fact,), ((tag, plan),))
    if fact.own_control:
        number, control = fact.own_control
        unit = Unit("own", (fact.migration,), f"its own {control.upper()}, statement {number}", (fact,))
        return f"commits before {tag}, which manages its own transaction", unit
    if fact.outside:
        number, what = fact.outside
        unit = Unit("outside", (fact.migration,), f"{what}, statement {number}", (fact,))
        return f"commits before {tag}, which cannot run in a transaction", unit
    return None


def plan_units(
    facts: Sequence[MigrationFacts], mode: Mode, policy: Policy | None = None, stored: Mapping[str, Plan] | None = None
) -> tuple[Unit, ...] | Refusal:
    """The units of a run, in order, or why the migrations cannot run in `mode`.

    `policy` (ONLINE_DDL, the threshold and the live table sizes) decides which statements run online;
    without it, none. `stored` holds the plans of migrations an earlier deploy stopped between parts.
    """
    refusal = _refuse_rollback(facts)
    if refusal:
        return refusal
    policy = policy or Policy(mode="never")
    stored = stored or {}
    if mode == "single":
        return _single(facts, policy, stored)
    plans = _plans(facts, policy, stored)
    units: list[Unit] = []
    batch: list[MigrationFacts] = []

    def close(why: str) -> None:
        if batch:
            held = tuple((f.migration.tag, plans[f.migration.tag]) for f in batch if f.migration.tag in plans)
            units.append(Unit("transaction", tuple(f.migration for f in batch), why, tuple(batch), held))
            batch.clear()

    for position, fact in enumerate(facts):
        tag, last = fact.migration.tag, position == len(facts) - 1
        alone = _alone(fact, plans.get(tag))
        if alone:
            close(alone[0])
            units.append(alone[1])
        else:
            batch.append(fact)
            if mode == "per-migration" and not last:
                close("TRANSACTION_MODE=per-migration commits after each migration")
            elif fact.adds_enum_value and not last:
                close(f"{tag} adds an enum value, which later migrations can use only once it is committed")
    close("the end of the run")
    return tuple(units)


def _single(facts: Sequence[MigrationFacts], policy: Policy, stored: Mapping[str, Plan]) -> tuple[Unit, ...] | Refusal:
    """One transaction for everything: `auto` holds every statement in it; online parts cannot be held."""
    setting = policy.said.split("=")[0]
    if stored:
        tag = next(f.migration.tag for f in facts if f.migration.tag in stored)
        return Refusal(
            "single",
            f"{tag} was stopped between its parts by an earlier deploy, and TRANSACTION_MODE=single cannot finish it "
            "in one transaction; nothing was applied. Set TRANSACTION_MODE=auto to resume it",
        )
    if policy.mode == "auto":
        policy = policy._replace(mode="never", setting="TRANSACTION_MODE=single holds them in its one transaction")
    plans = _plans(facts, policy, {})
    for fact in facts:
        plan = plans.get(fact.migration.tag)
        step = plan.steps[0] if plan and plan.online else None
        if step is not None:
            built = step.kind == "create-index"
            does = f"builds {step.name} CONCURRENTLY" if built else f"runs {step.what} after a commit"
            return Refusal(
                "single",
                f"{fact.migration.tag} cannot run in one transaction with the others ({policy.said} {does}, statement "
                f"{step.source.chunk}); nothing was applied. Set {setting}=auto or TRANSACTION_MODE=auto",
            )
        found = fact.own_control or fact.outside
        if found:
            number, what = found
            what = {BEGIN: "its own BEGIN", COMMIT: "its own COMMIT"}.get(what, what)  # or the statement
            return Refusal(
                "single",
                f"{fact.migration.tag} cannot run in one transaction with the others ({what}, statement {number}); "
                "nothing was applied. Set TRANSACTION_MODE=auto to commit only where PostgreSQL requires it",
            )
    migrations = tuple(f.migration for f in facts)
    held = tuple((f.migration.tag, plans[f.migration.tag]) for f in facts if f.migration.tag in plans)
    return (Unit("transaction", migrations, "TRANSACTION_MODE=single", tuple(facts), held),)
