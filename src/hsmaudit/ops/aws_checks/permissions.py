"""Which IAM permissions the operator commands and the forwarder need, for a configuration."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Permission:
    """An IAM action on a resource, and which part of the pipeline needs it."""

    action: str
    resource: str
    why: str


def principal_for_simulation(caller_arn: str) -> str | None:
    """The IAM principal ARN to simulate for an STS caller ARN (None for the root user).

    `arn:aws:sts::123:assumed-role/Name/session` -> `arn:aws:iam::123:role/Name` (the role's path,
    if any, is looked up separately; IAM requires it).
    """
    match = re.match(r"^arn:(aws[\w-]*):sts::(\d+):assumed-role/([^/]+)/.+$", caller_arn)
    if match:
        partition, account, role = match.groups()
        return f"arn:{partition}:iam::{account}:role/{role}"
    if re.match(r"^arn:aws[\w-]*:iam::\d+:root$", caller_arn):
        return None
    return caller_arn


def needed_permissions(
    *,
    region: str,
    account: str,
    log_groups: Iterable[str],
    secret_arn: str | None = None,
    ssm_parameter: str | None = None,
    spool_bucket: str | None = None,
    spool_prefix: str = "",
) -> list[Permission]:
    """Every permission the operator commands and the configured pipeline need."""
    partition = "aws"
    logs_arn = f"arn:{partition}:logs:{region}:{account}:log-group:"
    needed = [
        Permission("logs:DescribeLogGroups", f"{logs_arn}*", "finding the clusters' log groups"),
    ]
    for group in log_groups:
        needed += [
            Permission(
                "logs:DescribeLogStreams", f"{logs_arn}{group}:*", f"listing the HSM streams of {group}"
            ),
            Permission("logs:GetLogEvents", f"{logs_arn}{group}:log-stream:*", f"backfill of {group}"),
            Permission("logs:FilterLogEvents", f"{logs_arn}{group}:*", f"tail of {group}"),
            Permission(
                "logs:DescribeSubscriptionFilters",
                f"{logs_arn}{group}:*",
                f"checking the subscription of {group}",
            ),
        ]
    if secret_arn:
        needed.append(Permission("secretsmanager:GetSecretValue", secret_arn, "reading the HEC token"))
    if ssm_parameter:
        name = ssm_parameter.lstrip("/")
        resource = (
            ssm_parameter
            if ssm_parameter.startswith("arn:")
            else f"arn:{partition}:ssm:{region}:{account}:parameter/{name}"
        )
        needed.append(Permission("ssm:GetParameter", resource, "reading the HEC token"))
    if spool_bucket:
        objects = f"arn:{partition}:s3:::{spool_bucket}/{spool_prefix}*"
        needed += [
            Permission(
                "s3:ListBucket", f"arn:{partition}:s3:::{spool_bucket}", "listing spooled batches (replay)"
            ),
            Permission("s3:PutObject", objects, "spooling what HEC refuses"),
            Permission("s3:GetObject", objects, "reading spooled batches (replay)"),
            Permission("s3:DeleteObject", objects, "removing replayed batches"),
        ]
    return needed


def forwarder_permissions(
    *,
    region: str,
    account: str,
    secret_arn: str | None = None,
    ssm_parameter: str | None = None,
    spool_bucket: str | None = None,
    spool_prefix: str = "",
) -> list[Permission]:
    """What the forwarder's own role needs: read its token, put spool objects; nothing else.

    The deploy template grants exactly these (docs/deploy.md "IAM, explained"); reading log groups
    (backfill, tail) and reading or deleting the spool (replay) are the operator's, so checking
    the function's role against `needed_permissions` would report them as missing.
    """
    operator = needed_permissions(
        region=region,
        account=account,
        log_groups=[],
        secret_arn=secret_arn,
        ssm_parameter=ssm_parameter,
        spool_bucket=spool_bucket,
        spool_prefix=spool_prefix,
    )
    wanted = {"secretsmanager:GetSecretValue", "ssm:GetParameter", "s3:PutObject"}
    return [permission for permission in operator if permission.action in wanted]
