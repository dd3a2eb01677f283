"""aws/clients.py: the one boto3 client factory and the shared `s3://` parsing (issue 14, item 4)."""

from __future__ import annotations

import doctest

import pytest

import hsmaudit.aws.clients
from hsmaudit.aws.clients import aws_client, aws_error_code, aws_session, split_s3_url
from hsmaudit.aws.failure_stores import FailureStoreError, FirehoseFailureObjects
from hsmaudit.aws.s3spool import S3Spool
from hsmaudit.sinks.errors import SpoolError


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def test_a_default_session_client_takes_aws_region_and_the_given_timeouts() -> None:
    client = aws_client("s3", read_timeout=5)
    assert client.meta.region_name == "eu-west-1"  # AWS_REGION, which boto3 alone would ignore
    assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (3, 5)
    assert client.meta.config.retries == {"total_max_attempts": 4, "mode": "standard"}  # 3 retries


def test_a_region_named_by_the_url_wins() -> None:
    assert aws_client("sqs", read_timeout=25, region="ap-south-1").meta.region_name == "ap-south-1"


def test_a_session_client_keeps_the_callers_retries_endpoint_and_agent() -> None:
    session = aws_session(region="ca-central-1")
    client = aws_client(
        "logs",
        session=session,
        endpoint_url="http://127.0.0.1:9",
        connect_timeout=10,
        read_timeout=60,
        retries={"total_max_attempts": 1, "mode": "standard"},
        user_agent_extra="hsmaudit",
    )
    assert client.meta.region_name == "ca-central-1"
    assert client.meta.endpoint_url == "http://127.0.0.1:9"
    assert client.meta.config.retries == {"total_max_attempts": 1, "mode": "standard"}
    assert client.meta.config.user_agent_extra == "hsmaudit"


def test_aws_error_code_reads_botocore_responses_and_falls_back_to_the_class() -> None:
    error = Exception()
    error.response = {"Error": {"Code": "AccessDenied"}}  # type: ignore[attr-defined]
    assert aws_error_code(error) == "AccessDenied"
    assert aws_error_code(TimeoutError()) == "TimeoutError"


def test_the_spool_and_the_failure_objects_read_s3_urls_alike() -> None:
    spool = S3Spool.from_url("s3://bucket/some/prefix", client=object())
    objects = FirehoseFailureObjects("s3://bucket/some/prefix", client=object())
    assert (spool.bucket, spool.prefix) == ("bucket", "some/prefix/")  # the spool adds its slash
    assert (objects.bucket, objects.prefix) == ("bucket", "some/prefix")
    with pytest.raises(SpoolError, match="not an S3 spool URL"):
        S3Spool.from_url("https://bucket/p")
    with pytest.raises(FailureStoreError, match="not an S3 URL"):
        FirehoseFailureObjects("s3:///p")
    assert split_s3_url("s3://b/x") == ("b", "x")


def test_the_docstring_examples_run() -> None:
    assert doctest.testmod(hsmaudit.aws.clients).failed == 0
