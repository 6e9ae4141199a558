"""`status`: each migration of the folder against the ledger, read-only.

It never creates the ledger and takes no lock: one READ ONLY transaction takes
the ledger's snapshot, and the deploy's own planner (`plan.plan`) decides each
entry's state, so what status calls drifted is exactly what the next deploy
would repair. `run` returns the report; the CLI prints it as lines (`show`) or
as the `--json` document (`StatusReport.document`). See docs/operator-commands.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from entrypoint.commands import READ_ONLY, Help
from entrypoint.config import Settings
from entrypoint.core import pending as planner
from entrypoint.core.model import Refusal
from entrypoint.core.pending import STATES, EntryState, Plan, ahead_label
from entrypoint.core.text import iso, plural, table
from entrypoint.db.ledger import Ledger
from entrypoint.errors import StatusNotClean
from entrypoint.journal import read_journal
from entrypoint.launch import exec_command, stopping_says
from entrypoint.logs import get_logger

HELP = Help(
    "Show each migration of the journal against the ledger: applied, pending, drifted id, hash mismatch or out "
    "of order, then the ledger rows no migration accounts for, or, when a newer release migrated the database, "
    "the rows it is ahead by (WHEN_AHEAD). Read-only: creates nothing, takes no lock, changes "
    "nothing. See docs/operator-commands.md.",
    "every migration applied and the ledger in step",
    (StatusNotClean.exit_code,),
)

if TYPE_CHECKING:  # the start gate imports this module: it must not pay for the transaction planner
    from entrypoint.core.transactions import Unit


@dataclass(frozen=True)
class StatusReport:
    """The folder and the ledger it was held against, and the plan that says where each entry stands."""

    folder: Path
    schema: str
    table: str
    plan: Plan
    units: tuple[Unit, ...] | Refusal = ()  # how the next deploy would commit what is pending
    unlisted: tuple[str, ...] = ()  # SQL files no journal entry names

    @property
    def ledger(self) -> str:
        """`schema.table`."""
        return f"{self.schema}.{self.table}"

    @property
    def clean(self) -> bool:
        """Everything applied and in step."""
        return self.plan.clean and not isinstance(self.units, Refusal)

    def failure(self) -> StatusNotClean | None:
        """The ❌ line when something is not in step (exit 12), else None."""
        if self.clean:
            return None
        return StatusNotClean(
            "❌ Not in step: {summary}. Run `python -m entrypoint --dry-run` to see what the next deploy "
            "would repair and apply",
            summary=self.summary(),
        )

    def summary(self) -> str:
        """`8 applied, 1 pending, 3 hash mismatch`, and the unknown rows."""
        counts = self.plan.counts()
        parts = [f"{counts[state]} {state}" for state in STATES if counts[state]]
        if self.plan.unknown:
            parts.append(f"{len(self.plan.unknown)} unknown ledger rows")
        return ", ".join(parts)

    def document(self) -> dict[str, Any]:
        """The `--json` document (docs/operator-commands.md)."""
        plan = self.plan
        counts = plan.counts()
        return {
            "folder": str(self.folder),
            "ledger": {
                "schema": self.schema,
                "table": self.table,
                "exists": plan.snapshot.exists,
                "rows": len(plan.snapshot.rows),
            },
            "entries": [
                {
                    "idx": e.migration.idx,
                    "tag": e.migration.tag,
                    "when": e.migration.when,
                    "when_iso": iso(e.migration.when),
                    "state": e.state,
                    "ledger_id": e.row.id if e.row else None,
                    "hash": e.migration.hash,
                }
                for e in plan.entries
            ],
            "unknown_rows": [
                {"id": r.id, "hash": r.hash, "created_at": r.created_at, "created_at_iso": iso(r.created_at)}
                for r in plan.unknown
            ],
            "ahead_rows": [
                {
                    "id": r.id,
                    "hash": r.hash,
                    "created_at": r.created_at,
                    "created_at_iso": iso(r.created_at),
                    "name": r.name,
                }
                for r in plan.ahead
            ],
            "summary": {
                "entries": len(plan.entries),
                **{state.replace(" ", "_"): counts[state] for state in STATES},
                "unknown_rows": len(plan.unknown),
                "ahead": len(plan.ahead),
                "refusal": {"reason": plan.refusal.reason, "detail": plan.refusal.detail} if plan.refusal else None,
            },
            "units": [
                {
                    "kind": u.kind,
                    "tags": [m.tag for m in u.migrations],
                    "why": u.why,
                    "builds": _builds_document(u),
                    "online": _online_document(u),
                }
                for u in (self.units if not isinstance(self.units, Refusal) else ())
            ],
            "units_refused": self.units.detail if isinstance(self.units, Refusal) else None,
            "unlisted": list(self.unlisted),
            "clean": self.clean,
        }


def _builds_document(unit: Unit) -> list[dict[str, Any]]:
    """How each index of the unit's index-only migrations would be built, for `--json`."""
    return [
        {
            "tag": m.tag,
            "statement": d.source.chunk,
            "index": d.index_name,
            "table": d.why.table,
            "concurrently": d.online and unit.kind == "concurrent",
            "why": d.why.text,
        }
        for m in unit.migrations
        if (plan := unit.plan_of(m)) is not None and plan.index_only
        for d in plan.decisions
        if d.index_name
    ]


def _online_document(unit: Unit) -> list[dict[str, Any]]:
    """Per migration with a statement that has an online form: each decision and why, and the parts, for `--json`."""
    from entrypoint.core.online_parts import what

    found = []
    for migration in unit.migrations:
        plan = unit.plan_of(migration)
        if plan is None or not (plan.decisions or plan.done):
            continue
        online = unit.kind == "concurrent"
        found.append({
            "tag": migration.tag,
            "online": online,
            "parts": [
                {"part": n, "kind": getattr(p, "kind", "transaction"), "what": what(p), "done": n <= plan.done}
                for n, p in enumerate(plan.parts, start=1)
            ] if online else [],
            "resume_at": plan.done + 1 if plan.done else None,
            "note": plan.note or None,
            "statements": [
                {
                    "statement": d.source.chunk,
                    "what": d.what,
                    "online": d.online and online,
                    "how": d.how if d.online and online else "as written",
                    "why": d.why.text,
                    "table": d.why.table,
                    "rows": d.why.rows,
                    "bytes": d.why.bytes,
                    "threshold": d.why.threshold,
                }
                for d in plan.decisions
            ],
        })  # fmt: skip
    return found


@stopping_says(READ_ONLY)
def run(settings: Settings) -> StatusReport:
    """Read the folder (first: a broken folder never touches the database), then the ledger, and plan."""
    from entrypoint.db.connect import read_only  # the driver only once the folder is valid

    journal = read_journal(settings.migrations_dir)
    ledger = Ledger(settings.migrations_schema, settings.migrations_table, name_keyed=journal.name_keyed)
    with read_only(settings.database_url, timeout=settings.connect_timeout, doing="reading the ledger") as conn:
        plan = planner.plan(journal, ledger.snapshot(conn), when_ahead=settings.when_ahead)
        units: tuple[Unit, ...] | Refusal = ()
        if plan.to_apply:
            from entrypoint.deploy.prepare import plan_units  # the parser, only for what is pending

            units = plan_units(conn, plan.to_apply, settings)
    return StatusReport(journal.folder, ledger.schema, ledger.table, plan, units, journal.unlisted)


def _ledger_id(entry: EntryState) -> str:
    if entry.row is None:
        return "-"
    moved = entry.expected_id is not None and entry.expected_id != entry.row.id
    return f"{entry.row.id} → {entry.expected_id}" if moved else str(entry.row.id)


def show(report: StatusReport) -> None:
    """The report as lines: the header, one row per entry, the refusal and unknown rows, then `status.clean`."""
    log = get_logger()
    plan = report.plan
    log.info("status.header", folder=str(report.folder), ledger=report.ledger)
    if not plan.snapshot.exists:
        log.info("status.no_ledger", ledger=report.ledger)
    cells = [
        (str(e.migration.idx), e.migration.tag, (iso(e.migration.when) or "")[:19] + "Z", e.state, _ledger_id(e))
        for e in plan.entries
    ]
    header, *lines = table(("idx", "tag", "when (UTC)", "state", "ledger id"), cells)
    log.info("status.columns", cells=header)
    for line, entry in zip(lines, plan.entries, strict=True):
        log.info("status.row", cells=line, tag=entry.migration.tag, state=entry.state)
    if plan.refusal:
        log.warning("status.refused", reason=plan.refusal.reason, detail=plan.refusal.detail)
    if plan.unknown:
        log.warning("status.unknown", unknown=plural(len(plan.unknown), "ledger row"), count=len(plan.unknown))
        unknown = [(str(r.id), str(iso(r.created_at)), r.hash) for r in plan.unknown]
        header, *lines = table(("id", "created_at (UTC)", "hash"), unknown)
        log.warning("status.unknown_columns", cells=header)
        for line in lines:
            log.warning("status.unknown_row", cells=line)
    if plan.ahead:
        _show_ahead(plan)
    if report.unlisted:
        log.info("status.unlisted", files=", ".join(report.unlisted))
    if isinstance(report.units, Refusal):
        log.warning("status.units_refused", detail=report.units.detail)
    else:
        from entrypoint.deploy import render

        render.units(report.units)
    if report.clean:
        log.info("status.clean", applied=len(plan.entries), entries=len(plan.entries))


def _show_ahead(plan: Plan) -> None:
    """Ahead by N: the rows a newer release wrote, as a table."""
    log = get_logger()
    newest = max(plan.entries, key=lambda e: e.migration.when).migration.tag
    count = len(plan.ahead)
    log.warning("status.ahead", count=count, rows=plural(count, "ledger row"), newest=newest)
    cells = [(str(r.id), str(iso(r.created_at)), r.name or r.hash) for r in plan.ahead]
    header, *lines = table(("id", "created_at (UTC)", "name" if plan.ahead[0].name else "hash"), cells)
    log.warning("status.ahead_columns", cells=header)
    for line, row in zip(lines, plan.ahead, strict=True):
        log.warning("status.ahead_row", cells=line, id=row.id)


def gate(settings: Settings, app: list[str]) -> None:
    """The start gate (--require-migrated): exec `app` only when the database is in step with the folder.

    A database ahead of the folder (an older release after a rollback) is in step unless WHEN_AHEAD=refuse:
    a ⚠️ line per newer migration, as the deploy prints, then the app.

    Where Render's `preDeployCommand` migrates, the start command must never serve on a schema that is
    behind. The gate is `status` and nothing else: one READ ONLY transaction, no lock, no write, none of the
    applying code imported, so it costs no more than a no-op deploy start. Raises `StatusNotClean` (exit 12).
    """
    with stopping_says(READ_ONLY):
        report = run(settings)
        if not report.clean:
            show(report)
            raise StatusNotClean(
                "❌ Not starting the app: the database is not in step with {folder} ({summary}). Migrate first: "
                "check that the pre-deploy command (`python -m entrypoint`) ran and succeeded, then redeploy",
                folder=str(report.folder),
                summary=report.summary(),
            )
        log = get_logger()
        for row in report.plan.ahead:  # an older release on a newer schema: the normal state during a rollback
            log.warning(
                "sync.ahead",
                id=row.id,
                migration=ahead_label(row),
                hash=row.hash,
                created_at=row.created_at,
                name=row.name,
            )
        entries = len(report.plan.entries)
        log.info("gate.open", applied=entries, entries=entries)
        if app:
            exec_command(app)
