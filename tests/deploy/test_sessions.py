"""A session lost mid-migration, with or without a SQLSTATE: nothing was committed, so a new one re-plans and applies once."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support import FIFTY_USERS, ledger, query, start_entrypoint


def test_connection_killed_mid_migration_restarts_the_session(
    database_url: str, users_app: Callable[..., Path]
) -> None:
    """57P01 mid-transaction: nothing was committed, so a new session re-plans and applies it once."""
    base = users_app(
        ("slow_column", 'ALTER TABLE "users" ADD COLUMN "slow" text;\n--> statement-breakpoint\nSELECT pg_sleep(2);'),
        rows=FIFTY_USERS,
    )
    proc = start_entrypoint([], url=database_url, folder=base)
    deadline = time.monotonic() + 30
    killed: list[tuple[object, ...]] = []
    while not killed and time.monotonic() < deadline:
        killed = query(
            database_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE '%pg_sleep(2)%' AND pid <> pg_backend_pid() AND application_name = 'entrypoint'",
        )
        time.sleep(0.05)
    assert killed == [(True,)]
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "🔌 Lost the database connection (" in out
    assert out.count("   ✔ 0001_slow_column (") == 1
    assert len(ledger(database_url)) == 2
    assert query(database_url, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'slow'") == [(1,)]


class _Proxy:
    """A TCP forwarder to the server that can drop every connection at once, as a dying proxy would."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass

    def drop_all(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # close() alone would not wake a blocked recv, nor send a FIN
            sock.close()
        self.sockets.clear()


def test_a_socket_closed_without_sqlstate_restarts_the_session(
    database_url: str, pg_server: Any, users_app: Callable[..., Path]
) -> None:
    """The proxy dies mid-migration (no SQLSTATE, just a closed socket): the session restarts and applies once."""
    folder = users_app(("slow", 'SELECT pg_sleep(3);\n--> statement-breakpoint\nCREATE TABLE "s" ("id" int);'))
    proxy = _Proxy(pg_server.port)
    url = database_url.replace(f":{pg_server.port}/", f":{proxy.port}/")
    proc = start_entrypoint([], url=url, folder=folder)
    time.sleep(1.5)
    proxy.drop_all()
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "🔌 Lost the database connection (" in out
    assert query(database_url, "SELECT to_regclass('s') IS NOT NULL") == [(True,)]
    assert len(ledger(database_url)) == 2
