"""Which migrations a database drizzle never migrated already holds: the prefix its schema proves. Pure.

A database made with `drizzle-kit push`, or by hand, holds the tables but no
ledger, so the first migrate dies with `relation "…" already exists`. Baseline
records as applied the longest prefix of the journal whose schema the catalog
holds: replaying migrations 1..k over the schema model (`schema`, the one
`verify` and the sync use) must leave only objects that exist, and nothing those
migrations rename or drop may still be there. It is the *longest* such prefix,
not the one before the first mismatch: once a migration renames a column, the
schema of the migrations before it is rightly no longer in the database.

A migration whose effect the model cannot see (a data migration, functions,
triggers, `DO` blocks, or a statement pglast cannot parse) cannot be proven
present, and `drizzle-kit push` never runs one, so the prefix stops before it:
recording it would skip it forever. `--through TAG` is the operator's word for
such migrations up to TAG; it also caps the prefix. It never overrides a
missing object, so it cannot record a prefix the database has moved past (on a
schema where a later migration renamed a column, the earlier name is gone).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import NamedTuple

from entrypoint.core.model import LedgerRow, Migration
from entrypoint.core.schema import SchemaModel, SchemaObject, objects_of, replay_migration
from entrypoint.core.sql import DEFAULT_SCHEMA

Key = tuple[str, str, str, str | None]  # `SchemaObject.key`, as `catalog.read` lists objects

# Why the prefix ends where it does (stable codes, in `BaselinePlan.stop`).
COMPLETE, MISSING, UNPROVEN, THROUGH = "complete", "missing", "unproven", "through"


class Evidence(NamedTuple):
    """What the catalog says about one migration, given every migration before it was applied too."""

    migration: Migration
    created: tuple[SchemaObject, ...]  # what it creates, under the names the prefix leaves them
    removed: tuple[SchemaObject, ...]  # what it renames away or drops
    missing: tuple[SchemaObject, ...]  # left by the prefix through it, absent from the catalog
    lingering: tuple[SchemaObject, ...]  # renamed away or dropped by the prefix through it, still in the catalog
    found: int  # objects left by the prefix through it that the catalog holds
    unparsed: int  # its statements pglast could not parse
    existing: tuple[SchemaObject, ...] = ()  # what it creates that the catalog already holds

    @property
    def checkable(self) -> bool:
        """Whether it creates, renames or drops anything the model tracks, and every statement was read."""
        return bool(self.created or self.removed) and not self.unparsed

    @property
    def present(self) -> bool:
        """Whether the catalog is what the prefix through it leaves, as far as the model can tell."""
        return not self.missing and not self.lingering


class BaselinePlan(NamedTuple):
    """The evidence for every migration, the prefix to record, and why it ends there."""

    evidence: tuple[Evidence, ...]  # one per migration, in journal order
    record: tuple[Migration, ...]  # the prefix to record as applied
    stop: str  # COMPLETE, MISSING (the next one's schema is not there), UNPROVEN, THROUGH
    through: str | None = None

    @property
    def next(self) -> Evidence | None:
        """The first migration not recorded, if any."""
        return self.evidence[len(self.record)] if len(self.record) < len(self.evidence) else None

    @property
    def already_there(self) -> tuple[tuple[SchemaObject, str], ...]:
        """(object, tag) for what the migrations left unrecorded create that the catalog already holds.

        The next deploy applies them, and their CREATE or ADD of such an object fails ("already exists").
        """
        return tuple((o, e.migration.tag) for e in self.evidence[len(self.record) :] for o in e.existing)

    @property
    def vouched(self) -> tuple[Migration, ...]:
        """Recorded migrations nothing could be checked for: `--through` covers them."""
        return tuple(e.migration for e in self.evidence[: len(self.record)] if not e.checkable)


def evidence(
    migrations: Sequence[Migration], catalog: Collection[Key], *, default_schema: str = DEFAULT_SCHEMA
) -> tuple[Evidence, ...]:
    """Replay the migrations in order; after each, hold the model so far against the catalog.

    `default_schema`: where their unqualified names live (the database's first `current_schemas(false)`).
    """
    model = SchemaModel(default_schema=default_schema)
    seen: dict[SchemaObject, None] = {}  # every object any prefix so far left, in order
    found = []
    for migration in migrations:
        before = dict(model.live)
        unparsed = replay_migration(model, migration)
        after = model.live
        seen.update(dict.fromkeys(after))
        missing = tuple(o for o in after if o.key not in catalog)
        created = tuple(objects_of(model, migration.tag))
        found.append(
            Evidence(
                migration=migration,
                created=created,
                removed=tuple(o for o in before if o not in after),
                missing=missing,
                lingering=tuple(o for o in seen if o not in after and o.key in catalog),
                found=len(after) - len(missing),
                unparsed=unparsed,
                existing=tuple(o for o in created if o.key in catalog),
            )
        )
    return tuple(found)


def plan_baseline(
    migrations: Sequence[Migration],
    catalog: Collection[Key],
    *,
    through: str | None = None,
    default_schema: str = DEFAULT_SCHEMA,
) -> BaselinePlan:
    """The longest prefix whose schema the catalog holds, up to `through` (a tag of `migrations`).

    Without `through`, the prefix also stops before the first migration that
    cannot be checked. Raises `ValueError` for a `through` that is no tag.
    """
    tags = [m.tag for m in migrations]
    if through is not None and through not in tags:
        raise ValueError(f"{through!r} is not a migration of this journal")
    found = evidence(migrations, catalog, default_schema=default_schema)
    limit = tags.index(through) + 1 if through is not None else len(tags)
    unchecked = next((i for i, e in enumerate(found) if not e.checkable), len(found))
    cap = limit if through is not None else min(limit, unchecked)
    length = max(k for k in range(cap + 1) if k == 0 or found[k - 1].present)
    if length == len(found):
        stop = COMPLETE
    elif length < cap:
        stop = MISSING
    elif through is not None:
        stop = THROUGH
    else:
        stop = UNPROVEN
    return BaselinePlan(found, tuple(migrations[:length]), stop, through)


class Unproven(NamedTuple):
    """A migration a ledger row matches only by position, which the schema does not prove applied, and why."""

    evidence: Evidence
    problem: (
        str  # UNPROVEN (nothing checkable), MISSING (what it creates is absent), LINGERING (what it removes is there)
    )
    objects: tuple[SchemaObject, ...]  # the absent or lingering objects (none for UNPROVEN)


LINGERING = "lingering"


def unproven_by_position(
    migrations: Sequence[Migration],
    tags: Collection[str],
    catalog: Collection[Key],
    *,
    default_schema: str = DEFAULT_SCHEMA,
) -> Unproven | None:
    """The first of `tags` (matched to a ledger row only by position) whose run the catalog does not prove.

    Proven means evidence, never the absence of counter-evidence: the migration creates, renames or drops
    something the model tracks, every statement of it was read, what it creates (and no later migration of
    `migrations` drops) is in the catalog, and what it renames away or drops is not. A migration with
    nothing checkable (an UPDATE, a function, a trigger, a DO block) is never proven, as `baseline` never
    records one on its own.
    """
    last = max(i for i, m in enumerate(migrations) if m.tag in tags)
    replayed = migrations[: last + 1]
    found = evidence(replayed, catalog, default_schema=default_schema)
    final = SchemaModel(default_schema=default_schema)
    for migration in replayed:
        replay_migration(final, migration)
    for each in found:
        if each.migration.tag not in tags:
            continue
        if not each.checkable:
            return Unproven(each, UNPROVEN, ())
        absent = tuple(o for o in objects_of(final, each.migration.tag) if o.key not in catalog)
        if absent:
            return Unproven(each, MISSING, absent)
        still = tuple(o for o in each.removed if o.key in catalog and o not in final.live)
        if still:
            return Unproven(each, LINGERING, still)
    return None


def first_holds_any(found: Sequence[Evidence]) -> bool:
    """Whether the catalog already holds some object the first migration creates (BASELINE_ON_EMPTY's trigger)."""
    return bool(found) and found[0].found > 0


def ledger_after(record: Sequence[Migration], *, name_keyed: bool) -> tuple[LedgerRow, ...]:
    """The rows recording `record` in a new ledger, ids from its serial: what a dry run plans against."""
    return tuple(
        LedgerRow(id=n, hash=m.hash, created_at=m.when, name=m.tag if name_keyed else None)
        for n, m in enumerate(record, start=1)
    )
