"""The HEC client's policies: frozen values whose defaults are the settings' defaults, checked
when they are made, and what `build_client` turns `Settings` into."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from hsmaudit.aws.runtime import build_client
from hsmaudit.config import ConfigError, Settings
from hsmaudit.sinks.hec.client import HecClient
from hsmaudit.sinks.hec.policy import AckPolicy, BatchPolicy, ConnectionPolicy, RetryPolicy
from hsmaudit.sinks.hec.token import StaticToken

URL = "https://hec.example.com:8088"


def test_a_bare_client_and_one_built_from_default_settings_are_configured_alike() -> None:
    built = build_client(Settings(hec_url=URL, hec_token="t"))
    bare = HecClient(URL, StaticToken("t"))
    try:
        assert (built.connection, built.retry, built.acks, built.batch) == (
            bare.connection,
            bare.retry,
            bare.acks,
            bare.batch,
        )
        assert (built.event_format, built.sourcetype, built.index, built.include_raw) == (
            bare.event_format,
            bare.sourcetype,
            bare.index,
            bare.include_raw,
        )
    finally:
        built.close()
        bare.close()


def test_every_setting_reaches_its_policy() -> None:
    settings = Settings(
        hec_url=URL,
        hec_token="t",
        hec_timeout=3.0,
        hec_verify=False,
        hec_proxy="http://proxy:3128",
        hec_max_attempts=2,
        hec_backoff_base=0.1,
        hec_backoff_cap=1.0,
        hec_ack=True,
        hec_ack_timeout=9.0,
        hec_ack_poll_interval=0.5,
        batch_max_events=7,
        batch_max_bytes=4096,
    )
    client = build_client(settings)
    try:
        assert client.connection == ConnectionPolicy(3.0, False, None, "http://proxy:3128")
        assert client.retry == RetryPolicy(2, 0.1, 1.0)
        assert client.acks == AckPolicy(True, 9.0, 0.5)
        assert client.batch == BatchPolicy(7, 4096)
    finally:
        client.close()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: RetryPolicy(max_attempts=0), "max_attempts must be at least 1"),
        (lambda: BatchPolicy(max_events=0), "max_events must be at least 1"),
        (lambda: BatchPolicy(max_bytes=6 * 1024 * 1024), "max_bytes must be between 1 and"),
    ],
)
def test_a_policy_that_cannot_work_is_refused_when_made(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_build_client_says_a_bad_value_as_configuration() -> None:
    settings = dataclasses.replace(Settings(hec_url=URL, hec_token="t"), hec_max_attempts=0)  # unvalidated
    with pytest.raises(ConfigError, match="max_attempts must be at least 1"):
        build_client(settings)


def test_policies_are_frozen_and_a_proxy_password_stays_out_of_the_repr() -> None:
    policy = ConnectionPolicy(proxy="http://svc:s3cret@proxy:3128")
    assert "s3cret" not in repr(policy)
    assert (
        repr(ConnectionPolicy()) == "ConnectionPolicy(timeout=5.0, verify=True, ca_bundle=None, proxy=None)"
    )
    with pytest.raises(AttributeError):
        policy.timeout = 1.0  # type: ignore[misc]
