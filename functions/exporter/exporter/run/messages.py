"""One queue message: continue its window, and decide what its errors mean.

Returning means "done with this message" (SQS deletes it); raising means
"redeliver it" (a partial batch failure). The policy (docs/contracts.md,
"Failure rules"):

* not a valid checkpoint of this deployment -> rejected: logged, counted, dropped;
* a permanent error -> the run is failed and notified, the message dropped;
* a transient error -> redelivered after the visibility timeout, except on the
  last delivery before the DLQ (`MAX_RECEIVE_COUNT`), where the run is failed
  and notified instead of going silent.
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
    try:
        step.run_step(ctx, task, inv)
    except InvalidTask as exc:
        reject(str(exc))
    except PermanentError as exc:
        finish.fail_run(ctx, task.run_id, str(exc), inv)
    except Exception as exc:
        # Our own errors keep their (redacted, bounded) text; any other exception
        # is named by its type only: its text may quote a request or an answer.
        error = describe(exc)
        if receive_count >= ctx.settings.max_receive_count:
            finish.fail_run(
                ctx, task.run_id, f"gave up after {receive_count} deliveries: {error}", inv
            )
            return
        ours = isinstance(exc, ExportError)
        logger.warning(
            "step failed transiently; SQS will redeliver",
            extra={
                "run_id": task.run_id,
                "window": task.window,
                "step": task.step,
                "receive_count": receive_count,
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


def reject(reason: str) -> None:
    logger.error(
        "rejected a queue message that is not a valid checkpoint", extra={"reason": reason}
    )
    metrics.add_metric(name="InvalidMessages", unit=MetricUnit.Count, value=1)
