"""What committing a run replaces: coverage, row removal, and newest-wins in any order."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.config import Settings
from exporter.events import RunRequest
from exporter.run.context import Invocation
from exporter.run.coverage import Coverage, remove_rows
from exporter.run.records import Task
from exporter.run.start import enqueue_windows, plan_runs
from exporter.run.step import run_step
from exporter.selection import Selection
from tests.fakes import MemoryStore, ScriptedPages, memory_context

DAY = date(2023, 6, 1)
T0 = datetime(2023, 7, 1, tzinfo=UTC)


def gz(*rows: dict[str, Any]) -> bytes:
    return gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in rows))


def rows_of(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gzip.decompress(body).splitlines()]


def test_location_coverage_leaves_zone_rows_and_other_days_alone() -> None:
    cover = Coverage("locations", ranges=((DAY, DAY, frozenset({1, 2})),))
    covered = cover.covers("2023-06-01")
    assert covered is not None
    assert covered({"location_id": 1, "zone_id": None})
    assert not covered({"location_id": 1, "zone_id": "z"})
    assert not covered({"location_id": 3})
    assert cover.covers("2023-06-02") is None
    assert Coverage.from_json(cover.to_json()) == cover


def test_removing_rows_rewrites_or_deletes_the_object() -> None:
    store = MemoryStore()
    store.put("k", gz({"location_id": 1}, {"location_id": 2}, {"location_id": 1, "zone_id": "z"}))
    cover = Coverage(
        "locations",
        ranges=(
            (
                DAY,
                DAY,
                frozenset({1}),
            ),
        ),
    )
    assert remove_rows(store, "k", cover.covers("2023-06-01")) == 1  # type: ignore[arg-type]
    assert rows_of(store.objects["k"]) == [{"location_id": 2}, {"location_id": 1, "zone_id": "z"}]
    zone = Coverage("zone", zone="z").covers("2023-06-01")
    assert zone is not None
    remove_rows(store, "k", zone)
    everything = Coverage(
        "locations",
        ranges=(
            (
                DAY,
                DAY,
                frozenset({2}),
            ),
        ),
    ).covers("2023-06-01")
    assert everything is not None
    assert remove_rows(store, "k", everything) == 1
    assert "k" not in store.objects  # nothing left: the object goes


class RacingStore(MemoryStore):
    """Another run rewrites the object between our read and our conditional write."""

    def __init__(self) -> None:
        super().__init__()
        self.raced = False

    def put_if_match(self, key: str, body: bytes, etag: str) -> bool:
        if not self.raced:
            self.raced = True
            current = rows_of(self.objects[key])
            self.objects[key] = gz(*[r for r in current if r["location_id"] != 3])
        return super().put_if_match(key, body, etag)


def test_a_concurrent_rewrite_is_not_undone() -> None:
    store = RacingStore()
    store.put("k", gz(*({"location_id": i} for i in (1, 2, 3))))
    covered = Coverage(
        "locations",
        ranges=(
            (
                DAY,
                DAY,
                frozenset({1}),
            ),
        ),
    ).covers("2023-06-01")
    assert covered is not None
    remove_rows(store, "k", covered)
    assert store.raced
    assert rows_of(store.objects["k"]) == [{"location_id": 2}]  # both removals hold


LOCATIONS = 5


@settings(max_examples=40, deadline=None)
@given(
    runs=st.lists(
        st.none() | st.sets(st.integers(1, LOCATIONS), min_size=1), min_size=1, max_size=4
    ),
    order=st.randoms(use_true_random=False),
)
def test_newest_run_wins_per_location_whatever_the_commit_order(
    runs: list[set[int] | None], order: Any
) -> None:
    config = Settings(secret_id="s", bucket_name="b", topic_arn="t", queue_url="q")
    memory = memory_context(config, ScriptedPages(locations=LOCATIONS), lambda: T0)
    plans = []
    for n, chosen in enumerate(runs):
        selection = None if chosen is None else Selection("locations", tuple(sorted(chosen)), "v1")
        at = T0 + timedelta(seconds=n)  # run ids sort by start: run n is older than n+1
        request = RunRequest("on-demand", (5,), DAY, DAY, "utc", at, f"r{n}", selection)
        (plan,) = plan_runs(memory.ctx, request)
        enqueue_windows(memory.ctx, plan)
        plans.append(plan)
    messages = [Task.from_body(b) for b in memory.queue.bodies]
    memory.queue.bodies.clear()
    order.shuffle(messages)  # each run is one message: its step commits it
    for task in messages:
        run_step(memory.ctx, task, Invocation("m", lambda: 600_000))
    table = [
        row
        for key, body in memory.store.objects.items()
        if key.startswith("wifi/metrics/")
        for row in rows_of(body)
    ]
    owners = {row["location_id"]: row["run_id"] for row in table}
    assert len(owners) == len(table), "a location's row is in the table twice"
    newest: dict[int, str] = {}
    for plan, chosen in zip(plans, runs, strict=True):
        for loc in range(1, LOCATIONS + 1) if chosen is None else chosen:
            newest[loc] = plan.run_id
    assert owners == newest
