"""template.yaml for operating it (issue 15): the dashboard, the outputs the CLI reads,
and lifecycle rules that keep the run history while staging expires."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from exporter.lake.records import lake_prefix
from exporter.run.keys import Layout
from tests.template.cfn_yaml import load
from wifi_export_cli.deployment import STACK_OUTPUTS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tpl() -> dict[str, Any]:
    return load(ROOT / "template.yaml")


def _emitted_metrics() -> set[str]:
    """Every metric name the exporter's code adds (Powertools add_metric)."""
    source = "\n".join(
        p.read_text() for p in sorted((ROOT / "functions" / "exporter").rglob("*.py"))
    )
    return set(re.findall(r'add_metric\(\s*name="(\w+)"', source))


@pytest.fixture(scope="module")
def dashboard(tpl: dict[str, Any]) -> dict[str, Any]:
    (board,) = [r for r in tpl["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    body = board["Properties"]["DashboardBody"]["Fn::Sub"]
    # A number parameter stands unquoted (a line at the alarm's threshold).
    body = body.replace("${FreshnessAlarmHours}", "36")
    # Every ${...} becomes a placeholder: what is left must be JSON.
    doc: dict[str, Any] = json.loads(re.sub(r"\$\{([^}]+)\}", r"<\1>", body))
    return doc


def _metrics(dashboard: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    return [
        (w["properties"]["title"], m)
        for w in dashboard["widgets"]
        if w["type"] == "metric"
        for m in w["properties"]["metrics"]
        if isinstance(m[0], str)  # not a metric math expression (the lake's, below)
    ]


def test_the_dashboard_shows_what_a_person_needs(dashboard: dict[str, Any]) -> None:
    metrics = _metrics(dashboard)
    by_name = {(m[0], m[1]): (title, m) for title, m in metrics}
    wanted = {
        ("WifiExport", "RowsExported"),
        ("WifiExport", "RunsSucceeded"),
        ("WifiExport", "RunsFailed"),
        ("WifiExport", "RunsCancelled"),
        ("WifiExport", "ApiLatency"),
        ("WifiExport", "ApiThrottles"),
        ("WifiExport", "Hops"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("AWS/Lambda", "Duration"),
        ("AWS/Lambda", "Errors"),
    }
    assert wanted <= set(by_name), wanted - set(by_name)
    rows_title = by_name["WifiExport", "RowsExported"][0]
    rows_widget = next(
        w for w in dashboard["widgets"] if w["properties"].get("title") == rows_title
    )
    assert rows_widget["properties"]["period"] == 86400  # per day
    assert rows_widget["properties"]["stat"] == "Sum"
    queues = [m[3] for _, m in metrics if m[1] == "ApproximateNumberOfMessagesVisible"]
    assert "<DeadLetterQueue.QueueName>" in queues
    for _, metric in metrics:
        if metric[0] == "WifiExport":
            # One dimension, the one Powertools sets: the stack's service name.
            assert metric[2:4] == ["service", "<ServiceName>"], metric
        if metric[0] == "AWS/Lambda":
            assert metric[2:4] == ["FunctionName", "<ExporterFunction>"]
    alarms = [w for w in dashboard["widgets"] if w["type"] == "alarm"]
    assert len(alarms[0]["properties"]["alarms"]) == 5


def test_lake_freshness_has_an_alarm_and_per_brand_widgets(
    tpl: dict[str, Any], dashboard: dict[str, Any]
) -> None:
    """Issue 23: HoursSinceLastCompleteDay (threshold a parameter, 36 h) and
    MissingLocationDays, alarmed on their service-wide series, drawn per brand."""
    source = "\n".join(
        p.read_text() for p in sorted((ROOT / "functions" / "exporter").rglob("*.py"))
    )
    emitted = set(re.findall(r'lake_metric\(\s*"(\w+)"', source))
    assert emitted == {"HoursSinceLastCompleteDay", "MissingLocationDays"}
    param = tpl["Parameters"]["FreshnessAlarmHours"]
    assert (param["Type"], param["Default"]) == ("Number", 36)
    alarms = {
        r["Properties"]["MetricName"]: r["Properties"]
        for r in tpl["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    fresh = alarms["HoursSinceLastCompleteDay"]
    assert fresh["Threshold"] == {"Ref": "FreshnessAlarmHours"}
    assert (fresh["Statistic"], fresh["ComparisonOperator"]) == ("Maximum", "GreaterThanThreshold")
    assert fresh["TreatMissingData"] == "ignore"  # nightly data: stale until a commit says not
    assert fresh["Dimensions"] == [{"Name": "service", "Value": {"Ref": "ServiceName"}}]
    short = alarms["MissingLocationDays"]
    assert (short["Statistic"], short["Threshold"]) == ("Sum", 0)
    for alarm in (fresh, short):
        assert alarm["Namespace"] == "WifiExport"
        assert alarm["AlarmActions"] == [{"Ref": "NotificationTopic"}]
    searches = {
        name: w
        for w in dashboard["widgets"]
        if w["type"] == "metric"
        for m in w["properties"]["metrics"]
        if isinstance(m[0], dict)
        for name in emitted
        if f'MetricName="{name}"' in m[0]["expression"]
    }
    assert set(searches) == emitted
    for widget in searches.values():
        (metric,) = widget["properties"]["metrics"]
        assert "{WifiExport,service,brand_id,time_basis}" in metric[0]["expression"]
        assert 'service="<ServiceName>"' in metric[0]["expression"]
    line = searches["HoursSinceLastCompleteDay"]["properties"]["annotations"]["horizontal"][0]
    assert line["value"] == 36
    (board,) = [w for w in dashboard["widgets"] if w["type"] == "alarm"]
    assert {"<LakeFreshnessAlarm.Arn>", "<MissingLocationDaysAlarm.Arn>"} <= set(
        board["properties"]["alarms"]
    )
    # The lake coverage never expires (the table does not); its old versions do.
    rules = tpl["Resources"]["ExportBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    (lake,) = [r for r in rules if r["Prefix"] == {"Fn::Sub": "${StatePrefix}/lake/"}]
    assert "ExpirationInDays" not in lake
    assert lake["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    assert lake_prefix("STATE", 1, "utc").startswith("STATE/lake/")  # where the code keeps it


def test_the_dashboard_draws_only_metrics_the_code_emits(dashboard: dict[str, Any]) -> None:
    drawn = {m[1] for _, m in _metrics(dashboard) if m[0] == "WifiExport"}
    emitted = _emitted_metrics() | {"ApiCalls", "ApiRetries", "ApiThrottles", "ApiLatency"}
    assert drawn <= emitted, drawn - emitted
    for name in ("RunsCancelled", "RunDuration", "BytesExported", "Hops", "RowsExported"):
        assert name in emitted


def test_the_outputs_the_cli_reads(tpl: dict[str, Any]) -> None:
    outputs = tpl["Outputs"]
    assert set(STACK_OUTPUTS) <= set(outputs)
    assert outputs["DataPrefix"]["Value"] == {"Ref": "DataPrefix"}
    assert outputs["StatePrefix"]["Value"] == {"Ref": "StatePrefix"}
    assert outputs["FunctionName"]["Value"] == {"Ref": "ExporterFunction"}


def test_history_is_kept_at_least_400_days_and_staging_expires(tpl: dict[str, Any]) -> None:
    params = tpl["Parameters"]
    assert params["HistoryRetentionDays"]["Default"] >= 400
    assert params["HistoryRetentionDays"]["MinValue"] >= 400
    assert params["StateRetentionDays"]["Default"] <= 30
    rules = tpl["Resources"]["ExportBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    expiring = {
        r["Prefix"]["Fn::Sub"].removeprefix("${StatePrefix}/"): r["ExpirationInDays"]["Ref"]
        for r in rules
        if "ExpirationInDays" in r
    }
    assert expiring["history/"] == "HistoryRetentionDays"
    # Every key the exporter writes under the state prefix falls under exactly one
    # rule: nothing is kept forever by accident, nothing of the history expires early.
    layout = Layout("S", "D")
    run_id = "20230701T033000000Z-b1234-9f2c41d0"
    keys = layout.run(run_id, 1234)
    written = [
        keys.plan,
        keys.status,
        keys.manifest,
        keys.failed,
        keys.committed,
        keys.notified,
        keys.cancel,
        keys.step(0, 0),
        keys.enqueued(0, 1),
        keys.done(0),
        keys.progress(0),
        keys.lease(0),
        keys.staged(0, 0, "abc", "2023-06-01"),
        layout.request("r"),
        keys.history,
        keys.history_manifest,
        "S/athena-results/q.csv",  # the workgroup's OutputLocation
    ]
    for key in written:
        assert key.startswith("S/")
        covering = [p for p in expiring if key.removeprefix("S/").startswith(p)]
        assert len(covering) == 1, (key, covering)
        if key in (keys.history, keys.history_manifest):
            assert expiring[covering[0]] == "HistoryRetentionDays"
        else:
            assert expiring[covering[0]] == "StateRetentionDays", key
