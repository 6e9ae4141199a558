"""The catalogue reader's live sizes, on a real server: what the online index builds decide by."""

from __future__ import annotations

import psycopg

from entrypoint.core.online_parts import LiveTable
from entrypoint.db import catalog
from tests.support import query


def test_table_sizes_and_live_tables(database_url: str) -> None:
    """Rows from reltuples (0 before ANALYZE), bytes on disk; names found through the search_path or by schema."""
    query(database_url, "CREATE TABLE users (id serial PRIMARY KEY, email text)")
    query(database_url, 'CREATE SCHEMA "App"; CREATE TABLE "App"."Posts" (id int) PARTITION BY RANGE (id)')
    query(database_url, "CREATE VIEW v AS SELECT 1 AS one")
    with psycopg.connect(database_url, autocommit=True) as conn:
        fresh = catalog.table_sizes(conn, [("public", "users"), ("public", "missing")])
        assert list(fresh) == [("public", "users")]
        assert fresh["public", "users"].rows == 0
        conn.execute("INSERT INTO users (email) SELECT 'u' || n FROM generate_series(1, 5000) n")
        conn.execute("ANALYZE users")
        sized = catalog.table_sizes(conn, [("public", "users")])["public", "users"]
        assert sized.rows == 5000
        assert sized.bytes == conn.execute("SELECT pg_total_relation_size('users')").fetchone()[0]  # type: ignore[index]
        assert sized.bytes > 100_000
        assert catalog.table_sizes(conn, []) == {}

        live = catalog.live_tables(conn, [(None, "users"), ("public", "users"), ("App", "Posts"), (None, "v"),
                                          (None, "nothing")])  # fmt: skip
        assert live[None, "users"] == live["public", "users"] == LiveTable("public", "users", 5000, sized.bytes)
        assert live["App", "Posts"] == LiveTable("App", "Posts", 0, 0, partitioned=True)
        assert set(live) == {(None, "users"), ("public", "users"), ("App", "Posts")}


def test_a_table_an_app_holds_is_weighed_without_waiting_for_it(database_url: str) -> None:
    """An app holding ACCESS EXCLUSIVE on users: its size comes from pg_class's page counts, at once.

    pg_total_relation_size would queue behind that lock; the statement_timeout turns such a wait into a failure.
    """
    query(database_url, "CREATE TABLE users (id serial PRIMARY KEY, email text)")
    query(database_url, "INSERT INTO users (email) SELECT repeat('u', 3000) || n FROM generate_series(1, 2000) n")
    query(database_url, "VACUUM ANALYZE users")
    with psycopg.connect(database_url, autocommit=True) as conn, psycopg.connect(database_url) as app:
        files = catalog.table_sizes(conn, [("public", "users")])["public", "users"].bytes
        app.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        conn.execute("SET statement_timeout = '2s'")
        held = catalog.table_sizes(conn, [("public", "users")])["public", "users"]
        app.rollback()
    assert held.rows == 2000
    # The pages VACUUM counted: the heap, its TOAST table (the long emails) and the primary key.
    assert 0.8 * files <= held.bytes <= files
