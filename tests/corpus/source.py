"""Where the corpus data is, what corpus.json says about it, and whether a copy is byte for byte the listed one.

The folders are not in git (see README.md). They live under two roots, each read as it is:

- the corpus (``tests/corpus/SHA256SUMS``): ``$ENTRYPOINT_CORPUS``; ``../shared/corpus`` from the
  repository root, if it exists; ``tests/corpus``;
- corpus-more (``tests/corpus/SHA256SUMS.more``, a copy of that root's own ``SHA256SUMS``, whose
  ``v1/`` folders are Drizzle 1.0 layouts): ``$ENTRYPOINT_CORPUS_MORE``; ``../shared/corpus-more``;
  ``tests/corpus/more``.

A folder's `root` key in corpus.json says which (absent: the corpus), its `dir` where it sits in that root
(absent: its name).

``python -m tests.corpus.source`` prints the roots and each folder's state (scripts/corpus and .ci/run do):
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
METADATA: dict[str, Any] = json.loads((HERE / "corpus.json").read_text())


@dataclass(frozen=True)
class Root:
    """One directory of corpus folders: where it is looked for, and the tracked SHA256SUMS its files must match."""

    key: str
    variable: str
    shared: Path
    local: Path
    sums: Path

    def path(self) -> Path:
        """The directory holding this root's folders: the variable, else the shared copy if it exists, else local."""
        configured = os.environ.get(self.variable, "").strip()
        if configured:
            return Path(configured).resolve()
        if self.shared.is_dir():
            return self.shared.resolve()
        return self.local

    def problems(self) -> list[str]:
        """A root that ships its own SHA256SUMS must ship the one tracked here: else it is another data set."""
        own = self.path() / "SHA256SUMS"
        if own.is_file() and own.read_bytes() != self.sums.read_bytes():
            tracked = self.sums.relative_to(REPO)
            return [f"{own} differs from the tracked {tracked}: a newer copy of the data? Update both together"]
        return []


ROOTS = {
    "corpus": Root(
        "corpus", "ENTRYPOINT_CORPUS", REPO.parent / "shared" / "corpus", HERE, HERE / "SHA256SUMS"
    ),
    "more": Root(
        "more", "ENTRYPOINT_CORPUS_MORE", REPO.parent / "shared" / "corpus-more", HERE / "more",
        HERE / "SHA256SUMS.more",
    ),
}  # fmt: skip
SHARED = ROOTS["corpus"].shared


def corpus_root() -> Path:
    """The directory holding the first root's ``<owner>__<repo>`` folders."""
    return ROOTS["corpus"].path()


@dataclass(frozen=True)
class Folder:
    """One corpus folder as corpus.json describes it, and how the harness prepares it."""

    name: str
    meta: dict[str, Any]

    @property
    def root(self) -> Root:
        return ROOTS[str(self.meta.get("root", "corpus"))]

    @property
    def dir(self) -> str:
        """Where the folder sits inside its root (`v1/<name>` for corpus-more's Drizzle 1.0 folders)."""
        return str(self.meta.get("dir", self.name))

    @property
    def layout(self) -> str:
        """`journal` (drizzle-kit 0.x: meta/_journal.json) or `v1` (Drizzle 1.0: one folder per migration)."""
        return str(self.meta.get("layout", "journal"))

    def path(self) -> Path:
        return self.root.path() / self.dir

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
    def unavailable_extensions(self) -> dict[str, str]:
        """Extensions no server here has, by design: the folder is the case where both tools stop at them."""
        return {str(k): str(v) for k, v in self.harness.get("unavailable_extensions", {}).items()}

    @property
    def incremental(self) -> list[str]:
        return [str(p) for p in self.harness.get("incremental", [])]

    def expected(self, scenario: str, major: int) -> str | None:
        """corpus.json's expected outcome of a scenario (`fresh` or an incremental point) on `major`, if stated."""
        expect = self.harness.get("expect", {}).get(scenario)
        if isinstance(expect, dict):
            expect = expect.get(str(major))
        return None if expect is None else str(expect)

    def kept(self, scenario: str) -> dict[str, str] | None:
        """Where the two tools fail alike but keep different rows: the last migration each keeps, and why."""
        kept = self.harness.get("kept", {}).get(scenario)
        return None if kept is None else {str(k): str(v) for k, v in kept.items()}

    @property
    def source(self) -> str:
        return f"{self.meta['repo']} at {self.meta['commit']}:{self.meta['path']}"

    def runs_on(self, major: int) -> bool:
        return self.majors is None or major in self.majors

    def checksums(self) -> dict[str, str]:
        """Relative path inside the folder -> sha256, from its root's tracked SHA256SUMS."""
        sums: dict[str, str] = {}
        prefix = self.dir + "/"
        for line in self.root.sums.read_text().splitlines():
            digest, _, path = line.partition("  ")
            if path.startswith(prefix):
                sums[path.removeprefix(prefix)] = digest
        return sums


FOLDERS: list[Folder] = [Folder(str(m["name"]), m) for m in METADATA["folders"]]
BY_NAME = {f.name: f for f in FOLDERS}


def missing_message(folder: Folder, root: Path) -> str:
    """The sentence a test fails with when the data is not there."""
    how = (
        "rebuilt as tests/corpus/README.md says (git cat-file blob of the journal and every .sql file at that commit)"
        if folder.root.key == "corpus"
        else "as ../shared/corpus-more/SOURCES.md lists it (every .sql and journal file at that commit)"
    )
    return (
        f"corpus folder {folder.dir} is not in {root}: the corpus is not in git, so put a copy of "
        f"{folder.source} there (or point {folder.root.variable} at a directory holding it, or place it in "
        f"{folder.root.shared}), {how}, and check it with `sha256sum -c SHA256SUMS`"
    )


def verify(folder: Folder, root: Path) -> list[str]:
    """What differs between ``root/<dir>`` and the tracked SHA256SUMS, one sentence each; empty when equal.

    drizzle-kit's snapshots (``meta/*_snapshot.json``, 1.0's ``<migration>/snapshot.json``) may be present
    (the migrators never read them); any other file SHA256SUMS does not list is a difference.
    """
    base = root / folder.dir
    expected = folder.checksums()
    problems: list[str] = folder.root.problems()
    if not expected:
        return [*problems, f"{folder.root.sums.name} lists no file of {folder.dir}"]
    for rel, digest in sorted(expected.items()):
        path = base / rel
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(f"{path} differs from {folder.root.sums.name} (sha256 {digest[:12]}… expected)")
    for path in sorted(p for p in base.rglob("*") if p.is_file()):
        rel = path.relative_to(base).as_posix()
        snapshot = (rel.startswith("meta/") and rel.endswith("_snapshot.json")) or (
            folder.layout == "v1" and rel.endswith("/snapshot.json")
        )
        if rel not in expected and not snapshot:
            problems.append(f"{path} is not in {folder.root.sums.name}")
    return problems


def main() -> int:
    """Print the roots and each folder's state; exit 1 if any folder is absent or differs, 2 if none is there."""
    bad = absent = 0
    for root in ROOTS.values():
        print(f"corpus root ({root.key}): {root.path()}")
        for problem in root.problems():
            print(f"  {problem}")
        for folder in (f for f in FOLDERS if f.root is root):
            majors = "all majors" if folder.majors is None else "PostgreSQL " + ", ".join(map(str, folder.majors))
            if not folder.path().is_dir():
                state = "ABSENT"
                absent += 1
            else:
                problems = verify(folder, root.path())
                state = "ok" if not problems else f"DIFFERS ({len(problems)} files)"
            bad += state != "ok"
            print(f"  {folder.dir:62} {state:22} runs on {majors}")
    if absent == len(FOLDERS):
        return 2
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
