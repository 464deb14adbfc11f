"""The fake analytiks API's data model: pure, deterministic, stable across processes."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from local.fake_analytiks import (
    METRICS,
    ExpectedRow,
    expected_rows,
    is_dark,
    location_ids,
    location_offset_hours,
    metric_value,
    parse_api_date,
    reference_number,
    zone_id,
)
from local.fake_analytiks.data import grid_minutes, location_series, time_key

T0 = datetime(2023, 6, 8, 0, 0)


def test_metrics_are_the_twelve_documented_names():
    assert METRICS == (
        "visits",
        "dwellTime",
        "bounces",
        "allVisits",
        "walkBys",
        "newVisitors",
        "returningVisitors",
        "under15Mins",
        "from15To30Mins",
        "from30To45Mins",
        "from45To60Mins",
        "over60Mins",
    )


def test_location_ids_reference_numbers_and_zones():
    assert location_ids(1234, 3) == [123400001, 123400002, 123400003]
    assert location_ids(777, 0) == []
    assert reference_number(123400001) == "REF-123400001"
    z = zone_id(123400001)
    assert str(uuid.UUID(z)) == z
    assert z == zone_id(123400001) != zone_id(123400002)


def test_offsets_are_whole_hours_within_range_and_differ():
    offsets = [location_offset_hours(loc) for loc in location_ids(1234, 120)]
    assert all(-11 <= o <= 11 for o in offsets)
    assert len(set(offsets)) == 23
    assert offsets[0] != offsets[1]


def test_metric_value_ranges_and_zero_share():
    values: dict[str, list[int]] = {m: [] for m in METRICS}
    for loc in location_ids(1234, 40):
        for h in range(48):
            for m in METRICS:
                values[m].append(metric_value(loc, m, T0 + timedelta(hours=h)))
    for m, vs in values.items():
        assert all(isinstance(v, int) and v >= 0 for v in vs)
        zero_share = vs.count(0) / len(vs)
        assert 0.15 < zero_share < 0.40, (m, zero_share)
        if m == "dwellTime":
            assert max(vs) > 1_000_000
            assert max(vs) <= 10_000_000
        else:
            assert max(vs) < 500, m


def test_all_visits_is_visits_plus_bounces():
    for loc in location_ids(1234, 10):
        for h in range(24):
            t = T0 + timedelta(hours=h)
            assert metric_value(loc, "allVisits", t) == metric_value(
                loc, "visits", t
            ) + metric_value(loc, "bounces", t)


def test_metric_value_accepts_aware_datetimes_and_extra_metrics():
    loc = 123400005
    naive = datetime(2023, 6, 8, 10)
    aware = datetime(2023, 6, 8, 12, tzinfo=timezone(timedelta(hours=2)))
    assert metric_value(loc, "visits", naive) == metric_value(loc, "visits", aware)
    extra = [metric_value(loc, "footfallScore", T0 + timedelta(hours=h)) for h in range(100)]
    assert any(extra)
    assert max(extra) < 500


def test_dark_locations_exist_and_report_nothing():
    dark = [loc for loc in location_ids(1234, 120) if is_dark(loc)]
    assert 1 <= len(dark) <= 10
    assert all(
        metric_value(dark[0], m, T0 + timedelta(hours=h)) == 0 for m in METRICS for h in range(24)
    )


def test_metric_value_is_stable_across_processes():
    code = (
        "from datetime import datetime; from local.fake_analytiks import metric_value;"
        "print([metric_value(123400007, m, datetime(2023, 6, 8, h))"
        " for m in ('visits', 'dwellTime', 'footfallScore') for h in range(6)])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PYTHONPATH": "."},
    ).stdout
    here = [
        metric_value(123400007, m, datetime(2023, 6, 8, h))
        for m in ("visits", "dwellTime", "footfallScore")
        for h in range(6)
    ]
    assert out.strip() == str(here)


def test_location_series_equals_metric_value():
    metrics = (*METRICS, "footfallScore")
    minutes = grid_minutes(T0, T0 + timedelta(days=1), 15)
    for loc in location_ids(1234, 15):
        series = location_series(loc, metrics, minutes)
        for metric, values in zip(metrics, series, strict=True):
            for minute, value in zip(minutes, values, strict=True):
                moment = datetime(1970, 1, 1) + timedelta(minutes=minute)
                assert metric_value(loc, metric, moment) == value


@pytest.mark.parametrize(
    ("text", "expected", "basis"),
    [
        ("2023-06-08T11:30:00.000Z", datetime(2023, 6, 8, 11, 30), "utc"),
        ("2023-06-08T11:30:00Z", datetime(2023, 6, 8, 11, 30), "utc"),
        ("2023-06-08T11:30Z", datetime(2023, 6, 8, 11, 30), "utc"),
        ("2023-06-08T11:30:00.5Z", datetime(2023, 6, 8, 11, 30, 0, 500000), "utc"),
        ("2023-06-08T09:00:00.000", datetime(2023, 6, 8, 9), "local"),
        ("2023-06-08T09:00:00", datetime(2023, 6, 8, 9), "local"),
        ("2023-06-08T09:00:00.123456789", datetime(2023, 6, 8, 9, 0, 0, 123456), "local"),
    ],
)
def test_parse_api_date_accepts(text, expected, basis):
    assert parse_api_date(text) == (expected, basis)


@pytest.mark.parametrize(
    "text",
    [
        "2023-06-08",
        "2023-06-08T11:30:00+02:00",
        "2023-06-08T11:30:00z",
        "2023-06-08 11:30:00",
        "2023-13-08T11:30:00Z",
        "2023-02-30T11:30:00Z",
        "2023-06-08T24:00:00Z",
        "yesterday",
        "",
    ],
)
def test_parse_api_date_rejects(text):
    with pytest.raises(ValueError, match="date"):
        parse_api_date(text)


def test_grid_is_aligned_and_inclusive():
    start, end = datetime(2023, 6, 8, 11, 30), datetime(2023, 6, 8, 14, 0)
    assert [time_key(m, "utc") for m in grid_minutes(start, end, 60)] == [
        "2023-06-08T12:00:00Z",
        "2023-06-08T13:00:00Z",
        "2023-06-08T14:00:00Z",
    ]
    quarter = grid_minutes(start, end, 15)
    assert len(quarter) == 11
    assert time_key(quarter[0], "local") == "2023-06-08T11:30:00"
    assert grid_minutes(datetime(2023, 6, 8, 11, 1), datetime(2023, 6, 8, 11, 59), 60) == []
    assert len(grid_minutes(T0, T0 + timedelta(days=5), 60)) == 121


def test_expected_rows_utc():
    rows = list(expected_rows(1234, 3, "2023-06-08T00:00:00Z", "2023-06-08T23:00:00Z"))
    assert all(isinstance(r, ExpectedRow) for r in rows)
    assert rows == sorted(rows, key=lambda r: (r.location_id, r.ts))
    assert {r.location_id for r in rows} <= set(location_ids(1234, 3))
    for loc, ts, values in rows:
        assert values
        assert all(v > 0 for v in values.values())
        moment = datetime.strptime(ts, "%Y-%m-%d %H:%M:%S")
        assert values == {
            m: metric_value(loc, m, moment) for m in METRICS if metric_value(loc, m, moment)
        }
    # zeros are omitted: fewer rows than location x buckets
    assert len(rows) < 3 * 24


def test_expected_rows_local_uses_each_locations_offset():
    rows = list(expected_rows(1234, 2, "2023-06-08T00:00:00", "2023-06-08T05:00:00"))
    for loc, ts, values in rows:
        wall = datetime.strptime(ts, "%Y-%m-%d %H:%M:%S")
        assert T0 <= wall <= T0 + timedelta(hours=5)
        utc = wall - timedelta(hours=location_offset_hours(loc))
        assert values["visits"] == metric_value(loc, "visits", utc) if "visits" in values else True
        assert all(metric_value(loc, m, utc) == v for m, v in values.items())


def test_expected_rows_datetime_arguments_and_options():
    aware = list(
        expected_rows(
            777,
            3,
            datetime(2023, 6, 8, tzinfo=UTC),
            datetime(2023, 6, 8, 3, tzinfo=UTC),
            bucket_minutes=15,
            extra_metrics=("footfallScore",),
        )
    )
    naive = list(
        expected_rows(
            777, 3, datetime(2023, 6, 8), datetime(2023, 6, 8, 3), "utc", bucket_minutes=15
        )
    )
    assert {r.ts[-5:] for r in aware} <= {"00:00", "15:00", "30:00", "45:00"}
    assert any("footfallScore" in r.values for r in aware)
    assert [(r.location_id, r.ts) for r in naive] == [
        (r.location_id, r.ts)
        for r in aware
        if set(r.values) != {"footfallScore"}  # buckets only the extra metric made non-zero
    ]
    with pytest.raises(ValueError, match="basis"):
        list(expected_rows(777, 3, datetime(2023, 6, 8), datetime(2023, 6, 9)))
    with pytest.raises(ValueError, match="basis"):
        list(expected_rows(777, 3, "2023-06-08T00:00:00Z", "2023-06-09T00:00:00Z", "local"))
    with pytest.raises(ValueError, match="same basis"):
        list(expected_rows(777, 3, "2023-06-08T00:00:00Z", "2023-06-09T00:00:00"))
