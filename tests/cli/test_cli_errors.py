"""What a newcomer types wrong, and what `wifi-export` answers: one line naming the flag, a
hint that fits, the right exit code (issue 25's list, one test per case)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.cli.conftest import CliLab
from tests.cli.test_cli import RANGE, as_json, assert_one_line_error
from wifi_export_cli.event import DeploymentTooOld, EventRefused, in_flags, refusal
from wifi_export_cli.main import Services, cli

ROOT = Path(__file__).resolve().parents[2]
ZONE = "11111111-1111-1111-1111-111111111111"
NOWHERE: dict[str, str] = {}  # no deployment, no AWS configuration at all


def bare(*args: str) -> Any:
    """`wifi-export ARGS` with nothing configured: no deployment can be found."""
    return CliRunner().invoke(cli, list(args), obj=Services(environ=NOWHERE))


def assert_not_upgrade(result: Any) -> None:
    assert "upgrade" not in result.stderr and "make deploy" not in result.stderr, result.stderr


# -- flags are checked before any deployment is looked for ------------------------------


@pytest.mark.parametrize(
    ("flags", "fragments"),
    [
        (["--from", "2023-13-01", "--to", "2023-06-01"], ["--from: '2023-13-01' is not a valid"]),
        (["--from", "2023-06-10", "--to", "2023-06-01"], ["--to: 2023-06-01 is before --from"]),
        (["--from", "1999-06-01", "--to", "1999-06-02"], ["--from: 1999-06-01 is outside"]),
        (
            [*RANGE[2:], "--zero-fill"],
            ["--zero-fill: only applies to a selection (--locations, --reference-numbers"],
        ),
        ([*RANGE[2:], "--skip-unauthorized"], ["--skip-unauthorized: only applies"]),
        ([*RANGE[2:], "--zone", "not-a-uuid"], ["--zone: expected a zone UUID", "not-a-uuid"]),
        ([*RANGE[2:], "--locations", "1", "--zone", ZONE], ["--locations/--zone: give one"]),
        (
            [*RANGE[2:], "--locations", "1", "--zero-fill", "--skip-unauthorized"],
            ["--skip-unauthorized/--zero-fill: choose one"],
        ),
        ([*RANGE[2:], "--reference-numbers", "A1,A1"], ["--reference-numbers (item 2)", "twice"]),
        ([*RANGE[2:], "--locations", "0"], ["--locations (item 1): expected a positive"]),
    ],
)
def test_a_bad_flag_is_named_before_any_deployment_is_looked_for(
    flags: list[str], fragments: list[str]
) -> None:
    result = bare("run", "--brand", "1234", *flags)
    assert_one_line_error(result, 2, *fragments, "hint: fix --")
    assert "no deployment found" not in result.stderr
    assert_not_upgrade(result)
    for field in ("startDate", "endDate", "zeroFill", "zoneId", "referenceNumbers"):
        assert field not in result.stderr, result.stderr


def test_a_selection_with_several_brands_names_the_brand_flag() -> None:
    result = bare("run", "--brand", "1", "--brand", "2", *RANGE[2:], "--locations", "1")
    assert_one_line_error(result, 2, "--brand: a selection (--locations) exports one brand")


def test_a_malformed_run_id_is_a_usage_error_without_a_deployment() -> None:
    for command in ("status", "cancel"):
        assert_one_line_error(bare(command, "not-a-run"), 2, "is not a run id")


def test_good_flags_without_a_deployment_say_so() -> None:
    assert_one_line_error(bare("run", *RANGE), 3, "no deployment found", "--stack-name")


# -- what the deployment refuses: typed, and the hint that fits -----------------------------


def test_refusals_are_typed_by_what_the_deployment_said() -> None:
    old = refusal({"error": "InvalidEvent", "message": "zoneId, zeroFill: unknown field(s); ..."})
    assert isinstance(old, DeploymentTooOld) and old.flags == ("--zone", "--zero-fill")
    limit = refusal({"error": "InvalidEvent", "message": "endDate: the range has 40 days, ..."})
    assert type(limit) is EventRefused and limit.flags == ("--to",)
    assert in_flags("startDate/endDate: mixed time bases")[0] == ("--from", "--to")
    assert in_flags("no field here: at all") == ((), "no field here: at all")


def test_a_deployment_limit_is_refused_naming_the_flag_without_upgrade(cli_lab: CliLab) -> None:
    cli_lab.lab.configure(MAX_RANGE_DAYS="3")
    result = cli_lab.cli("run", *RANGE)
    assert_one_line_error(
        result, 3, "the function refused the event: --to: the range has 7 days", "fix --to"
    )
    assert_not_upgrade(result)
    records = [json.loads(x) for x in cli_lab.log.getvalue().splitlines() if x.startswith("{")]
    refused = [r for r in records if r.get("message") == "invalid event"]
    assert [r["level"] for r in refused] == ["WARNING"]  # a caller's mistake, not an ERROR


def test_only_an_unknown_field_answer_suggests_an_upgrade(cli_lab: CliLab) -> None:
    def old_deployment(_aws: Any) -> Any:
        return lambda _f, _e: {"error": "InvalidEvent", "message": "zoneId: unknown field(s)"}

    result = cli_lab.cli("run", *RANGE, "--zone", ZONE, invoker=old_deployment)
    assert_one_line_error(result, 3, "does not know --zone", "upgrade it (`make deploy`)")


# -- runs the API refuses: `run` waits for the first answer and says so ---------------------


def test_run_of_an_unknown_brand_exits_1_and_shows_why(cli_lab: CliLab) -> None:
    result = cli_lab.cli("run", "--brand", "4242", *RANGE[2:])
    assert result.exit_code == 1, result.stdout + result.stderr
    assert "started run" in result.stdout and "it has failed" in result.stdout
    text = " ".join(result.stdout.split())
    assert "brand 4242 is unknown to the API or not authorized" in text
    (doc,) = as_json(cli_lab.cli("run", "--brand", "4242", *RANGE[2:], "--json"))
    assert doc["status"] == "failed"


@pytest.mark.parametrize(
    "selection",
    [["--reference-numbers", "NO-SUCH-REF"], ["--zone", ZONE]],
    ids=["reference", "zone"],
)
def test_a_mistyped_id_reads_as_unknown_without_a_pointless_skip(
    cli_lab: CliLab, selection: list[str]
) -> None:
    result = cli_lab.cli("run", *RANGE, *selection)
    assert result.exit_code == 1, result.stdout + result.stderr
    text = " ".join(result.stdout.split())
    assert "unknown to the API or not authorized" in text and "check the ids" in text
    assert "skipUnauthorized" not in text and "skip-unauthorized" not in text


# -- cancel, runs --json ------------------------------------------------------------------


def test_a_second_cancel_says_the_run_still_runs(cli_lab: CliLab) -> None:
    run_id = cli_lab.start({"brandId": 1234, "startDate": "2023-06-01", "endDate": "2023-06-07"})
    assert cli_lab.cli("cancel", run_id).exit_code == 0
    again = cli_lab.cli("cancel", run_id)
    assert again.exit_code == 0
    assert "already has a cancel request" in again.stdout and "still running" in again.stdout
    assert "is already cancelled" not in again.stdout
    cli_lab.finish()
    ended = cli_lab.cli("cancel", run_id)
    assert ended.exit_code == 0 and "has ended cancelled" in ended.stdout


def test_runs_json_gives_the_manifest_of_succeeded_runs(cli_lab: CliLab) -> None:
    run_id = cli_lab.start({"brandId": 1234, "startDate": "2023-06-01", "endDate": "2023-06-02"})
    cli_lab.finish()
    (listed,) = as_json(cli_lab.cli("runs", "--json"))
    status = as_json(cli_lab.cli("status", run_id, "--json"))
    assert listed["manifest"] == status["manifest"]
    assert listed["manifest"].endswith(f"{run_id}.manifest.json")


# -- AWS_REGION ---------------------------------------------------------------------------


def test_aws_region_is_honoured(cli_lab: CliLab) -> None:
    regions: list[str | None] = []

    class Recording:
        def __init__(self, region: str | None, profile: str | None) -> None:
            regions.append(region)
            raise SystemExit(0)

    env = {k: v for k, v in os.environ.items() if k != "AWS_DEFAULT_REGION"}
    cli_lab.cli("runs", environ={**env, "AWS_REGION": "eu-west-1"}, aws=Recording)
    cli_lab.cli("runs", "--region", "us-east-1", environ={**env, "AWS_REGION": "x"}, aws=Recording)
    assert regions == ["eu-west-1", "us-east-1"]
    cli_lab.monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    cli_lab.monkeypatch.setenv("AWS_REGION", "us-east-1")
    listed = cli_lab.cli(
        "runs", "--json", environ={**env, **cli_lab.lab.env, "AWS_REGION": "us-east-1"}
    )
    assert listed.exit_code == 0, listed.stderr


# -- make invoke ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "line"),
    [
        ({}, "make invoke: no AWS region configured"),
        ({"AWS_REGION": "eu-west-1"}, "make invoke: no AWS credentials found"),
    ],
    ids=["no-region", "no-credentials"],
)
def test_make_invoke_without_aws_prints_one_line(
    tmp_path: Path, extra: dict[str, str], line: str
) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),  # no ~/.aws
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        **extra,
    }
    proc = subprocess.run(
        ["make", "-s", "invoke", "BRAND=1234", "START=2023-06-01", "END=2023-06-02"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    assert line in proc.stderr, proc.stderr


def test_run_waits_for_the_first_answer_a_bounded_time(cli_lab: CliLab) -> None:
    """Nobody takes the queue's messages: `run` gives up waiting, the run goes on (exit 0)."""
    slept: list[float] = []
    result = cli_lab.cli("run", *RANGE, "--interval", "0", sleep=slept.append)
    assert result.exit_code == 0, result.stderr
    assert "started run" in result.stdout and "it has" not in result.stdout
    assert min(slept) >= 0.2 and 110 <= sum(slept) <= 121, slept  # ~2 minutes, never a spin
