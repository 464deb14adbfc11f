"""Many windows of one run finish at once: the status object loses no update.

Each finishing window writes "running" with the done markers it counted, and the
last one writes the final state under the lease. A progress write that lands after
the final one must not reopen the run, and `windowsDone` never goes backwards.
"""

from __future__ import annotations

import json
import queue
import random
import threading
import time
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import IO

from exporter.config import Settings
from exporter.errors import TransientError
from exporter.events import RunRequest
from exporter.run.context import Invocation
from exporter.run.messages import handle_message
from exporter.run.start import enqueue_windows, plan_runs
from tests.fakes import MemoryStore, ScriptedPages, memory_context

NOW = datetime(2023, 7, 1, tzinfo=UTC)


class PausingStore(MemoryStore):
    """Holds the thread named "late" just before its status compare-and-swap."""

    def __init__(self) -> None:
        super().__init__()
        self.paused = threading.Event()
        self.release = threading.Event()
        self.late_swaps: list[bool] = []

    def _hold(self, key: str) -> bool:
        late = threading.current_thread().name == "late" and key.endswith("/status.json")
        if late:
            self.paused.set()
            assert self.release.wait(10)
        return late

    def put(
        self, key: str, body: bytes | IO[bytes], content_type: str = "application/json"
    ) -> None:
        self._hold(key)  # an unconditional write would land here (and win: the lost update)
        super().put(key, body, content_type)

    def put_if_match(self, key: str, body: bytes, etag: str) -> bool:
        late = self._hold(key)
        swapped = super().put_if_match(key, body, etag)
        if late:
            self.late_swaps.append(swapped)
        return swapped


def status_of(store: MemoryStore, run_id: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads(store.objects[f"wifi/_exports/runs/{run_id}/status.json"])
    return doc


def test_a_late_running_write_does_not_reopen_a_finished_run(settings: Settings) -> None:
    memory = memory_context(replace(settings, window_days=1), ScriptedPages(), lambda: NOW)
    store = PausingStore()
    memory.ctx.store = store
    request = RunRequest("on-demand", (5,), date(2023, 6, 1), date(2023, 6, 2), "utc", NOW, "r")
    (plan,) = plan_runs(memory.ctx, request)
    enqueue_windows(memory.ctx, plan)
    first, second = memory.queue.bodies
    # Window 0 finishes first, counts 1 of 2 done, and is held before its status write ...
    late = threading.Thread(
        target=handle_message, args=(memory.ctx, first, 1, Invocation("a", lambda: 600_000)),
        name="late",
    )  # fmt: skip
    late.start()
    assert store.paused.wait(10)
    # ... while window 1 finishes the run: commit, notification, final status.
    handle_message(memory.ctx, second, 1, Invocation("b", lambda: 600_000))
    assert status_of(store, plan.run_id)["state"] == "succeeded"
    store.release.set()
    late.join(10)
    status = status_of(store, plan.run_id)
    assert (status["state"], status["windowsDone"], status["windowsTotal"]) == ("succeeded", 2, 2)
    assert store.late_swaps == [False]  # its version was gone: it re-read and let go
    assert len(memory.publisher.messages) == 1


def test_windows_finishing_on_many_threads_leave_a_right_status(settings: Settings) -> None:
    windows, workers = 24, 8
    memory = memory_context(replace(settings, window_days=1), ScriptedPages(), lambda: NOW)
    request = RunRequest(
        "on-demand", (5,), date(2023, 6, 1), date(2023, 6, windows), "utc", NOW, "r"
    )
    (plan,) = plan_runs(memory.ctx, request)
    enqueue_windows(memory.ctx, plan)
    work: queue.Queue[str] = queue.Queue()
    for body in memory.queue.bodies:
        work.put(body)
    start = threading.Barrier(workers)
    errors: list[BaseException] = []

    def poller(n: int) -> None:
        rng = random.Random(n)
        start.wait()
        while True:
            try:
                body = work.get(timeout=0.5)
            except queue.Empty:
                return
            time.sleep(rng.random() / 200)
            try:
                handle_message(memory.ctx, body, 1, Invocation(f"w{n}", lambda: 600_000))
            except TransientError:
                work.put(body)  # the lease was held: redelivered later, as by SQS
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

    threads = [threading.Thread(target=poller, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    status = status_of(memory.store, plan.run_id)
    assert (status["state"], status["windowsDone"]) == ("succeeded", windows)
    assert status["rows"] == windows * 3
    assert len(memory.publisher.messages) == 1
