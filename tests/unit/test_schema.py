"""The schema model `verify` and `baseline` hold a database against (`core.schema`), replayed from SQL alone."""

from __future__ import annotations

from entrypoint.core.model import Migration
from entrypoint.core.schema import expected_objects


def _migration(idx: int, *statements: str) -> Migration:
    return Migration(idx=idx, tag=f"{idx:04d}_m", when=idx, hash=str(idx), statements=statements)


def test_replay_follows_renames_and_drops_and_survives_unparsable_sql() -> None:
    """The model follows table/column renames and drops across migrations, and counts what pglast cannot parse."""
    model, unparsed = expected_objects(
        [
            _migration(0, 'CREATE TABLE "a" ("x" int, "y" int, CONSTRAINT "a_y_unique" UNIQUE("y"))'),
            _migration(1, 'ALTER TABLE "a" RENAME TO "b"', 'ALTER TABLE "b" RENAME COLUMN "x" TO "z"'),
            _migration(2, 'ALTER TABLE "b" DROP COLUMN "y"', "THIS IS NOT SQL", "DO $$ BEGIN NULL; END $$"),
        ]
    )
    assert {(o.kind, o.schema, o.name, o.parent): tag for o, tag in model.live.items()} == {
        ("table", "public", "b", None): "0000_m",
        ("column", "public", "z", "b"): "0000_m",
        ("constraint", "public", "a_y_unique", "b"): "0000_m",
    }
    assert unparsed == {"0000_m": 0, "0001_m": 0, "0002_m": 1}
