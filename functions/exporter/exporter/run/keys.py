"""Every S3 key the exporter reads or writes: the layout of docs/contracts.md, "S3 layout".

Keys are pure functions of validated values (run id, brand, time basis,
window, step, date), so nothing from an event or an API response can steer a key outside
the configured prefixes. Nothing else in the package builds a key.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

from exporter.config import TimeBasis
from exporter.errors import InvalidTask
from exporter.run.records import RUN_ID_PATTERN, is_run_id

_DATA_NAME_RE: Final = re.compile(rf"({RUN_ID_PATTERN})-w\d+-s\d+\.json\.gz", re.ASCII)
_LEASE_RE: Final = re.compile(r"lease-(\d{6})\.json\Z", re.ASCII)


def run_id_of_data_object(key: str) -> str | None:
    """The run that wrote a table object, from its name; None for a foreign file."""
    match = _DATA_NAME_RE.fullmatch(key.rsplit("/", 1)[-1])
    return match.group(1) if match else None


def brand_of_run_id(run_id: str) -> int:
    """The brand a run id names (`...Z-b1234-9f2c41d0` -> 1234)."""
    if not is_run_id(run_id):
        raise InvalidTask(f"not a run id: {run_id[:80]!r}")
    return int(run_id.rsplit("-", 2)[1][1:])


def lease_number(key: str) -> int:
    """The number of a lease object (`.../commit/lease-000003.json` -> 3)."""
    match = _LEASE_RE.search(key)
    if match is None:
        raise InvalidTask(f"not a lease object: {key[-80:]!r}")
    return int(match.group(1))


class Layout:
    """The two prefixes of one deployment: the table (`data`) and run state (`state`)."""

    def __init__(self, state_prefix: str, data_prefix: str) -> None:
        self.state_prefix = state_prefix
        self.data_prefix = data_prefix

    def run(self, run_id: str, brand_id: int, basis: TimeBasis | None = None) -> RunKeys:
        """A run's keys; `basis` (the plan's) is needed only for its table partitions."""
        return RunKeys(self, run_id, brand_id, basis)

    def old_layout(self, brand_id: int) -> str:
        """Where a brand's partitions were before time bases were datasets of their own
        (`brand_id=N/dt=D/`): the exporter refuses to commit while anything is there."""
        return f"{self.data_prefix}/brand_id={brand_id}/dt="

    def plan(self, run_id: str) -> str:
        """A run's plan, found from its run id alone (a queue message names only that)."""
        if not is_run_id(run_id):
            raise InvalidTask(f"not a run id: {run_id[:80]!r}")
        return f"{self.state_prefix}/runs/{run_id}/plan.json"

    def coverage(self, run_id: str) -> str:
        """What a committed run replaced (run.coverage): read by runs committing later."""
        return self.plan(run_id).removesuffix("plan.json") + "coverage.json"

    def request(self, request_key: str) -> str:
        """When a request (event id / Lambda request id) was first seen: its retries reuse it."""
        digest = hashlib.sha256(request_key.encode()).hexdigest()[:32]
        return f"{self.state_prefix}/requests/{digest}.json"

    # -- run history: kept for HistoryRetentionDays (>= 400), unlike runs/ (docs/contracts.md)

    @property
    def history_prefix(self) -> str:
        return f"{self.state_prefix}/history/"

    def history_month(self, year: int, month: int) -> str:
        """The index of the runs started in one UTC month (`wifi-export runs` reads these)."""
        return f"{self.history_prefix}{year:04d}-{month:02d}/"

    def history(self, run_id: str) -> str:
        """A run's entry in the index: its status document, written at start and at the end."""
        self.plan(run_id)  # validates the run id
        return f"{self.history_month(int(run_id[:4]), int(run_id[4:6]))}{run_id}.json"

    def history_manifest(self, run_id: str) -> str:
        """The long-lived copy of a committed run's manifest."""
        return self.history(run_id).removesuffix(".json") + ".manifest.json"

    # -- lake coverage: kept as long as the table (exporter.lake, docs/contracts.md)

    def lake(self, brand_id: int, basis: str) -> str:
        return f"{self.state_prefix}/lake/brand_id={brand_id}/time_basis={basis}/"

    def lake_month(self, brand_id: int, basis: str, month: str, kind: str) -> str:
        """One month of a brand's lake coverage: `days` (the calendar) or `sums`."""
        return f"{self.lake(brand_id, basis)}{kind}/{month}.json"


class RunKeys:
    """Where everything of one run lives."""

    def __init__(
        self, layout: Layout, run_id: str, brand_id: int, basis: TimeBasis | None = None
    ) -> None:
        self.plan = layout.plan(run_id)  # validates the run id
        self.run_id = run_id
        self.brand_id = brand_id
        self.root = self.plan.removesuffix("plan.json")
        # Each time basis is a dataset of its own: its partitions never hold the other's rows.
        self.basis = basis
        self._data = f"{layout.data_prefix}/brand_id={brand_id}/time_basis={basis}/"
        self.old_layout = layout.old_layout(brand_id)
        self.status = self.root + "status.json"
        self.manifest = self.root + "manifest.json"
        self.failed = self.root + "failed.json"
        self.committed = self.root + "committed.json"
        self.coverage = layout.coverage(run_id)
        self.notified = self.root + "notified.json"
        self.steps_prefix = self.root + "steps/"
        self.done_prefix = self.root + "done/"
        self.lease_prefix = self.root + "commit/lease-"
        self.staged_prefix = self.root + "staged/"
        # A cancel request (`wifi-export cancel`), or the finisher closing the door on
        # one: whoever creates it first decides (docs/architecture.md, "Cancelling").
        self.cancel = self.root + "cancel.json"
        # Per-window progress, each written only by its window's sequential chain.
        self.progress_prefix = self.root + "progress/"
        # A step's back-offs through the queue (429 storms): one object each, counted.
        self.backoff_prefix = self.root + "backoff/"
        # Days whose Parquet object the commit has rebuilt (exporter/parquet_table.py).
        self.parquet_done_prefix = self.root + "parquet/"
        self.history = layout.history(run_id)
        self.history_manifest = layout.history_manifest(run_id)

    def step(self, window: int, step: int) -> str:
        return f"{self.steps_prefix}w{window}/s{step}.json"

    def enqueued(self, window: int, step: int) -> str:
        return f"{self.steps_prefix}w{window}/s{step}.enqueued"

    def done(self, window: int) -> str:
        return f"{self.done_prefix}w{window}.json"

    def progress(self, window: int) -> str:
        return f"{self.progress_prefix}w{window}.json"

    def backoffs(self, window: int, step: int) -> str:
        """Where the back-offs of one step are counted (`backoff(window, step, n)`)."""
        return f"{self.backoff_prefix}w{window}/s{step}/"

    def deliveries(self, window: int, step: int) -> str:
        """One marker per delivery of a step, created at its start (`count_delivery`)."""
        return f"{self.root}deliveries/w{window}/s{step}/"

    def backoff(self, window: int, step: int, number: int) -> str:
        return f"{self.backoffs(window, step)}{number:03d}.json"

    def lease(self, number: int) -> str:
        return f"{self.lease_prefix}{number:06d}.json"

    def staged(self, window: int, step: int, attempt: str, dt: str) -> str:
        return f"{self.staged_prefix}w{window}/s{step}/{attempt}/dt={dt}.json.gz"

    def parquet_done(self, dt: str) -> str:
        return f"{self.parquet_done_prefix}dt={dt}.json"

    def partition(self, dt: str) -> str:
        if self.basis not in ("utc", "local"):
            raise ValueError("a run's partitions need its time basis")
        return f"{self._data}dt={dt}/"

    def data_object(self, window: int, step: int, dt: str) -> str:
        return f"{self.partition(dt)}{self.run_id}-w{window}-s{step}.json.gz"
