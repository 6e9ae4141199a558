"""A rollback, decided: which applied migrations it reverses, newest first, how each is undone, how it runs. Pure.

`choose` picks the migrations from the deploy's own ledger plan (`pending.plan`):
the applied ones after `--to TAG`, or the last N. It refuses a ledger the deploy
would first have to repair, a database ahead of the folder (its newer migrations
are not here to undo), and a rollback after which drizzle-orm would never apply
a reversed migration again (one dated before a migration that stays applied).

`reverse_all` undoes each chosen migration: from its down file when there is
one, else from its own statements (`reverse.computed`); every statement with no
safe inverse is collected, so the command can refuse the whole rollback before
changing anything. `sent` decides how each step goes out (a reversal made only
of index drops drops a large table's index CONCURRENTLY, by the same rule
(ONLINE_DDL) and the same live sizes as the online builds), and `units` makes each reversal one
run unit for the deploy's runners: its own transaction, or outside one when it
drops CONCURRENTLY, with its ledger row deleted at the end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from entrypoint.core import online, transactions
from entrypoint.core.history import histories
from entrypoint.core.model import Migration, Refusal
from entrypoint.core.online_parts import LiveTable, Policy
from entrypoint.core.pending import APPLIED, PENDING, Plan
from entrypoint.core.reverse import DataCheck, Irreversible, Reversal, Step, computed, from_down
from entrypoint.core.sql import Parsed
from entrypoint.core.text import plural, size_text
from entrypoint.core.transactions import Unit


class Choice(NamedTuple):
    """The migrations to reverse, newest first, and the newest applied migration that stays (None: none)."""

    migrations: tuple[Migration, ...]
    stays: Migration | None


def _not_in_step(plan: Plan) -> str | None:
    """Why the ledger must first go through the deploy's sync, if it must."""
    if plan.refusal is not None:
        return f"the ledger is not matched to the folder ({plan.refusal.detail})"
    if plan.ahead:
        return (
            f"the database is ahead of this folder by {plural(len(plan.ahead), 'migration')} a newer release "
            "applied: roll back with that release's migrations folder, which has them"
        )
    drifted = [e.migration.tag for e in plan.entries if e.state not in {APPLIED, PENDING}]
    if drifted or plan.unknown or plan.repairs or plan.upgrade is not None:
        named = f" ({', '.join(drifted)})" if drifted else ""
        return (
            f"the ledger is not in step with the folder{named}: run the deploy (or its --dry-run) first, whose "
            "sync repairs it, then roll back"
        )
    return None


def choose(plan: Plan, *, to: str | None = None, last: int | None = None, name_keyed: bool = False) -> Choice | Refusal:
    """The applied migrations after `to` (a tag of the folder), or the `last` N applied, newest first."""
    not_in_step = _not_in_step(plan)
    if not_in_step:
        return Refusal("not_in_step", not_in_step)
    applied = [e.migration for e in plan.entries if e.state == APPLIED]
    if to is not None:
        tags = [e.migration.tag for e in plan.entries]
        if to not in {m.tag for m in applied}:
            return Refusal("not_applied", f"{to} is not applied here, so there is nothing to roll back to")
        position = tags.index(to)
        chosen = [m for m in applied if tags.index(m.tag) > position]
    else:
        chosen = applied[len(applied) - min(last or 0, len(applied)) :]
    stays = [m for m in applied if m not in chosen]
    if not name_keyed:
        refusal = _drizzle_skips(chosen, plan, stays)
        if refusal:
            return refusal
    return Choice(tuple(reversed(chosen)), stays[-1] if stays else None)


def _drizzle_skips(chosen: Sequence[Migration], plan: Plan, stays: Sequence[Migration]) -> Refusal | None:
    """drizzle-orm re-applies only what is dated after the newest row left: refuse what it would skip forever."""
    left = [e.row for e in plan.entries if e.migration in stays and e.row is not None]
    newest = max(left, key=lambda r: r.created_at or 0, default=None)
    for migration in chosen:
        if newest is not None and migration.when <= (newest.created_at or 0):
            staying = next(e.migration.tag for e in plan.entries if e.row == newest)
            return Refusal(
                "order",
                f"{migration.tag} is dated before {staying}, which would stay applied (a merged branch): once its "
                "row is gone, drizzle-orm would never apply it again. Roll back to a migration before both",
            )
    return None


class Reversals(NamedTuple):
    """Each chosen migration undone (newest first), and every statement that has no safe inverse."""

    reversals: tuple[Reversal, ...]
    irreversible: tuple[Irreversible, ...]


def reverse_all(
    parses: Sequence[Parsed], chosen: Sequence[Migration], downs: Mapping[str, tuple[str, Migration]]
) -> Reversals:
    """Undo `chosen` (newest first): its down file (`downs`: tag → (path, file)) when it has one, else computed.

    `parses` is the whole folder in journal order: what the migrations before each one left (their
    column defaults, the views and functions they made) is replayed from it.
    """
    before = dict(zip((p.migration.tag for p in parses), histories(parses), strict=True))
    by_tag = {p.migration.tag: p for p in parses}
    done: list[Reversal] = []
    refused: list[Irreversible] = []
    for migration in chosen:
        if migration.tag in downs:
            path, down = downs[migration.tag]
            after = before[migration.tag].copy()
            after.replay(by_tag[migration.tag])
            done.append(from_down(migration, down, path, after))
            continue
        found = computed(by_tag[migration.tag], before[migration.tag])
        if isinstance(found, Irreversible):
            refused.append(found)
        else:
            done.append(found)
    return Reversals(tuple(done), tuple(refused))


class Sent(NamedTuple):
    """What one step sends, whether it drops its index CONCURRENTLY, and why (for an index drop)."""

    sql: str
    concurrently: bool = False
    why: str = ""


def _index_only(reversal: Reversal) -> bool:
    return reversal.down is None and bool(reversal.steps) and all(s.drops_index for s in reversal.steps)


def sent(reversal: Reversal, policy: Policy) -> tuple[Sent, ...]:
    """How each step goes out. Only a reversal made of index drops drops CONCURRENTLY (the others stay atomic)."""
    if not _index_only(reversal):
        return tuple(Sent(step.sql) for step in reversal.steps)
    found = []
    for step in reversal.steps:
        if step.table is None:  # pragma: no cover - an index drop always names its table
            found.append(Sent(step.sql))
            continue
        why = online.decide(step.table, policy)
        sql = step.sql.replace("DROP INDEX ", "DROP INDEX CONCURRENTLY ", 1) if why.online else step.sql
        found.append(Sent(sql, why.online, why.text))
    return tuple(found)


def units(
    reversals: Sequence[Reversal], how: Sequence[tuple[Sent, ...]], server_version: int
) -> tuple[Unit, ...] | Refusal:
    """One `undo` unit per reversal, in order: its steps stand in for the migration's statements.

    It runs in its own transaction, or outside one when a step must (DROP INDEX CONCURRENTLY), or under a
    down file's own BEGIN/COMMIT; a down file with its own ROLLBACK is refused, as a migration is.
    """
    found: list[Unit] = []
    for reversal, steps in zip(reversals, how, strict=True):
        undoing = reversal.migration._replace(statements=tuple(s.sql.encode() for s in steps))
        planned = transactions.plan_units(transactions.classify([undoing], server_version), "per-migration")
        if isinstance(planned, Refusal):
            return planned
        found += [unit._replace(undo=True) for unit in planned]
    return tuple(found)


def backup_before(backups: Sequence[Mapping[str, object]], tag: str) -> Mapping[str, object] | None:
    """The newest recorded backup taken before a run that applied `tag` (its `pending` names it), or None."""
    return next((b for b in backups if tag in (b.get("pending") or ())), None)  # type: ignore[operator]


def restore_advice(backup: Mapping[str, object] | None, audit: str) -> str:
    """What to run instead of a rollback that cannot be computed: `restore` with that backup, when one is known."""
    if backup is None:
        return (
            f"No backup taken before it was deployed is recorded in {audit}: restore one you took "
            "(`python -m entrypoint restore SOURCE`) or use point-in-time recovery"
        )
    source = backup.get("url") or backup.get("path")
    point = backup.get("restore_point")
    at = ""
    if isinstance(point, Mapping):
        at = f"; restore point {point.get('server_time')}, WAL {point.get('wal_lsn')}"
    return (
        f"Restore the backup taken before it was deployed: `python -m entrypoint restore {source}` "
        f"(taken {backup.get('audited_at')}{at})"
    )


def _shown_table(table: tuple[str | None, str]) -> str:
    return f"{table[0]}.{table[1]}" if table[0] else table[1]


def _count(found: int, cap: int) -> str:
    return f"{found:,}+" if found >= cap else f"{found:,}"


def loss_text(check: DataCheck, found: int, cap: int) -> str:
    """What a check found, as a sentence's object: `notes holds 3 rows`, `users.bio holds 5 values …`."""
    table = _shown_table(check.table)
    if check.kind == "rows":
        return f"{table} holds {_count(found, cap)} {'row' if found == 1 else 'rows'}"
    if check.kind == "nulls":
        return f"{table}.{check.column} holds {_count(found, cap)} NULL{'' if found == 1 else 's'}"
    default = f" or its default {check.default}" if check.default is not None else ""
    return (
        f"{table}.{check.column} holds {_count(found, cap)} value{'' if found == 1 else 's'} other than NULL{default}"
    )


def cost(step: Step, how: Sent, live: Mapping[tuple[str | None, str], LiveTable]) -> str:
    """What one step costs while it runs: the lock it takes, on which table and how big, or `as written`."""
    if step.table is None:
        return "as written" if step.reverses == 0 else "no table lock"
    table = live.get(step.table)
    size = f" (~{table.rows:,} rows, {size_text(table.bytes)})" if table else ""
    if how.why:  # an index drop: why it goes CONCURRENTLY or not says the table's size
        lock = "CONCURRENTLY, outside a transaction: SHARE UPDATE EXCLUSIVE" if how.concurrently else step.lock
        return f"{lock} on {_shown_table(step.table)}; {how.why}"
    return f"{step.lock} on {_shown_table(step.table)}{size}"
