"""Objects are ours by record, not by name (issue 22): through `app.handler`, moto
and the fake API. A file in a partition whose name looks like a run's object is
foreign unless that run's plan exists and names it: left alone, never deleted or
rewritten, and reported (`foreignObjects`) in the manifest and the notification."""

from __future__ import annotations

import gzip
import json
from datetime import date
from typing import Any

from local.fake_analytiks import location_ids
from tests.integration.conftest import Lab, expected

BRAND = 1234
DAY = "2023-06-08"
EVENT = {"brandId": BRAND, "startDate": DAY, "endDate": DAY}
PARTITION = f"wifi/metrics/brand_id={BRAND}/time_basis=utc/dt={DAY}/"


def plant(lab: Lab, name: str, body: bytes) -> str:
    key = PARTITION + name
    lab.s3.put_object(Bucket=lab.bucket, Key=key, Body=body)
    return key


def succeeded(lab: Lab) -> dict[str, Any]:
    body: dict[str, Any] = lab.notifications()[-1]["body"]
    assert body["status"] == "succeeded", body
    return body


def day_rows(lab: Lab, run_id: str) -> int:
    con = lab.table()
    (count,) = con.execute("SELECT count(*) FROM metrics WHERE run_id = ?", [run_id]).fetchone()
    return int(count)


def test_a_future_named_empty_file_does_not_remove_the_days_rows(lab: Lab) -> None:
    forged = plant(lab, "99991231T235959999Z-b1234-00000000-w0-s0.json.gz", b"")
    run_id = lab.run(EVENT)["runs"][0]["runId"]
    body = succeeded(lab)
    want = len(expected(lab.api, BRAND, date(2023, 6, 8), date(2023, 6, 8), "utc"))
    keys = set(lab.list_keys(PARTITION))
    assert forged in keys  # left alone
    ours = keys - {forged}
    assert ours and all(run_id in k for k in ours)
    lab.s3.delete_object(Bucket=lab.bucket, Key=forged)  # (the reader cannot read it)
    assert day_rows(lab, run_id) == want
    assert body["foreignObjects"] == {"count": 1, "keys": [forged]}
    manifest = json.loads(
        lab.s3.get_object(Bucket=lab.bucket, Key=f"wifi/_exports/runs/{run_id}/manifest.json")[
            "Body"
        ].read()
    )
    assert manifest["foreignObjects"] == {"count": 1, "keys": [forged]}


def test_a_past_named_file_no_run_wrote_is_not_deleted(lab: Lab) -> None:
    packed = gzip.compress(b'{"location_id":1,"ts":"2023-06-08 00:00:00"}\n', mtime=0)
    forged = plant(lab, "20200101T000000000Z-b1234-00000000-w0-s0.json.gz", packed)
    lab.run(EVENT)
    body = succeeded(lab)
    assert forged in lab.list_keys(PARTITION)
    assert lab.s3.get_object(Bucket=lab.bucket, Key=forged)["Body"].read() == packed
    assert body["foreignObjects"]["keys"] == [forged]


def test_a_non_gzip_past_named_file_does_not_stop_a_selection(lab: Lab) -> None:
    forged = plant(lab, "20200101T000000000Z-b1234-00000000-w0-s0.json.gz", b"not gzip")
    chosen = location_ids(BRAND, 3)[:2]
    lab.run({**EVENT, "locations": chosen})
    body = succeeded(lab)
    assert lab.s3.get_object(Bucket=lab.bucket, Key=forged)["Body"].read() == b"not gzip"
    assert body["foreignObjects"]["keys"] == [forged]


def test_an_unreadable_object_of_a_real_older_run_is_left_alone(lab: Lab) -> None:
    """Named by a real run's plan, but not gzip (damaged): a selection's rewrite
    cannot read it; it is reported as foreign instead of failing forever."""
    first = lab.run(EVENT)["runs"][0]["runId"]
    (older,) = lab.list_keys(PARTITION)
    lab.s3.put_object(Bucket=lab.bucket, Key=older, Body=b"damaged")
    lab.run({**EVENT, "locations": location_ids(BRAND, 3)[:1]})
    body = succeeded(lab)
    assert first in older
    assert lab.s3.get_object(Bucket=lab.bucket, Key=older)["Body"].read() == b"damaged"
    assert body["foreignObjects"]["keys"] == [older]


def test_an_older_run_whose_plan_expired_is_still_ours_by_its_history(lab: Lab) -> None:
    """`runs/` expires after StateRetentionDays; the history manifest (kept 400 days
    or more) still names the older run's objects, so a rerun replaces them."""
    first = lab.run(EVENT)["runs"][0]["runId"]
    (older,) = lab.list_keys(PARTITION)
    for key in lab.list_keys(f"wifi/_exports/runs/{first}/"):
        lab.s3.delete_object(Bucket=lab.bucket, Key=key)  # the lifecycle rule's work
    lab.cold_start()  # (a warm container would still hold the plan)
    second = lab.run(EVENT)["runs"][0]["runId"]
    body = succeeded(lab)
    assert body["foreignObjects"] == {"count": 0, "keys": []}
    keys = lab.list_keys(PARTITION)
    assert older not in keys and keys and all(second in k for k in keys)
