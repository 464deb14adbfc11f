"""The exporter end to end: API -> rows -> staged -> committed partitions -> notification.

Expectations come from the fake API's data model (`local.fake_analytiks`) and
docs/contracts.md ("S3 layout", "Row schema") as written out in
`local.contract`, never from the exporter's own tables: a metric written into the
wrong column, or an object named off the layout, fails here.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime
from typing import Any

from local.contract import LINE_COLUMNS, METRIC_COLUMN, DataKey, parse_data_key
from local.fake_analytiks import reference_number
from tests.integration.conftest import Lab, expected

DATA_COLUMNS = frozenset(name for name, _ in LINE_COLUMNS)


def table_objects(lab: Lab, brand: int) -> dict[str, DataKey]:
    """Every table object of `brand`, checked against docs/contracts.md ("S3 layout"):
    the key parses, each line holds only the table's columns, and each row belongs to the
    run and the day its key names."""
    found: dict[str, DataKey] = {}
    for key, body in lab.table_bytes().items():
        part = parse_data_key(key)
        assert part.prefix == lab.env["DATA_PREFIX"], key
        if part.brand_id != brand:
            continue
        lines = gzip.decompress(body).splitlines()
        assert lines, f"{key} holds no rows"
        for line in lines:
            row = json.loads(line)
            assert set(row) <= DATA_COLUMNS, (key, sorted(set(row) - DATA_COLUMNS))
            assert row["run_id"] == part.run_id, (key, row["run_id"])
            assert row["ts"][:10] == part.dt, (key, row["ts"])
        found[key] = part
    return found


def assert_table_matches(
    lab: Lab,
    brand: int,
    first: date,
    last: date,
    basis: str,
    *,
    run_id: str | None = None,
    other_days: bool = False,
    **kw: Any,
) -> dict[tuple[int, str], dict[str, Any]]:
    """The table's rows of `brand` on days first..last are exactly what the fake API
    serves, each once, in the columns docs/contracts.md ("Row schema") names. With
    `run_id`, every one of them (and every object of those days) comes from that run.
    Rows on other days are an error unless `other_days` (the caller checks them)."""
    objects = table_objects(lab, brand)
    everything = lab.rows(brand)  # fails on a duplicate (location, ts)
    rows = {k: r for k, r in everything.items() if first <= r["dt"] <= last}
    if not other_days:
        assert len(rows) == len(everything), (
            f"{len(everything) - len(rows)} rows outside {first}..{last}"
        )
    truth = expected(lab.api, brand, first, last, basis, **kw)
    assert set(rows) == set(truth), (
        f"missing {len(set(truth) - set(rows))}, unexpected {len(set(rows) - set(truth))}"
    )
    for key, values in truth.items():
        row = rows[key]
        for api_name, column in METRIC_COLUMN.items():
            assert row[column] == values.get(api_name), (key, column, values.get(api_name))
        extra = {api: v for api, v in values.items() if api not in METRIC_COLUMN}
        assert (row["extra"] or {}) == extra, key
        assert row["time_basis"] == basis
        assert row["brand_id"] == brand
        assert str(row["dt"]) == key[1][:10]
        assert row["reference_number"] == reference_number(key[0])
        assert row["zone_id"] is None  # v3 records carry no zone
        if run_id is not None:
            assert row["run_id"] == run_id, (key, row["run_id"])
    if run_id is not None:
        owners = {p.run_id for p in objects.values() if first <= date.fromisoformat(p.dt) <= last}
        assert owners <= {run_id}, f"objects of other runs left in {first}..{last}: {owners}"
    return rows


def test_on_demand_utc_multi_window(lab: Lab) -> None:
    response = lab.invoke({"brandId": 1234, "startDate": "2023-06-08", "endDate": "2023-06-19"})
    (run,) = response["runs"]
    assert [w["start"] for w in run["windows"]] == ["2023-06-08", "2023-06-13", "2023-06-18"]
    lab.drain()
    rows = assert_table_matches(
        lab, 1234, date(2023, 6, 8), date(2023, 6, 19), "utc", run_id=run["runId"]
    )
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
    assert_table_matches(lab, 1234, date(2023, 6, 8), date(2023, 6, 9), "utc", run_id=second)
    assert {parse_data_key(k).run_id for k in lab.list_keys("wifi/metrics/")} == {second}
    assert [n["body"]["status"] for n in lab.notifications()] == ["succeeded", "succeeded"]


def test_shorter_rerun_leaves_neighbour_days_alone(lab: Lab) -> None:
    lab.run({"brandId": 1234, "startDate": "2023-06-08", "endDate": "2023-06-10"})
    lab.run({"brandId": 1234, "startDate": "2023-06-09", "endDate": "2023-06-09"})
    assert_table_matches(lab, 1234, date(2023, 6, 8), date(2023, 6, 10), "utc")
    runs = {r["run_id"] for r in lab.rows(1234).values()}
    assert len(runs) == 2


def test_failed_run_commits_nothing_and_keeps_earlier_data(lab: Lab) -> None:
    event = {"brandId": 1234, "startDate": "2023-06-08", "endDate": "2023-06-12"}
    earlier = lab.run(event)["runs"][0]["runId"]
    before = lab.table_bytes()
    lab.api.reset_stats()
    # The rerun walks one page per invocation (3 pages, one window): its first page is
    # served, staged and recorded, then the API refuses the second: a permanent error
    # after part of the run was staged.
    lab.configure(TIME_SAFETY_MARGIN_MS="8000")
    rerun = lab.invoke(event, budget_ms=8_001)["runs"][0]["runId"]
    lab.api.faults.queue.extend(["ok", "400"])
    report = lab.drain(budget_ms=8_001)
    stats = lab.api.stats
    assert stats.path_responses["/wifi/json/v3", 200] == 1
    assert stats.path_responses["/wifi/json/v3", 400] == 1
    staged = [k for k in lab.list_keys(f"wifi/_exports/runs/{rerun}/") if k.endswith(".json.gz")]
    assert staged, "the refusal came before anything was staged"
    assert lab.table_bytes() == before
    assert_table_matches(lab, 1234, date(2023, 6, 8), date(2023, 6, 12), "utc", run_id=earlier)
    notes = lab.notifications()
    assert [n["body"]["status"] for n in notes] == ["succeeded", "failed"]
    failure = notes[1]
    assert failure["attributes"]["status"] == "failed"
    assert failure["body"]["runId"] == rerun
    assert "400" in failure["body"]["error"]
    assert report.failed_records == 0  # consumed, not redelivered forever
    assert (
        lab.sqs.get_queue_attributes(
            QueueUrl=lab.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
        == "0"
    )


def test_scheduled_event_exports_yesterday_inline(lab: Lab) -> None:
    from exporter import wiring  # noqa: PLC0415

    # The function's clock runs from seconds after the schedule fired: an event's
    # time must be near the clock (docs/contracts.md, "Scheduled events").
    offset = datetime.now(UTC) - datetime(2023, 6, 10, 3, 30, 5, tzinfo=UTC)
    lab.monkeypatch.setattr(wiring, "CLOCK", lambda: datetime.now(UTC) - offset)
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
    # One window each: the first brand's done inside the scheduled invocation, once
    # the other's was queued (docs/decisions.md, "Scale": no window waits for it).
    assert lab.drain().invocations == 1
    assert_table_matches(lab, 1234, date(2023, 6, 8), date(2023, 6, 9), "utc")
    assert_table_matches(lab, 777, date(2023, 6, 8), date(2023, 6, 9), "utc")
    assert sorted(n["attributes"]["brandId"] for n in lab.notifications()) == ["1234", "777"]
    # EventBridge retrying the same event reuses the runs: no second notification.
    again = lab.invoke(event)
    assert [r["runId"] for r in again["runs"]] == [r["runId"] for r in response["runs"]]
    lab.drain()
    assert len(lab.notifications()) == 2
