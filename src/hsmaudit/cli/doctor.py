"""`hsmaudit doctor`: find out, in order and in plain words, why nothing arrives in Splunk.

Flags -> ops -> output: the HEC checks are `hsmaudit.ops.hec_probe.HecProbe` (config, reachable,
TLS, health, token, ack, index), the AWS checks `hsmaudit.ops.aws_checks` (with `--function`,
`aws.function` first; then region, credentials, permissions, subscription and retention, or one
`aws.cluster` line per group with `--all-clusters`). This module resolves the settings (from the
deployed function's environment with `--function`), prints one line per `CheckResult` (JSON lines
with `--json`) and exits 1 when any check fails. The token is never printed.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import typer

from hsmaudit.cli import delivery_options as opts
from hsmaudit.cli.output import fail, stdout_console
from hsmaudit.ops.aws_checks import aws_checks, function_checks
from hsmaudit.ops.checks import CheckResult
from hsmaudit.ops.destination import DeliveryOptions, quiet_library_logs, resolve_settings
from hsmaudit.ops.hec_probe import HecProbe

DOCTOR_HELP: Final = (
    "Check the whole path to Splunk and AWS, in order, and say in plain words what is broken.\n\n"
    "HEC: URL configured, reachable, TLS certificate valid for its name (self-signed? set "
    "HSMAUDIT_HEC_CA_BUNDLE), healthy, token known and enabled, indexer acknowledgement as "
    "configured, index allowed (one test event with sourcetype hsmaudit:doctor; --no-test-event "
    "skips it). AWS: credentials, each permission the pipeline needs, and a subscription filter on "
    "each cluster's log group. --function NAME checks the deployed forwarder instead of local "
    "settings: its environment, its role's permissions, and that the subscriptions send to it.\n\n"
    "Prints one line per check (JSON lines with --json) and exits 1 if any check failed."
)

_MARK: Final = {
    "ok": ("✔", "green"),
    "fail": ("✘", "bold red"),
    "warn": ("!", "yellow"),
    "skip": ("-", "dim"),
}


# --------------------------------------------------------------------------------------- command


def print_result(result: CheckResult, *, as_json: bool) -> None:
    """One line per check: a mark, the check id and what it found (and what to do)."""
    if as_json:
        line = {"check": result.check, "status": result.status, "summary": result.summary, "fix": result.fix}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        return
    from rich.markup import escape

    mark, style = _MARK[result.status]
    console = stdout_console()
    head = f"{mark} {result.check:<16} "
    text = result.line()
    # On a screen a long finding wraps under itself, the check column kept clear (the terminal
    # broke it mid-word at the left margin); piped (grep, a file) it stays one line per check.
    lines = [text]
    if console.is_terminal:
        width = max(console.width - len(head), 30)
        lines = textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [text]
    # escape(): a line may quote the other side's text, and "[...]" in it is not our markup.
    console.print(f"[{style}]{head[:-1]}[/] {escape(lines[0])}", highlight=False, soft_wrap=True)
    for more in lines[1:]:
        console.print(" " * len(head) + escape(more), highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add `doctor` to the app."""

    @app.command("doctor", help=DOCTOR_HELP)
    def doctor_command(
        clusters: list[str] = typer.Option(
            [],
            "--cluster",
            "-c",
            metavar="ID",
            help="Cluster ids whose log groups to check; default: every /aws/cloudhsm/ group.",
        ),
        destination: str | None = typer.Option(
            None,
            "--destination",
            help="The subscription must send here (ARN or part of it, e.g. the function name).",
        ),
        function: str | None = typer.Option(
            None,
            "--function",
            help="The deployed forwarder Lambda (name or ARN): check HEC with its environment, its role's "
            "permissions, and that the subscriptions send to it.",
        ),
        principal_arn: str | None = typer.Option(
            None,
            "--principal-arn",
            help="Check this role's permissions (e.g. the Lambda's) by IAM policy simulation.",
        ),
        hec_url: str | None = opts.HEC_URL,
        index: str | None = opts.INDEX,
        ack: bool | None = opts.ACK,
        ca_bundle: Path | None = opts.CA_BUNDLE,
        config: Path | None = opts.CONFIG,
        region: str | None = opts.REGION,
        profile: str | None = opts.PROFILE,
        timeout: float = typer.Option(
            5.0, "--timeout", min=0.1, help="Seconds to wait for each network answer."
        ),
        test_event: bool = typer.Option(
            True,
            "--test-event/--no-test-event",
            help="Send one test event (sourcetype hsmaudit:doctor) to check the index.",
        ),
        all_clusters: bool = typer.Option(
            False,
            "--all-clusters",
            help="List every /aws/cloudhsm/ log group of the account and Region: not subscribed, "
            "sending elsewhere, with a filter pattern, kept below 12 months, or to backfill.",
        ),
        skip_hec: bool = typer.Option(False, "--skip-hec", help="Only check AWS."),
        skip_aws: bool = typer.Option(False, "--skip-aws", help="Only check HEC."),
        as_json: bool = typer.Option(False, "--json", help="One JSON object per check on stdout."),
    ) -> None:
        """Check HEC and AWS in order and explain what is broken (see DOCTOR_HELP)."""
        from hsmaudit.config import ConfigError

        if all_clusters and clusters:
            fail("--all-clusters checks every cluster's log group: leave out --cluster", 2)
        options = DeliveryOptions(hec_url=hec_url, index=index, ack=ack, ca_bundle=ca_bundle, config=config)
        failures: list[CheckResult] = []

        def report(result: CheckResult) -> None:
            print_result(result, as_json=as_json)
            if result.status == "fail":
                failures.append(result)

        lambda_environment: dict[str, str] | None = None
        forwarder_role = False
        if function:
            info = None
            for result in function_checks(function, region=region, profile=profile):
                if isinstance(result, CheckResult):
                    report(result)
                else:
                    info = result
            if info is not None:
                # The Lambda reads its environment only (config.py): check HEC with exactly that.
                lambda_environment = {k: v for k, v in info.environment.items() if k.startswith("HSMAUDIT_")}
                forwarder_role = principal_arn is None
                principal_arn = principal_arn or info.role_arn
                destination = destination or info.arn
        try:
            if lambda_environment is not None:
                from hsmaudit.config import load_settings

                settings = load_settings(options.flags(), environ=lambda_environment)
            else:
                settings = resolve_settings(options)
        except ConfigError as error:
            report(CheckResult("config", "fail", str(error)))
            fail(f"doctor found {len(failures)} problem(s), the configuration among them")
        quiet_library_logs()
        results: list[Iterator[CheckResult]] = []
        source = None
        if lambda_environment is not None:
            # Checked from this machine: a Lambda in a VPC may reach (or not reach) HEC differently.
            source = f"the environment of {function}, checked from this machine"
        probe = HecProbe(settings, timeout=timeout, test_event=test_event, source=source)
        if not skip_hec:
            results.append(probe.run())
        if not skip_aws:
            results.append(
                aws_checks(
                    settings=settings,
                    clusters=clusters,
                    region=region,
                    profile=profile,
                    destination=destination,
                    principal_arn=principal_arn,
                    all_clusters=all_clusters,
                    forwarder_role=forwarder_role,
                )
            )
        try:
            for group in results:
                for result in group:
                    report(result)
        finally:
            probe.close()
        if failures:
            names = ", ".join(dict.fromkeys(result.check for result in failures))
            fail(f"doctor found {len(failures)} problem{'s' if len(failures) > 1 else ''} ({names})")
