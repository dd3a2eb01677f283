"""`hsmaudit doctor`'s AWS checks: credentials, each permission the pipeline needs, subscriptions.

Each check returns `CheckResult`s that say, in one line, what is wrong and what to do next. One
concept per module, in the order doctor runs them:

- `session`: `AwsSession`, the clients every check calls through (boto3 stays in `aws/`).
- `errors`: `error_kind`, what an AWS error means for a check.
- `credentials`: who the credentials are (`aws.credentials`).
- `forwarder`: the deployed function's configuration (`aws.function`, `FunctionInfo`).
- `permissions`: which permissions are needed (`Permission`, `needed_permissions`,
  `forwarder_permissions`, `principal_for_simulation`).
- `permission_checks`: whether they are granted, simulated or probed (`aws.permissions`).
- `subscriptions`: the cluster log groups and their subscription filters (`aws.subscription`).
- `retention`: how long CloudWatch keeps them (`aws.retention`).
- `clusters`: every group of the Region at once, with what to backfill (`aws.cluster(s)`).
- `runners`: `AwsChecks` (all of the above) and `aws_checks`/`function_checks`, which run them in
  the order doctor prints them.

This package re-exports the names the CLI and the tests import from `hsmaudit.ops.aws_checks`.
"""

from __future__ import annotations

from hsmaudit.ops.aws_checks.clusters import BACKFILL_SLACK_MS, backfill_command
from hsmaudit.ops.aws_checks.errors import ErrorKind, error_kind
from hsmaudit.ops.aws_checks.forwarder import HANDLERS, FunctionInfo
from hsmaudit.ops.aws_checks.permission_checks import PROBE_KEY
from hsmaudit.ops.aws_checks.permissions import (
    Permission,
    forwarder_permissions,
    needed_permissions,
    principal_for_simulation,
)
from hsmaudit.ops.aws_checks.runners import AwsChecks, aws_checks, function_checks
from hsmaudit.ops.aws_checks.subscriptions import _subscription_result

__all__ = [
    "BACKFILL_SLACK_MS",
    "HANDLERS",
    "PROBE_KEY",
    "AwsChecks",
    "ErrorKind",
    "FunctionInfo",
    "Permission",
    "_subscription_result",
    "aws_checks",
    "backfill_command",
    "error_kind",
    "forwarder_permissions",
    "function_checks",
    "needed_permissions",
    "principal_for_simulation",
]
