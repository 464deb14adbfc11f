"""template.yaml: the properties users and the exporter rely on (docs/contracts.md:
runs, S3 layout, configuration).

Read as data (tests/template/cfn_yaml.py): no AWS, no SAM CLI. cfn-lint at the
end checks everything against the CloudFormation/SAM schemas.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter import schema
from exporter.config import load_settings
from exporter.planning import EARLIEST_DAY
from tests.template.cfn_yaml import load

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

# docs/contracts.md, "Configuration": the function's whole configuration surface.
CONTRACT_ENV = (
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
    "API_MAX_RPS",
    "MAX_CONCURRENCY",
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


def _statements(resources: dict[str, Any]) -> list[dict[str, Any]]:
    """The statements of the function's role (written out; see test_deployed_role.py)."""
    role = resources["ExporterFunctionRole"]["Properties"]
    statements = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]
    # A statement only some parameter sets have (!If): its branch for the defaults.
    return [s["Fn::If"][1] if "Fn::If" in s else s for s in statements]


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
    missing = [name for name in CONTRACT_ENV if name not in env]
    assert not missing, f"configuration variables missing from the function: {missing}"
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
        "WindowDays": 5,
        "ApiUrl": "https://exports.analytiks.ai",
        "TokenUrl": "https://tokens.analytiks.ai",
        "ApiAudience": "https://gql.analytiks.ai",
        "ExistingBucketName": "",
        "DataPrefix": "wifi/metrics",
        "StatePrefix": "wifi/_exports",
        "StateRetentionDays": 30,
        "EnableVersioning": "true",
        "NoncurrentVersionRetentionDays": 30,
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
    # One default for WINDOW_DAYS: a deployment gets what the code and README say.
    required = {
        "SECRET_ID": "wifi-export/analytiks",
        "BUCKET_NAME": "export-bucket",
        "TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:topic",
        "QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/queue",
    }
    assert params["WindowDays"]["Default"] == load_settings(required).window_days
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


def test_sqs_trigger_one_record_partial_failures_bounded(
    function: dict[str, Any], resources: dict[str, Any]
) -> None:
    # An explicit mapping, not a SAM `SQS` event (that one attaches a managed
    # policy that can drain every queue of the account).
    assert not [e for e in function["Events"].values() if e["Type"] == "SQS"]
    mappings = [r for r in resources.values() if r["Type"] == "AWS::Lambda::EventSourceMapping"]
    assert len(mappings) == 1
    props = mappings[0]["Properties"]
    assert props["EventSourceArn"] == {"Fn::GetAtt": ["CheckpointQueue", "Arn"]}
    assert props["FunctionName"] == {"Ref": "ExporterFunction"}
    assert props["BatchSize"] == 1
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "MaxConcurrency"}}


def test_rate_budget_comes_from_the_mapping_s_own_parameter(
    tpl: dict[str, Any], function: dict[str, Any]
) -> None:
    """MAX_CONCURRENCY and the mapping's MaximumConcurrency are one parameter: each
    invocation's share of API_MAX_RPS is right only if they agree."""
    env = function["Environment"]["Variables"]
    assert env["MAX_CONCURRENCY"] == {"Ref": "MaxConcurrency"}
    assert env["API_MAX_RPS"] == {"Ref": "ApiMaxRps"}
    param = tpl["Parameters"]["ApiMaxRps"]
    assert (param["Type"], param["Default"]) == ("String", "")
    pattern = re.compile(param["AllowedPattern"])
    for good in ("", "1", "12.5", "0.5", "100000"):
        assert pattern.fullmatch(good), good
    for bad in ("0", "0.0", "-1", "ten", "1e3", " 5"):
        assert not pattern.fullmatch(bad), bad
    required = {
        "SECRET_ID": "wifi-export/analytiks",
        "BUCKET_NAME": "export-bucket",
        "TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:topic",
        "QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/queue",
    }
    defaults = load_settings(
        {
            **required,
            "API_MAX_RPS": "",
            "MAX_CONCURRENCY": str(tpl["Parameters"]["MaxConcurrency"]["Default"]),
        }
    )
    assert (defaults.api_max_rps, defaults.max_concurrency) == (
        None,
        load_settings(required).max_concurrency,
    )


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


def test_no_wildcard_action_in_any_allow(tpl: dict[str, Any]) -> None:
    statements = [
        value
        for key, value in _walk(tpl)
        if key == "Statement"
        for value in _as_list(value)
        if isinstance(value, dict)
    ]
    # A statement some parameter sets leave out (!If [condition, statement, NoValue]).
    statements = [s["Fn::If"][1] if "Fn::If" in s else s for s in statements]
    allowed = [a for s in statements if s["Effect"] == "Allow" for a in _as_list(s["Action"])]
    assert allowed, "no Allow found: the walk is broken"
    assert not [a for a in allowed if "*" in str(a)]
    assert not [s for s in statements if "NotAction" in s]
    # A Deny may be broad (s3:*, sqs:* without TLS): that only takes away.
    denied = [a for s in statements if s["Effect"] == "Deny" for a in _as_list(s["Action"])]
    assert "s3:*" in denied


def test_function_role_is_written_out(function: dict[str, Any]) -> None:
    # No SAM `Policies` (policy templates expand to wildcard actions, and SAM adds
    # managed policies of its own to a role it generates).
    assert "Policies" not in function
    assert function["Role"] == {"Fn::GetAtt": ["ExporterFunctionRole", "Arn"]}


def test_s3_access_is_limited_to_the_two_prefixes(resources: dict[str, Any]) -> None:
    s3 = {
        s["Sid"]: s
        for s in _statements(resources)
        if any(str(a).startswith("s3:") for a in _as_list(s["Action"]))
    }
    assert set(s3) == {"WriteTable", "WriteParquetTable", "ReadWriteRunState", "ListTableAndState"}
    listing = s3.pop("ListTableAndState")
    assert listing["Action"] == "s3:ListBucket"
    assert _sub_text(listing["Resource"]) == "arn:${AWS::Partition}:s3:::${Bucket}"
    # Unconditioned, so a missing marker reads as 404, not 403 (see template).
    assert "Condition" not in listing
    # The table is written (commit copies), pruned, and read only to rewrite an older
    # object without the rows a selection run replaces.
    assert s3["WriteTable"]["Action"] == ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    assert _sub_text(s3["WriteTable"]["Resource"]) == (
        "arn:${AWS::Partition}:s3:::${Bucket}/${DataPrefix}/*"
    )
    # The Parquet table is only ever replaced whole (or deleted), never read.
    assert s3["WriteParquetTable"]["Action"] == ["s3:PutObject", "s3:DeleteObject"]
    assert _sub_text(s3["WriteParquetTable"]["Resource"]) == (
        "arn:${AWS::Partition}:s3:::${Bucket}/${ParquetPrefix}/*"
    )
    assert s3["ReadWriteRunState"]["Action"] == ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    # Not all of StatePrefix: its athena-results/ folder holds the workgroup's results.
    assert [_sub_text(r) for r in s3["ReadWriteRunState"]["Resource"]] == [
        f"arn:${{AWS::Partition}}:s3:::${{Bucket}}/${{StatePrefix}}/{folder}/*"
        for folder in ("runs", "requests", "history", "lake")
    ]
    for statement in s3.values():
        for resource in _as_list(statement["Resource"]):
            assert resource["Fn::Sub"][1] == {"Bucket": BUCKET}


def test_each_service_is_scoped_to_its_resource(resources: dict[str, Any]) -> None:
    statements = _statements(resources)
    by_action = {a: s["Resource"] for s in statements for a in _as_list(s["Action"])}
    sends = [s["Resource"] for s in statements if s["Action"] == "sqs:SendMessage"]
    assert sends == [
        {"Fn::GetAtt": ["CheckpointQueue", "Arn"]},
        {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
    ]
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
        assert by_action[action] == {"Fn::GetAtt": ["CheckpointQueue", "Arn"]}
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
    assert props["VersioningConfiguration"] == {
        "Status": {"Fn::If": ["VersioningOn", "Enabled", "Suspended"]}
    }


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
    assert tls[0]["Action"] == "s3:*"
    assert tls[0]["Resource"] == [
        {"Fn::GetAtt": ["ExportBucket", "Arn"]},
        {"Fn::Sub": "${ExportBucket.Arn}/*"},
    ]


def test_lifecycle_expires_current_objects_only_under_the_state_prefix(
    resources: dict[str, Any],
) -> None:
    rules = resources["ExportBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert rules
    expiring = [r for r in rules if "ExpirationInDays" in r or "ExpirationDate" in r]
    # One rule per part of the state prefix: run state, requests and Athena results
    # after StateRetentionDays, the run history after HistoryRetentionDays.
    assert expiring
    for rule in expiring:
        assert rule["Prefix"]["Fn::Sub"].startswith("${StatePrefix}/")
        assert rule["ExpirationInDays"] in (
            {"Ref": "StateRetentionDays"},
            {"Ref": "HistoryRetentionDays"},
        )
    # The table's rule (test_security.py) only expires replaced versions.
    for rule in rules:
        if "DataPrefix" in str(rule):
            assert set(rule) <= {
                "Id",
                "Status",
                "Prefix",
                "NoncurrentVersionExpiration",
                "ExpiredObjectDeleteMarker",
                "AbortIncompleteMultipartUpload",
            }
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
    # Glue refuses a data column that shares a partition key's name.
    assert not {name for name, _ in columns} & {name for name, _ in partitions}


def test_a_query_must_choose_a_time_basis(table: dict[str, Any]) -> None:
    """`utc` and `local` rows are two datasets: with an injected projection, Athena
    refuses a query that does not pin time_basis, so no query adds both up."""
    params = table["Parameters"]
    assert [c["Name"] for c in table["PartitionKeys"]] == ["brand_id", "time_basis", "dt"]
    assert params["projection.time_basis.type"] == "injected"
    # Nothing else could project it: an enum or a range would let a query read both.
    assert not any(
        k.startswith("projection.time_basis.") and k.endswith((".values", ".range")) for k in params
    )
    # Each basis has folders of its own, below the brand's (docs/contracts.md, "S3 layout").
    template = params["storage.location.template"]["Fn::Sub"][0]
    assert "/brand_id=${!brand_id}/time_basis=${!time_basis}/dt=${!dt}/" in template


def test_glue_table_reads_gzip_json_lines(table: dict[str, Any]) -> None:
    assert table["TableType"] == "EXTERNAL_TABLE"
    sd = table["StorageDescriptor"]
    assert sd["InputFormat"] == "org.apache.hadoop.mapred.TextInputFormat"
    assert sd["OutputFormat"] == "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"
    # Hive's SerDe, not OpenX's: Athena documents rows lost, added or nulled with OpenX.
    # Its default timestamp format reads `ts` as written (docs/contracts.md, "Row schema").
    assert sd["SerdeInfo"]["SerializationLibrary"] == "org.apache.hive.hcatalog.data.JsonSerDe"
    assert "timestamp.formats" not in sd["SerdeInfo"].get("Parameters", {})
    assert sd["Location"] == {"Fn::Sub": ["s3://${Bucket}/${DataPrefix}/", {"Bucket": BUCKET}]}


def test_partition_projection(table: dict[str, Any]) -> None:
    params = table["Parameters"]
    assert params["classification"] == "json"
    assert params["projection.enabled"] == "true"
    assert params["projection.brand_id.type"] == "injected"
    assert params["projection.time_basis.type"] == "injected"
    assert params["projection.dt.type"] == "date"
    assert params["projection.dt.format"] == "yyyy-MM-dd"
    # Every day an on-demand run accepts is a projected partition: from the earliest
    # (tests/unit/test_requests.py refuses the day before it) to tomorrow.
    first, last = params["projection.dt.range"].split(",")
    assert first == EARLIEST_DAY.isoformat()
    assert last == "NOW+1DAYS"
    assert params["projection.dt.interval"] == "1"
    assert params["projection.dt.interval.unit"] == "DAYS"
    # ${!x} is the !Sub escape for a literal ${x} that Athena fills in.
    assert params["storage.location.template"] == {
        "Fn::Sub": [
            "s3://${Bucket}/${DataPrefix}/brand_id=${!brand_id}/time_basis=${!time_basis}/dt=${!dt}/",
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
    assert len(queries) == 8  # four, and their twins over the Parquet table
    for query in queries:
        sql = query["QueryString"]
        # Zone rows repeat a location's counts: each query reads one kind of row.
        assert "AND zone_id IS NULL" in sql or "AND zone_id IS NOT NULL" in sql
        assert query["WorkGroup"] == {"Ref": "AthenaWorkGroup"}
        assert query["Database"] == {"Ref": "GlueDatabase"}
        assert "FROM wifi_metrics" in sql
        # Injected projection: a query without a brand_id filter fails in Athena.
        assert "WHERE brand_id = " in sql
        # ... and without a time basis: each named query chooses one.
        assert len(re.findall(r"AND time_basis = '(?:utc|local)'", sql)) == 1, query["Name"]
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
