"""A run id stamped in the future is refused wherever it is parsed (issue 22): no run
of ours starts later than now, and run ids order runs, so one would win everything."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from exporter.errors import InvalidTask
from exporter.run.keys import Layout
from exporter.run.records import CLOCK_SKEW, Task, is_run_id, make_run_id

FUTURE = "99991231T235959999Z-b1234-00000000"
NOW = datetime(2023, 6, 8, 12, tzinfo=UTC)


def test_the_far_future_and_impossible_stamps_are_no_run_ids() -> None:
    assert not is_run_id(FUTURE)
    assert not is_run_id("20231399T000000000Z-b1234-00000000")  # month 13
    assert is_run_id(make_run_id(datetime.now(UTC), 1234, "r"))


def test_a_small_skew_is_allowed_and_no_more() -> None:
    assert is_run_id(make_run_id(NOW + CLOCK_SKEW, 1, "r"), NOW)
    assert not is_run_id(make_run_id(NOW + CLOCK_SKEW + timedelta(seconds=1), 1, "r"), NOW)


def test_a_checkpoint_or_a_key_naming_a_future_run_is_refused() -> None:
    body = {"v": 2, "runId": FUTURE, "brandId": 1234, "window": 0, "step": 0, "cursor": None}
    with pytest.raises(InvalidTask):
        Task.from_body(json.dumps(body))
    with pytest.raises(InvalidTask):
        Layout("state", "data").plan(FUTURE)
