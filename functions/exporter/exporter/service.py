"""What each entry point does (DESIGN §1), and how errors become retries or failed runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from exporter.errors import InvalidEvent, PermanentError
from exporter.observability import MetricUnit, logger, metrics
from exporter.requests import RunRequest
from exporter.runs import Exporter, Invocation
from exporter.state import InvalidTask, Task


class Service:
    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter
        self.settings = exporter.settings

    def start(self, request: RunRequest, inv: Invocation) -> dict[str, Any]:
        """Plan the runs and fan their windows out.

        A scheduled run works on its first window right here: the nightly
        one-window export then needs no queue hop at all. An on-demand run
        answers at once with its run ids and plan; the queue does the work.
        """
        if not request.brand_ids:
            logger.warning("scheduled event with no BRAND_IDS configured: nothing to export")
            return {"runs": [], "message": "no brands configured (BRAND_IDS is empty)"}
        started = self.exporter.start(request)
        inline = request.trigger == "scheduled"
        for run in started:
            try:
                self.exporter.enqueue_windows(
                    run.plan, skip=frozenset({0}) if inline else frozenset()
                )
            except Exception as exc:
                # Windows that never reach the queue would leave the run open and
                # silent: fail it (one notification), then let the caller see why.
                self.exporter.fail(
                    run.run_id, f"could not enqueue the run's windows: {type(exc).__name__}", inv
                )
                raise
        if inline:
            for run in started:
                self._run_inline(Task(run.run_id, run.plan.brand_id, 0, 0, None), inv)
        metrics.add_metric(name="RunsStarted", unit=MetricUnit.Count, value=len(started))
        return {
            "runs": [
                {
                    "runId": run.run_id,
                    "brandId": run.plan.brand_id,
                    "startDate": run.plan.first_day.isoformat(),
                    "endDate": run.plan.last_day.isoformat(),
                    "timeBasis": run.plan.basis,
                    "windows": [
                        {
                            "index": w.index,
                            "start": w.first_day.isoformat(),
                            "end": w.last_day.isoformat(),
                        }
                        for w in run.plan.windows
                    ],
                    "statusKey": self.exporter.keys(run.run_id, run.plan.brand_id).status,
                }
                for run in started
            ]
        }

    def _run_inline(self, task: Task, inv: Invocation) -> None:
        # Too little time left to do a page and hand over: let the queue do it.
        if inv.remaining_ms() < 2 * self.settings.time_safety_margin_ms:
            self._enqueue(task)
            return
        try:
            self.exporter.run_task(task, inv)
        except PermanentError as exc:
            self.exporter.fail(task.run_id, str(exc), inv)
        except Exception as exc:  # transient: retried through the queue, with its DLQ
            logger.warning(
                "inline window failed transiently; handing it to the queue",
                extra={"run_id": task.run_id, "error": f"{type(exc).__name__}: {exc}"},
            )
            self._enqueue(task)

    def _enqueue(self, task: Task) -> None:
        keys = self.exporter.keys(task.run_id, task.brand_id)
        self.exporter.queue.send([task.to_body()])
        self.exporter.store.put_if_absent(keys.enqueued(task.window, task.step), b"{}")

    def continue_task(self, body: str, receive_count: int, inv: Invocation) -> None:
        """One SQS record. Raising means "redeliver"; returning means "done with it"."""
        try:
            task = Task.from_body(body)
        except InvalidTask as exc:
            self._reject(str(exc))
            return
        try:
            self.exporter.run_task(task, inv)
        except InvalidTask as exc:
            self._reject(str(exc))
        except PermanentError as exc:
            self.exporter.fail(task.run_id, str(exc), inv)
        except Exception as exc:
            # Transient: SQS redelivers after the visibility timeout. On the last
            # delivery before the DLQ, fail the run instead of going silent.
            if receive_count >= self.settings.max_receive_count:
                self.exporter.fail(
                    task.run_id,
                    f"gave up after {receive_count} deliveries: {type(exc).__name__}: {exc}",
                    inv,
                )
                return
            logger.warning(
                "step failed transiently; SQS will redeliver",
                extra={
                    "run_id": task.run_id,
                    "window": task.window,
                    "step": task.step,
                    "receive_count": receive_count,
                    "error": f"{type(exc).__name__}: {exc}",
                },
            )
            raise

    def _reject(self, reason: str) -> None:
        logger.error(
            "rejected a queue message that is not a valid checkpoint", extra={"reason": reason}
        )
        metrics.add_metric(name="InvalidMessages", unit=MetricUnit.Count, value=1)


def utc_now() -> datetime:
    return datetime.now(UTC)


__all__ = ["InvalidEvent", "Service", "utc_now"]
