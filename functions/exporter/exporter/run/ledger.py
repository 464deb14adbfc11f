"""The ledger: the one owner of a run's state in S3 (docs/contracts.md, "S3 layout").

One typed method per protocol move on the run-state table; the stages and the
CLI call these, never the store (docs/architecture.md, "The ledger").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import IO, Any, Final

from exporter import json_codec
from exporter.errors import InvalidTask
from exporter.ports import Clock, ObjectStore, TaskQueue
from exporter.redaction import error_text
from exporter.run.counters import Counters
from exporter.run.keys import Layout, RunKeys, brand_of_run_id, lease_number
from exporter.run.ledger_status import StatusBook
from exporter.run.parallel import at_once, each_at_once
from exporter.run.readings import (
    CancelAnswer,
    Ending,
    StepOpening,
    all_refused_error,
    cancel_request_doc,
    cancel_request_in,
    closed_slot_doc,
    summed_progress,
)
from exporter.run.records import RunPlan, StepRecord, Task, refused_ids

_PLAN_CACHE: Final = 64


class Ledger(StatusBook):
    """The run-state moves over one store (and, for sending checkpoints, one queue)."""

    def __init__(
        self,
        store: ObjectStore,
        layout: Layout,
        clock: Clock,
        queue: TaskQueue | None = None,
        plans: dict[str, RunPlan] | None = None,
    ) -> None:
        self._store = store
        self.layout = layout
        self._clock = clock
        self._queue = queue
        # Plans never change once written: a warm container keeps a few.
        self._plans: dict[str, RunPlan] = {} if plans is None else plans

    def keys_of(self, run_id: str) -> RunKeys:
        """A run's keys from its id alone (validated)."""
        return self.layout.run(run_id, brand_of_run_id(run_id))

    def first_sighting(self, request_key: str, mine: datetime) -> datetime:
        """When a request was first seen: a retried invocation gets the same run ids."""
        key = self.layout.request(request_key)
        if self._store.put_if_absent(key, json_codec.dumps({"startedAt": mine.isoformat()})):
            return mine
        earlier = json_codec.loads(self._store.get(key) or b"{}").get("startedAt")
        return datetime.fromisoformat(earlier) if isinstance(earlier, str) else mine

    def create_plan(self, plan: RunPlan) -> tuple[RunPlan, bool]:
        """Write a new run's plan, or find the one a first attempt wrote; True if new."""
        created = self._store.put_if_absent(self.keys(plan).plan, plan.to_json())
        if not created:
            plan = self.plan(plan.run_id)
        self._remember(plan)
        return plan, created

    def plan(self, run_id: str) -> RunPlan:
        cached = self._plans.get(run_id)
        if cached is not None:
            return cached
        raw = self._store.get(self.layout.plan(run_id))
        if raw is None:
            raise InvalidTask(f"run {run_id} has no plan: not a run of this deployment")
        plan = RunPlan.from_json(raw)
        self._remember(plan)
        return plan

    def _remember(self, plan: RunPlan) -> None:
        if len(self._plans) >= _PLAN_CACHE:  # a warm container serves many runs
            self._plans.clear()
        self._plans[plan.run_id] = plan

    # -- send, then mark --------------------------------------------------------------

    def send_then_mark(
        self, plan: RunPlan, tasks: Sequence[Task], delay_s: int = 0, *, new_run: bool = False
    ) -> int:
        """Send each task whose "enqueued" marker is absent, then create the markers; how
        many were sent (`new_run`: the plan was just created, no marker can exist)."""
        keys = self.keys(plan)
        pending = list(tasks)
        if not new_run:
            marked = each_at_once(
                lambda t: self._store.exists(keys.enqueued(t.window, t.step)), tasks
            )
            pending = [t for t, m in zip(tasks, marked, strict=True) if not m]
        marks = [(keys.enqueued(t.window, t.step), b"{}") for t in pending]
        self._send_then_mark([t.to_body() for t in pending], delay_s, marks)
        return len(pending)

    def back_offs(self, plan: RunPlan, task: Task) -> int:
        """How often this step was already sent back to the queue delayed."""
        return sum(
            1 for _ in self._store.list_keys(self.keys(plan).backoffs(task.window, task.step))
        )

    def count_delivery(self, plan: RunPlan, task: Task) -> tuple[int, bool]:
        """Mark a step's delivery at its start: its number; whether the last one was killed."""
        prefix = self.keys(plan).deliveries(task.window, task.step)
        before = sorted(self._store.list_keys(prefix))
        number = len(before) + 1
        while not self._store.put_if_absent(f"{prefix}{number:03d}.json", b"{}"):
            number += 1
        return number, bool(before) and self._store.get(before[-1]) == b"{}"

    def end_delivery(self, plan: RunPlan, task: Task, number: int) -> None:
        prefix = self.keys(plan).deliveries(task.window, task.step)
        self._store.put(f"{prefix}{number:03d}.json", json_codec.dumps({"ended": self.now_iso()}))

    def back_off(self, plan: RunPlan, task: Task, number: int, delay_s: int, **why: Any) -> None:
        """Re-send the step's own checkpoint delayed, then count back-off `number`."""
        marker = {"delaySeconds": delay_s, **why, "at": self.now_iso()}
        key = self.keys(plan).backoff(task.window, task.step, number)
        self._send_then_mark([task.to_body()], delay_s, [(key, json_codec.dumps(marker))])

    def _send_then_mark(
        self, bodies: list[str], delay_s: int, marks: list[tuple[str, bytes]]
    ) -> None:
        """All sent, then all marked (side by side): a crash between re-sends, never stalls."""
        if not bodies:
            return
        if self._queue is None:
            raise RuntimeError("this ledger has no queue: it cannot send checkpoints")
        if delay_s:
            self._queue.send(bodies, delay_s=delay_s)
        else:
            self._queue.send(bodies)
        each_at_once(lambda mark: self._store.put_if_absent(*mark), marks)

    def open_step(self, plan: RunPlan, task: Task) -> StepOpening:
        keys = self.keys(plan)
        failed, cancel, existing = at_once(
            lambda: self._store.exists(keys.failed),
            lambda: self.cancel_request(keys),
            lambda: self._store.get(keys.step(task.window, task.step)),
        )
        record = None if existing is None else StepRecord.from_json(existing)
        return StepOpening(failed, cancel, record)

    def step_record(self, plan: RunPlan, window: int, step: int) -> StepRecord | None:
        raw = self._store.get(self.keys(plan).step(window, step))
        return None if raw is None else StepRecord.from_json(raw)

    def step_records(self, plan: RunPlan) -> list[StepRecord]:
        keys = self.keys(plan)
        names = [key for key in self._store.list_keys(keys.steps_prefix) if key.endswith(".json")]
        return [StepRecord.from_json(raw or b"") for raw in each_at_once(self._store.get, names)]

    def stage(
        self, plan: RunPlan, task: Task, attempt: str, dt: str, body: IO[bytes] | bytes
    ) -> str:
        """Stage one day's rows of one attempt; returns the staged object's key."""
        key = self.keys(plan).staged(task.window, task.step, attempt, dt)
        self._store.put(key, body)
        return key

    def record_step(self, plan: RunPlan, record: StepRecord) -> bool:
        """Create the step record; False (and delete what was staged) if one was first."""
        key = self.keys(plan).step(record.window, record.step)
        if self._store.put_if_absent(key, record.to_json()):
            return True
        self._store.delete([o.key for o in record.objects])
        return False

    def mark_done(self, plan: RunPlan, window: int, steps: int) -> None:
        doc = json_codec.dumps({"window": window, "steps": steps})
        self._store.put_if_absent(self.keys(plan).done(window), doc)

    # -- progress: one single-writer object per window --------------------------------

    def window_progress(self, plan: RunPlan, window: int) -> dict[str, Any] | None:
        return self._doc(self.keys(plan).progress(window))

    def write_progress(self, plan: RunPlan, window: int, doc: dict[str, Any]) -> None:
        self._store.put(self.keys(plan).progress(window), json_codec.dumps(doc))

    def progress_of(
        self, keys: RunKeys, seen: dict[str, tuple[str, dict[str, Any]]] | None = None
    ) -> tuple[Counters, list[Any]]:
        """A running run's counts and refused ids so far, over its windows. `seen`: progress
        documents by key and version from an earlier call (only moved windows are re-read)."""
        seen = {} if seen is None else seen
        current = dict(self._store.list_tagged(keys.progress_prefix))
        stale = [key for key, tag in current.items() if seen.get(key, ("",))[0] != tag]
        for key, doc in zip(stale, each_at_once(self._doc, stale), strict=True):
            if doc is not None:
                seen[key] = (current[key], doc)
        return summed_progress([seen[key][1] for key in current if key in seen])

    # -- failure, cancel, lease -------------------------------------------------------

    def failure(self, keys: RunKeys) -> str | None:
        """The run's recorded error (also one written before errors were bounded), or None."""
        raw = self._store.get(keys.failed)
        if raw is None:
            return None
        doc = json_codec.loads(raw)
        return error_text(str(doc.get("error") if isinstance(doc, dict) else doc))

    def finishing_began(self, plan: RunPlan) -> bool:
        return next(iter(self._store.list_keys(self.keys(plan).lease_prefix)), None) is not None

    def record_failure(self, plan: RunPlan, error: str) -> bool:
        """Record why the run failed; the first reason wins. True if this one did."""
        doc = json_codec.dumps({"error": error, "at": self.now_iso()})
        return self._store.put_if_absent(self.keys(plan).failed, doc)

    def fail_if_all_refused(self, plan: RunPlan) -> str | None:
        """A selection skipping refused ids fails when every one was refused ("Events"),
        recorded as any window would before the commit; the recorded error, or None."""
        if plan.selection is None or not plan.selection.api.skips_refused:
            return None
        records = self.step_records(plan)
        ids = refused_ids(records)  # every id, not some: one the API left out is exported empty
        if any(r.locations for r in records) or len(ids) < len(plan.selection.ids):
            return None
        self.record_failure(plan, all_refused_error(ids))
        return self.failure(self.keys(plan))

    def cancel_request(self, keys: RunKeys) -> dict[str, Any] | None:
        """The run's cancel request (`wifi-export cancel`), or None (none, or refused)."""
        return cancel_request_in(self._doc(keys.cancel))

    def request_cancel(self, keys: RunKeys, requested_by: str) -> CancelAnswer:
        """A person asks the run to stop: create the cancel slot before the finisher does.
        The first creator decides ("Cancelling"); the loser reads what the winner wrote."""
        request = cancel_request_doc(self.now_iso(), requested_by)
        if self._store.put_if_absent(keys.cancel, json_codec.dumps(request)):
            return CancelAnswer("requested", request)
        slot = self._doc(keys.cancel) or {}
        return CancelAnswer("already-requested" if slot.get("cancel") is True else "refused", slot)

    def close_cancel_slot(self, plan: RunPlan, *, failed: bool) -> dict[str, Any] | None:
        """The finisher, under its lease, closes the cancel door: the request there first."""
        keys = self.keys(plan)
        if self._store.put_if_absent(keys.cancel, closed_slot_doc(self.now_iso(), failed=failed)):
            return None
        return self.cancel_request(keys)

    def take_lease(self, plan: RunPlan, holder: str, remaining_s: float) -> int | None:
        """The finishing lease's number, or None while a holder's runs: it lasts until
        its holder's deadline; the conditional put decides between two takers."""
        keys = self.keys(plan)
        now = self._clock().timestamp()
        leases = sorted(self._store.list_keys(keys.lease_prefix))
        number = 0
        if leases:
            last = self._doc(leases[-1]) or {"expiresAt": 0}
            if last["expiresAt"] > now:
                return None
            number = lease_number(leases[-1]) + 1
        lease = json_codec.dumps({"holder": holder, "expiresAt": now + remaining_s})
        return number if self._store.put_if_absent(keys.lease(number), lease) else None

    def ending(self, plan: RunPlan) -> Ending:
        """Four reads in one round trip (markers are only created: as if one by one)."""
        keys = self.keys(plan)
        notified, failure, cancel, done = at_once(
            lambda: self._store.exists(keys.notified),
            lambda: self.failure(keys),
            lambda: self.cancel_request(keys),
            lambda: self.windows_done(keys),
        )
        return Ending(notified, failure, cancel, done)

    def notified(self, plan: RunPlan) -> bool:
        return self._store.exists(self.keys(plan).notified)

    def mark_notified(self, plan: RunPlan) -> None:
        self._store.put_if_absent(
            self.keys(plan).notified, json_codec.dumps({"at": self.now_iso()})
        )

    def committed_manifest(self, plan: RunPlan) -> dict[str, Any] | None:
        """The manifest of a commit an earlier lease holder finished, or None."""
        keys = self.keys(plan)
        return (self._doc(keys.manifest) or {}) if self._store.exists(keys.committed) else None

    def record_coverage(self, plan: RunPlan, coverage: bytes) -> None:
        self._store.put(self.keys(plan).coverage, coverage)

    def coverage_of(self, run_id: str) -> tuple[bytes | None, RunPlan | None]:
        """Another run's coverage document and, if it has none, its plan (if any)."""
        raw = self._store.get(self.layout.coverage(run_id))
        if raw is not None or not self._store.exists(self.layout.plan(run_id)):
            return raw, None
        return None, self.plan(run_id)

    def record_commit(self, plan: RunPlan, manifest: dict[str, Any]) -> None:
        keys = self.keys(plan)
        self._store.put(keys.manifest, json_codec.dumps_pretty(manifest))
        self._store.put_if_absent(keys.committed, json_codec.dumps({"at": manifest["finishedAt"]}))

    def keep_manifest(self, plan: RunPlan, manifest: dict[str, Any]) -> None:
        """The long-lived copy (the run's own folder expires with the staging)."""
        self._store.put(self.keys(plan).history_manifest, json_codec.dumps_pretty(manifest))
