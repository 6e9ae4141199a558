"""The runbook's step 6, as `python -m entrypoint demo` checks it after the deploy.

This module owns what a good deploy must leave behind and how each check reads:
users per role unchanged, the 43 `idx_%` indexes, a ledger numbered 0..n without
gaps whose hashes and timestamps match the files, /health answering 200 within
the runbook's budget, and the app stopping cleanly on SIGTERM. It only reads the
database and the deploy's results it is given; `entrypoint.demo` prints the lines.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import psycopg

INDEXES, HEALTH_BUDGET_MS = 43, 100


def users(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    """Every row of `users`, in id order: taken before the deploy, compared after it."""
    return [tuple(row) for row in conn.execute("SELECT * FROM users ORDER BY id").fetchall()]


def step6(
    conn: psycopg.Connection[Any],
    *,
    users_before: list[tuple[Any, ...]],
    managers: int,
    fbos: int,
    ledger: Sequence[tuple[int, str, int]],
    health: Sequence[tuple[int, float]],
    app_exit_code: int | None,
) -> list[tuple[bool, str]]:
    """One (passed, line) per check; `ledger` is the expected (id, hash, created_at) rows, `health` (status, ms)."""
    results = []

    roles = dict(conn.execute("SELECT role::text, count(*) FROM users GROUP BY 1").fetchall())
    same = users(conn) == users_before
    wanted = {"manager": managers, "fbo": fbos}
    results.append(
        (
            same and roles == wanted,
            f"Users per role unchanged: {roles.get('manager', 0)} managers, {roles.get('fbo', 0)} FBOs"
            + ("" if same else " (but rows changed during the deploy)")
            + ("" if roles == wanted else f" (expected {managers} managers, {fbos} FBOs)"),
        )
    )

    row = conn.execute("SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'idx\\_%'").fetchone()
    indexes = int(row[0]) if row else 0
    results.append(
        (
            indexes == INDEXES,
            f"{indexes} idx_% indexes in pg_indexes" + ("" if indexes == INDEXES else f" (expected {INDEXES})"),
        )
    )

    rows = [tuple(r) for r in conn.execute("SELECT id, hash, created_at FROM drizzle.__drizzle_migrations ORDER BY id")]
    expected = list(ledger)
    if rows == expected:
        line = (
            f"{len(rows)} ledger rows, ids 0..{len(rows) - 1} without gaps, each hash = sha256 of its file and "
            "created_at = its `when`"
        )
    else:
        diff = [(got, want) for got, want in zip(rows, expected, strict=False) if got != want]
        why = f"first wrong row {diff[0][0]!r}, expected {diff[0][1]!r}" if diff else "rows missing or extra"
        line = f"Ledger: {len(rows)} rows, expected {len(expected)} numbered 0..{len(expected) - 1}; {why}"
    results.append((rows == expected, line))

    (status, first_ms), warm = health[0], health[1:]
    typical = statistics.median(ms for _, ms in warm)  # the first call opens the app's pool: not typical
    all_ok = all(code == 200 for code, _ in health)  # noqa: PLR2004 - HTTP OK
    results.append(
        (
            all_ok and typical < HEALTH_BUDGET_MS,
            (
                f"/health answered {status or 'nothing'} in {typical:.0f} ms (first call {first_ms:.0f} ms, "
                f"opening the app's pool; runbook: 200 in under {HEALTH_BUDGET_MS} ms)"
            ),
        )
    )

    results.append(
        (
            app_exit_code == 0,
            "The app stopped cleanly on SIGTERM (exit 0)"
            if app_exit_code == 0
            else f"The app did not stop cleanly on SIGTERM (exit {app_exit_code}, expected 0)",
        )
    )
    return results
