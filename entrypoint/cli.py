"""`python -m entrypoint [COMMAND] [OPTIONS] [--] [APP [ARG...]]`: argv in, exit code out.

The CLI only translates. It owns every parser (built from `config.SETTINGS`),
the switch that sends lines to stderr when `--json` keeps stdout for one
document, the mapping of a command's report to its exit code, and of an
`EntrypointError` to its one `❌` line. Success execs the app. Tracebacks appear
only with ENTRYPOINT_DEBUG=1. Nothing but `__main__` imports this module.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from entrypoint import config, errors, logs
from entrypoint.launch import SignalAfterMigrating, SignalReceived, exec_command, install_signal_handlers

SUCCESS = "migrated (and the app was exec'd: from then on the code is the app's)"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise errors.UsageError(
            "❌ {problem}: see `{prog} --help`",
            problem=errors.Untrusted(message[0].upper() + message[1:]),  # it echoes argv, which may hold a URL
            prog=self.prog,
        )


def _settings_help(command: str) -> str:
    lines = ["settings (a flag wins over its environment variable, which wins over the default):"]
    for setting in config.settings_of(command):
        where = ", then ".join(setting.env) or str(setting.flag)
        default = setting.shown_default or setting.default
        lines.append(f"  {where:<40} {setting.help} (default: {default})")
    return "\n".join(lines)


def exit_code_lines(success: str = SUCCESS, codes: Sequence[int] = ()) -> str:
    """The exit-code table, from the error classes' own declarations (only `codes`, when given)."""
    rows = [(0, success)]
    rows += [
        (code, meaning) for code, (_, meaning) in sorted(errors.BY_EXIT_CODE.items()) if not codes or code in codes
    ]
    return "\n".join(f"  {code:<4} {meaning}" for code, meaning in rows)


def _add_settings(parser: argparse.ArgumentParser, command: str) -> None:
    for setting in config.settings_of(command):
        if setting.flag is None:
            continue
        if setting.kind == "switch":
            parser.add_argument(setting.flag, dest=setting.dest, action="store_true", default=None, help=setting.help)
        elif setting.kind == "repeatable":
            parser.add_argument(
                setting.flag, dest=setting.dest, action="append", metavar=setting.metavar, help=setting.help
            )
        else:
            parser.add_argument(
                setting.flag,
                dest=setting.dest,
                metavar=setting.metavar,
                choices=setting.choices or None,
                help=setting.help,
            )


def _parser(
    command: str, description: str, success: str = SUCCESS, codes: Sequence[int] = (), *, document: bool = True
) -> argparse.ArgumentParser:
    prog = "python -m entrypoint" + ("" if command == config.DEPLOY else f" {command}")
    parser = _Parser(
        prog=prog,
        description=description,
        epilog=f"{_settings_help(command)}\n\nexit codes:\n{exit_code_lines(success, codes)}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    _add_settings(parser, command)
    if command != config.DEPLOY and document:
        parser.add_argument("--json", action="store_true", help="print one JSON document on stdout; lines on stderr")
    return parser


def version() -> str:
    """The package's version: the installed distribution's, else pyproject.toml's (a checkout run in place)."""
    from importlib import metadata

    try:
        return metadata.version("entrypoint")
    except metadata.PackageNotFoundError:
        import tomllib

        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"])


class _Version(argparse.Action):
    """`--version`: looked up only when asked, so a start never pays for importlib.metadata."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        sys.stdout.write(f"entrypoint {version()}\n")
        parser.exit()


def deploy_parser() -> argparse.ArgumentParser:
    """The main command's parser; its help lists every setting and exit code."""
    parser = _parser(
        config.DEPLOY,
        "Sync the Drizzle ledger, apply pending migrations under an advisory lock, then exec COMMAND "
        "(with no COMMAND, exit 0 after migrating); with --require-migrated, only check that nothing is pending, then "
        "exec COMMAND. Commands: status, verify, lint, baseline, restore "
        "(see `python -m entrypoint COMMAND --help`).",
    )
    parser.add_argument("--version", action=_Version, nargs=0, help="print the version and exit 0")
    parser.add_argument(
        "command", nargs=argparse.REMAINDER, help="the app to exec after migrating, e.g. node dist/src/main"
    )
    return parser


# Any command that reads the database can meet these: settings, folder, connection, a refused read,
# a bug, a signal, a closed stdout.
_OPERATOR_CODES = (2, 3, 4, 16, 70, 130, 141, 143)
DESCRIPTIONS = {
    config.LINT: (
        (
            "Lint the migrations for what locks, rewrites or breaks a table while the old release serves "
            "(CREATE INDEX without CONCURRENTLY, constraints without NOT VALID, SET NOT NULL, type changes, "
            "volatile defaults, drops and renames...). With no database: every migration, offline. With one: the "
            "pending migrations, weighed by each table's live size. Read-only. See docs/lint.md."
        ),
        "no finding at or above --fail-on",
        (*_OPERATOR_CODES, 19),
    ),
    config.STATUS: (
        (
            "Show each migration of the journal against the ledger: applied, pending, drifted id, hash mismatch "
            "or out of order, then the ledger rows no migration accounts for. Read-only: creates nothing, takes "
            "no lock, changes nothing. See docs/operator-commands.md."
        ),
        "every migration applied and the ledger in step",
        (*_OPERATOR_CODES, errors.StatusNotClean.exit_code),
    ),
    config.VERIFY: (
        (
            "Check a deployed database against the migrations folder: the ledger (every migration recorded once "
            "with its hash and `when`, ids without gaps from 0 or 1, no unknown rows) and the schema (every table, "
            "column, index, enum type and value, and named constraint the applied migrations create and do not "
            "later drop, found in the catalog). Read-only. See docs/operator-commands.md."
        ),
        "every check passed",
        (*_OPERATOR_CODES, errors.VerifyFailed.exit_code),
    ),
    config.BASELINE: (
        (
            "Adopt a database drizzle never migrated (made with `drizzle-kit push` or by hand): with the ledger "
            "missing or empty, record as applied the longest prefix of the journal whose every table, column, "
            "index, enum and constraint is in the catalog (and whose renamed or dropped objects are gone), with "
            "drizzle-orm's hash and created_at, under the migration lock, audited with reason `baseline`. A "
            "migration nothing can be checked for (data, functions) stops the prefix unless --through covers it. "
            "See docs/operator-commands.md."
        ),
        "the migrations the schema proves were recorded (with --dry-run: shown, nothing changed)",
        (
            *_OPERATOR_CODES,
            errors.LockTimeout.exit_code,
            errors.LockNotHeld.exit_code,
            errors.BaselineRefused.exit_code,
            errors.NothingToBaseline.exit_code,
        ),
    ),
    config.RESTORE: (
        (
            "Restore SOURCE (a pg_dump -Fc file, or the s3://bucket/key the backup line printed) into the database: "
            "the runbook's rollback. Under the migration lock it shows the dump and the ledger now and after, asks "
            "for confirmation (--yes; required when standard input is not a terminal), runs pg_restore --clean "
            "--if-exists --single-transaction --no-owner (pg_restore beside PG_DUMP, else on PATH), then prints the "
            "guards' results, verify's schema evidence and the ledger it left. --dry-run lists the dump's contents "
            'and the ledgers and changes nothing. See the README\'s "Backups and rollback".'
        ),
        "restored, and the restored schema checked",
        (*_OPERATOR_CODES, 5, 10, errors.RestoreFailed.exit_code, errors.RestoreUnchecked.exit_code),
    ),
}


def _check_command(command: Sequence[str]) -> None:
    """Fail before migrating if the app cannot be exec'd, so a typo never half-deploys."""
    program = errors.Untrusted(command[0])
    if "/" in program:
        path = Path(program)
        if not path.exists():
            raise errors.CommandNotFound(
                "❌ App command not found: {program!r}. Nothing was migrated; fix the start command", program=program
            )
        if not path.is_file() or not shutil.which(str(path)):
            raise errors.CommandNotExecutable(
                "❌ App command {program!r} is not executable. Nothing was migrated; check its permissions",
                program=program,
            )
    elif shutil.which(program) is None:
        raise errors.CommandNotFound(
            "❌ App command not found: {program!r} is not on PATH. Nothing was migrated; fix the start command",
            program=program,
        )


def _load(command: str, namespace: argparse.Namespace, *, to_stderr: bool) -> config.Settings:
    """The command's settings, and the log pipeline set up for them (on stderr when stdout is a document)."""
    stream = sys.stderr if to_stderr else None
    settings = config.load(command, vars(namespace))
    logs.configure(settings.log_format, settings.secrets(), stream=stream)
    return settings


def _deploy(args: list[str]) -> int:
    namespace = deploy_parser().parse_args(args)
    app = list(namespace.command)
    if app and app[0] == "--":
        app = app[1:]
    if namespace.require_migrated or config.early_switch("require_migrated", []):
        return _gate(namespace, app)
    settings = _load(config.DEPLOY, namespace, to_stderr=False)
    from entrypoint import deploy  # the database stack is imported only once argv is valid

    if app and not settings.dry_run:
        _check_command(app)
    deploy.run(settings)
    install_signal_handlers(after_migrating=True)
    if settings.dry_run:
        return 0
    if not app:
        logs.get_logger().info("launch.no_command")
        return 0
    exec_command(app)
    return 0  # unreachable: exec replaced the process


def _gate(namespace: argparse.Namespace, app: list[str]) -> int:
    """--require-migrated: exec the app only when the database is in step; never migrate (the gate module).

    It reads `status`'s settings only: a deploy-only one (DDL_LOCK_TIMEOUT, BACKUP_URL…) set for the
    pre-deploy command cannot stop the start command, which never uses it.
    """
    if namespace.dry_run:
        raise errors.UsageError(
            "❌ --require-migrated migrates nothing already: drop --dry-run (or use `python -m entrypoint status`)"
        )
    settings = _load(config.STATUS, namespace, to_stderr=False)
    if app:
        _check_command(app)
    from entrypoint import gate  # status's read-only path: no lock, no applying code

    gate.run(settings)
    if app:
        exec_command(app)
    return 0


def _document(document: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")


def _answer(
    as_json: bool, document: dict[str, object], show: Callable[[], None], failure: errors.EntrypointError | None
) -> int:
    """A read-only command's answer: its document on stdout, or its lines and then its one ❌ line; the code."""
    if as_json:
        _document(document)
        return failure.exit_code if failure else 0
    show()
    if failure:
        raise failure
    return 0


def _status(args: list[str]) -> int:
    from entrypoint import status

    namespace = _parser(config.STATUS, *DESCRIPTIONS[config.STATUS]).parse_args(args)
    report = status.run(_load(config.STATUS, namespace, to_stderr=namespace.json))
    failure = (
        None
        if report.clean
        else errors.StatusNotClean(
            "❌ Not in step: {summary}. Run `python -m entrypoint --dry-run` to see what the next deploy "
            "would repair and apply",
            summary=report.summary(),
        )
    )
    return _answer(namespace.json, report.document(), lambda: status.show(report), failure)


def _verify(args: list[str]) -> int:
    from entrypoint import verify
    from entrypoint.status import plural

    namespace = _parser(config.VERIFY, *DESCRIPTIONS[config.VERIFY]).parse_args(args)
    report = verify.run(_load(config.VERIFY, namespace, to_stderr=namespace.json))
    failure = (
        None
        if report.ok
        else errors.VerifyFailed(
            "❌ Verification failed: {missing} missing, {failed} failed. Hold the traffic: redeploy, or roll "
            "back from the backup",
            missing=plural(report.missing, "schema object"),
            failed=plural(len(report.problems), "ledger check"),
        )
    )
    return _answer(namespace.json, report.document(), lambda: verify.show(report), failure)


def _lint(args: list[str]) -> int:
    from entrypoint import lint

    parser = _parser(config.LINT, *DESCRIPTIONS[config.LINT])
    parser.add_argument("--from", dest="start", metavar="TAG", help="lint this migration and the later ones")
    parser.add_argument(
        "--fail-on",
        choices=("note", "warning", "danger"),
        default="warning",
        help="exit 19 on findings this severe or worse (default warning)",
    )
    namespace = parser.parse_args(args)
    report = lint.run(_load(config.LINT, namespace, to_stderr=namespace.json), start=namespace.start)
    failing = report.failing(namespace.fail_on)
    failure = (
        errors.LintFailed(
            "❌ {count} DDL lint findings at {severity} or worse: make them safe, allow each one with "
            "`-- entrypoint:allow <rule>` above its statement, or choose --fail-on",
            count=len(failing),
            severity=namespace.fail_on,
        )
        if failing
        else None
    )

    def show() -> None:
        lint.show(report.findings)
        lint.summary(report)

    return _answer(namespace.json, report.document() | {"ok": not failing}, show, failure)


def _baseline(args: list[str]) -> int:
    from entrypoint import baseline

    namespace = _parser(config.BASELINE, *DESCRIPTIONS[config.BASELINE], document=False).parse_args(args)
    settings = _load(config.BASELINE, namespace, to_stderr=False)
    baseline.run(settings)
    return 0


def _restore(args: list[str]) -> int:
    from entrypoint import restore

    parser = _parser(config.RESTORE, *DESCRIPTIONS[config.RESTORE], document=False)
    parser.add_argument("source", metavar="SOURCE", help="a pg_dump -Fc file, or s3://bucket/key")
    parser.add_argument("--yes", action="store_true", help="restore without asking (required off a terminal)")
    namespace = parser.parse_args(args)
    settings = _load(config.RESTORE, namespace, to_stderr=False)
    if not namespace.yes and not settings.dry_run and not sys.stdin.isatty():
        raise errors.UsageError(
            "❌ restore replaces what the dump holds in the database: pass --yes to confirm (standard input is not "
            "a terminal to ask on), or --dry-run to see what it would do; nothing was changed"
        )
    restore.run(settings, namespace.source, confirm=(lambda _: True) if namespace.yes else _ask)
    return 0


def _ask(database: str) -> bool:
    """The question on the terminal, and the operator's answer: only `yes` goes on."""
    logs.get_logger().info("restore.confirm", database=database)
    try:
        return input().strip().lower() == "yes"
    except EOFError:
        return False


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    config.STATUS: _status,
    config.VERIFY: _verify,
    config.LINT: _lint,
    config.BASELINE: _baseline,
    config.RESTORE: _restore,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the entrypoint; returns the exit code (or never returns, having exec'd the app)."""
    args = list(sys.argv[1:] if argv is None else argv)
    # Before the settings exist, lines go out in the asked format, already scrubbed.
    stream = sys.stderr if "--json" in args and args[:1] and args[0] in COMMANDS else None
    logs.configure(config.early_log_format(args), config.early_secrets(args), stream=stream)
    install_signal_handlers()
    try:
        return _guarded(args, debug=config.debug_enabled())
    except BrokenPipeError:
        # Our output was closed (e.g. piped into `head`): nobody can read a ❌ line any more, so leave
        # quietly, like a shell pipeline does, after the context managers rolled back and unlocked.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return errors.OutputClosed.exit_code


def _gating(args: list[str]) -> bool:
    """Whether this run is the read-only start gate.

    A REQUIRE_MIGRATED that is no switch counts as one: the deploy refuses it before changing anything.
    """
    try:
        return config.early_switch("require_migrated", args)
    except errors.UsageError:
        return True


def _guarded(args: list[str], *, debug: bool) -> int:
    command = args[0] if args and args[0] in COMMANDS else None
    try:
        return COMMANDS[command](args[1:]) if command else _deploy(args)
    except errors.EntrypointError as error:
        return _report(error)
    except SignalReceived as received:  # outside the deploy's own session, which says what it left behind
        if command == config.BASELINE:
            outcome = "nothing was recorded (the transaction rolled back), and the lock released"
        elif command or _gating(args):
            outcome = "read-only, nothing was changed"
        elif isinstance(received, SignalAfterMigrating):
            outcome = "the migrations are applied and the lock released; the app was not started. Redeploy to start it"
        else:
            outcome = "nothing had started, so nothing was changed"
        return _report(
            errors.Interrupted(
                "❌ Stopped by {name} before the app started: {outcome}",
                name=signal.Signals(received.signum).name,
                outcome=outcome,
                signal=received.signum,
            )
        )
    except BrokenPipeError:
        raise
    except Exception as bug:  # noqa: BLE001 - the one place that turns a bug into a clean exit
        if debug:
            traceback.print_exc()
        return _report(
            errors.InternalError(
                "❌ Internal error ({kind}): {bug}. Rerun with ENTRYPOINT_DEBUG=1 and report it",
                kind=type(bug).__name__,
                bug=errors.Untrusted(str(bug)),
            )
        )


def _report(error: errors.EntrypointError) -> int:
    logs.get_logger().error(error.event, _template=error.template, exit_code=error.exit_code, **error.facts)
    return error.exit_code
