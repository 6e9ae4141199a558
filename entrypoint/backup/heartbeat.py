"""A line every HEARTBEAT_INTERVAL while the backup or `restore` waits on something slow: pg_dump, the S3 store.

The migration lock is held meanwhile, and every other deploy waits for it: a wait
nobody can see looks like a hang. A daemon thread prints `⏱️  Backup: still … after
Ns` at each interval until the wait is over; the wait itself stays bounded by its
own timeouts (S3_TIMEOUT) and by DEPLOY_DEADLINE.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from entrypoint.errors import Untrusted
from entrypoint.logs import get_logger


@contextmanager
def waiting(doing: str, every: float) -> Iterator[None]:
    """While the block runs, a `backup.waiting` line every `every` seconds saying it is still `doing`."""
    done = threading.Event()
    started = time.monotonic()

    def beat() -> None:
        while not done.wait(every):
            elapsed = round(time.monotonic() - started)
            get_logger().info("backup.waiting", doing=Untrusted(doing), elapsed_s=elapsed)

    thread = threading.Thread(target=beat, name="backup-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=1)
