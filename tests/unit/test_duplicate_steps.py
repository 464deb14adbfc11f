"""Two deliveries of one step racing to record it (docs/reliability.md, "Attempt-scoped
staging" and "Conditional-put markers"): each stages under its own attempt id, the
loser deletes what it staged, only that, and the run exports every row once."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date

from exporter.config import Settings
from exporter.run.context import Invocation, RunContext
from exporter.run.records import Task
from exporter.run.start import enqueue_windows, plan_runs
from exporter.run.step import run_step
from tests.fakes import MemoryPublisher, MemoryQueue, MemoryStore, ScriptedPages
from tests.unit.test_runs import NOW, request, run_all, table


class RacingStore(MemoryStore):
    """Before the first step record is created, `duplicate` runs: a second delivery of
    the same step that stages, records (it wins) and hands over, all in between the
    first delivery's staging and its own conditional put of the record."""

    def __init__(self) -> None:
        super().__init__()
        self.duplicate: Callable[[], None] | None = None
        self.raced = False

    def put_if_absent(self, key: str, body: bytes, content_type: str = "application/json") -> bool:
        race, self.duplicate = self.duplicate, None
        if race is not None and "/steps/" in key and key.endswith(".json"):
            race()
            self.raced = True
            created = super().put_if_absent(key, body, content_type)
            assert not created, "the duplicate recorded the step first"
            return created
        if race is not None:
            self.duplicate = race  # not the step record yet: keep waiting
        return super().put_if_absent(key, body, content_type)


def race_step_zero(settings: Settings) -> tuple[RacingStore, MemoryPublisher, str, list[str]]:
    """A three-page window, one page per invocation; step 0 delivered twice, racing.
    The store, the notifications, the run id, and step 0's staged keys after the race."""
    store, queue, publisher = RacingStore(), MemoryQueue(), MemoryPublisher()
    pages = ScriptedPages(locations=3)
    ctx = RunContext(settings, store, queue, publisher, lambda: pages, lambda: NOW)
    (plan,) = plan_runs(ctx, request(date(2023, 6, 1), date(2023, 6, 1)))
    enqueue_windows(ctx, plan)
    first = Task.from_body(queue.bodies.pop(0))
    budget = settings.time_safety_margin_ms - 1
    store.duplicate = lambda: run_step(ctx, first, Invocation("dup", lambda: budget))
    run_step(ctx, first, Invocation("first", lambda: budget))
    assert store.raced
    staged = sorted(k for k in store.objects if "/staged/w0/s0/" in k)
    run_all(ctx, queue, budget_ms=budget)
    return store, publisher, plan.run_id, staged


def test_two_deliveries_of_a_step_never_overwrite_each_other(settings: Settings) -> None:
    store, publisher, run_id, _ = race_step_zero(settings)
    rows = [r for found in table(store).values() for r in found]
    assert sorted(r["visits"] for r in rows) == [1, 2, 3]  # every row once
    assert {r["run_id"] for r in rows} == {run_id}
    notes = [json.loads(message) for _, message, _ in publisher.messages]
    assert [n["status"] for n in notes] == ["succeeded"]


def test_the_losing_delivery_deletes_its_own_staging_and_only_its_own(
    settings: Settings,
) -> None:
    store, _, run_id, staged = race_step_zero(settings)
    record = json.loads(store.objects[f"wifi/_exports/runs/{run_id}/steps/w0/s0.json"])
    kept = [o["key"] for o in record["objects"]]
    assert kept and staged == sorted(kept), "the loser's staging stayed, or the winner's went"
    assert all(f"/{record['attempt']}/" in key for key in kept)
