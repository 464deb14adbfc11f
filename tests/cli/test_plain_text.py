"""Operators' terminals get plain text (issue 22): every CLI command and every
notification fed a hostile payload shows it as text, without its escape
sequences and control characters, and never as Rich markup; malformed stored
numbers do not crash `runs` (docs/reliability.md, "Hardening II")."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from exporter.run.keys import Layout
from local.chaos import Reply, Request, ScriptedApi, record
from tests.cli.conftest import CliLab
from tests.integration.conftest import Lab

BRAND = 1234
DAY = "2023-06-01"
EVENT = {"brandId": BRAND, "startDate": DAY, "endDate": DAY}
# Clear the screen, an OSC 8 link to another site, Rich markup (and a closing tag
# that crashes Rich's parser), an 8-bit CSI, a bell, a right-to-left override.
HOSTILE = (
    "\x1b[2J\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\"
    "[bold red]x[/bold red][/]\x9b31m\x07\u202e!"
)
SHOWN = "click[bold red]x[/bold red][/]!"  # what is left: text, shown as written
FORBIDDEN = ("\x1b", "\x9b", "\x9d", "\x07", "\u202e", "evil.example")


def assert_plain(text: str, *, shown: bool = True) -> None:
    for bad in FORBIDDEN:
        assert bad not in text, (bad, text)
    if shown:
        assert SHOWN in text, text


def state_key(x: CliLab, *parts: str) -> str:
    return "/".join([x.lab.env["STATE_PREFIX"], *parts])


def put(lab: Lab, key: str, doc: Any) -> None:
    lab.s3.put_object(Bucket=lab.bucket, Key=key, Body=json.dumps(doc).encode())


def get(lab: Lab, key: str) -> Any:
    return json.loads(lab.s3.get_object(Bucket=lab.bucket, Key=key)["Body"].read())


def hostile_status(state: str) -> dict[str, Any]:
    return {
        "state": state,
        "startDate": "[/]",
        "endDate": HOSTILE,
        "timeBasis": HOSTILE,
        "trigger": HOSTILE,
        "startedAt": HOSTILE,
        "windowsDone": 0,
        "windowsTotal": 1,
        "error": HOSTILE,
        "refused": [HOSTILE, 7, {"not": "an id"}],
        "selection": {"kind": HOSTILE, HOSTILE: 1},
        "lastCheckpoint": {"window": HOSTILE, "step": 0, "at": HOSTILE},
        "durationSeconds": 12.5,
    }


def history_key(x: CliLab, run_id: str) -> str:
    return Layout(x.lab.env["STATE_PREFIX"], x.lab.env["DATA_PREFIX"]).history(run_id)


def test_status_runs_and_cancel_show_hostile_state_as_plain_text(cli_lab: CliLab) -> None:
    lab = cli_lab.lab
    run_id = cli_lab.start(EVENT)
    put(lab, state_key(cli_lab, "runs", run_id, "status.json"), hostile_status("running"))
    put(lab, state_key(cli_lab, "runs", run_id, "failed.json"), {"error": HOSTILE})
    put(
        lab,
        state_key(cli_lab, "runs", run_id, "cancel.json"),
        {"cancel": True, "requestedAt": HOSTILE},
    )
    status = cli_lab.cli("status", run_id)
    assert status.exit_code == 0, status.output
    assert_plain(status.output)
    again = cli_lab.cli("cancel", run_id)  # already requested: quotes requestedAt
    assert again.exit_code == 0, again.output
    assert_plain(again.output)
    put(
        lab, state_key(cli_lab, "runs", run_id, "cancel.json"), {"cancel": False, "reason": HOSTILE}
    )
    refused = cli_lab.cli("cancel", run_id)  # the finisher's reason, on stderr
    assert refused.exit_code == 1, refused.output
    assert_plain(refused.output)
    # Final in the history: `runs` and `status --follow` read it from there.
    put(lab, history_key(cli_lab, run_id), hostile_status("failed"))
    listed = cli_lab.cli("runs")
    assert listed.exit_code == 0, listed.output
    assert_plain(listed.output, shown=False)  # the table shows the range and trigger
    assert "[/]" in listed.output
    followed = cli_lab.cli("status", run_id, "--follow", "--interval", "0")
    assert followed.exit_code == 1, followed.output
    assert_plain(followed.output)


def test_one_malformed_history_entry_is_skipped_and_counted(cli_lab: CliLab) -> None:
    run_id = cli_lab.start(EVENT)
    cli_lab.finish()
    bad_id = run_id[:-8] + "0badc0de"
    good = get(cli_lab.lab, history_key(cli_lab, run_id))
    put(cli_lab.lab, history_key(cli_lab, bad_id), {**good, "windowsDone": "two", "runId": bad_id})
    listed = cli_lab.cli("runs")
    assert listed.exit_code == 0, listed.output
    assert run_id in listed.output and bad_id not in listed.output
    assert "1 malformed history entry skipped" in listed.output
    as_json = cli_lab.cli("runs", "--json")
    assert [r["runId"] for r in json.loads(as_json.stdout)] == [run_id]


def test_run_follow_shows_a_hostile_end_as_plain_text(cli_lab: CliLab) -> None:
    lab = cli_lab.lab

    def tick(_seconds: float) -> None:
        cli_lab.service.deliver_one()
        for key in lab.list_keys(state_key(cli_lab, "runs") + "/"):
            if key.endswith("/plan.json"):
                put(lab, history_key(cli_lab, key.split("/")[-2]), hostile_status("failed"))

    result = cli_lab.cli(
        "run",
        "--brand",
        str(BRAND),
        "--from",
        DAY,
        "--to",
        DAY,
        "--follow",
        "--interval",
        "0",
        sleep=tick,
    )
    assert result.exit_code == 1, result.output
    assert_plain(result.output)


def test_notifications_and_refused_ids_are_plain_text(
    cli_lab: CliLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A v2 answer naming hostile ids it was never asked for, and an unknown field
    with a hostile name: the run succeeds, refuses only what it asked for, and
    nothing hostile reaches the notification, S3 or `status`."""
    lab = cli_lab.lab
    monkeypatch.setattr("local.chaos.V3_PATH", "/wifi/json/v2")

    def v2(_request: Request) -> Reply:
        found = {**record(1001, hours=[8]), f"{HOSTILE}field": "text"}
        failures = {"description": HOSTILE, "locations": [1002, HOSTILE, "[/]", 5]}
        return Reply.json({"successes": [found], "failures": failures})

    with ScriptedApi(v2) as api:
        lab.configure(API_URL=api.url, TOKEN_URL=api.token_url)
        event = {**EVENT, "locations": [1001, 1002], "skipUnauthorized": True}
        run_id = cli_lab.start(event)
        cli_lab.finish()
    (note,) = lab.notifications()
    assert note["body"]["status"] == "succeeded", note
    assert note["body"]["refused"] == {"count": 1, "ids": [1002]}
    message = json.dumps(note, ensure_ascii=False)
    for bad in FORBIDDEN:
        assert bad not in message, (bad, message)
    status = get(lab, state_key(cli_lab, "runs", run_id, "status.json"))
    assert status["refused"] == [1002]
    shown = cli_lab.cli("status", run_id)
    assert shown.exit_code == 0, shown.output
    assert_plain(shown.output, shown=False)
    assert "1002" in shown.output


def test_no_output_path_bypasses_the_plain_console() -> None:
    """Every way the CLI writes goes through the central one: the console is a
    `PlainConsole`, a `Text` is made only of `printable` text, and what is echoed
    is `printable` or JSON."""
    package = Path(__file__).resolve().parents[2] / "cli" / "wifi_export_cli"
    source = "\n".join(p.read_text() for p in sorted(package.glob("*.py")))
    assert not re.search(r"(?<![.\w])Console\(", source)
    assert re.findall(r"\bText\(([^)]{0,20})", source) == ["printable(str(value"]
    assert not re.search(r"(?<![.\w])print\(", source)
    for call in re.findall(r"click\.echo\((.{0,30})", source):
        assert call.startswith(
            ('f"wifi-export: {printable(', 'f"  hint: {printable(', "json.dumps(")
        ), call
    assert "markup=True" not in source
