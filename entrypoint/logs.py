"""The one structlog configuration, and the catalogue of the lines operators grep for.

Code everywhere emits events with stable dotted names and flat fields
(`log.info("migrate.applied", tag=..., statements=...)`). Here, and only here,
an event becomes its human line: `LINES` maps the name to a template, the
console renderer prints just that line, and the JSON renderer prints the event,
its level, a timestamp, the fields and the line as `message`. An error brings
its own template (`errors.EntrypointError`). Before a line is filled, the values
that may quote a secret (`errors.Untrusted`: the driver's messages, argv, a
child's stderr) are scrubbed of the password; the templates are never touched,
so a short password cannot rewrite the words operators grep for. A short secret
is masked only where a password stands in a connection string (`scrub.Scrubber`).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from entrypoint import scrub as secrets_scrub
from entrypoint.errors import Untrusted
from entrypoint.scrub import Scrubber

# Exact lines from DESIGN.md, then ours in the same voice. `{name}` is a field.
LINES: dict[str, str] = {
    # The ledger sync (French, as the old `db:sync` printed it).
    "sync.start": "🔄 Synchronisation des migrations...",
    "sync.rows": "📊 Migrations actuelles en base: {rows}",
    "sync.drift": "⚠️  Désynchronisation détectée - correction en cours...",
    "sync.repairing": "🔧 Mise à jour de {count} migrations...",
    "sync.row_repaired": "   {old_id} → {new_id} ({tag})",
    "sync.row_rewritten": "   {id} ({tag}) : {changed} mis à jour",
    "sync.repaired": "✅ Migrations synchronisées avec succès !",
    "sync.in_sync": "✅ Migrations déjà synchronisées",
    "sync.ready": "🎯 Système de migrations prêt pour Drizzle",
    "sync.error_ignored": "⚠️  Poursuite du déploiement malgré l'erreur de sync",
    "sync.upgrade": "🆙 Registre Drizzle 0.x détecté : mise à niveau pour Drizzle 1.0 ({count} migrations à nommer)...",
    "sync.row_named": "   {id} → {name}",
    "sync.upgraded": "✅ Registre mis à niveau pour Drizzle 1.0 : {count} migrations nommées",
    "sync.row_renamed": "   {id}: {old_name} → {new_name}",
    "sync.unknown_row": (
        "⚠️  La ligne {id} du registre ({name}) ne correspond à aucune migration du dossier : "
        "supprimée ou renommée ? Vérifiez avant de continuer"
    ),
    "sync.ahead": (
        "⚠️  Schéma plus récent que cette version : la migration {id} ({migration}) a été appliquée par une version "
        "ultérieure ; elle est conservée et rien n'est modifié (WHEN_AHEAD=start)"
    ),
    "sync.hash_changed": "⚠️  {tag} a été modifiée depuis son application (hash différent) : elle ne sera pas rejouée",
    "sync.dry_run": "🔍 Simulation : {count} migrations seraient corrigées, rien n'est modifié",
    # The migrations (English, as the old `db:deploy` printed it).
    "migrate.start": "🚀 Running Drizzle migrations...",
    "migrate.folder": "📁 Migrations folder: {folder}",
    "migrate.applied": "   ✔ {tag} ({statements} statements, {duration_ms} ms)",
    "migrate.nothing_pending": "💤 No pending migrations ({applied} already applied)",
    "migrate.done": "✅ Database migrations completed successfully",
    "migrate.all_created": "🎉 All tables and indexes created via Drizzle migrations",
    "migrate.retrying": (
        "🔁 Migration transaction {reason} (SQLSTATE {sqlstate}){blockers}; "
        "rolled back, retrying in {wait_s}s (attempt {attempt}/{attempts})"
    ),
    "migrate.outside_transaction": (
        "🧱 {tag} cannot run in a transaction ({why}): applying it on its own, "
        "after the migrations before it have committed"
    ),
    "migrate.own_transaction": (
        "🧱 {tag} manages its own transaction ({why}): running it on its own, as its file says, "
        "after the migrations before it have committed"
    ),
    "migrate.invalid_index_dropped": "🧹 Dropped the INVALID index {index} left by a failed concurrent build",
    "migrate.concurrent": (
        "🧱 {tag} is built online ({why}): its indexes one at a time, outside a transaction, so writes to "
        "{tables} go on meanwhile; its ledger row is written after the last one"
    ),
    "migrate.index_built": "   · {index} on {table} built {how} ({duration_ms} ms)",
    "migrate.online": (
        "🧱 {tag} is applied online ({why}): in {parts} parts, each committing on its own, so writes to {tables} "
        "go on meanwhile; its ledger row is written with the last one"
    ),
    "migrate.part": "   · part {part}/{parts} committed: {what} ({duration_ms} ms)",
    "migrate.resume": (
        "⏯️  {tag} resumes at part {next} of {parts} ({what}): an earlier deploy committed {committed} and stopped; "
        "what they did is checked against the catalogue first"
    ),
    "migrate.part_redone": "🧹 {tag}, part {part}: {says} expected, {verdict} found: done again",
    "migrate.index_kept": (
        "   · {index} on {table} already built by an earlier attempt of {tag} (valid, the same): kept"
    ),
    "migrate.heartbeat": (
        "⏱️  {tag}: statement {statement}/{statements} still running after {elapsed_s}s{detail}{blockers}"
    ),
    "migrate.guard_not_yet": (
        "⚠️  Guard {guard} reads what does not exist yet ({error}): it protects nothing until a migration "
        "creates what it reads"
    ),
    "migrate.out_of_order_applied": "⚠️  Applying out-of-order migration {tag} (ALLOW_OUT_OF_ORDER is set)",
    # The backup before migrating (BACKUP_DIR, BACKUP_URL), and the restore point before the first change.
    "backup.start": "💾 Backing up the database before {before} (pg_dump -Fc into {directory})...",
    "backup.low_disk": (
        "⚠️  Only {free_mb} MB free in {directory} for a {database_mb} MB database: a pg_dump -Fc is usually much "
        "smaller, but if it runs out of room point TMPDIR or BACKUP_DIR at a bigger disk"
    ),
    "backup.done": "💾 Backup written and checked (pg_restore read all of it): {path} ({size_kb} KB, {seconds}s)",
    "backup.uploaded": "📤 Backup uploaded and checked (size and sha256): {url} ({size_kb} KB, {seconds}s)",
    "backup.reused": (
        "♻️  Backup of this same state (server {server}, database {database} (OID {database_oid}), last applied "
        "migration {last_tag}, pending set {pending}) taken {age_s}s ago: reused, not dumped again: {location} "
        "({size_kb} KB)"
    ),
    "backup.waiting": "⏱️  Backup: still {doing} after {elapsed_s}s",
    "backup.stale_removed": "🧹 Removed {path} ({size_mb} MB), left in TMPDIR by a backup or restore that was killed",
    "backup.upload_aborted": "🧹 Aborted the incomplete upload of {url} (started {initiated}), left by a killed backup",
    "backup.uploads_unchecked": (
        "⚠️  Cannot look for incomplete uploads under {url} (the key may not list or abort them): grant it "
        "s3:ListBucketMultipartUploads and s3:AbortMultipartUpload, or let a lifecycle rule abort them"
    ),
    "backup.not_whole": (
        "⚠️  {path} is not a whole dump (pg_restore: {problem}): not reused, nor uploaded; dumping again"
    ),
    "backup.identity_unknown": (
        "⚠️  Cannot read this server's identity ({reason}): a backup is reused only when it is proven to be of this "
        "very database, so this one is dumped, not reused"
    ),
    "backup.not_recorded": (
        "⚠️  The backup could not be recorded in {audit} ({error}): rollback will not name it when it refuses; "
        "it is at {location}"
    ),
    "deploy.restore_point": (
        "📍 Restore point: {server_time} (WAL {wal_lsn}), just before this deploy's first change to {database}: "
        "point-in-time recovery to this time undoes the deploy"
    ),
    # `restore`.
    "restore.source": "↩️  Restore of {source} into {database}",
    "restore.dump": "   dump: {dumped_from}, taken {created_at} by pg_dump {pg_dump_version}: {entries}",
    "restore.entry": "   {entry}",
    "restore.ledger_now": "   ledger now: {ledger}",
    "restore.ledger_after": "   ledger after the restore: {ledger}",
    "restore.how": (
        "   one transaction of ours: what is listed above dropped, then pg_restore --clean --if-exists's script (each "
        "object in the dump dropped and recreated with its rows); rows written since the dump are lost; the schemas "
        "that exist and the ledger's audit table are kept"
    ),
    "restore.extras": (
        "   not in the dump, so dropped with it ({count} objects of {schemas}, created since it was taken, e.g. by the "
        "migrations it rolls back):"
    ),
    "restore.extra": "      {kind} {object}",
    "restore.extra_more": "      … and {count} more",
    "restore.confirm": "❓ Restore {database} from this dump? Type yes to go on: ",
    "restore.dry_run": "🔍 Dry run: nothing was restored or changed",
    "restore.restoring": "⏳ Restoring (pg_restore's script, in one transaction)...",
    "restore.heartbeat": "⏱️  Restore still running after {elapsed_s}s{detail}{blockers}",
    "restore.retrying": (
        "🔁 Restore transaction {reason} (SQLSTATE {sqlstate}){blockers}; rolled back, retrying in {wait_s}s "
        "(attempt {attempt}/{attempts})"
    ),
    "restore.done": "✅ Restored {database} from {source} in {seconds}s",
    "restore.guard": "   🛡  {guard} → {result}",
    "restore.checked": "🎉 Restore checked: the schema its ledger records is present; the ledger it left is above",
    # `rollback`.
    "rollback.start": "↩️  Rollback of {database} ({ledger}): {count} migrations to reverse, newest first, back to {to}",
    "rollback.restore_point": (
        "📍 Restore point: {server_time} (WAL {wal_lsn}), just before this rollback's first change to {database}: "
        "point-in-time recovery to this time undoes the rollback"
    ),
    "rollback.migration": "↩️  {tag}: {steps} reversing statements, {source}, run {runs}",
    "rollback.step": "   ↩ {number}/{steps} {sql} — {cost}",
    "rollback.nothing": "💤 Nothing to roll back: the newest applied migration is {newest}",
    "rollback.loss": "⚠️  --allow-data-loss: {loss}, dropped once the backup is taken",
    "rollback.confirm": "❓ Reverse {count} migrations in {database} (the statements above)? Type yes to go on: ",
    "rollback.dry_run": "🔍 Dry run: {count} migrations would be reversed; nothing was changed",
    "rollback.alone": (
        "🧱 {tag}'s reversal runs outside a transaction ({why}): one statement at a time, each committing on its "
        "own; its ledger row is deleted after the last one"
    ),
    "rollback.reversed": "   ↩ {tag} reversed ({statements} statements, {duration_ms} ms), its ledger row deleted",
    "rollback.done": (
        "✅ Rolled back {count} migrations ({tags}): pending again, so the next deploy (or drizzle-orm's migrator) "
        "applies them; the newest applied is now {newest}"
    ),
    # The folder.
    "journal.not_in_date_order": (
        "⚠️  {tag} is dated before {newer}, which comes earlier in the journal (a merged branch?): drizzle-orm "
        "applies it on a fresh database but skips it forever where {newer} is already applied, so there the "
        "deploy stops instead (exit 8)"
    ),
    # The dry run.
    "plan.dry_run": "🔍 Dry run: nothing will be changed and no app will be started",
    "plan.pending": "   ⏭  {tag} would be applied ({statements} statements)",
    "plan.commit": "   ⤷ commit: {why}",
    "plan.alone": "   ⤷ {tag} runs {how}",
    "plan.index_build": "   ⤷ {count} on {table} built {how} ({why}): {indexes}",
    "plan.online_statement": "   ⤷ statement {statement} ({what}) {how} ({why})",
    "plan.part": "      {part}. {what}",
    "plan.resume": (
        "   ⏸️  {tag}: an earlier deploy committed {committed} of {parts} and stopped; the next deploy resumes at "
        "part {next} ({what})"
    ),
    "plan.summary": "🔍 Dry run complete: {count} migrations would be applied",
    # Waiting: the database, the lock.
    "db.retrying": "⏳ Database not reachable yet ({reason}), retrying in {wait_s}s ({left_s}s left)...",
    "db.session_lost": (
        "🔌 Lost the database connection ({reason}); reconnecting in {wait_s}s to re-check the ledger "
        "(attempt {attempt}/{attempts})"
    ),
    "lock.waiting": "⏳ Waiting for the migration lock, held by pid {holder_pid} ({holder})...",
    "lock.acquired": "🔒 Migration lock acquired after {waited_s}s",
    "lock.release_failed": "⚠️  The migration lock was already released (was the connection pooled?)",
    # Handing over.
    "launch.exec": "🏁 Starting the app: {command}",
    "launch.no_command": "🏁 No app command given: migrations done, exiting",
    # `status`.
    "status.header": "📋 Migrations in {folder} against {ledger}",
    "status.no_ledger": "   (no {ledger} table yet: nothing was ever applied here)",
    "status.columns": "   {cells}",
    "status.row": "   {cells}",
    "status.refused": "⚠️  Ledger not matched to the journal ({reason}): {detail}",
    "status.unknown": "❓ {unknown} not matched to an entry:",
    "status.unknown_columns": "   {cells}",
    "status.unknown_row": "   {cells}",
    "status.unlisted": "   (not in the journal, so never applied: {files})",
    "status.units_refused": "⚠️  The next deploy would stop before applying anything: {detail}",
    "status.ahead": (
        "⏩ Ahead by {count}: {rows} newer than {newest}, the newest migration here, applied by a newer release "
        "(kept: this release starts on it, as drizzle-orm's migrator would)"
    ),
    "status.ahead_columns": "   {cells}",
    "status.ahead_row": "   {cells}",
    "status.clean": "✅ {applied}/{entries} migrations applied, ledger in step",
    # The DDL lint (`lint`, the dry run, the deploy before migrating).
    "lint.finding": (
        "{mark} {tag} (statement {statement}/{statements}) {rule}: {detail}{where}{consequence}. Instead: {advice}"
    ),
    "lint.summary": (
        "🧹 DDL lint of {migrations} migrations: {danger} danger, {warning} warning, {note} note ({weighed})"
    ),
    # `verify`.
    "verify.start": "🔎 Verifying the database against {folder} ({ledger})",
    "verify.ledger_failed": "❌ Ledger {ledger}: {detail}",
    "verify.ledger_ok": (
        "✅ Ledger: {rows} rows, ids {first_id}..{last_id} without gaps, each hash and created_at "
        "matching its journal entry"
    ),
    "verify.ahead": (
        "⏩ Ahead by {count}: {rows} newer than {newest}, applied by a newer release; not checked against this folder"
    ),
    "verify.ahead_row": "   ⏩ {id}: {migration}",
    "verify.migration": "   {mark} {tag}: {evidence}",
    "verify.missing": "❌ {kind_label} {object} from {tag} is missing{note}",
    "verify.ok": "🎉 Verified: {migrations} migrations applied, {objects} schema objects present",
    # `baseline`, and the deploy with BASELINE_ON_EMPTY=1.
    "baseline.start": "📌 Baseline: {ledger} {ledger_state}; holding each migration of {folder} against the schema",
    "baseline.on_empty": (
        "📌 BASELINE_ON_EMPTY: {ledger} {ledger_state} but objects of {tag} already exist (drizzle-kit push?): "
        "recording the migrations the schema proves"
    ),
    "baseline.present": "   ✔ {tag}: {evidence}",
    "baseline.vouched": "   ✔ {tag}: {why}; recorded on your word (--through {through})",
    "baseline.not_present": "   ✘ {tag}: not recorded, {problem}:",
    "baseline.missing_object": "      missing: {kind_label} {object}",
    "baseline.lingering_object": "      still there: {kind_label} {object}, which {tag} renames or drops",
    "baseline.more": "      … and {count} more",
    "baseline.unproven": (
        "   ⏸  {tag}: not recorded: {why}, so nothing shows whether it ran (drizzle-kit push never runs it). "
        "If it did, rerun with --through {tag} or a later tag"
    ),
    "baseline.through": "   ⏹  Stopping after {through} (--through)",
    "baseline.rest": "   ⏭  Not recorded: {count} migrations from {first} on, which the next deploy will apply",
    "baseline.rest_blocked": (
        "   ⚠️  Not recorded: {count} migrations from {first} on, but what they create is partly there already "
        "({existing}), so the next deploy would fail on it (already exists): {advice}:"
    ),
    "baseline.existing_object": "      already there: {kind_label} {object} (from {tag})",
    "baseline.recorded": (
        "✅ Baseline recorded: {count} migrations marked applied in {ledger}, through {last} "
        "(copied to {audit}, reason baseline)"
    ),
    "baseline.would_record": (
        "🔍 Dry run: {count} migrations would be marked applied in {ledger}, through {last}; nothing was changed"
    ),
    # The start gate (--require-migrated).
    "gate.open": (
        "🚦 Start gate: {applied}/{entries} migrations applied, ledger in step; nothing migrated here "
        "(--require-migrated)"
    ),
}

# Lines that a blank line precedes on the console (DESIGN.md).
BLANK_BEFORE = frozenset({"migrate.start"})


# An error's own template travels under this key, and never reaches the output.
TEMPLATE = "_template"
_FOLD = re.compile(r"\s*[\r\n]+\s*")


def render_line(event: str, fields: MutableMapping[str, Any]) -> str:
    """The human line for an event, on one line: its template (an error's own, else the catalogue's), filled."""
    template = fields.pop(TEMPLATE, None) or LINES.get(event, event)
    try:
        line = str(template).format_map(fields)
    except (KeyError, IndexError, ValueError):
        line = str(template)
    return _FOLD.sub(" ", line)  # a multi-line server message, or a forged newline, never makes a second line


def _add_message(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    event_dict["message"] = render_line(str(event_dict.get("event", "")), event_dict)
    return event_dict


def _scrubber(scrubber: Scrubber) -> Processor:
    def scrub_value(value: Any) -> Any:
        if isinstance(value, Untrusted):
            return scrubber(str(value))
        if isinstance(value, list | tuple):
            return type(value)(scrub_value(item) for item in value)
        if isinstance(value, dict):
            return {key: scrub_value(item) for key, item in value.items()}
        return value

    def scrub_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        for key, value in event_dict.items():
            event_dict[key] = scrub_value(value)
        return event_dict

    return scrub_secrets


_LEADING = ("event", "level", "timestamp", "message")


def _leading_keys(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    # Log drains show the first keys: the stable name and the human line come before the facts.
    ordered = {key: event_dict.pop(key) for key in _LEADING if key in event_dict}
    return {**ordered, **event_dict}


def _console(_: WrappedLogger, __: str, event_dict: EventDict) -> str:
    line = str(event_dict["message"])
    return f"\n{line}" if event_dict.get("event") in BLANK_BEFORE else line


def _json_dumps(value: Any, **kwargs: Any) -> str:
    kwargs["ensure_ascii"] = False
    return json.dumps(value, **kwargs)


def configure(log_format: str = "console", secrets: Iterable[str] = (), stream: TextIO | None = None) -> None:
    """Configure structlog once per process: console lines or JSON objects, secrets scrubbed."""
    shared: list[Processor] = [
        structlog.processors.add_log_level,
        _scrubber(secrets_scrub.install(secrets)),
        _add_message,
    ]
    if log_format == "json":
        processors: list[Processor] = [
            *shared,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            structlog.processors.format_exc_info,
            _leading_keys,
            structlog.processors.JSONRenderer(serializer=_json_dumps),
        ]
    else:
        processors = [*shared, _console]
    structlog.configure(
        processors=processors,
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=False,
    )
    # psycopg warns through the standard library (e.g. "error ignored terminating <psycopg.Pipeline …>"
    # after a failed executemany), which would print a stray line after the ❌ one, outside the JSON format
    # and unscrubbed. What it restates is an error this program reports itself.
    library = logging.getLogger("psycopg")
    library.addHandler(logging.NullHandler())
    library.propagate = False


def get_logger() -> Any:
    """The logger every module emits through."""
    return structlog.get_logger()
