"""The AWS checks in the order `hsmaudit doctor` prints them; later ones skipped when earlier fail.

Each check returns `CheckResult`s that say, in one line, what is wrong and what to do next. The
order follows what depends on what: without credentials nothing else can be checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from hsmaudit.ops.aws_checks.clusters import ClusterChecks
from hsmaudit.ops.aws_checks.credentials import CredentialChecks
from hsmaudit.ops.aws_checks.errors import error_kind
from hsmaudit.ops.aws_checks.forwarder import ForwarderChecks, FunctionInfo
from hsmaudit.ops.aws_checks.permission_checks import PermissionChecks
from hsmaudit.ops.aws_checks.permissions import forwarder_permissions, needed_permissions
from hsmaudit.ops.aws_checks.retention import RetentionChecks
from hsmaudit.ops.aws_checks.subscriptions import SubscriptionChecks
from hsmaudit.ops.checks import CheckResult

if TYPE_CHECKING:
    from hsmaudit.config import Settings


class AwsChecks(
    CredentialChecks, ForwarderChecks, SubscriptionChecks, PermissionChecks, RetentionChecks, ClusterChecks
):
    """The AWS side of `hsmaudit doctor`, through boto3 clients from `clients`."""


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
