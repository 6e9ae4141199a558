"""`verify`'s ledger checks: is every migration recorded exactly once, and nothing else? Pure.

drizzle-kit 0.x folders are checked by (hash, `when`); 1.0 folders by name.
Each check returns (check, detail) pairs, empty when the ledger is exactly in step.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from entrypoint.core.model import LedgerRow, Migration
from entrypoint.core.text import id_ranges, plural


def ledger_problems(
    migrations: Sequence[Migration], rows: Sequence[LedgerRow], *, in_date_order: bool = True
) -> list[tuple[str, str]]:
    """Pure: (check, detail) for each failed ledger check; empty when the ledger is exactly in step.

    Rows must be in journal order by id only when the journal is in date order: after a merged
    branch, drizzle-orm numbers rows in the order they were applied.
    """
    wanted = {(m.hash, m.when) for m in migrations}
    recorded = Counter((r.hash, r.created_at) for r in rows)
    problems = []
    missing = [m.tag for m in migrations if (m.hash, m.when) not in recorded]
    if missing:
        detail = f"no row with the file's hash and `when` for {plural(len(missing), 'migration')}: {', '.join(missing)}"
        problems.append(("not_applied", detail))
    unknown = [str(r.id) for r in rows if (r.hash, r.created_at) not in wanted]
    if unknown:
        problems.append(
            ("unknown_rows", f"{plural(len(unknown), 'row')} match no journal entry: ids {', '.join(unknown)}")
        )
    doubled = [m.tag for m in migrations if recorded[(m.hash, m.when)] > 1]
    if doubled:
        problems.append(("duplicates", f"recorded more than once: {', '.join(doubled)}"))
    problems += _id_problems(rows)
    ids = sorted(r.id for r in rows)
    in_order = [(r.hash, r.created_at) for r in sorted(rows, key=lambda r: r.id)]
    if in_date_order and not problems and in_order != [(m.hash, m.when) for m in migrations]:
        first = next(i for i, (got, m) in enumerate(zip(in_order, migrations, strict=True)) if got != (m.hash, m.when))
        problems.append(
            ("order", f"id {ids[first]} should record {migrations[first].tag}: rows are not in journal order")
        )
    return problems


def name_ledger_problems(
    migrations: Sequence[Migration], rows: Sequence[LedgerRow], *, has_names: bool
) -> list[tuple[str, str]]:
    """Pure: the ledger checks for drizzle-kit 1.0 folders, where a row is known by its name."""
    if not has_names:
        return [("not_upgraded", "the ledger has no `name` column yet: deploy to upgrade it for Drizzle 1.0")]
    names = Counter(r.name for r in rows)
    by_tag = {m.tag: m for m in migrations}
    problems = []
    missing = [m.tag for m in migrations if m.tag not in names]
    if missing:
        problems.append(("not_applied", f"no row named {plural(len(missing), 'migration')}: {', '.join(missing)}"))
    unknown = [str(r.id) for r in rows if r.name not in by_tag]
    if unknown:
        problems.append(
            ("unknown_rows", f"{plural(len(unknown), 'row')} name no migration folder: ids {', '.join(unknown)}")
        )
    changed = [r.name for r in rows if r.name in by_tag and by_tag[r.name].hash != r.hash]
    if changed:
        problems.append(("hash_changed", f"changed since applied (hash differs): {', '.join(str(c) for c in changed)}"))
    doubled = [m.tag for m in migrations if names[m.tag] > 1]
    if doubled:
        problems.append(("duplicates", f"recorded more than once: {', '.join(doubled)}"))
    return problems + _id_problems(rows)


def _id_problems(rows: Sequence[LedgerRow]) -> list[tuple[str, str]]:
    ids = sorted(r.id for r in rows)
    if ids and (ids[0] not in {0, 1} or ids != list(range(ids[0], ids[0] + len(ids)))):
        return [("ids", f"ids {id_ranges(ids)} are not numbered without gaps from 0 or 1")]
    return []
