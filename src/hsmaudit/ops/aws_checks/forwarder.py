"""The deployed forwarder Lambda: its configuration, read for `doctor --function`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from hsmaudit.ops.aws_checks.errors import _short, error_kind
from hsmaudit.ops.aws_checks.session import AwsSession
from hsmaudit.ops.checks import CheckResult

HANDLERS: Final = frozenset({"hsmaudit.aws.subscription.handler", "hsmaudit.aws.firehose.handler"})


@dataclass(frozen=True)
class FunctionInfo:
    """The deployed forwarder: what `doctor --function` checks with instead of local settings."""

    name: str
    arn: str
    role_arn: str
    handler: str
    environment: dict[str, str]


class ForwarderChecks(AwsSession):
    """`function` reads the forwarder's configuration, whose settings the other checks then use."""

    def function(self, name: str) -> tuple[list[CheckResult], FunctionInfo | None]:
        """The forwarder Lambda's configuration (lambda:GetFunctionConfiguration), with remarks."""
        try:
            answer = self.client("lambda").get_function_configuration(FunctionName=name)
        except Exception as error:  # boundary: one line
            kind = error_kind(error)
            if kind == "not_found":
                what, fix = (
                    f"no Lambda function {name} in {self.region}",
                    "check the name (or ARN) and the Region",
                )
            elif kind == "denied":
                what, fix = (
                    f"cannot read Lambda function {name} (AccessDenied)",
                    "allow lambda:GetFunctionConfiguration",
                )
            else:
                what, fix = f"cannot read Lambda function {name} ({_short(error)})", None
            return [CheckResult("aws.function", "fail", what, fix)], None
        environment = dict((answer.get("Environment") or {}).get("Variables") or {})
        info = FunctionInfo(
            name=str(answer.get("FunctionName", name)),
            arn=str(answer.get("FunctionArn", "")),
            role_arn=str(answer.get("Role", "")),
            handler=str(answer.get("Handler", "")),
            environment={k: str(v) for k, v in environment.items()},
        )
        results = [
            CheckResult(
                "aws.function",
                "ok",
                f"function {info.name} runs {info.handler} as {info.role_arn}; checking with its settings",
            )
        ]
        if info.handler not in HANDLERS:
            results.append(
                CheckResult(
                    "aws.function",
                    "warn",
                    f"function {info.name} runs {info.handler}, not an hsmaudit handler",
                    f"set the handler to one of {', '.join(sorted(HANDLERS))}",
                )
            )
        if info.environment.get("HSMAUDIT_HEC_TOKEN"):
            results.append(
                CheckResult(
                    "aws.function",
                    "warn",
                    f"function {info.name} has the HEC token in a plain environment variable",
                    "put it in Secrets Manager and set HSMAUDIT_HEC_TOKEN_SECRET_ARN instead",
                )
            )
        return results, info
