"""Reading CloudWatch Logs history with boto3, paced below the API quotas.

Used by `hsmaudit backfill` (GetLogEvents per HSM stream), `hsmaudit tail` (FilterLogEvents over a
cluster's log group from a start time) and `hsmaudit doctor` (subscription filters). Every call
goes through one `RateLimiter` per API and retries `ThrottlingException` with jittered
exponential backoff, lowering the pace each time it is throttled (multiplicative decrease) and
raising it slowly again after successes (additive increase), so a backfill shares the account's
quota with the live pipeline instead of starving it.

Quotas (CloudWatch Logs service quotas, per account and Region; operator-needs.md §1.14):
GetLogEvents 25 TPS, FilterLogEvents 5 TPS, DescribeLogStreams 25 TPS, DescribeLogGroups 10 TPS,
DescribeSubscriptionFilters 5 TPS. The defaults below stay well under them.

boto3's own retries are switched off for these clients (`total_max_attempts=1`): botocore's
standard mode would retry throttling three times invisibly, and then this module could neither
slow down nor report how often it was throttled.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from hsmaudit.errors import HsmauditError
from hsmaudit.records.context import cluster_id_from_log_group
from hsmaudit.sources.message import LogMessage

if TYPE_CHECKING:
    from mypy_boto3_logs.client import CloudWatchLogsClient

LOG_GROUP_PREFIX: Final = "/aws/cloudhsm/"

# Requests per second this module allows itself by default (a fraction of each quota above).
DEFAULT_RATES: Final[dict[str, float]] = {
    "GetLogEvents": 10.0,
    "FilterLogEvents": 2.0,
    "DescribeLogStreams": 5.0,
    "DescribeLogGroups": 5.0,
    "DescribeSubscriptionFilters": 2.0,
}

# Error codes CloudWatch Logs answers when it wants the caller to slow down or try again later.
THROTTLING_CODES: Final = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
)
TRANSIENT_CODES: Final = frozenset({"ServiceUnavailableException", "InternalFailure", "ServiceUnavailable"})


class LogsError(HsmauditError):
    """A CloudWatch Logs call failed for good (after retries, or for a reason retrying cannot fix).

    Tree: `LogsError` -> `LogsThrottledError` (still throttled after every retry),
    `LogsNotFoundError` (log group or stream missing), `LogsAccessError` (credentials or permission).
    """


class LogsThrottledError(LogsError):
    """Still throttled after every retry."""


class LogsNotFoundError(LogsError):
    """The log group or stream does not exist."""


class LogsAccessError(LogsError):
    """No credentials, or they lack the permission for this call."""


def log_group_for_cluster(cluster_id: str) -> str:
    """CloudHSM writes each cluster's audit logs to `/aws/cloudhsm/<cluster-id>` (AWS CloudHSM guide)."""
    return f"{LOG_GROUP_PREFIX}{cluster_id}"


class RateLimiter:
    """Paces calls to at most `rate` per second, slowing down when throttled.

    `throttled()` halves the rate (down to `minimum`); every `recover_after` successes add
    `rate / 10` back, up to the configured rate. Thread-safe; `clock` and `sleep` are injectable
    so the arithmetic is testable without waiting.
    """

    def __init__(
        self,
        rate: float,
        *,
        minimum: float = 0.2,
        recover_after: int = 20,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.configured = rate
        self.rate = rate
        self.lowest = rate
        self.minimum = min(minimum, rate)
        self.recover_after = recover_after
        self._clock = clock
        self._sleep = sleep
        self._next = clock()
        self._successes = 0
        self._lock = threading.Lock()
        self.waited = 0.0

    def acquire(self) -> None:
        """Block until the next call may go out."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + 1.0 / self.rate
        delay = start - now
        if delay > 0:
            self.waited += delay
            self._sleep(delay)

    def succeeded(self) -> None:
        """A call went through: after enough of them, speed up a little again."""
        with self._lock:
            self._successes += 1
            if self._successes >= self.recover_after and self.rate < self.configured:
                self.rate = min(self.configured, self.rate + self.configured / 10)
                self._successes = 0

    def throttled(self) -> None:
        """The service throttled a call: halve the pace."""
        with self._lock:
            self.rate = max(self.minimum, self.rate / 2)
            self.lowest = min(self.lowest, self.rate)
            self._successes = 0


@dataclass
class LogsStats:
    """What the reader did: requests, throttling answers, retries and time spent waiting."""

    requests: int = 0
    throttled: int = 0
    retries: int = 0
    backoff_seconds: float = 0.0
    by_operation: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class LogStreamInfo:
    """A log stream and the span of its events (ms since the epoch; None when empty)."""

    name: str
    first_event_ms: int | None
    last_event_ms: int | None


@dataclass(frozen=True)
class SubscriptionFilterInfo:
    """A subscription filter on a log group."""

    name: str
    destination_arn: str
    filter_pattern: str


class LogsReader:
    """Paced, throttle-tolerant reads of CloudWatch Logs through an injected boto3 client."""

    def __init__(
        self,
        client: CloudWatchLogsClient,
        *,
        rates: dict[str, float] | None = None,
        max_attempts: int = 8,
        backoff_base: float = 0.5,
        backoff_cap: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        wanted = {**DEFAULT_RATES, **(rates or {})}
        self.limiters = {name: RateLimiter(rate, clock=clock, sleep=sleep) for name, rate in wanted.items()}
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.stats = LogsStats()
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def _call(self, operation: str, method: Callable[..., Any], /, **params: Any) -> Any:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionError,
            HTTPClientError,
            NoCredentialsError,
        )

        limiter = self.limiters.setdefault(operation, RateLimiter(2.0, sleep=self._sleep))
        attempt = 0
        while True:
            attempt += 1
            limiter.acquire()
            self.stats.requests += 1
            self.stats.by_operation[operation] = self.stats.by_operation.get(operation, 0) + 1
            try:
                response = method(**params)
            except ClientError as error:
                code = str(error.response.get("Error", {}).get("Code", ""))
                status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
                if code in THROTTLING_CODES or status == 429:
                    self.stats.throttled += 1
                    limiter.throttled()
                    if attempt >= self.max_attempts:
                        raise LogsThrottledError(
                            f"{operation}: still throttled after {attempt} attempts; "
                            "lower --max-rps or try again later"
                        ) from None
                elif code in TRANSIENT_CODES or status >= 500:
                    if attempt >= self.max_attempts:
                        raise LogsError(f"{operation}: {code or status} after {attempt} attempts") from None
                else:
                    raise _logs_error(operation, code, error, params) from None
            except NoCredentialsError:
                raise LogsAccessError(
                    f"{operation}: no AWS credentials found (set AWS_PROFILE, or run 'aws configure')"
                ) from None
            except (ConnectionError, HTTPClientError) as error:
                # Connection refused or reset, connect or read timeout: worth another attempt.
                if attempt >= self.max_attempts:
                    raise LogsError(f"{operation}: cannot reach CloudWatch Logs ({error})") from None
            except BotoCoreError as error:
                raise LogsError(f"{operation}: {error}") from None
            else:
                limiter.succeeded()
                return response
            delay = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
            delay = self._rng.uniform(delay / 2, delay)  # "equal jitter": never hammer in lockstep
            self.stats.retries += 1
            self.stats.backoff_seconds += delay
            self._sleep(delay)

    def describe_streams(self, log_group: str) -> list[LogStreamInfo]:
        """Every stream of the log group, by name (a CloudHSM group holds one per HSM, plus certificates)."""
        streams: list[LogStreamInfo] = []
        params: dict[str, Any] = {"logGroupName": log_group}
        while True:
            page = self._call("DescribeLogStreams", self.client.describe_log_streams, **params)
            streams.extend(
                LogStreamInfo(
                    name=item["logStreamName"],
                    first_event_ms=item.get("firstEventTimestamp"),
                    last_event_ms=item.get("lastEventTimestamp"),
                )
                for item in page.get("logStreams", [])
            )
            token = page.get("nextToken")
            if not token or token == params.get("nextToken"):
                return sorted(streams, key=lambda stream: stream.name)
            params["nextToken"] = token

    def describe_log_groups(self, prefix: str = LOG_GROUP_PREFIX) -> list[str]:
        """Names of the log groups starting with `prefix` (default: every CloudHSM cluster's)."""
        groups: list[str] = []
        params: dict[str, Any] = {"logGroupNamePrefix": prefix}
        while True:
            page = self._call("DescribeLogGroups", self.client.describe_log_groups, **params)
            groups.extend(item["logGroupName"] for item in page.get("logGroups", []))
            token = page.get("nextToken")
            if not token or token == params.get("nextToken"):
                return groups
            params["nextToken"] = token

    def read_stream(
        self, log_group: str, stream: str, *, start_ms: int, end_ms: int, page_size: int | None = None
    ) -> Iterator[list[LogMessage]]:
        """Pages of one stream's events with start_ms <= timestamp < end_ms, oldest first.

        GetLogEvents with `startFromHead`; the end of the stream is the page whose
        `nextForwardToken` equals the token sent (AWS API reference: empty pages can come
        before the end, so an empty page alone does not end the loop).
        """
        params: dict[str, Any] = {
            "logGroupName": log_group,
            "logStreamName": stream,
            "startTime": start_ms,
            "endTime": end_ms,
            "startFromHead": True,
        }
        if page_size:
            params["limit"] = page_size
        while True:
            page = self._call("GetLogEvents", self.client.get_log_events, **params)
            messages = [
                LogMessage(item.get("message", ""), log_group, stream, None, item["timestamp"])
                for item in page.get("events", [])
                # endTime is exclusive in the API; keep it so even where a server includes it.
                if start_ms <= item["timestamp"] < end_ms
            ]
            if messages:
                yield messages
            token = page.get("nextForwardToken")
            if not token or token == params.get("nextToken"):
                return
            params["nextToken"] = token

    def filter_events(
        self,
        log_group: str,
        *,
        start_ms: int,
        end_ms: int | None = None,
        streams: list[str] | None = None,
        page_size: int | None = None,
    ) -> Iterator[list[LogMessage]]:
        """Pages of a log group's events from `start_ms` (FilterLogEvents), with their event ids."""
        params: dict[str, Any] = {"logGroupName": log_group, "startTime": start_ms}
        if end_ms is not None:
            params["endTime"] = end_ms
        if streams:
            params["logStreamNames"] = streams
        if page_size:
            params["limit"] = page_size
        while True:
            page = self._call("FilterLogEvents", self.client.filter_log_events, **params)
            messages = [
                LogMessage(
                    item.get("message", ""),
                    log_group,
                    item.get("logStreamName"),
                    item.get("eventId"),
                    item["timestamp"],
                )
                for item in page.get("events", [])
            ]
            if messages:
                yield messages
            token = page.get("nextToken")
            if not token or token == params.get("nextToken"):
                return
            params["nextToken"] = token

    def subscription_filters(self, log_group: str) -> list[SubscriptionFilterInfo]:
        """The log group's subscription filters (a group may have up to two, or more lately)."""
        page = self._call(
            "DescribeSubscriptionFilters", self.client.describe_subscription_filters, logGroupName=log_group
        )
        return [
            SubscriptionFilterInfo(
                name=item.get("filterName", ""),
                destination_arn=item.get("destinationArn", ""),
                filter_pattern=item.get("filterPattern", ""),
            )
            for item in page.get("subscriptionFilters", [])
        ]


def _logs_error(operation: str, code: str, error: Exception, params: dict[str, Any]) -> LogsError:
    where = params.get("logGroupName", "")
    if params.get("logStreamName"):
        where = f"{where} stream {params['logStreamName']}"
    if code == "ResourceNotFoundException":
        cluster = cluster_id_from_log_group(str(params.get("logGroupName", "")))
        hint = f" (is {cluster} the right cluster and Region?)" if cluster else ""
        return LogsNotFoundError(f"{operation}: {where} does not exist{hint}")
    if code in {"AccessDeniedException", "AccessDenied", "UnauthorizedOperation"}:
        return LogsAccessError(
            f"{operation}: access denied on {where}: the credentials need logs:{operation}"
        )
    if code in {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredTokenException",
        "ExpiredToken",
    }:
        return LogsAccessError(f"{operation}: AWS rejected the credentials ({code}); refresh them")
    message = getattr(error, "response", {}).get("Error", {}).get("Message", "")
    return LogsError(f"{operation} on {where}: {code}: {message}".rstrip(": "))


def logs_client(
    *, region: str | None = None, endpoint_url: str | None = None, profile: str | None = None
) -> CloudWatchLogsClient:
    """A CloudWatch Logs client without botocore's hidden retries (see the module docstring)."""
    from botocore.exceptions import BotoCoreError, NoRegionError

    from hsmaudit.aws.clients import aws_client, aws_session
    from hsmaudit.aws.region import NO_REGION_FIX

    try:
        session = aws_session(region=region, profile=profile)
        client: CloudWatchLogsClient = aws_client(
            "logs",
            session=session,
            endpoint_url=endpoint_url,
            connect_timeout=10,
            read_timeout=60,
            retries={"total_max_attempts": 1, "mode": "standard"},
            user_agent_extra="hsmaudit",
        )
        return client
    except NoRegionError:
        raise LogsError(f"no AWS Region: {NO_REGION_FIX}") from None
    except BotoCoreError as error:  # e.g. ProfileNotFound
        raise LogsAccessError(f"AWS session: {error}") from None
