"""The backup layer's check of a dump (`backup.dump.check_archive`), on real dumps of a real server."""

from __future__ import annotations

import subprocess
from pathlib import Path

from entrypoint.backup.tools import check_archive
from tests.drizzle_ref import EXAMPLE_MIGRATIONS, drizzle_migrate
from tests.support import query


def _dump_of(url: str, pg_server, target: Path) -> Path:
    subprocess.run(
        [str(pg_server.bin("pg_dump")), "-Fc", "-f", str(target), f"--dbname={url}"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return target


def test_a_truncated_dump_passes_pg_restore_list_but_not_the_check(
    database_url: str, tmp_path: Path, pg_server
) -> None:
    """`pg_restore --list` reads only the table of contents, so a cut dump passes it; the whole-read check does not."""
    assert drizzle_migrate(database_url, EXAMPLE_MIGRATIONS).returncode == 0
    query(
        database_url,
        "INSERT INTO users (email, password_hash, first_name, last_name, role) "
        "SELECT 'u' || n || '@x', md5(n::text), 'F', 'L', 'fbo' FROM generate_series(1, 5000) n",
    )
    whole = _dump_of(database_url, pg_server, tmp_path / "whole.dump")
    cut = tmp_path / "cut.dump"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    pg_restore = str(pg_server.bin("pg_restore"))
    listed = subprocess.run([pg_restore, "--list", str(cut)], capture_output=True, text=True, check=False)
    assert listed.returncode == 0, "pg_restore --list must accept the cut dump, or this test proves nothing"
    assert check_archive(whole, pg_restore) is None
    problem = check_archive(cut, pg_restore)
    assert problem is not None
    assert "pg_restore" in problem
