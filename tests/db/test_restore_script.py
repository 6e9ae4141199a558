"""pg_restore's plain-text script run on our own connection (backup/script.py), against a real server."""

from __future__ import annotations

import psycopg
import pytest

from entrypoint.backup import script

SCRIPT = b"""--
-- PostgreSQL database dump
--

\\restrict AbC123

SET statement_timeout = 0;
SET lock_timeout = 0;
SET client_encoding = 'UTF8';
SELECT pg_catalog.set_config('search_path', '', false);

CREATE TABLE public.notes (id integer, body text);
CREATE FUNCTION public.twice(integer) RETURNS integer LANGUAGE sql AS $$
SELECT $1 * 2;
$$;

COPY public.notes (id, body) FROM stdin;
1\tfirst
\\N\ta NULL id, a line that starts with a backslash
3\ttab\\there
\\.

SELECT pg_catalog.set_config('application_name', 'restored', false);

\\unrestrict AbC123
"""


def test_the_script_runs_in_our_transaction_as_psql_would(database_url: str) -> None:
    """Statements, a function body, a COPY block (a row starting with a backslash), the fence skipped; our lock_timeout holds."""
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT set_config('lock_timeout', '1234ms', true)")
        seen: list[str] = []
        script.run(cur, SCRIPT.splitlines(keepends=True), seen.append)
        assert cur.execute("SELECT current_setting('lock_timeout')").fetchone() == ("1234ms",)
        assert cur.execute("SELECT id, body FROM public.notes ORDER BY id NULLS FIRST").fetchall() == [
            (None, "a NULL id, a line that starts with a backslash"),
            (1, "first"),
            (3, "tab\there"),
        ]
        assert cur.execute("SELECT public.twice(21)").fetchone() == (42,)
        assert "COPY public.notes" in seen
        conn.rollback()  # it ran in the caller's transaction: nothing of it stays
        assert cur.execute("SELECT to_regclass('public.notes')").fetchone() == (None,)


def test_a_psql_command_other_than_the_fence_is_refused(database_url: str) -> None:
    """A psql command (only psql can run `connect`) stops the script there: ScriptError, nothing sent after it."""
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        with pytest.raises(script.ScriptError, match=r"\\connect"):
            script.run(
                cur, [b"CREATE TABLE public.a (id int);\n", b"\\connect other\n", b"CREATE TABLE public.b ();\n"]
            )
        assert cur.execute("SELECT to_regclass('public.a'), to_regclass('public.b')").fetchone() == (None, None)
