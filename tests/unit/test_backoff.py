"""429 storms: a throttled window backs off through the queue (a delayed checkpoint).

Before its first page a step re-sends its own checkpoint with a delay (the chain
stays where it is); after some pages it records them and sends the next step
with the delay. Duplicates and kills between send and mark change nothing.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest

from exporter.config import Settings
from exporter.errors import Throttled
from exporter.events import RunRequest
from exporter.run import step
from exporter.run.context import Invocation
from exporter.run.messages import handle_message
from exporter.run.records import Task
from exporter.run.start import enqueue_windows, plan_runs
from tests.fakes import Memory, ScriptedPages, memory_context

NOW = datetime(2023, 7, 1, tzinfo=UTC)


def inv(n: int = 0) -> Invocation:
    return Invocation(f"m{n}", lambda: 600_000)


class ThrottledPages(ScriptedPages):
    """Scripted pages; the fetches numbered in `throttle` (1-based) answer a 429 storm."""

    def __init__(self, locations: int, throttle: set[int] | None = None, every: bool = False):
        super().__init__(locations)
        self.throttle = throttle or set()
        self.every = every
        self.fetches = 0

    def fetch_v3(self, *args: Any, **kwargs: Any) -> tuple[list[Any], str | None]:
        self.fetches += 1
        if self.every or self.fetches in self.throttle:
            self.stats.calls += 1
            self.stats.throttles += 1
            raise Throttled("v3 page: the API answered 429 3 time(s) in a row", 30.0)
        return super().fetch_v3(*args, **kwargs)


@pytest.fixture(autouse=True)
def no_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(step, "_jitter", lambda: 0.0)


def started(settings: Settings, pages: ScriptedPages) -> tuple[Memory, str]:
    memory = memory_context(settings, pages, lambda: NOW)
    request = RunRequest("on-demand", (5,), date(2023, 6, 1), date(2023, 6, 1), "utc", NOW, "r")
    (plan,) = plan_runs(memory.ctx, request)
    enqueue_windows(memory.ctx, plan)
    return memory, plan.run_id


def take(memory: Memory) -> list[str]:
    bodies, memory.queue.bodies = memory.queue.bodies, []
    return bodies


def deliver(memory: Memory, bodies: list[str]) -> None:
    for n, body in enumerate(bodies):
        handle_message(memory.ctx, body, 1, inv(n))


def drain(memory: Memory) -> None:
    while memory.queue.bodies:
        deliver(memory, take(memory))


def keys(memory: Memory, run_id: str, part: str) -> list[str]:
    prefix = f"wifi/_exports/runs/{run_id}/{part}"
    return sorted(k for k in memory.store.objects if k.startswith(prefix))


def rows(memory: Memory) -> int:
    import gzip  # noqa: PLC0415

    return sum(
        len(gzip.decompress(body).splitlines())
        for key, body in memory.store.objects.items()
        if key.startswith("wifi/metrics/")
    )


def outcome(memory: Memory) -> list[str]:
    return [json.loads(message)["status"] for _, message, _ in memory.publisher.messages]


def test_queue_delay_doubles_and_stops_at_sqs_maximum(monkeypatch: pytest.MonkeyPatch) -> None:
    assert step.queue_delay(0.0) == 1  # at least a second, even for Retry-After: 0
    assert step.queue_delay(30.0) == 30
    assert step.queue_delay(30.0, 2) == 120
    assert step.queue_delay(600.0, 3) == 900
    monkeypatch.setattr(step, "_jitter", lambda: 1.0)
    assert step.queue_delay(30.0) == 45  # up to 50 % jitter


def test_throttled_before_any_page_resends_the_same_step_delayed(settings: Settings) -> None:
    pages = ThrottledPages(3, throttle={1})
    memory, run_id = started(settings, pages)
    (first,) = take(memory)
    deliver(memory, [first])
    # The same checkpoint again, held back by the API's Retry-After; nothing recorded.
    assert memory.queue.sent[-1] == (first, 30)
    assert memory.queue.bodies == [first]
    assert keys(memory, run_id, "steps/w0/s0.json") == []
    assert len(keys(memory, run_id, "backoff/w0/s0/")) == 1
    assert memory.publisher.messages == []
    drain(memory)
    assert outcome(memory) == ["succeeded"]
    assert rows(memory) == 3


def test_a_duplicate_of_a_throttled_message_is_absorbed(settings: Settings) -> None:
    pages = ThrottledPages(3, throttle={1, 2})
    memory, run_id = started(settings, pages)
    (first,) = take(memory)
    deliver(memory, [first, first])  # SQS delivered it twice; both were throttled
    resent = take(memory)
    assert resent == [first, first]  # one message each: neither lost nor multiplied
    assert len(keys(memory, run_id, "backoff/w0/s0/")) == 2  # each throttled delivery counts
    deliver(memory, resent)  # both run step 0: one records it, the other loses
    drain(memory)
    assert outcome(memory) == ["succeeded"]
    assert rows(memory) == 3
    assert keys(memory, run_id, "steps/w0/s0.json") != []


def test_a_step_throttled_on_every_delivery_fails_the_run_once(settings: Settings) -> None:
    memory, _run_id = started(replace(settings, max_receive_count=3), ThrottledPages(3, every=True))
    drain(memory)
    assert outcome(memory) == ["failed"]
    error = json.loads(memory.publisher.messages[0][1])["error"]
    assert "gave up after 3 throttled deliveries" in error
    assert [delay for _, delay in memory.queue.sent[1:]] == [30, 60]  # doubled
    assert rows(memory) == 0


def test_throttled_after_some_pages_records_them_and_delays_the_next_step(
    settings: Settings,
) -> None:
    pages = ThrottledPages(3, throttle={2})
    memory, run_id = started(settings, pages)
    (first,) = take(memory)
    deliver(memory, [first])
    record = json.loads(memory.store.objects[keys(memory, run_id, "steps/w0/s0.json")[0]])
    assert (record["nextCursor"], record["delaySeconds"]) == ("c1", 30)
    (following,) = memory.queue.bodies
    assert Task.from_body(following) == Task(run_id, 5, 0, 1, "c1")
    assert memory.queue.sent[-1] == (following, 30)
    # A duplicate of step 0 resumes after its record: the marker stops a second send.
    deliver(memory, [first])
    assert memory.queue.bodies == [following]
    # Killed between the send and the marker: the re-send keeps the delay.
    del memory.store.objects[f"wifi/_exports/runs/{run_id}/steps/w0/s1.enqueued"]
    deliver(memory, [first])
    assert memory.queue.sent[-1] == (following, 30)
    drain(memory)
    assert outcome(memory) == ["succeeded"]
    assert rows(memory) == 3
