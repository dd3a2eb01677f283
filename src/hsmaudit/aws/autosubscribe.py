"""The auto-subscribe Lambda: a new CloudHSM cluster's log group gets the stack's subscription filter.

EventBridge delivers CloudTrail's `CreateLogGroup` as `{"source": "aws.logs", "detail-type":
"AWS API Call via CloudTrail", "account", "region", "detail": {"eventSource":
"logs.amazonaws.com", "eventName": "CreateLogGroup", "requestParameters": {"logGroupName"}}}`
(EventBridge reference, "CloudWatch Logs events delivered via AWS CloudTrail"; a failed call
carries `detail.errorCode`). The deploy template's rule matches names under `/aws/cloudhsm/`;
this function checks again and then, in order:

1. ignores anything that is not a successful `CreateLogGroup` of `/aws/cloudhsm/cluster-<id>`;
2. refuses a group no CloudHSM cluster of this account and Region has (`DescribeClusters`): a log
   group anyone can create there must not feed forged records to Splunk;
3. leaves a group that already sends to the stack alone; refuses (reports, never replaces) a
   foreign filter that holds our filter name, or two foreign filters (the quota per group is two);
4. in Lambda mode adds the forwarder's invoke permission for this one log group (SourceArn and
   SourceAccount), then puts the filter (empty pattern: every record) to the forwarder or, in
   Firehose mode, to the delivery stream with the role CloudWatch Logs uses;
5. says whether records were written before the filter existed, with the `hsmaudit backfill`
   command that loads them (`hsmaudit doctor --all-clusters` names it too).

A refusal or an AWS error fails the invocation, which the template alarms on. Importing this
module imports no boto3 (a test checks `sys.modules`); clients are made on the first invocation.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from hsmaudit.config import load_settings
from hsmaudit.errors import HsmauditError

logger = logging.getLogger("hsmaudit.aws.autosubscribe")

CLUSTER_GROUP: Final = re.compile(r"^/aws/cloudhsm/(cluster-[a-z0-9]+)$")
"""CloudHSM writes each cluster's audit log to `/aws/cloudhsm/<cluster-id>` (AWS CloudHSM guide)."""
FILTER_QUOTA: Final = 2
"""Subscription filters per log group (CloudWatch Logs quotas)."""

Status = Literal["ignored", "subscribed", "already", "refused"]


class AutoSubscribeError(HsmauditError):
    """The group could not be subscribed; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Target:
    """What the filter sends to, and as whom."""

    destination_arn: str
    filter_name: str = "hsmaudit"
    role_arn: str | None = None

    @property
    def to_lambda(self) -> bool:
        """A forwarder function (needs an invoke permission per group), not a delivery stream."""
        return ":lambda:" in self.destination_arn


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one group (the function's return value and log line)."""

    status: Status
    log_group: str
    reason: str
    backfill: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The return value."""
        out: dict[str, Any] = {"status": self.status, "log_group": self.log_group, "reason": self.reason}
        if self.backfill:
            out["backfill"] = self.backfill
        return out


def created_log_group(event: Any) -> str | None:
    """The log group a successful CloudTrail `CreateLogGroup` event names, else None."""
    if not isinstance(event, Mapping):
        return None
    detail = event.get("detail")
    if not isinstance(detail, Mapping) or detail.get("eventName") != "CreateLogGroup":
        return None
    if detail.get("errorCode"):
        return None  # the call failed: there is no group
    parameters = detail.get("requestParameters")
    group = parameters.get("logGroupName") if isinstance(parameters, Mapping) else None
    return group if isinstance(group, str) else None


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def _code(error: BaseException) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", "")) or type(error).__name__
    return type(error).__name__


def subscribe_group(
    group: str,
    *,
    target: Target,
    account: str,
    region: str,
    logs: Any,
    lambda_client: Any,
    cloudhsm: Any,
    now_ms: int | None = None,
) -> Outcome:
    """Put the stack's subscription filter on one new cluster log group (steps 1-5 above)."""
    match = CLUSTER_GROUP.match(group)
    if match is None:
        return Outcome("ignored", group, "not a CloudHSM cluster log group (/aws/cloudhsm/cluster-<id>)")
    cluster_id = match.group(1)
    clusters = cloudhsm.describe_clusters(Filters={"clusterIds": [cluster_id]}).get("Clusters", [])
    if not any(c.get("ClusterId") == cluster_id for c in clusters):
        return Outcome(
            "refused",
            group,
            f"no CloudHSM cluster {cluster_id} in {region}: not subscribed (a log group anyone created "
            "under /aws/cloudhsm/ could feed forged records); delete the group or check who created it",
        )
    filters = logs.describe_subscription_filters(logGroupName=group).get("subscriptionFilters", [])
    if any(f.get("destinationArn") == target.destination_arn for f in filters):
        return Outcome("already", group, f"already subscribed to {target.destination_arn}")
    foreign = ", ".join(f"{f.get('filterName')} -> {f.get('destinationArn')}" for f in filters)
    if any(f.get("filterName") == target.filter_name for f in filters):
        return Outcome(
            "refused",
            group,
            f"a filter named {target.filter_name} sends elsewhere ({foreign}); not replaced: remove it "
            "or subscribe the group by hand",
        )
    if len(filters) >= FILTER_QUOTA:
        return Outcome(
            "refused",
            group,
            f"the group has {len(filters)} subscription filters already ({foreign}), the quota; not "
            "replaced: remove one, then subscribe the group (sam deploy with its ClusterIds)",
        )
    if target.to_lambda:
        partition = target.destination_arn.split(":")[1]
        try:
            lambda_client.add_permission(
                FunctionName=target.destination_arn,
                StatementId=f"hsmaudit-{cluster_id}"[:100],
                Action="lambda:InvokeFunction",
                Principal="logs.amazonaws.com",
                SourceArn=f"arn:{partition}:logs:{region}:{account}:log-group:{group}:*",
                SourceAccount=account,
            )
        except Exception as error:  # boundary: botocore's error classes are many
            if _code(error) != "ResourceConflictException":  # the statement exists: a retry
                raise
    parameters: dict[str, Any] = {
        "logGroupName": group,
        "filterName": target.filter_name,
        "filterPattern": "",
        "destinationArn": target.destination_arn,
    }
    if target.role_arn:
        parameters["roleArn"] = target.role_arn
    logs.put_subscription_filter(**parameters)
    subscribed_at = now_ms if now_ms is not None else int(time.time() * 1000)
    coexist = f" (beside {foreign})" if foreign else ""
    reason = f"subscribed to {target.destination_arn}{coexist}"
    first = first_event_ms(logs, group)
    if first is not None and first < subscribed_at:
        command = (
            f"hsmaudit backfill --cluster {cluster_id} --since {_iso(first)} "
            f"--until {_iso(subscribed_at + 1000)}"
        )
        return Outcome("subscribed", group, reason + "; records were written before the filter", command)
    return Outcome("subscribed", group, reason)


def first_event_ms(logs: Any, group: str) -> int | None:
    """The earliest record of any stream of the group (None when it holds none yet); doctor's
    `--all-clusters` asks the same to name the backfill a late filter needs."""
    first: int | None = None
    params: dict[str, Any] = {"logGroupName": group}
    while True:
        page = logs.describe_log_streams(**params)
        for stream in page.get("logStreams", []):
            stamp = stream.get("firstEventTimestamp")
            if isinstance(stamp, int) and (first is None or stamp < first):
                first = stamp
        token = page.get("nextToken")
        if not token:
            return first
        params["nextToken"] = token


_CLIENTS: dict[str, Any] = {}


def _client(service: str) -> Any:
    """One boto3 client per service for the container's life (made on first use)."""
    if service not in _CLIENTS:
        from hsmaudit.aws.clients import aws_client

        _CLIENTS[service] = aws_client(service, read_timeout=10)
    return _CLIENTS[service]


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point for the EventBridge rule on CloudTrail's `CreateLogGroup`."""
    settings = load_settings(environ=os.environ)
    logging.getLogger("hsmaudit").setLevel(settings.log_level)
    group = created_log_group(event)
    if group is None:
        logger.info(json.dumps({"message": "hsmaudit: not a CreateLogGroup event, ignored"}))
        return {"status": "ignored", "log_group": None, "reason": "not a successful CreateLogGroup event"}
    if not settings.subscribe_destination_arn:
        raise AutoSubscribeError("HSMAUDIT_SUBSCRIBE_DESTINATION_ARN is not set: nothing to subscribe to")
    target = Target(
        settings.subscribe_destination_arn, settings.subscribe_filter_name, settings.subscribe_role_arn
    )
    account = str(event.get("account") or target.destination_arn.split(":")[4])
    region = str(event.get("region") or os.environ.get("AWS_REGION", ""))
    try:
        outcome = subscribe_group(
            group,
            target=target,
            account=account,
            region=region,
            logs=_client("logs"),
            lambda_client=_client("lambda"),
            cloudhsm=_client("cloudhsmv2"),
        )
    except AutoSubscribeError:
        raise
    except Exception as error:  # boundary: one line, then fail so the alarm fires
        message = f"cannot subscribe {group} ({_code(error)}); run `hsmaudit doctor --all-clusters`"
        logger.error(json.dumps({"message": f"hsmaudit: {message}", "log_group": group}))
        raise AutoSubscribeError(message) from None
    line = {"message": f"hsmaudit: {outcome.status} {group}", **outcome.as_dict()}
    if outcome.status == "refused":
        logger.error(json.dumps(line))
        raise AutoSubscribeError(f"{group}: {outcome.reason}")
    if outcome.backfill:
        logger.warning(json.dumps(line))
    else:
        logger.info(json.dumps(line))
    return outcome.as_dict()
