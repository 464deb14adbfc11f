"""One queue message: continue its window, and decide what its errors mean.

Returning means "done with this message" (SQS deletes it); raising means
"redeliver it" (a partial batch failure). The policy (docs/contracts.md,
"Failure rules"):

* not a valid checkpoint of this deployment -> rejected: logged, counted, dropped;
* a permanent error -> the run is failed and notified, the message dropped;
* a transient error -> redelivered after the visibility timeout, except on the
  last delivery before the DLQ (`MAX_RECEIVE_COUNT`), where the run is failed
  and notified instead of going silent. "Last" is what both SQS's receive count
  and the run's own count of the step's deliveries say: each delivery is marked
  in the run's state at its start and noted at its end, so a claimed
  `ApproximateReceiveCount` alone cannot end a run, and a delivery that was
  killed (no exception: out of memory) makes the step's last delivery fail the
  run instead of dying the same way into the DLQ.
"""

from __future__ import annotations

from exporter.errors import ExportError, InvalidTask, PermanentError, TransientError
from exporter.observability import MetricUnit, logger, metrics
from exporter.redaction import describe
from exporter.run import finish, step
from exporter.run.context import Invocation, RunContext
from exporter.run.records import Task


def handle_message(ctx: RunContext, body: str, receive_count: int, inv: Invocation) -> None:
    """One SQS record. Raising means "redeliver"; returning means "done with it"."""
    try:
        task = Task.from_body(body)
    except InvalidTask as exc:
        reject(str(exc))
        return
    counted: list[int] = []  # this delivery's number for its step, once marked
    try:
        _handle(ctx, task, receive_count, inv, counted)
    except Exception:
        _end(ctx, task, counted)  # (a kill, BaseException in the tests, notes nothing)
        raise
    _end(ctx, task, counted)


def _handle(
    ctx: RunContext, task: Task, receive_count: int, inv: Invocation, counted: list[int]
) -> None:
    delivery = 0  # unknown until counted: no delivery ends the run on a claim alone
    try:
        plan = ctx.ledger.plan(task.run_id)
        if task.brand_id != plan.brand_id or task.window >= len(plan.windows):
            raise InvalidTask("checkpoint message does not match its run's plan")
        own, killed = ctx.ledger.count_delivery(plan, task)
        counted.append(own)
        delivery = min(receive_count, own)
        if killed and delivery >= ctx.settings.max_receive_count:
            # The one before ended with no error: killed (memory, time). This last
            # delivery would likely die the same way, and then nobody would tell.
            error = "the delivery before ended without an error (killed: out of memory?)"
            finish.fail_run(ctx, task.run_id, f"gave up after {delivery} deliveries: {error}", inv)
            return
        step.run_step(ctx, task, inv)
    except InvalidTask as exc:
        reject(str(exc))
    except PermanentError as exc:
        finish.fail_run(ctx, task.run_id, str(exc), inv)
    except Exception as exc:
        # Our own errors keep their (redacted, bounded) text; any other exception
        # is named by its type only: its text may quote a request or an answer.
        error = describe(exc)
        if delivery >= ctx.settings.max_receive_count:
            finish.fail_run(ctx, task.run_id, f"gave up after {delivery} deliveries: {error}", inv)
            return
        ours = isinstance(exc, ExportError)
        logger.warning(
            "step failed transiently; SQS will redeliver",
            extra={
                "run_id": task.run_id,
                "window": task.window,
                "step": task.step,
                "receive_count": receive_count,
                "delivery": delivery,
                "error": error,
            },
            # The traceback of an unexpected exception, for whoever fixes it
            # (the log formatter redacts it like every line).
            exc_info=not ours,
        )
        if ours:
            raise
        # What leaves here is seen by the batch processor (its debug log) and
        # Lambda: the type only.
        raise TransientError(error) from None


def _end(ctx: RunContext, task: Task, counted: list[int]) -> None:
    """Note that this delivery ended (not killed); best effort: without the note, the
    step's last delivery would fail the run rather than try once more."""
    if not counted:
        return
    try:
        ctx.ledger.end_delivery(ctx.ledger.plan(task.run_id), task, counted[0])
    except Exception as exc:
        logger.warning("delivery end not noted", extra={"error": describe(exc)})


def reject(reason: str) -> None:
    logger.error(
        "rejected a queue message that is not a valid checkpoint", extra={"reason": reason}
    )
    metrics.add_metric(name="InvalidMessages", unit=MetricUnit.Count, value=1)
