"""DEPLOY_DEADLINE's timer: it interrupts the main thread when due, and is always gone afterwards."""

from __future__ import annotations

import signal
import time

import pytest

from entrypoint.deploy.deadline import Deadline, DeadlinePassed


def test_the_deadline_interrupts_a_wait_and_leaves_no_timer() -> None:
    """A sleep past the deadline raises DeadlinePassed; then no interval timer is left to reach the app."""
    before = signal.getsignal(signal.SIGALRM)
    deadline = Deadline(0.05)
    started = time.monotonic()
    with pytest.raises(DeadlinePassed) as caught, deadline.armed():
        time.sleep(5)
    assert time.monotonic() - started < 2
    assert caught.value.seconds == 0.05
    assert deadline.passed
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is before


def test_a_run_within_the_deadline_is_untouched() -> None:
    """Finishing first: nothing raised, the timer disarmed; 0 means no deadline at all."""
    with Deadline(5).armed():
        time.sleep(0.01)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    never = Deadline(0)
    assert never.left() == float("inf")
    with never.armed():
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
