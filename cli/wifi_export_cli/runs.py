"""What the CLI knows about runs, read (and, for `cancel`, written) through the ledger.

A run's truth, from freshest to longest-lived (docs/contracts.md, "Status"):

* `runs/<id>/`: the plan, `status.json`, `done/` markers, per-window
  `progress/` objects, `failed.json`, the `cancel.json` slot, `notified.json`;
  expires after StateRetentionDays (30);
* `history/<YYYY-MM>/<id>.json`: the status document, written at the start and
  at the end; kept HistoryRetentionDays (400). A final state found here wins over
  a `status.json` that a late step rewrote as running.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from exporter.ports import ObjectStore
from exporter.run.counters import Counters
from exporter.run.keys import Layout, RunKeys, brand_of_run_id
from exporter.run.ledger import Ledger
from exporter.run.records import is_run_id
from wifi_export_cli import stored
from wifi_export_cli.deployment import CliError, Deployment

FINAL: Final = ("succeeded", "failed", "cancelled")
STATUSES: Final = ("running", *FINAL)
# The index is read month by month, newest first, back this far (> 400 days).
HISTORY_MONTHS: Final = 14
_READERS: Final = 16


@dataclass
class RunView:
    """One run as `status` and `runs` show it; `to_json` is the `--json` document."""

    run_id: str
    brand_id: int
    status: str
    start_date: str | None = None
    end_date: str | None = None
    time_basis: str | None = None
    trigger: str | None = None
    started_at: str | None = None
    windows_done: int = 0
    windows_total: int = 0
    # Committed once final; while running, the windows' progress so far.
    counters: Counters = field(default_factory=Counters)
    updated_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    last_checkpoint: dict[str, Any] | None = None
    error: str | None = None
    refused: list[Any] = field(default_factory=list)
    cancel: dict[str, Any] | None = None  # a cancel request not yet in effect
    selection: dict[str, Any] | None = None
    manifest: str | None = None
    windows: list[dict[str, Any]] | None = None  # the plan, as `run` answered it
    now: datetime | None = None  # when this was read
    malformed: list[str] = field(default_factory=list)  # stored fields of the wrong type

    @property
    def rows(self) -> int:
        return self.counters.rows

    @property
    def bytes(self) -> int:
        return self.counters.bytes

    @property
    def pages(self) -> int:
        return self.counters.pages

    @property
    def api_calls(self) -> int:
        return self.counters.api_calls

    @property
    def retries(self) -> int:
        return self.counters.retries

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def elapsed_s(self) -> float | None:
        if self.duration_s is not None:
            return self.duration_s
        started = parse_time(self.started_at)
        if started is None or self.now is None:
            return None
        return max(0.0, (self.now - started).total_seconds())

    def rate(self) -> float | None:
        """Rows per second over the run so far."""
        elapsed = self.elapsed_s()
        if not elapsed or not self.rows:
            return None
        return self.rows / elapsed

    def eta_s(self) -> float | None:
        """Time left if the remaining windows go as fast as the done ones did."""
        elapsed = self.elapsed_s()
        if self.final or elapsed is None or not self.windows_done:
            return None
        remaining = self.windows_total - self.windows_done
        return elapsed / self.windows_done * remaining

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "runId": self.run_id,
            "status": self.status,
            "brandId": self.brand_id,
            "startDate": self.start_date,
            "endDate": self.end_date,
            "timeBasis": self.time_basis,
            "trigger": self.trigger,
            "windowsDone": self.windows_done,
            "windowsTotal": self.windows_total,
            **self.counters.progress_json(),
            "startedAt": self.started_at,
            "updatedAt": self.updated_at,
            "finishedAt": self.finished_at,
            "durationSeconds": self.duration_s,
            "rowsPerSecond": _round(self.rate()),
            "etaSeconds": _round(self.eta_s()),
            "lastCheckpoint": self.last_checkpoint,
            "refused": self.refused,
            "error": self.error,
            "cancelRequested": self.cancel is not None,
            "manifest": self.manifest,
        }
        if self.selection is not None:
            doc["selection"] = self.selection
        if self.windows is not None:
            doc["windows"] = self.windows
        return doc


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class CancelOutcome:
    run_id: str
    outcome: str  # requested | already-requested | already-cancelled
    message: str


class Runs:
    """Reads (and, for `cancel`, writes one object of) the exporter's run state."""

    def __init__(
        self, deployment: Deployment, store: ObjectStore, clock: Callable[[], datetime]
    ) -> None:
        self.deployment = deployment
        self.layout = Layout(deployment.state_prefix, deployment.data_prefix)
        self._ledger = Ledger(store, self.layout, clock)
        self._clock = clock
        # Per-window progress objects by key: (version, document). Following a long
        # run re-reads only the windows that moved since the last refresh.
        self._progress: dict[str, tuple[str, dict[str, Any]]] = {}
        # History entries `recent` skipped as malformed (stored.py).
        self.skipped = 0

    # -- one run ---------------------------------------------------------------------

    def keys(self, run_id: str) -> RunKeys:
        if not is_run_id(run_id):
            raise CliError(
                f"{run_id[:80]!r} is not a run id",
                hint="run ids look like 20230701T033000000Z-b1234-9f2c41d0; "
                "`wifi-export runs` lists them",
                exit_code=2,
            )
        return self._ledger.keys_of(run_id)

    def status(self, run_id: str) -> RunView:
        keys = self.keys(run_id)
        docs = self._ledger.documents(keys)
        plan, status, history = docs.plan, docs.status, docs.history
        if plan is None and status is None and history is None:
            raise CliError(
                f"no run {run_id} in s3://{self.deployment.bucket}/{self.deployment.state_prefix}/",
                hint="check the run id (`wifi-export runs` lists recent runs) and the deployment "
                f"(found from {self.deployment.source})",
            )
        doc: dict[str, Any] = {**(plan or {}), **(history or {}), **(status or {})}
        if history is not None and history.get("state") in FINAL:
            doc = {**doc, **history}  # a final state wins over a late "running"
        view = self._view(keys, doc)
        if view.final:
            if view.status == "succeeded":
                view.manifest = f"s3://{self.deployment.bucket}/{keys.history_manifest}"
            return view
        # Running: what the run's folder says now.
        view.counters, refused = self._ledger.progress_of(keys, self._progress)
        view.refused = sorted({*view.refused, *stored.ids(refused)}, key=str)
        view.windows_done = self._ledger.windows_done(keys)
        view.cancel = docs.cancel
        view.error = self._ledger.failure(keys) or view.error
        return view

    def _view(self, keys: RunKeys, doc: dict[str, Any]) -> RunView:
        totals = stored.mapping(doc.get("totals")) or {}
        api = stored.mapping(doc.get("api")) or {}
        state = doc.get("state")
        windows = doc.get("windows")
        bad = stored.Malformed()
        rows = bad.count(doc, "rows", -1)
        return RunView(
            run_id=keys.run_id,
            brand_id=keys.brand_id,
            status=state if state in STATUSES else "running",
            start_date=stored.text(doc.get("startDate")),
            end_date=stored.text(doc.get("endDate")),
            time_basis=stored.text(doc.get("timeBasis")),
            trigger=stored.text(doc.get("trigger")),
            started_at=stored.text(doc.get("startedAt")),
            windows_done=bad.count(doc, "windowsDone"),
            windows_total=bad.count(
                doc, "windowsTotal", len(windows) if isinstance(windows, list) else 0
            ),
            # Every stored number checked for its type (stored.Malformed): one bad
            # history entry is skipped and counted, never a crash for everyone.
            counters=Counters(
                rows=rows if rows >= 0 else bad.count(totals, "rows"),
                bytes=bad.count(totals, "bytes"),
                pages=bad.count(api, "pages"),
                api_calls=bad.count(api, "calls"),
                retries=bad.count(api, "retries"),
            ),
            updated_at=stored.text(doc.get("updatedAt")),
            finished_at=stored.text(doc.get("finishedAt")),
            duration_s=bad.seconds(doc, "durationSeconds"),
            last_checkpoint=stored.mapping(doc.get("lastCheckpoint")),
            error=stored.text(doc.get("error")),
            refused=list(stored.ids(doc.get("refused"))),
            selection=stored.mapping(doc.get("selection")),
            now=self._clock(),
            malformed=bad.fields,
        )

    # -- the history index -------------------------------------------------------------

    def recent(
        self, *, brand: int | None = None, status: str | None = None, last: int = 20
    ) -> list[RunView]:
        """Runs newest first, from the history index, one month prefix at a time."""
        found: list[RunView] = []
        for month in self._months():
            ids = sorted(self._ledger.history_month(*month), reverse=True)
            if brand is not None:
                ids = [i for i in ids if is_run_id(i) and brand_of_run_id(i) == brand]
            for chunk in _chunks(ids, _READERS):
                with ThreadPoolExecutor(_READERS) as pool:
                    views = list(pool.map(self._entry, chunk))
                for view in views:
                    if view is not None and view.malformed:
                        self.skipped += 1  # one bad entry must not hide every run
                        continue
                    if view is not None and (status is None or view.status == status):
                        found.append(view)
                        if len(found) >= last:
                            return found
        return found

    def _months(self) -> Iterator[tuple[int, int]]:
        now = self._clock().astimezone(UTC)
        year, month = now.year, now.month
        for _ in range(HISTORY_MONTHS):
            yield year, month
            year, month = (year, month - 1) if month > 1 else (year - 1, 12)

    def _entry(self, run_id: str) -> RunView | None:
        if not is_run_id(run_id):
            return None
        keys = self.keys(run_id)
        doc = self._ledger.history_entry(keys)
        if doc is None:
            return None
        if doc.get("state") in FINAL:
            return self._view(keys, doc)
        try:
            return self.status(run_id)  # running: how far it is now
        except CliError:
            return self._view(keys, doc)

    # -- cancelling -------------------------------------------------------------------

    def cancel(self, run_id: str, requested_by: str) -> CancelOutcome:
        """Ask the run to stop (`Ledger.request_cancel`: docs/contracts.md, "Cancelling")."""
        view = self.status(run_id)
        keys = self.keys(run_id)
        if view.status == "cancelled":
            return CancelOutcome(run_id, "already-cancelled", f"run {run_id} is already cancelled")
        if view.final:
            raise CliError(
                f"run {run_id} already {view.status}: there is nothing to cancel",
                hint="a finished run stays as it is; a rerun of the same days replaces "
                "its partitions",
                exit_code=1,
            )
        answer = self._ledger.request_cancel(keys, requested_by)
        if answer.outcome == "requested":
            return CancelOutcome(
                run_id,
                "requested",
                f"cancel requested for run {run_id}: it stops at its next step, commits "
                "nothing, and sends one notification with status cancelled",
            )
        if answer.outcome == "already-requested":
            return CancelOutcome(
                run_id,
                "already-requested",
                f"run {run_id} already has a cancel request (at {answer.slot.get('requestedAt')})",
            )
        raise CliError(
            f"run {run_id} cannot be cancelled: "
            f"{answer.slot.get('reason', 'finishing has begun')} "
            "(the finisher took the run first)",
            hint=f"follow it to its end: wifi-export status {run_id} --follow",
            exit_code=1,
        )


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
