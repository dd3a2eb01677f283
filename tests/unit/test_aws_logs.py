"""Pure parts of the operator tooling: pacing arithmetic, CLI times, doctor's AWS classifications."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError, NoCredentialsError
from hypothesis import given
from hypothesis import strategies as st

from hsmaudit.aws.logs import RateLimiter, log_group_for_cluster
from hsmaudit.ops.aws_checks import (
    _subscription_result,
    error_kind,
    forwarder_permissions,
    needed_permissions,
    principal_for_simulation,
)
from hsmaudit.ops.timespec import TimeSpecError, parse_time_ms


class FakeClock:
    """A clock that only moves when slept on (the limiter's injected time)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


@given(rate=st.floats(min_value=0.5, max_value=50), calls=st.integers(min_value=2, max_value=40))
def test_the_limiter_never_exceeds_its_rate(rate: float, calls: int) -> None:
    time = FakeClock()
    limiter = RateLimiter(rate, clock=time.clock, sleep=time.sleep)
    start = time.now
    for _ in range(calls):
        limiter.acquire()
    # n calls at `rate` per second need at least (n - 1) / rate seconds
    assert time.now - start >= (calls - 1) / rate - 1e-9


def test_throttling_halves_the_pace_and_successes_bring_it_back() -> None:
    time = FakeClock()
    limiter = RateLimiter(8.0, minimum=1.0, recover_after=5, clock=time.clock, sleep=time.sleep)
    limiter.throttled()
    limiter.throttled()
    assert limiter.rate == 2.0
    for _ in range(3):
        limiter.throttled()
    assert limiter.rate == limiter.lowest == 1.0  # never below the floor
    for _ in range(5 * 10):
        limiter.succeeded()
    assert limiter.rate == 8.0  # back to the configured pace, never above it


def test_a_limiter_needs_a_positive_rate() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)


def test_cluster_log_groups_follow_cloudhsm_naming() -> None:
    assert log_group_for_cluster("cluster-abc") == "/aws/cloudhsm/cluster-abc"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-02", 1_704_153_600_000),
        ("2024-01-02T00:00:01Z", 1_704_153_601_000),
        ("2024-01-02T01:00:00+01:00", 1_704_153_600_000),
        ("1704153600000", 1_704_153_600_000),
        ("90d", 10_000_000_000 - 90 * 86_400_000),
        ("12h", 10_000_000_000 - 12 * 3_600_000),
        ("30m ago", 10_000_000_000 - 30 * 60_000),
        ("now", 10_000_000_000),
    ],
)
def test_command_line_times(text: str, expected: int) -> None:
    assert parse_time_ms(text, now_ms=10_000_000_000) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "12 parsecs", "2024-13-01"])
def test_bad_times_say_what_is_accepted(text: str) -> None:
    with pytest.raises(TimeSpecError):
        parse_time_ms(text)


def test_an_assumed_role_is_simulated_as_its_role() -> None:
    assert (
        principal_for_simulation("arn:aws:sts::123456789012:assumed-role/Operator/alice")
        == "arn:aws:iam::123456789012:role/Operator"
    )
    assert (
        principal_for_simulation("arn:aws:iam::123456789012:user/bob") == "arn:aws:iam::123456789012:user/bob"
    )
    assert principal_for_simulation("arn:aws:iam::123456789012:root") is None


def client_error(code: str, message: str = "", status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op"
    )


def test_aws_errors_are_classified_for_people() -> None:
    assert error_kind(client_error("AccessDeniedException")) == "denied"
    # emulators and query-protocol answers may carry the real code inside the message
    assert error_kind(client_error("403", "<Code>AccessDenied</Code> ... not authorized", 403)) == "denied"
    assert error_kind(client_error("UnrecognizedClientException")) == "credentials"
    assert error_kind(client_error("ExpiredTokenException")) == "credentials"
    assert error_kind(NoCredentialsError()) == "credentials"
    assert error_kind(client_error("ResourceNotFoundException")) == "not_found"
    assert error_kind(client_error("ThrottlingException")) == "throttled"
    assert error_kind(client_error("InternalFailure", status=500)) == "unavailable"


def test_the_pipeline_permissions_cover_logs_token_and_spool() -> None:
    needed = needed_permissions(
        region="eu-west-1",
        account="123456789012",
        log_groups=["/aws/cloudhsm/cluster-a"],
        secret_arn="arn:aws:secretsmanager:eu-west-1:123456789012:secret:hec-AbCdEf",
        ssm_parameter="/hsmaudit/token",
        spool_bucket="spool-bucket",
        spool_prefix="hsmaudit/spool/",
    )
    actions = {p.action: p.resource for p in needed}
    assert actions["logs:GetLogEvents"] == (
        "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/cloudhsm/cluster-a:log-stream:*"
    )
    assert actions["ssm:GetParameter"] == "arn:aws:ssm:eu-west-1:123456789012:parameter/hsmaudit/token"
    assert actions["s3:PutObject"] == "arn:aws:s3:::spool-bucket/hsmaudit/spool/*"
    assert {
        "secretsmanager:GetSecretValue",
        "s3:ListBucket",
        "s3:DeleteObject",
        "logs:FilterLogEvents",
    } <= set(actions)


def test_the_forwarder_role_is_checked_for_what_the_forwarder_does_only() -> None:
    # The template's forwarder role reads its token and puts spool objects; replay's get, list and
    # delete and backfill's log reads are the operator's, so doctor --function must not ask for them.
    needed = forwarder_permissions(
        region="eu-west-1",
        account="123456789012",
        secret_arn="arn:aws:secretsmanager:eu-west-1:123456789012:secret:hec-AbCdEf",
        spool_bucket="spool-bucket",
        spool_prefix="hsmaudit/spool/",
    )
    assert {(p.action, p.resource) for p in needed} == {
        ("secretsmanager:GetSecretValue", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:hec-AbCdEf"),
        ("s3:PutObject", "arn:aws:s3:::spool-bucket/hsmaudit/spool/*"),
    }


def test_a_filter_pattern_that_drops_records_is_a_warning() -> None:
    result = _subscription_result(
        "/aws/cloudhsm/cluster-a", [{"destinationArn": "arn:aws:lambda:x", "filterPattern": "CN_LOGIN"}], None
    )
    assert result.status == "warn"
    assert "drops records" in result.summary
    assert _subscription_result("/g", [], None).status == "fail"
    ok = _subscription_result(
        "/g", [{"destinationArn": "arn:aws:lambda:fn-hsmaudit", "filterPattern": ""}], "hsmaudit"
    )
    assert ok.status == "ok"


@given(
    moment=st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))
)
def test_any_iso_time_round_trips_to_its_milliseconds(moment: datetime) -> None:
    expected = int(moment.timestamp() * 1000)
    assert parse_time_ms(moment.isoformat()) == expected
    assert parse_time_ms(moment.isoformat().replace("+00:00", "Z")) == expected
    if expected >= 10**11:  # 12+ digits: epoch ms (shorter numbers are refused as ambiguous)
        assert parse_time_ms(str(expected)) == expected
