"""deploy/template.yaml: cfn-lint clean, transformed by the SAM translator, in step with the code.

The template is checked the way AWS processes it: `AWS::LanguageExtensions` first (Fn::ForEach
over the cluster ids, expanded here by cfn-lint's implementation of that transform), then the SAM
transform (`samtranslator.translator.transform.transform`, the library's public entry point; its
managed-policy loader is a plain dict because the template names no managed policies), after the
step `sam package` does in between (the local CodeUri becomes an S3 location).

Helpers here are shared with `test_deploy_policy.py`.
"""

from __future__ import annotations

import copy
import functools
import importlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from hsmaudit.config import ENV_VARS, SETTINGS_BY_NAME
from hsmaudit.ops import package

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO_ROOT / "deploy"
TEMPLATE = DEPLOY_DIR / "template.yaml"
TEMPLATES = sorted(DEPLOY_DIR.glob("*.yaml"))
CLUSTERS = ("cluster-abc123xyz", "cluster-def456uvw")
PACKAGED_CODE = "s3://hsmaudit-artifacts/hsmaudit-lambda-arm64.zip"

# Deployments the tests build: each delivery mode, with and without the optional pieces.
SCENARIOS: dict[str, dict[str, str]] = {
    "lambda-defaults": {"DeliveryMode": "lambda"},
    "lambda-kms-vpc-existing": {
        "DeliveryMode": "lambda",
        "KmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "SubnetIds": "subnet-0a1b2c3d,subnet-4e5f6a7b",
        "SecurityGroupIds": "sg-0a1b2c3d",
        "HecTokenSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:hsmaudit/hec-AbCdEf",
        "AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:security-alarms",
        "HecIndex": "hsm_audit",
        "HecCaBundle": "/var/task/hec-ca.pem",
        "ReservedConcurrency": "10",
    },
    "firehose-defaults": {"DeliveryMode": "firehose", "AlarmEmail": "soc@example.com"},
    "firehose-kms-existing": {
        "DeliveryMode": "firehose",
        "KmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "HecTokenSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:hsmaudit/hec-AbCdEf",
        "HeartbeatHours": "0",
    },
}
BASE_PARAMETERS = {"ClusterIds": ",".join(CLUSTERS), "HecUrl": "https://splunk.example.com:8088"}


# --------------------------------------------------------------------------------------- helpers


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template as plain JSON data (short-form tags such as !Ref become their long form)."""
    from cfnlint.decode import decode

    data, matches = decode(str(path))
    assert not matches, [str(m) for m in matches]
    return json.loads(json.dumps(data))


def expand_language_extensions(template: dict[str, Any], cluster_ids: tuple[str, ...]) -> dict[str, Any]:
    """What `AWS::LanguageExtensions` hands to the SAM transform: Fn::ForEach expanded."""
    from cfnlint.template import Template

    # cfn-lint's implementation of the transform (cfnlint.template.transforms); it reads the
    # collection from the parameter's default, so the cluster ids are given that way.
    from cfnlint.template.transforms._language_extensions import language_extension

    data = copy.deepcopy(template)
    data["Parameters"]["ClusterIds"]["Default"] = ",".join(cluster_ids)
    matches, expanded = language_extension(Template(str(TEMPLATE), data, ["us-east-1"]))
    assert not matches, [str(m) for m in matches]
    result: dict[str, Any] = json.loads(json.dumps(expanded))
    del result["Parameters"]["ClusterIds"]["Default"]
    result["Transform"] = [t for t in result["Transform"] if t != "AWS::LanguageExtensions"]
    return result


def sam_package(template: dict[str, Any]) -> dict[str, Any]:
    """What `sam package` does before the transform: the local zip becomes an S3 object."""
    packaged = copy.deepcopy(template)
    for _, function in resources_of_type(packaged, "AWS::Serverless::Function"):
        assert function["Properties"]["CodeUri"] == "../dist/hsmaudit-lambda-arm64.zip"
        function["Properties"]["CodeUri"] = PACKAGED_CODE
    return packaged


class NoManagedPolicies:
    """The translator's managed-policy loader: a plain dict, the template names none."""

    def load(self) -> dict[str, str]:
        return {}


def translate(parameters: Mapping[str, str]) -> dict[str, Any]:
    """deploy/template.yaml as CloudFormation sees it after both transforms (a fresh copy)."""
    return json.loads(_translated(tuple(sorted(parameters.items()))))


@functools.cache
def _translated(parameters: tuple[tuple[str, str], ...]) -> str:
    from samtranslator.translator.transform import transform

    template = sam_package(expand_language_extensions(load_template(), CLUSTERS))
    values = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}
    values.update(BASE_PARAMETERS)
    values.update(dict(parameters))
    # The translator asks a boto3 session for the Region; no AWS call is made.
    previous = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    try:
        result = transform(template, values, NoManagedPolicies())  # type: ignore[arg-type]
    finally:
        if previous is None:
            del os.environ["AWS_DEFAULT_REGION"]
        else:
            os.environ["AWS_DEFAULT_REGION"] = previous
    return json.dumps(result)


def cfn_lint(
    path: Path, parameters: Mapping[str, str] | None = None, *, ignore: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run the cfn-lint command as users and CI do (errors and warnings both fail)."""
    command = [
        sys.executable,
        "-c",
        "import sys; from cfnlint.runner import main; sys.exit(main())",
        str(path),
    ]
    if ignore:
        command += ["--ignore-checks", *ignore]
    if parameters:
        command += ["--parameters", *(f"{key}={value}" for key, value in parameters.items())]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)


def resources_of_type(template: Mapping[str, Any], kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, resource in template["Resources"].items():
        if isinstance(resource, Mapping) and resource.get("Type") == kind:  # not a Fn::ForEach
            yield name, resource


def walk_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from walk_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk_strings(item)


# ------------------------------------------------------------------------------------ cfn-lint


@pytest.mark.parametrize("path", TEMPLATES, ids=[p.name for p in TEMPLATES])
def test_cfn_lint_reports_no_error_or_warning_on_every_template(path: Path) -> None:
    result = cfn_lint(path)
    assert result.returncode == 0, result.stdout + result.stderr


# The two scenarios that switch every optional piece on (the defaults are linted above); the
# others differ only in parameters cfn-lint checks the same way.
@pytest.mark.parametrize("scenario", ["lambda-kms-vpc-existing", "firehose-kms-existing"])
def test_cfn_lint_reports_nothing_for_each_deployment_scenario(scenario: str) -> None:
    result = cfn_lint(TEMPLATE, {**BASE_PARAMETERS, **SCENARIOS[scenario]})
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_reports_nothing_on_the_transformed_cloudformation(tmp_path: Path) -> None:
    transformed = tmp_path / "transformed.json"
    transformed.write_text(json.dumps(translate(SCENARIOS["lambda-defaults"]), indent=1))
    # W2001 "parameter ClusterIds not used": Fn::ForEach consumed it, as CloudFormation's own
    # expansion does; everything else must be clean.
    result = cfn_lint(transformed, ignore=("W2001",))
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_catches_a_broken_template(tmp_path: Path) -> None:
    # GIVEN the template on a deprecated Lambda runtime (a warning, not an error)
    broken = tmp_path / "broken.yaml"
    broken.write_text(TEMPLATE.read_text().replace("Runtime: python3.14", "Runtime: python3.9"))
    # THEN the same check that passes above fails
    assert cfn_lint(broken).returncode != 0


# ------------------------------------------------------------------------------ SAM translator


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_sam_translator_transforms_the_template_without_errors(scenario: str) -> None:
    transformed = translate(SCENARIOS[scenario])
    functions = dict(resources_of_type(transformed, "AWS::Lambda::Function"))
    assert set(functions) == {"ForwarderFunction", "TransformFunction", "AutoSubscribeFunction"}
    for function in functions.values():
        assert function["Properties"]["Code"] == {
            "S3Bucket": "hsmaudit-artifacts",
            "S3Key": "hsmaudit-lambda-arm64.zip",
        }
    assert "AWS::Serverless::Function" not in {r["Type"] for r in transformed["Resources"].values()}


def test_each_cluster_gets_a_subscription_metric_and_heartbeat_alarm() -> None:
    transformed = translate(SCENARIOS["lambda-defaults"])
    resources = transformed["Resources"]
    for cluster in CLUSTERS:
        suffix = cluster.replace("-", "")
        lambda_filter = resources[f"ForwarderFunctionLogs{suffix}"]
        assert lambda_filter["Condition"] == "UseLambda"
        assert lambda_filter["DependsOn"] == [f"ForwarderFunctionLogs{suffix}Permission"]
        assert lambda_filter["Properties"]["LogGroupName"] == f"/aws/cloudhsm/{cluster}"
        assert lambda_filter["Properties"]["FilterPattern"] == ""
        firehose_filter = resources[f"FirehoseSubscription{suffix}"]
        assert firehose_filter["Condition"] == "UseFirehose"
        assert firehose_filter["Properties"]["LogGroupName"] == f"/aws/cloudhsm/{cluster}"
        metric = resources[f"AuditRecordsMetric{suffix}"]["Properties"]
        assert metric["LogGroupName"] == f"/aws/cloudhsm/{cluster}"
        alarm = resources[f"HeartbeatAlarm{suffix}"]["Properties"]
        assert (
            alarm["MetricName"]
            == metric["MetricTransformations"][0]["MetricName"]
            == f"AuditRecords-{cluster}"
        )
        assert alarm["Namespace"] == metric["MetricTransformations"][0]["MetricNamespace"]
        assert alarm["TreatMissingData"] == "breaching"


def test_each_invoke_permission_is_scoped_to_one_cluster_log_group_of_this_account() -> None:
    resources = translate(SCENARIOS["lambda-defaults"])["Resources"]
    for cluster in CLUSTERS:
        permission = resources[f"ForwarderFunctionLogs{cluster.replace('-', '')}Permission"]["Properties"]
        assert permission["Principal"] == "logs.amazonaws.com"
        assert permission["SourceArn"] == {
            "Fn::Sub": [
                "arn:aws:logs:${AWS::Region}:${AWS::AccountId}:log-group:${__LogGroupName__}:*",
                {"__LogGroupName__": f"/aws/cloudhsm/{cluster}"},
            ]
        }
    assert not [name for name in resources if name == "LogsInvokePermission"]


def test_failed_async_invocations_go_to_the_queue_after_two_retries() -> None:
    resources = translate(SCENARIOS["lambda-defaults"])["Resources"]
    config = resources["ForwarderFunctionEventInvokeConfig"]["Properties"]
    assert config["MaximumRetryAttempts"] == 2
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["FailedInvocationQueue", "Arn"]
    }


# ------------------------------------------------------------------------------- code in step


def test_the_runtime_and_code_uri_match_what_hsmaudit_package_builds() -> None:
    template = load_template()
    function_globals = template["Globals"]["Function"]
    assert function_globals["Runtime"] == f"python{package.DEFAULT_PYTHON_VERSION}"
    assert function_globals["Architectures"] == [package.Arch.arm64.value]
    expected = package.default_output(REPO_ROOT, package.Arch.arm64)
    functions = list(resources_of_type(template, "AWS::Serverless::Function"))
    assert len(functions) == 3
    for _, function in functions:
        assert (DEPLOY_DIR / function["Properties"]["CodeUri"]).resolve() == expected.resolve()


def test_the_handlers_are_the_modules_hsmaudit_package_puts_in_the_zip() -> None:
    template = load_template()
    handlers = {
        resource["Properties"]["Handler"]
        for _, resource in resources_of_type(template, "AWS::Serverless::Function")
    }
    assert handlers == {f"{module}.handler" for module in package.HANDLER_MODULES}
    for module in package.HANDLER_MODULES:
        assert callable(importlib.import_module(module).handler)


def test_every_environment_variable_is_a_setting_of_hsmaudit_config() -> None:
    template = load_template()
    for name, resource in resources_of_type(template, "AWS::Serverless::Function"):
        variables = resource["Properties"]["Environment"]["Variables"]
        unknown = set(variables) - set(ENV_VARS)
        assert not unknown, f"{name} sets {sorted(unknown)}, which hsmaudit.config does not read"
        assert "HSMAUDIT_HEC_TOKEN" not in variables, "the token never goes into an environment variable"


def test_both_handlers_send_the_chosen_event_format_lean_by_default() -> None:
    # A fixed sourcetype would put lean text under the json sourcetype: only set when asked for.
    template = load_template()
    assert template["Parameters"]["EventFormat"]["Default"] == "lean"
    assert template["Parameters"]["HecSourcetype"]["Default"] == ""
    for _, resource in resources_of_type(template, "AWS::Serverless::Function"):
        variables = resource["Properties"]["Environment"]["Variables"]
        assert "HSMAUDIT_HEC_URL" not in variables or "HSMAUDIT_EVENT_FORMAT" in variables
        if "HSMAUDIT_EVENT_FORMAT" in variables:
            assert variables["HSMAUDIT_EVENT_FORMAT"] == {"Ref": "EventFormat"}
            condition, _, unset = variables["HSMAUDIT_HEC_SOURCETYPE"]["Fn::If"]
            assert (condition, unset) == ("HasSourcetype", {"Ref": "AWS::NoValue"})


def test_the_spool_prefix_is_the_one_the_role_may_write() -> None:
    template = load_template()
    forwarder = template["Resources"]["ForwarderFunction"]["Properties"]
    prefix = forwarder["Environment"]["Variables"]["HSMAUDIT_SPOOL_PREFIX"]
    assert prefix == SETTINGS_BY_NAME["spool_prefix"].default
    policies = {
        p["PolicyName"]: p
        for p in template["Resources"]["ForwarderRole"]["Properties"]["Policies"]
        if "PolicyName" in p
    }
    (statement,) = policies["spool"]["PolicyDocument"]["Statement"]
    assert statement["Resource"] == {"Fn::Sub": f"${{SpoolBucket.Arn}}/{prefix}*"}
    rule = next(
        r
        for r in template["Resources"]["SpoolBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
        if r["Id"] == "expire-spooled-batches"
    )
    assert prefix.startswith(rule["Prefix"])


def test_the_duration_alarm_fires_at_eighty_percent_of_the_timeout() -> None:
    resources = load_template()["Resources"]
    timeout_ms = resources["ForwarderFunction"]["Properties"]["Timeout"] * 1000
    assert resources["ForwarderDurationAlarm"]["Properties"]["Threshold"] == timeout_ms * 0.8


def test_alarms_use_metric_names_the_forwarder_emits() -> None:
    from hsmaudit.aws import metrics

    emitted = set(metrics._UNITS)
    template = load_template()
    for name, alarm in resources_of_type(template, "AWS::CloudWatch::Alarm"):
        properties = alarm["Properties"]
        stats = [properties] + [
            m["MetricStat"]["Metric"] for m in properties.get("Metrics", []) if "MetricStat" in m
        ]
        for stat in stats:
            if stat.get("Namespace") != {"Ref": "MetricsNamespace"}:
                continue
            metric_name = stat["MetricName"]
            if isinstance(metric_name, Mapping):  # the per-cluster record counts of the metric filters
                assert metric_name == {"Fn::Sub": "AuditRecords-${ClusterId}"}
                continue
            assert metric_name in emitted, f"{name}: the forwarder emits no {metric_name}"
            assert stat["Dimensions"] == [{"Name": "service", "Value": "subscription"}], name


def test_secret_and_hec_url_never_appear_as_literals() -> None:
    text = TEMPLATE.read_text()
    # No token-looking GUID and no NoEcho-less token parameter: the token lives only in the secret.
    assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text)
    assert "HecToken:" not in text


def test_samconfig_grants_the_capabilities_the_template_needs() -> None:
    import tomllib

    config = tomllib.loads((DEPLOY_DIR / "samconfig.toml").read_text())
    deploy = config["default"]["deploy"]["parameters"]
    # IAM roles without names, and a transform (Fn::ForEach) to expand.
    assert set(deploy["capabilities"].split()) == {"CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"}
    assert deploy["language_extensions"] is True
    assert "AWS::LanguageExtensions" in load_template()["Transform"]
    roles = list(resources_of_type(load_template(), "AWS::IAM::Role"))
    assert roles and not any(
        "RoleName" in role["Properties"] for _, role in roles
    )  # else CAPABILITY_NAMED_IAM


@pytest.mark.parametrize("branch", [1, 2], ids=["lambda", "firehose"])
def test_the_dashboard_is_valid_json_and_shows_metrics_that_exist(branch: int) -> None:
    from hsmaudit.aws import metrics

    dashboard = load_template()["Resources"]["PipelineDashboard"]["Properties"]["DashboardBody"]
    body = dashboard["Fn::If"][branch]["Fn::Sub"]
    # ${Name} and ${Name.Attr} are CloudFormation's; everything else must be literal JSON.
    references = set(re.findall(r"\$\{([A-Za-z0-9:.]+)\}", body))
    assert references <= {
        "AWS::Region", "MetricsNamespace", "ForwarderFunction", "FailedInvocationQueue.QueueName",
        "DeliveryStream", "TransformFunction",
    }  # fmt: skip
    widgets = json.loads(re.sub(r"\$\{[A-Za-z0-9:.]+\}", "x", body))["widgets"]
    assert widgets
    checked = 0
    for widget in widgets:
        namespace = None
        for metric in widget["properties"]["metrics"]:
            names = [item for item in metric if isinstance(item, str)]
            if not names or names[0] == "...":  # an expression, or the previous metric again
                continue
            namespace = namespace if names[0] == "." else names[0]  # "." repeats the row above
            if namespace == "x":  # ${MetricsNamespace}: the forwarder's EMF metrics
                assert names[1] in metrics._UNITS, names[1]
                checked += 1
    assert checked >= 3


def _matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """EventBridge's matching for what the template uses: lists of values or `{"prefix": …}`."""
    for key, expected in pattern.items():
        if key not in event:
            return False
        value = event[key]
        if isinstance(expected, Mapping):
            if not isinstance(value, Mapping) or not _matches(expected, value):
                return False
            continue
        ok = any(
            (isinstance(option, Mapping) and isinstance(value, str) and value.startswith(option["prefix"]))
            or option == value
            for option in expected
        )
        if not ok:
            return False
    return True


def test_the_auto_subscribe_rule_matches_cloudtrail_create_log_group_under_the_cluster_prefix_only() -> None:
    from hsmaudit.aws.autosubscribe import created_log_group

    resources = load_template()["Resources"]
    rule = resources["AutoSubscribeRule"]["Properties"]
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["AutoSubscribeFunction", "Arn"]}
    assert resources["AutoSubscribeFunction"]["Properties"]["Handler"] == "hsmaudit.aws.autosubscribe.handler"

    def event(group: str, name: str = "CreateLogGroup") -> dict[str, Any]:
        # CloudTrail's management event as EventBridge delivers it (source aws.logs)
        return {
            "version": "0",
            "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.logs",
            "account": "123456789012",
            "region": "us-east-1",
            "detail": {
                "eventSource": "logs.amazonaws.com",
                "eventName": name,
                "requestParameters": {"logGroupName": group},
            },
        }

    new = event("/aws/cloudhsm/cluster-new")
    assert _matches(rule["EventPattern"], new) and created_log_group(new) == "/aws/cloudhsm/cluster-new"
    assert not _matches(rule["EventPattern"], event("/aws/lambda/x"))
    assert not _matches(rule["EventPattern"], event("/aws/cloudhsm/cluster-new", "DeleteLogGroup"))
