"""The Lambda runtime around the HEC client: built once per container, time budget per invocation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hsmaudit.aws.runtime import build_client, clear_runtime, deadline_from, get_runtime, token_provider
from hsmaudit.config import ConfigError, Settings
from hsmaudit.sinks.hec.token import StaticToken
from hsmaudit.sinks.spool import LocalSpool


class Context:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.mark.parametrize(
    ("remaining_ms", "reserve", "budget"),
    [
        (300_000, 2.0, 298.0),  # a long invocation keeps the reserve for spooling
        (3_000, 2.0, 1.5),  # a short one still gets half its time for HEC
        (1_000, 0.0, 1.0),
        (0, 2.0, 0.0),
    ],
)
def test_deadline_is_remaining_time_minus_the_reserve(
    remaining_ms: int, reserve: float, budget: float
) -> None:
    assert deadline_from(Context(remaining_ms), reserve, clock=lambda: 100.0) == pytest.approx(100.0 + budget)


def test_without_a_lambda_context_the_budget_is_a_minute() -> None:
    assert deadline_from(None, 2.0, clock=lambda: 0.0) == pytest.approx(58.0)


@pytest.fixture
def env() -> Iterator[dict[str, str]]:
    clear_runtime()
    yield {"HSMAUDIT_HEC_URL": "https://hec.example.com:8088", "HSMAUDIT_HEC_TOKEN": "t-unit"}
    clear_runtime()


def test_the_runtime_is_built_once_per_container(env: dict[str, str], tmp_path: Path) -> None:
    env["HSMAUDIT_SPOOL_DIR"] = str(tmp_path)
    first = get_runtime("subscription", environ=env)
    assert get_runtime("subscription", environ={}) is first  # the cached one, whatever the environment
    assert first.client is not None and first.client.origin == "https://hec.example.com:8088"
    assert isinstance(first.spool, LocalSpool)
    assert get_runtime("firehose", environ=env).client is None  # Firehose delivers by itself
    clear_runtime()
    assert get_runtime("subscription", environ=env) is not first


def test_settings_become_client_arguments() -> None:
    settings = Settings(
        hec_url="https://hec.example.com/services/collector",
        hec_token="t",
        hec_index="idx",
        hec_sourcetype="st",
        hec_ack=True,
        batch_max_events=7,
        include_raw=False,
    )
    client = build_client(settings)
    assert (client.event_path, client.ack_path) == ("/services/collector/event", "/services/collector/ack")
    assert (client.index, client.sourcetype, client.ack, client.max_events, client.include_raw) == (
        "idx",
        "st",
        True,
        7,
        False,
    )
    client.close()


def test_missing_url_or_token_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="HSMAUDIT_HEC_URL"):
        build_client(Settings(hec_token="t"))
    with pytest.raises(ConfigError, match="no HEC token"):
        token_provider(Settings(hec_url="https://h"))
    assert isinstance(token_provider(Settings(hec_token="t")), StaticToken)


def test_cold_start_warns_when_refused_events_could_only_be_kept_by_retries_or_tmp(
    env: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    get_runtime("subscription", environ=env)
    assert "no spool configured" in caplog.text
    clear_runtime()
    caplog.clear()
    get_runtime(
        "subscription", environ={**env, "HSMAUDIT_SPOOL_DIR": str(tmp_path), "AWS_LAMBDA_FUNCTION_NAME": "f"}
    )
    assert "lost with the Lambda container" in caplog.text


def test_plain_http_to_a_remote_hec_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    build_client(Settings(hec_url="http://127.0.0.1:8088", hec_token="t")).close()
    assert "plain HTTP" not in caplog.text
    build_client(Settings(hec_url="http://splunk.example.com:8088", hec_token="t")).close()
    assert "plain HTTP" in caplog.text
