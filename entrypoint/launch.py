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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from entrypoint.errors import CommandNotExecutable, CommandNotFound, Interrupted, Untrusted
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


def _raise_signal(signum: int, _frame: object) -> None:
    raise SignalReceived(signum)


def install_signal_handlers() -> None:
    """Turn SIGTERM and SIGINT into `SignalReceived` until the exec."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _raise_signal)


@contextmanager
def stopping_says(outcome: str) -> Iterator[None]:
    """A SIGTERM/SIGINT inside the block stops the run with one ❌ line saying `outcome` (what it left)."""
    try:
        yield
    except SignalReceived as received:
        raise interrupted(received.signum, outcome) from None


def interrupted(signum: int, outcome: str) -> Interrupted:
    """The ❌ line of a run a signal stopped before the app started, with what it left behind."""
    return Interrupted(
        "❌ Stopped by {name} before the app started: {outcome}",
        name=signal.Signals(signum).name,
        outcome=outcome,
        signal=signum,
    )
