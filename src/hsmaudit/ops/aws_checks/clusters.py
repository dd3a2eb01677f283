"""Every cluster of the Region at once: subscription, destination, retention, what to backfill."""

from __future__ import annotations

from typing import Any, Final

from hsmaudit.aws.logs import LOG_GROUP_PREFIX
from hsmaudit.ops.aws_checks.errors import _short
from hsmaudit.ops.aws_checks.session import AwsSession
from hsmaudit.ops.aws_checks.subscriptions import _chosen_filter, _subscription_result
from hsmaudit.ops.checks import CheckResult, Status

BACKFILL_SLACK_MS: Final = 60_000
"""A filter made within a minute of its group (the stack, or auto-subscribe, right after CloudHSM
created it) is not looked at further; a later one is, if a stream's first record predates it."""


class ClusterChecks(AwsSession):
    """`all_clusters`: one `aws.cluster` line per group, then an `aws.clusters` total."""

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
