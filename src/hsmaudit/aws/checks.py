"""The AWS session `hsmaudit doctor`'s AWS checks run on (the checks are in `ops/aws_checks/`).

Only the boto3 part stays in `aws/` (the only boto3 user): a client factory for one session with
doctor's short retries and timeouts, and the one-line error when no session can start.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hsmaudit.errors import HsmauditError

ClientFactory = Callable[[str], Any]
"""`service name -> boto3 client` (injected: tests point it at moto)."""


class AwsSessionError(HsmauditError):
    """No usable AWS session (unknown profile, no Region); `fix` says what to do."""

    def __init__(self, message: str, fix: str, *, check: str = "aws.credentials") -> None:
        super().__init__(message)
        self.fix = fix
        self.check = check
        """The doctor check this problem belongs to (a missing Region is not a credentials problem)."""


def aws_clients(*, region: str | None, profile: str | None) -> tuple[ClientFactory, str]:
    """A client factory for one boto3 session, and the session's Region.

    Region and endpoint come from the usual AWS environment unless given (`AWS_ENDPOINT_URL`
    points every client at an emulator in tests). Two attempts at most: a doctor must answer fast.
    """
    from botocore.exceptions import BotoCoreError

    from hsmaudit.aws.clients import aws_client, aws_session
    from hsmaudit.aws.region import NO_REGION_FIX

    try:
        session = aws_session(region=region, profile=profile)
    except BotoCoreError as error:
        raise AwsSessionError(
            f"the AWS session cannot start ({error})", "check --profile / AWS_PROFILE"
        ) from None
    if not session.region_name:
        raise AwsSessionError("no AWS Region is configured", NO_REGION_FIX, check="aws.region")
    retries = {"total_max_attempts": 2, "mode": "standard"}

    def client(service: str) -> Any:
        return aws_client(service, session=session, connect_timeout=10, read_timeout=20, retries=retries)

    return client, session.region_name
