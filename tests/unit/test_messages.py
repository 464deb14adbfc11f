"""How a queue message's errors become reject / fail / last-delivery fail / redeliver."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest

from exporter.config import Settings
from exporter.errors import MalformedResponse, TransientError
from exporter.events import RunRequest
from exporter.run.context import Invocation
from exporter.run.messages import handle_message
from exporter.run.records import Task
from exporter.run.start import enqueue_windows, plan_runs
from tests.fakes import Memory, ScriptedPages, memory_context

NOW = datetime(2023, 7, 1, tzinfo=UTC)
INV = Invocation("message-1", lambda: 600_000)


class FailingPages(ScriptedPages):
    def __init__(self, error: Callable[[], Exception]) -> None:
        super().__init__()
        self.error = error

    def fetch_v3(self, *args: Any, **kwargs: Any) -> tuple[list[Any], str | None]:
        self.stats.calls += 1
        raise self.error()


def started(settings: Settings, pages: Any) -> tuple[Memory, str]:
    memory = memory_context(settings, pages, lambda: NOW)
    request = RunRequest("on-demand", (5,), date(2023, 6, 1), date(2023, 6, 1), "utc", NOW, "r")
    (plan,) = plan_runs(memory.ctx, request)
    enqueue_windows(memory.ctx, plan)
    return memory, plan.run_id


def earlier_deliveries(memory: Memory, body: str, settings: Settings) -> None:
    """Every delivery but the last, each failing (the run counts deliveries itself: a
    claimed receive count alone ends nothing)."""
    for receive_count in range(1, settings.max_receive_count):
        with pytest.raises(TransientError):
            handle_message(memory.ctx, body, receive_count, INV)


def notifications(memory: Memory) -> list[dict[str, Any]]:
    return [json.loads(message) for _, message, _ in memory.publisher.messages]


def objects_under(memory: Memory, prefix: str) -> list[str]:
    return [k for k in memory.store.objects if k.startswith(prefix)]


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        '{"v": 2, "runId": "x", "brandId": 1, "window": 0, "step": 0}',
        json.dumps(
            {
                "v": 2,
                "runId": "20230701T000000000Z-b5-00000000",
                "brandId": 5,
                "window": 0,
                "step": 0,
                "cursor": None,
            }
        ),  # no such run
    ],
)
def test_a_message_that_is_not_our_checkpoint_is_rejected(settings: Settings, body: str) -> None:
    memory, _ = started(settings, ScriptedPages())
    before = dict(memory.store.objects)
    handle_message(memory.ctx, body, 1, INV)  # returns: SQS deletes it, never retried
    assert memory.store.objects == before
    assert memory.publisher.messages == []


def test_a_forged_checkpoint_of_a_real_run_is_rejected(settings: Settings) -> None:
    memory, run_id = started(settings, ScriptedPages())
    handle_message(memory.ctx, Task(run_id, 5, 0, 3, "c9").to_body(), 1, INV)
    assert objects_under(memory, "wifi/_exports/runs/" + run_id + "/steps/w0/s") == [
        f"wifi/_exports/runs/{run_id}/steps/w0/s0.enqueued"
    ]
    assert memory.publisher.messages == []


def test_a_permanent_error_fails_the_run_once(settings: Settings) -> None:
    memory, run_id = started(settings, FailingPages(lambda: MalformedResponse("bad page")))
    body = memory.queue.bodies.pop(0)
    handle_message(memory.ctx, body, 1, INV)
    handle_message(memory.ctx, body, 2, INV)  # a duplicate delivery changes nothing
    (note,) = notifications(memory)
    assert (note["status"], note["error"], note["runId"]) == ("failed", "bad page", run_id)
    assert objects_under(memory, "wifi/metrics/") == []


def test_a_transient_error_is_redelivered_before_the_last_delivery(settings: Settings) -> None:
    memory, _ = started(settings, FailingPages(lambda: TransientError("HTTP 503")))
    body = memory.queue.bodies.pop(0)
    for receive_count in range(1, settings.max_receive_count):
        with pytest.raises(TransientError, match="503"):
            handle_message(memory.ctx, body, receive_count, INV)
    assert memory.publisher.messages == []


def test_the_last_delivery_fails_the_run_instead_of_going_silent(settings: Settings) -> None:
    memory, run_id = started(settings, FailingPages(lambda: TransientError("HTTP 503")))
    body = memory.queue.bodies.pop(0)
    earlier_deliveries(memory, body, settings)
    handle_message(memory.ctx, body, settings.max_receive_count, INV)  # no raise: no DLQ
    (note,) = notifications(memory)
    assert note["status"] == "failed"
    assert note["error"] == "gave up after 5 deliveries: TransientError: HTTP 503"
    assert memory.store.exists(f"wifi/_exports/runs/{run_id}/failed.json")


def test_an_unexpected_exception_counts_as_transient(settings: Settings) -> None:
    memory, _ = started(settings, FailingPages(lambda: KeyError("surprise")))
    body = memory.queue.bodies.pop(0)
    # Redelivered; what leaves names the type only (its text may quote a request).
    with pytest.raises(TransientError) as raised:
        handle_message(memory.ctx, body, 1, INV)
    assert str(raised.value) == "KeyError"
    for receive_count in range(2, settings.max_receive_count):
        with pytest.raises(TransientError):
            handle_message(memory.ctx, body, receive_count, INV)
    handle_message(memory.ctx, body, settings.max_receive_count, INV)
    (note,) = notifications(memory)
    assert note["error"] == "gave up after 5 deliveries: KeyError"


def test_a_run_being_committed_is_not_failed_but_kept_alive(settings: Settings) -> None:
    memory, run_id = started(settings, FailingPages(lambda: TransientError("HTTP 503")))
    # Another invocation holds the finishing lease: partitions may be half replaced.
    memory.store.put(f"wifi/_exports/runs/{run_id}/commit/lease-000000.json", b"{}")
    body = memory.queue.bodies.pop(0)
    earlier_deliveries(memory, body, settings)
    with pytest.raises(TransientError, match="being committed"):
        handle_message(memory.ctx, body, settings.max_receive_count, INV)
    assert not memory.store.exists(f"wifi/_exports/runs/{run_id}/failed.json")
    assert memory.publisher.messages == []


def test_a_claimed_receive_count_alone_ends_nothing(settings: Settings) -> None:
    memory, run_id = started(settings, FailingPages(lambda: TransientError("HTTP 503")))
    body = memory.queue.bodies.pop(0)
    with pytest.raises(TransientError):  # the run has seen one delivery: redelivered
        handle_message(memory.ctx, body, settings.max_receive_count, INV)
    assert memory.publisher.messages == []
    assert not memory.store.exists(f"wifi/_exports/runs/{run_id}/failed.json")


def test_a_killed_delivery_makes_the_last_one_fail_the_run(settings: Settings) -> None:
    memory, run_id = started(settings, FailingPages(lambda: TransientError("HTTP 503")))
    body = memory.queue.bodies.pop(0)
    for receive_count in range(1, settings.max_receive_count - 1):
        with pytest.raises(TransientError):
            handle_message(memory.ctx, body, receive_count, INV)
    # The next delivery begins and is killed (out of memory): no exception, no end.
    ledger = memory.ctx.ledger
    ledger.count_delivery(ledger.plan(run_id), Task.from_body(body))
    handle_message(memory.ctx, body, settings.max_receive_count, INV)
    (note,) = notifications(memory)
    assert note["status"] == "failed"
    assert "killed" in note["error"] and "after 5 deliveries" in note["error"]


def test_max_receive_count_is_read_from_the_settings(settings: Settings) -> None:
    strict = replace(settings, max_receive_count=1)
    memory, _ = started(strict, FailingPages(lambda: TransientError("HTTP 503")))
    handle_message(memory.ctx, memory.queue.bodies.pop(0), 1, INV)
    assert [n["status"] for n in notifications(memory)] == ["failed"]
