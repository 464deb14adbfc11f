"""`wifi-export` (docs/contracts.md, "Operations CLI") against moto, the fake
analytiks API and the exporter itself.

Every command, `--json`, `--follow` on a run in progress, cancelling at several
points of a run, and each error path. See conftest.py for what is real and what
is played.
"""

from __future__ import annotations

import json
import re
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import boto3

from exporter import json_codec
from exporter.run import commit, finish
from tests.cli.conftest import BIG, FUNCTION, CliLab
from tests.integration.conftest import expected
from tests.integration.test_export import assert_table_matches
from wifi_export_cli.main import cli, on_demand_event

ROOT = Path(__file__).resolve().parents[2]
BRAND = 1234
FIRST, LAST = date(2023, 6, 1), date(2023, 6, 7)  # two windows of WINDOW_DAYS=5
EVENT = {"brandId": BRAND, "startDate": FIRST.isoformat(), "endDate": LAST.isoformat()}
RANGE = ["--brand", str(BRAND), "--from", FIRST.isoformat(), "--to", LAST.isoformat()]
CONTRACT_FIELDS = {
    "runId",
    "status",
    "brandId",
    "startDate",
    "endDate",
    "windowsDone",
    "windowsTotal",
    "rows",
}
STATE = "wifi/_exports/"


def as_json(result: Any) -> Any:
    assert result.exit_code in (0, 1), result.stdout + result.stderr
    return json.loads(result.stdout)


def rows_expected(x: CliLab, brand: int = BRAND) -> int:
    return len(expected(x.lab.api, brand, FIRST, LAST, "utc"))


def assert_one_line_error(result: Any, code: int, *fragments: str) -> None:
    assert result.exit_code == code, result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith("wifi-export: "), lines
    assert len(lines) <= 2 and (len(lines) == 1 or lines[1].startswith("  hint: ")), lines
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


# -- the contract ------------------------------------------------------------------------


def test_the_commands_and_flags_are_the_design_contract() -> None:
    assert set(cli.commands) == {"run", "status", "runs", "cancel", "query", "coverage"}
    flags = {
        name: {o for p in command.params for o in p.opts} for name, command in cli.commands.items()
    }
    common = {"--json", "--stack-name", "--region", "--profile"}
    assert flags["run"] >= common | {
        "--brand",
        "--from",
        "--to",
        "--local-time",
        "--follow",
        "--locations",
        "--reference-numbers",
        "--zone",
        "--zero-fill",
        "--skip-unauthorized",
        "--missing",
    }
    assert flags["coverage"] >= common | {"--brand", "--from", "--to", "--basis", "--missing"}
    assert flags["status"] >= common | {"--follow"}
    assert flags["runs"] >= common | {"--brand", "--status", "--last"}
    assert flags["cancel"] >= common
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["wifi-export"] == "wifi_export_cli.main:main"
    assert "-e ." in (ROOT / "Makefile").read_text()  # `make install` installs it


def test_selector_flags_map_to_the_event_fields() -> None:
    assert on_demand_event((1234,), "2023-06-01", "2023-06-30") == {
        "brandId": 1234,
        "startDate": "2023-06-01",
        "endDate": "2023-06-30",
    }
    assert on_demand_event(
        (1234,),
        "2023-06-01",
        "2023-06-30",
        local_time=True,
        locations=[1, 2, 3],
        zero_fill=True,
    ) == {
        "brandId": 1234,
        "startDate": "2023-06-01",
        "endDate": "2023-06-30",
        "timeBasis": "local",
        "locations": [1, 2, 3],
        "zeroFill": True,
    }
    assert on_demand_event((1, 2), "2023-06-01", "2023-06-01")["brandIds"] == [1, 2]
    event = on_demand_event(
        (7,), "2023-06-01", "2023-06-01", reference_numbers=["A1"], skip_unauthorized=True
    )
    assert event["referenceNumbers"] == ["A1"] and event["skipUnauthorized"] is True
    assert on_demand_event((7,), "2023-06-01", "2023-06-01", zone="z-1")["zoneId"] == "z-1"


def test_selector_flags_reach_the_function(cli_lab: CliLab) -> None:
    """Through the seam: the event `run` sends for the selection flags."""
    sent: list[tuple[str, dict[str, Any]]] = []

    def invoker(_aws: Any) -> Any:
        def invoke(function: str, event: dict[str, Any]) -> Any:
            sent.append((function, event))
            return {"error": "InvalidEvent", "message": "locations: unknown field(s)"}

        return invoke

    result = cli_lab.cli(
        "run", *RANGE, "--locations", "1, 2,3", "--zero-fill", "--local-time", invoker=invoker
    )
    assert sent == [
        (
            FUNCTION,
            {**EVENT, "timeBasis": "local", "locations": [1, 2, 3], "zeroFill": True},
        )
    ]
    assert_one_line_error(
        result, 3, "the deployment does not know --locations", "upgrade it (`make deploy`)"
    )
    bad = cli_lab.cli("run", *RANGE, "--locations", "1,x", invoker=invoker)
    assert bad.exit_code == 2 and "expected ints" in bad.stderr


# -- run ---------------------------------------------------------------------------------


def test_run_invokes_the_function_and_prints_the_plan(cli_lab: CliLab) -> None:
    result = cli_lab.cli("run", *RANGE, "--no-wait")
    assert result.exit_code == 0, result.stderr
    run_id = re.search(r"started run (\S+): brand 1234 2023-06-01..2023-06-07", result.stdout)
    assert run_id is not None, result.stdout
    assert "2 window(s)" in result.stdout
    assert f"wifi-export status {run_id.group(1)} --follow" in result.stdout
    assert cli_lab.service.invocations == 1  # one real lambda.invoke, through boto3

    started = as_json(cli_lab.cli("run", *RANGE, "--json"))
    assert len(started) == 1
    doc = started[0]
    assert set(doc) >= CONTRACT_FIELDS
    assert doc["status"] == "running" and doc["windowsDone"] == 0 and doc["windowsTotal"] == 2
    assert doc["pages"] >= 1  # without --no-wait: it waited for the API's first answer
    assert doc["windows"] == [
        {"index": 0, "start": "2023-06-01", "end": "2023-06-05"},
        {"index": 1, "start": "2023-06-06", "end": "2023-06-07"},
    ]


def test_run_follow_watches_the_run_to_its_end(cli_lab: CliLab) -> None:
    result = cli_lab.cli("run", *RANGE, "--follow", "--interval", "0", "--json")
    assert result.exit_code == 0, result.stderr
    (doc,) = json.loads(result.stdout)
    assert doc["status"] == "succeeded"
    assert doc["rows"] == rows_expected(cli_lab)
    assert doc["windowsDone"] == doc["windowsTotal"] == 2
    assert len(cli_lab.sleeps) > 4  # it refreshed while the queue did the work
    assert_table_matches(cli_lab.lab, BRAND, FIRST, LAST, "utc", run_id=doc["runId"])
    assert cli_lab.statuses() == ["succeeded"]


def test_run_answers_invalid_events_readably(cli_lab: CliLab) -> None:
    result = cli_lab.cli("run", "--brand", "1234", "--from", "2023-06-10", "--to", "2023-06-01")
    assert_one_line_error(result, 2, "--to: 2023-06-01 is before --from 2023-06-10", "fix --to")
    assert cli_lab.service.invocations == 0  # refused before the function was asked
    assert cli_lab.lab.list_keys(STATE + "runs/") == []


def test_run_reports_a_crashing_function_and_a_missing_one(cli_lab: CliLab) -> None:
    cli_lab.monkeypatch.setattr(
        cli_lab.service, "handler", lambda event, context: 1 / 0, raising=True
    )
    assert_one_line_error(
        cli_lab.cli("run", *RANGE), 3, "the function failed: ZeroDivisionError", "make logs"
    )
    environ = {**cli_lab.lab.env, "FUNCTION_NAME": "no-such-function"}
    missing = cli_lab.cli("run", *RANGE, environ={**_aws_env(), **environ})
    assert_one_line_error(missing, 3, "ResourceNotFoundException", "FUNCTION_NAME")
    without = {k: v for k, v in {**_aws_env(), **cli_lab.lab.env}.items() if k != "FUNCTION_NAME"}
    assert_one_line_error(cli_lab.cli("run", *RANGE, environ=without), 3, "no function to invoke")


# -- status ----------------------------------------------------------------------------


def test_status_follow_on_a_run_in_progress(cli_lab: CliLab) -> None:
    run_id = cli_lab.start(EVENT)
    cli_lab.step(2)  # the first page of both windows, one page per invocation
    now = as_json(cli_lab.cli("status", run_id, "--json"))
    assert set(now) >= CONTRACT_FIELDS
    assert now["status"] == "running"
    assert 0 < now["rows"] < rows_expected(cli_lab)
    assert now["bytes"] > 0 and now["pages"] == 2 and now["apiCalls"] == 2
    assert now["windowsDone"] == 0 and now["windowsTotal"] == 2
    assert now["lastCheckpoint"]["step"] == 1
    assert now["rowsPerSecond"] > 0
    human = cli_lab.cli("status", run_id)
    assert human.exit_code == 0
    for label in ("running", "windows", "rows", "last checkpoint", "ETA"):
        assert label in human.stdout

    followed = cli_lab.cli("status", run_id, "--follow", "--interval", "0")
    assert followed.exit_code == 0, followed.stderr
    assert len(cli_lab.sleeps) >= 3  # refreshed while the run went on
    assert "succeeded" in followed.stdout and "2/2" in followed.stdout
    assert f"{rows_expected(cli_lab):,} rows" in followed.stdout
    done = as_json(cli_lab.cli("status", run_id, "--json"))
    assert done["status"] == "succeeded" and done["rows"] == rows_expected(cli_lab)
    assert done["manifest"].endswith(f"{run_id}.manifest.json")
    assert done["durationSeconds"] > 0 and done["finishedAt"]


def test_status_of_a_failed_run_shows_its_error_and_follow_exits_1(cli_lab: CliLab) -> None:
    cli_lab.lab.api.faults.queue.extend(["400"])
    run_id = cli_lab.start(EVENT)
    followed = cli_lab.cli("status", run_id, "--follow", "--interval", "0")
    assert followed.exit_code == 1
    assert "failed" in followed.stdout and "rejected the request (400)" in followed.stdout
    doc = as_json(cli_lab.cli("status", run_id, "--json"))
    assert doc["status"] == "failed" and doc["rows"] == 0 and "400" in doc["error"]


def test_several_runs_at_once(cli_lab: CliLab) -> None:
    result = cli_lab.cli(
        "run", "--brand", "1234", "--brand", "777", *RANGE[2:], "--follow", "--interval", "0"
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("succeeded") >= 2
    assert sorted(cli_lab.statuses()) == ["succeeded", "succeeded"]


# -- runs and the history --------------------------------------------------------------


def _three_runs(x: CliLab) -> tuple[str, str, str]:
    """A succeeded and a failed run of brand 1234, then a cancelled one of 777."""
    good = x.start(EVENT)
    x.finish()
    x.lab.api.faults.queue.extend(["400"])
    bad = x.start(EVENT)
    x.finish()
    other = x.start({"brandId": 777, "startDate": "2023-06-01", "endDate": "2023-06-02"})
    assert x.cli("cancel", other).exit_code == 0
    x.finish()
    return good, bad, other


def test_runs_lists_newest_first_and_filters(cli_lab: CliLab) -> None:
    good, bad, other = _three_runs(cli_lab)
    listed = as_json(cli_lab.cli("runs", "--json"))
    assert [d["runId"] for d in listed] == [other, bad, good]
    assert [d["status"] for d in listed] == ["cancelled", "failed", "succeeded"]
    for doc in listed:
        assert set(doc) >= CONTRACT_FIELDS
    assert listed[2]["rows"] == rows_expected(cli_lab) and listed[1]["rows"] == 0
    assert [d["runId"] for d in as_json(cli_lab.cli("runs", "--brand", "777", "--json"))] == [other]
    assert [d["runId"] for d in as_json(cli_lab.cli("runs", "--status", "failed", "--json"))] == [
        bad
    ]
    assert [d["runId"] for d in as_json(cli_lab.cli("runs", "--last", "1", "--json"))] == [other]
    table = cli_lab.cli("runs")
    assert table.exit_code == 0
    for run_id in (good, bad, other):
        assert run_id in table.stdout
    for heading in ("run id", "brand", "range", "status", "rows", "duration", "trigger"):
        assert heading in table.stdout
    none = cli_lab.cli("runs", "--brand", "42")
    assert none.exit_code == 0 and "no runs found" in none.stdout


def test_the_history_outlives_the_run_folder(cli_lab: CliLab) -> None:
    """After StateRetentionDays the run's folder is gone; status and runs still answer."""
    run_id = cli_lab.start(EVENT)
    cli_lab.finish()
    lab = cli_lab.lab
    history = [k for k in lab.list_keys(STATE + "history/") if run_id in k]
    assert sorted(k.rsplit("/", 1)[1] for k in history) == [
        f"{run_id}.json",
        f"{run_id}.manifest.json",
    ]
    manifest = json_codec.loads(
        lab.s3.get_object(Bucket=lab.bucket, Key=next(k for k in history if "manifest" in k))[
            "Body"
        ].read()
    )
    assert manifest["runId"] == run_id and manifest["status"] == "succeeded"
    folder = lab.list_keys(f"{STATE}runs/{run_id}/")
    lab.s3.delete_objects(
        Bucket=lab.bucket, Delete={"Objects": [{"Key": k} for k in folder]}
    )  # what the 30-day lifecycle rule does
    doc = as_json(cli_lab.cli("status", run_id, "--json"))
    assert doc["status"] == "succeeded" and doc["rows"] == rows_expected(cli_lab)
    assert [d["runId"] for d in as_json(cli_lab.cli("runs", "--json"))] == [run_id]


def test_runs_reads_the_index_without_listing_the_bucket(cli_lab: CliLab) -> None:
    _three_runs(cli_lab)
    prefixes: list[str] = []

    def watch(params: dict[str, Any], **_: Any) -> None:
        prefixes.append(params.get("Prefix", ""))

    aws = hooked("provide-client-params.s3.ListObjectsV2", watch)
    assert cli_lab.cli("runs", "--json", aws=aws).exit_code == 0
    assert prefixes, "no listing at all?"
    assert all(p.startswith(STATE + "history/") for p in prefixes), prefixes
    assert len(prefixes) <= 14  # one per month of the index, at most


# -- cancel ------------------------------------------------------------------------------


def assert_cancelled_and_nothing_committed(x: CliLab, run_id: str) -> None:
    doc = as_json(x.cli("status", run_id, "--json"))
    assert doc["status"] == "cancelled", doc
    assert doc["rows"] == 0
    assert x.lab.table_bytes() == {}, "a cancelled run committed something"
    notes = x.lab.notifications()
    assert [n["body"]["status"] for n in notes] == ["cancelled"]
    assert notes[0]["attributes"]["status"] == "cancelled"
    assert notes[0]["subject"].startswith("wifi-export cancelled: brand")
    assert notes[0]["body"]["runId"] == run_id and notes[0]["body"]["manifest"] is None
    assert x.service.deliver_one() is None, "messages left in the queue"


def test_cancel_before_any_step(cli_lab: CliLab) -> None:
    run_id = cli_lab.start(EVENT)  # both windows queued, no step taken
    result = cli_lab.cli("cancel", run_id)
    assert result.exit_code == 0, result.stderr
    assert "cancel requested" in result.stdout and "commits nothing" in result.stdout
    pending = as_json(cli_lab.cli("status", run_id, "--json"))
    assert pending["status"] == "running" and pending["cancelRequested"] is True
    assert "cancel requested" in cli_lab.cli("status", run_id).stdout
    cli_lab.finish()
    assert_cancelled_and_nothing_committed(cli_lab, run_id)
    assert metrics_emitted(cli_lab)["RunsCancelled"] == [1.0]
    steps = cli_lab.lab.list_keys(f"{STATE}runs/{run_id}/steps/")
    assert not [k for k in steps if k.endswith(".json")], "a step ran"
    followed = cli_lab.cli("status", run_id, "--follow", "--interval", "0")
    assert followed.exit_code == 1 and "cancelled" in followed.stdout


def test_cancel_mid_window(cli_lab: CliLab) -> None:
    run_id = cli_lab.start(EVENT)
    cli_lab.step(3)  # a few steps recorded, windows still open
    steps = [
        k for k in cli_lab.lab.list_keys(f"{STATE}runs/{run_id}/steps/") if k.endswith(".json")
    ]
    assert steps
    assert cli_lab.cli("cancel", run_id).exit_code == 0
    cli_lab.finish()
    assert_cancelled_and_nothing_committed(cli_lab, run_id)
    after = [
        k for k in cli_lab.lab.list_keys(f"{STATE}runs/{run_id}/steps/") if k.endswith(".json")
    ]
    assert after == steps, "a step ran after the cancel"


def test_cancel_while_a_step_walks_stops_it_at_the_step_boundary(cli_lab: CliLab) -> None:
    """The cancel lands while a step is reading pages: it stages and records nothing."""
    from exporter.api_client import AnalytiksClient  # noqa: PLC0415

    run_id = cli_lab.start(EVENT)
    cli_lab.service.queue_budget_ms = BIG  # a whole window per step
    original = AnalytiksClient.fetch_v3
    answers: list[Any] = []

    def fetch(self: Any, *args: Any, **kwargs: Any) -> Any:
        page = original(self, *args, **kwargs)
        if not answers:
            answers.append(cli_lab.cli("cancel", run_id))
        return page

    cli_lab.monkeypatch.setattr(AnalytiksClient, "fetch_v3", fetch)
    cli_lab.finish()
    assert answers[0].exit_code == 0 and "cancel requested" in answers[0].stdout
    assert_cancelled_and_nothing_committed(cli_lab, run_id)
    folder = cli_lab.lab.list_keys(f"{STATE}runs/{run_id}/")
    assert not [k for k in folder if k.endswith("s0.json") or "/staged/" in k], folder


def test_cancel_after_commit_began_is_refused(cli_lab: CliLab) -> None:
    run_id = cli_lab.start(EVENT)
    original = commit.commit_run
    answers: list[Any] = []

    def committing(*args: Any, **kwargs: Any) -> Any:
        answers.append(cli_lab.cli("cancel", run_id))  # typed while the commit runs
        return original(*args, **kwargs)

    cli_lab.monkeypatch.setattr(commit, "commit_run", committing)
    cli_lab.finish()
    (answer,) = answers
    assert_one_line_error(answer, 1, "cannot be cancelled: commit has begun", "--follow")
    assert cli_lab.statuses() == ["succeeded"]
    assert_table_matches(cli_lab.lab, BRAND, FIRST, LAST, "utc", run_id=run_id)
    later = cli_lab.cli("cancel", run_id)
    assert_one_line_error(later, 1, "already succeeded")


def test_a_cancel_just_after_the_lease_was_taken_still_wins(cli_lab: CliLab) -> None:
    """The race: the cancel lands after the finisher took its lease but before it decided."""
    run_id = cli_lab.start(EVENT)
    original = finish._take_lease
    answers: list[Any] = []

    def lease(*args: Any, **kwargs: Any) -> int | None:
        taken = original(*args, **kwargs)
        if taken is not None and not answers:
            answers.append(cli_lab.cli("cancel", run_id))
        return taken

    cli_lab.monkeypatch.setattr(finish, "_take_lease", lease)
    cli_lab.finish()
    assert answers[0].exit_code == 0, answers[0].stderr
    assert_cancelled_and_nothing_committed(cli_lab, run_id)


def test_cancelling_twice_is_harmless(cli_lab: CliLab) -> None:
    run_id = cli_lab.start(EVENT)
    first = as_json(cli_lab.cli("cancel", run_id, "--json"))
    assert first["cancel"] == "requested" and first["cancelRequested"] is True
    assert set(first) >= CONTRACT_FIELDS
    again = cli_lab.cli("cancel", run_id)
    assert again.exit_code == 0 and "already has a cancel request" in again.stdout
    cli_lab.finish()
    third = cli_lab.cli("cancel", run_id)
    assert third.exit_code == 0 and "has ended cancelled" in third.stdout
    assert_cancelled_and_nothing_committed(cli_lab, run_id)


# -- errors ------------------------------------------------------------------------------


def hooked(event: str, hook: Any) -> Any:
    """An `Aws` factory whose S3 client runs `hook` on `event` (a botocore event)."""
    from wifi_export_cli.deployment import Aws  # noqa: PLC0415

    class Hooked(Aws):
        def client(self, service: str) -> Any:
            client = super().client(service)
            if service == "s3":
                client.meta.events.register(event, hook, unique_id="test-hook")
            return client

    return Hooked


def _aws_env() -> dict[str, str]:
    import os  # noqa: PLC0415

    return {k: v for k, v in os.environ.items() if k.startswith("AWS_")}


def test_unknown_and_malformed_run_ids(cli_lab: CliLab) -> None:
    unknown = "20230101T000000000Z-b1234-00000000"
    for command in ("status", "cancel"):
        assert_one_line_error(
            cli_lab.cli(command, unknown, "--json"), 3, f"no run {unknown}", "wifi-export runs"
        )
    assert_one_line_error(cli_lab.cli("status", "not-a-run"), 2, "is not a run id")


def test_no_deployment_found(cli_lab: CliLab) -> None:
    result = cli_lab.cli("runs", environ=_aws_env())
    assert_one_line_error(result, 3, "no deployment found", "--stack-name", "BUCKET_NAME")


def test_the_deployment_from_stack_outputs(cli_lab: CliLab) -> None:
    lab = cli_lab.lab
    run_id = cli_lab.start(EVENT)
    cfn = boto3.client("cloudformation", region_name="us-east-1")
    outputs = {
        "BucketName": lab.bucket,
        "DataPrefix": "wifi/metrics",
        "StatePrefix": "wifi/_exports",
        "FunctionName": FUNCTION,
    }
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {name: {"Value": value} for name, value in outputs.items()},
    }
    cfn.create_stack(StackName="wifi-export", TemplateBody=json.dumps(template))
    only_aws = _aws_env()
    doc = as_json(
        cli_lab.cli("status", run_id, "--stack-name", "wifi-export", "--json", environ=only_aws)
    )
    assert doc["runId"] == run_id and doc["status"] == "running"
    started = cli_lab.cli("run", *RANGE, "--stack-name", "wifi-export", environ=only_aws)
    assert started.exit_code == 0, started.stderr
    assert_one_line_error(
        cli_lab.cli("runs", "--stack-name", "nope", environ=only_aws),
        3,
        "stack 'nope' does not exist",
    )
    cfn.create_stack(
        StackName="old",
        TemplateBody=json.dumps({"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}),
    )
    assert_one_line_error(
        cli_lab.cli("runs", "--stack-name", "old", environ=only_aws),
        3,
        "has no output BucketName, DataPrefix, StatePrefix, FunctionName",
        "make deploy",
    )


def test_aws_errors_are_one_line_with_a_hint(cli_lab: CliLab) -> None:
    environ = {**_aws_env(), "BUCKET_NAME": "no-such-bucket-here"}
    result = cli_lab.cli("runs", environ=environ)
    assert_one_line_error(result, 3, "AWS ListObjectsV2 failed: NoSuchBucket", "BUCKET_NAME")
    status = cli_lab.cli("status", "20230101T000000000Z-b1234-00000000", environ=environ)
    assert status.exit_code == 3 and "NoSuchBucket" in status.stderr

    def unreachable(**_: Any) -> None:
        from botocore.exceptions import EndpointConnectionError  # noqa: PLC0415

        raise EndpointConnectionError(endpoint_url="https://s3.us-east-1.amazonaws.com/")

    aws = hooked("provide-client-params.s3.ListObjectsV2", unreachable)
    assert_one_line_error(cli_lab.cli("runs", aws=aws), 3, "cannot reach AWS", "AWS_ENDPOINT_URL")

    def denied(**_: Any) -> None:
        from botocore.exceptions import ClientError  # noqa: PLC0415

        error = {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}
        raise ClientError(error, "ListObjectsV2")  # type: ignore[arg-type]

    aws = hooked("provide-client-params.s3.ListObjectsV2", denied)
    assert_one_line_error(
        cli_lab.cli("runs", aws=aws), 3, "AccessDenied", "lack a permission", "runbook"
    )


# -- what the function tells CloudWatch ----------------------------------------------------


def test_a_healthy_run_logs_no_warning_and_emits_the_operating_metrics(cli_lab: CliLab) -> None:
    """Honest logs: planned checkpoints are INFO; and the metrics the dashboard draws."""
    result = cli_lab.cli("run", *RANGE, "--follow", "--interval", "0", "--json")
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in cli_lab.log.getvalue().splitlines() if line]
    logs = [r for r in records if "level" in r]
    assert [r for r in logs if r["level"] not in ("INFO", "DEBUG")] == []
    planned = [r for r in logs if r["message"].startswith("time budget reached")]
    # Every invocation here stops after one page: a planned checkpoint, either by the
    # read-ahead's refused request (logged) or by the walk's own clock (the run's
    # delivery marker at the start of each invocation can tip it to the latter).
    steps = [r for r in logs if r["message"] == "step recorded"]
    assert planned or (steps and all(r["pages"] == 1 for r in steps)), steps
    emitted = metrics_emitted(cli_lab)
    for name in (
        "RunsStarted",
        "RunsSucceeded",
        "RowsExported",
        "BytesExported",
        "RunDuration",
        "ApiCalls",
        "ApiRetries",
        "ApiThrottles",
        "ApiLatency",
        "Hops",
        *LAKE_METRICS,
    ):
        assert name in emitted, f"{name} not emitted ({sorted(emitted)})"
    assert sum(emitted["RowsExported"]) == rows_expected(cli_lab)
    assert sum(emitted["Hops"]) == 4  # 3 pages a window: two hand-overs each


LAKE_METRICS = {"HoursSinceLastCompleteDay", "MissingLocationDays"}


def metrics_emitted(x: CliLab) -> dict[str, list[float]]:
    """The EMF metrics in what the function printed (its CloudWatch log)."""
    emitted: dict[str, list[float]] = {}
    for line in x.log.getvalue().splitlines():
        record = json.loads(line) if line.startswith("{") else {}
        if "_aws" not in record:
            continue
        (directive,) = record["_aws"]["CloudWatchMetrics"]
        # Few dimensions: one, but the lake's metrics also per brand and basis.
        lake = {m["Name"] for m in directive["Metrics"]} <= LAKE_METRICS
        if directive["Dimensions"] != [["service"]]:
            assert lake and directive["Dimensions"] == [["service", "brand_id", "time_basis"]]
            continue
        for metric in directive["Metrics"]:
            value = record[metric["Name"]]
            emitted.setdefault(metric["Name"], []).extend(
                value if isinstance(value, list) else [value]
            )
    return emitted


def test_following_rereads_only_the_windows_that_moved(cli_lab: CliLab) -> None:
    from datetime import UTC, datetime  # noqa: PLC0415

    from exporter.aws import S3Store  # noqa: PLC0415
    from wifi_export_cli.deployment import Deployment  # noqa: PLC0415
    from wifi_export_cli.runs import Runs  # noqa: PLC0415

    lab = cli_lab.lab
    run_id = cli_lab.start(EVENT)
    cli_lab.step(2)  # both windows have progress
    reads: list[str] = []

    class Counting(S3Store):
        def get(self, key: str) -> bytes | None:
            reads.append(key)
            return super().get(key)

    deployment = Deployment(lab.bucket, "wifi/metrics", "wifi/_exports", None, "test")
    runs = Runs(deployment, Counting(lab.bucket, client=lab.s3), lambda: datetime.now(UTC))
    first = runs.status(run_id)
    assert len([k for k in reads if "/progress/" in k]) == 2
    reads.clear()
    assert runs.status(run_id).rows == first.rows
    assert [k for k in reads if "/progress/" in k] == []  # nothing moved: no re-read
    cli_lab.step(1)
    reads.clear()
    assert runs.status(run_id).rows > first.rows
    assert len([k for k in reads if "/progress/" in k]) == 1  # the window that moved
