"""What every stage of a run shares: the ports, the clock, plans, status, and the hand-over.

`RunContext` is built once per cold start by `exporter.wiring` (real adapters)
or by a test (in-memory fakes). The stages (`start`, `step`, `finish`) are
plain functions of a context.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from exporter import json_codec
from exporter.config import Settings
from exporter.errors import InvalidTask
from exporter.observability import logger
from exporter.ports import Clock, ObjectStore, PageSource, Publisher, RemainingMs, TaskQueue
from exporter.redaction import redact_value
from exporter.run.keys import Layout, RunKeys
from exporter.run.parallel import at_once
from exporter.run.records import RunPlan, Task

_PLAN_CACHE: Final = 64
# Attempts of one compare-and-swap status write before giving up on it (a later
# write brings it up to date; the done markers are the truth).
_STATUS_TRIES: Final = 5


@dataclass(frozen=True, slots=True)
class Invocation:
    """Who is working, and for how long it may.

    `holder` identifies the unit of work across retries: the SQS message id
    (the same on every redelivery) or the Lambda request id (the same on
    Lambda's own retries of an asynchronous invocation).
    """

    holder: str
    remaining_ms: RemainingMs


@dataclass(slots=True)
class RunContext:
    settings: Settings
    store: ObjectStore
    queue: TaskQueue
    publisher: Publisher
    # A new API client per step: it reads the credentials once for that step.
    api: Callable[[], PageSource]
    clock: Clock
    layout: Layout = field(init=False)
    _plans: dict[str, RunPlan] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.layout = Layout(self.settings.state_prefix, self.settings.data_prefix)

    # -- time --------------------------------------------------------------

    def now_iso(self) -> str:
        return iso(self.clock())

    def seconds_since(self, plan: RunPlan) -> float:
        started = datetime.fromisoformat(plan.started_at.replace("Z", "+00:00"))
        return max(0.0, (self.clock() - started).total_seconds())

    # -- plans -------------------------------------------------------------

    def keys(self, plan: RunPlan) -> RunKeys:
        return self.layout.run(plan.run_id, plan.brand_id, plan.basis)

    def plan(self, run_id: str) -> RunPlan:
        """A run's plan, cached: plans never change once written."""
        cached = self._plans.get(run_id)
        if cached is not None:
            return cached
        raw = self.store.get(self.layout.plan(run_id))
        if raw is None:
            raise InvalidTask(f"run {run_id} has no plan: not a run of this deployment")
        plan = RunPlan.from_json(raw)
        self.remember(plan)
        return plan

    def remember(self, plan: RunPlan) -> None:
        if len(self._plans) >= _PLAN_CACHE:
            self._plans.clear()  # a warm container serves many runs: keep this small
        self._plans[plan.run_id] = plan

    # -- shared protocol moves -----------------------------------------------

    def hand_over(
        self, plan: RunPlan, tasks: Sequence[Task], delay_s: int = 0, *, new_run: bool = False
    ) -> int:
        """Send each task whose "enqueued" marker is absent, then create the markers.

        The marker is written after the send: a crash between the two re-sends
        the task (a duplicate, which the step record's conditional put absorbs)
        instead of stalling the window. Returns how many were sent. `delay_s`
        holds the messages back (a throttled window backing off). `new_run`: the
        caller has just created the plan, so no marker can exist yet.
        """
        keys = self.keys(plan)
        pending = [
            t for t in tasks if new_run or not self.store.exists(keys.enqueued(t.window, t.step))
        ]
        if not pending:
            return 0
        bodies = [t.to_body() for t in pending]
        if delay_s:
            self.queue.send(bodies, delay_s=delay_s)
        else:
            self.queue.send(bodies)
        for task in pending:
            self.store.put_if_absent(keys.enqueued(task.window, task.step), b"{}")
        return len(pending)

    def windows_done(self, plan: RunPlan) -> int:
        return sum(1 for _ in self.store.list_keys(self.keys(plan).done_prefix))

    def write_status(
        self,
        plan: RunPlan,
        *,
        state: str,
        history: bool = False,
        windows_done: int | None = None,
        **extra: Any,
    ) -> None:
        """The run's status object (docs/contracts.md, "Status"): progress a person can read.

        With `history` (the start) and for every final state, the same document
        is also the run's entry in the long-lived history index (`wifi-export runs`).
        `windows_done` is the count of done markers if the caller just listed them.

        Many windows of a run finish at once, each writing "running" with the count
        it listed, while the last one writes the final state: a progress write is
        conditional on the version it read (S3 `If-Match`), never replaces a final
        state, and never lowers `windowsDone` (docs/architecture.md, "Status").
        """
        keys = self.keys(plan)
        done = self.windows_done(plan) if windows_done is None else windows_done
        if state != "running":
            # Final states are written once, by the finisher under the lease: they win.
            body = self._status_body(plan, state, done, extra)
            at_once(
                lambda: self.store.put(keys.status, body),
                lambda: self.store.put(keys.history, body),
            )
        else:
            if history:
                # A new run: its first status cannot exist yet, so no read first.
                body = self._status_body(plan, state, done, extra)
                _, first = at_once(
                    lambda: self.store.put(keys.history, body),
                    lambda: self.store.put_if_absent(keys.status, body),
                )
                if first:
                    return
            self._write_progress(plan, keys, done, extra)
        logger.debug("status written", extra={"run_id": plan.run_id, "state": state})

    def _status_body(self, plan: RunPlan, state: str, done: int, extra: dict[str, Any]) -> bytes:
        status = {
            **plan.summary(),
            "trigger": plan.trigger,
            "startedAt": plan.started_at,
            "state": state,
            "windowsTotal": len(plan.windows),
            "windowsDone": done,
            "updatedAt": self.now_iso(),
            **extra,
        }
        return json_codec.dumps_pretty(redact_value(status))

    def _write_progress(
        self, plan: RunPlan, keys: RunKeys, done: int, extra: dict[str, Any]
    ) -> None:
        """A "running" status, unless the run has ended; compare-and-swap on its version."""
        for _ in range(_STATUS_TRIES):
            current = self.store.get_versioned(keys.status)
            if current is None:
                if self.store.put_if_absent(
                    keys.status, self._status_body(plan, "running", done, extra)
                ):
                    return
                continue
            raw, etag = current
            before = json_codec.loads(raw)
            if not isinstance(before, dict) or before.get("state", "running") != "running":
                return  # ended meanwhile: a late progress write must not reopen it
            counted = before.get("windowsDone")
            if isinstance(counted, int) and counted > done:
                done = counted  # a concurrent writer listed more done windows
            body = self._status_body(plan, "running", done, extra)
            if self.store.put_if_match(keys.status, body, etag):
                return
        logger.info(
            "status not updated: concurrent writers kept changing it",
            extra={"run_id": plan.run_id},
        )


def iso(moment: datetime) -> str:
    """UTC to the millisecond with a `Z`, the form of every timestamp the exporter writes."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
