"""The function's role as deployed: after the SAM transform, for real parameter sets.

A role written with SAM `Policies` and event sources can be wider once deployed
than it reads (SAM attaches managed policies: receive/delete on every queue of
the account for an `SQS` event, X-Ray for any `Tracing`). These tests look at
what CloudFormation gets, and hold it to the list of actions the code needs
(template.yaml, docs/decisions.md "The function's role, action by action").
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.template.deployed import ROOT, Deployment

ROLE = "ExporterFunctionRole"
XRAY = "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess"
CUSTOM = {
    "ExistingBucketName": "acme-lake",
    "DataPrefix": "lake/wifi",
    "StatePrefix": "ops/wifi-state",
    "SecretName": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:acme/analytiks-AbCdEf",
    # Without the Parquet table the role has no grant on its prefix.
    "EnableParquet": "false",
}

# Each action the role grants -> the resources it may touch, for the default
# parameters (created bucket, secret by name) and for CUSTOM.
DEFAULT_GRANTS = {
    "secretsmanager:GetSecretValue": {
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:wifi-export/analytiks-??????"
    },
    "s3:PutObject": {
        "arn:aws:s3:::{ExportBucket}/wifi/metrics/*",
        "arn:aws:s3:::{ExportBucket}/wifi/metrics_parquet/*",
        "arn:aws:s3:::{ExportBucket}/wifi/_exports/runs/*",
        "arn:aws:s3:::{ExportBucket}/wifi/_exports/requests/*",
        "arn:aws:s3:::{ExportBucket}/wifi/_exports/history/*",
        "arn:aws:s3:::{ExportBucket}/wifi/_exports/lake/*",
    },
    "s3:DeleteObject": {
        "arn:aws:s3:::{ExportBucket}/wifi/metrics/*",
        "arn:aws:s3:::{ExportBucket}/wifi/metrics_parquet/*",
        "arn:aws:s3:::{ExportBucket}/wifi/_exports/runs/*",
        "arn:aws:s3:::{ExportBucket}/wifi/_exports/requests/*",
        "arn:aws:s3:::{ExportBucket}/wifi/_exports/history/*",
        "arn:aws:s3:::{ExportBucket}/wifi/_exports/lake/*",
    },
    # Table objects are read only by a selection's copy-on-write commit (get_versioned).
    "s3:GetObject": {
        "arn:aws:s3:::{ExportBucket}/wifi/_exports/runs/*",
        "arn:aws:s3:::{ExportBucket}/wifi/_exports/requests/*",
        "arn:aws:s3:::{ExportBucket}/wifi/_exports/history/*",
        "arn:aws:s3:::{ExportBucket}/wifi/_exports/lake/*",
        "arn:aws:s3:::{ExportBucket}/wifi/metrics/*",
    },
    "s3:ListBucket": {"arn:aws:s3:::{ExportBucket}"},
    "sqs:SendMessage": {"{CheckpointQueue.Arn}", "{DeadLetterQueue.Arn}"},
    "sqs:ReceiveMessage": {"{CheckpointQueue.Arn}"},
    "sqs:DeleteMessage": {"{CheckpointQueue.Arn}"},
    "sqs:GetQueueAttributes": {"{CheckpointQueue.Arn}"},
    "sns:Publish": {"{NotificationTopic}"},
    "kms:GenerateDataKey": {"{NotificationKey.Arn}"},
    "kms:Decrypt": {"{NotificationKey.Arn}"},
    "logs:CreateLogStream": {"{ExporterLogGroup.Arn}"},
    "logs:PutLogEvents": {"{ExporterLogGroup.Arn}"},
}
CUSTOM_GRANTS = {
    **DEFAULT_GRANTS,
    "secretsmanager:GetSecretValue": {CUSTOM["SecretName"]},
    "s3:PutObject": {
        "arn:aws:s3:::acme-lake/lake/wifi/*",
        "arn:aws:s3:::acme-lake/ops/wifi-state/runs/*",
        "arn:aws:s3:::acme-lake/ops/wifi-state/requests/*",
        "arn:aws:s3:::acme-lake/ops/wifi-state/history/*",
        "arn:aws:s3:::acme-lake/ops/wifi-state/lake/*",
    },
    "s3:DeleteObject": {
        "arn:aws:s3:::acme-lake/lake/wifi/*",
        "arn:aws:s3:::acme-lake/ops/wifi-state/runs/*",
        "arn:aws:s3:::acme-lake/ops/wifi-state/requests/*",
        "arn:aws:s3:::acme-lake/ops/wifi-state/history/*",
        "arn:aws:s3:::acme-lake/ops/wifi-state/lake/*",
    },
    "s3:GetObject": {
        "arn:aws:s3:::acme-lake/lake/wifi/*",
        "arn:aws:s3:::acme-lake/ops/wifi-state/runs/*",
        "arn:aws:s3:::acme-lake/ops/wifi-state/requests/*",
        "arn:aws:s3:::acme-lake/ops/wifi-state/history/*",
        "arn:aws:s3:::acme-lake/ops/wifi-state/lake/*",
    },
    "s3:ListBucket": {"arn:aws:s3:::acme-lake"},
}

# boto3 calls of the exporter -> the IAM actions they need. A call missing here
# fails test_every_aws_call_of_the_code_is_granted: grant it in template.yaml
# (and in docs/decisions.md), then add it here.
CODE_ACTIONS = {
    "put_object": {"s3:PutObject"},
    "get_object": {"s3:GetObject"},
    "head_object": {"s3:GetObject"},  # HEAD needs GetObject
    "copy_object": {"s3:GetObject", "s3:PutObject"},  # source read, target written
    "delete_objects": {"s3:DeleteObject"},
    "list_objects_v2": {"s3:ListBucket"},
    "send_message_batch": {"sqs:SendMessage"},
    "publish": {"sns:Publish"},
    "SecretsProvider": {"secretsmanager:GetSecretValue"},  # Powertools: GetSecretValue
}
# Used with the role by AWS on the function's behalf, not by the code.
SERVICE_ACTIONS = {
    "sqs:ReceiveMessage": "the event source mapping's poller",
    "sqs:DeleteMessage": "the event source mapping's poller",
    "sqs:GetQueueAttributes": "the event source mapping's poller",
    "sqs:SendMessage": "Lambda's OnFailure destination record (dead-letter queue)",
    "kms:GenerateDataKey": "SNS encrypting a published notification",
    "kms:Decrypt": "SNS encrypting a published notification",
    "logs:CreateLogStream": "the Lambda runtime",
    "logs:PutLogEvents": "the Lambda runtime",
}
SERVICES = ("s3", "sqs", "sns", "secretsmanager")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _grants(deployment: Deployment) -> dict[str, set[str]]:
    grants: dict[str, set[str]] = defaultdict(set)
    for statement in deployment.statements_of_role(ROLE):
        assert statement["Effect"] == "Allow", statement
        assert "NotAction" not in statement and "NotResource" not in statement
        for action in _as_list(statement["Action"]):
            for resource in _as_list(statement["Resource"]):
                grants[action].add(deployment.render(resource))
    return dict(grants)


@pytest.fixture(scope="module")
def default() -> Deployment:
    return Deployment()


@pytest.fixture(scope="module")
def traced() -> Deployment:
    return Deployment({"EnableTracing": "true"})


@pytest.fixture(scope="module")
def custom() -> Deployment:
    return Deployment(CUSTOM)


def test_the_function_runs_with_the_one_explicit_role(default: Deployment) -> None:
    assert list(default.resources("AWS::IAM::Role")) == [ROLE]
    functions = default.resources("AWS::Lambda::Function")
    assert list(functions) == ["ExporterFunction"]
    assert functions["ExporterFunction"]["Properties"]["Role"] == {"Fn::GetAtt": [ROLE, "Arn"]}
    trust = default.resources("AWS::IAM::Role")[ROLE]["Properties"]["AssumeRolePolicyDocument"]
    assert trust["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ]


def test_no_managed_policy_but_xray_and_only_with_tracing(
    default: Deployment, traced: Deployment
) -> None:
    for deployment, expected in ((default, []), (traced, [XRAY])):
        role = deployment.resources("AWS::IAM::Role")[ROLE]["Properties"]
        arns = [deployment.render(a) for a in role.get("ManagedPolicyArns", [])]
        assert arns == expected
    text = json.dumps(default.template)
    # SAM's SQS event would attach this one: receive/delete on every queue of the account.
    assert "AWSLambdaSQSQueueExecutionRole" not in text
    # logs:* on every log group: replaced by ExporterFunctionLogsPolicy.
    assert "AWSLambdaBasicExecutionRole" not in text
    assert not default.resources("AWS::IAM::ManagedPolicy")
    tracing = traced.resources("AWS::Lambda::Function")["ExporterFunction"]["Properties"]
    assert tracing["TracingConfig"] == {"Mode": "Active"}
    plain = default.resources("AWS::Lambda::Function")["ExporterFunction"]["Properties"]
    assert plain["TracingConfig"] == {"Mode": "PassThrough"}


@pytest.mark.parametrize(
    ("name", "expected"), [("default", DEFAULT_GRANTS), ("custom", CUSTOM_GRANTS)]
)
def test_the_role_grants_exactly_the_documented_actions_and_resources(
    name: str, expected: dict[str, set[str]], request: pytest.FixtureRequest
) -> None:
    deployment: Deployment = request.getfixturevalue(name)
    assert _grants(deployment) == expected


def test_no_allow_on_every_resource_and_wildcards_only_where_documented(
    default: Deployment,
) -> None:
    for resources in _grants(default).values():
        for resource in resources:
            assert resource != "*"
            rest = resource
            # Object keys under a prefix; the secret's 6-character suffix.
            allowed_paths: tuple[str, ...] = (
                "/wifi/metrics/*",
                "/wifi/metrics_parquet/*",
                "-??????",
            )
            allowed_paths += tuple(
                f"/wifi/_exports/{d}/*" for d in ("runs", "requests", "history", "lake")
            )
            for allowed in allowed_paths:
                rest = rest.replace(allowed, "")
            assert "*" not in rest and "?" not in rest, resource


def test_kms_only_through_sns(default: Deployment) -> None:
    kms = [
        s
        for s in default.statements_of_role(ROLE)
        if any(a.startswith("kms:") for a in _as_list(s["Action"]))
    ]
    assert len(kms) == 1
    via = kms[0]["Condition"]["StringEquals"]["kms:ViaService"]
    assert default.render(via) == "sns.eu-west-1.amazonaws.com"


def test_the_queue_poller_is_an_explicit_event_source_mapping(default: Deployment) -> None:
    mappings = default.resources("AWS::Lambda::EventSourceMapping")
    assert list(mappings) == ["CheckpointEventSourceMapping"]
    props = mappings["CheckpointEventSourceMapping"]["Properties"]
    assert props["EventSourceArn"] == {"Fn::GetAtt": ["CheckpointQueue", "Arn"]}
    assert props["FunctionName"] == {"Ref": "ExporterFunction"}
    # One window per invocation; partial batch failures; the API's rate limit.
    assert props["BatchSize"] == 1
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["ScalingConfig"] == {"MaximumConcurrency": "5"}
    assert props.get("Enabled", True) is True
    # The function's first SQS invocation can write its logs.
    depends = _as_list(default.template["Resources"]["CheckpointEventSourceMapping"]["DependsOn"])
    assert "ExporterFunctionLogsPolicy" in depends


def test_failed_async_invocations_go_to_a_destination_the_role_may_send_to(
    default: Deployment,
) -> None:
    configs = default.resources("AWS::Lambda::EventInvokeConfig")
    assert len(configs) == 1
    props = next(iter(configs.values()))["Properties"]
    assert props["FunctionName"] == {"Ref": "ExporterFunction"}
    assert props["Qualifier"] == "$LATEST"
    destination = default.render(props["DestinationConfig"]["OnFailure"]["Destination"])
    assert destination == "{DeadLetterQueue.Arn}"
    assert destination in _grants(default)["sqs:SendMessage"]


def _aws_calls_in_the_code() -> set[str]:
    import botocore.session  # noqa: PLC0415
    from botocore import xform_name  # noqa: PLC0415

    session = botocore.session.get_session()
    operations = {
        xform_name(op)
        for service in SERVICES
        for op in session.get_service_model(service).operation_names
    }
    source = "\n".join(
        p.read_text() for p in sorted(Path(ROOT, "functions", "exporter").rglob("*.py"))
    )
    found = {op for op in operations if re.search(r"""[.'"]""" + op + r"""[('"]""", source)}
    if "SecretsProvider" in source:
        found.add("SecretsProvider")
    return found


def test_every_aws_call_of_the_code_is_granted_and_every_grant_is_used(
    default: Deployment,
) -> None:
    calls = _aws_calls_in_the_code()
    unmapped = calls - set(CODE_ACTIONS)
    assert not unmapped, f"AWS calls with no IAM mapping (grant them, map them): {unmapped}"
    stale = set(CODE_ACTIONS) - calls
    assert not stale, f"mapped calls the code no longer makes (drop their grants): {stale}"
    needed = set().union(*(CODE_ACTIONS[c] for c in calls)) | set(SERVICE_ACTIONS)
    assert set(_grants(default)) == needed


def test_the_action_list_is_documented(default: Deployment) -> None:
    docs = (ROOT / "docs" / "decisions.md").read_text()
    section = docs.split("### The function's role, action by action", 1)[1]
    template = (ROOT / "template.yaml").read_text()
    for action in _grants(default):
        assert f"`{action}`" in section, f"{action} missing from docs/decisions.md"
        assert action in template


def test_run_state_grants_cover_what_the_code_writes_not_athena_results(
    default: Deployment,
) -> None:
    """Get/Put/Delete under the state prefix reach only the folders of
    exporter/run/keys.py: the Athena workgroup's results beside them stay out."""
    from exporter.run.keys import Layout  # noqa: PLC0415

    layout = Layout("wifi/_exports", "wifi/metrics")
    run_id = "20230701T033000000Z-b1234-9f2c41d0"
    run = layout.run(run_id, 1234)
    written = [
        layout.plan(run_id),
        layout.request("some-request"),
        layout.history(run_id),
        layout.history_manifest(run_id),
        run.step(0, 1),
        run.lease(0),
        run.progress(0),
        run.backoff(0, 1, 0),
        run.status,
        run.cancel,
        run.manifest,
        layout.lake_month(1234, "utc", "2023-07", "days"),
        layout.lake_month(1234, "local", "2023-07", "sums"),
    ]
    athena = "wifi/_exports/athena-results/2024/01/01/query.csv"
    for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
        grants = [g.removeprefix("arn:aws:s3:::{ExportBucket}/") for g in _grants(default)[action]]
        for key in written:
            assert any(fnmatch.fnmatchcase(key, g) for g in grants), (action, key)
        assert not any(fnmatch.fnmatchcase(athena, g) for g in grants), (action, grants)
