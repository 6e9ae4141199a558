"""One deploy: read the folder, connect, lock, prepare the plan, carry it out (or print it), release.

This is the flow the CLI runs before it execs the app. The folder is read
before any connection, so bad input fails fast and touches nothing. Under the
lock the ledger is read once and the whole deploy planned once (`prepare`);
every refusal is raised before the first write, then `execute` writes. A dry
run prints that same plan (`render`), without the lock, and writes nothing. If
the connection is lost mid-way, the whole session starts again on a new one
and re-plans from the ledger under the lock: a unit that did commit is then
seen as applied, so nothing is ever applied twice. DEPLOY_DEADLINE bounds all
of it (`deadline`). However the run stops, the ❌ line says what it kept, from
the tracker's state (`failures`, `outcome`).
"""

from __future__ import annotations

from typing import Any

import psycopg
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from entrypoint.config import Settings
from entrypoint.core.model import Journal
from entrypoint.db.connect import connect, describe, is_session_lost, refused
from entrypoint.db.ledger import Ledger
from entrypoint.db.lock import advisory_lock, lock_key
from entrypoint.deploy.deadline import DeadlinePassed
from entrypoint.deploy.execute import execute
from entrypoint.deploy.failures import told
from entrypoint.deploy.prepare import prepare
from entrypoint.deploy.progress import Tracker
from entrypoint.deploy.render import render
from entrypoint.journal import not_in_date_order, read_journal
from entrypoint.launch import exec_command, stopping_says
from entrypoint.logs import get_logger


def _locked(
    conn: psycopg.Connection[Any], journal: Journal, ledger: Ledger, settings: Settings, tracker: Tracker
) -> None:
    tracker.move(doing="reading the ledger")
    if settings.dry_run:
        render(prepare(conn, journal, ledger, settings))
        return
    key = lock_key(conn.info.dbname, ledger.schema, ledger.table)
    tracker.move(doing="taking the migration lock")
    with advisory_lock(conn, key, wait_timeout=settings.lock_wait_timeout):
        tracker.move(doing="reading the ledger")
        execute(conn, prepare(conn, journal, ledger, settings), settings, tracker)


def _session(journal: Journal, ledger: Ledger, settings: Settings, tracker: Tracker) -> None:
    tracker.move(doing="connecting")
    conn = connect(settings.database_url, timeout=settings.connect_timeout)
    backend = conn.info.backend_pid
    with conn:
        try:
            _locked(conn, journal, ledger, settings, tracker)
        except DeadlinePassed:
            if conn.broken:  # psycopg closed it: the server did not answer the cancel
                tracker.move(cut=backend)
            raise
        except psycopg.Error as error:
            if is_session_lost(error, conn):
                raise  # run() starts a new session
            raise refused(error, tracker.state.doing) from None


def run(settings: Settings) -> None:
    """Sync and migrate (or, with `dry_run`, only report); raises an `EntrypointError` on failure."""
    log = get_logger()
    journal = read_journal(settings.migrations_dir)
    ledger = Ledger(settings.migrations_schema, settings.migrations_table, name_keyed=journal.name_keyed)
    if settings.dry_run:
        log.info("plan.dry_run")
    for tag, newer in not_in_date_order(journal):
        log.warning("journal.not_in_date_order", tag=tag, newer=newer)

    def before_sleep(state: Any) -> None:
        log.warning(
            "db.session_lost",
            reason=describe(state.outcome.exception()),
            wait_s=round(state.upcoming_sleep, 1),
            attempt=state.attempt_number + 1,
            attempts=settings.migration_attempts,
        )

    retrying = Retrying(
        stop=stop_after_attempt(settings.migration_attempts),
        wait=wait_exponential_jitter(initial=0.5, max=10),
        retry=retry_if_exception(is_session_lost),
        before_sleep=before_sleep,
        reraise=True,
    )
    tracker = Tracker()
    with told(tracker, settings.deploy_deadline):
        retrying(_session, journal, ledger, settings, tracker)


AFTER_MIGRATING = "the migrations are applied and the lock released; the app was not started. Redeploy to start it"


def start(settings: Settings, app: list[str]) -> None:
    """The main command: deploy, then exec `app` (with none, or a dry run, return)."""
    run(settings)  # a stop inside says what it kept
    with stopping_says(AFTER_MIGRATING):
        if settings.dry_run:
            return
        if not app:
            get_logger().info("launch.no_command")
            return
        exec_command(app)
