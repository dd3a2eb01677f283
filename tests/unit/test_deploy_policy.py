"""Least privilege and safe defaults, read from the CloudFormation the SAM translator produces.

Each scenario is "deployed" on paper: conditions evaluated from the parameters, resources whose
condition is false dropped, `Fn::If` resolved and `AWS::NoValue` removed, so every check sees what
CloudFormation would create for that set of parameters. The checks fail on:

* an Allow with an `*` (or `service:*`) action, `NotAction`/`NotResource`, or an `*` principal;
* an Allow on `Resource: "*"`, except the actions listed in `STAR_RESOURCE_EXCEPTIONS`;
* a KMS permission when no key was given, or on anything but the given key;
* a bucket without encryption, the four public-access blocks, a TLS-only policy or a lifecycle;
* a queue or a delivery stream without encryption, a topic without one when a key was given;
* a Lambda function without a bounded timeout, a log group without retention;
* a service trust or resource policy open to other accounts (no SourceAccount/SourceArn/ExternalId);
* a KMS permission usable outside the services that hold data under the key (no kms:ViaService);
* an invoke permission or a CloudWatch Logs trust for a log group pattern instead of the clusters'
  own log groups (a group created as /aws/cloudhsm/<fake> must not feed the pipeline).

The last tests feed the checks broken templates, so a check that cannot fail is caught too.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any, Final

import pytest

from .test_deploy_template import BASE_PARAMETERS, SCENARIOS, load_template, translate

# Allows on Resource "*" that AWS requires, each with its reason.
STAR_RESOURCE_EXCEPTIONS: Final[dict[str, str]] = {
    # Lambda creates and deletes the function's network interfaces in the VPC with the execution
    # role; EC2's Describe* APIs have no resource-level permissions, and the interface ARNs do not
    # exist before Lambda creates them (the AWS managed policy AWSLambdaVPCAccessExecutionRole
    # grants the same six actions on "*"). Present only when SubnetIds is set.
    "ec2:CreateNetworkInterface": "Lambda VPC networking",
    "ec2:DescribeNetworkInterfaces": "Lambda VPC networking (no resource-level permissions)",
    "ec2:DescribeSubnets": "Lambda VPC networking (no resource-level permissions)",
    "ec2:DeleteNetworkInterface": "Lambda VPC networking",
    "ec2:AssignPrivateIpAddresses": "Lambda VPC networking",
    "ec2:UnassignPrivateIpAddresses": "Lambda VPC networking",
    # The auto-subscribe function asks whether a new /aws/cloudhsm/cluster-<id> group has a
    # cluster behind it; CloudHSM's DescribeClusters has no resource-level permissions.
    "cloudhsm:DescribeClusters": "auto-subscribe: no resource-level permissions",
}
# CloudWatch Logs trusts for a log group pattern that are allowed, each with its reason.
PATTERN_TRUSTS: Final[dict[str, str]] = {
    # Firehose mode's auto-subscribed groups do not exist at deploy time; only AutoSubscribeRole
    # may pass this role, after DescribeClusters found the cluster
    # (test_auto_subscribe_is_scoped_to_cluster_log_groups_and_passes_its_role_alone).
    "AutoSubscribeToFirehoseRole trust policy": (
        "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/cloudhsm/cluster-*"
    ),
}
MAX_TIMEOUT_SECONDS: Final = 300  # a Firehose transformation may run 5 minutes at most
POLICY_RESOURCES: Final = {
    "AWS::S3::BucketPolicy": "PolicyDocument",
    "AWS::SQS::QueuePolicy": "PolicyDocument",
    "AWS::SNS::TopicPolicy": "PolicyDocument",
    "AWS::IAM::Policy": "PolicyDocument",
    "AWS::IAM::ManagedPolicy": "PolicyDocument",
}

# ------------------------------------------------------------------------ deployment on paper

_NO_VALUE: Final = object()


def parameter_values(template: Mapping[str, Any], parameters: Mapping[str, str]) -> dict[str, Any]:
    """Every parameter's value (given, else its default); lists for CommaDelimitedList."""
    values: dict[str, Any] = {}
    for name, spec in template["Parameters"].items():
        raw = parameters.get(name, spec.get("Default"))
        assert raw is not None, f"scenario gives no value for {name}, which has no default"
        raw = str(raw)
        values[name] = raw.split(",") if spec["Type"] == "CommaDelimitedList" else raw
    values.update({"AWS::AccountId": "123456789012", "AWS::Region": "us-east-1", "AWS::Partition": "aws"})
    return values


def evaluate(expression: Any, values: Mapping[str, Any], conditions: Mapping[str, Any]) -> Any:
    """The value of a condition expression (Fn::Equals/Not/And/Or/Join, Ref, Condition)."""
    if not isinstance(expression, Mapping):
        return expression
    ((function, argument),) = expression.items()
    if function == "Ref":
        return values[argument]
    if function == "Condition":
        return evaluate_condition(argument, values, conditions)
    if function == "Fn::Equals":
        left, right = (evaluate(a, values, conditions) for a in argument)
        return str(left) == str(right)
    if function == "Fn::Not":
        return not evaluate(argument[0], values, conditions)
    if function == "Fn::And":
        return all(evaluate(a, values, conditions) for a in argument)
    if function == "Fn::Or":
        return any(evaluate(a, values, conditions) for a in argument)
    if function == "Fn::Join":
        separator, items = argument
        return separator.join(evaluate(items, values, conditions))
    if function == "Fn::EachMemberEquals":  # Rules only
        items, expected = (evaluate(a, values, conditions) for a in argument)
        return all(item == expected for item in items)
    raise AssertionError(f"condition function {function} is not modelled by this test")


def evaluate_condition(name: str, values: Mapping[str, Any], conditions: Mapping[str, Any]) -> bool:
    return bool(evaluate(conditions[name], values, conditions))


def resolve(value: Any, truth: Mapping[str, bool], values: Mapping[str, Any]) -> Any:
    """`value` with every Fn::If decided, parameters filled in and AWS::NoValue removed."""
    if isinstance(value, Mapping):
        if set(value) == {"Fn::If"}:
            condition, when_true, when_false = value["Fn::If"]
            return resolve(when_true if truth[condition] else when_false, truth, values)
        if value == {"Ref": "AWS::NoValue"}:
            return _NO_VALUE
        if set(value) == {"Ref"} and value["Ref"] in values:
            return values[value["Ref"]]
        out = {key: resolve(item, truth, values) for key, item in value.items()}
        return {key: item for key, item in out.items() if item is not _NO_VALUE}
    if isinstance(value, list):
        items = [resolve(item, truth, values) for item in value]
        return [item for item in items if item is not _NO_VALUE]
    return value


def deploy_on_paper(template: Mapping[str, Any], parameters: Mapping[str, str]) -> dict[str, Any]:
    """The resources CloudFormation would create for these parameters, conditions resolved."""
    values = parameter_values(template, parameters)
    conditions = template.get("Conditions", {})
    truth = {name: evaluate_condition(name, values, conditions) for name in conditions}
    resources = {}
    for name, resource in template["Resources"].items():
        if "Condition" in resource and not truth[resource["Condition"]]:
            continue
        resources[name] = resolve(resource, truth, values)
    return {"Resources": resources, "Parameters": values}


def scenario_deployment(scenario: str) -> dict[str, Any]:
    parameters = {**BASE_PARAMETERS, **SCENARIOS[scenario]}
    return deploy_on_paper(translate(SCENARIOS[scenario]), parameters)


# -------------------------------------------------------------------------------------- checks


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policy_documents(resources: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any], str]]:
    """(where, document, kind) for every IAM and resource policy; kind is identity/trust/resource."""
    for name, resource in resources.items():
        kind = resource["Type"]
        properties = resource.get("Properties", {})
        if kind == "AWS::IAM::Role":
            yield f"{name} trust policy", properties["AssumeRolePolicyDocument"], "trust"
            for policy in properties.get("Policies", []):
                yield f"{name}/{policy['PolicyName']}", policy["PolicyDocument"], "identity"
            assert not properties.get("ManagedPolicyArns"), (
                f"{name}: managed policies are not least privilege"
            )
        elif kind in POLICY_RESOURCES:
            document_kind = "identity" if kind.startswith("AWS::IAM::") else "resource"
            yield name, properties[POLICY_RESOURCES[kind]], document_kind


def statement_findings(where: str, statement: Mapping[str, Any], kind: str, key_arn: str | None) -> list[str]:
    findings = []
    effect = statement["Effect"]
    actions = [a for a in as_list(statement.get("Action", [])) if isinstance(a, str)]
    resources = as_list(statement.get("Resource", []))
    if effect == "Deny":
        # A Deny only takes away; "*" there is how AWS writes "TLS only". It must be conditional,
        # or it would deny everything.
        if not statement.get("Condition"):
            findings.append(f"{where}: unconditional Deny")
        return findings
    if "NotAction" in statement or "NotResource" in statement or "NotPrincipal" in statement:
        findings.append(f"{where}: Allow with NotAction/NotResource/NotPrincipal")
    for action in actions:
        if action == "*" or action.endswith(":*") or "*" in action.split(":", 1)[-1]:
            findings.append(f"{where}: Allow of wildcard action {action}")
    principal = statement.get("Principal")
    if principal == "*" or (isinstance(principal, Mapping) and "*" in as_list(principal.get("AWS", []))):
        findings.append(f"{where}: Allow to any principal")
    if kind == "identity" and "*" in resources:
        for action in actions:
            if action not in STAR_RESOURCE_EXCEPTIONS:
                findings.append(f"{where}: {action} on Resource '*'")
    kms_actions = [a for a in actions if a.lower().startswith("kms:")]
    if kms_actions:
        if key_arn is None:
            findings.append(f"{where}: {kms_actions} although no KMS key was given")
        elif resources != [key_arn]:
            findings.append(f"{where}: {kms_actions} on {resources}, not only the given key")
        via = statement.get("Condition", {}).get("StringEquals", {}).get("kms:ViaService")
        if not via:
            findings.append(f"{where}: {kms_actions} without a kms:ViaService condition")
    if kind == "trust":
        services = as_list(principal.get("Service", [])) if isinstance(principal, Mapping) else []
        if not services or set(principal) != {"Service"}:
            findings.append(f"{where}: trust must name AWS services only, not {principal}")
        condition_keys = {k for test in statement.get("Condition", {}).values() for k in test}
        if "firehose.amazonaws.com" in services and "sts:ExternalId" not in condition_keys:
            findings.append(f"{where}: Firehose trust without sts:ExternalId (confused deputy)")
        if "logs.amazonaws.com" in services and "aws:SourceArn" not in condition_keys:
            findings.append(f"{where}: CloudWatch Logs trust without aws:SourceArn (confused deputy)")
        if "logs.amazonaws.com" in services:
            for arn in trusted_log_groups(statement):
                if not single_log_group(arn) and PATTERN_TRUSTS.get(where) != arn:
                    findings.append(
                        f"{where}: CloudWatch Logs trust for the pattern {arn}, not one log group"
                    )
    if kind == "resource" and isinstance(principal, Mapping) and "Service" in principal:
        condition_keys = {k for test in statement.get("Condition", {}).values() for k in test}
        if not condition_keys & {"aws:SourceAccount", "aws:SourceArn"}:
            findings.append(f"{where}: service principal without aws:SourceAccount/aws:SourceArn")
    return findings


def tls_only(policy: Mapping[str, Any]) -> bool:
    return any(
        s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        for s in as_list(policy["Statement"])
    )


def policy_findings(deployment: Mapping[str, Any]) -> list[str]:
    """Everything wrong with a deployment, as readable lines (empty when it is sound)."""
    resources: Mapping[str, Any] = deployment["Resources"]
    key_arn = deployment["Parameters"].get("KmsKeyArn") or None
    findings: list[str] = []
    for where, document, kind in policy_documents(resources):
        for statement in as_list(document["Statement"]):
            findings += statement_findings(where, statement, kind, key_arn)

    bucket_policies = {
        r["Properties"]["Bucket"].get("Ref"): r["Properties"]["PolicyDocument"]
        for r in resources.values()
        if r["Type"] == "AWS::S3::BucketPolicy"
    }
    for name, resource in resources.items():
        kind, properties = resource["Type"], resource.get("Properties", {})
        if kind == "AWS::S3::Bucket":
            rules = properties.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
            if not rules or not rules[0].get("ServerSideEncryptionByDefault", {}).get("SSEAlgorithm"):
                findings.append(f"{name}: bucket without default encryption")
            block = properties.get("PublicAccessBlockConfiguration", {})
            for flag in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
                if block.get(flag) is not True:
                    findings.append(f"{name}: {flag} is not true")
            if name not in bucket_policies or not tls_only(bucket_policies[name]):
                findings.append(f"{name}: no bucket policy denying non-TLS requests")
            if not properties.get("LifecycleConfiguration", {}).get("Rules"):
                findings.append(f"{name}: no lifecycle rules")
            if resource.get("DeletionPolicy") != "Retain":
                findings.append(f"{name}: audit data bucket is not retained on stack deletion")
        elif kind == "AWS::SQS::Queue":
            if not (properties.get("SqsManagedSseEnabled") is True or properties.get("KmsMasterKeyId")):
                findings.append(f"{name}: queue without encryption")
        elif kind == "AWS::KinesisFirehose::DeliveryStream":
            if not properties.get("DeliveryStreamEncryptionConfigurationInput", {}).get("KeyType"):
                findings.append(f"{name}: delivery stream without encryption")
        elif kind == "AWS::SNS::Topic":
            # Without a customer managed key the topic stays unencrypted on purpose (the template
            # says why: CloudWatch cannot publish under alias/aws/sns); with one it must use it.
            if key_arn and properties.get("KmsMasterKeyId") != key_arn:
                findings.append(f"{name}: topic not encrypted with the given key")
        elif kind == "AWS::SecretsManager::Secret":
            if key_arn and properties.get("KmsKeyId") != key_arn:
                findings.append(f"{name}: secret not encrypted with the given key")
        elif kind == "AWS::Lambda::Function":
            timeout = properties.get("Timeout")
            if not isinstance(timeout, int) or not 1 <= timeout <= MAX_TIMEOUT_SECONDS:
                findings.append(f"{name}: timeout {timeout!r} is not bounded (1..{MAX_TIMEOUT_SECONDS} s)")
        elif kind == "AWS::Logs::LogGroup":
            if not properties.get("RetentionInDays"):
                findings.append(f"{name}: log group without retention")
        elif kind == "AWS::Lambda::Permission":
            findings += permission_findings(name, properties)
    return findings


def permission_findings(name: str, properties: Mapping[str, Any]) -> list[str]:
    """An invoke permission names this account's source, and one log group for CloudWatch Logs."""
    source = rendered(properties.get("SourceArn"))
    if not source or not (properties.get("SourceAccount") or "${AWS::AccountId}" in str(source)):
        return [f"{name}: invoke permission without this account's SourceArn"]
    if properties.get("Principal") == "logs.amazonaws.com" and not single_log_group(str(source)):
        return [f"{name}: invoke permission for the pattern {source}, not one log group"]
    return []


def rendered(value: Any) -> Any:
    """A resolved value with Fn::Join/Split/Sub/GetAtt worked out: strings, placeholders for what
    only CloudFormation knows (`<ForwarderRole.Arn>`), pseudo parameters left as `${AWS::...}`."""
    if isinstance(value, list):
        return [rendered(item) for item in value]
    if not isinstance(value, Mapping):
        return value
    if set(value) == {"Fn::Join"}:
        delimiter, items = value["Fn::Join"]
        flat = rendered(items)
        return delimiter.join(str(item) for item in (flat if isinstance(flat, list) else [flat]))
    if set(value) == {"Fn::Split"}:
        delimiter, text = value["Fn::Split"]
        return str(rendered(text)).split(delimiter)
    if set(value) == {"Fn::Sub"}:
        argument = value["Fn::Sub"]
        text, names = (argument, {}) if isinstance(argument, str) else argument
        for name, item in names.items():
            text = text.replace("${" + name + "}", str(rendered(item)))
        return text
    if set(value) == {"Fn::GetAtt"}:
        target = value["Fn::GetAtt"]
        return f"<{'.'.join(target) if isinstance(target, list) else target}>"
    if set(value) == {"Ref"}:
        return "${" + value["Ref"] + "}" if value["Ref"].startswith("AWS::") else f"<{value['Ref']}>"
    return {key: rendered(item) for key, item in value.items()}


def trusted_log_groups(statement: Mapping[str, Any]) -> list[str]:
    """The aws:SourceArn values a trust statement admits (StringLike/ArnLike/StringEquals/ArnEquals)."""
    arns: list[str] = []
    for test, keys in statement.get("Condition", {}).items():
        if test in ("StringLike", "ArnLike", "StringEquals", "ArnEquals") and "aws:SourceArn" in keys:
            arns += [str(arn) for arn in as_list(rendered(keys["aws:SourceArn"]))]
    return arns


def single_log_group(arn: str) -> bool:
    """`arn:…:log-group:/aws/cloudhsm/cluster-x[:*]` names one group; `/aws/cloudhsm/*` does not."""
    _, found, group = arn.partition(":log-group:")
    group = group.removesuffix(":*")
    return bool(found) and bool(group) and "*" not in group and "?" not in group


# --------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_the_transformed_template_is_least_privilege_and_encrypted(scenario: str) -> None:
    assert policy_findings(scenario_deployment(scenario)) == []


def test_the_forwarder_reads_exactly_one_secret_and_writes_only_the_spool_prefix() -> None:
    resources = scenario_deployment("lambda-defaults")["Resources"]
    policies = {
        p["PolicyName"]: p["PolicyDocument"] for p in resources["ForwarderRole"]["Properties"]["Policies"]
    }
    assert set(policies) == {"own-log-group", "hec-token", "spool", "failed-invocations"}
    (token,) = policies["hec-token"]["Statement"]
    assert token["Action"] == "secretsmanager:GetSecretValue"
    assert token["Resource"] == {"Ref": "HecTokenSecret"}
    # Write only: the forwarder's one S3 call is PutObject; replay (get, list, delete) is the
    # operator's, so code running in the function cannot read back or erase what it spooled.
    (objects,) = policies["spool"]["Statement"]
    assert objects["Action"] == "s3:PutObject"
    assert objects["Resource"] == {"Fn::Sub": "${SpoolBucket.Arn}/hsmaudit/spool/*"}
    s3_actions = {
        action
        for document in policies.values()
        for statement in as_list(document["Statement"])
        for action in as_list(statement["Action"])
        if action.startswith("s3:")
    }
    assert s3_actions == {"s3:PutObject"}


def test_the_forwarder_code_calls_nothing_but_put_object_on_s3() -> None:
    # What the role allows must match what the delivery path calls: the handler modules and the
    # sinks they use never reach S3Spool's get/list/delete/quarantine.
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "src" / "hsmaudit"
    called: set[str] = set()
    modules = ["aws/subscription.py", "aws/runtime.py", "sinks/batch.py"]
    modules += sorted(str(path.relative_to(root)) for path in (root / "sinks" / "hec").glob("*.py"))
    for module in modules:
        for node in ast.walk(ast.parse((root / module).read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                value = node.func.value
                if isinstance(value, ast.Attribute | ast.Name) and "spool" in ast.unparse(value).lower():
                    called.add(node.func.attr)
    assert called & {"get", "list", "delete", "quarantine", "quarantined"} == set(), called
    assert "put" in called
    s3spool = (root / "aws" / "s3spool.py").read_text()
    put_body = s3spool.split("def put(", 1)[1].split("\n    def ", 1)[0]
    assert "put_object" in put_body and "get_object" not in put_body and "delete_object" not in put_body


def test_each_cluster_log_group_has_its_own_invoke_permission_and_nothing_else_may_invoke() -> None:
    resources = scenario_deployment("lambda-defaults")["Resources"]
    permissions = {
        name: r["Properties"]
        for name, r in resources.items()
        if r["Type"] == "AWS::Lambda::Permission" and r["Properties"]["Principal"] == "logs.amazonaws.com"
    }
    sources = sorted(str(rendered(p["SourceArn"])) for p in permissions.values())
    assert sources == [
        f"arn:aws:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:/aws/cloudhsm/{cluster}:*"
        for cluster in sorted(BASE_PARAMETERS["ClusterIds"].split(","))
    ]
    assert {p["Principal"] for p in permissions.values()} == {"logs.amazonaws.com"}
    filters = [r for r in resources.values() if r["Type"] == "AWS::Logs::SubscriptionFilter"]
    assert len(filters) == len(permissions)
    for subscription in filters:
        # each filter is created after the permission for its own log group
        (permission,) = subscription["DependsOn"]
        assert str(rendered(permissions[permission]["SourceArn"])).endswith(
            subscription["Properties"]["LogGroupName"] + ":*"
        )


def test_the_firehose_subscription_role_trusts_only_the_cluster_log_groups_of_this_account() -> None:
    resources = scenario_deployment("firehose-defaults")["Resources"]
    (trust,) = resources["SubscriptionToFirehoseRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}
    assert trusted_log_groups(trust) == [
        f"arn:*:logs:*:*:log-group:/aws/cloudhsm/{cluster}:*"
        for cluster in BASE_PARAMETERS["ClusterIds"].split(",")
    ]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_kms_grant_is_bound_to_the_services_that_use_the_key(scenario: str) -> None:
    deployment = scenario_deployment(scenario)
    grants = [
        (where, statement)
        for where, document, _ in policy_documents(deployment["Resources"])
        for statement in as_list(document["Statement"])
        if any(str(a).startswith("kms:") for a in as_list(statement.get("Action", [])))
    ]
    if not deployment["Parameters"].get("KmsKeyArn"):
        assert grants == []
        return
    assert grants
    for where, statement in grants:
        services = as_list(rendered(statement["Condition"]["StringEquals"]["kms:ViaService"]))
        assert services, where
        assert all(s.endswith(".${AWS::Region}.amazonaws.com") for s in services), (where, services)


@pytest.mark.parametrize(
    ("scenario", "reader"),
    [("lambda-defaults", "<ForwarderRole.Arn>"), ("firehose-defaults", "<FirehoseRole.Arn>")],
)
def test_only_the_delivery_role_may_read_the_created_token_secret(scenario: str, reader: str) -> None:
    resources = scenario_deployment(scenario)["Resources"]
    policy = resources["HecTokenSecretPolicy"]["Properties"]
    assert policy["SecretId"] == {"Ref": "HecTokenSecret"}
    assert policy["BlockPublicPolicy"] is True
    (deny,) = policy["ResourcePolicy"]["Statement"]
    assert (deny["Effect"], deny["Principal"], deny["Action"]) == (
        "Deny",
        "*",
        "secretsmanager:GetSecretValue",
    )
    allowed = [arn for arn in rendered(deny["Condition"]["StringNotEquals"]["aws:PrincipalArn"]) if arn]
    assert allowed == [reader]


def test_an_existing_secret_gets_no_resource_policy_from_the_stack() -> None:
    # The stack does not own it: a policy here would replace the owner's own.
    resources = scenario_deployment("lambda-kms-vpc-existing")["Resources"]
    assert "HecTokenSecretPolicy" not in resources


def test_kms_and_vpc_permissions_appear_only_when_configured() -> None:
    plain = scenario_deployment("lambda-defaults")["Resources"]["ForwarderRole"]["Properties"]["Policies"]
    full = scenario_deployment("lambda-kms-vpc-existing")["Resources"]["ForwarderRole"]["Properties"][
        "Policies"
    ]
    assert {p["PolicyName"] for p in full} - {p["PolicyName"] for p in plain} == {
        "kms-key",
        "vpc-network-interfaces",
    }
    kms = next(p for p in full if p["PolicyName"] == "kms-key")["PolicyDocument"]["Statement"][0]
    assert kms["Resource"] == SCENARIOS["lambda-kms-vpc-existing"]["KmsKeyArn"]
    token = next(p for p in full if p["PolicyName"] == "hec-token")["PolicyDocument"]["Statement"][0]
    assert token["Resource"] == SCENARIOS["lambda-kms-vpc-existing"]["HecTokenSecretArn"]


def test_firehose_mode_creates_no_forwarder_and_lambda_mode_no_stream() -> None:
    firehose = scenario_deployment("firehose-defaults")["Resources"]
    assert "ForwarderFunction" not in firehose and "FailedInvocationQueue" not in firehose
    assert {"DeliveryStream", "TransformFunction", "SubscriptionToFirehoseRole"} <= set(firehose)
    destination = firehose["DeliveryStream"]["Properties"]["SplunkDestinationConfiguration"]
    assert destination["S3BackupMode"] == "FailedEventsOnly"
    assert destination["SecretsManagerConfiguration"]["Enabled"] is True
    lambda_mode = scenario_deployment("lambda-defaults")["Resources"]
    assert "DeliveryStream" not in lambda_mode and "TransformFunction" not in lambda_mode


def test_every_function_has_a_bounded_timeout_and_its_own_log_group() -> None:
    for scenario in ("lambda-defaults", "firehose-defaults"):
        resources = scenario_deployment(scenario)["Resources"]
        for name, resource in resources.items():
            if resource["Type"] != "AWS::Lambda::Function":
                continue
            properties = resource["Properties"]
            assert 1 <= properties["Timeout"] <= MAX_TIMEOUT_SECONDS, name
            log_group = properties["LoggingConfig"]["LogGroup"]["Ref"]
            assert resources[log_group]["Type"] == "AWS::Logs::LogGroup"


# ----------------------------------------------------------------- the checks can fail at all


def mutated(scenario: str, change: Any) -> list[str]:
    deployment = copy.deepcopy(scenario_deployment(scenario))
    change(deployment["Resources"])
    return policy_findings(deployment)


def _policy(resources: Mapping[str, Any], role: str, name: str) -> Any:
    return next(p for p in resources[role]["Properties"]["Policies"] if p["PolicyName"] == name)[
        "PolicyDocument"
    ]


def test_a_wildcard_action_is_reported() -> None:
    def change(resources: Any) -> None:
        _policy(resources, "ForwarderRole", "spool")["Statement"][0]["Action"] = "s3:*"

    assert any("wildcard action s3:*" in f for f in mutated("lambda-defaults", change))


def test_a_wildcard_resource_is_reported() -> None:
    def change(resources: Any) -> None:
        _policy(resources, "ForwarderRole", "hec-token")["Statement"][0]["Resource"] = "*"

    assert any(
        "secretsmanager:GetSecretValue on Resource '*'" in f for f in mutated("lambda-defaults", change)
    )


def test_kms_without_a_key_is_reported() -> None:
    def change(resources: Any) -> None:
        _policy(resources, "ForwarderRole", "hec-token")["Statement"].append(
            {
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": "arn:aws:kms:us-east-1:123456789012:key/x",
            }
        )

    assert any("no KMS key was given" in f for f in mutated("lambda-defaults", change))


def test_a_missing_public_access_block_or_encryption_is_reported() -> None:
    def change(resources: Any) -> None:
        del resources["SpoolBucket"]["Properties"]["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"]
        del resources["SpoolBucket"]["Properties"]["BucketEncryption"]
        resources["FailedInvocationQueue"]["Properties"].pop("SqsManagedSseEnabled")

    findings = mutated("lambda-defaults", change)
    assert "SpoolBucket: RestrictPublicBuckets is not true" in findings
    assert "SpoolBucket: bucket without default encryption" in findings
    assert "FailedInvocationQueue: queue without encryption" in findings


def test_a_lambda_without_a_bounded_timeout_is_reported() -> None:
    def change(resources: Any) -> None:
        del resources["ForwarderFunction"]["Properties"]["Timeout"]

    assert "ForwarderFunction: timeout None is not bounded (1..300 s)" in mutated("lambda-defaults", change)


def test_kms_without_via_service_and_log_group_patterns_are_reported() -> None:
    def change(resources: Any) -> None:
        for statement in _policy(resources, "ForwarderRole", "kms-key")["Statement"]:
            statement.pop("Condition")
        permission = next(
            r
            for r in resources.values()
            if r["Type"] == "AWS::Lambda::Permission" and r["Properties"]["Principal"] == "logs.amazonaws.com"
        )
        permission["Properties"]["SourceArn"] = {
            "Fn::Sub": "arn:aws:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/cloudhsm/*"
        }

    findings = mutated("lambda-kms-vpc-existing", change)
    assert any("without a kms:ViaService condition" in f for f in findings)
    assert any("invoke permission for the pattern" in f and "/aws/cloudhsm/*" in f for f in findings)

    def widen_trust(resources: Any) -> None:
        trust = resources["SubscriptionToFirehoseRole"]["Properties"]["AssumeRolePolicyDocument"][
            "Statement"
        ][0]
        trust["Condition"]["ArnLike"]["aws:SourceArn"] = "arn:*:logs:*:*:log-group:/aws/cloudhsm/*"

    assert any(
        "CloudWatch Logs trust for the pattern" in f for f in mutated("firehose-defaults", widen_trust)
    )


def test_a_public_or_confused_deputy_policy_is_reported() -> None:
    def change(resources: Any) -> None:
        resources["FirehoseRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0].pop("Condition")
        resources["AlarmTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]["Principal"] = "*"

    findings = mutated("firehose-defaults", change)
    assert any("Firehose trust without sts:ExternalId" in f for f in findings)
    assert any("AlarmTopicPolicy: Allow to any principal" in f for f in findings)


def test_the_paper_deployment_follows_the_template_conditions() -> None:
    template = load_template()
    assert set(template["Conditions"]) >= {"UseLambda", "UseFirehose", "HasKmsKey", "HasVpc", "CreateSecret"}
    values = parameter_values(template, {**BASE_PARAMETERS, "SubnetIds": ""})
    assert values["SubnetIds"] == [""]
    assert evaluate_condition("HasVpc", values, template["Conditions"]) is False
    assert evaluate_condition("UseLambda", values, template["Conditions"]) is True


def broken_rules(template: Mapping[str, Any], parameters: Mapping[str, str]) -> list[str]:
    """The AssertDescriptions of the template's Rules that these parameters violate."""
    values = parameter_values(template, parameters)
    conditions = template.get("Conditions", {})
    broken = []
    for rule in template.get("Rules", {}).values():
        if "RuleCondition" in rule and not evaluate(rule["RuleCondition"], values, conditions):
            continue
        broken += [
            a["AssertDescription"]
            for a in rule["Assertions"]
            if not evaluate(a["Assert"], values, conditions)
        ]
    return broken


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_scenario_passes_the_template_rules(scenario: str) -> None:
    assert broken_rules(load_template(), {**BASE_PARAMETERS, **SCENARIOS[scenario]}) == []


def test_the_rules_refuse_subnets_without_security_groups_and_a_private_ca_for_firehose() -> None:
    template = load_template()
    subnets_only = {**BASE_PARAMETERS, "SubnetIds": "subnet-0a1b2c3d"}
    assert any("SecurityGroupIds must be given" in b for b in broken_rules(template, subnets_only))
    private_firehose = {**BASE_PARAMETERS, "DeliveryMode": "firehose", "HecCaBundle": "/var/task/hec-ca.pem"}
    assert any("Firehose trusts only public CAs" in b for b in broken_rules(template, private_firehose))


def test_auto_subscribe_is_scoped_to_cluster_log_groups_and_passes_its_role_alone() -> None:
    for scenario in ("lambda-defaults", "firehose-defaults"):
        resources = scenario_deployment(scenario)["Resources"]
        statements = _policy(resources, "AutoSubscribeRole", "subscribe-cluster-log-groups")["Statement"]
        by_action = {action: s for s in statements for action in as_list(s["Action"])}
        logs = by_action["logs:PutSubscriptionFilter"]
        assert str(rendered(logs["Resource"])) == (
            "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/cloudhsm/*"
        )
        assert set(by_action) >= {"logs:DescribeSubscriptionFilters", "cloudhsm:DescribeClusters"}
        assert "logs:DeleteSubscriptionFilter" not in by_action  # a foreign filter is never removed
        # the rule may invoke the function, from this account only
        permission = resources["AutoSubscribeInvokePermission"]["Properties"]
        assert permission["Principal"] == "events.amazonaws.com"
        assert permission["SourceAccount"] == "123456789012"
        if scenario == "lambda-defaults":
            add = by_action["lambda:AddPermission"]
            assert add["Resource"] == {"Fn::GetAtt": ["ForwarderFunction", "Arn"]}
            assert add["Condition"] == {"StringEquals": {"lambda:Principal": "logs.amazonaws.com"}}
            assert "iam:PassRole" not in by_action and "AutoSubscribeToFirehoseRole" not in resources
        else:
            assert "lambda:AddPermission" not in by_action
            passing = [
                (where, s)
                for where, document, kind in policy_documents(resources)
                if kind == "identity"
                for s in as_list(document["Statement"])
                if "iam:PassRole" in as_list(s.get("Action", []))
            ]
            assert [where for where, _ in passing] == ["AutoSubscribeRole/subscribe-cluster-log-groups"]
            ((_, pass_role),) = passing
            assert pass_role["Resource"] == {"Fn::GetAtt": ["AutoSubscribeToFirehoseRole", "Arn"]}
            assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "logs.amazonaws.com"}}
            (trust,) = resources["AutoSubscribeToFirehoseRole"]["Properties"]["AssumeRolePolicyDocument"][
                "Statement"
            ]
            assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}


def test_auto_subscribe_is_on_by_default_and_off_creates_nothing_of_it() -> None:
    assert load_template()["Parameters"]["AutoSubscribe"]["Default"] == "true"
    for mode in ("lambda", "firehose"):
        overrides = {"DeliveryMode": mode, "AutoSubscribe": "false"}
        off = deploy_on_paper(translate(overrides), {**BASE_PARAMETERS, **overrides})
        assert not [name for name in off["Resources"] if name.startswith("AutoSubscribe")]


def test_a_wider_auto_subscribe_trust_is_reported() -> None:
    def widen(resources: Any) -> None:
        trust = resources["AutoSubscribeToFirehoseRole"]["Properties"]["AssumeRolePolicyDocument"][
            "Statement"
        ][0]
        trust["Condition"]["ArnLike"]["aws:SourceArn"] = "arn:*:logs:*:*:log-group:*"

    assert any("CloudWatch Logs trust for the pattern" in f for f in mutated("firehose-defaults", widen))
