"""Where a run commits: the pending migrations grouped into units, each boundary with its reason. Pure.

drizzle-orm runs every pending migration in one transaction. That is what keeps a
failed deploy from leaving anything half-applied, so by default (`auto`) we do
the same and commit only where PostgreSQL requires it:

- after a migration that adds an enum value, when another migration follows
  (PostgreSQL refuses to use a value before the transaction that added it commits);
- around a migration holding a statement PostgreSQL refuses in a transaction
  (`CREATE INDEX CONCURRENTLY`, `VACUUM`, ...), which runs outside any;
- around a migration with its own `BEGIN`/`COMMIT`, which runs as its file says;
- around a migration made only of `CREATE INDEX` statements whose tables are
  large (`indexes`): it runs outside any transaction, its large tables' indexes
  built `concurrent`ly, so the app's writes go on meanwhile.

`per-migration` gives each migration its own transaction (Flyway's, dbmate's and
Atlas's default); `single` is strictly one transaction for everything, and is
refused up front where PostgreSQL cannot do that. A file with its own `ROLLBACK`
is refused in every mode: under drizzle-orm it silently undoes the migrations
before it while each is reported applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

from entrypoint.core import indexes
from entrypoint.core.indexes import IndexBuild, Policy
from entrypoint.core.model import Migration, Mode, Refusal
from entrypoint.core.sql import BEGIN, COMMIT, ROLLBACK, ChunkFacts, Parsed, classify_all, parse

Kind = Literal["transaction", "outside", "own", "concurrent"]


class MigrationFacts(NamedTuple):
    """A migration's statements, classified; `outside` and `own` name the first statement that decides."""

    migration: Migration
    chunks: tuple[ChunkFacts, ...]

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

    A `concurrent` unit is one index-only migration run outside any transaction, its
    large tables' indexes built CONCURRENTLY. `builds` says, for each index-only
    migration of the unit (whatever its kind), how each index is built and why.
    An `undo` unit runs a rollback's reversing statements (its migrations carry
    them in place of their own), and its bookkeeping deletes their ledger rows
    instead of inserting them.
    """

    kind: Kind
    migrations: tuple[Migration, ...]
    why: str  # why this unit is separate from the one before or after it
    facts: tuple[MigrationFacts, ...] = ()
    builds: tuple[tuple[str, tuple[IndexBuild, ...]], ...] = ()  # (tag, its builds) per index-only migration
    undo: bool = False  # `rollback`: reverses its migrations and deletes their ledger rows

    def builds_of(self, migration: Migration) -> tuple[IndexBuild, ...]:
        """How `migration`'s indexes are built (empty unless it is index-only)."""
        return next((found for tag, found in self.builds if tag == migration.tag), ())


def classify(migrations: Sequence[Migration | Parsed], server_version: int) -> tuple[MigrationFacts, ...]:
    """Every pending migration's statements, classified from their one parse (made here if not given)."""
    found = (parse(m) for m in migrations)
    return tuple(MigrationFacts(p.migration, tuple(classify_all(p, server_version))) for p in found)


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


def _builds(fact: MigrationFacts, policy: Policy) -> tuple[tuple[str, tuple[IndexBuild, ...]], ...]:
    found = indexes.plan_builds(fact.chunks, fact.migration.statements, policy)
    return ((fact.migration.tag, found),) if found else ()


def _online(builds: tuple[tuple[str, tuple[IndexBuild, ...]], ...]) -> str:
    """Why a migration is built online: its first large table."""
    first = next(b for _, found in builds for b in found if b.concurrently)
    count = sum(b.concurrently for _, found in builds for b in found)
    return f"{count} of its indexes built CONCURRENTLY; {first.why}"


def _alone(fact: MigrationFacts, policy: Policy) -> tuple[str, Unit] | None:
    """A migration that runs on its own, and why the unit before it commits; None if it can share a transaction."""
    tag = fact.migration.tag
    builds = _builds(fact, policy)
    if any(b.concurrently for _, found in builds for b in found):
        why = f"commits before {tag}, whose indexes are built CONCURRENTLY, outside a transaction"
        return why, Unit("concurrent", (fact.migration,), _online(builds), (fact,), builds)
    if fact.own_control:
        number, control = fact.own_control
        unit = Unit("own", (fact.migration,), f"its own {control.upper()}, statement {number}", (fact,))
        return f"commits before {tag}, which manages its own transaction", unit
    if fact.outside:
        number, what = fact.outside
        unit = Unit("outside", (fact.migration,), f"{what}, statement {number}", (fact,))
        return f"commits before {tag}, which cannot run in a transaction", unit
    return None


def plan_units(facts: Sequence[MigrationFacts], mode: Mode, policy: Policy | None = None) -> tuple[Unit, ...] | Refusal:
    """The units of a run, in order, or why the migrations cannot run in `mode`.

    `policy` (INDEX_BUILD and the live table sizes) decides how the indexes of
    index-only migrations are built; without it they stay in their transaction.
    """
    refusal = _refuse_rollback(facts)
    if refusal:
        return refusal
    policy = policy or Policy()
    if mode == "single":
        return _single(facts, policy)
    units: list[Unit] = []
    batch: list[MigrationFacts] = []

    def close(why: str) -> None:
        if batch:
            builds = tuple(b for f in batch for b in _builds(f, policy))
            units.append(Unit("transaction", tuple(f.migration for f in batch), why, tuple(batch), builds))
            batch.clear()

    for position, fact in enumerate(facts):
        tag, last = fact.migration.tag, position == len(facts) - 1
        alone = _alone(fact, policy)
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


def _single(facts: Sequence[MigrationFacts], policy: Policy) -> tuple[Unit, ...] | Refusal:
    # One transaction for everything: `auto` builds in it; a forced concurrent build cannot be held.
    held = policy._replace(mode="transaction") if policy.mode == "auto" else policy
    builds = tuple(
        (tag, tuple(b._replace(why="TRANSACTION_MODE=single holds them in its one transaction") for b in found))
        if policy.mode == "auto"
        else (tag, found)
        for f in facts
        for tag, found in _builds(f, held)
    )
    for fact in facts:
        online = next((b for _, found in _builds(fact, held) for b in found if b.concurrently), None)
        if online:
            return Refusal(
                "single",
                f"{fact.migration.tag} cannot run in one transaction with the others (INDEX_BUILD=concurrent builds "
                f"{online.name} CONCURRENTLY, statement {online.number}); nothing was applied. Set "
                "INDEX_BUILD=auto or TRANSACTION_MODE=auto",
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
    return (Unit("transaction", migrations, "TRANSACTION_MODE=single", tuple(facts), builds),)
