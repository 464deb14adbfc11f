"""Per-window progress for `wifi-export status`: rows, bytes, pages and API calls so far.

One object per window (`progress/w<k>.json`), written only by that window's
chain of steps. The steps of one window run one after another (a step runs
only once its predecessor is recorded), so each object has a single writer
and concurrent windows never overwrite each other's counts; the CLI adds the
windows up. A redelivered step that was already counted writes nothing.
"""

from __future__ import annotations

from typing import Any

from exporter import json_codec
from exporter.run.context import RunContext
from exporter.run.keys import RunKeys
from exporter.run.records import StepRecord

COUNTERS = ("rows", "bytes", "pages", "apiCalls", "retries")


def record_progress(
    ctx: RunContext, keys: RunKeys, record: StepRecord, *, fresh: bool = False
) -> None:
    """Add a recorded step to its window's progress (once per step).

    `fresh`: the caller has just created the step record, so nothing counted it
    yet; a window's first step then has nothing to add to and is written unread.
    """
    key = keys.progress(record.window)
    raw = None if fresh and record.step == 0 else ctx.store.get(key)
    before: dict[str, Any] | None = json_codec.loads(raw) if raw else None
    if before is not None and before.get("step", -1) >= record.step:
        return  # this step (a redelivery) or a later one is already counted
    if record.step == 0:
        base: dict[str, Any] = {}
    elif before is not None and before.get("step") == record.step - 1:
        base = before
    else:
        # A kill between a step's record and its progress: count from the records.
        base = _recount(ctx, keys, record.window, record.step)
    counts = _counts(record)
    doc = {
        "window": record.window,
        "step": record.step,
        "steps": record.step + 1,
        "done": record.done,
        **{name: int(base.get(name, 0)) + counts[name] for name in COUNTERS},
        "refused": sorted({*base.get("refused", ()), *record.refused}, key=str),
        "updatedAt": record.finished_at,
    }
    ctx.store.put(key, json_codec.dumps(doc))


def _counts(record: StepRecord) -> dict[str, int]:
    totals = record.totals
    return {
        "rows": totals.rows,
        "bytes": totals.bytes,
        "pages": totals.pages,
        "apiCalls": totals.api_calls,
        "retries": totals.retries,
    }


def _recount(ctx: RunContext, keys: RunKeys, window: int, before_step: int) -> dict[str, Any]:
    """The window's counts over its recorded steps 0..before_step-1."""
    sums: dict[str, Any] = dict.fromkeys(COUNTERS, 0)
    refused: set[Any] = set()
    for step in range(before_step):
        raw = ctx.store.get(keys.step(window, step))
        if raw is None:
            continue
        earlier = StepRecord.from_json(raw)
        for name, value in _counts(earlier).items():
            sums[name] += value
        refused.update(earlier.refused)
    sums["refused"] = sorted(refused, key=str)
    return sums
