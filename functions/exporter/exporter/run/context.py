"""What every stage of a run shares: the settings, the ports and the clock.

`RunContext` is built once per cold start by `exporter.wiring` (real adapters)
or by a test (in-memory fakes). The stages (`start`, `step`, `finish`) are
plain functions of a context; they move a run's state through `ctx.ledger`
(run.ledger), the ledger over the context's store and queue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from exporter.config import Settings
from exporter.ports import Clock, ObjectStore, PageSource, Publisher, RemainingMs, TaskQueue
from exporter.run.keys import Layout, RunKeys
from exporter.run.ledger import Ledger
from exporter.run.readings import iso
from exporter.run.records import RunPlan

__all__ = ["Invocation", "RunContext", "iso"]


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
    # Plans read so far (they never change): shared by every ledger of this context.
    _plans: dict[str, RunPlan] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.layout = Layout(self.settings.state_prefix, self.settings.data_prefix)

    @property
    def ledger(self) -> Ledger:
        """The run-state moves over this context's store and queue (cheap to build)."""
        return Ledger(self.store, self.layout, self.clock, self.queue, self._plans)

    def now_iso(self) -> str:
        return iso(self.clock())

    def seconds_since(self, plan: RunPlan) -> float:
        started = datetime.fromisoformat(plan.started_at.replace("Z", "+00:00"))
        return max(0.0, (self.clock() - started).total_seconds())

    def keys(self, plan: RunPlan) -> RunKeys:
        return self.layout.run(plan.run_id, plan.brand_id, plan.basis)
