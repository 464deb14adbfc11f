from __future__ import annotations

import json
from dataclasses import asdict, replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.errors import InvalidTask
from exporter.run.counters import MAX_UNKNOWN_FIELDS, OTHER_FIELDS, Counters
from exporter.run.keys import Layout, run_id_of_data_object
from exporter.run.records import StagedObject, StepRecord, Task, make_run_id

RUN = make_run_id(datetime(2023, 6, 8, 1, 2, 3, 456789, tzinfo=UTC), 1234, "request")


def test_run_ids_sort_by_start_time_and_are_stable() -> None:
    assert make_run_id(datetime(2023, 6, 8, 1, 2, 3, 456789, tzinfo=UTC), 1234, "request") == RUN
    assert RUN.startswith("20230608T010203456Z-b1234-")
    later = make_run_id(datetime(2023, 6, 8, 1, 2, 3, 457000, tzinfo=UTC), 1234, "aaa")
    assert later > RUN
    assert make_run_id(datetime(2023, 6, 8, tzinfo=UTC), 1234, "other") != make_run_id(
        datetime(2023, 6, 8, tzinfo=UTC), 1234, "request"
    )


@given(
    window=st.integers(0, 10_000),
    step=st.integers(0, 10_000),
    cursor=st.none() | st.text(min_size=1, max_size=200),
)
def test_task_round_trip(window: int, step: int, cursor: str | None) -> None:
    task = Task(RUN, 1234, window, step, cursor)
    assert Task.from_body(task.to_body()) == task


def test_version_1_tasks_in_flight_are_still_accepted() -> None:
    """Messages sent by the previous version during an upgrade carry window totals."""
    body = (
        f'{{"v": 1, "runId": "{RUN}", "brandId": 1, "window": 3, "step": 2, "cursor": "c", '
        '"totals": {"rows": 5}}'
    )
    assert Task.from_body(body) == Task(RUN, 1, 3, 2, "c")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("{", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"v": 3}', "unknown version"),
        ('{"v": true}', "unknown version"),
        (
            f'{{"v": 2, "runId": "{RUN}", "brandId": 1, "window": 0, "step": 0, "totals": {{}}}}',
            "unknown field",
        ),
        (
            f'{{"v": 1, "runId": "{RUN}", "brandId": 1, "window": 0, "step": 0, "x": 1}}',
            "unknown field",
        ),
        ('{"v": 1, "runId": "../../etc", "brandId": 1, "window": 0, "step": 0}', "runId"),
        (f'{{"v": 1, "runId": "{RUN}", "brandId": -1, "window": 0, "step": 0}}', "brandId"),
        (f'{{"v": 1, "runId": "{RUN}", "brandId": 1, "window": "0", "step": 0}}', "window"),
        (
            f'{{"v": 1, "runId": "{RUN}", "brandId": 1, "window": 0, "step": 0, "cursor": 5}}',
            "cursor",
        ),
        (
            f'{{"v": 1, "runId": "{RUN}", "brandId": 1, "window": 0, "step": 0, '
            f'"cursor": "{"c" * 9000}"}}',
            "cursor longer",
        ),
        (
            f'{{"v": 1, "runId": "{RUN}", "brandId": 1, "window": 0, "step": 0, '
            '"totals": {"rows": -5}}',
            "totals.rows",
        ),
    ],
)
def test_invalid_tasks_are_refused(body: str, problem: str) -> None:
    with pytest.raises(InvalidTask, match=problem):
        Task.from_body(body)


def test_keys_stay_under_their_prefixes() -> None:
    layout = Layout("state", "data")
    keys = layout.run(RUN, 1234, "utc")
    assert keys.data_object(2, 7, "2023-06-08") == (
        f"data/brand_id=1234/time_basis=utc/dt=2023-06-08/{RUN}-w2-s7.json.gz"
    )
    assert keys.staged(2, 7, "abc", "2023-06-08").startswith(f"state/runs/{RUN}/staged/")
    assert run_id_of_data_object(keys.data_object(2, 7, "2023-06-08")) == RUN
    assert run_id_of_data_object("data/brand_id=1/time_basis=utc/dt=2023-06-08/x.json.gz") is None
    with pytest.raises(InvalidTask):
        layout.run("../x", 1)
    with pytest.raises(InvalidTask):
        layout.plan("../x")


def test_step_records_from_before_the_api_reports_still_read() -> None:
    old = {
        "window": 0,
        "step": 2,
        "attempt": "abc",
        "nextCursor": None,
        "objects": [],
        "totals": {"rows": 5, "bytes": 9, "pages": 1, "api_calls": 1, "retries": 0},
        "finishedAt": "2023-07-01T03:30:00Z",
    }
    record = StepRecord.from_json(json.dumps(old).encode())
    assert record.totals == Counters(rows=5, bytes=9, pages=1, api_calls=1)
    assert (record.totals.irregular_location_days, record.totals.unknown_fields) == (0, {})
    assert record.totals.irregular_days == []
    # ... and the new counters survive the round trip.
    new = replace(
        record,
        totals=Counters(
            rows=5,
            irregular_location_days=3,
            unknown_fields={"a": 2},
            irregular_days=[["2023-10-29", 7, 22]],
        ),
    )
    assert StepRecord.from_json(new.to_json()).totals == new.totals


def test_a_step_record_keeps_every_field_of_its_objects() -> None:
    staged = StagedObject("2023-06-08", "data/x.json.gz", 3, 99, {"7": [1, 3, 7, 12345]})
    record = StepRecord(0, 0, "abc", None, (staged,), Counters(rows=3), "2023-06-08T00:00:00Z")
    assert json.loads(record.to_json())["objects"] == [asdict(staged)]
    assert StepRecord.from_json(record.to_json()).objects == (staged,)


@pytest.mark.parametrize("unknown", [[], {"a": -1}, {"a": True}, {"a": "1"}, {"a": 1.5}], ids=repr)
def test_malformed_unknown_field_counts_are_refused(unknown: object) -> None:
    with pytest.raises(InvalidTask, match="unknown_fields"):
        Counters.from_dict({"rows": 1, "unknown_fields": unknown})


def test_unknown_field_names_are_capped_across_steps() -> None:
    total = Counters()
    for step in range(3):
        names = {f"field{step}_{n}": 1 for n in range(MAX_UNKNOWN_FIELDS // 2)}
        total.add(Counters(unknown_fields={**names, "locationName": 10}))
    assert len(total.unknown_fields) == MAX_UNKNOWN_FIELDS + 1
    assert total.unknown_fields["locationName"] == 30
    assert total.unknown_fields[OTHER_FIELDS] == 3 * (MAX_UNKNOWN_FIELDS // 2) - (
        MAX_UNKNOWN_FIELDS - 1
    )
    assert sum(total.unknown_fields.values()) == 3 * (MAX_UNKNOWN_FIELDS // 2 + 10)
