"""The one counters type: what a run read and wrote, from a step to the CLI.

A step's walk fills one `Counters`; the step record carries it; the window's
progress object, the manifest, the status object, the notification and the
CLI's views are all renderings of (sums of) it. The JSON names of each
rendering are contracts (docs/contracts.md, "Manifest", "Status", "Run state").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Final

from exporter.errors import InvalidTask

# Distinct unknown field names a run reports; the rest are counted under OTHER_FIELDS
# (an API that sent a new field name per location must not swell the notification).
MAX_UNKNOWN_FIELDS: Final = 50
OTHER_FIELDS: Final = "(other fields)"
# Irregular local days a run lists (date, location, buckets); all are counted.
MAX_IRREGULAR_DAYS: Final = 20


@dataclass(slots=True)
class Counters:
    """Rows, bytes, pages and API calls of a step, a window or a run.

    Step records written before a counter existed lack it: it reads as 0 (empty).
    """

    rows: int = 0
    bytes: int = 0
    pages: int = 0
    api_calls: int = 0
    retries: int = 0
    dropped_rows: int = 0
    # Location-days of a local run whose bucket count is not 23, 24 or 25 (rows.py).
    irregular_location_days: int = 0
    # Unknown non-metric fields of the API's records: name -> records that had it.
    unknown_fields: dict[str, int] = field(default_factory=dict)
    # The first MAX_IRREGULAR_DAYS of them: [date, location id, buckets].
    irregular_days: list[list[Any]] = field(default_factory=list)

    def add(self, other: Counters) -> None:
        for name in _COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.count_fields(other.unknown_fields)
        self._keep_days(other.irregular_days)

    def note_irregular_days(self, days: list[tuple[str, int, int]]) -> None:
        self.irregular_location_days += len(days)
        self._keep_days([list(day) for day in days])

    def _keep_days(self, days: list[list[Any]]) -> None:
        self.irregular_days.extend(days[: MAX_IRREGULAR_DAYS - len(self.irregular_days)])

    def plus(self, **more: int) -> Counters:
        """A copy with `more` added (a step adds what it staged to what it walked)."""
        return replace(
            self,
            unknown_fields=dict(self.unknown_fields),
            irregular_days=list(self.irregular_days),
            **{name: getattr(self, name) + n for name, n in more.items()},
        )

    @classmethod
    def total(cls, parts: Any) -> Counters:
        summed = cls()
        for part in parts:
            summed.add(part)
        return summed

    def count_fields(self, counts: dict[str, int]) -> None:
        """Add unknown-field counts, keeping at most MAX_UNKNOWN_FIELDS names."""
        mine = self.unknown_fields
        for name, n in counts.items():
            kept = name if name in mine or len(mine) < MAX_UNKNOWN_FIELDS else OTHER_FIELDS
            mine[kept] = mine.get(kept, 0) + n

    # -- renderings (their names are contracts) ---------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The step record's `totals`."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Any) -> Counters:
        if not isinstance(raw, dict):
            raise InvalidTask("totals: expected an object")
        values: dict[str, int] = {}
        for name in _COUNTERS:
            value = raw.get(name, 0)
            if not _natural(value):
                raise InvalidTask(f"totals.{name}: expected a natural number")
            values[name] = value
        unknown = raw.get("unknown_fields", {})
        if not isinstance(unknown, dict) or not all(
            isinstance(k, str) and _natural(v) for k, v in unknown.items()
        ):
            raise InvalidTask("totals.unknown_fields: expected names with natural numbers")
        days = raw.get("irregular_days", [])
        if not isinstance(days, list) or not all(_irregular_day(d) for d in days):
            raise InvalidTask("totals.irregular_days: expected [date, location, buckets] lists")
        return cls(**values, unknown_fields=dict(unknown), irregular_days=days[:MAX_IRREGULAR_DAYS])

    def progress_json(self) -> dict[str, int]:
        """The counts of a window's `progress/w<k>.json` (and of the CLI's views)."""
        return {name: getattr(self, attr) for name, attr in PROGRESS_FIELDS.items()}

    @classmethod
    def from_progress(cls, doc: dict[str, Any]) -> Counters:
        return cls(
            rows=_int(doc.get("rows")),
            bytes=_int(doc.get("bytes")),
            pages=_int(doc.get("pages")),
            api_calls=_int(doc.get("apiCalls")),
            retries=_int(doc.get("retries")),
        )

    def api_json(self) -> dict[str, int]:
        """The manifest's, the status object's and the notification's `api`."""
        return {"calls": self.api_calls, "retries": self.retries, "pages": self.pages}

    @classmethod
    def from_final(cls, doc: dict[str, Any]) -> Counters:
        """What a final status (or history entry) says: `rows`, `totals`, `api`."""
        totals, api = doc.get("totals"), doc.get("api")
        totals = totals if isinstance(totals, dict) else {}
        api = api if isinstance(api, dict) else {}
        return cls(
            rows=_int(doc.get("rows", totals.get("rows"))),
            bytes=_int(totals.get("bytes")),
            pages=_int(api.get("pages")),
            api_calls=_int(api.get("calls")),
            retries=_int(api.get("retries")),
        )


_COUNTERS: Final = tuple(f.name for f in fields(Counters) if f.type in (int, "int"))
# progress/w<k>.json and `wifi-export status --json` name -> attribute
PROGRESS_FIELDS: Final = {
    "rows": "rows",
    "bytes": "bytes",
    "pages": "pages",
    "apiCalls": "api_calls",
    "retries": "retries",
}


def _irregular_day(day: Any) -> bool:
    return (
        isinstance(day, list)
        and len(day) == 3
        and isinstance(day[0], str)
        and len(day[0]) == 10
        and _natural(day[1])
        and _natural(day[2])
    )


def _natural(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0
