"""An API that does not behave like its document, end to end: the fake's quirks over
real HTTP, the handler on moto, the rows read back with DuckDB, and what the
manifest and the notification report (docs/contracts.md, "Row schema", "Manifest")."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from local.contract import LINE_COLUMNS, METRIC_COLUMN
from local.fake_analytiks import (
    Quirks,
    local_buckets,
    location_ids,
    metric_value,
    offset_text,
)
from local.fake_analytiks.data import METRICS
from tests.integration.conftest import Lab, expected

Row = dict[str, Any]
# Written out once, in local/contract.py (docs/contracts.md, "Row schema").
API_TO_COLUMN = METRIC_COLUMN


def run(lab: Lab, event: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run an on-demand event to the end: (its manifest, its one notification's body)."""
    run_id = lab.run(event)["runs"][0]["runId"]
    key = f"{lab.env['STATE_PREFIX']}/runs/{run_id}/manifest.json"
    manifest = json.loads(lab.s3.get_object(Bucket=lab.bucket, Key=key)["Body"].read())
    (note,) = [n for n in lab.notifications() if n["body"]["runId"] == run_id]
    return manifest, note["body"]


def table_rows(lab: Lab) -> list[Row]:
    """Every row as DuckDB reads it, typed like the Glue table."""
    cursor = lab.table().execute(
        "SELECT *, strftime(ts, '%Y-%m-%d %H:%M:%S') AS ts_text, CAST(dt AS VARCHAR) AS day "
        "FROM metrics"
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def raw_lines(lab: Lab) -> list[Row]:
    """Every JSON line of the table, as written."""
    return [
        json.loads(line)
        for body in lab.table_bytes().values()
        for line in gzip.decompress(body).splitlines()
    ]


def values_of(row: Row) -> dict[str, int]:
    return {api: row[col] for api, col in API_TO_COLUMN.items() if row[col] is not None}


def assert_lines_are_the_schema(lab: Lab) -> None:
    columns = {name for name, _ in LINE_COLUMNS}
    for line in raw_lines(lab):
        assert set(line) <= columns, sorted(set(line) - columns)


@pytest.fixture
def quirky_lab(make_lab: Callable[..., Lab]) -> Callable[..., Lab]:
    def make(quirks: Quirks, **kwargs: Any) -> Lab:
        return make_lab(brands={1234: 120, 777: 3}, page_size=50, quirks=quirks, **kwargs)

    return make


def failed_run(lab: Lab, event: dict[str, Any]) -> dict[str, Any]:
    """Run an event that must fail: its one notification's body, the table untouched."""
    before = lab.table_bytes()
    run_id = lab.run(event)["runs"][0]["runId"]
    notes = [n["body"] for n in lab.notifications() if n["body"]["runId"] == run_id]
    assert [n["status"] for n in notes] == ["failed"]  # one failure notification
    assert lab.table_bytes() == before  # nothing committed
    key = f"{lab.env['STATE_PREFIX']}/runs/{run_id}/manifest.json"
    assert key not in lab.list_keys(key)
    body: dict[str, Any] = notes[0]
    return body


def test_local_run_answered_with_utc_keys_fails_and_loses_no_hour(
    quirky_lab: Callable[..., Lab],
) -> None:
    """The API answers the local days' instants keyed in UTC ("all dates are UTC"):
    such rows would land on other days than asked, so the run fails at the first
    page, naming the basis and the remedy; the remedy exports every hour."""
    lab = quirky_lab(Quirks(utc_keys_for_local=True))
    lab.configure(WINDOW_DAYS="2")  # windows 8-9, 10-11, 12
    event = {"brandId": 1234, "startDate": "2023-06-08T00:00:00", "endDate": "2023-06-12"}
    note = failed_run(lab, event)
    assert note["timeBasis"] == "local"
    assert "timeBasis: local" in note["error"] and "answered in UTC" in note["error"]
    assert '"timeBasis": "utc"' in note["error"]
    assert lab.table_bytes() == {}

    # What the error says to do: the same days as UTC, every hour of them.
    manifest, note = run(
        lab,
        {
            **event,
            "timeBasis": "utc",
            "endDate": "2023-06-12T00:00:00Z",
            "startDate": "2023-06-08T00:00:00Z",
        },
    )
    assert note["status"] == "succeeded"
    want = expected(lab.api, 1234, date(2023, 6, 8), date(2023, 6, 12), "utc")
    rows = table_rows(lab)
    assert {(r["location_id"], r["ts_text"]): values_of(r) for r in rows} == {
        (loc, ts.replace("T", " ")[:19]): values for (loc, ts), values in want.items()
    }
    assert {r["time_basis"] for r in rows} == {"utc"}
    assert manifest["totals"]["droppedRowsOutsideRange"] == 0


def test_utc_run_answered_with_local_keys_fails(quirky_lab: Callable[..., Lab]) -> None:
    lab = quirky_lab(Quirks(local_keys_for_utc=True))
    note = failed_run(lab, {"brandId": 777, "startDate": "2023-06-08", "endDate": "2023-06-10"})
    assert "timeBasis: utc" in note["error"] and '"timeBasis": "local"' in note["error"]
    assert lab.table_bytes() == {}


def test_offset_keys_keep_the_autumn_nights_two_hours_apart(
    quirky_lab: Callable[..., Lab],
) -> None:
    berlin, *others = location_ids(777, 3)
    zones = {berlin: "Europe/Berlin"}
    lab = quirky_lab(Quirks(offset_keys=True, zones=zones))
    manifest, note = run(
        lab,
        {"brandId": 777, "startDate": "2023-10-28", "endDate": "2023-10-30", "timeBasis": "local"},
    )
    want: dict[tuple[int, str, str], dict[str, int]] = {}
    for loc in (berlin, *others):
        for utc, wall, off in local_buckets(
            loc, datetime(2023, 10, 28), datetime(2023, 10, 30, 23, 59, 59), 60, zones.get(loc)
        ):
            moment = datetime(1970, 1, 1) + timedelta(minutes=utc)
            values = {m: v for m in METRICS if (v := metric_value(loc, m, moment))}
            stamp = datetime(1970, 1, 1) + timedelta(minutes=wall)
            if values:
                want[loc, f"{stamp:%Y-%m-%d %H:%M:%S}", offset_text(off)] = values

    rows = table_rows(lab)
    got = {(r["location_id"], r["ts_text"], r["utc_offset"]): values_of(r) for r in rows}
    assert got == want and len(rows) == len(want)
    # 02:00 CEST and 02:00 CET: one wall-clock time, two instants, two rows.
    two_am = sorted(
        (r["utc_offset"], r["visits"])
        for r in rows
        if r["location_id"] == berlin and r["ts_text"] == "2023-10-29 02:00:00"
    )
    assert [offset for offset, _ in two_am] == ["+01:00", "+02:00"]
    assert [visits for _, visits in two_am] == [
        metric_value(berlin, "visits", datetime(2023, 10, 29, 1)) or None,
        metric_value(berlin, "visits", datetime(2023, 10, 29, 0)) or None,
    ]
    assert len({r["ts_text"] for r in rows if r["location_id"] == berlin}) < sum(
        r["location_id"] == berlin for r in rows
    )
    assert {r["time_basis"] for r in rows} == {"local"}
    assert all(r["day"] == r["ts_text"][:10] for r in rows)
    # Offsets are not a different basis, and 25 buckets is the autumn night's count.
    assert manifest["irregularLocalDays"] is note["irregularLocalDays"] is None
    assert manifest["totals"]["droppedRowsOutsideRange"] == 0
    assert_lines_are_the_schema(lab)


def test_unknown_scalar_fields_are_counted_and_the_run_succeeds(
    quirky_lab: Callable[..., Lab],
) -> None:
    quirks = Quirks(record_fields={"locationName": "Store {location_id}", "open": True})
    lab = quirky_lab(quirks, extra_metrics=("footfallScore",))
    manifest, note = run(lab, {"brandId": 1234, "startDate": "2023-06-08", "endDate": "2023-06-09"})
    assert note["status"] == "succeeded"
    # One window, every location once in it: each field counted per record.
    assert manifest["unknownFields"] == note["unknownFields"] == {"locationName": 120, "open": 120}
    assert manifest["irregularLocalDays"] is None

    want = expected(
        lab.api, 1234, date(2023, 6, 8), date(2023, 6, 9), "utc", extra_metrics=("footfallScore",)
    )
    rows = lab.rows(1234)
    assert set(rows) == set(want)
    for key, row in rows.items():
        values = values_of(row)
        if row["extra"]:
            values.update(row["extra"])
        assert values == want[key], key
    # Not kept: the table has no column for them (docs/decisions.md).
    assert_lines_are_the_schema(lab)
    assert not any("Store" in json.dumps(line) for line in raw_lines(lab))


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"visits": "lots"}, "metric 'visits' of location 123400001 is not a map"),
        ({"locationId": None}, "locationId None is not a positive bigint"),
        ({"bounces": {"2023-06-08T10:00:00Z": -1}}, "metric 'bounces' of location 123400001"),
    ],
)
def test_malformed_known_fields_still_fail_the_run(
    quirky_lab: Callable[..., Lab], fields: dict[str, Any], named: str
) -> None:
    lab = quirky_lab(Quirks(record_fields=fields))
    response = lab.run({"brandId": 1234, "startDate": "2023-06-08", "endDate": "2023-06-08"})
    (note,) = lab.notifications()
    assert note["body"]["runId"] == response["runs"][0]["runId"]
    assert note["body"]["status"] == "failed"
    assert named in note["body"]["error"]
    assert lab.list_keys(lab.env["DATA_PREFIX"] + "/") == []  # nothing committed


def test_irregular_local_days_are_reported_in_the_manifest(
    quirky_lab: Callable[..., Lab],
) -> None:
    """Half-hour buckets: a local day of more buckets than any day has hours. The
    run succeeds and its manifest counts the location-days, from the fake's model."""
    lab = quirky_lab(Quirks(), bucket_minutes=30)
    event = {"brandId": 777, "startDate": "2023-06-08", "endDate": "2023-06-09"}
    manifest, note = run(lab, {**event, "timeBasis": "local"})
    per_day: dict[tuple[str, int], int] = {}
    for loc, ts in expected(
        lab.api, 777, date(2023, 6, 8), date(2023, 6, 9), "local", bucket_minutes=30
    ):
        per_day[ts[:10], loc] = per_day.get((ts[:10], loc), 0) + 1
    odd = sorted((day, loc, n) for (day, loc), n in per_day.items() if n > 25)
    assert odd  # v3 leaves out zero buckets: only days of more than 25 count
    report = manifest["irregularLocalDays"]
    assert report == note["irregularLocalDays"]
    assert report["locationDays"] == len(odd)
    assert [(d["date"], d["locationId"], d["buckets"]) for d in report["listed"]] == odd[:20]
    # The same days in UTC: no local day to count.
    manifest, _ = run(lab, event)
    assert manifest["irregularLocalDays"] is None
