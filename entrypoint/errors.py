"""Every way a run can stop, each declared once: its exit code, its event, what it means.

Classes are registered the way psycopg registers SQLSTATE classes: `@stops(code,
event, meaning)` puts the class in `BY_EXIT_CODE`, from which `--help` and the
README's table are derived. Exit codes are a public contract: never reuse one for
another failure class, never change one.

An error carries the one `❌` line an operator reads as a template, and the facts
that fill it. The log pipeline scrubs the facts that may quote a secret (those
marked `Untrusted`) before filling the template, so the template's own words are
never rewritten. The CLI catches `EntrypointError` and nothing else on purpose:
anything else is a bug, reported as `InternalError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, TypeVar


class Untrusted(str):
    """Text from outside (the driver, argv, a child's stderr) that may quote a secret: logs scrub it."""

    __slots__ = ()


class EntrypointError(Exception):
    """A failure the operator can act on: the template says what happened and what to do next."""

    exit_code: int = 1
    event: ClassVar[str] = "entrypoint.failed"
    meaning: ClassVar[str] = ""

    def __init__(self, template: str, **facts: object) -> None:
        self.template = template
        self.facts = facts
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """The line, unscrubbed (the log pipeline renders the scrubbed one)."""
        return self.template.format_map(self.facts)


BY_EXIT_CODE: dict[int, tuple[type[EntrypointError], str]] = {}
_E = TypeVar("_E", bound=type[EntrypointError])


def stops(exit_code: int, event: str, meaning: str) -> Callable[[_E], _E]:
    """Register an error class under its exit code (once), with its stable event name and meaning."""

    def register(cls: _E) -> _E:
        if exit_code in BY_EXIT_CODE:
            raise TypeError(f"exit code {exit_code} is already {BY_EXIT_CODE[exit_code][0].__name__}'s")
        cls.exit_code = exit_code
        cls.event = event
        cls.meaning = meaning
        BY_EXIT_CODE[exit_code] = (cls, meaning)
        return cls

    return register


@stops(2, "config.invalid", "bad flags or settings, e.g. no DATABASE_URL, a malformed URL, an unknown flag")
class UsageError(EntrypointError):
    """Bad flags or settings: nothing was attempted."""


@stops(3, "journal.invalid", "the migrations folder is broken: the journal, a missing or unreadable SQL file")
class JournalError(EntrypointError):
    """The migrations folder cannot be read the way drizzle-orm reads it (facts: `path`)."""


@stops(4, "db.unreachable", "the database is unreachable, refused the login, or the connection was lost for good")
class DatabaseUnreachable(EntrypointError):
    """No connection could be made (or kept) within CONNECT_TIMEOUT (facts: `sqlstate`)."""


@stops(5, "lock.timeout", "another deploy held the migration lock past LOCK_WAIT_TIMEOUT")
class LockTimeout(EntrypointError):
    """Another deploy held the migration lock for longer than LOCK_WAIT_TIMEOUT (facts: `holder_pid`)."""


@stops(6, "migrate.failed", "a migration failed; the line says what this run kept (committed before it) and what was "
       "rolled back; a validation or unique build found rows that break the new constraint (the line gives the query "
       "that lists them, and what of a migration applied in parts is committed: the next deploy resumes); or "
       "TRANSACTION_MODE=single cannot hold the pending migrations")  # fmt: skip
class MigrationFailed(EntrypointError):
    """A migration statement failed (facts: `tag`, `statement`, `statements`, `sqlstate`, `error`)."""


@stops(
    7, "sync.refused", "the ledger cannot be repaired safely (ahead of the code, duplicates, a gap); nothing changed"
)
class LedgerRefused(EntrypointError):
    """The ledger cannot be repaired safely; nothing was changed (facts: `reason`)."""


@stops(8, "migrate.out_of_order", "a migration older than the newest applied one was never applied")
class OutOfOrder(EntrypointError):
    """A journal entry older than the newest applied one was never applied (facts: `tags`)."""


@stops(
    9,
    "sync.failed",
    "the ledger repair errored and SYNC_ON_ERROR=fail, or the Drizzle 1.0 upgrade of the ledger errored (always fatal)",
)
class SyncFailed(EntrypointError):
    """The ledger sync itself errored and SYNC_ON_ERROR=fail."""


@stops(10, "lock.not_held", "the advisory lock cannot be trusted: the URL goes through a connection pooler")
class LockNotHeld(EntrypointError):
    """The advisory lock is not held by our session (a connection pooler)."""


@stops(12, "status.not_clean", "`status`, or the start gate (--require-migrated): a migration is pending, drifted, out "
       "of order, or a row is unknown")  # fmt: skip
class StatusNotClean(EntrypointError):
    """`status` or the gate: something is pending, drifted, out of order or unknown (facts: `summary`)."""


@stops(13, "verify.failed", "`verify` only: a ledger check failed or a schema object a migration created is missing")
class VerifyFailed(EntrypointError):
    """`verify` only: a ledger check failed or a schema object is missing."""


@stops(14, "guard.violated", "a guard query's result changed; the migrations were rolled back, except what the line "
       "names as committed on its own (outside a transaction, or by a file's own COMMIT)")  # fmt: skip
class GuardViolated(EntrypointError):
    """A guard query's result changed across the migrations (facts: `guard`, `before`, `after`)."""


@stops(15, "backup.failed", "BACKUP_DIR or BACKUP_URL is set and the backup failed, could not be uploaded or could not "
       "be checked; nothing was migrated")  # fmt: skip
class BackupFailed(EntrypointError):
    """The backup could not be taken, uploaded or checked; nothing was migrated."""


@stops(16, "db.refused", "the database refused what the run needed: a missing privilege, a read-only server or role, a "
       "cancelled statement; nothing was changed by it")  # fmt: skip
class DatabaseRefused(EntrypointError):
    """An operator's problem on the database side (facts: `sqlstate`)."""


@stops(19, "lint.failed", "`lint` only: a finding at or above --fail-on (default warning)")
class LintFailed(EntrypointError):
    """`lint` only: findings at or above the chosen severity (facts: `count`)."""


@stops(20, "ddl.refused", "DDL_POLICY=refuse and a pending statement locks, rewrites or breaks; nothing was changed")
class DdlRefused(EntrypointError):
    """The DDL lint found what DDL_POLICY=refuse forbids, before any change (facts: `count`)."""


@stops(
    17,
    "baseline.refused",
    "`baseline` only: the ledger already has rows (the deploy's sync repairs them); nothing changed",
)
class BaselineRefused(EntrypointError):
    """`baseline` adopts only a database whose ledger is missing or empty (facts: `rows`)."""


@stops(
    18,
    "baseline.nothing",
    "`baseline` (or BASELINE_ON_EMPTY=1): not even the first migration's schema is there to record, or (BASELINE_ON_"
    "EMPTY) the migrations after what it would record create objects that already exist; nothing changed",
)
class NothingToBaseline(EntrypointError):
    """No prefix of the journal is proven present: nothing was recorded (facts: `tag`, `stop`)."""


@stops(22, "restore.failed", "`restore` only: the dump could not be fetched, read or restored, or the restore was not "
       "confirmed; the database was not changed (pg_restore runs in one transaction)")  # fmt: skip
class RestoreFailed(EntrypointError):
    """`restore` did not restore: a missing or unreadable dump, a failed pg_restore, no confirmation."""


@stops(23, "restore.unchecked", "`restore` only: the dump was restored, but a guard, verify or another step failed "
       "afterwards; the database is the restored one")  # fmt: skip
class RestoreUnchecked(EntrypointError):
    """The restore committed, but what came after it (guards, verify's schema evidence, a cleanup) failed."""


@stops(24, "rollback.refused", "`rollback` only: refused before any change: a statement with no safe inverse, data "
       "that would be lost without --allow-data-loss, a ledger not in step, or a rollback drizzle-orm would not "
       "re-apply; nothing changed")  # fmt: skip
class RollbackRefused(EntrypointError):
    """`rollback` planned nothing it could run safely; nothing was changed (facts: `reason`)."""


@stops(25, "rollback.failed", "`rollback` only: a reversing statement failed; the migrations reversed before it stay "
       "reversed (the line names them), the failing one was rolled back unless its reversal runs outside a "
       "transaction")  # fmt: skip
class RollbackFailed(EntrypointError):
    """A reversing statement failed (facts: `tag`, `statement`, `statements`, `sqlstate`, `kept`)."""


@stops(21, "run.deadline", "DEPLOY_DEADLINE passed before the app started (or during a rollback): the running "
       "statement was cancelled, rolled back, the lock released; the ❌ line says what this run kept")  # fmt: skip
class DeadlineExceeded(EntrypointError):
    """DEPLOY_DEADLINE passed before the migrations were done (facts: `deadline_s`, `kept`)."""


@stops(26, "migrate.plan_changed", "a migration an earlier deploy stopped between its online parts no longer matches "
       "its stored plan (its file changed) or the catalogue (what a committed part did is gone); nothing more was "
       "applied")  # fmt: skip
class PlanChanged(EntrypointError):
    """A migration applied in part cannot be resumed as stored (facts: `tag`)."""


@stops(70, "entrypoint.bug", "a bug in entrypoint (ENTRYPOINT_DEBUG=1 shows the traceback)")
class InternalError(EntrypointError):
    """A bug in entrypoint itself (EX_SOFTWARE)."""


@stops(126, "launch.not_executable", "the app command is not executable")
class CommandNotExecutable(EntrypointError):
    """The app command exists but cannot be executed."""


@stops(127, "launch.not_found", "the app command was not found")
class CommandNotFound(EntrypointError):
    """The app command is not on PATH."""


@stops(130, "run.interrupted", "SIGINT before the app started: the running statement was cancelled, rolled back")
@stops(143, "run.interrupted", "SIGTERM before the app started: likewise")
class Interrupted(EntrypointError):
    """SIGTERM or SIGINT arrived before the app was started: 128 + the signal's number (facts: `signal`)."""

    def __init__(self, template: str, **facts: object) -> None:
        super().__init__(template, **facts)
        self.exit_code = 128 + int(str(facts["signal"]))


@stops(141, "run.output_closed", "standard output was closed (piped into `head`…): stopped where it was, rolled back")
class OutputClosed(EntrypointError):
    """Our standard output went away: nobody can read a line any more, so this one is never printed."""
