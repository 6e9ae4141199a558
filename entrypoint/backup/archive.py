"""A dump for `restore`: fetched (a file, or an `s3://` object downloaded and checked), read whole, described.

`pg_restore --list` gives the header and the table of contents; the ledger rows
the dump holds are read from its COPY block, so the restore can show the ledger
it will leave before it changes anything.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from entrypoint.backup import leftovers, tools
from entrypoint.backup.tools import check_archive
from entrypoint.config import Settings, parse_s3_url
from entrypoint.core.model import LedgerRow, LedgerSnapshot
from entrypoint.db.ledger import Ledger
from entrypoint.errors import RestoreFailed, Untrusted

_HEADER = {
    "created_at": re.compile(r"^;\s+Archive created at (.+)$", re.MULTILINE),
    "dbname": re.compile(r"^;\s+dbname: (.+)$", re.MULTILINE),
    "server": re.compile(r"^;\s+Dumped from database version: (\S+)", re.MULTILINE),
    "pg_dump": re.compile(r"^;\s+Dumped by pg_dump version: (\S+)", re.MULTILINE),
}
# A TOC line: `<dump id>; <catalog oid> <oid> <DESC> <schema or -> <name> <owner>`; DESC may be several words.
_ENTRY = re.compile(r"^(\d+); (\d+) (\d+) (.+)$")
_IN_PUBLIC = re.compile(r"^[A-Z][A-Z ]*? public ")  # an entry's DESC (capital words), then its schema: public
# How the summary names the entries worth counting (a TOC entry's kind is every word before its schema).
_KINDS = {
    "SCHEMA": "schemas",
    "TYPE": "types",
    "TABLE": "tables",
    "TABLE DATA": "tables' rows",
    "SEQUENCE": "sequences",
    "INDEX": "indexes",
    "CONSTRAINT": "constraints",
    "FK CONSTRAINT": "foreign keys",
}
_DESCS = sorted(
    [*_KINDS, "SEQUENCE SET", "SEQUENCE OWNED BY", "DEFAULT ACL", "DEFAULT", "ACL", "COMMENT", "EXTENSION"],
    key=len,
    reverse=True,
)


@dataclass(frozen=True)
class Archive:
    """What a dump holds, as pg_restore reads it: its header, its table of contents, the ledger rows in it."""

    path: Path
    header: dict[str, str]
    toc: tuple[str, ...]  # the `--list` lines that are entries
    ledger: LedgerSnapshot

    def entries(self) -> list[str]:
        """Each entry as `KIND schema.name` (the oids and the owner left out)."""
        shown = []
        for line in self.toc:
            match = _ENTRY.match(line)
            if match:
                words = match.group(4).rsplit(" ", 1)[0]  # drop the owner
                shown.append(words)
        return shown

    def entry(self, desc: str, schema: str, name: str) -> str | None:
        """The `--list` line of the entry `desc schema name` (e.g. TABLE public users), if the dump has it.

        `pg_restore --list` prints names as they are, spaces included, then the owner, so an entry is
        matched from its start by the names it is asked about, the owner being what is left: one word
        (or none, in a dump made with --no-owner). `SCHEMA - my schema postgres` is the schema
        `my schema`, not `my` owned by `schema postgres`.
        """
        wanted = f"{desc} {schema} {name}"
        for line in self.toc:
            match = _ENTRY.match(line)
            body = match.group(4) if match else ""
            if body == wanted or (body.startswith(wanted + " ") and " " not in body[len(wanted) + 1 :]):
                return line
        return None

    def holds(self, desc: str, schema: str, name: str) -> bool:
        """Whether the dump has the entry `desc schema name`."""
        return self.entry(desc, schema, name) is not None

    def covers(self, schema: str) -> bool:
        """Whether the dump restores `schema`: its SCHEMA entry, or for `public` (never listed) an object in it."""
        if self.holds("SCHEMA", "-", schema):
            return True
        return schema == "public" and any(
            _IN_PUBLIC.match(m.group(4)) for line in self.toc if (m := _ENTRY.match(line))
        )

    def summary(self) -> str:
        """`7 tables, 7 tables' rows, 1 indexes, …, 65 entries in all`."""
        kinds: Counter[str] = Counter()
        for entry in self.entries():
            kinds[next((k for k in _DESCS if entry.startswith(k + " ")), "other")] += 1
        parts = [f"{kinds[k]} {label}" for k, label in _KINDS.items() if kinds[k]]
        total = len(self.toc)
        return ", ".join([*parts, f"{total} {'entry' if total == 1 else 'entries'} in all"])


@contextmanager
def fetched(settings: Settings, source: str) -> Iterator[Path]:
    """A local file for SOURCE: the file itself, or the `s3://` object downloaded to TMPDIR and checked."""
    if not source.startswith("s3://"):
        path = Path(source).expanduser().resolve()
        if not path.is_file():
            raise RestoreFailed(
                "❌ No dump at {path}: give the file the backup line printed, or its s3:// URL; nothing was changed",
                path=Untrusted(str(path)),
            )
        yield path
        return
    parsed = parse_s3_url(source)
    if parsed is None or not parsed[1] or source.endswith("/"):
        raise RestoreFailed(
            "❌ {source!r} is not an S3 object: use s3://bucket/key as the backup line printed it; nothing was changed",
            source=Untrusted(source),
        )
    from entrypoint.backup.store import Store

    store, key = Store.at(settings, source, "restore")
    with leftovers.PrivateFolder("entrypoint-restore-") as folder:
        path = folder / key.rsplit("/", 1)[-1]
        expected, arrived = store.download(key, path)
        size, sha = arrived.size, arrived.sha256
        if size != expected.size or (expected.sha256 is not None and sha != expected.sha256):
            raise RestoreFailed(
                "❌ The download of {source} does not check out: {size} bytes with sha256 {sha}, the store says "
                "{expected_size} bytes with sha256 {expected_sha}. Try again; nothing was changed",
                source=Untrusted(source),
                size=size,
                sha=sha,
                expected_size=expected.size,
                expected_sha=Untrusted(expected.sha256 or "unknown"),
            )
        yield path


def read(path: Path, pg_restore: str, ledger: Ledger) -> Archive:
    """Read the whole dump (a truncated one stops here), its header and table of contents, and its ledger."""
    problem = check_archive(path, pg_restore)
    if problem is not None:
        raise RestoreFailed(
            "❌ {path} is not a dump pg_restore can read whole ({problem}): truncated, or not pg_dump -Fc? Nothing "
            "was changed",
            path=Untrusted(str(path)),
            problem=Untrusted(problem),
        )
    listed = tools.run_tool([pg_restore, "--list", str(path)], capture_output=True, text=True, check=True).stdout
    header = {name: m.group(1).strip() for name, pattern in _HEADER.items() if (m := pattern.search(listed))}
    toc = tuple(line for line in listed.splitlines() if _ENTRY.match(line))
    return Archive(path, header, toc, _dumped_ledger(path, pg_restore, ledger, toc))


def _dumped_ledger(path: Path, pg_restore: str, ledger: Ledger, toc: tuple[str, ...]) -> LedgerSnapshot:
    """The ledger rows the dump holds (its COPY block), as a snapshot the planner reads."""
    table = f" TABLE {ledger.schema} {ledger.table} "
    if not any(table in f" {line.split(' ', 3)[-1]} " for line in toc):
        return LedgerSnapshot(exists=False, has_names=False, rows=())
    out = tools.run_tool(
        [pg_restore, "--data-only", f"--schema={ledger.schema}", f"--table={ledger.table}", "-f", "-", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows: list[LedgerRow] = []
    columns: list[str] = []
    for line in out.splitlines():
        if line.startswith("COPY ") and columns == []:
            columns = [c.strip().strip('"') for c in line.split("(", 1)[1].split(")", 1)[0].split(",")]
            continue
        if line == "\\.":
            break
        if columns:
            values = dict(zip(columns, [None if v == "\\N" else v for v in line.split("\t")], strict=False))
            created = values.get("created_at")
            row_id, sha, name = int(values["id"] or 0), values.get("hash") or "", values.get("name")
            rows.append(LedgerRow(row_id, sha, int(created) if created else None, name))
    return LedgerSnapshot(exists=True, has_names="name" in columns, rows=tuple(sorted(rows)))
