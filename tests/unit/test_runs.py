"""The run protocol on in-memory ports and a scripted page source: no network, no moto."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest

from exporter.config import Settings
from exporter.errors import InvalidTask, MalformedResponse
from exporter.events import RunRequest
from exporter.run.context import Invocation, RunContext
from exporter.run.records import Task
from exporter.run.start import enqueue_windows, plan_runs
from exporter.run.step import run_step
from tests.fakes import MemoryPublisher, MemoryQueue, MemoryStore, ScriptedPages, memory_context

NOW = datetime(2023, 7, 1, tzinfo=UTC)


Pages = ScriptedPages


def make(
    settings: Settings, pages: Pages
) -> tuple[RunContext, MemoryStore, MemoryQueue, MemoryPublisher]:
    memory = memory_context(settings, pages, lambda: NOW)
    return memory.ctx, memory.store, memory.queue, memory.publisher


def request(first: date, last: date, key: str = "r1", at: datetime = NOW) -> RunRequest:
    return RunRequest("on-demand", (5,), first, last, "utc", at, key)


def run_all(ctx: RunContext, queue: MemoryQueue, budget_ms: int = 600_000) -> int:
    invocations = 0
    while queue.bodies:
        body = queue.bodies.pop(0)
        run_step(ctx, Task.from_body(body), Invocation(f"m{invocations}", lambda: budget_ms))
        invocations += 1
    return invocations


def table(store: MemoryStore) -> dict[str, list[dict[str, Any]]]:
    return {
        key: [json.loads(line) for line in gzip.decompress(body).splitlines()]
        for key, body in store.objects.items()
        if key.startswith("wifi/metrics/")
    }


def test_one_window_run_commits_and_notifies_once(settings: Settings) -> None:
    ctx, store, queue, publisher = make(settings, Pages())
    (started,) = plan_runs(ctx, request(date(2023, 6, 1), date(2023, 6, 1)))
    enqueue_windows(ctx, started)
    assert run_all(ctx, queue) == 1
    data = table(store)
    assert [k.rsplit("/", 1)[1] for k in data] == [f"{started.run_id}-w0-s0.json.gz"]
    assert [r["visits"] for rows in data.values() for r in rows] == [1, 2, 3]
    (_subject, message, attributes) = publisher.messages[0]
    assert len(publisher.messages) == 1
    assert attributes == {"status": "succeeded", "brandId": "5"}
    assert json.loads(message)["totals"]["rows"] == 3


def test_a_step_that_runs_out_of_time_checkpoints(settings: Settings) -> None:
    ctx, store, queue, _ = make(settings, Pages())
    (started,) = plan_runs(ctx, request(date(2023, 6, 1), date(2023, 6, 1)))
    enqueue_windows(ctx, started)
    # Less time than the margin: one page per invocation, then a checkpoint.
    assert run_all(ctx, queue, budget_ms=settings.time_safety_margin_ms - 1) == 3
    assert len(table(store)) == 3


def test_duplicate_step_message_is_absorbed(settings: Settings) -> None:
    ctx, store, queue, publisher = make(settings, Pages())
    (started,) = plan_runs(ctx, request(date(2023, 6, 1), date(2023, 6, 1)))
    enqueue_windows(ctx, started)
    queue.bodies.append(queue.bodies[0])
    run_all(ctx, queue, budget_ms=settings.time_safety_margin_ms - 1)
    assert sum(len(rows) for rows in table(store).values()) == 3
    assert len(publisher.messages) == 1


def test_repeating_cursor_is_a_malformed_response(settings: Settings) -> None:
    ctx, _, queue, _ = make(settings, Pages(locations=5, repeat_cursor=True))
    (started,) = plan_runs(ctx, request(date(2023, 6, 1), date(2023, 6, 1)))
    enqueue_windows(ctx, started)
    with pytest.raises(MalformedResponse, match="repeats"):
        run_all(ctx, queue)


def test_newest_run_owns_a_partition_whatever_the_commit_order(settings: Settings) -> None:
    ctx, store, queue, _ = make(settings, Pages())
    older = plan_runs(ctx, request(date(2023, 6, 1), date(2023, 6, 1), "a", NOW))[0]
    newer = plan_runs(ctx, request(date(2023, 6, 1), date(2023, 6, 1), "b", NOW.replace(second=1)))[
        0
    ]
    store.put("wifi/metrics/brand_id=5/time_basis=utc/dt=2023-06-01/uploaded-by-hand.json.gz", b"")
    enqueue_windows(ctx, newer)
    run_all(ctx, queue)  # the newer run commits first
    enqueue_windows(ctx, older)
    run_all(ctx, queue)  # then the older one: its copy must not stay
    names = sorted(k.rsplit("/", 1)[1] for k in store.objects if k.startswith("wifi/metrics/"))
    assert names == [f"{newer.run_id}-w0-s0.json.gz", "uploaded-by-hand.json.gz"]


def test_forged_task_for_another_brand_is_refused(settings: Settings) -> None:
    ctx, _, _, _ = make(settings, Pages())
    (started,) = plan_runs(ctx, request(date(2023, 6, 1), date(2023, 6, 1)))
    with pytest.raises(InvalidTask, match="plan"):
        run_step(ctx, Task(started.run_id, 6, 0, 0, None), Invocation("m", lambda: 600_000))


def test_a_retried_start_reuses_its_runs(settings: Settings) -> None:
    ctx, _, _, _ = make(settings, Pages())
    first = plan_runs(ctx, request(date(2023, 6, 1), date(2023, 6, 1), "req-7", NOW))
    retry = plan_runs(
        ctx, request(date(2023, 6, 1), date(2023, 6, 1), "req-7", NOW.replace(minute=5))
    )
    other = plan_runs(ctx, request(date(2023, 6, 1), date(2023, 6, 1), "req-8", NOW))
    assert [p.run_id for p in retry] == [p.run_id for p in first]
    assert other[0].run_id != first[0].run_id


@pytest.mark.parametrize(
    ("step", "cursor", "problem"),
    [
        (0, "c1", "starts without a cursor"),
        (2, "c2", "never recorded"),
        (1, "c9", "does not continue"),
    ],
)
def test_checkpoints_must_continue_the_recorded_chain(
    settings: Settings, step: int, cursor: str, problem: str
) -> None:
    ctx, _, queue, _ = make(settings, Pages())
    (started,) = plan_runs(ctx, request(date(2023, 6, 1), date(2023, 6, 1)))
    enqueue_windows(ctx, started)
    short = Invocation("m", lambda: settings.time_safety_margin_ms - 1)
    if step > 0:
        run_step(ctx, Task.from_body(queue.bodies.pop(0)), short)  # step 0, next: c1
    with pytest.raises(InvalidTask, match=problem):
        run_step(ctx, Task(started.run_id, 5, 0, step, cursor), short)


class RepeatingPages(Pages):
    def fetch_v3(self, *args: Any, **kwargs: Any) -> tuple[list[Any], str | None]:
        data, cursor = super().fetch_v3(*args, **kwargs)
        data[0]["locationId"] = 1  # every page returns location 1 again
        return data, cursor


@pytest.mark.parametrize("budget_ms", [600_000, 1])
def test_a_location_returned_twice_in_a_window_is_malformed(
    settings: Settings, budget_ms: int
) -> None:
    """On a later page of the same invocation, or in a later invocation (budget 1 ms)."""
    ctx, store, queue, _ = make(settings, RepeatingPages())
    (started,) = plan_runs(ctx, request(date(2023, 6, 1), date(2023, 6, 1)))
    enqueue_windows(ctx, started)
    with pytest.raises(MalformedResponse, match="location 1 twice"):
        run_all(ctx, queue, budget_ms=budget_ms)
    assert table(store) == {}


def test_a_commit_settles_its_days_side_by_side(settings: Settings) -> None:
    ctx, store, queue, publisher = make(settings, Pages())
    (started,) = plan_runs(ctx, request(date(2023, 6, 1), date(2023, 6, 6)))
    enqueue_windows(ctx, started)
    # The first three days' LISTs only get past this together: one day after
    # another, the first waits alone until the barrier breaks and fails the commit.
    together = threading.Barrier(3, timeout=5)
    listed: list[str] = []
    list_keys = store.list_keys
    keys = ctx.keys(started)
    days = {keys.partition(f"2023-06-0{n}") for n in range(1, 7)}

    def listing(prefix: str) -> Iterator[str]:
        if prefix in days:
            listed.append(prefix)
            if len(listed) <= 3:
                together.wait()
        return list_keys(prefix)

    store.list_keys = listing  # type: ignore[method-assign]
    run_all(ctx, queue)
    assert len(set(listed)) == 6
    assert json.loads(publisher.messages[0][1])["status"] == "succeeded"
