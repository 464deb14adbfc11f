"""The records that cross invocations: run ids, plans, checkpoint messages, step records.

Each is a frozen dataclass with its own JSON form, validated on the way in:
a queue message is input like any event (docs/contracts.md, "Checkpoints").
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from exporter import json_codec
from exporter.config import TimeBasis
from exporter.errors import InvalidTask
from exporter.planning import Window
from exporter.ports import MAX_CURSOR_LENGTH
from exporter.run.counters import Counters
from exporter.selection import Selection

# Version 2 dropped the window totals that version 1 carried along the chain
# (nothing read them). Version 1 messages still in flight during an upgrade
# are accepted; their totals are validated and ignored.
TASK_VERSION: Final = 2
_TASK_FIELDS: Final = {
    1: frozenset({"v", "runId", "brandId", "window", "step", "cursor", "totals"}),
    2: frozenset({"v", "runId", "brandId", "window", "step", "cursor"}),
}
RUN_ID_PATTERN: Final = r"\d{8}T\d{9}Z-b\d{1,19}-[0-9a-f]{8}"
_RUN_ID_RE: Final = re.compile(RUN_ID_PATTERN, re.ASCII)


def make_run_id(started_at: datetime, brand_id: int, request_key: str) -> str:
    """Sortable by start time to the millisecond: the newest run owns a partition."""
    digest = hashlib.sha256(f"{request_key}|{brand_id}".encode()).hexdigest()[:8]
    stamp = started_at.astimezone(UTC)
    return f"{stamp:%Y%m%dT%H%M%S}{stamp.microsecond // 1000:03d}Z-b{brand_id}-{digest}"


# Clocks of Lambda hosts (and operators' machines) agree to well under this.
CLOCK_SKEW: Final = timedelta(minutes=5)


def run_id_stamp(run_id: str) -> datetime | None:
    """When a run id says its run started; None if its stamp is no valid time."""
    try:
        return datetime.strptime(run_id[:18] + "000Z", "%Y%m%dT%H%M%S%f%z")
    except ValueError:
        return None


def is_run_id(value: Any, now: datetime | None = None) -> bool:
    """A run id of this exporter: its shape, and a start no later than `now` (the
    wall clock by default) plus skew. No run of ours starts in the future, and as
    run ids order runs (newest wins), a future-stamped one would win everything."""
    if not isinstance(value, str) or _RUN_ID_RE.fullmatch(value) is None:
        return False
    stamp = run_id_stamp(value)
    return stamp is not None and stamp <= (now or datetime.now(UTC)) + CLOCK_SKEW


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
    # Chosen ids and the API variant of a selection run; None: the whole brand (v3).
    selection: Selection | None = None

    def summary(self) -> dict[str, Any]:
        """The fields every document about a run starts with: the invoke's answer, the
        plan, the manifest and the notification (docs/contracts.md)."""
        return {
            "runId": self.run_id,
            "brandId": self.brand_id,
            "startDate": self.first_day.isoformat(),
            "endDate": self.last_day.isoformat(),
            "timeBasis": self.basis,
            **({"selection": self.selection_summary()} if self.selection else {}),
        }

    def selection_summary(self) -> dict[str, Any] | None:
        """The selection without its (up to 10,000) ids: small enough for every message."""
        if self.selection is None:
            return None
        s = self.selection
        return {
            "kind": s.kind,
            "ids": len(s.ids),
            "variant": s.variant,
            **({"zoneId": s.zone_id} if s.zone_id else {}),
        }

    def windows_json(self) -> list[dict[str, Any]]:
        return [
            {
                "index": w.index,
                "start": w.first_day.isoformat(),
                "end": w.last_day.isoformat(),
                **({"part": w.part} if self.selection else {}),
            }
            for w in self.windows
        ]

    def to_json(self) -> bytes:
        return json_codec.dumps_pretty(
            {
                **self.summary(),
                "trigger": self.trigger,
                "startedAt": self.started_at,
                "windows": self.windows_json(),
                **({"selectionIds": self.selection.to_dict()} if self.selection else {}),
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> RunPlan:
        doc = json_codec.loads(raw)
        return cls(
            run_id=doc["runId"],
            brand_id=doc["brandId"],
            first_day=date.fromisoformat(doc["startDate"]),
            last_day=date.fromisoformat(doc["endDate"]),
            basis="local" if doc["timeBasis"] == "local" else "utc",
            trigger=doc["trigger"],
            started_at=doc["startedAt"],
            windows=tuple(
                Window(
                    w["index"],
                    date.fromisoformat(w["start"]),
                    date.fromisoformat(w["end"]),
                    w.get("part", 0),
                )
                for w in doc["windows"]
            ),
            selection=Selection.from_dict(doc["selectionIds"]) if "selectionIds" in doc else None,
        )


@dataclass(frozen=True, slots=True)
class Task:
    """A checkpoint: continue window `window` of run `run_id` at `step` from `cursor`."""

    run_id: str
    brand_id: int
    window: int
    step: int
    cursor: str | None

    def to_body(self) -> str:
        return json_codec.dumps(
            {
                "v": TASK_VERSION,
                "runId": self.run_id,
                "brandId": self.brand_id,
                "window": self.window,
                "step": self.step,
                "cursor": self.cursor,
            }
        ).decode()

    @classmethod
    def from_body(cls, body: str) -> Task:
        try:
            doc = json_codec.loads(body.encode())
        except json_codec.JSONDecodeError:
            raise InvalidTask("checkpoint message: body is not JSON") from None
        if not isinstance(doc, dict):
            raise InvalidTask("checkpoint message: body is not a JSON object")
        version = doc.get("v")
        allowed = _TASK_FIELDS.get(version) if type(version) is int else None
        if allowed is None:
            raise InvalidTask(f"checkpoint message: unknown version {version!r}")
        unknown = sorted(set(doc) - allowed)
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
        if "totals" in doc:
            Counters.from_dict(doc["totals"])  # version 1: validated, then dropped
        return cls(
            run_id=doc["runId"],
            brand_id=doc["brandId"],
            window=doc["window"],
            step=doc["step"],
            cursor=cursor,
        )


@dataclass(frozen=True, slots=True)
class StagedObject:
    dt: str
    key: str
    rows: int
    bytes: int
    # location -> [visits, rows, hours, digest] of these rows (exporter.lake.sums);
    # empty in records written before the lake coverage existed.
    sums: dict[str, list[int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StepRecord:
    """What one step of a window produced; the first one written wins (conditional put)."""

    window: int
    step: int
    attempt: str
    next_cursor: str | None
    objects: tuple[StagedObject, ...]
    totals: Counters
    finished_at: str
    # Every location of the window up to this step, to catch an API that
    # returns a location twice (its rows would be counted twice).
    locations: tuple[int, ...] = ()
    # Ids the API refused (v2 partial results), as it named them.
    refused: tuple[int | str, ...] = ()
    # SQS DelaySeconds of the next step's checkpoint: the step ended on a 429 storm
    # and the window backs off through the queue (a re-send after a kill uses it too).
    delay_s: int = 0

    @property
    def done(self) -> bool:
        return self.next_cursor is None

    def whole_run(self, plan: RunPlan) -> bool:
        """Whether this record is all the run recorded: the one step of its one window."""
        return len(plan.windows) == 1 and self.step == 0 and self.done

    def to_json(self) -> bytes:
        return json_codec.dumps(
            {
                "window": self.window,
                "step": self.step,
                "attempt": self.attempt,
                "nextCursor": self.next_cursor,
                # Not `asdict`: it deep-copies every location's sums (26 ms a
                # 2,000-location step of 5 days), only to be serialised.
                "objects": [
                    {"dt": o.dt, "key": o.key, "rows": o.rows, "bytes": o.bytes, "sums": o.sums}
                    for o in self.objects
                ],
                "totals": self.totals.to_dict(),
                "finishedAt": self.finished_at,
                "locations": self.locations,
                "refused": self.refused,
                **({"delaySeconds": self.delay_s} if self.delay_s else {}),
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> StepRecord:
        doc = json_codec.loads(raw)
        return cls(
            window=doc["window"],
            step=doc["step"],
            attempt=doc["attempt"],
            next_cursor=doc["nextCursor"],
            objects=tuple(StagedObject(**o) for o in doc["objects"]),
            totals=Counters.from_dict(doc["totals"]),
            finished_at=doc["finishedAt"],
            locations=tuple(doc.get("locations", ())),
            refused=tuple(doc.get("refused", ())),
            delay_s=int(doc.get("delaySeconds", 0)),
        )


def refused_ids(records: list[StepRecord]) -> list[int | str]:
    """Every id the API refused (v2), once, numbers first."""
    ids = {i for record in records for i in record.refused}
    return sorted(ids, key=lambda i: (isinstance(i, str), i if isinstance(i, int) else 0, str(i)))
