"""Fake API answers over HTTP: shapes and data of v1-v4, the v3 cursor walk."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest

from local.fake_analytiks import (
    METRICS,
    expected_rows,
    is_dark,
    location_ids,
    location_offset_hours,
    metric_value,
    reference_number,
    zone_id,
)
from tests.integration.fake_api.wire import DAY, LOC, Client, Make, as_rows, utc_of

# ----------------------------------------------------------------------- shapes and data


def test_v1_by_locations_utc(client: Client):
    locs = location_ids(1234, 5)
    records = client.json("v1", {**DAY, "locations": locs})
    assert [r["locationId"] for r in records] == locs
    for record in records:
        assert "referenceNumber" not in record
        assert set(record) - {"locationId"} <= set(METRICS)
        for metric in METRICS:
            series = record.get(metric, {})
            for key, value in series.items():
                assert value > 0  # zeros are omitted
                assert value == metric_value(record["locationId"], metric, utc_of(key))
            # omitted buckets really are zero
            for h in range(24):
                key = f"2023-06-08T{h:02d}:00:00Z"
                if key not in series:
                    assert metric_value(record["locationId"], metric, utc_of(key)) == 0


def test_v1_by_reference_numbers_and_zone(client: Client):
    refs = [reference_number(LOC), reference_number(LOC + 1)]
    records = client.json("v1", {**DAY, "brandId": 1234, "referenceNumbers": refs})
    assert [(r["locationId"], r["referenceNumber"]) for r in records] == [
        (LOC, refs[0]),
        (LOC + 1, refs[1]),
    ]
    by_loc = client.json("v1", {**DAY, "locations": [LOC + 2]})
    by_zone = client.json("v1", {**DAY, "zoneId": zone_id(LOC + 2)})
    assert by_zone[0].pop("zoneId") == zone_id(LOC + 2)
    assert by_zone == by_loc


def test_v2_shape_all_authorized(client: Client):
    body = client.json("v2", {**DAY, "locations": [LOC, LOC + 1]})
    assert body["failures"] == {}
    assert body["successes"] == client.json("v1", {**DAY, "locations": [LOC, LOC + 1]})


def test_v3_shape_and_reference_numbers(client: Client):
    page = client.json("v3", {**DAY, "brandId": 777})
    assert page["cursor"] is None
    assert [r["locationId"] for r in page["data"]] == location_ids(777, 3)
    assert all(r["referenceNumber"] == reference_number(r["locationId"]) for r in page["data"])
    by_loc = client.json("v1", {**DAY, "locations": location_ids(777, 3)})
    assert [{k: v for k, v in r.items() if k != "referenceNumber"} for r in page["data"]] == by_loc


def test_v4_zero_fills_every_bucket(client: Client):
    body = {
        "startDate": "2023-06-08T11:30:00.000Z",
        "endDate": "2023-06-08T23:45:00.000Z",
        "locations": [LOC, LOC + 1],
    }
    records = client.json("v4", body)
    keys = [f"2023-06-08T{h:02d}:00:00Z" for h in range(12, 24)]
    zeros = 0
    for record in records:
        assert set(record) == {"locationId", *METRICS}
        for metric in METRICS:
            assert list(record[metric]) == keys
            for key, value in record[metric].items():
                assert value == metric_value(record["locationId"], metric, utc_of(key))
                zeros += value == 0
    assert zeros > 0
    v1 = client.json("v1", body)
    for full, sparse in zip(records, v1, strict=True):
        for metric in METRICS:
            assert {k: v for k, v in full[metric].items() if v} == sparse.get(metric, {})


def test_v1_v2_v3_omit_zeros_and_dark_locations_keep_only_the_id(client: Client):
    dark = next(loc for loc in location_ids(1234, 120) if is_dark(loc))
    assert client.json("v1", {**DAY, "locations": [dark]}) == [{"locationId": dark}]
    assert client.json("v2", {**DAY, "locations": [dark]})["successes"] == [{"locationId": dark}]
    records = [r for page in client.walk(1234, DAY) for r in page["data"]]
    assert {"locationId": dark, "referenceNumber": reference_number(dark)} in records
    v4 = client.json("v4", {**DAY, "locations": [dark]})[0]
    assert all(set(v4[m].values()) == {0} for m in METRICS)
    # a single closed bucket: every metric omitted
    for loc in location_ids(1234, 120):
        if not is_dark(loc) and not any(
            metric_value(loc, m, datetime(2023, 6, 8, 5)) for m in METRICS
        ):
            one = {"startDate": "2023-06-08T05:00:00Z", "endDate": "2023-06-08T05:00:00Z"}
            assert client.json("v1", {**one, "locations": [loc]}) == [{"locationId": loc}]
            break
    else:
        pytest.fail("no closed bucket found")


def test_local_time_keys_use_each_locations_offset(client: Client):
    a = LOC
    b = next(
        loc
        for loc in location_ids(1234, 120)
        if location_offset_hours(loc) != location_offset_hours(a)
    )
    local = {"startDate": "2023-06-08T09:00:00.000", "endDate": "2023-06-08T12:00:00.000"}
    records = client.json("v4", {**local, "locations": [a, b]})
    keys = [f"2023-06-08T{h:02d}:00:00" for h in range(9, 13)]
    utc_keys: dict[int, list[str]] = {}
    for record in records:
        loc = record["locationId"]
        offset = location_offset_hours(loc)
        assert list(record["visits"]) == keys  # local wall times, no Z
        utc_keys[loc] = []
        for key in keys:
            utc = datetime.fromisoformat(key) - timedelta(hours=offset)
            utc_keys[loc].append(utc.strftime("%Y-%m-%dT%H:%M:%SZ"))
            for metric in METRICS:
                assert record[metric][key] == metric_value(loc, metric, utc)
    # the same local range is a different UTC range per location
    assert utc_keys[a] != utc_keys[b]
    for loc in (a, b):
        window = {"startDate": utc_keys[loc][0], "endDate": utc_keys[loc][-1]}
        (utc_record,) = client.json("v4", {**window, "locations": [loc]})
        (local_record,) = [r for r in records if r["locationId"] == loc]
        assert list(utc_record["dwellTime"].values()) == list(local_record["dwellTime"].values())
    sparse = client.json("v1", {**local, "locations": [a, b]})
    assert all(not k.endswith("Z") for r in sparse for m in METRICS for k in r.get(m, {}))


def test_fifteen_minute_buckets_and_extra_metrics(make_fake_api: Make):
    c = Client(make_fake_api(bucket_minutes=15, extra_metrics=("footfallScore",)))
    body = {
        "startDate": "2023-06-08T10:00:00Z",
        "endDate": "2023-06-08T12:00:00Z",
        "locations": [LOC],
    }
    (record,) = c.json("v4", body)
    assert set(record) == {"locationId", *METRICS, "footfallScore"}
    assert list(record["visits"]) == [
        f"2023-06-08T{10 + q // 4:02d}:{15 * (q % 4):02d}:00Z" for q in range(9)
    ]
    for key, value in record["footfallScore"].items():
        assert value == metric_value(LOC, "footfallScore", utc_of(key))
    assert any(record["footfallScore"].values())


# ----------------------------------------------------------------------- v3 cursor walk


def test_cursor_walk_covers_every_location_once(client: Client):
    pages = list(client.walk(1234, DAY))
    assert [len(p["data"]) for p in pages] == [50, 50, 20]
    assert all(isinstance(p["cursor"], str) for p in pages[:-1])
    ids = [r["locationId"] for p in pages for r in p["data"]]
    assert ids == location_ids(1234, 120)
    assert client.api.stats.pages_served == 3


def test_cursor_is_reusable(client: Client):
    first = client.json("v3", {**DAY, "brandId": 1234})
    again = client.json("v3", {**DAY, "brandId": 1234, "cursor": first["cursor"]})
    twice = client.json("v3", {**DAY, "brandId": 1234, "cursor": first["cursor"]})
    assert again == twice
    assert again["data"][0]["locationId"] == location_ids(1234, 120)[50]


def test_cursor_is_bound_to_server_and_query(make_fake_api: Make, client: Client):
    cursor = client.json("v3", {**DAY, "brandId": 1234})["cursor"]
    payload, sig = cursor.split(".")
    tampered = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + sig
    for bad in ("garbage", "", "a.b.c", "!!!.???", tampered, cursor + "x"):
        r = client.post("v3", {**DAY, "brandId": 1234, "cursor": bad})
        if bad == "":
            assert r.status == 200  # empty string = first page, like null
            continue
        assert r.status == 400, bad
        assert orjson.loads(r.data)["message"].startswith("invalid cursor")
    other = Client(make_fake_api())
    foreign = other.json("v3", {**DAY, "brandId": 1234})["cursor"]
    r = client.post("v3", {**DAY, "brandId": 1234, "cursor": foreign})
    assert r.status == 400
    assert "invalid cursor" in orjson.loads(r.data)["message"]
    for changed in (
        {**DAY, "endDate": "2023-06-08T22:00:00.000Z"},
        {**DAY, "startDate": "2023-06-08T01:00:00.000Z"},
        {"startDate": "2023-06-08T00:00:00.000", "endDate": "2023-06-08T23:00:00.000"},
    ):
        r = client.post("v3", {**changed, "brandId": 1234, "cursor": cursor})
        assert r.status == 400
        assert "another query" in orjson.loads(r.data)["message"]


@pytest.mark.parametrize(
    ("start", "end", "kw"),
    [
        ("2023-06-08T00:00:00.000Z", "2023-06-10T00:00:00.000Z", {}),
        ("2023-06-08T11:30:00.000Z", "2023-06-08T23:45:00.000Z", {}),
        ("2023-06-08T00:00:00.000", "2023-06-09T00:00:00.000", {}),
        ("2023-06-01T00:00:00Z", "2023-06-06T00:00:00Z", {"page_size": 37}),
        (
            "2023-06-08T00:00:00",
            "2023-06-08T12:00:00",
            {"bucket_minutes": 15, "extra_metrics": ("footfallScore",)},
        ),
    ],
)
def test_expected_rows_agree_with_a_v3_walk(make_fake_api: Make, start: str, end: str, kw: Any):
    api = make_fake_api(**kw)
    c = Client(api)
    records = [r for p in c.walk(1234, {"startDate": start, "endDate": end}) for r in p["data"]]
    expected = list(
        expected_rows(
            1234,
            120,
            start,
            end,
            bucket_minutes=kw.get("bucket_minutes", 60),
            extra_metrics=kw.get("extra_metrics", ()),
        )
    )
    assert as_rows(records) == [tuple(r) for r in expected]
    assert len(expected) > 100
