"""DEPLOY_DEADLINE: stop the run ourselves, cleanly, before the platform kills it mid-statement.

Render gives a deploy 15 minutes to become healthy, then kills it wherever it
is. So when the deadline passes, SIGALRM raises `DeadlinePassed` in the main
thread, wherever the run is: connecting, waiting for the lock, sleeping before
a retry, or waiting on a statement. It is a `KeyboardInterrupt`, like SIGTERM's
`SignalReceived`, so psycopg cancels the running query on the server and waits
for it, at most 5 s: a backend that does not answer (stopped, stuck in the
kernel) gets its connection closed. Then the usual rollbacks and the lock's
release in `finally` run. Should that cleanup itself hang (a ROLLBACK sent to a
server that stopped answering), the alarm fires again every `AGAIN_S` seconds,
each time interrupting whatever waits, until the run is out.

The timer is disarmed before anything else happens: an interval timer survives
`exec`, and SIGALRM's default action would kill the app.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

# After the first alarm, again this often: more than psycopg's 5 s wait for a cancelled query.
AGAIN_S = 15.0


class DeadlinePassed(KeyboardInterrupt):
    """Raised in the main thread when DEPLOY_DEADLINE passes (a KeyboardInterrupt: psycopg cancels the query)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


class Deadline:
    """`seconds` after its creation (0: never), `armed()` raises `DeadlinePassed` in the main thread."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._started = time.monotonic()
        self.passed = False

    def left(self) -> float:
        """Seconds until the deadline (infinite when there is none)."""
        if not self.seconds:
            return float("inf")
        return max(0.0, self.seconds - (time.monotonic() - self._started))

    @contextmanager
    def armed(self) -> Iterator[None]:
        """While the block runs, the alarm is set; it is always disarmed on the way out."""
        if not self.seconds or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGALRM, self._fire)
        signal.setitimer(signal.ITIMER_REAL, max(self.left(), 0.001), AGAIN_S)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    def _fire(self, _signum: int, _frame: object) -> None:
        self.passed = True
        raise DeadlinePassed(self.seconds)
