"""The start gate, `--require-migrated`: exec the app only on a schema that is in step, migrating nothing.

Where Render's `preDeployCommand` migrates, the start command must never serve
on a schema that is behind: a pre-deploy that failed, was skipped, or ran
against another database. The gate is `status` (`status.run`, the deploy's own
planner) and nothing else: one connection, one READ ONLY transaction, no lock,
no write. When everything is applied and in step it says so in one line and the
CLI execs the app; otherwise it prints `status`'s lines and stops with exit 12.
None of the applying code (`deploy`, `migrate`, `transactions`, the lock, the
SQL parser) is imported on the way to the exec, so it costs no more than a
no-op deploy start.
"""

from __future__ import annotations

from entrypoint.commands import status
from entrypoint.config import Settings
from entrypoint.errors import StatusNotClean
from entrypoint.logs import get_logger


def run(settings: Settings) -> None:
    """Return when the database is in step with the folder; raise `StatusNotClean` (exit 12) otherwise."""
    report = status.run(settings)
    if report.clean:
        entries = len(report.plan.entries)
        get_logger().info("gate.open", applied=entries, entries=entries)
        return
    status.show(report)
    raise StatusNotClean(
        "❌ Not starting the app: the database is not in step with {folder} ({summary}). Migrate first: check that "
        "the pre-deploy command (`python -m entrypoint`) ran and succeeded, then redeploy",
        folder=str(report.folder),
        summary=report.summary(),
    )
