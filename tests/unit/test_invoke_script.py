"""`make invoke` builds the on-demand event, selectors included, that the function parses."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exporter.config import Settings
from exporter.events import classify, parse_on_demand, parse_scheduled
from scripts.invoke import build_event, main, parser

BASE = ["--brand", "1234", "--start", "2023-06-01", "--end", "2023-06-30"]
SETTINGS = Settings(secret_id="s", bucket_name="b", topic_arn="t", queue_url="q")
NOW = datetime(2023, 7, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("flags", "kind", "ids", "variant"),
    [
        (["--locations", "1,2,3"], "locations", (1, 2, 3), "v1"),
        (
            ["--references", "US0658,FR2561", "--skip-unauthorized"],
            "referenceNumbers",
            ("US0658", "FR2561"),
            "v2",
        ),
        (
            ["--zone", "11111111-1111-1111-1111-111111111111", "--zero-fill"],
            "zoneId",
            ("11111111-1111-1111-1111-111111111111",),
            "v4",
        ),
    ],
)
def test_selector_flags_become_the_event_the_function_accepts(
    flags: list[str], kind: str, ids: tuple[object, ...], variant: str
) -> None:
    event = build_event(parser().parse_args(BASE + flags))
    request = parse_on_demand(event, SETTINGS, NOW, "req")
    assert request.selection is not None
    assert (request.selection.kind, request.selection.ids) == (kind, ids)
    assert request.selection.variant == variant


def test_without_selector_it_is_a_whole_brand_run() -> None:
    event = build_event(parser().parse_args(BASE))
    assert event == {"brandId": 1234, "startDate": "2023-06-01", "endDate": "2023-06-30"}


def test_two_selectors_are_refused_by_the_script() -> None:
    with pytest.raises(SystemExit):
        parser().parse_args([*BASE, "--locations", "1", "--zone", "z"])


EVENTS = Path(__file__).resolve().parents[2] / "events"


@pytest.mark.parametrize("path", sorted(EVENTS.glob("*.json")), ids=lambda p: p.name)
def test_every_sample_event_is_accepted_today(path: Path) -> None:
    """`make invoke EVENT=events/<file>` on any day: the samples never go stale."""
    event = json.loads(path.read_text())
    now = datetime.now(UTC)
    settings = Settings(secret_id="s", bucket_name="b", topic_arn="t", queue_url="q")
    if classify(event) == "scheduled":
        request = parse_scheduled(event, settings, now, "req")
        assert request.trigger == "scheduled" and request.request_key == "req"
    else:
        assert parse_on_demand(event, settings, now, "req").brand_ids


def test_an_event_file_is_sent_as_it_is() -> None:
    args = parser().parse_args(["--event", str(EVENTS / "scheduled.json"), "--function", "f"])
    assert args.function == "f" and json.loads(args.event.read())["source"] == "aws.events"
    with pytest.raises(SystemExit):
        main([])  # neither an event nor --brand/--start/--end
