"""Who the credentials are: the first AWS check, without which nothing else can be checked."""

from __future__ import annotations

from hsmaudit.ops.aws_checks.errors import _short, error_kind
from hsmaudit.ops.aws_checks.session import AwsSession
from hsmaudit.ops.checks import CheckResult


class CredentialChecks(AwsSession):
    """`credentials` fills in `caller_arn` and `account`, which the permission checks use."""

    def credentials(self) -> CheckResult:
        """Who the credentials are (sts:GetCallerIdentity needs no permission)."""
        try:
            identity = self.client("sts").get_caller_identity()
        except Exception as error:  # boundary: botocore raises many types
            kind = error_kind(error)
            if kind == "credentials" and type(error).__name__ == "NoCredentialsError":
                return CheckResult(
                    "aws.credentials",
                    "fail",
                    "no AWS credentials found",
                    "set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run 'aws configure'",
                )
            if kind == "credentials":
                return CheckResult(
                    "aws.credentials",
                    "fail",
                    f"AWS rejected the credentials ({_short(error)})",
                    "they are wrong or expired: refresh them (aws sso login, or new keys)",
                )
            return CheckResult(
                "aws.credentials",
                "fail",
                f"cannot reach AWS STS ({_short(error)})",
                "check the Region and network",
            )
        self.caller_arn = str(identity.get("Arn", ""))
        self.account = str(identity.get("Account", ""))
        return CheckResult(
            "aws.credentials", "ok", f"AWS credentials are {self.caller_arn} (account {self.account})"
        )
