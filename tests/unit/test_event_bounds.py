"""Forged scheduled events and oversized fan-out are refused, naming the field
(docs/contracts.md, "Scheduled events" and "Limits of one event")."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from exporter.config import Settings, load_settings
from exporter.errors import ConfigError, InvalidEvent
from exporter.events import (
    SCHEDULED_TIME_AHEAD,
    SCHEDULED_TIME_BEHIND,
    classify,
    parse_on_demand,
    parse_scheduled,
)

NOW = datetime(2024, 1, 15, 3, 30, 7, tzinfo=UTC)
RULE_EVENT_ID = "89d1a02d-5ec7-412e-82f5-13505f849b41"
SAMPLE = json.loads((Path(__file__).resolve().parents[2] / "events/scheduled.json").read_text())


def rule_event(**changes: Any) -> dict[str, Any]:
    """The sample EventBridge rule event, fired at NOW (seconds ago)."""
    # A rule's delivery carries its id and time; the sample file leaves both out so
    # that it can be replayed on any day (events/README.md).
    event = {**SAMPLE, "id": RULE_EVENT_ID, "time": "2024-01-15T03:30:00Z"}
    for field, value in changes.items():
        name = field.replace("_", "-")
        if value is None:
            event.pop(name, None)
        else:
            event[name] = value
    return event


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def scheduled(settings: Settings, event: dict[str, Any], now: datetime = NOW) -> Any:
    return parse_scheduled(event, settings, now, "request-1")


# -- scheduled events --------------------------------------------------------------------


def test_an_eventbridge_rule_event_is_accepted_with_the_real_clock(settings: Settings) -> None:
    request = scheduled(settings, rule_event())
    assert (request.first_day, request.last_day) == (date(2024, 1, 14), date(2024, 1, 14))
    assert request.started_at == NOW  # the run ids' timestamp: the clock, not the event
    assert request.request_key == RULE_EVENT_ID


def test_a_scheduler_event_needs_no_detail_type_nor_time(settings: Settings) -> None:
    request = scheduled(settings, {"source": "aws.scheduler"})
    assert request.started_at == NOW and request.request_key == "request-1"
    assert request.last_day == date(2024, 1, 14)
    with_time = {"source": "aws.scheduler", "detail-type": "Scheduled Event", "time": iso(NOW)}
    assert scheduled(settings, with_time).last_day == date(2024, 1, 14)


def test_the_event_time_chooses_the_days_within_bounds(settings: Settings) -> None:
    # Fired a minute before midnight, delivered (a retry) 20 minutes after it: the
    # run exports the days of its schedule, and its run id takes the clock.
    now = datetime(2024, 1, 16, 0, 19, tzinfo=UTC)
    request = scheduled(settings, rule_event(time="2024-01-15T23:59:00Z"), now)
    assert (request.first_day, request.last_day) == (date(2024, 1, 14), date(2024, 1, 14))
    assert request.started_at == now


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"source": None}, "source"),
        ({"source": "my.app"}, "source"),
        ({"source": "aws.events", "detail_type": "Object Created"}, "detail-type"),
        ({"source": "aws.events", "detail_type": None}, "detail-type"),
        ({"source": "aws.scheduler", "detail_type": "EC2 Instance State-change"}, "detail-type"),
        ({"source": ["aws.events"]}, "source"),
        ({"time": 1705289400}, "time"),
        ({"time": "yesterday"}, "time"),
        ({"id": ""}, "id"),
        ({"id": 12345}, "id"),
        ({"id": "x" * 257}, "id"),
    ],
)
def test_a_forged_or_malformed_scheduled_event_is_refused(
    settings: Settings, changes: dict[str, Any], field: str
) -> None:
    event = rule_event(**changes)
    assert classify(event) == "scheduled" or field == "source"
    with pytest.raises(InvalidEvent, match=rf"^{field}: "):
        scheduled(settings, event)


def test_a_detail_type_alone_does_not_make_an_event_scheduled(settings: Settings) -> None:
    event = {"detail-type": "Scheduled Event", "time": iso(NOW)}
    assert classify(event) == "scheduled"  # it claims to be ...
    with pytest.raises(InvalidEvent, match=r"^source: .*aws\.events.*aws\.scheduler.*got none"):
        scheduled(settings, event)  # ... and is refused


def test_the_time_bounds_are_exact(settings: Settings) -> None:
    ahead, behind = NOW + SCHEDULED_TIME_AHEAD, NOW - SCHEDULED_TIME_BEHIND
    assert scheduled(settings, rule_event(time=iso(ahead))).started_at == NOW
    assert scheduled(settings, rule_event(time=iso(behind))).started_at == NOW
    with pytest.raises(InvalidEvent, match=r"^time: .* ahead of the clock .* by more than 5 min"):
        scheduled(settings, rule_event(time=iso(ahead + timedelta(seconds=1))))
    with pytest.raises(InvalidEvent, match=r"^time: .* behind the clock .* more than 6 h 5 min"):
        scheduled(settings, rule_event(time=iso(behind - timedelta(seconds=1))))


@pytest.mark.parametrize(
    "time",
    [
        "2099-01-01T00:00:00Z",
        "2024-01-16T03:30:00Z",
        "2024-01-15T03:36:00+00:00",
        "2023-07-01T03:30:00",
    ],
)
def test_a_time_far_from_the_clock_is_refused(settings: Settings, time: str) -> None:
    with pytest.raises(InvalidEvent, match=r"^time: "):
        scheduled(settings, rule_event(time=time))


def test_a_time_with_an_offset_is_compared_in_utc(settings: Settings) -> None:
    request = scheduled(settings, rule_event(time="2024-01-15T05:30:00+02:00"))
    assert request.last_day == date(2024, 1, 14)


# -- fan-out bounds ----------------------------------------------------------------------


def on_demand(settings: Settings, **event: Any) -> Any:
    return parse_on_demand(event, settings, NOW, "request-2")


def test_brand_ids_are_capped_before_they_are_read(settings: Settings) -> None:
    cap = settings.max_brands_per_event
    assert cap == 100
    ok = on_demand(settings, brandIds=list(range(1, cap + 1)), startDate="2023-06-01",
                   endDate="2023-06-01")  # fmt: skip
    assert len(ok.brand_ids) == cap
    # One too many, even of garbage: refused for the count, before any item is looked at.
    with pytest.raises(InvalidEvent, match=r"^brandIds: 101 brands, more than .* 100 .*MAX_BRANDS"):
        on_demand(settings, brandIds=["x"] * (cap + 1), startDate="2023-06-01",
                  endDate="2023-06-01")  # fmt: skip
    with pytest.raises(InvalidEvent, match=r"^brandIds: 1,000,000 brands"):
        on_demand(settings, brandIds=[1] * 1_000_000, startDate="2023-06-01", endDate="2023-06-01")


def test_windows_per_event_are_capped(settings: Settings) -> None:
    # 5-day windows: 50 days = 10 windows a brand.
    narrow = Settings(**{**_fields(settings), "max_windows_per_event": 30})
    three = on_demand(narrow, brandIds=[1, 2, 3], startDate="2023-06-01", endDate="2023-07-20")
    assert len(three.brand_ids) == 3
    with pytest.raises(InvalidEvent, match=r"^brandIds: .* 40 windows \(4 brand\(s\) x 10 windows"):
        on_demand(narrow, brandIds=[1, 2, 3, 4], startDate="2023-06-01", endDate="2023-07-20")
    with pytest.raises(InvalidEvent, match=r"^endDate: .* 31 windows .*MAX_WINDOWS_PER_EVENT"):
        on_demand(narrow, brandId=1, startDate="2023-06-01", endDate="2023-11-01")


def test_the_default_window_cap_allows_a_decade_for_13_brands_not_14(settings: Settings) -> None:
    last = date(2024, 1, 14)
    first = last - timedelta(days=settings.max_range_days - 1)  # 732 windows a brand
    span = {"startDate": str(first), "endDate": str(last)}
    assert len(on_demand(settings, brandIds=list(range(1, 14)), **span).brand_ids) == 13
    with pytest.raises(InvalidEvent, match=r"^brandIds: .* 10,248 windows"):
        on_demand(settings, brandIds=list(range(1, 15)), **span)


def test_a_selection_counts_its_parts(settings: Settings) -> None:
    # 2,000 locations are 2 parts (of 20 batches of 50 ids): 15 windows of days x 2 = 30.
    narrow = Settings(**{**_fields(settings), "max_windows_per_event": 30})
    ids = list(range(1, 2_001))
    fits = on_demand(narrow, brandId=1, locations=ids, startDate="2023-01-01",
                     endDate="2023-03-16")  # fmt: skip
    assert fits.selection is not None and fits.selection.parts == 2
    with pytest.raises(InvalidEvent, match=r"^locations: .* 32 windows .* x 2 parts of the"):
        on_demand(narrow, brandId=1, locations=ids, startDate="2023-01-01",
                  endDate="2023-03-17")  # fmt: skip


# -- configuration ----------------------------------------------------------------------

REQUIRED = {
    "SECRET_ID": "wifi-export/analytiks",
    "BUCKET_NAME": "bucket",
    "TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:runs",
    "QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/q",
}


def _fields(settings: Settings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in Settings.__slots__}


def test_fan_out_settings_and_their_defaults() -> None:
    settings = load_settings(REQUIRED)
    assert (settings.max_brands_per_event, settings.max_windows_per_event) == (100, 10_000)
    tuned = load_settings({**REQUIRED, "MAX_BRANDS_PER_EVENT": "5", "MAX_WINDOWS_PER_EVENT": "250"})
    assert (tuned.max_brands_per_event, tuned.max_windows_per_event) == (5, 250)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MAX_HOPS", "1001"),
        ("MAX_HOPS", "0"),
        ("MAX_BRANDS_PER_EVENT", "0"),
        ("MAX_BRANDS_PER_EVENT", "10001"),
        ("MAX_WINDOWS_PER_EVENT", "0"),
        ("MAX_WINDOWS_PER_EVENT", "100001"),
        ("MAX_WINDOWS_PER_EVENT", "many"),
    ],
)
def test_fan_out_settings_are_bounded(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{variable}: "):
        load_settings({**REQUIRED, variable: value})


def test_max_hops_has_a_maximum_of_1000() -> None:
    assert load_settings({**REQUIRED, "MAX_HOPS": "1000"}).max_hops == 1000
    with pytest.raises(ConfigError, match=r"^MAX_HOPS: must be between 1 and 1000, got 100000"):
        load_settings({**REQUIRED, "MAX_HOPS": "100000"})


def test_the_schedule_is_the_deployment_s_own_and_not_bounded_per_event() -> None:
    """The bounds are on what an event asks for; BRAND_IDS is the operator's (a nightly
    run over hundreds of brands is a goal, issue 14)."""
    many = ",".join(str(n) for n in range(1, 301))
    configured = load_settings({**REQUIRED, "BRAND_IDS": many})
    assert len(configured.brand_ids) == 300
    request = parse_scheduled({"source": "aws.scheduler"}, configured, NOW, "request-3")
    assert len(request.brand_ids) == 300


def test_the_template_sets_the_documented_defaults() -> None:
    template = (Path(__file__).resolve().parents[2] / "template.yaml").read_text()
    defaults = Settings("s", "b", "t", "q")
    for variable, value in (
        ("MAX_BRANDS_PER_EVENT", defaults.max_brands_per_event),
        ("MAX_WINDOWS_PER_EVENT", defaults.max_windows_per_event),
    ):
        assert re.findall(rf'^\s+{variable}: "(\d+)"$', template, re.MULTILINE) == [str(value)]
