"""Starting runs: the plan, the fan-out, and the scheduled run's inline first window."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest

from exporter.config import Settings
from exporter.errors import MalformedResponse, TransientError
from exporter.events import RunRequest
from exporter.run.context import Invocation
from exporter.run.records import Task
from exporter.run.start import start_runs
from tests.fakes import Memory, ScriptedPages, memory_context

NOW = datetime(2023, 7, 1, 3, 30, tzinfo=UTC)
DAYS = (date(2023, 6, 1), date(2023, 6, 12))  # three windows of at most 5 days


class Raising(ScriptedPages):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def fetch_v3(self, *args: Any, **kwargs: Any) -> tuple[list[Any], str | None]:
        raise self.error


def start(
    settings: Settings, trigger: str, pages: Any = None, remaining_ms: int = 600_000
) -> tuple[Memory, dict[str, Any]]:
    memory = memory_context(settings, pages or ScriptedPages(), lambda: NOW)
    request = RunRequest(trigger, (5,), *DAYS, "utc", NOW, "req-1")  # type: ignore[arg-type]
    answer = start_runs(memory.ctx, request, Invocation("req-1", lambda: remaining_ms))
    return memory, answer


def queued(memory: Memory) -> list[tuple[int, int]]:
    return [(t.window, t.step) for t in map(Task.from_body, memory.queue.bodies)]


def test_on_demand_answers_with_the_plan_and_queues_every_window(settings: Settings) -> None:
    memory, answer = start(settings, "on-demand")
    (run,) = answer["runs"]
    assert [(w["start"], w["end"]) for w in run["windows"]] == [
        ("2023-06-01", "2023-06-05"),
        ("2023-06-06", "2023-06-10"),
        ("2023-06-11", "2023-06-12"),
    ]
    assert run["statusKey"] == f"wifi/_exports/runs/{run['runId']}/status.json"
    assert queued(memory) == [(0, 0), (1, 0), (2, 0)]
    assert memory.publisher.messages == []  # nothing ran yet


def test_scheduled_runs_do_their_first_window_inline(settings: Settings) -> None:
    memory, answer = start(settings, "scheduled")
    run_id = answer["runs"][0]["runId"]
    assert queued(memory) == [(1, 0), (2, 0)]  # window 0 needed no queue hop
    assert memory.store.exists(f"wifi/_exports/runs/{run_id}/done/w0.json")


def test_with_too_little_time_the_first_window_goes_to_the_queue(settings: Settings) -> None:
    memory, answer = start(settings, "scheduled", remaining_ms=settings.time_safety_margin_ms)
    run_id = answer["runs"][0]["runId"]
    assert queued(memory) == [(1, 0), (2, 0), (0, 0)]
    assert not memory.store.exists(f"wifi/_exports/runs/{run_id}/steps/w0/s0.json")


def test_a_transient_inline_failure_hands_the_window_to_the_queue(settings: Settings) -> None:
    memory, _ = start(settings, "scheduled", Raising(TransientError("HTTP 503")))
    assert queued(memory) == [(1, 0), (2, 0), (0, 0)]
    assert memory.publisher.messages == []


def test_a_permanent_inline_failure_fails_the_run_once(settings: Settings) -> None:
    memory, answer = start(settings, "scheduled", Raising(MalformedResponse("no data list")))
    (_, message, attributes) = memory.publisher.messages[0]
    assert len(memory.publisher.messages) == 1
    assert attributes == {"status": "failed", "brandId": "5"}
    assert json.loads(message)["error"] == "no data list"
    run_id = answer["runs"][0]["runId"]
    assert (
        json.loads(memory.store.objects[f"wifi/_exports/runs/{run_id}/status.json"])["state"]
        == "failed"
    )


class BrokenQueue:
    def send(self, bodies: Sequence[str], delay_s: int = 0) -> None:
        raise ConnectionError("queue unavailable")


def test_windows_that_cannot_be_queued_fail_the_run_and_raise(settings: Settings) -> None:
    memory = memory_context(settings, ScriptedPages(), lambda: NOW)
    memory.ctx.queue = BrokenQueue()
    request = RunRequest("on-demand", (5,), *DAYS, "utc", NOW, "req-1")
    with pytest.raises(ConnectionError):
        start_runs(memory.ctx, request, Invocation("req-1", lambda: 600_000))
    (_subject, message, _) = memory.publisher.messages[0]
    assert json.loads(message)["error"] == "could not enqueue the run's windows: ConnectionError"


def test_no_configured_brands_is_a_clear_answer(settings: Settings) -> None:
    memory = memory_context(replace(settings, brand_ids=()), ScriptedPages(), lambda: NOW)
    request = RunRequest("scheduled", (), *DAYS, "utc", NOW, "req-1")
    answer = start_runs(memory.ctx, request, Invocation("req-1", lambda: 600_000))
    assert answer == {"runs": [], "message": "no brands configured (BRAND_IDS is empty)"}
    assert memory.store.objects == {}


def start_brands(
    settings: Settings, brands: tuple[int, ...], trigger: str = "scheduled"
) -> tuple[Memory, dict[str, Any]]:
    memory = memory_context(settings, ScriptedPages(), lambda: NOW)
    request = RunRequest(trigger, brands, *DAYS, "utc", NOW, "req-1")  # type: ignore[arg-type]
    answer = start_runs(memory.ctx, request, Invocation("req-1", lambda: 600_000))
    return memory, answer


def test_many_brands_fan_out_at_once_and_only_the_first_window_runs_inline(
    settings: Settings,
) -> None:
    brands = tuple(range(100, 140))
    memory, answer = start_brands(settings, brands)
    runs = answer["runs"]
    assert [r["brandId"] for r in runs] == list(brands)  # answered in the request's order
    sent = {(t.brand_id, t.window) for t in map(Task.from_body, memory.queue.bodies)}
    # Every window of every brand is queued, but the first brand's first window,
    # which this invocation did itself once the others were out.
    assert sent == {(b, w) for b in brands for w in range(3)} - {(100, 0)}
    first = runs[0]["runId"]
    assert memory.store.exists(f"wifi/_exports/runs/{first}/done/w0.json")
    others_done = [k for k in memory.store.objects if "/done/" in k and first not in k]
    assert others_done == []


def test_with_an_api_budget_every_window_goes_through_the_queue(settings: Settings) -> None:
    memory, _ = start_brands(replace(settings, api_max_rps=10.0), (100, 101))
    sent = {(t.brand_id, t.window) for t in map(Task.from_body, memory.queue.bodies)}
    assert sent == {(b, w) for b in (100, 101) for w in range(3)}
    assert not [k for k in memory.store.objects if "/steps/" in k and k.endswith(".json")]


def test_a_retried_start_sends_nothing_twice(settings: Settings) -> None:
    memory, first = start_brands(settings, (100, 101, 102), "on-demand")
    before = list(memory.queue.bodies)
    request = RunRequest("on-demand", (100, 101, 102), *DAYS, "utc", NOW, "req-1")
    again = start_runs(memory.ctx, request, Invocation("req-1", lambda: 600_000))
    assert [r["runId"] for r in again["runs"]] == [r["runId"] for r in first["runs"]]
    assert memory.queue.bodies == before


class OneBrokenQueue:
    """Refuses the messages of brand 101 only."""

    def __init__(self) -> None:
        self.bodies: list[str] = []

    def send(self, bodies: Sequence[str], delay_s: int = 0) -> None:
        if any(Task.from_body(b).brand_id == 101 for b in bodies):
            raise ConnectionError("queue unavailable")
        self.bodies.extend(bodies)


def test_one_brand_that_cannot_be_queued_holds_up_no_other(settings: Settings) -> None:
    memory = memory_context(settings, ScriptedPages(), lambda: NOW)
    queue = OneBrokenQueue()
    memory.ctx.queue = queue
    request = RunRequest("on-demand", (100, 101, 102), *DAYS, "utc", NOW, "req-1")
    with pytest.raises(ConnectionError):
        start_runs(memory.ctx, request, Invocation("req-1", lambda: 600_000))
    assert {Task.from_body(b).brand_id for b in queue.bodies} == {100, 102}
    ((_, message, attributes),) = memory.publisher.messages
    assert attributes["brandId"] == "101" and json.loads(message)["status"] == "failed"
