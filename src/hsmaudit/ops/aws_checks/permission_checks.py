"""Whether the principal has each needed permission: simulated first, else probed by real calls.

Permissions are checked the precise way first, with `iam:SimulatePrincipalPolicy` against the
caller's own principal (an assumed role's session ARN is turned into the role's ARN), which
answers for every action and resource without touching data. When simulation is not possible
(the caller may not call it, SCPs, or an emulator without it), each permission is checked by
making the real call the pipeline makes, read-only where it can be: an `AccessDenied` answer
names the missing permission. Writes to an S3 spool are checked by writing, reading and deleting
one small probe object under the spool prefix.
"""

from __future__ import annotations

import re
import time
from typing import Final

from hsmaudit.aws.logs import LOG_GROUP_PREFIX
from hsmaudit.ops.aws_checks.errors import _short, error_kind
from hsmaudit.ops.aws_checks.permissions import Permission, principal_for_simulation
from hsmaudit.ops.aws_checks.session import AwsSession
from hsmaudit.ops.checks import CheckResult

PROBE_KEY: Final = ".hsmaudit-doctor-probe"


class PermissionChecks(AwsSession):
    """One `aws.permissions` result per needed permission."""

    def permissions(self, needed: list[Permission], *, principal_arn: str | None = None) -> list[CheckResult]:
        """One result per permission: simulated for the principal, else probed by real calls.

        `principal_arn` (e.g. the Lambda's role) can only be simulated; the caller's own
        permissions fall back to probing.
        """
        target = principal_arn or (principal_for_simulation(self.caller_arn) if self.caller_arn else None)
        if self.caller_arn and target is None and principal_arn is None:
            return [
                CheckResult(
                    "aws.permissions", "ok", "the account root user may do everything (use a role instead)"
                )
            ]
        if target is not None:
            simulated = self._simulate(target, needed)
            if simulated is not None:
                return simulated
        if principal_arn is not None:
            return [
                CheckResult(
                    "aws.permissions",
                    "skip",
                    f"cannot simulate the policies of {principal_arn}",
                    "allow iam:SimulatePrincipalPolicy for these credentials to check another principal",
                )
            ]
        return [self._probe(permission) for permission in needed]

    def _role_with_path(self, arn: str) -> str:
        match = re.match(r"^arn:([\w-]+):iam::(\d+):role/([^/]+)$", arn)
        if not match:
            return arn
        try:
            role = self.client("iam").get_role(RoleName=match.group(3))
            return str(role["Role"]["Arn"])
        except Exception:  # boundary: lacking iam:GetRole is common; simulate without the path
            return arn

    def _simulate(self, principal: str, needed: list[Permission]) -> list[CheckResult] | None:
        principal = self._role_with_path(principal)
        results: list[CheckResult] = []
        for permission in needed:
            try:
                answer = self.client("iam").simulate_principal_policy(
                    PolicySourceArn=principal,
                    ActionNames=[permission.action],
                    ResourceArns=[permission.resource],
                )
            except Exception:  # boundary: denied, unsupported or unavailable -> fall back
                return None
            decisions = [item.get("EvalDecision", "") for item in answer.get("EvaluationResults", [])]
            if decisions and all(decision == "allowed" for decision in decisions):
                results.append(
                    CheckResult("aws.permissions", "ok", f"{permission.action} allowed ({permission.why})")
                )
            else:
                results.append(
                    self._missing(
                        permission, principal, "simulated: " + ", ".join(decisions or ["no answer"])
                    )
                )
        return results

    def _missing(self, permission: Permission, principal: str | None, how: str) -> CheckResult:
        who = principal or self.caller_arn or "these credentials"
        return CheckResult(
            "aws.permissions",
            "fail",
            f"missing permission {permission.action} on {permission.resource} ({how}), "
            f"needed for {permission.why}",
            f"allow it in the policy of {who}",
        )

    def _probe(self, permission: Permission) -> CheckResult:
        try:
            outcome = self._call_for(permission)
        except Exception as error:  # boundary: classify every botocore failure into one line
            kind = error_kind(error)
            if kind == "denied":
                return self._missing(permission, None, "AccessDenied")
            if kind == "not_found":
                return CheckResult(
                    "aws.permissions",
                    "warn",
                    f"{permission.action}: {permission.resource} does not exist ({_short(error)})",
                    "check the name and Region",
                )
            return CheckResult(
                "aws.permissions", "warn", f"{permission.action}: could not check ({_short(error)})"
            )
        if outcome is not None:
            return CheckResult("aws.permissions", "skip", f"{permission.action}: {outcome}")
        return CheckResult("aws.permissions", "ok", f"{permission.action} allowed ({permission.why})")

    def _call_for(self, permission: Permission) -> str | None:
        """Make the call that needs `permission`; returns why it could not be checked, or None."""
        action = permission.action
        resource = permission.resource
        group = _log_group_of(resource)
        logs = self.client("logs")
        if action == "logs:DescribeLogGroups":
            logs.describe_log_groups(logGroupNamePrefix=LOG_GROUP_PREFIX, limit=1)
        elif action == "logs:DescribeLogStreams":
            logs.describe_log_streams(logGroupName=group, limit=1)
        elif action == "logs:GetLogEvents":
            streams = logs.describe_log_streams(logGroupName=group, limit=1).get("logStreams", [])
            if not streams:
                return f"not checked: {group} has no log streams yet"
            logs.get_log_events(logGroupName=group, logStreamName=streams[0]["logStreamName"], limit=1)
        elif action == "logs:FilterLogEvents":
            logs.filter_log_events(logGroupName=group, limit=1, startTime=int(time.time() * 1000) - 60_000)
        elif action == "logs:DescribeSubscriptionFilters":
            logs.describe_subscription_filters(logGroupName=group)
        elif action == "secretsmanager:GetSecretValue":
            self.client("secretsmanager").get_secret_value(SecretId=resource)  # value discarded at once
        elif action == "ssm:GetParameter":
            name = resource.split(":parameter", 1)[1] if ":parameter" in resource else resource
            self.client("ssm").get_parameter(Name=name, WithDecryption=True)  # value discarded at once
        elif action.startswith("s3:"):
            return self._probe_s3(action, resource)
        else:
            return "not checked: no read-only call for it"
        return None

    def _probe_s3(self, action: str, resource: str) -> str | None:
        s3 = self.client("s3")
        bucket, _, prefix = resource.removeprefix("arn:aws:s3:::").partition("/")
        prefix = prefix.removesuffix("*")
        key = f"{prefix}{PROBE_KEY}"
        if action == "s3:ListBucket":
            s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
        elif action == "s3:PutObject":
            s3.put_object(Bucket=bucket, Key=key, Body=b"hsmaudit doctor probe; safe to delete\n")
        elif action == "s3:GetObject":
            s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        elif action == "s3:DeleteObject":
            s3.delete_object(Bucket=bucket, Key=key)
        return None


def _log_group_of(resource: str) -> str:
    match = re.search(r":log-group:(.+?)(?::log-stream:.*|:\*)?$", resource)
    return match.group(1) if match else resource
