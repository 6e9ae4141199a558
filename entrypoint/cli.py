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
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from entrypoint import config, errors, logs

if TYPE_CHECKING:
    from entrypoint.commands import Help
from entrypoint.launch import SignalReceived, install_signal_handlers, interrupted

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


def _parser(command: str, help_: Help | None = None, *, document: bool = True) -> argparse.ArgumentParser:
    prog = "python -m entrypoint" + ("" if command == config.DEPLOY else f" {command}")
    description, success, codes = (
        (help_.description, help_.success, (*OPERATOR_CODES, *help_.codes))
        if help_
        else (
            DEPLOY_DESCRIPTION,
            SUCCESS,
            (),
        )
    )
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


DEPLOY_DESCRIPTION = (
    "Sync the Drizzle ledger, apply pending migrations under an advisory lock, then exec COMMAND "
    "(with no COMMAND, exit 0 after migrating); with --require-migrated, only check that nothing is pending, then "
    "exec COMMAND. Commands: status, verify, lint, baseline, restore, rollback "
    "(see `python -m entrypoint COMMAND --help`)."
)
# Any command that reads the database can meet these: settings, folder, connection, a refused read,
# a bug, a signal, a closed stdout.
OPERATOR_CODES = (2, 3, 4, 16, 70, 130, 141, 143)


def deploy_parser() -> argparse.ArgumentParser:
    """The main command's parser; its help lists every setting and exit code."""
    parser = _parser(config.DEPLOY)
    parser.add_argument("--version", action=_Version, nargs=0, help="print the version and exit 0")
    parser.add_argument(
        "command", nargs=argparse.REMAINDER, help="the app to exec after migrating, e.g. node dist/src/main"
    )
    return parser


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
    from entrypoint.deploy import session  # the database stack is imported only once argv is valid

    if app and not settings.dry_run:
        _check_command(app)
    session.start(settings, app)
    return 0


def _gate(namespace: argparse.Namespace, app: list[str]) -> int:
    """--require-migrated: exec the app only when the database is in step; never migrate.

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
    from entrypoint.commands import status  # the read-only path: no lock, no applying code

    status.gate(settings, app)
    return 0


class _Report(Protocol):
    def document(self) -> dict[str, Any]: ...
    def failure(self) -> errors.EntrypointError | None: ...


def _answer(as_json: bool, report: _Report, show: Callable[[], None]) -> int:
    """A read-only command's answer: its document on stdout, or its lines and then its one ❌ line; the code."""
    failure = report.failure()
    if as_json:
        sys.stdout.write(json.dumps(report.document(), ensure_ascii=False, indent=2) + "\n")
        return failure.exit_code if failure else 0
    show()
    if failure:
        raise failure
    return 0


def _status(args: list[str]) -> int:
    from entrypoint.commands import status

    namespace = _parser(config.STATUS, status.HELP).parse_args(args)
    report = status.run(_load(config.STATUS, namespace, to_stderr=namespace.json))
    return _answer(namespace.json, report, lambda: status.show(report))


def _verify(args: list[str]) -> int:
    from entrypoint.commands import verify

    namespace = _parser(config.VERIFY, verify.HELP).parse_args(args)
    report = verify.run(_load(config.VERIFY, namespace, to_stderr=namespace.json))
    return _answer(namespace.json, report, lambda: verify.show(report))


def _lint(args: list[str]) -> int:
    from entrypoint.commands import lint

    parser = _parser(config.LINT, lint.HELP)
    parser.add_argument("--from", dest="start", metavar="TAG", help="lint this migration and the later ones")
    parser.add_argument(
        "--fail-on",
        choices=("note", "warning", "danger"),
        default="warning",
        help="exit 19 on findings this severe or worse (default warning)",
    )
    namespace = parser.parse_args(args)
    settings = _load(config.LINT, namespace, to_stderr=namespace.json)
    report = lint.run(settings, start=namespace.start, fail_on=namespace.fail_on)
    return _answer(namespace.json, report, lambda: lint.show(report))


def _baseline(args: list[str]) -> int:
    from entrypoint.commands import baseline

    namespace = _parser(config.BASELINE, baseline.HELP, document=False).parse_args(args)
    baseline.run(_load(config.BASELINE, namespace, to_stderr=False))
    return 0


def _restore(args: list[str]) -> int:
    from entrypoint.commands import restore

    parser = _parser(config.RESTORE, restore.HELP, document=False)
    parser.add_argument("source", metavar="SOURCE", help="a pg_dump -Fc file, or s3://bucket/key")
    parser.add_argument("--yes", action="store_true", help="restore without asking (required off a terminal)")
    namespace = parser.parse_args(args)
    restore.run(_load(config.RESTORE, namespace, to_stderr=False), namespace.source, yes=namespace.yes)
    return 0


def _rollback(args: list[str]) -> int:
    from entrypoint.commands import rollback

    parser = _parser(config.ROLLBACK, rollback.HELP, document=False)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--to", metavar="TAG", help="reverse every applied migration after TAG (TAG stays)")
    target.add_argument("--last", metavar="N", type=int, help="reverse the N newest applied migrations")
    parser.add_argument("--yes", action="store_true", help="reverse without asking (required off a terminal)")
    parser.add_argument(
        "--allow-data-loss",
        action="store_true",
        help="drop rows or values a step would lose, after a backup (BACKUP_DIR or BACKUP_URL)",
    )
    namespace = parser.parse_args(args)
    rollback.run(
        _load(config.ROLLBACK, namespace, to_stderr=False),
        to=namespace.to,
        last=namespace.last,
        yes=namespace.yes,
        allow_data_loss=namespace.allow_data_loss,
    )
    return 0


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    config.STATUS: _status,
    config.VERIFY: _verify,
    config.LINT: _lint,
    config.BASELINE: _baseline,
    config.RESTORE: _restore,
    config.ROLLBACK: _rollback,
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


def _guarded(args: list[str], *, debug: bool) -> int:
    command = args[0] if args and args[0] in COMMANDS else None
    try:
        return COMMANDS[command](args[1:]) if command else _deploy(args)
    except errors.EntrypointError as error:
        return _report(error)
    except SignalReceived as received:  # before a command took charge of saying what it left behind
        return _report(interrupted(received.signum, "nothing had started, so nothing was changed"))
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
