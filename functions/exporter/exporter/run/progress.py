"""Per-window progress for `wifi-export status`: rows, bytes, pages and API calls so far.

One object per window (`progress/w<k>.json`), written only by that window's
chain of steps. The steps of one window run one after another (a step runs
only once its predecessor is recorded), so each object has a single writer
and concurrent windows never overwrite each other's counts; the CLI adds the
windows up (`Ledger.progress_of`). A redelivered step that was already counted
writes nothing.
"""

from __future__ import annotations

from typing import Any

from exporter.run.counters import Counters
from exporter.run.ledger import Ledger
from exporter.run.records import RunPlan, StepRecord


def record_progress(
    ledger: Ledger, plan: RunPlan, record: StepRecord, *, fresh: bool = False
) -> None:
    """Add a recorded step to its window's progress (once per step).

    `fresh`: the caller has just created the step record, so nothing counted it
    yet; a window's first step then has nothing to add to and is written unread.
    """
    window = record.window
    before = None if fresh and record.step == 0 else ledger.window_progress(plan, window)
    if before is not None and before.get("step", -1) >= record.step:
        return  # this step (a redelivery) or a later one is already counted
    if record.step == 0:
        base, refused = Counters(), set[Any]()
    elif before is not None and before.get("step") == record.step - 1:
        base, refused = Counters.from_progress(before), set(before.get("refused", ()))
    else:
        # A kill between a step's record and its progress: count from the records.
        base, refused = _recount(ledger, plan, window, record.step)
    base.add(record.totals)
    doc = {
        "window": window,
        "step": record.step,
        "steps": record.step + 1,
        "done": record.done,
        **base.progress_json(),
        "refused": sorted({*refused, *record.refused}, key=str),
        "updatedAt": record.finished_at,
    }
    ledger.write_progress(plan, window, doc)


def _recount(
    ledger: Ledger, plan: RunPlan, window: int, before_step: int
) -> tuple[Counters, set[Any]]:
    """The window's counts over its recorded steps 0..before_step-1."""
    sums, refused = Counters(), set[Any]()
    for step in range(before_step):
        earlier = ledger.step_record(plan, window, step)
        if earlier is not None:
            sums.add(earlier.totals)
            refused.update(earlier.refused)
    return sums, refused
