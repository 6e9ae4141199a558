"""`python -m entrypoint [OPTIONS] [--] [COMMAND [ARG...]]`: argv in, exit code out.

The CLI only translates: flags to `Settings`, an `EntrypointError` to its one
`❌` line and exit code, success to an exec of the app. Tracebacks appear only
with ENTRYPOINT_DEBUG=1.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import shutil
import signal
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from entrypoint import config, errors, logs
from entrypoint.launch import SignalReceived, exec_command, install_signal_handlers

EXIT_CODES = (
    (0, "success: migrated (and the app was exec'd, so its own code is what the platform sees)"),
    (errors.UsageError.exit_code, "bad flags or settings (e.g. no DATABASE_URL)"),
    (errors.JournalError.exit_code, "the migrations folder is broken (journal, missing or non-UTF-8 file)"),
    (errors.DatabaseUnreachable.exit_code, "the database is unreachable or refused the connection"),
    (errors.LockTimeout.exit_code, "another deploy held the migration lock past LOCK_WAIT_TIMEOUT"),
    (errors.MigrationFailed.exit_code, "a migration failed; everything was rolled back"),
    (errors.LedgerRefused.exit_code, "the ledger cannot be repaired safely; nothing changed"),
    (errors.OutOfOrder.exit_code, "an older migration was never applied (see ALLOW_OUT_OF_ORDER)"),
    (errors.SyncFailed.exit_code, "the ledger repair errored and SYNC_ON_ERROR=fail"),
    (errors.LockNotHeld.exit_code, "the advisory lock did not hold (a transaction-mode pooler)"),
    (errors.StatusNotClean.exit_code, "`status` only: something is pending, drifted or unknown"),
    (errors.VerifyFailed.exit_code, "`verify` only: a ledger check failed or a schema object is missing"),
    (errors.GuardViolated.exit_code, "a guard query's result changed; the migrations were rolled back"),
    (errors.BackupFailed.exit_code, "BACKUP_DIR is set and the backup failed; nothing was migrated"),
    (errors.InternalError.exit_code, "a bug in entrypoint; rerun with ENTRYPOINT_DEBUG=1 and report it"),
    (errors.CommandNotExecutable.exit_code, "the app command is not executable"),
    (errors.CommandNotFound.exit_code, "the app command was not found"),
    (130, "interrupted by SIGINT before the app started; rolled back, lock released"),
    (141, "standard output was closed (e.g. piped into head): stopped where it was, rolled back"),
    (143, "interrupted by SIGTERM before the app started; rolled back, lock released"),
)

ENVIRONMENT = """\
settings (a flag wins over its environment variable):
  MIGRATION_DATABASE_URL, then DATABASE_URL   where to migrate (required)
  MIGRATIONS_DIR        the drizzle-kit folder (default ./drizzle, else ./dist/drizzle)
  MIGRATIONS_SCHEMA     ledger schema (default drizzle)
  MIGRATIONS_TABLE      ledger table (default __drizzle_migrations)
  LOG_FORMAT            console or json (default console)
  CONNECT_TIMEOUT       seconds to keep retrying an unreachable database (default 60)
  DDL_LOCK_TIMEOUT      lock_timeout for migration statements, retried with backoff (default 5s)
  STATEMENT_TIMEOUT     statement_timeout for migration statements (default 0 = off)
  LOCK_WAIT_TIMEOUT     seconds to wait for another deploy's migration lock (default 600)
  MIGRATION_ATTEMPTS    tries of the migration transaction on transient errors (default 5)
  SYNC_ON_ERROR         continue or fail when the ledger repair errors (default continue)
  ALLOW_OUT_OF_ORDER    1 to apply never-applied migrations older than the newest applied
  MIGRATION_GUARDS      queries (one a line) whose results must not change across the migrations
  BACKUP_DIR            pg_dump -Fc into this folder first, when migrations are pending (default off)
  PG_DUMP               the pg_dump to use (default: pg_dump on PATH)
  ENTRYPOINT_DEBUG      1 to print tracebacks
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise errors.UsageError(f"❌ {message[0].upper()}{message[1:]}: see `{self.prog} --help`")


BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a pipeline whose reader went away

# Subcommands: the first argument picks a module whose `main(argv) -> int` runs it.
SUBCOMMANDS = {"status": "entrypoint.status", "verify": "entrypoint.verify"}


def new_parser(prog: str, description: str, epilog: str | None = None) -> argparse.ArgumentParser:
    """A parser whose errors become `UsageError` (one ❌ line, exit 2) instead of a usage dump."""
    return _Parser(
        prog=prog,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )


def add_settings_arguments(parser: argparse.ArgumentParser, *, deploying: bool = True) -> None:
    """The flags behind `Settings`; the read-only commands leave out those that only a deploy uses."""
    add = parser.add_argument
    add("--database-url", metavar="URL", help="overrides MIGRATION_DATABASE_URL / DATABASE_URL")
    add("--migrations-dir", metavar="DIR")
    add("--migrations-schema", metavar="NAME")
    add("--migrations-table", metavar="NAME")
    add("--log-format", choices=("console", "json"))
    add("--connect-timeout", metavar="SECONDS")
    if not deploying:
        return
    add("--ddl-lock-timeout", metavar="DURATION")
    add("--statement-timeout", metavar="DURATION")
    add("--lock-wait-timeout", metavar="SECONDS")
    add("--migration-attempts", metavar="N")
    add("--sync-on-error", choices=("continue", "fail"))
    add("--allow-out-of-order", action="store_true", default=None)
    add("--guard", metavar="SQL", action="append", help="a query whose result must not change (repeatable)")
    add("--backup-dir", metavar="DIR", help="pg_dump -Fc into DIR before applying pending migrations")
    add("--pg-dump", metavar="PATH", help="the pg_dump to use for --backup-dir")


def operator_parser(command: str, description: str, codes: str, shows: str) -> argparse.ArgumentParser:
    """The parser of a read-only operator command (`status`, `verify`): its codes, `--json`, the settings."""
    parser = new_parser(
        f"python -m entrypoint {command}",
        description,
        f"exit codes:\n{codes}"
        "  2, 3, 4  bad settings, a broken migrations folder, an unreachable database (as the main command)\n\n"
        "See docs/operator-commands.md for the details and the --json schema.",
    )
    parser.add_argument("--json", action="store_true", help=f"print one JSON document instead of the {shows}")
    add_settings_arguments(parser, deploying=False)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The main command's parser; its help lists every setting and exit code."""
    codes = "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES)
    parser = new_parser(
        "python -m entrypoint",
        "Sync the Drizzle ledger, apply pending migrations under an advisory lock, "
        "then exec COMMAND (with no COMMAND, exit 0 after migrating). "
        f"Subcommands: {', '.join(sorted(SUBCOMMANDS))} (see `python -m entrypoint SUBCOMMAND --help`).",
        f"{ENVIRONMENT}\nexit codes:\n{codes}",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the ledger repairs and pending migrations; change nothing",
    )
    add_settings_arguments(parser)
    parser.add_argument(
        "command", nargs=argparse.REMAINDER, help="the app to exec after migrating, e.g. node dist/src/main"
    )
    return parser


def _check_command(command: Sequence[str]) -> None:
    """Fail before migrating if the app cannot be exec'd, so a typo never half-deploys."""
    program = command[0]
    if "/" in program:
        path = Path(program)
        if not path.exists():
            raise errors.CommandNotFound(
                f"❌ App command not found: {program!r}. Nothing was migrated; fix the start command"
            )
        if not path.is_file() or not shutil.which(str(path)):
            raise errors.CommandNotExecutable(
                f"❌ App command {program!r} is not executable. Nothing was migrated; check its permissions"
            )
    elif shutil.which(program) is None:
        raise errors.CommandNotFound(
            f"❌ App command not found: {program!r} is not on PATH. Nothing was migrated; fix the start command"
        )


def _run(argv: Sequence[str]) -> int:
    namespace = build_parser().parse_args(argv)
    from entrypoint import deploy  # the database stack is imported only once argv is valid

    command = list(namespace.command)
    if command and command[0] == "--":
        command = command[1:]
    namespace.command = command
    settings = config.load(vars(namespace))
    logs.configure(settings.log_format, settings.secrets())
    if settings.command and not settings.dry_run:
        _check_command(settings.command)
    deploy.run(settings)
    if settings.dry_run:
        return 0
    if not settings.command:
        logs.get_logger().info("launch.no_command")
        return 0
    exec_command(settings.command)
    return 0  # unreachable: exec replaced the process


def main(argv: Sequence[str] | None = None) -> int:
    """Run the entrypoint; returns the exit code (or never returns, having exec'd the app)."""
    args = list(sys.argv[1:] if argv is None else argv)
    logs.configure(config.early_log_format(args), config.early_secrets(args))
    install_signal_handlers()
    debug = config.debug_enabled()
    try:
        return _guarded(args, debug)
    except BrokenPipeError:
        # Our output was closed (e.g. piped into `head`): nobody can read a ❌ line any more, so leave
        # quietly, like a shell pipeline does, after the context managers rolled back and unlocked.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE


def _guarded(args: list[str], debug: bool) -> int:
    try:
        if args and args[0] in SUBCOMMANDS:
            subcommand: Any = importlib.import_module(SUBCOMMANDS[args[0]])
            return int(subcommand.main(args[1:]))
        return _run(args)
    except errors.EntrypointError as error:
        return _report(error)
    except SignalReceived as received:
        name = signal.Signals(received.signum).name
        outcome = (
            "read-only, nothing was changed"
            if args and args[0] in SUBCOMMANDS
            else "the running migration was cancelled and rolled back, and the lock released. Redeploy when ready"
        )
        return _report(
            errors.Interrupted(f"❌ Stopped by {name} before the app started: {outcome}", signum=received.signum)
        )
    except BrokenPipeError:
        raise
    except Exception as bug:  # noqa: BLE001 - the one place that turns a bug into a clean exit
        if debug:
            traceback.print_exc()
        return _report(
            errors.InternalError(
                f"❌ Internal error ({type(bug).__name__}): {bug}. Rerun with ENTRYPOINT_DEBUG=1 and report it"
            )
        )


def _report(error: errors.EntrypointError) -> int:
    logs.get_logger().error(error.event, message=error.message, exit_code=error.exit_code, **error.fields())
    return error.exit_code
