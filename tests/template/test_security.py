"""Hardening of template.yaml beyond the role: resource policies, versioning, the
failure destination, parameter patterns, and the scanner's accepted findings.

The role itself is tested after the SAM transform in test_deployed_role.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.template.cfn_yaml import load
from tests.template.deployed import Deployment

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
TLS_OFF = {"Bool": {"aws:SecureTransport": "false"}}


@pytest.fixture(scope="module")
def tpl() -> dict[str, Any]:
    return load(TEMPLATE)


@pytest.fixture(scope="module")
def resources(tpl: dict[str, Any]) -> dict[str, Any]:
    res: dict[str, Any] = tpl["Resources"]
    return res


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _queue_policy(resources: dict[str, Any], queue: str) -> list[dict[str, Any]]:
    policies = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::SQS::QueuePolicy" and {"Ref": queue} in r["Properties"]["Queues"]
    ]
    assert len(policies) == 1, f"{queue}: expected exactly one queue policy"
    statements: list[dict[str, Any]] = policies[0]["PolicyDocument"]["Statement"]
    return statements


# --- queue policies -------------------------------------------------------------------


@pytest.mark.parametrize("queue", ["CheckpointQueue", "DeadLetterQueue"])
def test_queues_deny_requests_without_tls(resources: dict[str, Any], queue: str) -> None:
    tls = [s for s in _queue_policy(resources, queue) if s.get("Condition") == TLS_OFF]
    assert len(tls) == 1
    assert tls[0]["Effect"] == "Deny"
    assert tls[0]["Principal"] == "*"
    assert tls[0]["Action"] == "sqs:*"
    assert tls[0]["Resource"] == {"Fn::GetAtt": [queue, "Arn"]}


@pytest.mark.parametrize("queue", ["CheckpointQueue", "DeadLetterQueue"])
def test_queue_policies_grant_nothing(resources: dict[str, Any], queue: str) -> None:
    # Same-account access comes from IAM; a queue policy here only takes away.
    assert {s["Effect"] for s in _queue_policy(resources, queue)} == {"Deny"}


def test_only_the_function_and_the_redrive_roles_send_checkpoints() -> None:
    for overrides, others in (
        ({}, []),
        (
            {
                "QueueRedriveRoleArns": "arn:aws:iam::123456789012:role/ops,"
                "arn:aws:iam::123456789012:role/oncall-*"
            },
            ["arn:aws:iam::123456789012:role/ops", "arn:aws:iam::123456789012:role/oncall-*"],
        ),
    ):
        deployment = Deployment(overrides)
        policy = deployment.resources("AWS::SQS::QueuePolicy")["CheckpointQueuePolicy"]
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        senders = [s for s in statements if s.get("Condition") != TLS_OFF]
        assert len(senders) == 1
        deny = senders[0]
        assert (deny["Effect"], deny["Principal"]) == ("Deny", "*")
        # Only SendMessage: the account keeps administering the queue and its policy.
        assert deny["Action"] == "sqs:SendMessage"
        assert deployment.render(deny["Resource"]) == "{CheckpointQueue.Arn}"
        assert deployment.render(deny["Condition"]) == {
            "ArnNotLike": {"aws:PrincipalArn": ["{ExporterFunctionRole.Arn}", *others]}
        }


def test_the_dead_letter_queue_stays_open_to_sqs_and_lambda(resources: dict[str, Any]) -> None:
    # SQS moves exhausted checkpoints there itself, and Lambda sends failure
    # records there with the function's role: no sender restriction on the DLQ.
    for statement in _queue_policy(resources, "DeadLetterQueue"):
        assert statement.get("Condition") == TLS_OFF


def test_the_dead_letter_queue_takes_only_the_checkpoint_queue() -> None:
    deployment = Deployment()
    queues = deployment.resources("AWS::SQS::Queue")
    allow = deployment.render(queues["DeadLetterQueue"]["Properties"]["RedriveAllowPolicy"])
    name = deployment.render(queues["CheckpointQueue"]["Properties"]["QueueName"])
    assert allow == {
        "redrivePermission": "byQueue",
        "sourceQueueArns": [f"arn:aws:sqs:eu-west-1:123456789012:{name}"],
    }
    # SQS queue names: at most 80 characters (the stack name takes up to 68 of them).
    assert name == "wifi-export-checkpoints"
    assert len(name.replace("wifi-export", "x" * 68)) <= 80


# --- bucket ---------------------------------------------------------------------------


def test_bucket_policy_denies_everything_without_tls(resources: dict[str, Any]) -> None:
    statements = resources["ExportBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statements == [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [
                {"Fn::GetAtt": ["ExportBucket", "Arn"]},
                {"Fn::Sub": "${ExportBucket.Arn}/*"},
            ],
            "Condition": TLS_OFF,
        }
    ]


def test_bucket_is_versioned_by_default_with_expiring_old_versions(tpl: dict[str, Any]) -> None:
    params = tpl["Parameters"]
    assert params["EnableVersioning"]["Default"] == "true"
    assert params["NoncurrentVersionRetentionDays"]["Default"] >= 1
    for overrides, status in (({}, "Enabled"), ({"EnableVersioning": "false"}, "Suspended")):
        bucket = Deployment(overrides).resources("AWS::S3::Bucket")["ExportBucket"]
        assert bucket["Properties"]["VersioningConfiguration"] == {"Status": status}
    rules = tpl["Resources"]["ExportBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    table = [r for r in rules if r["Prefix"] == {"Fn::Sub": "${DataPrefix}/"}]
    assert len(table) == 1
    # The table's current objects never expire; replaced versions and the
    # delete markers left without a version do.
    assert "ExpirationInDays" not in table[0] and "ExpirationDate" not in table[0]
    assert table[0]["Status"] == "Enabled"
    assert table[0]["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": {"Ref": "NoncurrentVersionRetentionDays"}
    }
    assert table[0]["ExpiredObjectDeleteMarker"] is True
    # Under the state prefix one rule per part (test_dashboard.py: every key is covered).
    state = [r for r in rules if r["Prefix"]["Fn::Sub"].startswith("${StatePrefix}/")]
    assert state
    runs = [r for r in state if r["Prefix"] == {"Fn::Sub": "${StatePrefix}/runs/"}]
    assert runs[0]["ExpirationInDays"] == {"Ref": "StateRetentionDays"}
    for rule in state:
        assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}


# --- failed asynchronous invocations ----------------------------------------------------


def test_failed_scheduled_invocations_are_kept(resources: dict[str, Any]) -> None:
    configs = [r for r in resources.values() if r["Type"] == "AWS::Lambda::EventInvokeConfig"]
    assert len(configs) == 1
    props = configs[0]["Properties"]
    assert props["FunctionName"] == {"Ref": "ExporterFunction"}
    assert props["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["DeadLetterQueue", "Arn"]
    }
    # The DLQ keeps it 14 days and its alarm notifies the topic.
    assert resources["DeadLetterQueue"]["Properties"]["MessageRetentionPeriod"] == 14 * 86400
    alarm = resources["DeadLetterQueueAlarm"]["Properties"]
    assert alarm["AlarmActions"] == [{"Ref": "NotificationTopic"}]


# --- parameters --------------------------------------------------------------------------

PATTERN_CASES = {
    "SecretName": (
        [
            "wifi-export/analytiks",
            "prod/wifi_export+a=b.c@d-e",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:wifi-export/analytiks-AbCdEf",
            "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:x-AbCdEf",
        ],
        [
            "",
            "*",
            "wifi-export/*",
            "wifi-export/analytiks?",
            "wifi-export/analytiks-??????",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:*",
            "arn:aws:secretsmanager:eu-west-1:*:secret:wifi-export",
            "arn:aws:s3:::bucket",
            "name with space",
        ],
    ),
    "ApiUrl": (
        [
            "https://exports.analytiks.ai",
            "https://exports.analytiks.ai/",
            "https://api.example.com:8443/base/path",
        ],
        [
            "http://exports.analytiks.ai",
            "HTTP://exports.analytiks.ai",
            "ftp://exports.analytiks.ai",
            "https://",
            "https://user:pw@exports.analytiks.ai",
            "https://exports.analytiks.ai/v1?key=1",
            "https://exports.analytiks.ai/#x",
            "https://exports analytiks.ai",
            "exports.analytiks.ai",
        ],
    ),
}
PATTERN_CASES["TokenUrl"] = PATTERN_CASES["ApiUrl"]


@pytest.mark.parametrize("name", sorted(PATTERN_CASES))
def test_parameter_patterns(tpl: dict[str, Any], name: str) -> None:
    # CloudFormation matches an AllowedPattern against the whole value (Java
    # regex; these patterns use nothing that differs from Python's re).
    pattern = tpl["Parameters"][name]["AllowedPattern"]
    accepted, rejected = PATTERN_CASES[name]
    for value in accepted:
        assert re.fullmatch(pattern, value), f"{name} should accept {value!r}"
    for value in rejected:
        assert not re.fullmatch(pattern, value), f"{name} should reject {value!r}"


def test_every_default_satisfies_its_parameter(tpl: dict[str, Any]) -> None:
    for name, param in tpl["Parameters"].items():
        default = param.get("Default")
        if default is None:
            continue
        if "AllowedPattern" in param:
            assert re.fullmatch(param["AllowedPattern"], str(default)), name
        if "MinValue" in param:
            assert param["MinValue"] <= default, name
        if "MaxValue" in param:
            assert default <= param["MaxValue"], name


def test_fan_out_is_bounded(tpl: dict[str, Any]) -> None:
    hops = tpl["Parameters"]["MaxHops"]
    assert (hops["MinValue"], hops["Default"], hops["MaxValue"]) == (1, 200, 1000)
    concurrency = tpl["Parameters"]["MaxConcurrency"]
    assert concurrency["MaxValue"] <= 1000


# --- the scanner ---------------------------------------------------------------------------


def _skips(tpl: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (name, skip["id"], skip.get("comment", ""))
        for name, resource in tpl["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]


def test_every_scanner_skip_states_its_reason_and_is_listed(tpl: dict[str, Any]) -> None:
    skips = _skips(tpl)
    assert skips, "no inline skips found: the walk is broken"
    doc = (ROOT / "docs" / "reliability.md").read_text()
    section = doc.split("## Accepted scanner findings", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| CKV_")]
    for resource, check, comment in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", check), check
        assert len(comment.split()) >= 8, f"{resource} {check}: the skip needs its reason"
        assert any(
            row.startswith(f"| {check} ") and re.search(rf"\b{resource}\b", row) for row in rows
        ), f"{resource} {check} is not listed in docs/reliability.md"
    assert len(rows) == len({check for _, check, _ in skips})


def test_make_test_runs_the_scanner() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test:[^#\n]*\bscan\b", makefile, re.MULTILINE)
    scan = re.search(r"^scan:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert scan
    assert "--file template.yaml" in scan.group(1)
    # No call to the vendor's platform: CI reaches PyPI only.
    assert "--skip-download" in scan.group(1)
