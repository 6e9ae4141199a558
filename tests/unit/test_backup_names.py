"""The backup's name says the state it saves, and a restart finds it by that name: pure, no server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from entrypoint import config
from entrypoint.backup.reuse import State, reusable_file
from entrypoint.errors import UsageError

URL = "postgresql://app:s3cret@db.example:5432/app"
STATE = State(
    "app",
    "0010_perpetual_magneto",
    (("0011_performance_indexes", "ab" * 32),),
    "7716574148693599271 at 10.0.0.5:5432",
    16385,
)
NOW = datetime(2026, 12, 1, 18, 31, 58, tzinfo=UTC)


def test_the_name_holds_the_database_the_last_tag_the_pending_set_and_the_time() -> None:
    """`<database>-<8 hex of server and OID>-<last tag>-<12 hex of the pending set>-<UTC time>.dump`."""
    assert STATE.name(NOW) == f"app-{STATE.instance}-0010_perpetual_magneto-{STATE.digest}-20261201T183158.000Z.dump"
    assert len(STATE.digest) == 12
    assert len(STATE.instance) == 8
    assert STATE.taken_at(STATE.name(NOW)) == NOW


def test_two_backups_in_the_same_second_have_two_names() -> None:
    """Milliseconds in the name: a restart's backup never replaces the one taken a moment before it."""
    later = NOW.replace(microsecond=371_900)
    assert STATE.name(later).endswith("-20261201T183158.371Z.dump")
    assert STATE.name(later) != STATE.name(NOW)
    assert STATE.taken_at(STATE.name(later)) == NOW.replace(microsecond=371_000)


def test_a_name_without_milliseconds_is_still_found() -> None:
    """Earlier versions named backups to the second: such a backup is still this state's, taken then."""
    assert STATE.taken_at(f"app-{STATE.instance}-0010_perpetual_magneto-{STATE.digest}-20261201T183158Z.dump") == NOW
    assert STATE.taken_at(f"app-{STATE.instance}-0010_perpetual_magneto-{STATE.digest}-20261201T183158.1Z.dump") is None


def test_another_pending_set_or_database_is_another_state() -> None:
    """A different pending file (same tag, edited), or another database, never matches."""
    edited = State(
        "app", STATE.last_tag, (("0011_performance_indexes", "cd" * 32),), "7716574148693599271 at 10.0.0.5:5432", 16385
    )
    assert edited.digest != STATE.digest
    assert edited.taken_at(STATE.name(NOW)) is None
    assert (
        State("app2", STATE.last_tag, STATE.pending, "7716574148693599271 at 10.0.0.5:5432", 16385).taken_at(
            STATE.name(NOW)
        )
        is None
    )
    assert STATE.taken_at(f".{STATE.name(NOW)}.partial") is None  # a partial dump is never reused


def test_unsafe_characters_never_reach_the_file_name() -> None:
    """A database name with a slash or a space stays one file name."""
    assert "/" not in State("my db/x", "t", ()).name(NOW)


def test_a_restart_reuses_the_newest_fresh_backup_only(tmp_path: Path) -> None:
    """Within the window the newest of the same state; an older one, or window 0, is not reused."""
    fresh, older = STATE.name(NOW - timedelta(minutes=5)), STATE.name(NOW - timedelta(hours=3))
    for name in (fresh, older, ".x.partial"):
        (tmp_path / name).write_bytes(b"dump")
    assert reusable_file(tmp_path, STATE, NOW, 3600) == (tmp_path / fresh, 300.0)
    assert reusable_file(tmp_path, STATE, NOW, 0) is None
    (tmp_path / fresh).unlink()
    assert reusable_file(tmp_path, STATE, NOW, 3600) is None


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("s3://backups", ("backups", "")),
        ("s3://backups/render/", ("backups", "render")),
        ("s3://my.backups-1/a/b", ("my.backups-1", "a/b")),
        ("https://backups/x", None),
        ("s3://UPPER/x", None),
        ("s3://ab", None),
    ],
)
def test_s3_urls(url: str, parsed: tuple[str, str] | None) -> None:
    """s3://bucket[/prefix] with S3's bucket naming rules."""
    assert config.parse_s3_url(url) == parsed


def test_a_bad_backup_url_is_a_usage_error(tmp_path: Path) -> None:
    """BACKUP_URL that is not s3://bucket/prefix: exit 2 before anything."""
    with pytest.raises(UsageError) as caught:
        config.load(config.DEPLOY, {}, {"DATABASE_URL": URL, "BACKUP_URL": "https://x.r2.dev/b"}, tmp_path)
    assert "is not an S3 location: use s3://bucket or s3://bucket/prefix" in caught.value.message


def test_the_s3_secret_and_token_are_secrets(tmp_path: Path) -> None:
    """AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN are scrubbed; the key id is not a secret."""
    env = {"DATABASE_URL": URL, "AWS_SECRET_ACCESS_KEY": "k/e+y=", "AWS_SESSION_TOKEN": "t0k", "AWS_ACCESS_KEY_ID": "A"}
    settings = config.load(config.DEPLOY, {}, env, tmp_path)
    assert {"k/e+y=", "t0k", "s3cret"} <= set(settings.secrets())
    assert "A" not in settings.secrets()
    assert "k/e+y=" not in repr(settings)
    assert {"k/e+y=", "t0k"} <= set(config.early_secrets([], env))


def test_another_server_or_database_oid_is_another_state(tmp_path: Path) -> None:
    """Staging's `app` and production's `app`, or the same name created again: never the same state.

    Staging may be production's physical backup restored: the same system identifier, another address. A server that hides its identity (pg_control_system() revoked) never reuses a backup at all.
    """
    other_server = State("app", STATE.last_tag, STATE.pending, "7716574148693599271 at 10.0.0.9:5432", 16385)
    recreated = State("app", STATE.last_tag, STATE.pending, "7716574148693599271 at 10.0.0.5:5432", 16999)
    for other in (other_server, recreated):
        assert other.instance != STATE.instance
        assert other.taken_at(STATE.name(NOW)) is None
    (tmp_path / STATE.name(NOW)).write_bytes(b"dump")
    assert reusable_file(tmp_path, other_server, NOW, 3600) is None
    hidden = State("app", STATE.last_tag, STATE.pending)
    assert hidden.instance == "unknown"
    (tmp_path / hidden.name(NOW)).write_bytes(b"dump")
    assert reusable_file(tmp_path, hidden, NOW, 3600) is None
