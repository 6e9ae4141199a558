"""A TCP proxy on loopback that delays every chunk by a set time each way: a database across a network.

The benchmark's latency scenario (bench/run.py) and the pipeline's tests (tests/deploy/test_pipeline.py)
both put it between a client and their PostgreSQL.

Render's database is not on loopback: every round trip a migrator waits for costs the network's
latency twice. `DelayProxy` stands between a client and the benchmark's PostgreSQL and holds each
chunk it reads `delay` seconds before passing it on, in order, in both directions: a delay line, as
`tc qdisc … netem delay` would be, without root and without touching the loopback other processes
use. Chunks are delayed from the moment they arrive, not one after the other, so a client that sends
ahead (psycopg's pipeline mode) is not charged twice. `time.sleep` overshoots by ~0.1-0.3 ms here, so
a 1 ms setting is about 1.3 ms each way, the latency the issue measured.

It also counts round trips: a chunk from the server that follows one or more chunks from the client
(the connection's start-up and authentication included). A client that waits for each statement's
result counts one per statement; a client that pipelines N statements and reads their results counts
one, or a few when the server starts answering before the last statement has arrived (so, for a
pipelining client, an upper bound of the times it waited).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Self

CHUNK = 1 << 16


class _DelayLine:
    """One direction of one connection: chunks read from `source` are written to `sink` `delay` s later."""

    def __init__(self, source: socket.socket, sink: socket.socket, delay: float, on_chunk: Callable[[], None]) -> None:
        self.source, self.sink, self.delay = source, sink, delay
        self.on_chunk = on_chunk  # called with no argument for each chunk read (the round-trip counter)
        self.queue: deque[tuple[float, bytes]] = deque()
        self.ready = threading.Condition()
        self.threads = [
            threading.Thread(target=self._read, daemon=True, name="delay-read"),
            threading.Thread(target=self._write, daemon=True, name="delay-write"),
        ]
        for thread in self.threads:
            thread.start()

    def _read(self) -> None:
        while True:
            try:
                data = self.source.recv(CHUNK)
            except OSError:
                data = b""
            if data:
                self.on_chunk()
            with self.ready:
                self.queue.append((time.monotonic() + self.delay, data))
                self.ready.notify()
            if not data:
                return

    def _write(self) -> None:
        while True:
            with self.ready:
                while not self.queue:
                    self.ready.wait()
                due, data = self.queue.popleft()
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            try:
                if not data:  # the source closed: pass the end on
                    self.sink.shutdown(socket.SHUT_WR)
                    return
                self.sink.sendall(data)
            except OSError:
                return


class DelayProxy:
    """Listen on 127.0.0.1 (a free port), forward to `target`, delaying each chunk `delay` seconds each way.

    Use as a context manager; `port` is where clients connect, `round_trips` what they waited for
    (`by_connection`: each connection's, in the order they connected).
    """

    def __init__(self, target: tuple[str, int], delay: float) -> None:
        self.target, self.delay = target, delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.by_connection: list[int] = []  # round trips of each connection, in the order they were accepted
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True, name="delay-accept")

    def __enter__(self) -> Self:
        self._accepting.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    @property
    def round_trips(self) -> int:
        """Round trips counted since the last reset (or the start), every connection's."""
        with self._lock:
            return sum(self.by_connection)

    def reset(self) -> int:
        """The round trips counted since the last reset (or the start), and start counting again."""
        with self._lock:
            counted, self.by_connection = sum(self.by_connection), []
        return counted

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # the listener was closed
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets += [client, server]
                self.by_connection.append(0)
                counts, index = self.by_connection, len(self.by_connection) - 1
            sent = threading.Event()  # the client sent something the server has not answered yet

            def asked(sent: threading.Event = sent) -> None:
                sent.set()

            def answered(sent: threading.Event = sent, counts: list[int] = counts, index: int = index) -> None:
                if sent.is_set():
                    sent.clear()
                    with self._lock:
                        counts[index] += 1  # after a reset, into the old list: a connection still open counts no more

            _DelayLine(client, server, self.delay, asked)
            _DelayLine(server, client, self.delay, answered)
