"""Where a no-op `python -m entrypoint -- COMMAND` spends its time, phase by phase.

    python bench/noop_profile.py OUT.json [--] COMMAND...

Runs `entrypoint.cli.main` exactly as `python -m entrypoint` does, with
DATABASE_URL and MIGRATIONS_DIR from the environment, but first wraps the
functions on the no-op path (cli.main → config.load → logs.configure →
deploy.run → journal.read_journal → database.connect → lock.advisory_lock →
ledger.ensure_and_read → sync.plan_sync → plan.plan_migrations →
launch.exec_command) and psycopg's `Connection.execute` in timers. Just before
the real exec it writes OUT.json: `time.monotonic()` marks (CLOCK_MONOTONIC,
comparable with the parent's clock) and every span. The entrypoint package
itself is not modified; the wrappers are installed at run time only.
"""

import gc
import time

T_START = time.monotonic()  # the interpreter and `site` are up; nothing of ours is imported yet
gc.disable()  # as `python -m entrypoint` runs (entrypoint/__main__.py)

import sys  # noqa: E402 - after the first mark on purpose

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))

from entrypoint import cli  # noqa: E402

T_CLI = time.monotonic()
from entrypoint.deploy import session as deploy  # noqa: E402 - cli imports it lazily, inside _run

T_DEPLOY = time.monotonic()

import contextlib  # noqa: E402
import json  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from typing import Any  # noqa: E402

import psycopg  # noqa: E402

from entrypoint import config, logs  # noqa: E402
from entrypoint.db import ledger  # noqa: E402

SPANS: list[tuple[str, float, float]] = []
QUERIES: list[tuple[str, float, float]] = []


def timed(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        began = time.monotonic()
        try:
            return func(*args, **kwargs)
        finally:
            SPANS.append((name, began, time.monotonic()))

    return wrapper


def timed_lock(original: Callable[..., Any]) -> Callable[..., Any]:
    @contextlib.contextmanager
    def wrapper(*args: Any, **kwargs: Any) -> Iterator[None]:
        began = time.monotonic()
        manager = original(*args, **kwargs)
        manager.__enter__()
        SPANS.append(("lock.acquire", began, time.monotonic()))
        try:
            yield
        except BaseException:
            manager.__exit__(*sys.exc_info())
            raise
        began = time.monotonic()
        manager.__exit__(None, None, None)
        SPANS.append(("lock.release", began, time.monotonic()))

    return wrapper


def timed_execute(original: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        text = query if isinstance(query, str) else query.as_string(self) if hasattr(query, "as_string") else str(query)
        began = time.monotonic()
        try:
            return original(self, query, *args, **kwargs)
        finally:
            QUERIES.append((" ".join(text.split())[:70], began, time.monotonic()))

    return wrapper


def install(out_path: str) -> None:
    # The exec happens in the deploy's session (deploy.session.start), which looks exec_command up there.
    original_exec = deploy.exec_command

    def exec_command(command: Any) -> None:
        marks = {"start": T_START, "imported_cli": T_CLI, "imported_deploy": T_DEPLOY, "exec": time.monotonic()}
        with open(out_path, "w", encoding="utf-8") as out:  # noqa: PTH123
            json.dump({"marks": marks, "spans": SPANS, "queries": QUERIES}, out)
        original_exec(command)

    deploy.exec_command = exec_command
    # Each step is wrapped where its caller looks it up; a step that no longer exists is skipped.
    wrap(config, "load", "config.load")
    wrap(logs, "configure", "logs.configure")
    wrap(cli, "install_signal_handlers", "launch.install_signal_handlers")
    wrap(cli, "_check_command", "cli.check_command")
    wrap(deploy, "run", "deploy.run")
    wrap(deploy, "read_journal", "journal.read_journal")
    wrap(deploy, "connect", "database.connect")
    if hasattr(deploy, "advisory_lock"):
        deploy.advisory_lock = timed_lock(deploy.advisory_lock)
    wrap(deploy, "sync_ledger", "deploy.sync_ledger (plan_sync + log lines)")
    wrap(deploy, "_plan", "plan.plan_migrations")
    wrap(ledger.Ledger, "ensure_and_read", "ledger.ensure_and_read")
    psycopg.Connection.execute = timed_execute(psycopg.Connection.execute)  # type: ignore[method-assign]
    wrap(psycopg.Connection, "__exit__", "database.close")


def wrap(owner: Any, name: str, label: str) -> None:
    if hasattr(owner, name):
        setattr(owner, name, timed(label, getattr(owner, name)))


if __name__ == "__main__":
    install(sys.argv[1])
    raise SystemExit(cli.main(sys.argv[2:]))
