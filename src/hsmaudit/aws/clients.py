"""How we reach AWS: the one boto3 client factory, AWS error codes, and `s3://` locations.

Every boto3 client of ours is made by `aws_client` (the Lambda's secret store, S3 spool and
auto-subscribe function; replay's failure stores; doctor's and backfill's sessions), so timeouts,
retries and the Region (`aws.region.resolve_region`: `AWS_REGION` too, which boto3 alone ignores)
are set in one place. Callers state what differs, and why, at the call: a secret fetch must not
eat the invocation (short read timeout), an SQS long poll needs a longer one, the Logs reader
paces itself and wants no hidden retries.

boto3 and botocore are imported inside the functions only: importing this module costs nothing,
so the handlers' cold import stays free of them until S3 or a secret store is configured
(tests/integration/test_forwarder_imports.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

RETRIES: Final[Mapping[str, Any]] = {"max_attempts": 3, "mode": "standard"}
"""botocore's standard retry mode with 3 retries: the default of the Lambda-side clients."""


def aws_session(*, region: str | None = None, profile: str | None = None) -> Any:
    """A new boto3 session for `profile`, in the Region `resolve_region(region)` gives.

    For the operator commands (doctor, backfill, tail) that take `--profile`; the Lambda-side
    clients use boto3's default session (`aws_client` without `session`). Raises botocore's
    errors (ProfileNotFound, ...) for the caller to word.
    """
    import boto3

    from hsmaudit.aws.region import resolve_region

    return boto3.session.Session(profile_name=profile, region_name=resolve_region(region))


def aws_client(
    service: str,
    *,
    read_timeout: float,
    connect_timeout: float = 3,
    retries: Mapping[str, Any] = RETRIES,
    region: str | None = None,
    session: Any = None,
    endpoint_url: str | None = None,
    user_agent_extra: str | None = None,
) -> Any:
    """A boto3 client for `service` with the given timeouts and retries.

    Without `session`, boto3's default session makes it, in `region` (when a URL names one, as a
    queue URL does) or the resolved Region; with `session`, that session's Region applies.
    The endpoint comes from `endpoint_url` or the usual AWS environment (`AWS_ENDPOINT_URL`).
    """
    import boto3
    from botocore.config import Config

    from hsmaudit.aws.region import resolve_region

    options: dict[str, Any] = {
        "connect_timeout": connect_timeout,
        "read_timeout": read_timeout,
        "retries": dict(retries),
    }
    if user_agent_extra is not None:
        options["user_agent_extra"] = user_agent_extra
    config = Config(**options)
    if session is None:
        return boto3.client(  # type: ignore[call-overload]
            service, region_name=resolve_region(region), endpoint_url=endpoint_url, config=config
        )
    return session.client(service, endpoint_url=endpoint_url, config=config)


def aws_error_code(error: Exception) -> str:
    """The AWS error code of a botocore error (`AccessDenied`, …), else the exception's class name."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if isinstance(code, str):
            return code
    return type(error).__name__


def split_s3_url(url: str) -> tuple[str, str] | None:
    """`s3://bucket/some/prefix` -> `("bucket", "some/prefix")`; None for anything else.

    The S3 spool and Firehose's failure objects both take such a URL; each raises its own error
    (a `SpoolError`, a `FailureStoreError`) for None and normalises the prefix as it needs.

    >>> split_s3_url("s3://b/p/q/")
    ('b', 'p/q/')
    >>> split_s3_url("s3://b") , split_s3_url("https://b/p"), split_s3_url("s3:///p")
    (('b', ''), None, None)
    """
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        return None
    return parts.netloc, parts.path.lstrip("/")
