"""Handing the process over to the app: the only module that execs.

`os.execvp` replaces this process, so the app keeps our PID and receives the
platform's signals directly (tini or Render send SIGTERM to that PID). Output is
flushed first, because exec discards Python's buffers.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
from collections.abc import Sequence

from entrypoint.errors import CommandNotExecutable, CommandNotFound, Untrusted
from entrypoint.logs import get_logger


def exec_command(command: Sequence[str]) -> None:
    """Replace this process with `command`; returns only by raising.

    Raises `CommandNotFound` (exit 127) or `CommandNotExecutable` (exit 126).
    """
    # Untrusted: an app's arguments may carry a URL with its password.
    get_logger().info("launch.exec", command=Untrusted(shlex.join(command)), argv=[Untrusted(a) for a in command])
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)
    try:
        os.execvp(command[0], list(command))  # noqa: S606 - exec, not a shell, is the point
    except FileNotFoundError:
        raise CommandNotFound(
            "❌ App command not found: {program!r}. Migrations are applied; check the start command "
            "(is it installed, and on PATH?)",
            program=Untrusted(command[0]),
        ) from None
    except (PermissionError, OSError) as error:
        raise CommandNotExecutable(
            "❌ Cannot execute the app command {program!r}: {reason}. Migrations are applied; "
            "check the file's execute permission",
            program=Untrusted(command[0]),
            reason=error.strerror,
        ) from None


class SignalReceived(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM/SIGINT before the app starts.

    A KeyboardInterrupt on purpose: psycopg then cancels the running query on
    the server and waits for it, so rollback and lock release follow at once.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class SignalAfterMigrating(SignalReceived):
    """SIGTERM/SIGINT after the migrations were done, before the app was exec'd."""


def _raise_signal(signum: int, _frame: object) -> None:
    raise SignalReceived(signum)


def _raise_after_migrating(signum: int, _frame: object) -> None:
    raise SignalAfterMigrating(signum)


def install_signal_handlers(*, after_migrating: bool = False) -> None:
    """Turn SIGTERM and SIGINT into `SignalReceived` until the exec (`SignalAfterMigrating` once migrated)."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _raise_after_migrating if after_migrating else _raise_signal)
