"""The clients every AWS check calls through, and who the caller turned out to be.

The checks talk to AWS only through a `ClientFactory` (`aws.checks.aws_clients` makes the boto3
one; tests point it at moto or a fake), so boto3 stays in `aws/`. Each group of checks is a mixin
of `AwsSession`; `runners.AwsChecks` combines them.
"""

from __future__ import annotations

from typing import Any

from hsmaudit.aws.checks import ClientFactory


class AwsSession:
    """The boto3 clients from `clients` (one per service), the Region and the caller's identity."""

    def __init__(self, clients: ClientFactory, *, region: str) -> None:
        self._clients = clients
        self._cache: dict[str, Any] = {}
        self.region = region
        self.caller_arn: str | None = None
        self.account: str | None = None

    def client(self, service: str) -> Any:
        if service not in self._cache:
            self._cache[service] = self._clients(service)
        return self._cache[service]
