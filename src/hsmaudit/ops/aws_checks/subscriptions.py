"""The cluster log groups and their subscription filters, which feed the forwarder.

Facts: CloudHSM writes audit logs to `/aws/cloudhsm/<cluster-id>` (one stream per HSM); the
subscription filter on that group is what feeds the Lambda or Firehose (operator-needs.md §1.12); a
non-empty filter pattern drops records, which then show up as sequence gaps.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hsmaudit.aws.logs import LOG_GROUP_PREFIX
from hsmaudit.ops.aws_checks.errors import _short, error_kind
from hsmaudit.ops.aws_checks.session import AwsSession
from hsmaudit.ops.checks import CheckResult


class SubscriptionChecks(AwsSession):
    """Finding the `/aws/cloudhsm/...` groups and checking each one's subscription filter."""

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


def _chosen_filter(filters: list[dict[str, Any]], destination: str | None) -> dict[str, Any] | None:
    matching = [f for f in filters if destination is None or destination in str(f.get("destinationArn", ""))]
    return matching[0] if matching else None


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
