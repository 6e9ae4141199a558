"""Read a drizzle-kit migrations folder exactly as drizzle-orm's `readMigrationFiles` does.

Files only, never the database. Two layouts exist, told apart without any setting:

- drizzle-kit 0.x (`JOURNAL` layout, drizzle-orm 0.45): `meta/_journal.json`, then
  `<tag>.sql` for each entry in file order;
- drizzle-kit 1.0 (`FOLDERS` layout): one `<YYYYMMDDHHMMSS>_<name>/migration.sql` per
  migration, in name order, whose `when` is the UTC time of the 14-digit prefix.

Either way the hash is the sha256 of the file's bytes and statements are split on
the literal `--> statement-breakpoint`. Statements stay bytes, sliced from the one
read of the file, so a 100 MB data migration costs about 100 MB. Before any
connection is made we refuse what drizzle-orm would fail on late (a missing file,
a folder name without its timestamp) or mis-apply silently (duplicate tags, a NUL
byte that would cut a statement short, a tag that is an absolute path, values out
of the range drizzle-kit writes). A `when` older than the entry before it (a
merged branch) is accepted, as drizzle-orm accepts it: the plan refuses only the
case where it would really be skipped.
"""

from __future__ import annotations

import calendar
import codecs
import hashlib
import json
import os
import re
import stat
import time
from pathlib import Path
from typing import TypeGuard

from entrypoint.core.model import Journal, Migration
from entrypoint.errors import JournalError

BREAKPOINT = "--> statement-breakpoint"
_BREAKPOINT = BREAKPOINT.encode()
JOURNAL = Path("meta") / "_journal.json"
# drizzle-kit wrote "pg" before it wrote "postgresql"; both mean PostgreSQL.
POSTGRES_DIALECTS = frozenset({"postgresql", "pg"})
_BOM = "\ufeff".encode()
MIGRATION_FILE = "migration.sql"
# A migration's down file, for `rollback`: `<tag>.down.sql` beside `<tag>.sql` (drizzle-orm ignores it: no
# journal entry names it), or `<folder>/down.sql` in the 1.0 layout (drizzle-orm PR #5476's convention).
DOWN_SUFFIX = ".down.sql"
DOWN_FILE = "down.sql"
_STAMP = re.compile(r"^(\d{14})")
# drizzle-kit writes `when` as JavaScript's Date.now(). Every date it can write is before the year 10000, the last
# one `status` (and any ISO 8601 date) can show: 9999-12-31T23:59:59.999Z, well below 2**53, JavaScript's exact limit.
MAX_WHEN = 253_402_300_799_999
MAX_IDX = 2**31 - 1
_UNSAFE_TAG = re.compile(r"[\x00-\x1f\x7f]")
_VALIDATE_STEP = 1 << 20


def split_statements(raw: bytes) -> tuple[bytes, ...]:
    """drizzle-orm's split, minus chunks with nothing to run.

    A leading BOM is dropped from what is executed (PostgreSQL rejects it as a
    syntax error) but never from what is hashed. A file with no breakpoint is
    its own single chunk, not a copy.
    """
    chunks = raw.removeprefix(_BOM).split(_BREAKPOINT)
    return tuple(
        chunk for chunk in chunks if chunk and not chunk.isspace()
    )  # isspace(), unlike strip(), copies nothing


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
    except RecursionError:
        raise _fail(f"{path} is nested too deeply to be a drizzle-kit journal: restore it", path) from None
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


def _is_int(value: object, low: int, high: int) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _entry_fields(entry: object, position: int, path: Path) -> tuple[int, str, int]:
    """(idx, tag, when) of one entry, each in the range drizzle-kit writes, else exit 3."""
    if isinstance(entry, dict):
        idx, tag, when = entry.get("idx"), entry.get("tag"), entry.get("when")
        if isinstance(tag, str) and tag and (_UNSAFE_TAG.search(tag) or tag.startswith("/")):
            raise _fail(
                f"Entry #{position} of {path} has a tag with a control character or an absolute path ({tag!r}): "
                "drizzle-kit never writes one. Restore the journal from version control",
                path,
            )
        if _is_int(idx, 0, MAX_IDX) and isinstance(tag, str) and tag and _is_int(when, 0, MAX_WHEN):
            return idx, tag, when
    raise _fail(
        f"Entry #{position} of {path} needs an integer `idx`, a `tag` and a `when` in milliseconds since 1970 "
        f"(at most {MAX_WHEN}, 9999-12-31T23:59:59.999Z): restore the journal from version control",
        path,
    )


def read_migration(folder: Path, idx: int, tag: str, when: int) -> Migration:
    """One journal entry's SQL file: hash of the exact bytes, statements as drizzle-orm splits them."""
    return _read_sql(Path(f"{folder}/{tag}.sql"), idx, tag, when)  # joined as Node joins it


def _read_bytes(path: Path) -> bytes:
    """The whole file in one read; a FIFO or a device is refused, never waited on."""
    # os.open + fstat rather than pathlib: no blocking open of a FIFO, and a thousand files read twice as fast.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise IsADirectoryError(0, "not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as file:
            return file.read()
    finally:
        os.close(fd)


def _read_or_fail(path: Path, missing: str) -> bytes:
    """The file's bytes; a missing file fails with `missing`, any other read error names itself."""
    try:
        return _read_bytes(path)
    except FileNotFoundError:
        raise _fail(missing, path) from None
    except OSError as error:
        raise _fail(f"Cannot read {path}: {error.strerror}. It must be a readable regular file", path) from None


def _check_text(raw: bytes, path: Path) -> None:
    """Valid UTF-8 without NUL, checked a megabyte at a time so no copy of a large file is made."""
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise _fail(
            f"{path.name} holds a NUL byte at offset {nul}: PostgreSQL would cut the statement short there, and "
            "drizzle-orm refuses it. Remove it (the file is not plain SQL text)",
            path,
        )
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(raw)
    try:
        for start in range(0, len(raw), _VALIDATE_STEP):
            decoder.decode(view[start : start + _VALIDATE_STEP], final=start + _VALIDATE_STEP >= len(raw))
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as error:
        offset = start + error.start
        raise _fail(
            f"{path.name} is not valid UTF-8 (byte 0x{raw[offset]:02x} at offset {offset}): save it as UTF-8", path
        ) from None


def _read_sql(path: Path, idx: int, tag: str, when: int) -> Migration:
    raw = _read_or_fail(
        path,
        f"Migration file {path.name} is listed in {JOURNAL} but missing from {path.parent}: "
        "restore it from version control or regenerate with drizzle-kit",
    )
    _check_text(raw, path)
    # Node hashes the decoded string re-encoded as UTF-8; for valid UTF-8 that is the file's bytes.
    return Migration(
        idx=idx, tag=tag, when=when, hash=hashlib.sha256(raw).hexdigest(), statements=split_statements(raw)
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
    seen_when: dict[int, str] = {}
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
        if when in seen_when:
            raise _fail(
                f"{tag} has the same `when` ({when}) as {seen_when[when]}: drizzle-orm tells migrations apart by "
                "that date and would skip one of them forever. Regenerate it with drizzle-kit",
                journal_path,
            )
        seen_idx[idx] = tag
        seen_tags.add(tag)
        seen_when[when] = tag
        migrations.append(read_migration(folder, idx, tag, when))
    listed = {f"{m.tag}.sql" for m in migrations} | {f"{m.tag}{DOWN_SUFFIX}" for m in migrations}
    unlisted = tuple(sorted(p.name for p in folder.iterdir() if p.suffix == ".sql" and p.name not in listed))
    return Journal(folder=folder, migrations=tuple(migrations), unlisted=unlisted)


def down_path(journal: Journal, migration: Migration) -> Path:
    """Where `migration`'s down file would be: `<tag>.down.sql`, or `<folder>/down.sql` in the 1.0 layout."""
    if journal.name_keyed:
        return journal.folder / migration.tag / DOWN_FILE
    return Path(f"{journal.folder}/{migration.tag}{DOWN_SUFFIX}")


def read_down(journal: Journal, migration: Migration) -> Migration | None:
    """`migration`'s down file, split as drizzle-orm splits a migration (its own hash), or None when it has none.

    Raises `JournalError` (exit 3) for one that cannot be read or is not UTF-8 text.
    """
    path = down_path(journal, migration)
    if not path.exists():
        return None
    raw = _read_or_fail(path, f"Down file {path} vanished while it was read")
    _check_text(raw, path)
    return migration._replace(hash=hashlib.sha256(raw).hexdigest(), statements=split_statements(raw))


def not_in_date_order(journal: Journal) -> tuple[tuple[str, str], ...]:
    """(entry, the later-dated entry before it) for each `when` older than one before it: a merged branch."""
    found = []
    newest: Migration | None = None
    for migration in journal.migrations:
        if newest is not None and migration.when < newest.when:
            found.append((migration.tag, newest.tag))
        if newest is None or migration.when > newest.when:
            newest = migration
    return tuple(found)
