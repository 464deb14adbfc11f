from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from exporter.config import Settings
from exporter.errors import InvalidEvent
from exporter.events import classify, parse_on_demand, parse_scheduled
from exporter.planning import EARLIEST_DAY

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
        settings, brandId=1, startDate="2023-06-08T00:00:00.000Z", endDate="2023-06-09T00:00Z"
    )
    local = on_demand(settings, brandIds=[1, 2], startDate="2023-06-08T00:00", endDate="2023-06-09")
    assert utc.basis == "utc" and utc.first_day == date(2023, 6, 8)
    assert local.basis == "local" and local.brand_ids == (1, 2)


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        # The API document's own example: silently widened to the whole day before.
        ("2023-06-08T11:30:00.000Z", "2023-06-08T23:45:00.000Z", "startDate"),
        ("2023-06-08T00:00:00Z", "2023-06-08T23:45:00.000Z", "endDate"),
        ("2023-06-08T00:00:00", "2023-06-09T23:59:59.999", "endDate"),
        ("2023-06-08T00:00:01", "2023-06-09", "startDate"),
        ("2023-06-08T00:00:00.000000001Z", "2023-06-09", "startDate"),
        ("2023-06-08", "2023-06-09T12:00", "endDate"),
    ],
)
def test_a_time_of_day_is_refused_naming_the_field(
    settings: Settings, start: str, end: str, field: str
) -> None:
    with pytest.raises(InvalidEvent, match=rf"^{field}: .*time of day.*ranges are whole days"):
        on_demand(settings, brandId=1, startDate=start, endDate=end)


@pytest.mark.parametrize(
    "end", ["2023-06-30", "2023-06-30T00:00:00Z", "2023-06-30T00:00", "2023-06-30T00:00:00.000"]
)
def test_a_midnight_end_date_is_that_day_inclusive(settings: Settings, end: str) -> None:
    start = "2023-06-08T00:00:00Z" if end.endswith("Z") else "2023-06-08"
    request = on_demand(settings, brandId=1, startDate=start, endDate=end)
    assert (request.first_day, request.last_day) == (date(2023, 6, 8), date(2023, 6, 30))


def test_the_earliest_day_is_accepted_and_the_day_before_refused(settings: Settings) -> None:
    # The Glue table's projection starts on EARLIEST_DAY too (tests/template).
    first = on_demand(settings, brandId=1, startDate="2000-01-01", endDate="2000-01-05")
    assert first.first_day == EARLIEST_DAY == date(2000, 1, 1)
    for field, start, end in (
        ("startDate", "1999-12-31", "2000-01-05"),
        ("startDate", "1999-12-31T00:00:00Z", "2000-01-01T00:00:00Z"),
        ("startDate", "1999-12-30", "1999-12-31"),
    ):
        with pytest.raises(InvalidEvent, match=rf"^{field}: 1999-12-3\d is outside .*2000-01-01"):
            on_demand(settings, brandId=1, startDate=start, endDate=end)


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
    one = on_demand(settings, brandId=1, startDate="2024-01-15", endDate="2024-01-15")
    assert (one.brand_ids, one.first_day, one.last_day, one.basis) == (
        (1,),
        date(2024, 1, 15),
        date(2024, 1, 15),
        "utc",
    )
    with pytest.raises(InvalidEvent, match="MAX_RANGE_DAYS"):
        on_demand(settings, brandId=1, startDate="2005-01-01", endDate="2024-01-01")
    # The limit itself: MAX_RANGE_DAYS days (inclusive) pass, one more does not.
    last = date(2024, 1, 15)
    first = last - timedelta(days=settings.max_range_days - 1)
    widest = on_demand(settings, brandId=1, startDate=str(first), endDate=str(last))
    assert (widest.last_day - widest.first_day).days + 1 == settings.max_range_days == 3_660
    with pytest.raises(InvalidEvent, match="MAX_RANGE_DAYS"):
        on_demand(settings, brandId=1, startDate=str(first - timedelta(days=1)), endDate=str(last))


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
    # A rule's delivery carries `time` and `id` (the sample in events/ has neither, so
    # that it means "fired now" whenever it is used).
    sample = json.loads((EVENTS / "scheduled.json").read_text())
    event = {**sample, "id": "7bf73129-1428-4cd3-a780-95db273d1602", "time": "2023-07-01T03:30:00Z"}
    now = datetime(2023, 7, 1, 9, 30, tzinfo=UTC)  # delivered late (a retry), within bounds
    request = parse_scheduled(event, settings, now, "req-9")
    assert (request.first_day, request.last_day) == (date(2023, 6, 30), date(2023, 6, 30))
    assert request.brand_ids == (1234, 777)
    assert request.request_key == event["id"]
    assert request.started_at == now  # run ids take the real clock
    with pytest.raises(InvalidEvent, match="time"):
        parse_scheduled({**event, "time": "yesterday"}, settings, now, "req-9")


@pytest.mark.parametrize(
    "name", ["on_demand_utc.json", "on_demand_local.json", "on_demand_dates.json"]
)
def test_sample_events_are_valid(settings: Settings, name: str) -> None:
    event = json.loads((EVENTS / name).read_text())
    assert classify(event) == "on-demand"
    request = parse_on_demand(event, settings, NOW, "req")
    assert request.first_day == date(2023, 6, 8)
