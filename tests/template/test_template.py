"""template.yaml: the properties users and the exporter rely on (DESIGN §2-§4).

Read as data (tests/template/cfn_yaml.py): no AWS, no SAM CLI. cfn-lint at the
end checks everything against the CloudFormation/SAM schemas.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter import schema
from tests.template.cfn_yaml import load

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

# DESIGN §4: the function's whole configuration surface.
DESIGN_ENV = (
    "SECRET_ID",
    "BUCKET_NAME",
    "DATA_PREFIX",
    "STATE_PREFIX",
    "TOPIC_ARN",
    "QUEUE_URL",
    "BRAND_IDS",
    "LOOKBACK_DAYS",
    "TIME_BASIS",
    "WINDOW_DAYS",
    "API_URL",
    "TOKEN_URL",
    "API_AUDIENCE",
    "TIME_SAFETY_MARGIN_MS",
)

BUCKET = {"Fn::If": ["CreateBucket", {"Ref": "ExportBucket"}, {"Ref": "ExistingBucketName"}]}


@pytest.fixture(scope="module")
def tpl() -> dict[str, Any]:
    return load(TEMPLATE)


@pytest.fixture(scope="module")
def resources(tpl: dict[str, Any]) -> dict[str, Any]:
    res: dict[str, Any] = tpl["Resources"]
    return res


@pytest.fixture(scope="module")
def function(resources: dict[str, Any]) -> dict[str, Any]:
    fn = resources["ExporterFunction"]
    assert fn["Type"] == "AWS::Serverless::Function"
    props: dict[str, Any] = fn["Properties"]
    return props


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair of every mapping in the document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(function: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for policy in function["Policies"] for s in policy["Statement"]]


def _sub_text(value: Any) -> str:
    """The format string of a !Sub (short or list form)."""
    sub = value["Fn::Sub"]
    return str(sub[0] if isinstance(sub, list) else sub)


# --- function and layer -------------------------------------------------------


def test_function_runtime_handler_and_recursion(function: dict[str, Any]) -> None:
    assert function["Runtime"] == "python3.12"
    assert function["Handler"] == "app.handler"
    assert function["CodeUri"] == "functions/exporter/"
    # Lambda stops Lambda->SQS->Lambda chains after 16 hops unless allowed.
    assert function["RecursiveLoop"] == "Allow"
    # Opt-in X-Ray (EnableTracing): the function only loads the SDK when told to.
    assert function["Tracing"] == {"Fn::If": ["TracingOn", "Active", "PassThrough"]}
    assert function["Environment"]["Variables"]["ENABLE_TRACING"] == {"Ref": "EnableTracing"}
    assert function["Layers"] == [{"Ref": "DependenciesLayer"}]
    assert function["Timeout"] == {"Ref": "FunctionTimeout"}
    assert function["MemorySize"] == {"Ref": "FunctionMemory"}


def test_architecture_is_the_tested_one(tpl: dict[str, Any], function: dict[str, Any]) -> None:
    param = tpl["Parameters"]["Architecture"]
    assert param["AllowedValues"] == ["x86_64"]
    assert function["Architectures"] == [{"Ref": "Architecture"}]
    layer = tpl["Resources"]["DependenciesLayer"]["Properties"]
    assert layer["CompatibleArchitectures"] == ["x86_64"]


def test_layer_builds_requirements_for_the_runtime(resources: dict[str, Any]) -> None:
    layer = resources["DependenciesLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Metadata"]["BuildMethod"] == "python3.12"
    assert layer["Properties"]["ContentUri"] == "layers/"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.12"]
    assert (ROOT / "layers" / "requirements.txt").is_file()


def test_memory_default_is_one_vcpu(tpl: dict[str, Any]) -> None:
    assert tpl["Parameters"]["FunctionMemory"]["Default"] == 1769


def test_environment_has_every_design_variable(function: dict[str, Any]) -> None:
    env = function["Environment"]["Variables"]
    missing = [name for name in DESIGN_ENV if name not in env]
    assert not missing, f"DESIGN §4 variables missing from the function: {missing}"
    assert env["BUCKET_NAME"] == BUCKET
    assert env["QUEUE_URL"] == {"Ref": "CheckpointQueue"}
    assert env["TOPIC_ARN"] == {"Ref": "NotificationTopic"}
    assert env["SECRET_ID"] == {"Ref": "SecretName"}
    assert env["MAX_HOPS"] == {"Ref": "MaxHops"}
    # The exporter must know the queue's redrive limit (last delivery = fail the run).
    assert env["MAX_RECEIVE_COUNT"] == {"Ref": "MaxReceiveCount"}
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "WifiExport"
    assert env["POWERTOOLS_SERVICE_NAME"] == {"Ref": "ServiceName"}
    assert {"POWERTOOLS_LOG_LEVEL", "LOG_LEVEL"} <= set(env)


def test_parameter_defaults(tpl: dict[str, Any]) -> None:
    params = tpl["Parameters"]
    expected = {
        "FunctionTimeout": 900,
        "ScheduleExpression": "cron(30 3 * * ? *)",
        "BrandIds": "",
        "LookbackDays": 1,
        "TimeBasis": "utc",
        "WindowDays": 1,
        "ApiUrl": "https://exports.analytiks.ai",
        "TokenUrl": "https://tokens.analytiks.ai",
        "ApiAudience": "https://gql.analytiks.ai",
        "ExistingBucketName": "",
        "DataPrefix": "wifi/metrics",
        "StatePrefix": "wifi/_exports",
        "StateRetentionDays": 30,
        "EnableVersioning": "false",
        "NotificationEmail": "",
        "MaxReceiveCount": 5,
        "MaxConcurrency": 5,
        "ReservedConcurrency": 10,
        "MaxHops": 200,
        "LogLevel": "INFO",
        "TimeSafetyMarginMs": 60000,
        "ServiceName": "wifi-export",
    }
    assert {name: params[name]["Default"] for name in expected} == expected
    assert params["TimeBasis"]["AllowedValues"] == ["utc", "local"]
    assert (params["WindowDays"]["MinValue"], params["WindowDays"]["MaxValue"]) == (1, 5)
    # The event source mapping's ScalingConfig refuses less than 2.
    assert params["MaxConcurrency"]["MinValue"] == 2


def test_no_secret_values_in_the_template(tpl: dict[str, Any]) -> None:
    text = TEMPLATE.read_text()
    assert "demo-secret" not in text
    for name, param in tpl["Parameters"].items():
        assert "secret" not in name.lower() or name == "SecretName"
        assert not param.get("NoEcho"), "credentials come from Secrets Manager, not parameters"


# --- events, queue, DLQ ----------------------------------------------------------


def test_schedule_event_is_the_default_scheduled_event(function: dict[str, Any]) -> None:
    schedules = [e for e in function["Events"].values() if e["Type"] == "Schedule"]
    assert len(schedules) == 1
    props = schedules[0]["Properties"]
    assert props["Schedule"] == {"Ref": "ScheduleExpression"}
    # No Input: the function routes on "detail-type": "Scheduled Event".
    assert "Input" not in props
    # SAM reads an intrinsic in `Enabled` as truthy; `State` carries the condition.
    assert "Enabled" not in props
    assert props["State"] == {"Fn::If": ["ScheduleOn", "ENABLED", "DISABLED"]}


def test_sqs_event_one_record_partial_failures_bounded(function: dict[str, Any]) -> None:
    sqs_events = [e for e in function["Events"].values() if e["Type"] == "SQS"]
    assert len(sqs_events) == 1
    props = sqs_events[0]["Properties"]
    assert props["Queue"] == {"Fn::GetAtt": ["CheckpointQueue", "Arn"]}
    assert props["BatchSize"] == 1
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "MaxConcurrency"}}


def test_visibility_timeout_is_six_times_every_function_timeout(tpl: dict[str, Any]) -> None:
    param = tpl["Parameters"]["FunctionTimeout"]
    queue = tpl["Resources"]["CheckpointQueue"]["Properties"]
    find = queue["VisibilityTimeout"]["Fn::FindInMap"]
    assert find[1] == {"Ref": "FunctionTimeout"}
    table = tpl["Mappings"][find[0]]
    timeouts = set(param["AllowedValues"]) | {param["Default"]}
    for timeout in timeouts:
        visibility = table[str(timeout)][find[2]]
        assert visibility >= 6 * timeout, (timeout, visibility)
        assert visibility <= 43_200  # SQS maximum (12 h)
        assert timeout <= 900  # Lambda maximum
    assert set(table) == {str(t) for t in timeouts}


def test_queue_redrives_to_the_dlq(tpl: dict[str, Any]) -> None:
    queue = tpl["Resources"]["CheckpointQueue"]["Properties"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
        "maxReceiveCount": {"Ref": "MaxReceiveCount"},
    }
    assert queue["MessageRetentionPeriod"] >= 4 * 86400
    dlq = tpl["Resources"]["DeadLetterQueue"]["Properties"]
    assert dlq["MessageRetentionPeriod"] == 14 * 86400


# --- IAM --------------------------------------------------------------------------


def test_no_wildcard_action_anywhere(tpl: dict[str, Any]) -> None:
    actions = [
        action
        for key, value in _walk(tpl)
        if key in ("Action", "NotAction")
        for action in _as_list(value)
    ]
    assert actions, "no Action found: the walk is broken"
    assert not [a for a in actions if "*" in str(a)]


def test_function_policies_are_plain_statements(function: dict[str, Any]) -> None:
    # SAM policy templates (S3CrudPolicy, SQSSendMessagePolicy, ...) expand to
    # wildcard actions the walk above cannot see.
    for policy in function["Policies"]:
        assert isinstance(policy, dict)
        assert set(policy) == {"Version", "Statement"}, policy


def test_s3_access_is_limited_to_the_two_prefixes(function: dict[str, Any]) -> None:
    s3 = [
        s
        for s in _statements(function)
        if any(str(a).startswith("s3:") for a in _as_list(s["Action"]))
    ]
    assert s3
    for statement in s3:
        actions = _as_list(statement["Action"])
        if actions == ["s3:ListBucket"]:
            assert _sub_text(statement["Resource"]) == "arn:${AWS::Partition}:s3:::${Bucket}"
            # Unconditioned, so a missing marker reads as 404, not 403 (see template).
            assert "Condition" not in statement
        else:
            assert "s3:ListBucket" not in actions
            resources = [_sub_text(r) for r in _as_list(statement["Resource"])]
            assert resources == [
                "arn:${AWS::Partition}:s3:::${Bucket}/${DataPrefix}/*",
                "arn:${AWS::Partition}:s3:::${Bucket}/${StatePrefix}/*",
            ]
            for resource in _as_list(statement["Resource"]):
                assert resource["Fn::Sub"][1] == {"Bucket": BUCKET}


def test_each_service_is_scoped_to_its_resource(function: dict[str, Any]) -> None:
    by_action = {a: s["Resource"] for s in _statements(function) for a in _as_list(s["Action"])}
    assert by_action["sqs:SendMessage"] == {"Fn::GetAtt": ["CheckpointQueue", "Arn"]}
    assert by_action["sns:Publish"] == {"Ref": "NotificationTopic"}
    secret = by_action["secretsmanager:GetSecretValue"]["Fn::If"]
    assert secret[0] == "SecretIsArn"
    assert secret[1] == {"Ref": "SecretName"}
    assert _sub_text(secret[2]).endswith(":secret:${SecretName}-??????")
    assert by_action["kms:GenerateDataKey"] == {"Fn::GetAtt": ["NotificationKey", "Arn"]}


# --- encryption and bucket hygiene -------------------------------------------------


def test_everything_is_encrypted_at_rest(resources: dict[str, Any]) -> None:
    bucket = resources["ExportBucket"]["Properties"]
    rule = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    for queue in ("CheckpointQueue", "DeadLetterQueue"):
        assert resources[queue]["Properties"]["SqsManagedSseEnabled"] is True
    topic = resources["NotificationTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Ref": "NotificationKey"}


def test_alarms_can_use_the_topic_key(resources: dict[str, Any]) -> None:
    # CloudWatch cannot publish to a topic under the AWS managed SNS key.
    statements = resources["NotificationKey"]["Properties"]["KeyPolicy"]["Statement"]
    cloudwatch = [
        s for s in statements if s["Principal"].get("Service") == "cloudwatch.amazonaws.com"
    ]
    assert cloudwatch
    assert {"kms:GenerateDataKey", "kms:Decrypt"} <= set(cloudwatch[0]["Action"])
    assert resources["NotificationKey"]["Properties"]["EnableKeyRotation"] is True


def test_bucket_is_private_and_owner_enforced(resources: dict[str, Any]) -> None:
    bucket = resources["ExportBucket"]
    assert bucket["Condition"] == "CreateBucket"
    assert bucket["DeletionPolicy"] == "Retain"
    props = bucket["Properties"]
    block = props["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert props["VersioningConfiguration"]["Fn::If"][0] == "VersioningOn"


def test_bucket_policy_denies_plain_http(resources: dict[str, Any]) -> None:
    policy = resources["ExportBucketPolicy"]
    assert policy["Condition"] == "CreateBucket"
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    tls = [
        s
        for s in statements
        if s["Effect"] == "Deny"
        and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
    ]
    assert len(tls) == 1
    assert tls[0]["Principal"] == "*"
    assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"} <= set(
        tls[0]["Action"]
    )
    assert tls[0]["Resource"] == [
        {"Fn::GetAtt": ["ExportBucket", "Arn"]},
        {"Fn::Sub": "${ExportBucket.Arn}/*"},
    ]


def test_lifecycle_expires_only_the_state_prefix(resources: dict[str, Any]) -> None:
    rules = resources["ExportBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert rules
    for rule in rules:
        assert rule["Prefix"] == {"Fn::Sub": "${StatePrefix}/"}
        assert "DataPrefix" not in str(rule)
    expiring = [r for r in rules if "ExpirationInDays" in r]
    assert expiring[0]["ExpirationInDays"] == {"Ref": "StateRetentionDays"}
    assert any("AbortIncompleteMultipartUpload" in r for r in rules)


# --- Glue table and Athena -----------------------------------------------------------


@pytest.fixture(scope="module")
def table(resources: dict[str, Any]) -> dict[str, Any]:
    table_input: dict[str, Any] = resources["MetricsTable"]["Properties"]["TableInput"]
    return table_input


def test_glue_columns_are_the_schema(table: dict[str, Any]) -> None:
    columns = tuple((c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"])
    assert columns == schema.COLUMNS
    partitions = tuple((c["Name"], c["Type"]) for c in table["PartitionKeys"])
    assert partitions == schema.PARTITION_KEYS


def test_glue_table_reads_gzip_json_lines(table: dict[str, Any]) -> None:
    assert table["TableType"] == "EXTERNAL_TABLE"
    sd = table["StorageDescriptor"]
    assert sd["InputFormat"] == "org.apache.hadoop.mapred.TextInputFormat"
    assert sd["OutputFormat"] == "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
    assert sd["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    assert sd["SerdeInfo"]["Parameters"]["ignore.malformed.json"] == "false"
    assert sd["Location"] == {"Fn::Sub": ["s3://${Bucket}/${DataPrefix}/", {"Bucket": BUCKET}]}


def test_partition_projection(table: dict[str, Any]) -> None:
    params = table["Parameters"]
    assert params["classification"] == "json"
    assert params["projection.enabled"] == "true"
    assert params["projection.brand_id.type"] == "injected"
    assert params["projection.dt.type"] == "date"
    assert params["projection.dt.format"] == "yyyy-MM-dd"
    assert params["projection.dt.range"].startswith("2015-01-01,NOW")
    assert params["projection.dt.interval"] == "1"
    assert params["projection.dt.interval.unit"] == "DAYS"
    # ${!x} is the !Sub escape for a literal ${x} that Athena fills in.
    assert params["storage.location.template"] == {
        "Fn::Sub": [
            "s3://${Bucket}/${DataPrefix}/brand_id=${!brand_id}/dt=${!dt}/",
            {"Bucket": BUCKET},
        ]
    }


def test_athena_workgroup_and_named_queries(resources: dict[str, Any]) -> None:
    config = resources["AthenaWorkGroup"]["Properties"]["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["BytesScannedCutoffPerQuery"] == {"Ref": "AthenaBytesScannedCutoff"}
    output = config["ResultConfiguration"]["OutputLocation"]
    # Results land under the state prefix: the lifecycle rule expires them.
    assert _sub_text(output) == "s3://${Bucket}/${StatePrefix}/athena-results/"
    queries = [
        r["Properties"] for r in resources.values() if r["Type"] == "AWS::Athena::NamedQuery"
    ]
    assert len(queries) == 3
    for query in queries:
        sql = query["QueryString"]
        assert query["WorkGroup"] == {"Ref": "AthenaWorkGroup"}
        assert query["Database"] == {"Ref": "GlueDatabase"}
        assert "FROM wifi_metrics" in sql
        # Injected projection: a query without a brand_id filter fails in Athena.
        assert "WHERE brand_id = " in sql
        assert "dt BETWEEN DATE" in sql
    text = " ".join(q["QueryString"] for q in queries)
    for column in ("under_15_mins", "over_60_mins", "visits", "lag("):
        assert column in text


# --- alarms and outputs --------------------------------------------------------------


def test_alarms_notify_the_topic(resources: dict[str, Any], function: dict[str, Any]) -> None:
    alarms = {
        name: r["Properties"]
        for name, r in resources.items()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    by_metric = {(a["Namespace"], a["MetricName"]): a for a in alarms.values()}
    dlq = by_metric["AWS/SQS", "ApproximateNumberOfMessagesVisible"]
    assert dlq["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}
    ]
    errors = by_metric["AWS/Lambda", "Errors"]
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "ExporterFunction"}}]
    env = function["Environment"]["Variables"]
    runs = by_metric[env["POWERTOOLS_METRICS_NAMESPACE"], "RunsFailed"]
    assert runs["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}]
    for alarm in (dlq, errors, runs):
        assert alarm["AlarmActions"] == [{"Ref": "NotificationTopic"}]
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["Threshold"] == 0
        assert alarm["TreatMissingData"] == "notBreaching"


def test_topic_policy_lets_cloudwatch_publish(resources: dict[str, Any]) -> None:
    statements = resources["NotificationTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    allow = [s for s in statements if s["Effect"] == "Allow"]
    assert allow[0]["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert allow[0]["Action"] == "sns:Publish"


def test_email_subscription_is_optional(resources: dict[str, Any]) -> None:
    sub = resources["NotificationEmailSubscription"]
    assert sub["Condition"] == "HasEmail"
    assert sub["Properties"]["Protocol"] == "email"


def test_outputs(tpl: dict[str, Any]) -> None:
    assert set(tpl["Outputs"]) >= {
        "BucketName",
        "TopicArn",
        "QueueUrl",
        "DeadLetterQueueUrl",
        "FunctionName",
        "GlueDatabase",
        "AthenaTable",
        "AthenaWorkGroup",
    }
    assert tpl["Outputs"]["FunctionName"]["Value"] == {"Ref": "ExporterFunction"}
    assert tpl["Outputs"]["BucketName"]["Value"] == BUCKET


# --- the linter ------------------------------------------------------------------------


def test_cfn_lint_is_clean() -> None:
    proc = subprocess.run(
        # cfnlint has no __main__; this is what the cfn-lint console script runs.
        [
            sys.executable,
            "-c",
            "import sys; from cfnlint.runner import main; sys.exit(main())",
            str(TEMPLATE),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
