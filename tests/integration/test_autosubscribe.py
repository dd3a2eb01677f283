"""The auto-subscribe function against moto's server: CloudTrail's CreateLogGroup event as EventBridge
delivers it (EventBridge reference, "CloudWatch Logs events delivered via AWS CloudTrail")."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from hsmaudit.aws import autosubscribe
from hsmaudit.aws.autosubscribe import AutoSubscribeError, handler

from .payloads import record_text

ACCOUNT = "123456789012"
REGION = "us-east-1"


def create_log_group_event(group: str, *, error: str | None = None) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "eventVersion": "1.08",
        "userIdentity": {"type": "AWSService", "invokedBy": "cloudhsm.amazonaws.com"},
        "eventTime": "2026-12-02T15:00:00Z",
        "eventSource": "logs.amazonaws.com",
        "eventName": "CreateLogGroup",
        "awsRegion": REGION,
        "sourceIPAddress": "cloudhsm.amazonaws.com",
        "requestParameters": {"logGroupName": group},
        "responseElements": None,
        "requestID": "3f1e2d4c-0000-4000-8000-000000000001",
        "eventID": "9a8b7c6d-0000-4000-8000-000000000002",
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    }
    if error:
        detail["errorCode"] = error
    return {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.logs",
        "account": ACCOUNT,
        "time": "2026-12-02T15:00:00Z",
        "region": REGION,
        "resources": [],
        "detail": detail,
    }


def cluster_named(cluster_id: str) -> None:
    """A CloudHSM cluster with CloudHSM's id shape (moto mints uuids: the backend's key is renamed)."""
    from moto.cloudhsmv2.models import cloudhsmv2_backends

    minted = boto3.client("cloudhsmv2").create_cluster(HsmType="hsm1.medium", SubnetIds=["subnet-0a1b2c3d"])
    backend = cloudhsmv2_backends[ACCOUNT][REGION]
    cluster = backend.clusters.pop(minted["Cluster"]["ClusterId"])
    cluster.cluster_id = cluster_id
    backend.clusters[cluster_id] = cluster


def forwarder_function(name: str) -> str:
    role = boto3.client("iam").create_role(
        RoleName=f"{name}-role",
        AssumeRolePolicyDocument=json.dumps(
            {"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
        ),
    )["Role"]["Arn"]  # fmt: skip
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("index.py", "def handler(event, context):\n    return None\n")
    function = boto3.client("lambda").create_function(
        FunctionName=name, Runtime="python3.12", Role=role, Handler="index.handler", Code={"ZipFile": code.getvalue()}
    )  # fmt: skip
    return str(function["FunctionArn"])


@pytest.fixture
def stack(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The forwarder and the function's environment, as the template sets them; returns its ARN."""
    autosubscribe._CLIENTS.clear()
    arn = forwarder_function(
        f"hsmaudit-forwarder-{len(boto3.client('lambda').list_functions()['Functions'])}"
    )
    monkeypatch.setenv("HSMAUDIT_SUBSCRIBE_DESTINATION_ARN", arn)
    monkeypatch.setenv("HSMAUDIT_SUBSCRIBE_FILTER_NAME", "hsmaudit-stack")
    yield arn
    autosubscribe._CLIENTS.clear()


def filters(group: str) -> list[dict[str, Any]]:
    return list(boto3.client("logs").describe_subscription_filters(logGroupName=group)["subscriptionFilters"])


def test_a_new_cluster_log_group_gets_the_filter_and_its_own_invoke_permission(stack: str) -> None:
    # GIVEN CloudHSM created cluster-new and its log group (no record yet)
    cluster_named("cluster-new")
    boto3.client("logs").create_log_group(logGroupName="/aws/cloudhsm/cluster-new")
    # WHEN EventBridge delivers the CreateLogGroup event
    result = handler(create_log_group_event("/aws/cloudhsm/cluster-new"), None)
    # THEN the stack's filter sends every record to the forwarder
    assert result["status"] == "subscribed" and "backfill" not in result
    (found,) = filters("/aws/cloudhsm/cluster-new")
    assert (found["filterName"], found["filterPattern"], found["destinationArn"]) == (
        "hsmaudit-stack",
        "",
        stack,
    )
    # AND the forwarder may be invoked by CloudWatch Logs for this log group only
    policy = json.loads(boto3.client("lambda").get_policy(FunctionName=stack)["Policy"])
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"Service": "logs.amazonaws.com"}
    assert statement["Condition"]["ArnLike"]["AWS:SourceArn"] == (
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/cloudhsm/cluster-new:*"
    )
    assert statement["Condition"]["StringEquals"]["AWS:SourceAccount"] == ACCOUNT
    # AND a second delivery of the event changes nothing
    assert handler(create_log_group_event("/aws/cloudhsm/cluster-new"), None)["status"] == "already"
    assert len(filters("/aws/cloudhsm/cluster-new")) == 1


def test_records_written_before_the_filter_are_named_with_the_backfill_command(stack: str) -> None:
    cluster_named("cluster-early")
    written = (int(time.time()) - 120) * 1000
    logs = boto3.client("logs")
    logs.create_log_group(logGroupName="/aws/cloudhsm/cluster-early")
    logs.create_log_stream(logGroupName="/aws/cloudhsm/cluster-early", logStreamName="hsm-abc")
    logs.put_log_events(
        logGroupName="/aws/cloudhsm/cluster-early",
        logStreamName="hsm-abc",
        logEvents=[{"timestamp": written, "message": record_text(1)}],
    )
    result = handler(create_log_group_event("/aws/cloudhsm/cluster-early"), None)
    assert result["status"] == "subscribed"
    assert result["backfill"].startswith(
        "hsmaudit backfill --cluster cluster-early --since "
        + time.strftime("%Y-%m-%dT%H:%M:%SZ --until ", time.gmtime(written / 1000))
    )


@pytest.mark.parametrize(
    "event",
    [
        create_log_group_event("/aws/lambda/something"),
        create_log_group_event("/aws/cloudhsm-like/cluster-x"),
        create_log_group_event("/aws/cloudhsm/cluster-new/extra"),
        create_log_group_event("/aws/cloudhsm/cluster-failed", error="ResourceAlreadyExistsException"),
        {"detail-type": "Scheduled Event", "detail": {}},
    ],
)
def test_groups_outside_the_prefix_and_other_events_are_ignored(stack: str, event: dict[str, Any]) -> None:
    group = (event.get("detail", {}).get("requestParameters") or {}).get("logGroupName")
    if group:
        boto3.client("logs").create_log_group(logGroupName=group)
    assert handler(event, None)["status"] == "ignored"
    if group:
        assert filters(group) == []


def test_a_foreign_filter_is_reported_and_never_replaced(stack: str) -> None:
    # GIVEN a group whose two filter slots hold someone else's filters (one even with our name)
    cluster_named("cluster-taken")
    logs = boto3.client("logs")
    group = "/aws/cloudhsm/cluster-taken"
    logs.create_log_group(logGroupName=group)
    other = forwarder_function("someone-elses-shipper")
    boto3.client("lambda").add_permission(
        FunctionName=other, StatementId="logs", Action="lambda:InvokeFunction", Principal="logs.amazonaws.com"
    )
    logs.put_subscription_filter(
        logGroupName=group, filterName="hsmaudit-stack", filterPattern="", destinationArn=other
    )
    before = filters(group)
    # WHEN the event arrives, THEN the function fails (the alarm fires) saying why, and changes nothing
    with pytest.raises(
        AutoSubscribeError, match=r"a filter named hsmaudit-stack sends elsewhere.*not replaced"
    ):
        handler(create_log_group_event(group), None)
    assert filters(group) == before
    # AND one foreign filter under another name is kept beside ours
    logs.delete_subscription_filter(logGroupName=group, filterName="hsmaudit-stack")
    logs.put_subscription_filter(
        logGroupName=group, filterName="theirs", filterPattern="", destinationArn=other
    )
    result = handler(create_log_group_event(group), None)
    assert result["status"] == "subscribed" and f"beside theirs -> {other}" in result["reason"]
    assert {(f["filterName"], f["destinationArn"]) for f in filters(group)} == {
        ("theirs", other),
        ("hsmaudit-stack", stack),
    }


def test_a_group_without_a_cloudhsm_cluster_is_refused(stack: str) -> None:
    boto3.client("logs").create_log_group(logGroupName="/aws/cloudhsm/cluster-forged")
    with pytest.raises(AutoSubscribeError, match="no CloudHSM cluster cluster-forged"):
        handler(create_log_group_event("/aws/cloudhsm/cluster-forged"), None)
    assert filters("/aws/cloudhsm/cluster-forged") == []


def test_importing_the_function_pulls_in_no_boto3_or_cli_libraries() -> None:
    code = (
        "import sys, hsmaudit.aws.autosubscribe as m; "
        "print(sorted(x for x in ('boto3', 'botocore', 'typer', 'rich', 'starlette', 'sigma', 'urllib3') if x in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
