"""Selections end to end: chosen locations, reference numbers and zones through v1, v2
and v4, with moto and the fake API over real HTTP; the table read back with DuckDB.

Expected values come from the fake's deterministic data (`local.fake_analytiks`),
the column names from `local.contract`, never from the exporter's own tables.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

import pytest

from exporter import wiring
from exporter.api_client import RetryPolicy
from local.contract import METRIC_COLUMN
from local.fake_analytiks import location_ids, reference_number, zone_id
from tests.integration.conftest import Lab, expected

BRAND, OTHER = 1234, 777
FIRST, LAST = date(2023, 6, 8), date(2023, 6, 9)
RANGE = {"startDate": FIRST.isoformat(), "endDate": LAST.isoformat()}
HOURS = 24 * ((LAST - FIRST).days + 1)


@pytest.fixture
def sel_lab(make_lab: Any) -> Lab:
    # 120 locations of brand 1234 are ours; brand 777's three are not.
    lab: Lab = make_lab(brands={BRAND: 120, OTHER: 3}, page_size=50, allowed_brands=[BRAND])
    return lab


def table_rows(lab: Lab) -> list[dict[str, Any]]:
    con = lab.table()
    cursor = con.execute(
        "SELECT *, strftime(ts, '%Y-%m-%d %H:%M:%S') AS ts_text FROM metrics ORDER BY ALL"
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def by_key(rows: list[dict[str, Any]]) -> dict[tuple[int, str | None, str], dict[str, Any]]:
    """Rows keyed by (location, zone, ts); a key twice is a doubled row."""
    counts = Counter((r["location_id"], r["zone_id"], r["ts_text"]) for r in rows)
    doubled = [k for k, n in counts.items() if n > 1]
    assert not doubled, f"{len(doubled)} rows counted twice, e.g. {doubled[:3]}"
    return {(r["location_id"], r["zone_id"], r["ts_text"]): r for r in rows}


def truth(lab: Lab, locations: list[int]) -> dict[tuple[int, str], dict[str, int]]:
    wanted = set(locations)
    return {k: v for k, v in expected(lab.api, BRAND, FIRST, LAST, "utc").items() if k[0] in wanted}


def assert_rows(
    rows: dict[tuple[int, str | None, str], dict[str, Any]],
    want: dict[tuple[int, str], dict[str, int]],
    *,
    zone: str | None = None,
    run_id: str | None = None,
) -> None:
    mine = {(k[0], k[2]): r for k, r in rows.items() if k[1] == zone}
    assert set(mine) == set(want), (
        f"missing {len(set(want) - set(mine))}, unexpected {len(set(mine) - set(want))}"
    )
    for key, values in want.items():
        row = mine[key]
        for api_name, column in METRIC_COLUMN.items():
            assert row[column] == values.get(api_name), (key, column)
        if run_id is not None:
            assert row["run_id"] == run_id


def note(lab: Lab) -> dict[str, Any]:
    (body,) = [n["body"] for n in lab.notifications()]
    return dict(body)


def data_keys(lab: Lab) -> list[str]:
    return lab.list_keys(lab.env["DATA_PREFIX"] + "/")


def test_locations_in_batches_of_50_through_v1(sel_lab: Lab) -> None:
    chosen = location_ids(BRAND, 120)[5:112]  # 107 ids: three batches
    response = sel_lab.run({"brandId": BRAND, **RANGE, "locations": chosen})
    (run,) = response["runs"]
    assert run["selection"] == {"kind": "locations", "ids": 107, "variant": "v1"}
    assert [(w["index"], w["part"]) for w in run["windows"]] == [(0, 0)]  # one chain of 3
    assert_rows(by_key(table_rows(sel_lab)), truth(sel_lab, chosen), run_id=run["runId"])
    assert sel_lab.api.stats.data_calls == 3  # one request per batch, no more
    body = note(sel_lab)
    assert body["status"] == "succeeded"
    assert body["refused"] == {"count": 0, "ids": []}


def test_a_large_selection_runs_in_parts_and_checkpoints_inside_them(
    sel_lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Short timeouts, so a request fits in the short budget that forces checkpoints.
    monkeypatch.setattr(
        wiring, "RETRY_POLICY", RetryPolicy(connect_timeout_s=1.0, read_timeout_s=1.0)
    )
    sel_lab.configure()
    ours = location_ids(BRAND, 120)
    unknown = list(range(555_500_001, 555_501_001))  # 1,000 ids no brand has
    chosen = [*unknown[:500], *ours, *unknown[500:]]  # 23 batches: parts of 20 and 3
    response = sel_lab.invoke(
        {"brandId": BRAND, **RANGE, "locations": chosen, "skipUnauthorized": True}
    )
    (run,) = response["runs"]
    assert [(w["index"], w["part"]) for w in run["windows"]] == [(0, 0), (1, 1)]
    sel_lab.drain(budget_ms=2_010)  # a request or a few an invocation, then a checkpoint
    assert_rows(by_key(table_rows(sel_lab)), truth(sel_lab, ours), run_id=run["runId"])
    body = note(sel_lab)
    assert body["refused"]["count"] == 1_000
    assert sel_lab.api.stats.data_calls == 23  # each batch asked for once
    state = f"{sel_lab.env['STATE_PREFIX']}/runs/{run['runId']}/"
    manifest = _json(sel_lab.s3.get_object(Bucket=sel_lab.bucket, Key=state + "manifest.json"))
    assert manifest["steps"] > 2  # the parts' chains went through checkpoints


def test_v4_writes_every_bucket_and_zeros_as_zero(sel_lab: Lab) -> None:
    chosen = location_ids(BRAND, 120)[:4]
    sel_lab.run({"brandId": BRAND, **RANGE, "locations": chosen, "zeroFill": True})
    rows = by_key(table_rows(sel_lab))
    assert len(rows) == 4 * HOURS  # complete series: one row per location and hour
    want = truth(sel_lab, chosen)
    zeros = 0
    for (loc, _, ts), row in rows.items():
        values = want.get((loc, ts), {})
        for api_name, column in METRIC_COLUMN.items():
            assert row[column] == values.get(api_name, 0), (loc, ts, column)
            zeros += row[column] == 0
    assert zeros > 0  # the fake has quiet hours: they are 0, not null and not missing


def test_v1_refuses_the_run_when_one_id_is_not_ours(sel_lab: Lab) -> None:
    theirs = location_ids(OTHER, 3)[0]
    sel_lab.run({"brandId": BRAND, **RANGE, "locations": [*location_ids(BRAND, 3), theirs]})
    body = note(sel_lab)
    assert body["status"] == "failed"
    assert str(theirs) in body["error"]
    assert data_keys(sel_lab) == []


def test_v4_refuses_like_v1(sel_lab: Lab) -> None:
    theirs = location_ids(OTHER, 3)[1]
    event = {"brandId": BRAND, **RANGE, "locations": [theirs], "zeroFill": True}
    sel_lab.run(event)
    body = note(sel_lab)
    assert (body["status"], str(theirs) in body["error"]) == ("failed", True)
    assert data_keys(sel_lab) == []


def test_v2_exports_what_is_allowed_and_lists_the_rest(sel_lab: Lab) -> None:
    ours = location_ids(BRAND, 120)[:60]
    theirs = location_ids(OTHER, 3)
    # 63 ids: the second batch (13 ids) holds all of brand 777's, refused whole (401).
    chosen = [*ours[:50], *theirs, *ours[50:]]
    response = sel_lab.run(
        {"brandId": BRAND, **RANGE, "locations": chosen, "skipUnauthorized": True}
    )
    run_id = response["runs"][0]["runId"]
    assert_rows(by_key(table_rows(sel_lab)), truth(sel_lab, ours), run_id=run_id)
    body = note(sel_lab)
    assert body["status"] == "succeeded"
    assert body["refused"] == {"count": 3, "ids": sorted(theirs)}
    state = f"{sel_lab.env['STATE_PREFIX']}/runs/{run_id}/"
    manifest = sel_lab.s3.get_object(Bucket=sel_lab.bucket, Key=state + "manifest.json")
    assert _json(manifest)["refused"] == sorted(theirs)
    status = sel_lab.s3.get_object(Bucket=sel_lab.bucket, Key=state + "status.json")
    assert _json(status)["refused"] == sorted(theirs)


def test_v2_with_every_id_refused_fails_the_run(sel_lab: Lab) -> None:
    theirs = location_ids(OTHER, 3)
    sel_lab.run({"brandId": BRAND, **RANGE, "locations": theirs, "skipUnauthorized": True})
    body = note(sel_lab)
    assert body["status"] == "failed"
    assert "refused" in body["error"]
    assert data_keys(sel_lab) == []


def test_reference_numbers_fill_the_reference_column(sel_lab: Lab) -> None:
    chosen = location_ids(BRAND, 120)[10:13]
    refs = [reference_number(loc) for loc in chosen]
    sel_lab.run({"brandId": BRAND, **RANGE, "referenceNumbers": refs})
    rows = by_key(table_rows(sel_lab))
    assert_rows(rows, truth(sel_lab, chosen))
    # Every row carries its location's reference (a dark location has no rows at all).
    assert {r["reference_number"] for r in rows.values()} == {
        reference_number(loc) for loc, _ in truth(sel_lab, chosen)
    }
    for row in rows.values():
        assert row["reference_number"] == reference_number(row["location_id"])


def test_a_selection_rerun_keeps_every_other_location(sel_lab: Lab) -> None:
    everyone = location_ids(BRAND, 120)
    first = sel_lab.run({"brandId": BRAND, **RANGE})["runs"][0]["runId"]
    sel_lab.notifications()
    chosen = [everyone[3], everyone[57], everyone[99]]
    second = sel_lab.run({"brandId": BRAND, **RANGE, "locations": chosen})["runs"][0]["runId"]
    rows = by_key(table_rows(sel_lab))
    want = truth(sel_lab, everyone)
    assert_rows(rows, want)  # every location of every hour exactly once
    for (loc, _, _), row in rows.items():
        assert row["run_id"] == (second if loc in chosen else first), loc


def test_a_whole_brand_rerun_after_a_selection_replaces_everything(sel_lab: Lab) -> None:
    everyone = location_ids(BRAND, 120)
    sel_lab.run({"brandId": BRAND, **RANGE, "locations": everyone[:7]})
    zone = zone_id(everyone[0])
    sel_lab.run({"brandId": BRAND, **RANGE, "zoneId": zone})
    last = sel_lab.run({"brandId": BRAND, **RANGE})["runs"][0]["runId"]
    rows = by_key(table_rows(sel_lab))
    assert_rows(rows, truth(sel_lab, everyone), run_id=last)
    # A whole-brand run replaces whole partitions: the zone export went too.
    assert {k[1] for k in rows} == {None}


def test_a_zone_export_sits_beside_the_location_rows(sel_lab: Lab) -> None:
    everyone = location_ids(BRAND, 120)
    sel_lab.run({"brandId": BRAND, **RANGE})
    zone = zone_id(everyone[8])
    sel_lab.run({"brandId": BRAND, **RANGE, "zoneId": zone.upper()})
    rows = by_key(table_rows(sel_lab))
    assert_rows(rows, truth(sel_lab, everyone))  # location rows untouched
    assert_rows(rows, truth(sel_lab, [everyone[8]]), zone=zone)  # the zone's own series
    # Summing locations without double counting the zone: leave zone rows out.
    con = sel_lab.table()
    (total,) = con.execute("SELECT sum(visits) FROM metrics WHERE zone_id IS NULL").fetchone()
    assert total == sum(v.get("visits", 0) for v in truth(sel_lab, everyone).values())


def test_an_older_selection_committing_last_loses_to_a_newer_whole_brand_run(
    sel_lab: Lab,
) -> None:
    everyone = location_ids(BRAND, 120)
    sel_lab.invoke({"brandId": BRAND, **RANGE, "locations": everyone[:3]})
    older_messages = _take_all(sel_lab)
    newer = sel_lab.run({"brandId": BRAND, **RANGE})["runs"][0]["runId"]
    for body in older_messages:  # the older selection finishes (and commits) last
        sel_lab.sqs.send_message(QueueUrl=sel_lab.queue_url, MessageBody=body)
    sel_lab.drain()
    assert_rows(by_key(table_rows(sel_lab)), truth(sel_lab, everyone), run_id=newer)


def _take_all(lab: Lab) -> list[str]:
    bodies: list[str] = []
    while got := lab.sqs.receive_message(QueueUrl=lab.queue_url, MaxNumberOfMessages=10).get(
        "Messages", []
    ):
        for m in got:
            bodies.append(m["Body"])
            lab.sqs.delete_message(QueueUrl=lab.queue_url, ReceiptHandle=m["ReceiptHandle"])
    return bodies


def _json(answer: Any) -> Any:
    import json  # noqa: PLC0415

    return json.loads(answer["Body"].read())
