"""`lint`: what the pending migrations lock, rewrite or break, before they run. Read-only.

Offline (no database: CI), every migration of the folder is linted, or those from
`--from TAG` on, each as if it shipped on its own (a table an earlier migration
created exists, of unknown size: a warning). With a database,
the pending migrations are (what the next deploy would apply, as `plan.plan` says),
weighed by the live size of each table (`catalog.table_sizes`), in one READ ONLY
transaction. The deploy prints the same findings before migrating and, with
DDL_POLICY=refuse, stops before any change. The rules are in `ddl`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from entrypoint.config import Settings
from entrypoint.core import ddl
from entrypoint.core.model import Migration
from entrypoint.errors import UsageError
from entrypoint.journal import read_journal
from entrypoint.logs import get_logger

_MARKS = {"danger": "🛑", "warning": "⚠️ ", "note": "ℹ️ "}


@dataclass(frozen=True)
class LintReport:
    """The migrations linted, whether by live sizes, and the findings."""

    migrations: tuple[Migration, ...]
    weighed: bool
    findings: tuple[ddl.Finding, ...]

    def failing(self, severity: ddl.Severity) -> list[ddl.Finding]:
        """The findings at `severity` or worse."""
        return ddl.at_least(self.findings, severity)

    def document(self) -> dict[str, Any]:
        """The `--json` document (docs/lint.md)."""
        counts = Counter(f.severity for f in self.findings)
        return {
            "migrations": [m.tag for m in self.migrations],
            "weighed": self.weighed,
            "findings": [
                {
                    "tag": f.tag,
                    "statement": f.statement,
                    "statements": f.statements,
                    "rule": f.rule,
                    "lock": f.lock or None,
                    "table": ".".join(f.table) if f.table else None,
                    "detail": f.detail,
                    "severity": f.severity,
                    "rows": f.rows,
                    "bytes": f.bytes,
                }
                for f in self.findings
            ],
            "counts": {severity: counts[severity] for severity in ddl.SEVERITIES},
        }


def weighed(conn: Any, migrations: Sequence[Migration]) -> tuple[ddl.Finding, ...]:
    """The findings of `migrations`, weighed by the live size of their tables (one query)."""
    from entrypoint.db import catalog

    found = ddl.findings(migrations)
    sizes = catalog.table_sizes(conn, {f.table for f in found if f.table is not None})
    return tuple(ddl.weigh(found, {table: (size.rows, size.bytes) for table, size in sizes.items()}))


def _from(migrations: Sequence[Migration], tag: str | None) -> tuple[Migration, ...]:
    if tag is None:
        return tuple(migrations)
    tags = [m.tag for m in migrations]
    if tag not in tags:
        raise UsageError("❌ --from {tag}: no such migration in the folder; use one of its tags", tag=tag)
    return tuple(migrations[tags.index(tag) :])


def run(settings: Settings, *, start: str | None = None) -> LintReport:
    """Lint the folder offline, or the pending migrations weighed by live sizes when a database is set."""
    journal = read_journal(settings.migrations_dir)
    if not settings.database_url:
        migrations = _from(journal.migrations, start)
        return LintReport(migrations, weighed=False, findings=tuple(ddl.findings(migrations, one_run=False)))
    from entrypoint.core import pending as planner
    from entrypoint.db.connect import read_only
    from entrypoint.db.ledger import Ledger

    ledger = Ledger(settings.migrations_schema, settings.migrations_table, name_keyed=journal.name_keyed)
    with read_only(settings.database_url, timeout=settings.connect_timeout, doing="reading table sizes") as conn:
        pending = planner.plan(journal, ledger.snapshot(conn)).to_apply
        migrations = _from(journal.migrations, start) if start else pending
        return LintReport(migrations, weighed=True, findings=weighed(conn, migrations))


def _size(finding: ddl.Finding) -> str:
    if finding.fresh:
        return " (created earlier in this run, so empty)"
    if finding.rows is None:
        return ""
    megabytes = (finding.bytes or 0) / 2**20
    return f" ({finding.rows:,} rows, {megabytes:,.0f} MB)"


def show(found: Sequence[ddl.Finding]) -> None:
    """One line per finding: the migration, the statement, the rule, the table, the lock and what to do."""
    log = get_logger()
    for f in found:
        lock, effect, advice, _ = ddl.RULES[f.rule]
        where = f" on {'.'.join(f.table)}" if f.table else ""
        consequence = f" takes a {lock} lock: {effect}" if lock else f": {effect}"
        log.warning(
            "lint.finding",
            mark=_MARKS[f.severity],
            tag=f.tag,
            statement=f.statement,
            statements=f.statements,
            rule=f.rule,
            detail=f.detail,
            where=where + _size(f),
            consequence=consequence,
            advice=advice,
            severity=f.severity,
            lock=lock,
            rows=f.rows,
        )


def summary(report: LintReport) -> None:
    """The closing line: counts per severity, and whether live sizes weighed them."""
    counts = Counter(f.severity for f in report.findings)
    get_logger().info(
        "lint.summary",
        migrations=len(report.migrations),
        danger=counts["danger"],
        warning=counts["warning"],
        note=counts["note"],
        weighed="weighed by live table sizes" if report.weighed else "offline: not weighed by live table sizes",
    )
