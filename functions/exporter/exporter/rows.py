"""Row shaping: one v3 page of API records -> JSON Lines per `dt` partition (DESIGN §3).

A pure function of its input (plus a cache of parsed time keys), and the hot
path of the exporter: lines are assembled as text from precomputed pieces
instead of building a dict per row and serializing it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from exporter.codec import dumps
from exporter.config import TimeBasis
from exporter.errors import MalformedResponse
from exporter.schema import METRIC_COLUMNS

_IDENTITY_FIELDS: Final = frozenset({"locationId", "referenceNumber", "zoneId"})
_METRIC_PIECES: Final = tuple((api, f',"{column}":') for api, column in METRIC_COLUMNS)
# 2023-06-08T08:00:00Z, optional fraction, then Z / an offset / nothing.
_KEY_RE: Final = re.compile(
    r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})?$"
)
_MAX_METRIC_VALUE: Final = 2**63 - 1


@dataclass(slots=True)
class ShapedPage:
    """Lines of one page grouped by partition date, plus what was left out."""

    lines: dict[str, list[str]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    dropped_rows: int = 0
    location_ids: list[int] = field(default_factory=list)


class RowShaper:
    """Shapes pages for one run window: its run id, time basis and the days it may write."""

    def __init__(self, run_id: str, basis: TimeBasis, days: Iterable[date]) -> None:
        self._basis = basis
        self._days = frozenset(d.isoformat() for d in days)
        self._mid = f'","time_basis":"{basis}"'
        self._end = f',"run_id":{dumps(run_id).decode()}}}\n'
        # time key -> (ts column text, dt); the same keys recur on every page.
        self._keys: dict[str, tuple[str, str]] = {}

    def _parse_key(self, key: str) -> tuple[str, str]:
        match = _KEY_RE.match(key)
        if not match:
            raise MalformedResponse(f"time bucket key {key[:40]!r} is not an ISO 8601 timestamp")
        day, clock, suffix = match.groups()
        if self._basis == "utc" and suffix not in ("Z", "+00:00", "+0000"):
            raise MalformedResponse(f"time bucket key {key!r} is not UTC in a UTC request")
        if self._basis == "local" and suffix == "Z":
            raise MalformedResponse(f"time bucket key {key!r} is UTC in a local-time request")
        try:
            date.fromisoformat(day)
            hours, minutes, seconds = (int(x) for x in clock.split(":"))
        except ValueError:
            raise MalformedResponse(f"time bucket key {key!r} is not a valid date") from None
        if hours > 23 or minutes > 59 or seconds > 59:
            raise MalformedResponse(f"time bucket key {key!r} is not a valid time")
        parsed = (f"{day} {clock}", day)
        self._keys[key] = parsed
        return parsed

    def shape(self, data: Any) -> ShapedPage:
        if not isinstance(data, list):
            raise MalformedResponse(f"'data' is {type(data).__name__}, expected a list")
        page = ShapedPage()
        lines = page.lines
        keys = self._keys
        days = self._days
        mid = self._mid
        end = self._end
        for record in data:
            location, prefix, metrics, extras, bucket_keys = _location(record)
            page.location_ids.append(location)
            # The innermost loop runs once per row: bound methods and one
            # comprehension, no per-row dict.
            getters = [(piece, series.get) for piece, series in metrics]
            for key in sorted(bucket_keys):
                ts, dt = keys.get(key) or self._parse_key(key)
                if dt not in days:
                    page.dropped_rows += 1
                    continue
                body = "".join(
                    [f"{piece}{v}" for piece, get in getters if (v := get(key)) is not None]
                )
                if extras:
                    extra = {name: series[key] for name, series in extras if key in series}
                    if extra:
                        body += f',"extra":{dumps(extra).decode()}'
                day_lines = lines.get(dt)
                if day_lines is None:
                    lines[dt] = day_lines = []
                day_lines.append(f"{prefix}{ts}{mid}{body}{end}")
        page.rows = {dt: len(day_lines) for dt, day_lines in lines.items()}
        return page


_ORDER: Final = {api: n for n, (api, _) in enumerate(METRIC_COLUMNS)}
_PIECE: Final = dict(_METRIC_PIECES)
_INT: Final = frozenset({int})


def _location(
    record: Any,
) -> tuple[int, str, list[tuple[str, dict[str, int]]], list[tuple[str, dict[str, int]]], set[str]]:
    """Validate one location record: (location id, line prefix, known metric series
    in column order with their JSON pieces, unknown metric series, every bucket key)."""
    if not isinstance(record, dict):
        raise MalformedResponse("a data item is not an object")
    location = record.get("locationId")
    if type(location) is not int or location <= 0:
        raise MalformedResponse(f"locationId {location!r} is not a positive integer")
    head = [f'{{"location_id":{location}']
    for api_field, column in (("referenceNumber", "reference_number"), ("zoneId", "zone_id")):
        value = record.get(api_field)
        if value is not None:
            if not isinstance(value, str):
                raise MalformedResponse(f"{api_field} of location {location} is not a string")
            head.append(f',"{column}":{dumps(value).decode()}')
    head.append(',"ts":"')
    known: list[tuple[int, str, dict[str, int]]] = []
    extras: list[tuple[str, dict[str, int]]] = []
    bucket_keys: set[str] = set()
    for metric, series in record.items():
        if metric in _IDENTITY_FIELDS:
            continue
        if type(series) is not dict:
            raise MalformedResponse(f"metric {metric!r} of location {location} is not a map")
        if not series:
            continue
        values = series.values()
        # Checked a whole series at a time, in C: types first (bool is not int here).
        if (
            not _INT.issuperset(map(type, values))
            or min(values) < 0
            or max(values) > _MAX_METRIC_VALUE
        ):
            key, value = next(
                (k, v)
                for k, v in series.items()
                if type(v) is not int or not 0 <= v <= _MAX_METRIC_VALUE
            )
            raise MalformedResponse(
                f"metric {metric!r} of location {location} at {str(key)[:40]!r} "
                f"is {value!r}, not a natural number"
            )
        bucket_keys.update(series)
        piece = _PIECE.get(metric)
        if piece is None:
            extras.append((metric, series))
        else:
            known.append((_ORDER[metric], piece, series))
    known.sort()
    metrics = [(piece, series) for _, piece, series in known]
    return location, "".join(head), metrics, extras, bucket_keys
