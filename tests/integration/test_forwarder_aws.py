"""The handler with its AWS parts on moto (server mode, 127.0.0.1): S3 spool, Secrets Manager and
SSM tokens (cached, refreshed once after a 403), and replay from S3."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from hsmaudit.aws.s3spool import S3Spool
from hsmaudit.aws.secrets import SecretsManagerToken, SsmToken
from hsmaudit.aws.spools import open_spool
from hsmaudit.aws.subscription import handler
from hsmaudit.ops.replay import replay_spool
from hsmaudit.sinks.errors import HecTokenError, SpoolError
from hsmaudit.sinks.hec.client import HecClient
from hsmaudit.sinks.hec.envelope import EventEncoder
from hsmaudit.sinks.hec.token import StaticToken
from hsmaudit.sinks.spool import SpoolBatch
from hsmaudit.sources.cloudwatch import document_from_object, log_messages
from hsmaudit.sources.message import parse_log_message

from .fault_hec import OTHER_TOKEN, TOKEN, FaultHec, closed_port_url
from .payloads import FakeContext, record_text, subscription_document, subscription_event


@pytest.fixture(autouse=True)
def _no_token_leak(no_token_leak: None) -> Iterator[None]:
    yield


def lines_of(document: dict[str, Any]) -> list[bytes]:
    encoder = EventEncoder()
    return [encoder.line(parse_log_message(m)) for m in log_messages(document_from_object(document))]


def new_bucket(name: str) -> str:
    boto3.client("s3").create_bucket(Bucket=name)
    return name


def test_s3_spool_round_trips_batches_oldest_first(aws_env: str) -> None:
    spool = S3Spool(new_bucket("spool-roundtrip"), "forwarder/spool")
    first = SpoolBatch(
        lines=(b'{"event":"a"}', b'{"event":"\xc3\xa9"}'), reason="HEC down", metadata={"k": "v"}
    )
    second = SpoolBatch(kind="payload", payload=b"\x00not json\n", reason="bad gzip")
    spool.put(first)
    spool.put(second)
    assert list(spool.list()) == [first.batch_id, second.batch_id]
    assert spool.get(first.batch_id) == first
    assert spool.get(second.batch_id) == second
    spool.delete(first.batch_id)
    spool.delete(first.batch_id)  # twice is fine: replay can be repeated
    assert list(spool.list()) == [second.batch_id]
    assert (
        open_spool("s3://spool-roundtrip/forwarder/spool/").location
        == "s3://spool-roundtrip/forwarder/spool/"
    )


def test_s3_spool_write_to_a_missing_bucket_raises_spool_error(aws_env: str) -> None:
    with pytest.raises(SpoolError, match="NoSuchBucket"):
        S3Spool("no-such-bucket-here").put(SpoolBatch(lines=(b"{}",), reason="x"))


def test_handler_spools_to_s3_when_hec_is_down_and_replay_from_s3_delivers(
    aws_env: str, lambda_env: Callable[..., None], fault_hec: FaultHec
) -> None:
    bucket = new_bucket("spool-handler")
    lambda_env(
        HSMAUDIT_HEC_URL=closed_port_url(),
        HSMAUDIT_HEC_TOKEN=TOKEN,
        HSMAUDIT_SPOOL_BUCKET=bucket,
        HSMAUDIT_SPOOL_PREFIX="spool/",
        HSMAUDIT_BATCH_MAX_EVENTS="25",
    )
    doc = subscription_document([record_text(n, user_name="ünï") for n in range(100)])
    result = handler(subscription_event(doc), FakeContext())
    assert (result["accepted"], result["spooled"]) == (0, 100)
    spool = S3Spool(bucket, "spool/")
    # the batch that used up the retries, then the rest of the run in one object (one put, not three)
    assert [spool.get(b).count for b in spool.list()] == [25, 75]
    outcomes = replay_spool(spool, HecClient(fault_hec.url, StaticToken(TOKEN)))
    assert [o.status for o in outcomes] == ["replayed"] * 2
    assert Counter(fault_hec.accepted) == Counter(lines_of(doc))
    assert list(spool.list()) == []


def test_token_from_secrets_manager_is_cached_and_refreshed_once_after_a_403(
    aws_env: str, lambda_env: Callable[..., None], fault_hec: FaultHec, tmp_path: Any
) -> None:
    secrets = boto3.client("secretsmanager")
    arn = secrets.create_secret(Name="hsmaudit/hec", SecretString=json.dumps({"token": TOKEN}))["ARN"]
    lambda_env(
        HSMAUDIT_HEC_URL=fault_hec.url, HSMAUDIT_HEC_TOKEN_SECRET_ARN=arn, HSMAUDIT_SPOOL_DIR=str(tmp_path)
    )
    doc = subscription_document([record_text(n) for n in range(10)])
    # two warm invocations: one fetch
    assert handler(subscription_event(doc), FakeContext())["accepted"] == 10
    assert handler(subscription_event(doc), FakeContext())["accepted"] == 10
    from hsmaudit.aws.runtime import get_runtime

    provider = get_runtime("subscription").client._token  # type: ignore[union-attr]
    assert isinstance(provider, SecretsManagerToken)
    assert provider.fetches == 1
    # WHEN the token is rotated (secret and HEC) while the container still caches the old one
    secrets.put_secret_value(SecretId=arn, SecretString=OTHER_TOKEN)
    fault_hec.token = OTHER_TOKEN
    result = handler(subscription_event(doc), FakeContext())
    # THEN the 403 makes it fetch again, once, and the events go through
    assert (result["accepted"], result["spooled"]) == (10, 0)
    assert provider.fetches == 2
    assert len(fault_hec.accepted) == 30


def test_token_from_ssm_securestring(
    aws_env: str, lambda_env: Callable[..., None], fault_hec: FaultHec
) -> None:
    boto3.client("ssm").put_parameter(Name="/hsmaudit/hec-token", Value=TOKEN, Type="SecureString")
    lambda_env(HSMAUDIT_HEC_URL=fault_hec.url, HSMAUDIT_HEC_TOKEN_SSM_PARAMETER="/hsmaudit/hec-token")
    doc = subscription_document([record_text(1)])
    assert handler(subscription_event(doc), FakeContext())["accepted"] == 1
    assert SsmToken("/hsmaudit/hec-token", ttl=60).token() == TOKEN


def test_missing_secret_spools_with_a_reason_naming_the_secret_not_the_token(
    aws_env: str, lambda_env: Callable[..., None], fault_hec: FaultHec, tmp_path: Any, caplog: Any
) -> None:
    lambda_env(
        HSMAUDIT_HEC_URL=fault_hec.url,
        HSMAUDIT_HEC_TOKEN_SECRET_ARN="hsmaudit/does-not-exist",
        HSMAUDIT_SPOOL_DIR=str(tmp_path),
    )
    result = handler(
        subscription_event(subscription_document([record_text(1), record_text(2)])), FakeContext()
    )
    assert (result["accepted"], result["spooled"]) == (0, 2)
    assert fault_hec.requests == 0
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("hsmaudit/does-not-exist" in m and "ResourceNotFoundException" in m for m in messages)


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        pytest.param(TOKEN, TOKEN, id="bare"),
        pytest.param(f"  {TOKEN}\n", TOKEN, id="whitespace"),
        pytest.param(json.dumps({"hec_token": TOKEN}), TOKEN, id="json-hec_token"),
        pytest.param(json.dumps({"anything": TOKEN}), TOKEN, id="json-single-value"),
    ],
)
def test_secret_shapes(aws_env: str, secret: str, expected: str) -> None:
    client = boto3.client("secretsmanager")
    name = f"shape-{abs(hash(secret))}"
    client.create_secret(Name=name, SecretString=secret)
    assert SecretsManagerToken(name, ttl=0).token() == expected


def test_secret_without_a_token_raises_without_echoing_it(aws_env: str) -> None:
    client = boto3.client("secretsmanager")
    client.create_secret(Name="two-values", SecretString=json.dumps({"a": TOKEN, "b": OTHER_TOKEN}))
    with pytest.raises(HecTokenError) as caught:
        SecretsManagerToken("two-values", ttl=0).token()
    assert TOKEN not in str(caught.value) and "two-values" in str(caught.value)
