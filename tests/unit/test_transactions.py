"""Where a run commits: units and their reasons, per mode, from classified migrations."""

from __future__ import annotations

import hashlib
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from entrypoint.core.model import MODES, Migration, Mode, Refusal
from entrypoint.core.transactions import classify, plan_units

PG18 = 180000
KINDS = {
    "plain": (b'CREATE TABLE "t{n}" ("id" serial PRIMARY KEY);',),
    "enum_value": (b"ALTER TYPE \"mood\" ADD VALUE 'v{n}';",),
    "concurrently": (b'CREATE INDEX CONCURRENTLY "i{n}" ON "t" ("id");',),
    "own_commit": (
        b'CREATE TABLE "c{n}" ("id" int);',
        b"COMMIT;",
        b'CREATE INDEX CONCURRENTLY "ci{n}" ON "c{n}" ("id");',
    ),
    "wrapped": (b"BEGIN;", b'CREATE TABLE "w{n}" ("id" int);', b"COMMIT;"),
    "rollback": (b'CREATE TABLE "r{n}" ("id" int);', b"ROLLBACK;"),
}


def _migration(n: int, kind: str) -> Migration:
    statements = tuple(s.replace(b"{n}", str(n).encode()) for s in KINDS[kind])
    digest = hashlib.sha256(b"".join(statements)).hexdigest()
    return Migration(n, f"{n:04d}_{kind}", 1_700_000_000_000 + n, digest, statements)


def _units(kinds: list[str], mode: Mode = "auto") -> list[tuple[str, list[str]]] | Refusal:
    units = plan_units(classify([_migration(n, k) for n, k in enumerate(kinds)], PG18), mode)
    if isinstance(units, Refusal):
        return units
    return [(u.kind, [m.tag.split("_", 1)[1] for m in u.migrations]) for u in units]


def test_the_issue_reproduction_commits_where_postgresql_requires() -> None:
    """enum + table + COMMIT; CONCURRENTLY; ADD VALUE; a use: own, outside, then the new value committed first."""
    assert _units(["own_commit", "concurrently", "enum_value", "plain"]) == [
        ("own", ["own_commit"]),
        ("outside", ["concurrently"]),
        ("transaction", ["enum_value"]),
        ("transaction", ["plain"]),
    ]


def test_ordinary_migrations_share_one_transaction() -> None:
    """Nothing that needs a commit: one transaction, as drizzle-orm runs them."""
    assert _units(["plain", "plain", "wrapped", "plain", "plain"]) == [
        ("transaction", ["plain", "plain"]),
        ("own", ["wrapped"]),
        ("transaction", ["plain", "plain"]),
    ]


def test_an_enum_value_last_needs_no_extra_commit() -> None:
    """ADD VALUE in the last migration: nothing after it can use the value, so no boundary."""
    assert _units(["plain", "enum_value"]) == [("transaction", ["plain", "enum_value"])]


def test_per_migration_mode() -> None:
    """TRANSACTION_MODE=per-migration: a transaction each."""
    assert _units(["plain", "plain", "concurrently"], "per-migration") == [
        ("transaction", ["plain"]),
        ("transaction", ["plain"]),
        ("outside", ["concurrently"]),
    ]


def test_single_mode_refuses_what_one_transaction_cannot_hold() -> None:
    """TRANSACTION_MODE=single: refused up front for CONCURRENTLY or an own COMMIT, naming the setting."""
    refused = _units(["plain", "concurrently"], "single")
    assert isinstance(refused, Refusal)
    assert refused.reason == "single"
    assert "0001_concurrently cannot run in one transaction" in refused.detail
    assert "TRANSACTION_MODE=auto" in refused.detail
    assert _units(["plain", "enum_value", "plain"], "single") == [("transaction", ["plain", "enum_value", "plain"])]


def test_a_rollback_is_refused_in_every_mode() -> None:
    """A file with its own ROLLBACK is refused whatever the mode."""
    for mode in MODES:
        refused = _units(["plain", "rollback"], mode)
        assert isinstance(refused, Refusal)
        assert refused.reason == "rollback"
        assert "0001_rollback runs its own ROLLBACK (statement 2/2)" in refused.detail


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(sorted(KINDS.keys() - {"rollback"})), min_size=1, max_size=10))
def test_units_keep_the_order_and_commit_only_where_needed(kinds: list[str]) -> None:
    """Auto mode: order kept; special migrations alone; a boundary between two ordinary ones only after ADD VALUE."""
    units = _units(kinds)
    assert not isinstance(units, Refusal)
    assert [k for _, tags in units for k in tags] == kinds
    for kind, tags in units:
        if kind != "transaction":
            assert len(tags) == 1
            assert tags[0] in {"concurrently", "own_commit", "wrapped"}
        else:
            assert not {"concurrently", "own_commit", "wrapped"} & set(tags)
            assert "enum_value" not in tags[:-1]
    for (kind, tags), (next_kind, _) in itertools.pairwise(units):
        if kind == next_kind == "transaction":
            assert tags[-1] == "enum_value"
