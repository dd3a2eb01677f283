"""Settings: one precedence (flags > environment > config file > defaults), typed, validated,
documented, and never showing the token."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hsmaudit.config import (
    ENV_VARS,
    SETTINGS,
    ConfigError,
    Settings,
    load_settings,
    settings_field_names,
)

TOKEN = "tok-unit-SECRET-9f8e"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return str(path)


def test_defaults_without_any_source() -> None:
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.hec_verify and not settings.hec_ack and settings.include_raw
    assert settings.spool_location is None


def test_flags_beat_environment_beat_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'hec_index = "from-file"\nhec_sourcetype = "st:file"\nhec_timeout = 9\n')
    env = {"HSMAUDIT_HEC_INDEX": "from-env", "HSMAUDIT_HEC_SOURCETYPE": "st:env"}
    settings = load_settings(
        {"hec_index": "from-flag", "hec_sourcetype": None}, environ=env, config_path=path
    )
    assert (settings.hec_index, settings.hec_sourcetype, settings.hec_timeout) == ("from-flag", "st:env", 9.0)
    assert settings.origins == {"hec_index": "flag", "hec_sourcetype": "env", "hec_timeout": "file"}


def test_config_path_from_the_environment_and_the_default_home_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'hec_url = "https://hec.example.com:8088"\n')
    assert load_settings(environ={"HSMAUDIT_CONFIG": path}).hec_url == "https://hec.example.com:8088"
    home = tmp_path / "home"
    (home / ".config" / "hsmaudit").mkdir(parents=True)
    (home / ".config" / "hsmaudit" / "config.toml").write_text("hec_ack = true\n")
    monkey_env = {"HOME": str(home)}
    import os

    saved = os.environ.get("HOME")
    os.environ["HOME"] = str(home)  # Path.expanduser reads the real environment
    try:
        assert load_settings(environ=monkey_env).hec_ack is True
    finally:
        if saved is None:
            del os.environ["HOME"]
        else:
            os.environ["HOME"] = saved


def test_an_explicit_config_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(environ={}, config_path=str(tmp_path / "missing.toml"))


def test_unknown_keys_and_bad_toml_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown settings hec_urll"):
        load_settings(environ={}, config_path=write(tmp_path, 'hec_urll = "x"\n'))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(environ={}, config_path=write(tmp_path, "hec_url = \n"))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HSMAUDIT_HEC_ACK": "maybe"}, "hec_ack .from HSMAUDIT_HEC_ACK. must be true or false"),
        ({"HSMAUDIT_BATCH_MAX_EVENTS": "many"}, "must be a whole number"),
        ({"HSMAUDIT_HEC_TIMEOUT": "soon"}, "must be a number"),
        ({"HSMAUDIT_BATCH_MAX_BYTES": str(6 * 1024 * 1024)}, "batch_max_bytes must be between"),
        ({"HSMAUDIT_HEC_URL": "hec.example.com"}, "must start with https://"),
        ({"HSMAUDIT_HEC_TIMEOUT": "0"}, "hec_timeout must be greater than 0"),
        ({"HSMAUDIT_LOG_LEVEL": "loud"}, "log_level must be"),
    ],
)
def test_bad_values_name_the_setting_and_source(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=env)


@pytest.mark.parametrize(
    ("text", "value"), [("1", True), ("TRUE", True), ("on", True), ("0", False), ("no", False)]
)
def test_booleans_from_the_environment(text: str, value: bool) -> None:
    assert load_settings(environ={"HSMAUDIT_INCLUDE_RAW": text}).include_raw is value


def test_spool_location_prefers_the_bucket() -> None:
    env = {"HSMAUDIT_SPOOL_BUCKET": "b", "HSMAUDIT_SPOOL_PREFIX": "/p/", "HSMAUDIT_SPOOL_DIR": "/tmp/x"}
    assert load_settings(environ=env).spool_location == "s3://b/p/"
    assert load_settings(environ={"HSMAUDIT_SPOOL_DIR": "/tmp/x"}).spool_location == "/tmp/x"


def test_token_sources_in_order() -> None:
    assert load_settings(environ={"HSMAUDIT_HEC_TOKEN": TOKEN}).token_source == "env"
    env = {"HSMAUDIT_HEC_TOKEN": TOKEN, "HSMAUDIT_HEC_TOKEN_SSM_PARAMETER": "/p"}
    assert load_settings(environ=env).token_source == "ssm"
    env["HSMAUDIT_HEC_TOKEN_SECRET_ARN"] = "arn:aws:secretsmanager:us-east-1:1:secret:x"
    assert load_settings(environ=env).token_source == "secretsmanager"


def test_the_token_never_shows_in_repr_describe_or_errors(tmp_path: Path) -> None:
    settings = load_settings(environ={"HSMAUDIT_HEC_TOKEN": TOKEN})
    assert settings.hec_token == TOKEN
    assert TOKEN not in repr(settings) and TOKEN not in str(settings.describe())
    assert settings.describe()["hec_token"] == {"value": "<set>", "from": "env"}
    with pytest.raises(ConfigError) as caught:
        load_settings(
            environ={}, config_path=write(tmp_path, f'hec_token = "{TOKEN}"\nhec_ack = "{TOKEN}"\n')
        )
    assert TOKEN not in str(caught.value)


def test_every_setting_is_a_field_and_every_env_var_is_distinct() -> None:
    assert set(settings_field_names()) == {spec.name for spec in SETTINGS}
    assert len(set(ENV_VARS)) == len(ENV_VARS)
    assert all(name.startswith("HSMAUDIT_") for name in ENV_VARS)


def test_docs_table_lists_every_setting_with_its_env_var_and_default() -> None:
    text = DOCS.read_text(encoding="utf-8")
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([a-z_]+)` \|.*$", text, re.MULTILINE)}
    assert set(rows) == {spec.name for spec in SETTINGS}, (
        "docs/configuration.md is out of step with config.py"
    )
    for spec in SETTINGS:
        row = rows[spec.name]
        assert f"`{spec.env}`" in row
        if spec.flag:
            assert f"`{spec.flag}`" in row
        default = (
            ""
            if spec.default is None
            else str(spec.default).lower()
            if isinstance(spec.default, bool)
            else str(spec.default)
        )
        if default:
            assert f"`{default}`" in row, (spec.name, default)
    assert "`HSMAUDIT_CONFIG`" in text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "https://user:pa55@hec.example.com:8088/services/collector",
            "https://***@hec.example.com:8088/services/collector",
        ),
        ("https://hec.example.com/x?token=abc&debug", "https://hec.example.com/x?token=***&debug"),
        ("https://:pw@[::1]:8088", "https://***@[::1]:8088"),
        ("http://127.0.0.1:8088", "http://127.0.0.1:8088"),
    ],
)
def test_masked_url_hides_credentials_and_query_values(url: str, shown: str) -> None:
    from hsmaudit.config import masked_url, url_has_credentials

    assert masked_url(url) == shown
    assert url_has_credentials(url) == ("@" in url)


def test_describe_masks_credentials_in_the_hec_url() -> None:
    settings = Settings(hec_url="https://user:pa55@hec.example.com:8088")
    assert "pa55" not in str(settings.describe())
