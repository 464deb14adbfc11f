"""Each time basis is a dataset of its own: the run protocol on in-memory ports.

docs/decisions.md, "One dataset per time basis": partitions per basis, a run never
touches the other basis's rows, a page answered in the other basis fails the run,
and nothing is committed beside the old layout's folders.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from exporter.config import Settings, TimeBasis
from exporter.events import RunRequest
from exporter.run.context import Invocation, RunContext
from exporter.run.messages import handle_message
from exporter.run.records import RunPlan
from exporter.run.start import enqueue_windows, plan_runs
from exporter.selection import Selection
from tests.fakes import Memory, ScriptedPages, memory_context

NOW = datetime(2023, 7, 1, tzinfo=UTC)
DAY = date(2023, 6, 1)
TABLE = "wifi/metrics/"


def start(
    memory: Memory,
    basis: TimeBasis,
    key: str,
    at: datetime = NOW,
    selection: Selection | None = None,
) -> RunPlan:
    request = RunRequest("on-demand", (5,), DAY, DAY, basis, at, key, selection)
    (plan,) = plan_runs(memory.ctx, request)
    enqueue_windows(memory.ctx, plan)
    return plan


def drain(ctx: RunContext, memory: Memory) -> None:
    """Every queued message through the handler, as the event source mapping would."""
    n = 0
    while memory.queue.bodies:
        body = memory.queue.bodies.pop(0)
        handle_message(ctx, body, 1, Invocation(f"m{n}", lambda: 600_000))
        n += 1


def table_keys(memory: Memory) -> list[str]:
    return sorted(k for k in memory.store.objects if k.startswith(TABLE))


def notes(memory: Memory) -> list[dict[str, object]]:
    return [json.loads(message) for _, message, _ in memory.publisher.messages]


def test_the_two_bases_of_one_day_are_two_partitions_a_rerun_leaves_the_other(
    settings: Settings,
) -> None:
    memory = memory_context(settings, ScriptedPages(), lambda: NOW)
    utc = start(memory, "utc", "a")
    drain(memory.ctx, memory)
    local = start(memory, "local", "b", NOW.replace(second=1))
    drain(memory.ctx, memory)
    assert table_keys(memory) == [
        f"{TABLE}brand_id=5/time_basis=local/dt=2023-06-01/{local.run_id}-w0-s0.json.gz",
        f"{TABLE}brand_id=5/time_basis=utc/dt=2023-06-01/{utc.run_id}-w0-s0.json.gz",
    ]
    # A newer UTC run replaces the UTC day only: the local rows stay.
    again = start(memory, "utc", "c", NOW.replace(second=2))
    drain(memory.ctx, memory)
    assert table_keys(memory) == [
        f"{TABLE}brand_id=5/time_basis=local/dt=2023-06-01/{local.run_id}-w0-s0.json.gz",
        f"{TABLE}brand_id=5/time_basis=utc/dt=2023-06-01/{again.run_id}-w0-s0.json.gz",
    ]
    assert [n["status"] for n in notes(memory)] == ["succeeded"] * 3


def test_a_local_selection_over_a_utc_day_stays_in_the_local_dataset(
    settings: Settings,
) -> None:
    """Issue 21: a local selection over a UTC day left it with UTC rows of some
    locations and local rows of others. Now the UTC day keeps all of its rows."""
    memory = memory_context(settings, ScriptedPages(), lambda: NOW)
    utc = start(memory, "utc", "a")
    drain(memory.ctx, memory)
    utc_key = f"{TABLE}brand_id=5/time_basis=utc/dt=2023-06-01/{utc.run_id}-w0-s0.json.gz"
    before = memory.store.objects[utc_key]
    chosen = Selection("locations", (1,), "v1")
    local = start(memory, "local", "b", NOW.replace(second=1), selection=chosen)
    drain(memory.ctx, memory)
    assert table_keys(memory) == [
        f"{TABLE}brand_id=5/time_basis=local/dt=2023-06-01/{local.run_id}-w0-s0.json.gz",
        utc_key,
    ]
    assert memory.store.objects[utc_key] == before  # not rewritten: all three locations


def test_a_local_run_answered_in_utc_fails_and_commits_nothing(settings: Settings) -> None:
    memory = memory_context(settings, ScriptedPages(utc_keys=True), lambda: NOW)
    plan = start(memory, "local", "a")
    drain(memory.ctx, memory)
    assert table_keys(memory) == []
    (note,) = notes(memory)
    assert note["status"] == "failed" and note["runId"] == plan.run_id
    error = str(note["error"])
    assert "timeBasis: local" in error and '"timeBasis": "utc"' in error
    # Failed at the first page (the read-ahead had asked for one more): the
    # window's third page was never asked for.
    assert memory.ctx.api().stats.calls == 2


def test_a_brand_with_old_layout_objects_is_not_committed_beside_them(
    settings: Settings,
) -> None:
    memory = memory_context(settings, ScriptedPages(), lambda: NOW)
    old = f"{TABLE}brand_id=5/dt=2023-05-01/20230502T000000000Z-b5-0123abcd-w0-s0.json.gz"
    memory.store.put(old, b"")
    start(memory, "utc", "a")
    drain(memory.ctx, memory)
    assert table_keys(memory) == [old]  # nothing beside it
    (note,) = notes(memory)
    assert note["status"] == "failed"
    assert "docs/runbook.md" in str(note["error"]) and "brand_id=5/dt=2023-05-01" in str(
        note["error"]
    )
    # Another brand's old objects do not stop this one; once migrated, runs commit.
    memory.store.delete([old])
    memory.store.put(f"{TABLE}brand_id=6/dt=2023-05-01/x.json.gz", b"")
    start(memory, "utc", "b", NOW.replace(second=1))
    drain(memory.ctx, memory)
    assert notes(memory)[-1]["status"] == "succeeded"
