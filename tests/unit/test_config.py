"""The settings table: one declaration drives loading, each command's flags and its help."""

from __future__ import annotations

from pathlib import Path

import pytest

from entrypoint import config
from entrypoint.errors import UsageError

URL = "postgresql://app:s3cret@db.example:5432/app"


def test_settings_fields_are_exactly_the_tables() -> None:
    """`Settings` has one field per table row and no other, so a default can live nowhere else."""
    assert set(config.field_names()) == {setting.field for setting in config.SETTINGS}


def test_defaults_come_from_the_table(tmp_path: Path) -> None:
    """With nothing set, each setting is its table default, parsed like input."""
    settings = config.load(config.DEPLOY, {}, {"DATABASE_URL": URL}, tmp_path)
    assert settings.ddl_lock_timeout_ms == 5000
    assert settings.lock_wait_timeout == 600.0
    assert settings.migrations_dir == (tmp_path / "drizzle").resolve()
    assert settings.guards == ()


def test_a_command_reads_only_its_own_settings(tmp_path: Path) -> None:
    """A malformed deploy-only setting stops the deploy (exit 2), never `status`, `verify` or `baseline`."""
    env = {"DATABASE_URL": URL, "DDL_LOCK_TIMEOUT": "banana", "MIGRATION_ATTEMPTS": "zero"}
    for command in (config.STATUS, config.VERIFY, config.BASELINE):
        settings = config.load(command, {}, env, tmp_path)
        assert settings.ddl_lock_timeout_ms == 5000  # the default, not the environment
    with pytest.raises(UsageError) as caught:
        config.load(config.DEPLOY, {}, env, tmp_path)
    assert "DDL_LOCK_TIMEOUT='banana'" in caught.value.message


def test_a_flag_wins_over_the_environment(tmp_path: Path) -> None:
    """Flag, then environment, then default; MIGRATION_DATABASE_URL before DATABASE_URL."""
    env = {"DATABASE_URL": "postgresql://a@x/a", "MIGRATION_DATABASE_URL": URL, "LOCK_WAIT_TIMEOUT": "30"}
    settings = config.load(config.DEPLOY, {"lock_wait_timeout": "2min"}, env, tmp_path)
    assert settings.database_url == URL
    assert settings.lock_wait_timeout == 120.0


def test_guards_from_flags_and_environment(tmp_path: Path) -> None:
    """Repeated --guard flags and MIGRATION_GUARDS lines add up; comments and blanks are dropped."""
    env = {"DATABASE_URL": URL, "MIGRATION_GUARDS": "select 2\n\n# a note\nselect 3"}
    settings = config.load(config.DEPLOY, {"guards": ["select 1"]}, env, tmp_path)
    assert settings.guards == ("select 1", "select 2", "select 3")


def test_no_database_is_a_usage_error(tmp_path: Path) -> None:
    """No URL anywhere: exit 2 with the variables to set."""
    with pytest.raises(UsageError) as caught:
        config.load(config.STATUS, {}, {}, tmp_path)
    assert "set MIGRATION_DATABASE_URL or DATABASE_URL" in caught.value.message


@pytest.mark.parametrize(
    ("conninfo", "password"),
    [
        ("postgresql://app:p%40ss@host/db", "p@ss"),
        ("postgresql://app@host/db?password=qu3ry&sslmode=require", "qu3ry"),
        ("postgresql://app@host/db?sslmode=require&password=amp3rs", "amp3rs"),
        ("host=db user=app password=k3yval dbname=app", "k3yval"),
        ("host=db password='qu oted' dbname=app", "qu oted"),
    ],
)
def test_every_form_of_the_password_is_a_secret(conninfo: str, password: str) -> None:
    """Userinfo, `?password=`, `&password=` and key=value (quoted or not) all register the password."""
    assert password in config.secrets_in(conninfo)


def test_early_secrets_see_a_url_in_argv_and_the_environment() -> None:
    """Before the settings load, a URL in a mistyped flag or in DATABASE_URL is already a secret."""
    found = config.early_secrets(["--databse-url=postgresql://a@h/d?password=fl4g"], {"DATABASE_URL": URL})
    assert {"fl4g", "s3cret"} <= set(found)


def test_settings_repr_hides_the_password(tmp_path: Path) -> None:
    """A repr (in a traceback, say) never shows the URL."""
    settings = config.load(config.DEPLOY, {}, {"DATABASE_URL": URL, "PGPASSWORD": "pgpw"}, tmp_path)
    assert "s3cret" not in repr(settings)
    assert "pgpw" not in repr(settings)
    assert {"s3cret", "pgpw"} <= set(settings.secrets())


def test_the_online_index_and_deadline_settings(tmp_path: Path) -> None:
    """INDEX_BUILD_THRESHOLD takes PostgreSQL's size units, HEARTBEAT_INTERVAL must be positive, 0 turns the deadline off."""
    defaults = config.load(config.DEPLOY, {}, {"DATABASE_URL": URL}, tmp_path)
    assert (defaults.index_build, defaults.index_build_threshold) == ("auto", 10 * 1024 * 1024)
    assert (defaults.heartbeat_interval, defaults.deploy_deadline) == (30.0, 840.0)
    env = {"DATABASE_URL": URL, "INDEX_BUILD_THRESHOLD": "512kB", "DEPLOY_DEADLINE": "0", "HEARTBEAT_INTERVAL": "1.5"}
    settings = config.load(config.DEPLOY, {"index_build": "concurrent"}, env, tmp_path)
    assert (settings.index_build, settings.index_build_threshold) == ("concurrent", 512 * 1024)
    assert (settings.heartbeat_interval, settings.deploy_deadline) == (1.5, 0.0)
    assert (
        config.load(config.STATUS, {}, {**env, "INDEX_BUILD_THRESHOLD": "2GB"}, tmp_path).index_build_threshold
        == 2 << 30
    )
    for name, value in (("INDEX_BUILD_THRESHOLD", "big"), ("INDEX_BUILD_THRESHOLD", "10 parsecs"),
                        ("HEARTBEAT_INTERVAL", "0"), ("INDEX_BUILD", "sometimes"), ("DEPLOY_DEADLINE", "soon")):  # fmt: skip
        with pytest.raises(UsageError) as caught:
            config.load(config.DEPLOY, {}, {"DATABASE_URL": URL, name: value}, tmp_path)
        assert f"{name}={value!r}" in caught.value.message


@pytest.mark.parametrize("text", ["1", "true", "YES", " on "])
def test_a_switch_is_on(text: str, tmp_path: Path) -> None:
    settings = config.load(config.DEPLOY, {}, {"DATABASE_URL": URL, "ALLOW_OUT_OF_ORDER": text}, tmp_path)
    assert settings.allow_out_of_order is True


@pytest.mark.parametrize("text", ["", "0", "false", "No", "off"])
def test_a_switch_is_off(text: str, tmp_path: Path) -> None:
    settings = config.load(config.DEPLOY, {}, {"DATABASE_URL": URL, "ALLOW_OUT_OF_ORDER": text}, tmp_path)
    assert settings.allow_out_of_order is False


@pytest.mark.parametrize("name", ["ALLOW_OUT_OF_ORDER", "BASELINE_ON_EMPTY", "REQUIRE_MIGRATED", "ENTRYPOINT_DEBUG"])
def test_a_switch_with_a_typo_is_refused_not_read_as_off(name: str, tmp_path: Path) -> None:
    """REQUIRE_MIGRATED=ture read as off would migrate where the gate was asked for: exit 2 instead."""
    with pytest.raises(UsageError) as refused:
        config.load(config.DEPLOY, {}, {"DATABASE_URL": URL, name: "ture"}, tmp_path)
    assert refused.value.exit_code == 2
    assert str(refused.value) == f"❌ {name}='ture' is not a switch: use 1 or 0 (true/false, yes/no, on/off)"
