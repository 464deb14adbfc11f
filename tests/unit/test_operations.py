"""What the run protocol keeps for operating it (issue 15), on in-memory ports:
the cancel slot, per-window progress, the history index, honest logs, metrics."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime
from typing import Any

import pytest

from exporter import json_codec
from exporter.api_client import AnalytiksClient, RetryPolicy
from exporter.config import Settings
from exporter.errors import OutOfTime, TransientError
from exporter.events import RunRequest
from exporter.ports import Credentials
from exporter.run import finish
from exporter.run.context import Invocation, RunContext
from exporter.run.keys import Layout, brand_of_run_id
from exporter.run.records import RunPlan, Task
from exporter.run.start import enqueue_windows, plan_runs
from exporter.run.step import run_step
from tests.fakes import MemoryPublisher, MemoryQueue, MemoryStore, ScriptedPages, memory_context

NOW = datetime(2023, 7, 1, 3, 30, tzinfo=UTC)
CANCEL = json_codec.dumps({"cancel": True, "requestedAt": "2023-07-01T03:31:00.000Z"})


def start(
    settings: Settings, pages: Any = None, days: int = 1
) -> tuple[RunContext, MemoryStore, MemoryQueue, MemoryPublisher, RunPlan]:
    memory = memory_context(settings, pages or ScriptedPages(), lambda: NOW)
    last = date(2023, 6, days)
    request = RunRequest("on-demand", (5,), date(2023, 6, 1), last, "utc", NOW, "r1")
    (plan,) = plan_runs(memory.ctx, request)
    enqueue_windows(memory.ctx, plan)
    return memory.ctx, memory.store, memory.queue, memory.publisher, plan


def deliver(
    ctx: RunContext, queue: MemoryQueue, count: int | None = None, ms: int = 600_000
) -> int:
    done = 0
    while queue.bodies and (count is None or done < count):
        run_step(ctx, Task.from_body(queue.bodies.pop(0)), Invocation(f"m{done}", lambda: ms))
        done += 1
    return done


def data_keys(store: MemoryStore) -> list[str]:
    return [k for k in store.objects if k.startswith("wifi/metrics/")]


def doc(store: MemoryStore, key: str) -> Any:
    return json.loads(store.objects[key])


# -- keys --------------------------------------------------------------------------------


def test_operations_keys_live_in_the_run_folder_and_the_history() -> None:
    layout = Layout("wifi/_exports", "wifi/metrics")
    run_id = "20230701T033000000Z-b1234-9f2c41d0"
    keys = layout.run(run_id, brand_of_run_id(run_id))
    assert keys.brand_id == 1234
    assert keys.cancel == f"wifi/_exports/runs/{run_id}/cancel.json"
    assert keys.progress(3) == f"wifi/_exports/runs/{run_id}/progress/w3.json"
    assert keys.history == f"wifi/_exports/history/2023-07/{run_id}.json"
    assert keys.history_manifest == f"wifi/_exports/history/2023-07/{run_id}.manifest.json"
    assert layout.history_month(2023, 7) == "wifi/_exports/history/2023-07/"


# -- cancelling --------------------------------------------------------------------------


def test_a_cancel_before_any_step_ends_the_run_cancelled(settings: Settings) -> None:
    ctx, store, queue, publisher, plan = start(settings, days=7)
    keys = ctx.keys(plan)
    store.put(keys.cancel, CANCEL)
    deliver(ctx, queue)
    assert data_keys(store) == []
    assert not [k for k in store.objects if "/steps/" in k and k.endswith(".json")]
    ((subject, message, attributes),) = publisher.messages
    body = json.loads(message)
    assert attributes["status"] == "cancelled" and body["status"] == "cancelled"
    assert subject.startswith("wifi-export cancelled: brand 5 2023-06-01..2023-06-07")
    assert body["cancel"] == {"requestedAt": "2023-07-01T03:31:00.000Z"}
    assert body["manifest"] is None and body["totals"]["rows"] == 0
    assert doc(store, keys.status)["state"] == "cancelled"
    assert doc(store, keys.history)["state"] == "cancelled"
    assert keys.notified in store.objects


def test_a_cancel_during_a_walk_stages_and_records_nothing(settings: Settings) -> None:
    pages = ScriptedPages()
    ctx, store, queue, publisher, plan = start(settings, pages)
    keys = ctx.keys(plan)
    fetch = pages.fetch_v3

    def cancelled_meanwhile(*args: Any) -> Any:
        store.put(keys.cancel, CANCEL)  # `wifi-export cancel`, while this step walks
        return fetch(*args)

    pages.fetch_v3 = cancelled_meanwhile  # type: ignore[method-assign, assignment]
    deliver(ctx, queue)
    assert not [k for k in store.objects if "/steps/" in k and k.endswith(".json")]
    assert not [k for k in store.objects if "/staged/" in k]
    assert [json.loads(m)["status"] for _, m, _ in publisher.messages] == ["cancelled"]


def test_the_finisher_closes_the_cancel_slot_before_committing(settings: Settings) -> None:
    ctx, store, queue, publisher, plan = start(settings)
    deliver(ctx, queue)
    slot = doc(store, ctx.keys(plan).cancel)
    assert slot["cancel"] is False and slot["reason"] == "commit has begun"
    assert [json.loads(m)["status"] for _, m, _ in publisher.messages] == ["succeeded"]
    # A cancel now loses the conditional put: refused.
    assert not store.put_if_absent(ctx.keys(plan).cancel, CANCEL)


def test_a_cancel_that_wins_the_slot_after_the_lease_stops_the_commit(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, store, queue, publisher, plan = start(settings)
    take = finish._take_lease

    def then_cancel(*args: Any) -> int | None:
        taken = take(*args)
        store.put_if_absent(ctx.keys(plan).cancel, CANCEL)
        return taken

    monkeypatch.setattr(finish, "_take_lease", then_cancel)
    deliver(ctx, queue)
    assert data_keys(store) == []
    assert [json.loads(m)["status"] for _, m, _ in publisher.messages] == ["cancelled"]


def test_a_failed_run_reports_failed_and_closes_the_slot(settings: Settings) -> None:
    ctx, store, _queue, publisher, plan = start(settings)
    finish.fail_run(ctx, plan.run_id, "API said no", Invocation("x", lambda: 600_000))
    slot = doc(store, ctx.keys(plan).cancel)
    assert slot["cancel"] is False and "failure" in slot["reason"]
    assert [json.loads(m)["status"] for _, m, _ in publisher.messages] == ["failed"]
    final = doc(store, ctx.keys(plan).history)
    assert final["state"] == "failed" and final["error"] == "API said no"


# -- progress and history ---------------------------------------------------------------


def test_progress_per_window_adds_up_and_ignores_redeliveries(settings: Settings) -> None:
    ctx, store, queue, _, plan = start(settings, days=7)  # two windows
    keys = ctx.keys(plan)
    bodies = list(queue.bodies)
    # One page per invocation: three steps per window.
    deliver(ctx, queue, ms=settings.time_safety_margin_ms - 1)
    for window in (0, 1):
        progress = doc(store, keys.progress(window))
        assert progress["steps"] == 3 and progress["done"] is True
        assert progress["rows"] == 3 and progress["pages"] == 3 and progress["bytes"] > 0
    before = dict(store.objects)
    queue.bodies.extend(bodies)  # redelivered step-0 messages: counted once only
    deliver(ctx, queue)
    assert store.objects[keys.progress(0)] == before[keys.progress(0)]


def test_progress_recounts_after_a_lost_write(settings: Settings) -> None:
    ctx, store, queue, _, plan = start(settings)
    keys = ctx.keys(plan)
    deliver(ctx, queue, count=1, ms=settings.time_safety_margin_ms - 1)
    del store.objects[keys.progress(0)]  # killed between the record and the progress
    deliver(ctx, queue, ms=settings.time_safety_margin_ms - 1)
    assert doc(store, keys.progress(0))["rows"] == 3


def test_the_history_has_the_run_at_start_and_its_end(settings: Settings) -> None:
    ctx, store, queue, _, plan = start(settings)
    keys = ctx.keys(plan)
    started = doc(store, keys.history)
    assert started["state"] == "running"
    assert {"runId", "brandId", "startDate", "endDate", "trigger", "startedAt"} <= set(started)
    deliver(ctx, queue)
    ended = doc(store, keys.history)
    assert ended["state"] == "succeeded" and ended["rows"] == 3
    assert ended["durationSeconds"] == 0 and ended["finishedAt"]
    assert ended["api"] == {"calls": 3, "retries": 0, "pages": 3}
    manifest = doc(store, keys.history_manifest)
    assert manifest == doc(store, keys.manifest)


# -- honest logs ---------------------------------------------------------------------------


def test_no_time_for_a_request_is_out_of_time_not_a_failure() -> None:
    client = AnalytiksClient(
        "http://127.0.0.1:1",
        "http://127.0.0.1:1/token",
        "aud",
        lambda: Credentials("id", "secret"),
        policy=RetryPolicy(connect_timeout_s=5.0),
    )
    with pytest.raises(OutOfTime, match=r"not sent, 4\.0 s left is too little"):
        client.fetch_v3(5, "a", "b", None, lambda: 4.0)
    assert client.stats.calls == 0 and client.stats.token_calls == 0
    assert issubclass(OutOfTime, TransientError)  # the message policy is unchanged


def test_a_planned_checkpoint_logs_info_and_a_failed_page_warns(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    for error, level in (
        (OutOfTime("v3 page: not sent"), "INFO"),
        (TransientError("500"), "WARNING"),
    ):
        pages = ScriptedPages()
        fetch = pages.fetch_v3

        def failing(*args: Any, _fetch: Any = fetch, _error: Any = error) -> Any:
            if args[3] is not None:  # every page after the first
                raise _error
            return _fetch(*args)

        pages.fetch_v3 = failing  # type: ignore[method-assign, assignment]
        ctx, _store, queue, _, _plan = start(settings, pages)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="wifi-export"):
            deliver(ctx, queue, count=1)
        records = [r for r in caplog.records if "checkpointing the pages" in r.getMessage()]
        assert [r.levelname for r in records] == [level], [r.getMessage() for r in records]
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING and level == "INFO"]
