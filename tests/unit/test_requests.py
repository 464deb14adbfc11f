from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from exporter.config import Settings
from exporter.errors import InvalidEvent
from exporter.requests import classify, parse_on_demand, parse_scheduled

NOW = datetime(2024, 1, 15, 10, 0, tzinfo=UTC)
EVENTS = Path(__file__).resolve().parents[2] / "events"


def on_demand(settings: Settings, **event: Any) -> Any:
    return parse_on_demand(event, settings, NOW, "req-1")


def test_plain_dates_use_the_configured_basis(settings: Settings) -> None:
    request = on_demand(settings, brandId=1234, startDate="2023-06-08", endDate="2023-06-30")
    assert (request.first_day, request.last_day, request.basis) == (
        date(2023, 6, 8),
        date(2023, 6, 30),
        "utc",
    )
    assert request.brand_ids == (1234,)
    assert request.trigger == "on-demand"


def test_z_means_utc_and_no_suffix_means_local(settings: Settings) -> None:
    utc = on_demand(
        settings, brandId=1, startDate="2023-06-08T10:30:00.000Z", endDate="2023-06-09T00:00Z"
    )
    local = on_demand(settings, brandIds=[1, 2], startDate="2023-06-08T10:30", endDate="2023-06-09")
    assert utc.basis == "utc" and utc.first_day == date(2023, 6, 8)
    assert local.basis == "local" and local.brand_ids == (1, 2)


def test_explicit_time_basis(settings: Settings) -> None:
    request = on_demand(
        settings, brandId=1, startDate="2023-06-08", endDate="2023-06-09", timeBasis="local"
    )
    assert request.basis == "local"
    with pytest.raises(InvalidEvent, match="timeBasis"):
        on_demand(
            settings,
            brandId=1,
            startDate="2023-06-08T00:00:00Z",
            endDate="2023-06-09T00:00:00Z",
            timeBasis="local",
        )


def test_single_day_and_range_limit(settings: Settings) -> None:
    assert on_demand(settings, brandId=1, startDate="2024-01-15", endDate="2024-01-15")
    with pytest.raises(InvalidEvent, match="MAX_RANGE_DAYS"):
        on_demand(settings, brandId=1, startDate="2005-01-01", endDate="2024-01-01")


def test_classify() -> None:
    assert classify({"detail-type": "Scheduled Event"}) == "scheduled"
    assert classify({"source": "aws.scheduler"}) == "scheduled"
    assert classify({"brandId": 1}) == "on-demand"
    assert classify({"Records": [{"eventSource": "aws:sqs"}]}) == "sqs"
    with pytest.raises(InvalidEvent, match="Records"):
        classify({"Records": [{"eventSource": "aws:s3"}]})
    with pytest.raises(InvalidEvent, match="JSON object"):
        classify("text")


def test_scheduled_uses_the_event_time_and_id(settings: Settings) -> None:
    event = json.loads((EVENTS / "scheduled.json").read_text())
    request = parse_scheduled(event, settings, NOW, "req-9")
    assert (request.first_day, request.last_day) == (date(2023, 6, 30), date(2023, 6, 30))
    assert request.brand_ids == (1234, 777)
    assert request.request_key == event["id"]
    with pytest.raises(InvalidEvent, match="time"):
        parse_scheduled({**event, "time": "yesterday"}, settings, NOW, "req-9")


@pytest.mark.parametrize(
    "name", ["on_demand_utc.json", "on_demand_local.json", "on_demand_dates.json"]
)
def test_sample_events_are_valid(settings: Settings, name: str) -> None:
    event = json.loads((EVENTS / name).read_text())
    assert classify(event) == "on-demand"
    request = parse_on_demand(event, settings, NOW, "req")
    assert request.first_day == date(2023, 6, 8)
