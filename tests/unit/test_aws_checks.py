"""doctor's permission checks by IAM policy simulation (moto has no SimulatePrincipalPolicy, so an
in-memory fake IAM answers like the real API: one EvaluationResult per action and resource)."""

from __future__ import annotations

from typing import Any

from hsmaudit.ops.aws_checks import AwsChecks, Permission


class FakeIam:
    """Answers SimulatePrincipalPolicy from a set of allowed actions; records what was asked."""

    def __init__(self, allowed: set[str], *, fail: bool = False, role_arn: str | None = None) -> None:
        self.allowed = allowed
        self.fail = fail
        self.role_arn = role_arn
        self.asked: list[tuple[str, str]] = []

    def simulate_principal_policy(self, **params: Any) -> dict[str, Any]:
        if self.fail:
            raise RuntimeError("AccessDenied: not authorized to perform iam:SimulatePrincipalPolicy")
        self.asked.append((params["PolicySourceArn"], params["ActionNames"][0]))
        action = params["ActionNames"][0]
        decision = "allowed" if action in self.allowed else "implicitDeny"
        return {"EvaluationResults": [{"EvalActionName": action, "EvalDecision": decision}]}

    def get_role(self, RoleName: str) -> dict[str, Any]:
        if self.role_arn is None:
            raise RuntimeError("AccessDenied")
        return {"Role": {"Arn": self.role_arn}}


class FakeSts:
    def __init__(self, arn: str) -> None:
        self.arn = arn

    def get_caller_identity(self) -> dict[str, str]:
        return {"Arn": self.arn, "Account": "123456789012"}


NEEDED = [
    Permission(
        "logs:GetLogEvents", "arn:aws:logs:eu-west-1:123456789012:log-group:/g:log-stream:*", "backfill"
    ),
    Permission("s3:PutObject", "arn:aws:s3:::spool/prefix/*", "spooling"),
]


def checks_with(iam: FakeIam, caller: str) -> AwsChecks:
    clients = {"iam": iam, "sts": FakeSts(caller)}
    checks = AwsChecks(lambda service: clients[service], region="eu-west-1")
    assert checks.credentials().status == "ok"
    return checks


def test_simulation_names_each_denied_permission_for_the_role_behind_a_session() -> None:
    iam = FakeIam({"logs:GetLogEvents"}, role_arn="arn:aws:iam::123456789012:role/ops/Operator")
    checks = checks_with(iam, "arn:aws:sts::123456789012:assumed-role/Operator/alice")
    results = checks.permissions(NEEDED)
    assert [r.status for r in results] == ["ok", "fail"]
    assert results[1].summary.startswith("missing permission s3:PutObject on arn:aws:s3:::spool/prefix/*")
    assert "simulated: implicitDeny" in results[1].summary
    # the role's path comes from iam:GetRole: IAM needs the exact ARN
    assert {arn for arn, _ in iam.asked} == {"arn:aws:iam::123456789012:role/ops/Operator"}
    assert results[1].fix == "allow it in the policy of arn:aws:iam::123456789012:role/ops/Operator"


def test_another_principal_can_only_be_checked_by_simulation() -> None:
    iam = FakeIam(set(), fail=True)
    checks = checks_with(iam, "arn:aws:iam::123456789012:user/bob")
    (result,) = checks.permissions(NEEDED, principal_arn="arn:aws:iam::123456789012:role/hsmaudit-forwarder")
    assert result.status == "skip"
    assert "iam:SimulatePrincipalPolicy" in (result.fix or "")


def test_the_lambda_role_is_simulated_when_named() -> None:
    iam = FakeIam({"logs:GetLogEvents", "s3:PutObject"})
    checks = checks_with(iam, "arn:aws:iam::123456789012:user/bob")
    results = checks.permissions(NEEDED, principal_arn="arn:aws:iam::123456789012:role/hsmaudit-forwarder")
    assert [r.status for r in results] == ["ok", "ok"]
    assert {arn for arn, _ in iam.asked} == {"arn:aws:iam::123456789012:role/hsmaudit-forwarder"}


def test_the_root_user_needs_no_permission_check() -> None:
    checks = checks_with(FakeIam(set()), "arn:aws:iam::123456789012:root")
    (result,) = checks.permissions(NEEDED)
    assert result.status == "ok"
    assert "root" in result.summary


class FakeLogs:
    """DescribeLogGroups / DescribeSubscriptionFilters with the creation times a late filter has
    (moto stamps every resource with the moment it is made, so it cannot show a late subscription)."""

    def __init__(self, groups: list[dict[str, Any]], filters: dict[str, list[dict[str, Any]]]) -> None:
        self.groups = groups
        self.filters = filters
        self.streams: dict[str, list[dict[str, Any]]] = {}

    def describe_log_groups(self, **params: Any) -> dict[str, Any]:
        prefix = params["logGroupNamePrefix"]
        return {"logGroups": [g for g in self.groups if g["logGroupName"].startswith(prefix)]}

    def describe_subscription_filters(self, logGroupName: str) -> dict[str, Any]:
        return {"subscriptionFilters": self.filters.get(logGroupName, [])}

    def describe_log_streams(self, logGroupName: str) -> dict[str, Any]:
        return {"logStreams": self.streams.get(logGroupName, [])}


def test_a_group_subscribed_hours_after_it_was_created_names_the_backfill_window() -> None:
    created = 1_764_669_600_000  # 2025-12-02T10:00:00Z
    late = "/aws/cloudhsm/cluster-late"
    prompt = "/aws/cloudhsm/cluster-prompt"
    arn = "arn:aws:lambda:us-east-1:123456789012:function:hsmaudit-forwarder"
    fake = FakeLogs(
        [{"logGroupName": late, "creationTime": created}, {"logGroupName": prompt, "creationTime": created}],
        {
            late: [{"destinationArn": arn, "filterPattern": "", "creationTime": created + 3 * 3_600_000}],
            prompt: [{"destinationArn": arn, "filterPattern": "", "creationTime": created + 5_000}],
        },
    )
    # cluster-late's HSM wrote from 10:30; cluster-quiet was subscribed late but had written nothing
    quiet = "/aws/cloudhsm/cluster-quiet"
    fake.groups.append({"logGroupName": quiet, "creationTime": created})
    fake.filters[quiet] = [{"destinationArn": arn, "filterPattern": "", "creationTime": created + 3_600_000}]
    fake.streams[late] = [
        {"logStreamName": "hsm-a", "firstEventTimestamp": created + 1_800_000},
        {"logStreamName": "hsm-b"},
    ]
    results = AwsChecks(lambda service: fake, region="us-east-1").all_clusters(
        destination="hsmaudit-forwarder"
    )
    by_group = {r.summary.split(" ", 1)[0]: r for r in results if r.check == "aws.cluster"}
    assert by_group[prompt].status == "ok" and by_group[quiet].status == "ok"
    assert by_group[late].status == "warn"
    assert "subscribed 2.5 h after its first record" in by_group[late].summary
    assert by_group[late].fix == (
        "hsmaudit backfill --cluster cluster-late --since 2025-12-02T10:30:00Z --until 2025-12-02T13:00:01Z"
    )
    assert results[-1].check == "aws.clusters" and results[-1].status == "ok"
    assert results[-1].summary.endswith("1 to backfill")
