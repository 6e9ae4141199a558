"""Read a drizzle-kit migrations folder exactly as drizzle-orm's `readMigrationFiles` does.

Files only, never the database. Two layouts exist, told apart without any setting:

- drizzle-kit 0.x (`JOURNAL` layout, drizzle-orm 0.45): `meta/_journal.json`, then
  `<tag>.sql` for each entry in file order;
- drizzle-kit 1.0 (`FOLDERS` layout): one `<YYYYMMDDHHMMSS>_<name>/migration.sql` per
  migration, in name order, whose `when` is the UTC time of the 14-digit prefix.

Either way the hash is the sha256 of the file's text and statements are split on
the literal `--> statement-breakpoint`. We refuse what drizzle-orm would silently
mis-apply (duplicate tags, a `when` that does not increase, a mixed folder) or fail
on late (a missing file, a folder name without its timestamp), before any
connection is made.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
import time
from pathlib import Path

from entrypoint.errors import JournalError
from entrypoint.model import Journal, Migration

BREAKPOINT = "--> statement-breakpoint"
JOURNAL = Path("meta") / "_journal.json"
# drizzle-kit wrote "pg" before it wrote "postgresql"; both mean PostgreSQL.
POSTGRES_DIALECTS = frozenset({"postgresql", "pg"})
_BOM = "\ufeff"
MIGRATION_FILE = "migration.sql"
_STAMP = re.compile(r"^(\d{14})")


def split_statements(text: str) -> tuple[str, ...]:
    """drizzle-orm's split, minus chunks with nothing to run.

    A leading BOM is dropped from what is executed (PostgreSQL rejects it as a
    syntax error) but never from what is hashed.
    """
    chunks = text.removeprefix(_BOM).split(BREAKPOINT)
    return tuple(chunk for chunk in chunks if chunk.strip())


def _fail(message: str, path: Path) -> JournalError:
    # The sentence names only the folder's own files: nothing in it can carry a secret.
    return JournalError("❌ {problem}", problem=message, path=str(path))


def _load_journal(folder: Path) -> list[object]:
    if not folder.is_dir():
        raise _fail(
            f"Migrations folder not found: {folder}. Set MIGRATIONS_DIR to your drizzle-kit `out` folder",
            folder,
        )
    path = folder / JOURNAL
    raw = _read_or_fail(
        path,
        f"No {JOURNAL} in {folder}, nor any <timestamp>_<name>/{MIGRATION_FILE}: this is not a drizzle-kit "
        "folder. Run `drizzle-kit generate`, or set MIGRATIONS_DIR to the right folder",
    )
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _fail(f"{path} is not UTF-8 text: restore it from version control", path) from None
    except json.JSONDecodeError as error:
        raise _fail(
            f"{path} is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}): "
            "restore it from version control or regenerate it with drizzle-kit",
            path,
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("entries"), list):
        raise _fail(f"{path} has no `entries` list: restore it from version control", path)
    dialect = document.get("dialect", "postgresql")
    if dialect not in POSTGRES_DIALECTS:
        raise _fail(
            f"{path} is for dialect {dialect!r}, not postgresql: point MIGRATIONS_DIR at your PostgreSQL migrations",
            path,
        )
    if not document["entries"]:
        raise _fail(
            f"{path} lists no migrations: refusing to start the app on an unmigrated database. Check MIGRATIONS_DIR",
            path,
        )
    entries: list[object] = document["entries"]
    return entries


def _entry_fields(entry: object, position: int, path: Path) -> tuple[int, str, int]:
    if isinstance(entry, dict):
        idx, tag, when = entry.get("idx"), entry.get("tag"), entry.get("when")
        if (
            isinstance(idx, int)
            and not isinstance(idx, bool)
            and isinstance(tag, str)
            and tag
            and isinstance(when, int)
            and not isinstance(when, bool)
        ):
            return idx, tag, when
    raise _fail(
        f"Entry #{position} of {path} needs an integer `idx`, a `tag` and an integer `when`: "
        "restore the journal from version control",
        path,
    )


def read_migration(folder: Path, idx: int, tag: str, when: int) -> Migration:
    """One journal entry's SQL file: hash of the exact bytes, statements as drizzle-orm splits them."""
    return _read_sql(folder / f"{tag}.sql", idx, tag, when)


def _read_bytes(path: Path) -> bytes:
    # Plain open(): a thousand files through pathlib's read_bytes cost twice as long.
    with open(path, "rb") as file:  # noqa: PTH123
        return file.read()


def _read_or_fail(path: Path, missing: str) -> bytes:
    """The file's bytes; a missing file fails with `missing`, any other read error names itself."""
    try:
        return _read_bytes(path)
    except FileNotFoundError:
        raise _fail(missing, path) from None
    except OSError as error:
        raise _fail(f"Cannot read {path}: {error.strerror}. Check the file's permissions", path) from None


def _read_sql(path: Path, idx: int, tag: str, when: int) -> Migration:
    raw = _read_or_fail(
        path,
        f"Migration file {path.name} is listed in {JOURNAL} but missing from {path.parent}: "
        "restore it from version control or regenerate with drizzle-kit",
    )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _fail(
            f"{path.name} is not valid UTF-8 (byte 0x{raw[error.start]:02x} at offset {error.start}): save it as UTF-8",
            path,
        ) from None
    # Node hashes the decoded string re-encoded as UTF-8; for valid UTF-8 that is the file's bytes.
    return Migration(
        idx=idx,
        tag=tag,
        when=when,
        hash=hashlib.sha256(raw).hexdigest(),
        statements=split_statements(text),
    )


def _migration_dirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [d for d in folder.iterdir() if d.is_dir() and (d / MIGRATION_FILE).is_file()]


def read_journal(folder: Path) -> Journal:
    """Read and check the whole folder, in whichever layout it is.

    Raises `JournalError` (exit 3) on anything drizzle-orm would trip on, and on a
    folder that holds both layouts.
    """
    dirs = _migration_dirs(folder)
    if dirs and (folder / JOURNAL).exists():
        raise _fail(
            f"{folder} holds both a drizzle-kit 0.x journal ({JOURNAL}) and 1.0 migration folders "
            f"(e.g. {dirs[0].name}/{MIGRATION_FILE}): finish `drizzle-kit up`, or remove the leftover layout",
            folder,
        )
    if dirs:
        return _read_folders(folder, dirs)
    return _read_journal_layout(folder)


def _when_of(name: str, path: Path) -> int:
    """drizzle-orm 1.0: `Date.UTC` of the name's 14-digit prefix, in milliseconds."""
    match = _STAMP.match(name)
    try:
        parsed = time.strptime(match.group(1) if match else "", "%Y%m%d%H%M%S")
    except ValueError:
        raise _fail(
            f"Migration folder {name} does not start with a YYYYMMDDHHMMSS timestamp, which drizzle-orm 1.0 "
            "needs for its date: rename it as drizzle-kit 1.0 names folders",
            path,
        ) from None
    return calendar.timegm(parsed) * 1000


def _read_folders(folder: Path, dirs: list[Path]) -> Journal:
    # drizzle-orm sorts with localeCompare; case-folding first matches it for drizzle-kit's names.
    ordered = sorted(dirs, key=lambda d: (d.name.casefold(), d.name))
    migrations = tuple(_read_sql(d / MIGRATION_FILE, idx, d.name, _when_of(d.name, d)) for idx, d in enumerate(ordered))
    return Journal(folder=folder, migrations=migrations, layout="folders")


def _read_journal_layout(folder: Path) -> Journal:
    journal_path = folder / JOURNAL
    seen_idx: dict[int, str] = {}
    seen_tags: set[str] = set()
    previous: tuple[str, int] | None = None
    migrations = []
    for position, entry in enumerate(_load_journal(folder)):
        idx, tag, when = _entry_fields(entry, position, journal_path)
        if tag in seen_tags:
            raise _fail(f"Tag {tag} appears twice in {journal_path}: remove the duplicate entry", journal_path)
        if idx in seen_idx:
            raise _fail(
                f"idx {idx} is used by both {seen_idx[idx]} and {tag} in {journal_path}: "
                "renumber or remove the duplicate",
                journal_path,
            )
        if previous is not None and when <= previous[1]:
            raise _fail(
                f"{tag} has when={when}, not after {previous[0]} (when={previous[1]}): "
                "drizzle-orm would silently skip it. Regenerate it with drizzle-kit so it sorts last",
                journal_path,
            )
        seen_idx[idx] = tag
        seen_tags.add(tag)
        previous = (tag, when)
        migrations.append(read_migration(folder, idx, tag, when))
    return Journal(folder=folder, migrations=tuple(migrations))
