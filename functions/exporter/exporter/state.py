"""State that crosses invocations: run plans, checkpoint tasks, step records, and their keys.

Every S3 key is a pure function of validated values (run id, window, step,
date), so nothing from an event or an API response can steer a key outside
the configured prefixes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime
from typing import Any, Final

from exporter import codec
from exporter.api_client import MAX_CURSOR_LENGTH
from exporter.config import TimeBasis
from exporter.errors import InvalidEvent
from exporter.planning import Window

TASK_VERSION: Final = 1
_RUN_ID_RE: Final = re.compile(r"^(\d{8}T\d{9}Z)-b(\d{1,19})-([0-9a-f]{8})$")
_DATA_NAME_RE: Final = re.compile(r"^(\d{8}T\d{9}Z-b\d{1,19}-[0-9a-f]{8})-w\d+-s\d+\.json\.gz$")
_TASK_FIELDS: Final = frozenset({"v", "runId", "brandId", "window", "step", "cursor", "totals"})


class InvalidTask(InvalidEvent):
    """A queue message that is not ours, or was tampered with: dropped, never retried."""


def make_run_id(started_at: datetime, brand_id: int, request_key: str) -> str:
    """Sortable by start time to the millisecond: the newest run owns a partition."""
    digest = hashlib.sha256(f"{request_key}|{brand_id}".encode()).hexdigest()[:8]
    stamp = started_at.astimezone(UTC)
    return f"{stamp:%Y%m%dT%H%M%S}{stamp.microsecond // 1000:03d}Z-b{brand_id}-{digest}"


def is_run_id(value: Any) -> bool:
    return isinstance(value, str) and _RUN_ID_RE.match(value) is not None


def run_id_of_data_object(key: str) -> str | None:
    """The run that wrote a table object, from its name; None for a foreign file."""
    match = _DATA_NAME_RE.match(key.rsplit("/", 1)[-1])
    return match.group(1) if match else None


@dataclass(frozen=True, slots=True)
class RunPlan:
    run_id: str
    brand_id: int
    first_day: date
    last_day: date
    basis: TimeBasis
    trigger: str
    started_at: str
    windows: tuple[Window, ...]

    def to_json(self) -> bytes:
        return codec.dumps_pretty(
            {
                "runId": self.run_id,
                "brandId": self.brand_id,
                "startDate": self.first_day.isoformat(),
                "endDate": self.last_day.isoformat(),
                "timeBasis": self.basis,
                "trigger": self.trigger,
                "startedAt": self.started_at,
                "windows": [
                    {
                        "index": w.index,
                        "start": w.first_day.isoformat(),
                        "end": w.last_day.isoformat(),
                    }
                    for w in self.windows
                ],
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> RunPlan:
        doc = codec.loads(raw)
        return cls(
            run_id=doc["runId"],
            brand_id=doc["brandId"],
            first_day=date.fromisoformat(doc["startDate"]),
            last_day=date.fromisoformat(doc["endDate"]),
            basis="local" if doc["timeBasis"] == "local" else "utc",
            trigger=doc["trigger"],
            started_at=doc["startedAt"],
            windows=tuple(
                Window(w["index"], date.fromisoformat(w["start"]), date.fromisoformat(w["end"]))
                for w in doc["windows"]
            ),
        )


@dataclass(slots=True)
class Totals:
    """Counters carried along a window's chain of checkpoints."""

    rows: int = 0
    bytes: int = 0
    pages: int = 0
    api_calls: int = 0
    retries: int = 0
    dropped_rows: int = 0

    def add(self, other: Totals) -> None:
        for counter in fields(self):
            setattr(self, counter.name, getattr(self, counter.name) + getattr(other, counter.name))

    @classmethod
    def from_dict(cls, raw: Any) -> Totals:
        if not isinstance(raw, dict):
            raise InvalidTask("totals: expected an object")
        values: dict[str, int] = {}
        for name in (counter.name for counter in fields(cls)):
            value = raw.get(name, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidTask(f"totals.{name}: expected a natural number")
            values[name] = value
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Task:
    """A checkpoint: continue window `window` of run `run_id` at `step` from `cursor`."""

    run_id: str
    brand_id: int
    window: int
    step: int
    cursor: str | None
    totals: Totals = field(default_factory=Totals)

    def to_body(self) -> str:
        return codec.dumps(
            {
                "v": TASK_VERSION,
                "runId": self.run_id,
                "brandId": self.brand_id,
                "window": self.window,
                "step": self.step,
                "cursor": self.cursor,
                "totals": asdict(self.totals),
            }
        ).decode()

    @classmethod
    def from_body(cls, body: str) -> Task:
        try:
            doc = codec.loads(body.encode())
        except codec.JSONDecodeError:
            raise InvalidTask("checkpoint message: body is not JSON") from None
        if not isinstance(doc, dict):
            raise InvalidTask("checkpoint message: body is not a JSON object")
        if doc.get("v") != TASK_VERSION:
            raise InvalidTask(f"checkpoint message: unknown version {doc.get('v')!r}")
        unknown = sorted(set(doc) - _TASK_FIELDS)
        if unknown:
            raise InvalidTask(f"checkpoint message: unknown field(s) {', '.join(unknown)}")
        if not is_run_id(doc.get("runId")):
            raise InvalidTask("checkpoint message: runId is not a run id of this exporter")
        for name in ("brandId", "window", "step"):
            value = doc.get(name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidTask(f"checkpoint message: {name} is not a natural number")
        cursor = doc.get("cursor")
        if cursor is not None and (not isinstance(cursor, str) or not cursor):
            raise InvalidTask("checkpoint message: cursor is neither a string nor null")
        if cursor is not None and len(cursor) > MAX_CURSOR_LENGTH:
            raise InvalidTask(f"checkpoint message: cursor longer than {MAX_CURSOR_LENGTH}")
        return cls(
            run_id=doc["runId"],
            brand_id=doc["brandId"],
            window=doc["window"],
            step=doc["step"],
            cursor=cursor,
            totals=Totals.from_dict(doc.get("totals", {})),
        )


@dataclass(frozen=True, slots=True)
class StagedObject:
    dt: str
    key: str
    rows: int
    bytes: int


@dataclass(frozen=True, slots=True)
class StepRecord:
    """What one step of a window produced; the first one written wins (conditional put)."""

    window: int
    step: int
    attempt: str
    next_cursor: str | None
    objects: tuple[StagedObject, ...]
    totals: Totals
    finished_at: str
    # Every location of the window up to this step, to catch an API that
    # returns a location twice (its rows would be counted twice).
    locations: tuple[int, ...] = ()

    @property
    def done(self) -> bool:
        return self.next_cursor is None

    def to_json(self) -> bytes:
        return codec.dumps(
            {
                "window": self.window,
                "step": self.step,
                "attempt": self.attempt,
                "nextCursor": self.next_cursor,
                "objects": [asdict(o) for o in self.objects],
                "totals": asdict(self.totals),
                "finishedAt": self.finished_at,
                "locations": self.locations,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> StepRecord:
        doc = codec.loads(raw)
        return cls(
            window=doc["window"],
            step=doc["step"],
            attempt=doc["attempt"],
            next_cursor=doc["nextCursor"],
            objects=tuple(StagedObject(**o) for o in doc["objects"]),
            totals=Totals.from_dict(doc["totals"]),
            finished_at=doc["finishedAt"],
            locations=tuple(doc.get("locations", ())),
        )


class RunKeys:
    """Where everything of one run lives (DESIGN §3)."""

    def __init__(self, state_prefix: str, data_prefix: str, run_id: str, brand_id: int) -> None:
        if not is_run_id(run_id):
            raise InvalidTask(f"not a run id: {run_id[:80]!r}")
        self.run_id = run_id
        self.brand_id = brand_id
        self.root = f"{state_prefix}/runs/{run_id}/"
        self._data = f"{data_prefix}/brand_id={brand_id}/"
        self.plan = self.root + "plan.json"
        self.status = self.root + "status.json"
        self.manifest = self.root + "manifest.json"
        self.failed = self.root + "failed.json"
        self.committed = self.root + "committed.json"
        self.notified = self.root + "notified.json"
        self.steps_prefix = self.root + "steps/"
        self.done_prefix = self.root + "done/"
        self.lease_prefix = self.root + "commit/lease-"
        self.staged_prefix = self.root + "staged/"

    def step(self, window: int, step: int) -> str:
        return f"{self.steps_prefix}w{window}/s{step}.json"

    def enqueued(self, window: int, step: int) -> str:
        return f"{self.steps_prefix}w{window}/s{step}.enqueued"

    def done(self, window: int) -> str:
        return f"{self.done_prefix}w{window}.json"

    def lease(self, number: int) -> str:
        return f"{self.lease_prefix}{number:06d}.json"

    def staged(self, window: int, step: int, attempt: str, dt: str) -> str:
        return f"{self.staged_prefix}w{window}/s{step}/{attempt}/dt={dt}.json.gz"

    def partition(self, dt: str) -> str:
        return f"{self._data}dt={dt}/"

    def data_object(self, window: int, step: int, dt: str) -> str:
        return f"{self.partition(dt)}{self.run_id}-w{window}-s{step}.json.gz"
