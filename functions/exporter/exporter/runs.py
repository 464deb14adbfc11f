"""The run protocol (DESIGN §2): plan, walk windows step by step, commit once, notify once.

Safety under at-least-once delivery without a database rests on four rules:

* a step's output is staged under a name unique to the attempt, and a step
  *record* naming those objects is created with a conditional put: the first
  attempt to finish a step wins, later ones delete what they staged and stop;
* a step runs only if it continues the recorded chain (step N-1 recorded and
  ending at the message's cursor), so stale or forged messages do nothing;
* the message for the next step is sent only when its "enqueued" marker is
  absent, and the marker is written after the send, so a crash between the
  two re-sends (a duplicate, which the first rule absorbs) instead of stalling;
* committing and notifying happen under a lease (conditional put of numbered
  lease objects, taken over only once the holder's deadline has passed); work
  that finds the lease taken stays queued until the run is notified, and
  "committed" / "notified" markers make both happen once.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from exporter import codec, notify
from exporter.api_client import CallStats
from exporter.codec import GzipWriter
from exporter.config import Settings
from exporter.errors import MalformedResponse, PermanentError, TransientError
from exporter.observability import MetricUnit, logger, metrics
from exporter.pages import read_ahead
from exporter.planning import days_of, request_range, split_windows
from exporter.ports import ObjectStore, Publisher, TaskQueue
from exporter.requests import RunRequest
from exporter.rows import RowShaper
from exporter.state import (
    InvalidTask,
    RunKeys,
    RunPlan,
    StagedObject,
    StepRecord,
    Task,
    Totals,
    make_run_id,
    run_id_of_data_object,
)

RemainingMs = Callable[[], int]
_COPY_THREADS = 8
_PLAN_CACHE = 64


@dataclass(frozen=True, slots=True)
class Invocation:
    """Who is working, and for how long it may.

    `holder` identifies the unit of work across retries: the SQS message id
    (the same on every redelivery) or the Lambda request id (the same on
    Lambda's own retries of an asynchronous invocation).
    """

    holder: str
    remaining_ms: RemainingMs


class PageSource(Protocol):
    stats: CallStats

    def fetch_v3(
        self,
        brand_id: int,
        start: str,
        end: str,
        cursor: str | None,
        remaining_s: Callable[[], float],
    ) -> tuple[list[Any], str | None]: ...


@dataclass(frozen=True, slots=True)
class _Walked:
    writers: dict[str, GzipWriter]
    totals: Totals
    next_cursor: str | None
    locations: set[int]


@dataclass(frozen=True, slots=True)
class Started:
    run_id: str
    plan: RunPlan


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Exporter:
    def __init__(
        self,
        settings: Settings,
        store: ObjectStore,
        queue: TaskQueue,
        publisher: Publisher,
        api: Callable[[], PageSource],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.store = store
        self.queue = queue
        self.publisher = publisher
        self._api = api
        self._clock = clock
        self._plans: dict[str, RunPlan] = {}

    def keys(self, run_id: str, brand_id: int) -> RunKeys:
        return RunKeys(self.settings.state_prefix, self.settings.data_prefix, run_id, brand_id)

    # -- starting runs -----------------------------------------------------

    def start(self, request: RunRequest) -> list[Started]:
        """Plan one run per brand (its windows are sent by `enqueue_windows`).

        Idempotent for a retried invocation: run ids derive from the request and
        its first start time, and an existing plan is reused.
        """
        started: list[Started] = []
        started_at = self._first_start(request)
        for brand_id in request.brand_ids:
            run_id = make_run_id(started_at, brand_id, request.request_key)
            keys = self.keys(run_id, brand_id)
            windows = split_windows(request.first_day, request.last_day, self.settings.window_days)
            plan = RunPlan(
                run_id=run_id,
                brand_id=brand_id,
                first_day=request.first_day,
                last_day=request.last_day,
                basis=request.basis,
                trigger=request.trigger,
                started_at=started_at.isoformat().replace("+00:00", "Z"),
                windows=tuple(windows),
            )
            if not self.store.put_if_absent(keys.plan, plan.to_json()):
                plan = self._plan(run_id)
            self._plans[run_id] = plan
            self._write_status(plan, state="running")
            started.append(Started(run_id, plan))
            logger.info(
                "run planned",
                extra={"run_id": run_id, "brand_id": brand_id, "windows": len(windows)},
            )
        return started

    def _first_start(self, request: RunRequest) -> datetime:
        """When this request was first seen: Lambda's retry of an invocation (same
        request id or event id) must get the same run ids, not start new runs."""
        digest = hashlib.sha256(request.request_key.encode()).hexdigest()[:32]
        key = f"{self.settings.state_prefix}/requests/{digest}.json"
        mine = request.started_at.astimezone(UTC)
        if self.store.put_if_absent(key, codec.dumps({"startedAt": mine.isoformat()})):
            return mine
        earlier = codec.loads(self.store.get(key) or b"{}").get("startedAt")
        return datetime.fromisoformat(earlier) if isinstance(earlier, str) else mine

    def enqueue_windows(self, plan: RunPlan, skip: frozenset[int] = frozenset()) -> int:
        keys = self.keys(plan.run_id, plan.brand_id)
        pending = [
            w.index
            for w in plan.windows
            if w.index not in skip and not self.store.exists(keys.enqueued(w.index, 0))
        ]
        self.queue.send([Task(plan.run_id, plan.brand_id, k, 0, None).to_body() for k in pending])
        for index in pending:
            self.store.put_if_absent(keys.enqueued(index, 0), b"{}")
        return len(pending)

    # -- one step of one window ------------------------------------------------

    def run_task(self, task: Task, inv: Invocation) -> None:
        """Do one step of a window; raises on transient trouble, PermanentError on the rest."""
        plan = self._plan(task.run_id)
        if task.brand_id != plan.brand_id or task.window >= len(plan.windows):
            raise InvalidTask("checkpoint message does not match its run's plan")
        keys = self.keys(plan.run_id, plan.brand_id)
        if self.store.exists(keys.failed):
            # Another window failed the run; make sure it was reported, then stop.
            self.finish(plan, inv)
            return
        existing = self.store.get(keys.step(task.window, task.step))
        if existing is not None:
            record = StepRecord.from_json(existing)
            logger.info(
                "step already recorded: resuming after it",
                extra={"run_id": plan.run_id, "window": task.window, "step": task.step},
            )
        else:
            walked = self._walk(plan, task, self._previous(keys, task), inv)
            recorded = self._record(plan, keys, task, walked)
            if recorded is None:
                return
            record = recorded
        self._follow_up(plan, keys, task, record, inv)

    def _previous(self, keys: RunKeys, task: Task) -> StepRecord | None:
        """The step this task continues, which must exist and end at the task's cursor.

        A message this exporter sent always satisfies this (the next step is sent
        only after its predecessor is recorded); a forged or stale one does not.
        """
        if task.step == 0:
            if task.cursor is not None:
                raise InvalidTask("checkpoint message: step 0 of a window starts without a cursor")
            return None
        raw = self.store.get(keys.step(task.window, task.step - 1))
        if raw is None:
            raise InvalidTask(
                f"checkpoint message: step {task.step} of window {task.window} "
                "continues a step that was never recorded"
            )
        previous = StepRecord.from_json(raw)
        if previous.next_cursor is None or previous.next_cursor != task.cursor:
            raise InvalidTask("checkpoint message: cursor does not continue the recorded step")
        return previous

    def _walk(
        self, plan: RunPlan, task: Task, previous: StepRecord | None, inv: Invocation
    ) -> _Walked:
        """Walk pages from the task's cursor while time allows; rows end up compressed."""
        window = plan.windows[task.window]
        start, end = request_range(window, plan.basis)
        shaper = RowShaper(plan.run_id, plan.basis, days_of(window.first_day, window.last_day))
        api = self._api()
        margin = self.settings.time_safety_margin_ms
        totals = Totals()
        # Every location of the window so far: one seen twice would be exported twice.
        locations: set[int] = set(previous.locations) if previous else set()

        def fetch(cursor: str | None, follow_on: bool) -> tuple[list[Any], str | None]:
            # Retries of a follow-on page may not eat into the time reserved
            # for flushing the pages already walked and handing over.
            reserve = margin if follow_on else 0
            return api.fetch_v3(
                plan.brand_id, start, end, cursor, lambda: (inv.remaining_ms() - reserve) / 1000
            )

        # Three stages overlap: pages are read (and parsed) ahead on one thread,
        # shaped here, and compressed on another thread. Another page is asked
        # for only while there is time to process it too, then flush and hand
        # over (TIME_SAFETY_MARGIN_MS covers one page + flush + send).
        next_cursor = task.cursor
        writers: dict[str, GzipWriter] = {}
        with ThreadPoolExecutor(1, thread_name_prefix="gzip") as packer:
            pages = read_ahead(fetch, task.cursor, lambda: inv.remaining_ms() >= margin)
            try:
                for data, cursor_after in pages:
                    next_cursor = cursor_after
                    shaped = shaper.shape(data)
                    ids = shaped.location_ids
                    if not locations.isdisjoint(ids) or len(set(ids)) != len(ids):
                        twice = locations.intersection(ids) | {i for i in ids if ids.count(i) > 1}
                        raise MalformedResponse(
                            f"v3 returned location {min(twice)} twice in one window: "
                            "its rows would be counted twice"
                        )
                    locations.update(ids)
                    totals.pages += 1
                    totals.dropped_rows += shaped.dropped_rows
                    for dt, lines in shaped.lines.items():
                        writer = writers.get(dt)
                        if writer is None:
                            writers[dt] = writer = GzipWriter(packer)
                        writer.write("".join(lines).encode(), shaped.rows[dt])
            except TransientError as exc:
                if totals.pages == 0:
                    raise
                # Keep what this invocation walked: checkpoint at the page that
                # failed (next_cursor), and let the next invocation retry it.
                logger.warning(
                    "page failed after retries; checkpointing the pages walked so far",
                    extra={"run_id": plan.run_id, "window": task.window, "error": str(exc)},
                )
            finally:
                pages.close()
        totals.api_calls = api.stats.calls
        totals.retries = api.stats.retries
        return _Walked(writers, totals, next_cursor, locations)

    def _record(
        self, plan: RunPlan, keys: RunKeys, task: Task, walked: _Walked
    ) -> StepRecord | None:
        """Stage the walked rows and record the step; None if a duplicate recorded it first."""
        totals = walked.totals
        attempt = secrets.token_hex(6)
        objects: list[StagedObject] = []
        for dt, writer in sorted(walked.writers.items()):
            body, size = writer.finish()
            key = keys.staged(task.window, task.step, attempt, dt)
            with body:
                self.store.put(key, body)
            objects.append(StagedObject(dt, key, writer.rows, size))
            totals.rows += writer.rows
            totals.bytes += size
        record = StepRecord(
            window=task.window,
            step=task.step,
            attempt=attempt,
            next_cursor=walked.next_cursor,
            objects=tuple(objects),
            totals=totals,
            finished_at=_now_iso(),
            locations=tuple(sorted(walked.locations)),
        )
        if not self.store.put_if_absent(keys.step(task.window, task.step), record.to_json()):
            # A duplicate delivery finished this step first: its record and
            # objects are the ones the chain continues from.
            self.store.delete([o.key for o in objects])
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
        self,
        plan: RunPlan,
        keys: RunKeys,
        task: Task,
        record: StepRecord,
        inv: Invocation,
    ) -> None:
        window_totals = Totals(**asdict(task.totals))
        window_totals.add(record.totals)
        if not record.done:
            next_step = task.step + 1
            if next_step > self.settings.max_hops:
                raise PermanentError(
                    f"window {task.window} needed more than {self.settings.max_hops} "
                    "invocations (MAX_HOPS): stopping a runaway chain"
                )
            marker = keys.enqueued(task.window, next_step)
            if not self.store.exists(marker):
                following = Task(
                    plan.run_id,
                    plan.brand_id,
                    task.window,
                    next_step,
                    record.next_cursor,
                    window_totals,
                )
                self.queue.send([following.to_body()])
                self.store.put_if_absent(marker, b"{}")
            self._write_status(
                plan,
                state="running",
                lastCheckpoint={"window": task.window, "step": next_step, "at": _now_iso()},
            )
            return
        self.store.put_if_absent(
            keys.done(task.window),
            codec.dumps(
                {"window": task.window, "steps": task.step + 1, "totals": asdict(window_totals)}
            ),
        )
        self.finish(plan, inv)

    # -- completion --------------------------------------------------------

    def finish(self, plan: RunPlan, inv: Invocation) -> None:
        """Commit and/or notify if the run is over; a no-op while windows are still open."""
        keys = self.keys(plan.run_id, plan.brand_id)
        if self.store.exists(keys.notified):
            return
        failed_raw = self.store.get(keys.failed)
        if failed_raw is None:
            done = sum(1 for _ in self.store.list_keys(keys.done_prefix))
            if done < len(plan.windows):
                self._write_status(plan, state="running")
                return
        if not self._take_lease(keys, inv):
            # Someone holds the lease: keep this work alive (retried after the
            # visibility timeout) until the run is notified, so the run still
            # finishes if the holder died, once its lease has expired.
            raise TransientError(f"run {plan.run_id} is being finished by another invocation")
        if self.store.exists(keys.notified):
            return
        if failed_raw is not None:
            failure = codec.loads(failed_raw)
            subject, body = notify.failure_message(
                plan, failure["error"], self._seconds_since(plan), None
            )
            self._publish(plan, subject, body, "failed")
            self._write_status(plan, state="failed", error=failure["error"])
            metrics.add_metric(name="RunsFailed", unit=MetricUnit.Count, value=1)
        else:
            manifest = self._commit(plan, keys)
            uri = f"s3://{self.settings.bucket_name}/{keys.manifest}"
            subject, body = notify.success_message(plan, manifest, uri)
            self._publish(plan, subject, body, "succeeded")
            self._write_status(plan, state="succeeded", totals=manifest["totals"])
            metrics.add_metric(name="RunsSucceeded", unit=MetricUnit.Count, value=1)
            metrics.add_metric(
                name="RowsExported", unit=MetricUnit.Count, value=manifest["totals"]["rows"]
            )
        self.store.put_if_absent(keys.notified, codec.dumps({"at": _now_iso()}))

    def fail(self, run_id: str, error: str, inv: Invocation) -> None:
        """Mark the run failed (first reason wins) and send its one failure notification."""
        plan = self._plan(run_id)
        keys = self.keys(plan.run_id, plan.brand_id)
        if next(iter(self.store.list_keys(keys.lease_prefix)), None) is not None:
            # Finishing has begun (partitions may be half replaced): the run can
            # only go forward. Keep the work alive; the DLQ alarm covers the worst.
            raise TransientError(f"run {run_id} is being committed; not failing it: {error}")
        first = self.store.put_if_absent(
            keys.failed, codec.dumps({"error": error, "at": _now_iso()})
        )
        logger.error(
            "run failed" if first else "run already failed",
            extra={"run_id": run_id, "error": error},
        )
        self.finish(plan, inv)

    def _take_lease(self, keys: RunKeys, inv: Invocation) -> bool:
        """Take the finishing lease unless a holder's lease is still running.

        Leases are numbered objects created with conditional puts; one lasts
        until its holder's Lambda deadline, after which the next number is free.
        """
        now = self._clock().timestamp()
        leases = sorted(self.store.list_keys(keys.lease_prefix))
        number = 0
        if leases:
            raw = self.store.get(leases[-1])
            holder: dict[str, Any] = codec.loads(raw) if raw else {"expiresAt": 0}
            if holder["expiresAt"] > now:
                return False
            number = int(leases[-1].rsplit("-", 1)[-1].split(".")[0]) + 1
        expires = now + inv.remaining_ms() / 1000.0
        lease = codec.dumps({"holder": inv.holder, "expiresAt": expires})
        return self.store.put_if_absent(keys.lease(number), lease)

    def _commit(self, plan: RunPlan, keys: RunKeys) -> dict[str, Any]:
        if self.store.exists(keys.committed):
            # A previous holder of the lease committed, then died before notifying.
            manifest: dict[str, Any] = codec.loads(self.store.get(keys.manifest) or b"{}")
            return manifest
        records = [
            StepRecord.from_json(self.store.get(key) or b"")
            for key in self.store.list_keys(keys.steps_prefix)
            if key.endswith(".json")
        ]
        by_dt: dict[str, list[tuple[StepRecord, StagedObject]]] = defaultdict(list)
        api = Totals()
        for record in records:
            api.add(record.totals)
            for obj in record.objects:
                by_dt[obj.dt].append((record, obj))
        partitions = []
        # Every day of the run is replaced, also days that now have no rows:
        # a rerun must not leave an older run's rows behind.
        copies = [
            (dt, obj.key, keys.data_object(record.window, record.step, dt))
            for dt, entries in by_dt.items()
            for record, obj in entries
        ]
        # Server-side copies, no data through the function; in parallel, since a
        # long run has one object per (day, window, invocation).
        with ThreadPoolExecutor(_COPY_THREADS, thread_name_prefix="commit") as pool:
            list(pool.map(lambda copy: self.store.copy(copy[1], copy[2]), copies))
        written: dict[str, list[str]] = defaultdict(list)
        for dt, _, target in copies:
            written[dt].append(target)
        # Every day of the run is replaced, also days that now have no rows:
        # a rerun must not leave an older run's rows behind.
        for day in days_of(plan.first_day, plan.last_day):
            dt = day.isoformat()
            self._replace_older(keys, dt, set(written[dt]))
            entries = by_dt.get(dt, [])
            partitions.append(
                {
                    "dt": dt,
                    "rows": sum(o.rows for _, o in entries),
                    "objects": len(written[dt]),
                    "bytes": sum(o.bytes for _, o in entries),
                    "keys": sorted(written[dt]),
                }
            )
        finished = self._clock()
        manifest = {
            "runId": plan.run_id,
            "brandId": plan.brand_id,
            "startDate": plan.first_day.isoformat(),
            "endDate": plan.last_day.isoformat(),
            "timeBasis": plan.basis,
            "status": "succeeded",
            "partitions": partitions,
            "totals": {
                "rows": sum(p["rows"] for p in partitions),
                "objects": sum(p["objects"] for p in partitions),
                "bytes": sum(p["bytes"] for p in partitions),
                "partitions": len(partitions),
                "droppedRowsOutsideRange": api.dropped_rows,
            },
            "api": {"calls": api.api_calls, "retries": api.retries, "pages": api.pages},
            "windows": len(plan.windows),
            "steps": len(records),
            "startedAt": plan.started_at,
            "finishedAt": finished.isoformat().replace("+00:00", "Z"),
            "durationSeconds": round(self._seconds_since(plan), 3),
        }
        self.store.put(keys.manifest, codec.dumps_pretty(manifest))
        self.store.put_if_absent(keys.committed, codec.dumps({"at": manifest["finishedAt"]}))
        return manifest

    def _replace_older(self, keys: RunKeys, dt: str, mine: set[str]) -> None:
        """Leave only the newest run's objects in a partition (run ids sort by start time)."""
        others: dict[str, list[str]] = defaultdict(list)
        for key in self.store.list_keys(keys.partition(dt)):
            if key in mine:
                continue
            owner = run_id_of_data_object(key)
            if owner is None:
                logger.warning("foreign object in a partition left alone", extra={"key": key})
                continue
            others[owner].append(key)
        newest = max(others, default=None)
        if newest is not None and newest > keys.run_id:
            # A newer run committed this partition first: it wins, our copy goes.
            doomed = [k for run, ks in others.items() if run != newest for k in ks] + sorted(mine)
        else:
            doomed = [k for ks in others.values() for k in ks]
        if doomed:
            self.store.delete(doomed)

    # -- helpers -----------------------------------------------------------

    def _plan(self, run_id: str) -> RunPlan:
        cached = self._plans.get(run_id)
        if cached is not None:
            return cached
        keys = RunKeys(self.settings.state_prefix, self.settings.data_prefix, run_id, 0)
        raw = self.store.get(keys.plan)
        if raw is None:
            raise InvalidTask(f"run {run_id} has no plan: not a run of this deployment")
        plan = RunPlan.from_json(raw)
        if len(self._plans) >= _PLAN_CACHE:
            self._plans.clear()  # a warm container serves many runs: keep this small
        self._plans[run_id] = plan
        return plan

    def _publish(self, plan: RunPlan, subject: str, body: dict[str, Any], status: str) -> None:
        self.publisher.publish(subject, codec.dumps(body).decode(), notify.attributes(plan, status))
        logger.info("notification published", extra={"run_id": plan.run_id, "status": status})

    def _seconds_since(self, plan: RunPlan) -> float:
        started = datetime.fromisoformat(plan.started_at.replace("Z", "+00:00"))
        return max(0.0, (self._clock() - started).total_seconds())

    def _write_status(self, plan: RunPlan, *, state: str, **extra: Any) -> None:
        keys = self.keys(plan.run_id, plan.brand_id)
        done = sum(1 for _ in self.store.list_keys(keys.done_prefix))
        status = {
            "runId": plan.run_id,
            "brandId": plan.brand_id,
            "state": state,
            "windowsTotal": len(plan.windows),
            "windowsDone": done,
            "updatedAt": _now_iso(),
            **extra,
        }
        self.store.put(keys.status, codec.dumps_pretty(status))
