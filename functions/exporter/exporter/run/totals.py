"""Counters a window's steps carry: rows, bytes, pages, API calls, unknown fields."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Final

from exporter.errors import InvalidTask

# Distinct unknown field names a run reports; the rest are counted under OTHER_FIELDS
# (an API that sent a new field name per location must not swell the notification).
MAX_UNKNOWN_FIELDS: Final = 50
OTHER_FIELDS: Final = "(other fields)"


@dataclass(slots=True)
class Totals:
    """Counters carried along a window's chain of checkpoints.

    Step records written before a counter existed lack it: it reads as 0 (empty).
    """

    rows: int = 0
    bytes: int = 0
    pages: int = 0
    api_calls: int = 0
    retries: int = 0
    dropped_rows: int = 0
    # Rows written in the other time basis than the run's (the API's keys said so).
    mismatched_rows: int = 0
    # Unknown non-metric fields of the API's records: name -> records that had it.
    unknown_fields: dict[str, int] = field(default_factory=dict)

    def add(self, other: Totals) -> None:
        for name in _COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.count_fields(other.unknown_fields)

    def count_fields(self, counts: dict[str, int]) -> None:
        """Add unknown-field counts, keeping at most MAX_UNKNOWN_FIELDS names."""
        mine = self.unknown_fields
        for name, n in counts.items():
            kept = name if name in mine or len(mine) < MAX_UNKNOWN_FIELDS else OTHER_FIELDS
            mine[kept] = mine.get(kept, 0) + n

    @classmethod
    def from_dict(cls, raw: Any) -> Totals:
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
        return cls(**values, unknown_fields=dict(unknown))


_COUNTERS: Final = tuple(f.name for f in fields(Totals) if f.type in (int, "int"))


def _natural(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
