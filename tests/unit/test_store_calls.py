"""What a one-window run costs in store calls, start to notification: the nightly
brand-day, whose every call is a round trip (docs/performance.md, "Fixed costs").

The ledger (run.ledger) took over every run-state call without changing one:
the lists below are those of the stages before it (it saved no call here).
A rerun's days, settled side by side, read an older run's plan once between them
(issue 27: it was once per day, each a GET, on a shared core a few ms of CPU each).
"""

from __future__ import annotations

import functools
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import IO, Any

from exporter.config import Settings
from exporter.events import RunRequest
from exporter.run.context import Invocation
from exporter.run.records import Task
from exporter.run.start import start_runs
from exporter.run.step import run_step
from tests.fakes import MemoryStore, ScriptedPages, memory_context

NOW = datetime(2023, 6, 2, 3, tzinfo=UTC)


@dataclass
class CountingStore(MemoryStore):
    """Every call, as (method, the key's last two parts with the run id left out)."""

    calls: list[tuple[str, str]] = field(default_factory=list)

    def _note(self, method: str, key: str) -> None:
        name = "/".join(key.rstrip("/").split("/")[-2:])
        name = re.sub(r"\d{8}T\d{9}Z-b\d+-[0-9a-f]+", "RUN", name)
        with self._lock:
            self.calls.append((method, re.sub(r"^[0-9a-f]{12}/", "ATTEMPT/", name)))

    def put(
        self, key: str, body: bytes | IO[bytes], content_type: str = "application/json"
    ) -> None:
        self._note("put", key)
        super().put(key, body, content_type)

    def put_if_absent(self, key: str, body: bytes, content_type: str = "application/json") -> bool:
        self._note("put_if_absent", key)
        return super().put_if_absent(key, body, content_type)

    def get(self, key: str) -> bytes | None:
        self._note("get", key)
        return super().get(key)

    def get_versioned(self, key: str) -> tuple[bytes, str] | None:
        self._note("get_versioned", key)
        return super().get_versioned(key)

    def put_if_match(self, key: str, body: bytes, etag: str) -> bool:
        self._note("put_if_match", key)
        return super().put_if_match(key, body, etag)

    def exists(self, key: str) -> bool:
        self._note("exists", key)
        return super().exists(key)

    def list_keys(self, prefix: str) -> Iterator[str]:
        self._note("list_keys", prefix)
        return super().list_keys(prefix)

    def copy(self, source_key: str, target_key: str) -> None:
        self._note("copy", target_key)
        super().copy(source_key, target_key)

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._note("delete", key)
        super().delete(keys)


# Start: the request's first sighting, the plan, the first status and its history
# entry, and the window's "enqueued" marker (after the send). Nothing is read: the
# plan is new, so neither a status nor a marker can exist yet.
START = [
    ("put_if_absent", "requests/KEY.json"),
    ("put_if_absent", "RUN/plan.json"),
    ("put_if_absent", "RUN/status.json"),
    ("put", "2023-06/RUN.json"),
    ("put_if_absent", "w0/s0.enqueued"),
]
# The step: its three opening reads, the walk, the cancel check after it, staging,
# the record, progress (written unread: the window's first step) and the done
# marker; then the finish: four reads, the lease (lease 0: nobody committed or
# notified before it, so no look for either), the cancel slot, the commit (the
# step record held, not listed and read back), the notification's objects.
STEP = [
    ("get", "RUN/cancel.json"),
    ("get", "w0/s0.json"),
    ("exists", "RUN/failed.json"),
    ("get", "RUN/cancel.json"),
    ("put", "ATTEMPT/dt=2023-06-01.json.gz"),
    ("put_if_absent", "w0/s0.json"),
    ("put", "progress/w0.json"),
    ("put_if_absent", "done/w0.json"),
    ("get", "RUN/failed.json"),
    ("get", "RUN/cancel.json"),
    ("list_keys", "RUN/done"),
    ("list_keys", "brand_id=5/dt="),  # the old layout's folders: none, commit goes on
    ("exists", "RUN/notified.json"),
    ("list_keys", "commit/lease-"),
    ("put_if_absent", "commit/lease-000000.json"),
    ("put_if_absent", "RUN/cancel.json"),
    ("put", "RUN/coverage.json"),
    ("copy", "dt=2023-06-01/RUN-w0-s0.json.gz"),
    ("list_keys", "time_basis=utc/dt=2023-06-01"),
    # The lake coverage (exporter.lake): this month's numbers and calendar, each
    # read and written conditionally, then last month's calendar for the freshness
    # metrics (trailing store counts).
    ("get_versioned", "sums/2023-06.json"),
    ("put_if_absent", "sums/2023-06.json"),
    ("get_versioned", "days/2023-06.json"),
    ("put_if_absent", "days/2023-06.json"),
    ("get", "days/2023-05.json"),
    ("put", "RUN/manifest.json"),
    ("put_if_absent", "RUN/committed.json"),
    ("put", "2023-06/RUN.manifest.json"),
    ("put", "RUN/status.json"),
    ("put", "2023-06/RUN.json"),
    ("put_if_absent", "RUN/notified.json"),
]


def test_a_one_window_run_makes_only_the_calls_it_needs() -> None:
    config = Settings(secret_id="s", bucket_name="b", topic_arn="t", queue_url="q")
    memory = memory_context(config, ScriptedPages(), lambda: NOW)
    store = CountingStore()
    memory.ctx.store = store
    request = RunRequest("on-demand", (5,), date(2023, 6, 1), date(2023, 6, 1), "utc", NOW, "r1")
    start_runs(memory.ctx, request, Invocation("start", lambda: 600_000))
    requests = [(m, re.sub(r"requests/[0-9a-f]+", "requests/KEY", k)) for m, k in store.calls]
    assert Counter(requests) == Counter(START)
    store.calls.clear()
    (body,) = memory.queue.bodies
    run_step(memory.ctx, Task.from_body(body), Invocation("m", lambda: 600_000))
    # Calls made side by side may come in any order: compared as a multiset.
    assert Counter(store.calls) == Counter(STEP)
    assert len(memory.publisher.messages) == 1


@dataclass
class SlowPlans(CountingStore):
    """Plans take a while to read, so days settled side by side ask at the same time."""

    def get(self, key: str) -> bytes | None:
        if key.endswith("/plan.json"):
            time.sleep(0.05)
        return super().get(key)


class FiveDays(ScriptedPages):
    """One location with a row on each of June 1-5 (the window's days)."""

    def fetch_v3(self, *_: Any) -> tuple[list[Any], str | None]:
        self.stats.calls += 1
        visits = {f"2023-06-0{day}T10:00:00Z": day for day in range(1, 6)}
        return [{"locationId": 1, "visits": visits}], None


def test_a_rerun_reads_the_older_runs_plan_once_for_all_its_days() -> None:
    """A five-day rerun settles its days side by side; each finds the older run's
    objects and asks who wrote them: one GET of that run's plan, not one per day."""
    config = Settings(secret_id="s", bucket_name="b", topic_arn="t", queue_url="q")
    store = SlowPlans()
    for n, now in enumerate((NOW, NOW + timedelta(minutes=1))):
        # A fresh context each time: a new container, no plan cached from the first run.
        memory = memory_context(config, FiveDays(), functools.partial(lambda at: at, now))
        memory.ctx.store = store
        request = RunRequest(
            "on-demand", (5,), date(2023, 6, 1), date(2023, 6, 5), "utc", now, f"r{n}"
        )
        start_runs(memory.ctx, request, Invocation("start", lambda: 600_000))
        store.calls.clear()
        for body in memory.queue.bodies:
            run_step(memory.ctx, Task.from_body(body), Invocation("m", lambda: 600_000))
    plan_reads = [k for m, k in store.calls if m == "get" and k.endswith("plan.json")]
    assert plan_reads == ["RUN/plan.json"]
    assert sum(m == "delete" for m, _ in store.calls) == 5  # the older run's five objects
