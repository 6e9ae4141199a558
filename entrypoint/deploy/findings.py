"""The DDL lint's findings as lines: what a statement locks, on which table, how big, and what to do instead.

Printed by the deploy before it migrates (and before it refuses, with DDL_POLICY=refuse),
by the dry run, and by `lint`.
"""

from __future__ import annotations

from collections.abc import Sequence

from entrypoint.core import ddl
from entrypoint.logs import get_logger

_MARKS = {"danger": "🛑", "warning": "⚠️ ", "note": "ℹ️ "}


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
