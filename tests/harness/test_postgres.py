"""The throwaway PostgreSQL helper (harness/postgres.py) and the fixtures over it (tests/fix_pg.py)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from urllib.parse import quote, unquote, urlsplit

import psycopg
import pytest
from psycopg import ClientCursor

from harness.postgres import PgBouncer, PgCluster, PgServer, find_bin_dir, find_free_port, make_url
from tests.fix_pg import selected_major, unique_db_name


def _dbname(url: str) -> str:
    return unquote(urlsplit(url).path.lstrip("/"))


def test_fresh_database_is_empty(database_url: str) -> None:
    """A test's database exists, is named for the test and has no user tables."""
    with psycopg.connect(database_url) as conn:
        name = conn.execute("select current_database()").fetchone()
        tables = conn.execute(
            "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname not in ('pg_catalog', 'information_schema')"
            " and n.nspname not like 'pg_toast%'"
        ).fetchone()
    assert name is not None
    assert name[0] == _dbname(database_url)
    assert name[0].startswith("t_test_fresh_database_is_empty_")
    assert tables == (0,)


def test_databases_are_distinct(database_factory: Callable[..., str], admin_url: str) -> None:
    """Two fresh databases differ, and a table in one is absent from the other."""
    a, b = database_factory(), database_factory()
    assert _dbname(a) != _dbname(b)
    with psycopg.connect(a) as conn:
        conn.execute("create table only_in_a (id int)")
    with psycopg.connect(b) as conn:
        assert conn.execute("select to_regclass('only_in_a')").fetchone() == (None,)
    with psycopg.connect(admin_url) as conn:
        names = {r[0] for r in conn.execute("select datname from pg_database")}
    assert {_dbname(a), _dbname(b)} <= names


def test_unique_db_name_fits() -> None:
    """Generated database names are valid unquoted identifiers of at most 63 chars."""
    name = unique_db_name("test_x[" + "Param-Ünïcode " * 20 + "]")
    assert len(name) <= 63
    assert name.startswith("t_test_x_param_")
    assert name.replace("_", "").isalnum()
    assert name == name.lower()


def test_server_major_matches_env(pg_server: PgServer) -> None:
    """The running server is the major version asked for (on an external server: the one it reports)."""
    with psycopg.connect(pg_server.url()) as conn:
        live = conn.info.server_version // 10000
    external_unpinned = os.environ.get("TEST_DATABASE_URL") and not os.environ.get("ENTRYPOINT_TEST_PG")
    expected = live if external_unpinned else selected_major()
    assert live == pg_server.major == expected
    if not external_unpinned:
        # and its client tools are of the same version
        out = subprocess.run([pg_server.bin("pg_dump"), "--version"], capture_output=True, text=True, check=True)
        assert f"(PostgreSQL) {expected}." in out.stdout


def test_password_is_required(pg_server: PgServer, database_url: str) -> None:
    """Over TCP the server rejects a URL without, or with a wrong, password."""
    assert pg_server.password
    dbname = _dbname(database_url)
    for bad in (
        pg_server.url(dbname, password=False),
        pg_server.url(dbname, password="nope"),
    ):
        with pytest.raises(psycopg.OperationalError) as info:
            psycopg.connect(bad, connect_timeout=5)
        assert "password" in str(info.value)
    with psycopg.connect(database_url):
        pass


def test_password_needs_percent_encoding(pg_server: PgServer, database_url: str) -> None:
    """The password holds URL-special characters and the URL carries it encoded only."""
    pw = pg_server.password
    assert {"@", "/", ":", "%"} <= set(pw)
    assert pw not in database_url
    assert quote(pw, safe="") in database_url
    # a naively built URL does not work: the password must be encoded
    naive = f"postgresql://postgres:{pw}@{pg_server.host}:{pg_server.port}/{_dbname(database_url)}"
    with pytest.raises(psycopg.Error):  # unparsable, or the wrong password
        psycopg.connect(naive, connect_timeout=5)


def test_make_url_round_trips_through_libpq() -> None:
    """make_url encodes every part so libpq parses back exactly what went in."""
    from psycopg.conninfo import conninfo_to_dict

    url = make_url(host="/run/x y", port=5433, dbname="d b/ü", user="u@s:r", password="p@:/%41 #")
    parsed = conninfo_to_dict(url)
    assert parsed == {
        "host": "/run/x y",
        "port": "5433",
        "dbname": "d b/ü",
        "user": "u@s:r",
        "password": "p@:/%41 #",
    }


def test_cluster_factory_start_stop(cluster_factory: Callable[..., PgCluster]) -> None:
    """A factory cluster is not running until started, serves queries, then stops."""
    port = find_free_port()
    cluster = cluster_factory(port=port)
    assert cluster.port == port
    assert not cluster.is_running()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(cluster.url(), connect_timeout=2)
    cluster.start()
    assert cluster.is_running()
    with psycopg.connect(cluster.url()) as conn:
        assert conn.execute("show max_connections").fetchone() == ("200",)
        assert conn.execute("show fsync").fetchone() == ("off",)
        assert conn.info.server_version // 10000 == cluster.major == selected_major()
    assert cluster.log_file.exists()
    cluster.stop()
    assert not cluster.is_running()
    cluster.start()  # restartable, same port and password
    with psycopg.connect(cluster.url()) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_factory_clusters_are_independent(cluster_factory: Callable[..., PgCluster], pg_server: PgServer) -> None:
    """Each factory cluster has its own port and password; stopping one leaves the rest."""
    a = cluster_factory(start=True)
    b = cluster_factory(start=True)
    assert len({a.port, b.port, pg_server.port}) == 3
    assert a.password != b.password
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(a.url(password=b.password), connect_timeout=5)
    a.stop()
    with psycopg.connect(b.url()) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
    with psycopg.connect(pg_server.url()) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_pgbouncer_routes_queries(pgbouncer_url: str, database_url: str) -> None:
    """Queries through the bouncer reach this test's database with the same password."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("create table t (x int)")
    with psycopg.connect(pgbouncer_url, autocommit=True, prepare_threshold=None) as conn:
        conn.execute("insert into t values (42)")
        assert conn.execute("select current_database(), x from t").fetchone() == (
            _dbname(database_url),
            42,
        )
    encoded_pw = urlsplit(pgbouncer_url).password
    assert encoded_pw
    bad = pgbouncer_url.replace(encoded_pw, "nope")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(bad, connect_timeout=5)


def test_pgbouncer_transaction_mode(pgbouncer: PgBouncer) -> None:
    """In transaction mode two connected clients share one server session, SETs included."""
    url = pgbouncer.url()
    with (
        psycopg.connect(url, autocommit=True, prepare_threshold=None) as a,
        psycopg.connect(url, autocommit=True, prepare_threshold=None) as b,
    ):
        a.execute("set statement_timeout = '123s'")
        pid_a = a.execute("select pg_backend_pid()").fetchone()
        # a stays connected but idle: in session mode b would get its own backend
        pid_b = b.execute("select pg_backend_pid()").fetchone()
        assert pid_a == pid_b
        assert b.execute("show statement_timeout").fetchone() == ("123s",)
    # the admin console (simple query protocol only) confirms the pool mode
    with (
        psycopg.connect(pgbouncer.url("pgbouncer"), autocommit=True) as admin,
        ClientCursor(admin) as cur,
    ):
        cur.execute("SHOW CONFIG")
        config = {row[0]: row[1] for row in cur.fetchall()}
    assert config["pool_mode"] == "transaction"


def test_find_bin_dir_honours_the_major() -> None:
    """The binaries found for the selected major are that major's; with no major, some server's are found."""
    from harness.postgres import server_major

    assert server_major(find_bin_dir(selected_major())) == selected_major()
    assert (find_bin_dir() / "postgres").exists()


def test_kept_cluster_outlives_its_owner_and_has_a_pgpass(cluster_factory: Callable[..., PgCluster]) -> None:
    """keep() forgets the cluster for the atexit stop and the reaper, and its pgpass file logs in."""
    from harness.postgres import _LIVE, reap_stale_clusters

    cluster = cluster_factory(start=True)
    pgpass = cluster.keep()
    assert id(cluster) not in _LIVE
    assert not (cluster.base_dir / "owner.pid").exists()
    assert cluster.base_dir not in reap_stale_clusters(cluster.base_dir.parent)
    assert pgpass.stat().st_mode & 0o777 == 0o600
    with psycopg.connect(cluster.url(password=False), passfile=str(pgpass), connect_timeout=5) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
