"""How long CloudWatch keeps each cluster's audit log (PCI DSS v4 10.5.1 asks for 12 months)."""

from __future__ import annotations

from collections.abc import Iterable

from hsmaudit.ops.aws_checks.errors import _short
from hsmaudit.ops.aws_checks.session import AwsSession
from hsmaudit.ops.checks import CheckResult


class RetentionChecks(AwsSession):
    """One `aws.retention` result per named log group."""

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
