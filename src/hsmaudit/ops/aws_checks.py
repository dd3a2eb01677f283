"""`hsmaudit doctor`'s AWS checks: credentials, each permission the pipeline needs, subscriptions.

Each check returns `CheckResult`s that say, in one line, what is wrong and what to do next. The
order follows what depends on what: without credentials nothing else can be checked.

Permissions are checked the precise way first, with `iam:SimulatePrincipalPolicy` against the
caller's own principal (an assumed role's session ARN is turned into the role's ARN), which
answers for every action and resource without touching data. When simulation is not possible
(the caller may not call it, SCPs, or an emulator without it), each permission is checked by
making the real call the pipeline makes, read-only where it can be: an `AccessDenied` answer
names the missing permission. Writes to an S3 spool are checked by writing, reading and deleting
one small probe object under the spool prefix.

Facts: CloudHSM writes audit logs to `/aws/cloudhsm/<cluster-id>` (one stream per HSM); the
subscription filter on that group is what feeds the Lambda or Firehose (operator-needs.md §1.12); a
non-empty filter pattern drops records, which then show up as sequence gaps.

The checks talk to AWS only through a `ClientFactory` (`aws.checks.aws_clients` makes the boto3
one; tests point it at moto or a fake), so boto3 stays in `aws/`. `aws_checks` and
`function_checks` run them in the order doctor prints them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from hsmaudit.aws.checks import ClientFactory
from hsmaudit.aws.logs import LOG_GROUP_PREFIX
from hsmaudit.ops.checks import CheckResult, Status

if TYPE_CHECKING:
    from hsmaudit.config import Settings

ErrorKind = Literal["denied", "credentials", "not_found", "throttled", "unavailable", "other"]

PROBE_KEY: Final = ".hsmaudit-doctor-probe"
HANDLERS: Final = frozenset({"hsmaudit.aws.subscription.handler", "hsmaudit.aws.firehose.handler"})


@dataclass(frozen=True)
class Permission:
    """An IAM action on a resource, and which part of the pipeline needs it."""

    action: str
    resource: str
    why: str


def error_kind(error: BaseException) -> ErrorKind:
    """What an AWS error means for a check, from botocore's `ClientError` or its other errors.

    Matches on codes and, for emulators and query-protocol answers that put the code in the
    message, on the message: "AccessDenied", "not authorized", "InvalidClientTokenId".
    """
    response = getattr(error, "response", None)
    code = ""
    message = ""
    status = 0
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        message = str(response.get("Error", {}).get("Message", ""))
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    name = type(error).__name__
    text = f"{code} {message}"
    if name in {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"}:
        return "credentials"
    if re.search(
        r"InvalidClientTokenId|UnrecognizedClient|ExpiredToken|SignatureDoesNotMatch|InvalidAccessKeyId", text
    ):
        return "credentials"
    if re.search(r"AccessDenied|UnauthorizedOperation|not authorized|AuthorizationError", text):
        return "denied"
    if re.search(r"ResourceNotFound|NoSuchBucket|NoSuchEntity|ParameterNotFound|NoSuchKey", text):
        return "not_found"
    if re.search(r"Throttl|TooManyRequests|RequestLimitExceeded|SlowDown", text):
        return "throttled"
    if name in {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ResponseParserError"}:
        return "unavailable"
    if status >= 500 or name in {"NotImplementedError"}:
        return "unavailable"
    return "other"


def _short(error: BaseException) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        message = str(response.get("Error", {}).get("Message", ""))
        inner = re.search(r"<Code>([^<]+)</Code>", message)
        return inner.group(1) if inner else (code or type(error).__name__)
    return type(error).__name__


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


@dataclass(frozen=True)
class FunctionInfo:
    """The deployed forwarder: what `doctor --function` checks with instead of local settings."""

    name: str
    arn: str
    role_arn: str
    handler: str
    environment: dict[str, str]


class AwsChecks:
    """The AWS side of `hsmaudit doctor`, through boto3 clients from `clients`."""

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

    # -- credentials ------------------------------------------------------------------------

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

    # -- the deployed forwarder -------------------------------------------------------------

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

    # -- log groups -------------------------------------------------------------------------

    def discover_log_groups(self) -> list[str]:
        """Every CloudHSM cluster log group in the Region (`/aws/cloudhsm/...`)."""
        groups: list[str] = []
        params: dict[str, Any] = {"logGroupNamePrefix": LOG_GROUP_PREFIX}
        while True:
            page = self.client("logs").describe_log_groups(**params)
            groups += [item["logGroupName"] for item in page.get("logGroups", [])]
            token = page.get("nextToken")
            if not token:
                return groups
            params["nextToken"] = token

    # -- permissions ------------------------------------------------------------------------

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

    # -- retention ---------------------------------------------------------------------------

    def retention(self, log_groups: Iterable[str]) -> list[CheckResult]:
        """How long CloudWatch keeps each cluster's audit log (a warning below 12 months).

        PCI DSS v4 10.5.1 asks for 12 months of audit log history, 3 immediately available
        (operator-needs.md §2.4). Splunk may be where that is kept; CloudWatch's retention is also the
        limit of what `hsmaudit backfill` can still load.
        """
        results: list[CheckResult] = []
        for group in log_groups:
            try:
                found = self.client("logs").describe_log_groups(logGroupNamePrefix=group).get("logGroups", [])
            except Exception as error:  # boundary: one line per group
                results.append(
                    CheckResult(
                        "aws.retention", "warn", f"cannot read the retention of {group} ({_short(error)})"
                    )
                )
                continue
            match = [item for item in found if item.get("logGroupName") == group]
            if not match:
                continue  # aws.subscription names a missing group
            days = match[0].get("retentionInDays")
            if days is None:
                results.append(CheckResult("aws.retention", "ok", f"log group {group} keeps records forever"))
            elif int(days) < 365:
                results.append(
                    CheckResult(
                        "aws.retention",
                        "warn",
                        f"log group {group} keeps records {days} days only; "
                        "backfill cannot load anything older",
                        "PCI DSS v4 10.5.1 asks for 12 months of audit history: keep it in Splunk, "
                        "or raise the retention (aws logs put-retention-policy --retention-in-days 400)",
                    )
                )
            else:
                results.append(
                    CheckResult("aws.retention", "ok", f"log group {group} keeps records {days} days")
                )
        return results

    # -- subscription filters ---------------------------------------------------------------

    def subscriptions(
        self, log_groups: Iterable[str], *, destination: str | None = None
    ) -> list[CheckResult]:
        """Each cluster log group must have a subscription filter (to `destination`, when given)."""
        results: list[CheckResult] = []
        for group in log_groups:
            try:
                filters = (
                    self.client("logs")
                    .describe_subscription_filters(logGroupName=group)
                    .get("subscriptionFilters", [])
                )
            except Exception as error:  # boundary: one line per group
                kind = error_kind(error)
                what = "does not exist" if kind == "not_found" else f"cannot be read ({_short(error)})"
                fix = (
                    "check the cluster id and Region"
                    if kind == "not_found"
                    else "allow logs:DescribeSubscriptionFilters"
                )
                results.append(CheckResult("aws.subscription", "fail", f"log group {group} {what}", fix))
                continue
            results.append(_subscription_result(group, filters, destination))
        return results

    # -- every cluster at once ---------------------------------------------------------------

    def all_clusters(self, *, destination: str | None = None) -> list[CheckResult]:
        """Every `/aws/cloudhsm/*` group in the Region: subscription, pattern, destination, retention.

        One `aws.cluster` line per group that is fine or not, then one `aws.clusters` total. A
        group whose subscription filter is younger than the group (a cluster created after the
        stack, subscribed later by hand or by the auto-subscribe function) missed the records
        written in between: its line names the `hsmaudit backfill` command for that window.
        Raises what DescribeLogGroups raises (the caller says it in one line).
        """
        groups: list[dict[str, Any]] = []
        params: dict[str, Any] = {"logGroupNamePrefix": LOG_GROUP_PREFIX}
        while True:
            page = self.client("logs").describe_log_groups(**params)
            groups += page.get("logGroups", [])
            token = page.get("nextToken")
            if not token:
                break
            params["nextToken"] = token
        results: list[CheckResult] = []
        tally = {"ok": 0, "unsubscribed": 0, "pattern": 0, "destination": 0, "retention": 0, "backfill": 0}
        for item in groups:
            group = str(item["logGroupName"])
            created = item.get("creationTime")
            try:
                filters = (
                    self.client("logs")
                    .describe_subscription_filters(logGroupName=group)
                    .get("subscriptionFilters", [])
                )
            except Exception as error:  # boundary: one line per group
                results.append(
                    CheckResult(
                        "aws.cluster",
                        "fail",
                        f"cannot read the subscription filters of {group} ({_short(error)})",
                        "allow logs:DescribeSubscriptionFilters",
                    )
                )
                continue
            subscription = _subscription_result(group, filters, destination)
            problems: list[str] = []
            fixes: list[str] = []
            status: Status = "ok"
            if subscription.status != "ok":
                status = "fail" if subscription.status == "fail" else "warn"
                problems.append(subscription.summary.removeprefix(f"log group {group} "))
                if not filters:
                    tally["unsubscribed"] += 1
                    fixes.append(
                        "subscribe it (deploy the stack with AutoSubscribe, or add the filter), then "
                        + backfill_command(group, since_ms=created)
                    )
                elif subscription.status == "warn":
                    tally["pattern"] += 1
                    fixes.append(subscription.fix or "")
                else:
                    tally["destination"] += 1
                    fixes.append(subscription.fix or "")
            else:
                chosen = _chosen_filter(filters, destination)
                since = created if isinstance(created, int) else None
                filtered = chosen.get("creationTime") if chosen else None
                late = (
                    since is not None and isinstance(filtered, int) and filtered - since > BACKFILL_SLACK_MS
                )
                first = self._first_event_ms(group) if late else None
                if isinstance(filtered, int) and first is not None and first < filtered:
                    tally["backfill"] += 1
                    status = "warn"
                    problems.append(
                        f"was subscribed {_duration(filtered - first)} after its first record; the "
                        "records written before the filter existed were not forwarded"
                    )
                    fixes.append(backfill_command(group, since_ms=first, until_ms=filtered))
            days = item.get("retentionInDays")
            if days is not None and int(days) < 365:
                tally["retention"] += 1
                status = "warn" if status == "ok" else status
                problems.append(
                    f"keeps records {days} days only (below the 12 months PCI DSS v4 10.5.1 asks for)"
                )
                fixes.append(
                    f"aws logs put-retention-policy --log-group-name {group} --retention-in-days 400"
                )
            if not problems:
                tally["ok"] += 1
                kept = "forever" if days is None else f"{days} days"
                results.append(
                    CheckResult(
                        "aws.cluster",
                        "ok",
                        f"{subscription.summary.replace('log group ', '', 1)}; keeps records {kept}",
                    )
                )
                continue
            results.append(
                CheckResult("aws.cluster", status, f"{group} " + "; ".join(problems), "; ".join(fixes))
            )
        unhealthy = tally["unsubscribed"] + tally["destination"]
        summary = (
            f"{len(groups)} CloudHSM log groups in {self.region}: "
            f"{tally['ok']} subscribed and kept 12 months, "
            f"{tally['unsubscribed']} not subscribed, {tally['destination']} sending elsewhere, "
            f"{tally['pattern']} with a filter pattern, {tally['retention']} kept below 12 months, "
            f"{tally['backfill']} to backfill"
        )
        if not groups:
            results.append(CheckResult("aws.clusters", "warn", summary, "check the Region"))
        else:
            results.append(CheckResult("aws.clusters", "fail" if unhealthy else "ok", summary))
        return results

    def _first_event_ms(self, group: str) -> int | None:
        """The earliest record of any stream of the group (None: none, or not readable)."""
        from hsmaudit.aws.autosubscribe import first_event_ms

        try:
            return first_event_ms(self.client("logs"), group)
        except Exception:  # boundary: aws.permissions names a missing DescribeLogStreams
            return None


BACKFILL_SLACK_MS: Final = 60_000
"""A filter made within a minute of its group (the stack, or auto-subscribe, right after CloudHSM
created it) is not looked at further; a later one is, if a stream's first record predates it."""


def _chosen_filter(filters: list[dict[str, Any]], destination: str | None) -> dict[str, Any] | None:
    matching = [f for f in filters if destination is None or destination in str(f.get("destinationArn", ""))]
    return matching[0] if matching else None


def _duration(ms: int) -> str:
    minutes = ms // 60_000
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes / 60
    return f"{hours:.1f} h" if hours < 72 else f"{int(hours // 24)} days"


def _iso(ms: int) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def backfill_command(group: str, *, since_ms: Any, until_ms: int | None = None) -> str:
    """The `hsmaudit backfill` command that loads what a group held before its filter existed."""
    target = (
        f"--cluster {group.removeprefix(LOG_GROUP_PREFIX)}"
        if group.startswith(LOG_GROUP_PREFIX) and "/" not in group.removeprefix(LOG_GROUP_PREFIX)
        else f"--log-group {group}"
    )
    command = f"hsmaudit backfill {target}"
    if isinstance(since_ms, int):
        command += f" --since {_iso(since_ms)}"
    if until_ms is not None:
        command += f" --until {_iso(until_ms + 1000)}"
    return command


def _subscription_result(group: str, filters: list[dict[str, Any]], destination: str | None) -> CheckResult:
    if not filters:
        return CheckResult(
            "aws.subscription",
            "fail",
            f"log group {group} has no subscription filter, so new audit records are not forwarded",
            "deploy the hsmaudit stack for this cluster (deploy/template.yaml) or add a subscription filter",
        )
    matching = [f for f in filters if destination is None or destination in str(f.get("destinationArn", ""))]
    if not matching:
        targets = ", ".join(str(f.get("destinationArn", "")) for f in filters)
        return CheckResult(
            "aws.subscription",
            "fail",
            f"log group {group} is subscribed to {targets}, not to {destination}",
            "add a subscription filter to the hsmaudit forwarder (a group may have two)",
        )
    chosen = matching[0]
    pattern = str(chosen.get("filterPattern", ""))
    if pattern.strip():
        return CheckResult(
            "aws.subscription",
            "warn",
            f"log group {group} is subscribed with filter pattern {pattern!r}, which drops records",
            "use an empty pattern: hsmaudit needs every record (dropped ones look like sequence gaps)",
        )
    return CheckResult(
        "aws.subscription", "ok", f"log group {group} is subscribed to {chosen.get('destinationArn', '')}"
    )


def _log_group_of(resource: str) -> str:
    match = re.search(r":log-group:(.+?)(?::log-stream:.*|:\*)?$", resource)
    return match.group(1) if match else resource


def aws_checks(
    *,
    settings: Settings,
    clusters: list[str],
    region: str | None,
    profile: str | None,
    destination: str | None,
    principal_arn: str | None,
    all_clusters: bool = False,
    forwarder_role: bool = False,
) -> Iterator[CheckResult]:
    """Credentials, permissions, subscriptions; later checks are skipped when credentials fail.

    With `all_clusters`, the subscription and retention checks become one line per
    `/aws/cloudhsm/*` group and a total (`AwsChecks.all_clusters`). With `forwarder_role`
    (`--function` without `--principal-arn`) the principal is the forwarder's role, checked for
    what the forwarder does only (`forwarder_permissions`).
    """
    from hsmaudit.aws.checks import AwsSessionError, aws_clients
    from hsmaudit.aws.logs import log_group_for_cluster
    from hsmaudit.aws.region import region_source

    try:
        clients, resolved_region = aws_clients(region=region, profile=profile)
    except AwsSessionError as error:
        yield CheckResult(error.check, "fail", str(error), error.fix)
        later = ("aws.credentials", "aws.permissions", "aws.subscription")
        for name in later[later.index(error.check) + 1 :] if error.check in later else later:
            yield CheckResult(name, "skip", f"not checked: {error.check} failed")
        return
    yield CheckResult("aws.region", "ok", f"AWS Region {resolved_region} (from {region_source(region)})")
    checks = AwsChecks(clients, region=resolved_region)
    credentials = checks.credentials()
    yield credentials
    if credentials.status != "ok":
        for name in ("aws.permissions", "aws.subscription"):
            yield CheckResult(name, "skip", "not checked: aws.credentials failed")
        return
    if clusters:
        groups = [log_group_for_cluster(cluster) for cluster in clusters]
    else:
        try:
            groups = checks.discover_log_groups()
        except Exception as error:  # boundary: one line
            kind = error_kind(error)
            fix = (
                "allow logs:DescribeLogGroups, or name the clusters with --cluster"
                if kind == "denied"
                else None
            )
            yield CheckResult(
                "aws.subscription", "fail", f"cannot list the CloudHSM log groups ({kind})", fix
            )
            groups = []
        if not groups:
            yield CheckResult(
                "aws.subscription",
                "warn",
                f"no CloudHSM log groups (/aws/cloudhsm/...) in {resolved_region}",
                "name the clusters with --cluster, or check the Region",
            )
    if forwarder_role:
        needed = forwarder_permissions(
            region=resolved_region,
            account=checks.account or "",
            secret_arn=settings.hec_token_secret_arn,
            ssm_parameter=settings.hec_token_ssm_parameter,
            spool_bucket=settings.spool_bucket,
            spool_prefix=settings.spool_prefix,
        )
    else:
        needed = needed_permissions(
            region=resolved_region,
            account=checks.account or "",
            log_groups=groups,
            secret_arn=settings.hec_token_secret_arn,
            ssm_parameter=settings.hec_token_ssm_parameter,
            spool_bucket=settings.spool_bucket,
            spool_prefix=settings.spool_prefix,
        )
    if forwarder_role and not needed:
        yield CheckResult(
            "aws.permissions",
            "skip",
            "the forwarder needs no AWS permission with these settings (no token secret or parameter, "
            "no S3 spool)",
        )
    else:
        yield from checks.permissions(needed, principal_arn=principal_arn)
    if all_clusters:
        try:
            yield from checks.all_clusters(destination=destination)
        except Exception as error:  # boundary: one line
            yield CheckResult(
                "aws.clusters", "fail", f"cannot list the CloudHSM log groups ({error_kind(error)})"
            )
        return
    yield from checks.subscriptions(groups, destination=destination)
    yield from checks.retention(groups)


def function_checks(
    name: str, *, region: str | None, profile: str | None
) -> Iterator[CheckResult | FunctionInfo]:
    """The forwarder's configuration: check results, then its `FunctionInfo` when it was read."""
    from hsmaudit.aws.checks import AwsSessionError, aws_clients

    try:
        clients, resolved_region = aws_clients(region=region, profile=profile)
    except AwsSessionError as error:
        # a missing Region is filed as aws.region here too, not as a broken function
        name = error.check if error.check == "aws.region" else "aws.function"
        yield CheckResult(name, "fail", str(error), error.fix)
        return
    results, info = AwsChecks(clients, region=resolved_region).function(name)
    yield from results
    if info is not None:
        yield info
