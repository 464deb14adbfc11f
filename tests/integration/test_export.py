"""The exporter end to end: API -> rows -> staged -> committed partitions -> notification."""

from __future__ import annotations

from datetime import date
from typing import Any

from exporter.schema import METRIC_COLUMNS
from tests.integration.conftest import Lab, expected

COLUMN_OF = dict(METRIC_COLUMNS)


def assert_table_matches(
    lab: Lab, brand: int, first: date, last: date, basis: str, **kw: Any
) -> dict[tuple[int, str], dict[str, Any]]:
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
    data_keys = lab.list_keys("wifi/metrics/")
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
    lab.invoke(
        {"brandId": 1234, "startDate": "2023-06-08T00:00:00", "endDate": "2023-06-10T00:00:00"}
    )
    lab.drain()
    assert_table_matches(lab, 1234, date(2023, 6, 8), date(2023, 6, 10), "local")
    (note,) = lab.notifications()
    assert note["body"]["timeBasis"] == "local"


def test_fifteen_minute_buckets_and_unknown_metric(make_lab) -> None:
    lab = make_lab(brands={42: 7}, bucket_minutes=15, extra_metrics=("footfallScore",))
    lab.invoke({"brandId": 42, "startDate": "2023-06-08", "endDate": "2023-06-09"})
    lab.drain()
    rows = assert_table_matches(
        lab,
        42,
        date(2023, 6, 8),
        date(2023, 6, 9),
        "utc",
        bucket_minutes=15,
        extra_metrics=("footfallScore",),
    )
    assert any(key[1].endswith(":15:00") for key in rows)
    assert any(row["extra"] for row in rows.values())


def test_rerun_replaces_partitions(lab: Lab) -> None:
    event = {"brandId": 1234, "startDate": "2023-06-08", "endDate": "2023-06-09"}
    first = lab.run(event)["runs"][0]["runId"]
    # A second invocation is a new run (its own request id) over the same days.
    second = lab.run(event)["runs"][0]["runId"]
    assert first != second
    rows = assert_table_matches(lab, 1234, date(2023, 6, 8), date(2023, 6, 9), "utc")
    assert {r["run_id"] for r in rows.values()} == {second}
    assert all(second in key for key in lab.list_keys("wifi/metrics/"))
    assert [n["body"]["status"] for n in lab.notifications()] == ["succeeded", "succeeded"]


def test_shorter_rerun_leaves_neighbour_days_alone(lab: Lab) -> None:
    lab.run({"brandId": 1234, "startDate": "2023-06-08", "endDate": "2023-06-10"})
    lab.run({"brandId": 1234, "startDate": "2023-06-09", "endDate": "2023-06-09"})
    assert_table_matches(lab, 1234, date(2023, 6, 8), date(2023, 6, 10), "utc")
    runs = {r["run_id"] for r in lab.rows(1234).values()}
    assert len(runs) == 2


def test_failed_run_commits_nothing_and_keeps_earlier_data(lab: Lab) -> None:
    event = {"brandId": 1234, "startDate": "2023-06-08", "endDate": "2023-06-12"}
    lab.run(event)
    before = {
        k: lab.s3.get_object(Bucket=lab.bucket, Key=k)["ETag"]
        for k in lab.list_keys("wifi/metrics/")
    }
    # The second page of the rerun is refused by the API: a permanent error midway.
    lab.invoke(event)
    lab.api.faults.queue.extend(["400"])
    report = lab.drain()
    after = {
        k: lab.s3.get_object(Bucket=lab.bucket, Key=k)["ETag"]
        for k in lab.list_keys("wifi/metrics/")
    }
    assert after == before
    notes = lab.notifications()
    assert [n["body"]["status"] for n in notes] == ["succeeded", "failed"]
    failure = notes[1]
    assert failure["attributes"]["status"] == "failed"
    assert "400" in failure["body"]["error"]
    assert report.failed_records == 0  # consumed, not redelivered forever
    assert (
        lab.sqs.get_queue_attributes(
            QueueUrl=lab.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
        == "0"
    )


def test_scheduled_event_exports_yesterday_inline(lab: Lab) -> None:
    lab.configure(BRAND_IDS="1234,777", LOOKBACK_DAYS="2")
    event = {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2023-06-10T03:30:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/wifi-export-nightly"],
        "detail": {},
    }
    response = lab.invoke(event)
    assert [r["brandId"] for r in response["runs"]] == [1234, 777]
    # One window each: done inside the scheduled invocation, nothing queued.
    assert lab.drain().invocations == 0
    assert_table_matches(lab, 1234, date(2023, 6, 8), date(2023, 6, 9), "utc")
    assert_table_matches(lab, 777, date(2023, 6, 8), date(2023, 6, 9), "utc")
    assert sorted(n["attributes"]["brandId"] for n in lab.notifications()) == ["1234", "777"]
    # EventBridge retrying the same event reuses the runs: no second notification.
    again = lab.invoke(event)
    assert [r["runId"] for r in again["runs"]] == [r["runId"] for r in response["runs"]]
    lab.drain()
    assert len(lab.notifications()) == 2
