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

from entrypoint.commands import READ_ONLY, Help
from entrypoint.config import Settings
from entrypoint.core import ddl
from entrypoint.core.model import Migration
from entrypoint.errors import LintFailed, UsageError
from entrypoint.journal import read_journal
from entrypoint.launch import stopping_says
from entrypoint.logs import get_logger

HELP = Help(
    "Lint the migrations for what locks, rewrites or breaks a table while the old release serves (CREATE INDEX "
    "without CONCURRENTLY, constraints without NOT VALID, SET NOT NULL, type changes, volatile defaults, drops and "
    "renames...). With no database: every migration, offline. With one: the pending migrations, weighed by each "
    "table's live size. Read-only. See docs/lint.md.",
    "no finding at or above --fail-on",
    (LintFailed.exit_code,),
)


@dataclass(frozen=True)
class LintReport:
    """The migrations linted, whether by live sizes, and the findings."""

    migrations: tuple[Migration, ...]
    weighed: bool
    findings: tuple[ddl.Finding, ...]
    fail_on: ddl.Severity = "warning"

    def failing(self) -> list[ddl.Finding]:
        """The findings at --fail-on or worse."""
        return ddl.at_least(self.findings, self.fail_on)

    def failure(self) -> LintFailed | None:
        """The ❌ line when a finding is at --fail-on or worse (exit 19), else None."""
        failing = self.failing()
        if not failing:
            return None
        return LintFailed(
            "❌ {count} DDL lint findings at {severity} or worse: make them safe, allow each one with "
            "`-- entrypoint:allow <rule>` above its statement, or choose --fail-on",
            count=len(failing),
            severity=self.fail_on,
        )

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
            "ok": not self.failing(),
        }


def _from(migrations: Sequence[Migration], tag: str | None) -> tuple[Migration, ...]:
    if tag is None:
        return tuple(migrations)
    tags = [m.tag for m in migrations]
    if tag not in tags:
        raise UsageError("❌ --from {tag}: no such migration in the folder; use one of its tags", tag=tag)
    return tuple(migrations[tags.index(tag) :])


@stopping_says(READ_ONLY)
def run(settings: Settings, *, start: str | None = None, fail_on: ddl.Severity = "warning") -> LintReport:
    """Lint the folder offline, or the pending migrations weighed by live sizes when a database is set."""
    journal = read_journal(settings.migrations_dir)
    if not settings.database_url:
        migrations = _from(journal.migrations, start)
        found = tuple(ddl.findings(migrations, one_run=False))
        return LintReport(migrations, weighed=False, findings=found, fail_on=fail_on)
    from entrypoint.core import pending as planner
    from entrypoint.db.connect import read_only
    from entrypoint.db.ledger import Ledger
    from entrypoint.deploy.prepare import lint_findings

    ledger = Ledger(settings.migrations_schema, settings.migrations_table, name_keyed=journal.name_keyed)
    with read_only(settings.database_url, timeout=settings.connect_timeout, doing="reading table sizes") as conn:
        pending = planner.plan(journal, ledger.snapshot(conn)).to_apply
        migrations = _from(journal.migrations, start) if start else pending
        return LintReport(migrations, weighed=True, findings=lint_findings(conn, migrations), fail_on=fail_on)


def show(report: LintReport) -> None:
    """One line per finding (`deploy.render.findings`, as the deploy prints them), then the summary."""
    from entrypoint.deploy import findings

    findings.show(report.findings)
    summary(report)


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
