"""One step of one window: check the chain, walk pages, stage, record, hand over.

Safety under at-least-once delivery rests on two rules here (the others are
in `finish`; docs/architecture.md has the whole protocol):

* a step's output is staged under a name unique to the attempt, and a step
  *record* naming those objects is created with a conditional put: the first
  attempt to finish a step wins, later ones delete what they staged and stop;
* a step runs only if it continues the recorded chain (step N-1 recorded and
  ending at the message's cursor), so stale or forged messages do nothing.
"""

from __future__ import annotations

import math
import random
import secrets
from typing import Final

from exporter.errors import InvalidTask, PermanentError, Throttled
from exporter.gzip_writer import GzipWriter
from exporter.observability import MetricUnit, logger, metrics
from exporter.ports import MAX_QUEUE_DELAY_S
from exporter.run import finish, progress
from exporter.run.context import Invocation, RunContext
from exporter.run.ledger import Ledger
from exporter.run.parallel import at_once, each_at_once
from exporter.run.records import RunPlan, StagedObject, StepRecord, Task
from exporter.run.walk import Walked, walk_window

# A throttled window's delay in the queue (docs/decisions.md, "Scale"): the API's
# Retry-After, at least MIN_BACKOFF_S, doubled for each earlier back-off of the same
# step, plus up to 50 % jitter so windows throttled together do not come back
# together; SQS holds a message back at most MAX_QUEUE_DELAY_S (900 s).
MIN_BACKOFF_S: Final = 1.0
_jitter = random.random


def queue_delay(retry_after_s: float, earlier_backoffs: int = 0) -> int:
    base = max(retry_after_s, MIN_BACKOFF_S) * 2.0 ** min(earlier_backoffs, 10)
    return min(MAX_QUEUE_DELAY_S, math.ceil(base * (1.0 + 0.5 * _jitter())))


def run_step(ctx: RunContext, task: Task, inv: Invocation) -> None:
    """Do one step of a window; raises on transient trouble, PermanentError on the rest."""
    ledger = ctx.ledger
    plan = ledger.plan(task.run_id)
    if task.brand_id != plan.brand_id or task.window >= len(plan.windows):
        raise InvalidTask("checkpoint message does not match its run's plan")
    opening = ledger.open_step(plan, task)
    if opening.failed or opening.cancel is not None:
        # Another window failed the run, or a person cancelled it: make sure it
        # was reported, then stop.
        finish.finish_run(ctx, plan, inv)
        return
    record = opening.record
    if record is not None:
        logger.info(
            "step already recorded: resuming after it",
            extra={"run_id": plan.run_id, "window": task.window, "step": task.step},
        )
    else:
        try:
            walked = walk_window(ctx, plan, task, _previous(ledger, plan, task), inv)
        except Throttled as exc:  # before its first page: nothing to record
            _back_off(ctx, plan, task, exc)
            return
        if ledger.cancel_request(ledger.keys(plan)) is not None:
            # Cancelled while this step walked: stop at the step boundary,
            # staging and recording nothing (docs/contracts.md, "Cancelling").
            _discard(walked)
            logger.info(
                "run cancelled: the step stops without staging its pages",
                extra={"run_id": plan.run_id, "window": task.window, "step": task.step},
            )
            finish.finish_run(ctx, plan, inv)
            return
        record = _record(ctx, plan, task, walked)
        if record is None:
            return
    _follow_up(ctx, plan, task, record, inv, fresh=opening.record is None)


def _back_off(ctx: RunContext, plan: RunPlan, task: Task, exc: Throttled) -> None:
    """Hold this step back through the queue: re-send its own checkpoint, delayed.

    Not a new step (nothing was walked): the chain stays at this step and cursor,
    and the message being handled is deleted, so one message carries the window
    on. Back-offs of a step are counted by markers the ledger creates after the
    send (`Ledger.back_off`: send, then mark). The MAX_RECEIVE_COUNT-th
    throttled delivery of one step fails the run, as the last delivery of any
    transient error does.
    """
    ledger = ctx.ledger
    earlier = ledger.back_offs(plan, task)
    if earlier + 1 >= ctx.settings.max_receive_count:
        raise PermanentError(
            f"window {task.window} step {task.step}: gave up after {earlier + 1} throttled "
            f"deliveries (MAX_RECEIVE_COUNT): {exc}"
        )
    delay = queue_delay(exc.retry_after_s, earlier)
    ledger.back_off(plan, task, earlier, delay, retryAfter=exc.retry_after_s)
    metrics.add_metric(name="Backoffs", unit=MetricUnit.Count, value=1)
    logger.warning(
        "API throttling: the step backs off through the queue",
        extra={
            "run_id": plan.run_id,
            "window": task.window,
            "step": task.step,
            "delay_s": delay,
            "backoff": earlier + 1,
        },
    )


def _discard(walked: Walked) -> None:
    """Drop what a cancelled step walked (compressed parts spooled to /tmp)."""
    for writer in walked.writers.values():
        body, _ = writer.finish()
        body.close()


def _previous(ledger: Ledger, plan: RunPlan, task: Task) -> StepRecord | None:
    """The step this task continues, which must exist and end at the task's cursor.

    A message this exporter sent always satisfies this (the next step is sent
    only after its predecessor is recorded); a forged or stale one does not.
    """
    if task.step == 0:
        if task.cursor is not None:
            raise InvalidTask("checkpoint message: step 0 of a window starts without a cursor")
        return None
    previous = ledger.step_record(plan, task.window, task.step - 1)
    if previous is None:
        raise InvalidTask(
            f"checkpoint message: step {task.step} of window {task.window} "
            "continues a step that was never recorded"
        )
    if previous.next_cursor is None or previous.next_cursor != task.cursor:
        raise InvalidTask("checkpoint message: cursor does not continue the recorded step")
    return previous


def _record(ctx: RunContext, plan: RunPlan, task: Task, walked: Walked) -> StepRecord | None:
    """Stage the walked rows and record the step; None if a duplicate recorded it first."""
    ledger = ctx.ledger
    attempt = secrets.token_hex(6)

    def stage(item: tuple[str, GzipWriter]) -> StagedObject:
        dt, writer = item
        body, size = writer.finish()
        with body:
            key = ledger.stage(plan, task, attempt, dt, body)
        return StagedObject(dt, key, writer.rows, size, walked.sums.get(dt, {}))

    objects = each_at_once(stage, sorted(walked.writers.items()))
    totals = walked.totals.plus(
        rows=sum(o.rows for o in objects), bytes=sum(o.bytes for o in objects)
    )
    record = StepRecord(
        window=task.window,
        step=task.step,
        attempt=attempt,
        next_cursor=walked.next_cursor,
        objects=tuple(objects),
        totals=totals,
        finished_at=ctx.now_iso(),
        locations=tuple(sorted(walked.locations)),
        refused=walked.refused,
        delay_s=0 if walked.retry_after_s is None else queue_delay(walked.retry_after_s),
    )
    if not ledger.record_step(plan, record):
        # A duplicate delivery finished this step first: its record and
        # objects are the ones the chain continues from.
        logger.info(
            "duplicate step lost the race; discarded its output",
            extra={"run_id": plan.run_id, "window": task.window, "step": task.step},
        )
        return None
    logger.info(
        "step recorded",
        extra={
            "run_id": plan.run_id,
            "window": task.window,
            "step": task.step,
            "pages": totals.pages,
            "rows": totals.rows,
            "window_done": record.done,
        },
    )
    return record


def _follow_up(
    ctx: RunContext, plan: RunPlan, task: Task, record: StepRecord, inv: Invocation, *, fresh: bool
) -> None:
    """Hand the window's next step to the queue, or mark the window done and try to finish.

    `fresh`: this invocation recorded the step (else it found it recorded)."""
    ledger = ctx.ledger
    if not record.done:
        next_step = task.step + 1
        if next_step > ctx.settings.max_hops:
            raise PermanentError(
                f"window {task.window} needed more than {ctx.settings.max_hops} "
                "invocations (MAX_HOPS): stopping a runaway chain"
            )
        following = Task(plan.run_id, plan.brand_id, task.window, next_step, record.next_cursor)
        # The window's own progress object and the hand-over do not depend on each other.
        _, sent = at_once(
            lambda: progress.record_progress(ledger, plan, record, fresh=fresh),
            lambda: ledger.send_then_mark(plan, [following], record.delay_s),
        )
        if sent:
            metrics.add_metric(name="Hops", unit=MetricUnit.Count, value=1)
        ledger.report_progress(
            plan, lastCheckpoint={"window": task.window, "step": next_step, "at": ctx.now_iso()}
        )
        return
    at_once(
        lambda: progress.record_progress(ledger, plan, record, fresh=fresh),
        lambda: ledger.mark_done(plan, task.window, task.step + 1),
    )
    finish.finish_run(ctx, plan, inv, last_record=record)
