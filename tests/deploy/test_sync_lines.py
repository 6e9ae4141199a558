"""The sync's lines say what changed: an edited file's new hash is warned about, and a row kept in place says so."""

from __future__ import annotations

import hashlib

from harness.production import journal_entries
from tests.drizzle_ref import EXAMPLE_MIGRATIONS, drizzle_migrate
from tests.support import ledger, output_of, query, run_entrypoint


def test_an_edited_file_warns_and_its_row_is_rewritten_in_place(database_url: str) -> None:
    """A row found by its date with an older hash (the file was edited after it was applied): a ⚠️ line.

    Its repair line says `   5 (tag) : hash mis à jour`, never `5 → 5 (tag)`.
    """
    assert drizzle_migrate(database_url, EXAMPLE_MIGRATIONS).returncode == 0
    old = hashlib.sha256(b"the file as it was applied").hexdigest()
    query(database_url, "UPDATE drizzle.__drizzle_migrations SET hash = %s WHERE id = 5", (old,))
    tag = journal_entries(EXAMPLE_MIGRATIONS)[4]["tag"]
    result = run_entrypoint([], url=database_url, folder=EXAMPLE_MIGRATIONS)
    out = output_of(result)
    assert result.returncode == 0, out
    lines = result.stdout.splitlines()
    assert lines.pop(0).startswith("📍 Restore point: ")  # the repair is this run's first change
    assert lines[2:7] == [
        "⚠️  Désynchronisation détectée - correction en cours...",
        "🔧 Mise à jour de 1 migrations...",
        f"   5 ({tag}) : hash mis à jour",
        f"⚠️  {tag} a été modifiée depuis son application (hash différent) : elle ne sera pas rejouée",
        "✅ Migrations synchronisées avec succès !",
    ]
    assert "5 → 5" not in out
    assert ledger(database_url)[4][1] == hashlib.sha256((EXAMPLE_MIGRATIONS / f"{tag}.sql").read_bytes()).hexdigest()
