"""Where the corpus data is, what corpus.json says about it, and whether a copy is byte for byte the listed one.

The folders are not in git (see README.md). The root holding them is, in order:
``$ENTRYPOINT_CORPUS``; ``../shared/corpus`` from the repository root, if it exists; ``tests/corpus``.

``python -m tests.corpus.source`` prints the root and each folder's state (scripts/corpus and .ci/run do):
it exits 0 when every folder is there byte for byte, 1 when one is absent or differs, 2 when none is there.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SHARED = REPO.parent / "shared" / "corpus"
SUMS = HERE / "SHA256SUMS"
METADATA: dict[str, Any] = json.loads((HERE / "corpus.json").read_text())


def corpus_root() -> Path:
    """The directory holding the ``<owner>__<repo>`` folders."""
    configured = os.environ.get("ENTRYPOINT_CORPUS", "").strip()
    if configured:
        return Path(configured).resolve()
    if SHARED.is_dir():
        return SHARED.resolve()
    return HERE


@dataclass(frozen=True)
class Folder:
    """One corpus folder as corpus.json describes it, and how the harness prepares it."""

    name: str
    meta: dict[str, Any]

    @property
    def harness(self) -> dict[str, Any]:
        return dict(self.meta.get("harness", {}))

    @property
    def majors(self) -> list[int] | None:
        majors = self.harness.get("majors")
        return None if majors is None else [int(m) for m in majors]

    @property
    def url_options(self) -> str:
        return str(self.harness.get("url_options", ""))

    @property
    def create_extensions(self) -> list[str]:
        return [str(e) for e in self.harness.get("create_extensions", [])]

    @property
    def extensions(self) -> list[str]:
        """Every extension the folder needs on the server: the ones it creates and the ones created for it."""
        return sorted({*self.meta.get("extensions", []), *self.create_extensions})

    @property
    def incremental(self) -> list[str]:
        return [str(p) for p in self.harness.get("incremental", [])]

    @property
    def source(self) -> str:
        return f"{self.meta['repo']} at {self.meta['commit']}:{self.meta['path']}"

    def runs_on(self, major: int) -> bool:
        return self.majors is None or major in self.majors

    def checksums(self) -> dict[str, str]:
        """Relative path inside the folder -> sha256, from SHA256SUMS."""
        sums: dict[str, str] = {}
        for line in SUMS.read_text().splitlines():
            digest, _, path = line.partition("  ")
            folder, _, rest = path.partition("/")
            if folder == self.name:
                sums[rest] = digest
        return sums


FOLDERS: list[Folder] = [Folder(str(m["name"]), m) for m in METADATA["folders"]]
BY_NAME = {f.name: f for f in FOLDERS}


def missing_message(folder: Folder, root: Path) -> str:
    """The sentence a test fails with when the data is not there."""
    return (
        f"corpus folder {folder.name} is not in {root}: the corpus is not in git, so put a copy of "
        f"{folder.source} there (or point ENTRYPOINT_CORPUS at a directory holding it, or place it in "
        f"{SHARED}), rebuilt as tests/corpus/README.md says (git cat-file blob of the journal and every .sql "
        "file at that commit) and checked with `sha256sum -c SHA256SUMS`"
    )


def verify(folder: Folder, root: Path) -> list[str]:
    """What differs between ``root/<name>`` and SHA256SUMS, one sentence each; empty when byte for byte equal.

    drizzle-kit's ``meta/*_snapshot.json`` files may be present (the migrators never read them); any other
    file SHA256SUMS does not list is a difference.
    """
    base = root / folder.name
    expected = folder.checksums()
    problems: list[str] = []
    if not expected:
        return [f"SHA256SUMS lists no file of {folder.name}"]
    for rel, digest in sorted(expected.items()):
        path = base / rel
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(f"{path} differs from SHA256SUMS (sha256 {digest[:12]}… expected)")
    for path in sorted(p for p in base.rglob("*") if p.is_file()):
        rel = path.relative_to(base).as_posix()
        if rel not in expected and not (rel.startswith("meta/") and rel.endswith("_snapshot.json")):
            problems.append(f"{path} is not in SHA256SUMS")
    return problems


def main() -> int:
    """Print the root and each folder's state; exit 1 if any folder is absent or differs, 2 if none is there."""
    root = corpus_root()
    print(f"corpus root: {root}")
    bad = absent = 0
    for folder in FOLDERS:
        majors = "all majors" if folder.majors is None else "PostgreSQL " + ", ".join(map(str, folder.majors))
        if not (root / folder.name).is_dir():
            state = "ABSENT"
            absent += 1
        else:
            problems = verify(folder, root)
            state = "ok" if not problems else f"DIFFERS ({len(problems)} files)"
        bad += state != "ok"
        print(f"  {folder.name:28} {state:22} runs on {majors}")
    if absent == len(FOLDERS):
        return 2
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
