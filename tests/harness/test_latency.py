"""The benchmark's delaying proxy: each chunk held the set time each way, and the round trips counted."""

from __future__ import annotations

import time
from urllib.parse import urlsplit, urlunsplit

import psycopg

from harness.latency import DelayProxy

DELAY = 0.05


def test_each_wait_costs_the_delay_twice_and_counts_once(database_url: str) -> None:
    """Three statements one after the other: three round trips, each at least twice the delay; pipelined: one."""
    parts = urlsplit(database_url)
    with DelayProxy((parts.hostname or "127.0.0.1", parts.port or 5432), DELAY) as proxy:
        url = urlunsplit(parts._replace(netloc=parts.netloc.rsplit(":", 1)[0] + f":{proxy.port}"))
        with psycopg.connect(url, autocommit=True) as conn:
            connected = proxy.round_trips
            started = time.monotonic()
            for _ in range(3):
                conn.execute("SELECT 1").fetchone()
            elapsed = time.monotonic() - started
            waited = proxy.round_trips - connected
            with conn.pipeline():
                cursors = [conn.execute("SELECT 1") for _ in range(3)]
            assert [cur.fetchone() for cur in cursors] == [(1,)] * 3
            pipelined = proxy.round_trips - connected - waited
    assert waited == 3
    assert elapsed >= 3 * 2 * DELAY
    assert pipelined == 1
    assert proxy.by_connection[0] == proxy.round_trips
