"""The one notification a run sends: subject, body and filter attributes."""

from __future__ import annotations

from datetime import date

from exporter import notify
from exporter.planning import split_windows
from exporter.run.records import RunPlan

PLAN = RunPlan(
    run_id="20230701T033000000Z-b1234-9f2c41d0",
    brand_id=1234,
    first_day=date(2023, 6, 1),
    last_day=date(2023, 6, 2),
    basis="local",
    trigger="scheduled",
    started_at="2023-07-01T03:30:00Z",
    windows=tuple(split_windows(date(2023, 6, 1), date(2023, 6, 2), 5)),
)
COMMON = {
    "runId": PLAN.run_id,
    "brandId": 1234,
    "startDate": "2023-06-01",
    "endDate": "2023-06-02",
    "timeBasis": "local",
    "trigger": "scheduled",
    "startedAt": "2023-07-01T03:30:00Z",
}


def test_success_names_partitions_totals_and_the_manifest() -> None:
    manifest = {
        "partitions": [
            {"dt": "2023-06-01", "rows": 1200, "objects": 1, "bytes": 900, "keys": ["k1"]},
            {"dt": "2023-06-02", "rows": 0, "objects": 0, "bytes": 0, "keys": []},
        ],
        "totals": {"rows": 1200, "objects": 1, "bytes": 900, "partitions": 2},
        "api": {"calls": 3, "retries": 1, "pages": 2},
        "durationSeconds": 4.5,
    }
    subject, body = notify.success_message(PLAN, manifest, "s3://b/m.json")
    assert subject == "wifi-export succeeded: brand 1234 2023-06-01..2023-06-02 (1,200 rows)"
    assert body == {
        **COMMON,
        "status": "succeeded",
        "partitions": [
            {"dt": "2023-06-01", "rows": 1200, "objects": 1, "bytes": 900},
            {"dt": "2023-06-02", "rows": 0, "objects": 0, "bytes": 0},
        ],
        "totals": manifest["totals"],
        "api": {"calls": 3, "retries": 1, "pages": 2},
        # A manifest from before these reports existed reads as "nothing to report".
        "unknownFields": {},
        "irregularLocalDays": None,
        "durationSeconds": 4.5,
        "manifest": "s3://b/m.json",
        "error": None,
    }


def test_success_reports_what_the_api_sent_beyond_its_document() -> None:
    irregular = {
        "locationDays": 1,
        "listed": [{"date": "2023-10-29", "locationId": 7, "buckets": 22}],
    }
    manifest = {
        "partitions": [],
        "totals": {"rows": 2880, "objects": 1, "bytes": 900, "partitions": 2},
        "api": {"calls": 3, "retries": 0, "pages": 3},
        "unknownFields": {"locationName": 120},
        "irregularLocalDays": irregular,
        "durationSeconds": 4.5,
    }
    _, body = notify.success_message(PLAN, manifest, "s3://b/m.json")
    assert body["unknownFields"] == {"locationName": 120}
    assert body["irregularLocalDays"] == irregular


def test_failure_says_nothing_was_committed() -> None:
    subject, body = notify.failure_message(PLAN, "API: brand 1234 is not authorized", 12.34567)
    assert subject == "wifi-export FAILED: brand 1234 2023-06-01..2023-06-02"
    assert body == {
        **COMMON,
        "status": "failed",
        "partitions": [],
        "totals": {"rows": 0, "objects": 0, "bytes": 0, "partitions": 0},
        "durationSeconds": 12.346,
        "manifest": None,
        "error": "API: brand 1234 is not authorized",
        "note": "nothing was committed: the table still holds what it held before this run",
    }


def test_attributes_let_subscriptions_filter_on_status_and_brand() -> None:
    assert notify.attributes(PLAN, "failed") == {"status": "failed", "brandId": "1234"}
