"""Every way a run can stop, each with its exit code and the line an operator reads.

The CLI catches `EntrypointError` and nothing else on purpose: anything else is a
bug, reported as `InternalError` without a traceback unless `ENTRYPOINT_DEBUG=1`.
Exit codes are part of the public contract (README, `--help`): never reuse one
for a different failure class, never change one.
"""

from __future__ import annotations


class EntrypointError(Exception):
    """A failure the operator can act on: `message` says what happened and what to do."""

    exit_code = 1
    event = "entrypoint.failed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def fields(self) -> dict[str, object]:
        """Structured facts for JSON logs, beside the human message."""
        return {}


class UsageError(EntrypointError):
    """Bad flags or settings: nothing was attempted."""

    exit_code = 2
    event = "config.invalid"


class JournalError(EntrypointError):
    """The migrations folder cannot be read the way drizzle-orm reads it."""

    exit_code = 3
    event = "journal.invalid"

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path

    def fields(self) -> dict[str, object]:
        return {"path": self.path}


class DatabaseUnreachable(EntrypointError):
    """No connection could be made (or kept) within CONNECT_TIMEOUT."""

    exit_code = 4
    event = "db.unreachable"

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate

    def fields(self) -> dict[str, object]:
        return {"sqlstate": self.sqlstate}


class LockTimeout(EntrypointError):
    """Another deploy held the migration lock for longer than LOCK_WAIT_TIMEOUT."""

    exit_code = 5
    event = "lock.timeout"

    def __init__(self, message: str, *, holder_pid: int | None) -> None:
        super().__init__(message)
        self.holder_pid = holder_pid

    def fields(self) -> dict[str, object]:
        return {"holder_pid": self.holder_pid}


class MigrationFailed(EntrypointError):
    """A migration statement failed; its transaction was rolled back."""

    exit_code = 6
    event = "migrate.failed"

    def __init__(
        self,
        message: str,
        *,
        tag: str,
        statement: int,
        statements: int,
        sqlstate: str | None,
        server_message: str,
    ) -> None:
        super().__init__(message)
        self.tag = tag
        self.statement = statement
        self.statements = statements
        self.sqlstate = sqlstate
        self.server_message = server_message

    def fields(self) -> dict[str, object]:
        return {
            "tag": self.tag,
            "statement": self.statement,
            "statements": self.statements,
            "sqlstate": self.sqlstate,
            "error": self.server_message,
        }


class LedgerRefused(EntrypointError):
    """The ledger cannot be repaired safely; nothing was changed."""

    exit_code = 7
    event = "sync.refused"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason

    def fields(self) -> dict[str, object]:
        return {"reason": self.reason}


class OutOfOrder(EntrypointError):
    """A journal entry older than the newest applied one was never applied."""

    exit_code = 8
    event = "migrate.out_of_order"

    def __init__(self, message: str, *, tags: list[str]) -> None:
        super().__init__(message)
        self.tags = tags

    def fields(self) -> dict[str, object]:
        return {"tags": self.tags}


class SyncFailed(EntrypointError):
    """The ledger sync itself errored and SYNC_ON_ERROR=fail."""

    exit_code = 9
    event = "sync.failed"


class LockNotHeld(EntrypointError):
    """The advisory lock is not held by our session (a transaction-mode pooler)."""

    exit_code = 10
    event = "lock.not_held"


class StatusNotClean(EntrypointError):
    """`status` only: something is pending, drifted, out of order or unknown."""

    exit_code = 12
    event = "status.not_clean"


class VerifyFailed(EntrypointError):
    """`verify` only: a ledger check failed or a schema object is missing."""

    exit_code = 13
    event = "verify.failed"


class GuardViolated(EntrypointError):
    """A guard query's result changed across the migrations; they were rolled back."""

    exit_code = 14
    event = "guard.violated"

    def __init__(self, message: str, *, guard: str, before: str, after: str) -> None:
        super().__init__(message)
        self.guard = guard
        self.before = before
        self.after = after

    def fields(self) -> dict[str, object]:
        return {"guard": self.guard, "before": self.before, "after": self.after}


class BackupFailed(EntrypointError):
    """BACKUP_DIR is set and the backup could not be taken or checked; nothing was migrated."""

    exit_code = 15
    event = "backup.failed"


class CommandNotExecutable(EntrypointError):
    """The app command exists but cannot be executed."""

    exit_code = 126
    event = "launch.not_executable"


class CommandNotFound(EntrypointError):
    """The app command is not on PATH."""

    exit_code = 127
    event = "launch.not_found"


class Interrupted(EntrypointError):
    """SIGTERM or SIGINT arrived before the app was started: 128 + signal number."""

    event = "run.interrupted"

    def __init__(self, message: str, *, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum

    def fields(self) -> dict[str, object]:
        return {"signal": self.signum}


class InternalError(EntrypointError):
    """A bug in entrypoint itself (EX_SOFTWARE)."""

    exit_code = 70
    event = "entrypoint.bug"
