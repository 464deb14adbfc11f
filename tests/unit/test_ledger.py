"""The ledger's moves, one by one, on in-memory ports (run.ledger)."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from exporter.planning import Window
from exporter.run.counters import Counters
from exporter.run.keys import Layout
from exporter.run.ledger import Ledger
from exporter.run.records import RunPlan, StagedObject, StepRecord, Task, make_run_id
from exporter.selection import Selection
from tests.fakes import MemoryQueue, MemoryStore

NOW = datetime(2023, 7, 1, 3, 30, tzinfo=UTC)
LAYOUT = Layout("state", "data")


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def a_plan(selection: Selection | None = None, windows: int = 2) -> RunPlan:
    days = [Window(i, date(2023, 6, 1 + i), date(2023, 6, 1 + i)) for i in range(windows)]
    return RunPlan(
        run_id=make_run_id(NOW, 5, "r"),
        brand_id=5,
        first_day=date(2023, 6, 1),
        last_day=date(2023, 6, windows),
        basis="utc",
        trigger="on-demand",
        started_at="2023-07-01T03:30:00.000Z",
        windows=tuple(days),
        selection=selection,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def parts(clock: Clock) -> tuple[Ledger, MemoryStore, MemoryQueue, RunPlan]:
    store, queue = MemoryStore(), MemoryQueue()
    ledger = Ledger(store, LAYOUT, clock, queue)
    plan, created = ledger.create_plan(a_plan())
    assert created
    return ledger, store, queue, plan


def task(plan: RunPlan, window: int = 0, step: int = 0) -> Task:
    return Task(plan.run_id, plan.brand_id, window, step, None)


def record(window: int = 0, step: int = 0, rows: int = 1, **more: Any) -> StepRecord:
    staged = StagedObject("2023-06-01", f"staged/w{window}/s{step}", rows, 10)
    return StepRecord(window, step, "a1", None, (staged,), Counters(rows=rows), "t", **more)


def test_a_plan_is_created_once_and_read_back_from_another_ledger(
    parts: tuple[Ledger, MemoryStore, MemoryQueue, RunPlan], clock: Clock
) -> None:
    ledger, store, _, plan = parts
    again, created = ledger.create_plan(plan)
    assert (again, created) == (plan, False)
    assert Ledger(store, LAYOUT, clock).plan(plan.run_id) == plan


def test_a_request_keeps_its_first_sighting(clock: Clock) -> None:
    ledger = Ledger(MemoryStore(), LAYOUT, clock)
    first = ledger.first_sighting("req", NOW)
    assert ledger.first_sighting("req", NOW + timedelta(minutes=5)) == first == NOW
    assert ledger.first_sighting("other", NOW + timedelta(minutes=5)) != NOW


def test_send_then_mark_sends_once_and_marks_only_after_the_send(
    parts: tuple[Ledger, MemoryStore, MemoryQueue, RunPlan],
) -> None:
    ledger, store, queue, plan = parts
    enqueued = LAYOUT.run(plan.run_id, 5).enqueued(0, 0)
    assert ledger.send_then_mark(plan, [task(plan)]) == 1
    assert enqueued in store.objects
    assert ledger.send_then_mark(plan, [task(plan), task(plan, 1)]) == 1
    assert [json.loads(b)["window"] for b in queue.bodies] == [0, 1]


def test_a_failed_send_leaves_no_marker(
    parts: tuple[Ledger, MemoryStore, MemoryQueue, RunPlan],
) -> None:
    _, store, _, plan = parts

    class Broken(MemoryQueue):
        def send(self, bodies: Sequence[str], delay_s: int = 0) -> None:
            raise ConnectionError("queue down")

    ledger = Ledger(store, LAYOUT, Clock(), Broken())
    with pytest.raises(ConnectionError):
        ledger.send_then_mark(plan, [task(plan)])
    assert not [k for k in store.objects if k.endswith(".enqueued")]


def test_back_offs_are_sent_delayed_then_counted(
    parts: tuple[Ledger, MemoryStore, MemoryQueue, RunPlan],
) -> None:
    ledger, store, queue, plan = parts
    step = task(plan, 1, 3)
    assert ledger.back_offs(plan, step) == 0
    ledger.back_off(plan, step, 0, 7, retryAfter=5.0)
    ledger.back_off(plan, step, 1, 14, retryAfter=5.0)
    assert ledger.back_offs(plan, step) == 2
    assert [delay for _, delay in queue.sent] == [7, 14]
    marker = json.loads(store.objects[LAYOUT.run(plan.run_id, 5).backoff(1, 3, 1)])
    assert marker["delaySeconds"] == 14 and marker["retryAfter"] == 5.0


def test_the_first_step_record_wins_and_a_loser_deletes_what_it_staged(
    parts: tuple[Ledger, MemoryStore, MemoryQueue, RunPlan],
) -> None:
    ledger, store, _, plan = parts
    first = record(rows=1)
    loser = StepRecord(0, 0, "a2", None, (StagedObject("d", "staged/b", 2, 1),), Counters(), "t")
    for staged in (*first.objects, *loser.objects):
        store.put(staged.key, b"x")
    assert ledger.record_step(plan, first)
    assert not ledger.record_step(plan, loser)
    assert "staged/b" not in store.objects and first.objects[0].key in store.objects
    assert ledger.step_record(plan, 0, 0) == first
    assert ledger.open_step(plan, task(plan)).record == first


def test_a_cancel_request_stands_when_it_comes_first(
    parts: tuple[Ledger, MemoryStore, MemoryQueue, RunPlan],
) -> None:
    ledger, _, _, plan = parts
    keys = ledger.keys(plan)
    answer = ledger.request_cancel(keys, "alice")
    assert answer.outcome == "requested" and answer.slot["requestedBy"] == "alice"
    assert ledger.request_cancel(keys, "bob").outcome == "already-requested"
    assert ledger.close_cancel_slot(plan, failed=False) == answer.slot
    assert ledger.cancel_request(keys) == answer.slot
    assert ledger.open_step(plan, task(plan)).cancel == answer.slot


def test_a_cancel_is_refused_once_the_finisher_closed_the_slot(
    parts: tuple[Ledger, MemoryStore, MemoryQueue, RunPlan],
) -> None:
    ledger, _, _, plan = parts
    keys = ledger.keys(plan)
    assert ledger.close_cancel_slot(plan, failed=False) is None
    answer = ledger.request_cancel(keys, "alice")
    assert answer.outcome == "refused" and answer.slot["reason"] == "commit has begun"
    assert ledger.cancel_request(keys) is None
    assert ledger.documents(keys).cancel is None


def test_a_lease_holds_until_its_deadline_then_the_next_number_is_free(
    parts: tuple[Ledger, MemoryStore, MemoryQueue, RunPlan], clock: Clock
) -> None:
    ledger, _, _, plan = parts
    assert not ledger.finishing_began(plan)
    assert ledger.take_lease(plan, "a", 60.0) == 0
    assert ledger.finishing_began(plan)
    assert ledger.take_lease(plan, "b", 60.0) is None
    clock.now = NOW + timedelta(seconds=61)
    assert ledger.take_lease(plan, "b", 60.0) == 1


def test_the_first_failure_wins_and_is_read_bounded(
    parts: tuple[Ledger, MemoryStore, MemoryQueue, RunPlan],
) -> None:
    ledger, _, _, plan = parts
    assert ledger.failure(ledger.keys(plan)) is None
    assert ledger.record_failure(plan, "first\nreason")
    assert not ledger.record_failure(plan, "second")
    ending = ledger.ending(plan)
    assert ending.failure == "first reason" and not ending.notified
    assert ledger.open_step(plan, task(plan)).failed


def test_done_markers_count_windows_and_notified_is_marked_once(
    parts: tuple[Ledger, MemoryStore, MemoryQueue, RunPlan],
) -> None:
    ledger, _, _, plan = parts
    ledger.mark_done(plan, 1, 3)
    ledger.mark_done(plan, 1, 3)
    assert ledger.ending(plan).windows_done == 1
    ledger.mark_notified(plan)
    assert ledger.notified(plan) and ledger.ending(plan).notified


def test_a_running_status_never_reopens_a_final_one_nor_lowers_windows_done(
    parts: tuple[Ledger, MemoryStore, MemoryQueue, RunPlan],
) -> None:
    ledger, store, _, plan = parts
    keys = ledger.keys(plan)
    ledger.announce(plan)
    assert json.loads(store.objects[keys.history])["state"] == "running"
    ledger.report_progress(plan, windows_done=2)
    ledger.report_progress(plan, windows_done=1)
    assert json.loads(store.objects[keys.status])["windowsDone"] == 2
    ledger.report_final(plan, "failed", 1, error="boom")
    ledger.report_progress(plan, windows_done=2)
    for key in (keys.status, keys.history):
        assert json.loads(store.objects[key])["state"] == "failed"


def test_progress_of_sums_the_windows_and_rereads_only_those_that_moved(
    parts: tuple[Ledger, MemoryStore, MemoryQueue, RunPlan],
) -> None:
    ledger, store, _, plan = parts
    ledger.write_progress(plan, 0, {"rows": 3, "bytes": 30, "apiCalls": 2, "refused": [9]})
    ledger.write_progress(plan, 1, {"rows": 4, "pages": 1, "refused": ["x"]})
    seen: dict[str, tuple[str, dict[str, Any]]] = {}
    counters, refused = ledger.progress_of(ledger.keys(plan), seen)
    assert (counters.rows, counters.bytes, counters.pages, counters.api_calls) == (7, 30, 1, 2)
    assert refused == [9, "x"]
    ledger.write_progress(plan, 1, {"rows": 6})
    reads: list[str] = []
    original = store.get

    def counting(key: str) -> bytes | None:
        reads.append(key)
        return original(key)

    store.get = counting  # type: ignore[method-assign]
    counters, _ = ledger.progress_of(ledger.keys(plan), seen)
    assert counters.rows == 9
    assert reads == [ledger.keys(plan).progress(1)]


@pytest.mark.parametrize(("variant", "fails"), [("v2", True), ("v1", False), ("v4", False)])
def test_only_a_variant_that_skips_refusals_fails_when_every_id_was_refused(
    clock: Clock, variant: str, fails: bool
) -> None:
    store = MemoryStore()
    ledger = Ledger(store, LAYOUT, clock)
    plan, _ = ledger.create_plan(a_plan(Selection("locations", (1, 2), variant), windows=1))
    assert ledger.record_step(plan, record(rows=0, refused=(2, 1)))
    error = ledger.fail_if_all_refused(plan)
    assert (error is not None) is fails
    if fails:
        assert error == "API: every requested id was refused (401): 1, 2; nothing to export"
        assert ledger.failure(ledger.keys(plan)) == error


def test_a_selection_with_one_exported_location_does_not_fail(clock: Clock) -> None:
    ledger = Ledger(MemoryStore(), LAYOUT, clock)
    plan, _ = ledger.create_plan(a_plan(Selection("locations", (1, 2), "v2"), windows=1))
    ledger.record_step(plan, record(locations=(1,), refused=(2,)))
    assert ledger.fail_if_all_refused(plan) is None


def test_a_ledger_without_a_queue_cannot_send(clock: Clock) -> None:
    ledger = Ledger(MemoryStore(), LAYOUT, clock)
    plan, _ = ledger.create_plan(a_plan())
    with pytest.raises(RuntimeError, match="no queue"):
        ledger.send_then_mark(plan, [task(plan)])


def test_a_runs_markers_go_out_side_by_side_after_every_send(clock: Clock) -> None:
    sent: list[str] = []

    class Queue(MemoryQueue):
        def send(self, bodies: Sequence[str], delay_s: int = 0) -> None:
            sent.extend(bodies)
            super().send(bodies, delay_s)

    # The first three markers only get past this together (one by one, the
    # barrier breaks and the start fails); each notes how many were sent by then.
    together = threading.Barrier(3, timeout=5)
    sent_before: list[int] = []

    class Store(MemoryStore):
        def put_if_absent(self, key: str, body: bytes, content_type: str = "") -> bool:
            if key.endswith(".enqueued"):
                sent_before.append(len(sent))
                if len(sent_before) <= 3:
                    together.wait()
            return super().put_if_absent(key, body)

    ledger = Ledger(Store(), LAYOUT, clock, Queue())
    plan, _ = ledger.create_plan(a_plan(windows=12))
    assert ledger.send_then_mark(plan, [task(plan, w) for w in range(12)], new_run=True) == 12
    assert sent_before == [12] * 12
    # A retried start finds every marker (looked for side by side) and sends nothing.
    assert ledger.send_then_mark(plan, [task(plan, w) for w in range(12)]) == 0
    assert len(sent) == 12
