"""The migration lock's key (`db.lock.lock_key`): one per ledger, stable, as documented."""

from __future__ import annotations

import hashlib

from entrypoint.db.lock import lock_key


def test_key_depends_on_database_schema_and_table() -> None:
    """Two ledgers never share a lock key; the key is stable across runs."""
    keys = {
        lock_key("app", "drizzle", "__drizzle_migrations"),
        lock_key("app2", "drizzle", "__drizzle_migrations"),
        lock_key("app", "ops", "__drizzle_migrations"),
        lock_key("app", "drizzle", "ledger"),
    }
    assert len(keys) == 4
    documented = hashlib.sha256(b"entrypoint\0app\0drizzle\0__drizzle_migrations").digest()[:8]
    assert lock_key("app", "drizzle", "__drizzle_migrations") == int.from_bytes(documented, "big", signed=True)
