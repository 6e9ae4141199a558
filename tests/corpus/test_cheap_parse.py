"""Every chunk of every corpus folder reads alike from the parser's JSON tree and from pglast's full AST.

The deploy reads each migration's one parse cheaply (the JSON tree, `entrypoint.core.sql`); this holds
it to the readers as they were over the full AST (`tests/full_parse.py`): the facts the commit planning
and the pipeline act on, the lint's findings and the schema model. No server is needed, so every folder
is read whatever the server's major; a folder absent or altered fails, as in the rest of the corpus.
"""

from __future__ import annotations

import pytest

from entrypoint.journal import read_journal
from tests.corpus.source import FOLDERS, Folder, missing_message, verify
from tests.full_parse import disagreements

pytestmark = pytest.mark.corpus


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda folder: folder.name)
def test_every_chunk_reads_alike(folder: Folder) -> None:
    """The facts, findings and schema objects of each folder are the same from both parses."""
    root = folder.root.path()
    if not folder.path().is_dir():
        pytest.fail(missing_message(folder, root))
    assert verify(folder, root) == []
    migrations = read_journal(folder.path()).migrations
    assert len(migrations) == folder.meta["migrations"]
    assert disagreements(migrations) == []
