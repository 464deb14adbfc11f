from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.state import InvalidTask, RunKeys, Task, Totals, make_run_id, run_id_of_data_object

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
    rows=st.integers(0, 10**12),
)
def test_task_round_trip(window: int, step: int, cursor: str | None, rows: int) -> None:
    task = Task(RUN, 1234, window, step, cursor, Totals(rows=rows, pages=step))
    assert Task.from_body(task.to_body()) == task


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("{", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"v": 2}', "unknown version"),
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
    keys = RunKeys("state", "data", RUN, 1234)
    assert keys.data_object(2, 7, "2023-06-08") == (
        f"data/brand_id=1234/dt=2023-06-08/{RUN}-w2-s7.json.gz"
    )
    assert keys.staged(2, 7, "abc", "2023-06-08").startswith(f"state/runs/{RUN}/staged/")
    assert run_id_of_data_object(keys.data_object(2, 7, "2023-06-08")) == RUN
    assert run_id_of_data_object("data/brand_id=1/dt=2023-06-08/user-upload.json.gz") is None
    with pytest.raises(InvalidTask):
        RunKeys("state", "data", "../x", 1)
