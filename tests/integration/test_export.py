"""The exporter end to end: API -> rows -> staged -> committed partitions -> notification."""

from __future__ import annotations

from datetime import date

from exporter.schema import METRIC_COLUMNS
from tests.integration.conftest import Lab, expected

COLUMN_OF = dict(METRIC_COLUMNS)


def assert_table_matches(lab: Lab, brand: int, first: date, last: date, basis: str, **kw) -> dict:
    rows = lab.rows(brand)
    truth = expected(lab.api, brand, first, last, basis, **kw)
    assert set(rows) == set(truth), (
        f"missing {len(set(truth) - set(rows))}, unexpected {len(set(rows) - set(truth))}"
    )
    for key, values in truth.items():
        row = rows[key]
        known = {api: v for api, v in values.items() if api in COLUMN_OF}
        extra = {api: v for api, v in values.items() if api not in COLUMN_OF}
        for api_name, column in METRIC_COLUMNS:
            assert row[column] == known.get(api_name), (key, column)
        assert (row["extra"] or {}) == extra, key
        assert row["time_basis"] == basis
        assert row["brand_id"] == brand
        assert str(row["dt"]) == key[1][:10]
        assert row["reference_number"] == f"REF-{key[0]}"
    return rows


def test_on_demand_utc_multi_window(lab: Lab) -> None:
    response = lab.invoke({"brandId": 1234, "startDate": "2023-06-08", "endDate": "2023-06-19"})
    (run,) = response["runs"]
    assert [w["start"] for w in run["windows"]] == ["2023-06-08", "2023-06-13", "2023-06-18"]
    lab.drain()
    rows = assert_table_matches(lab, 1234, date(2023, 6, 8), date(2023, 6, 19), "utc")
    assert {r["run_id"] for r in rows.values()} == {run["runId"]}
    (note,) = lab.notifications()
    assert note["attributes"] == {"status": "succeeded", "brandId": "1234"}
    body = note["body"]
    assert body["status"] == "succeeded"
    assert body["totals"]["rows"] == len(rows)
    assert sum(p["rows"] for p in body["partitions"]) == len(rows)
    assert [p["dt"] for p in body["partitions"]] == [f"2023-06-{d:02d}" for d in range(8, 20)]
    data_keys = lab.keys("wifi/metrics/")
    assert body["totals"]["objects"] == len(data_keys)
    assert body["totals"]["bytes"] == sum(
        lab.s3.head_object(Bucket=lab.bucket, Key=k)["ContentLength"] for k in data_keys
    )
    # One object per (partition, window, invocation): one step each here.
    assert len(data_keys) == 12
    head = lab.s3.head_object(Bucket=lab.bucket, Key=data_keys[0])
    assert head["ContentType"] == "application/json"
    assert "ContentEncoding" not in head


def test_on_demand_local_basis(lab: Lab) -> None:
    lab.invoke({"brandId": 1234, "startDate": "2023-06-08T00:00:00", "endDate": "2023-06-10T00:00:00"})
    lab.drain()
    assert_table_matches(lab, 1234, date(2023, 6, 8), date(2023, 6, 10), "local")
    (note,) = lab.notifications()
    assert note["body"]["timeBasis"] == "local"
