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
_KNOWN: Final = frozenset(api for api, _ in METRIC_COLUMNS)
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
    locations: int = 0


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

    # One loop over every value of the page, deliberately not split into helpers:
    # a call per row or per value is measurable on the hot path.
    def shape(self, data: Any) -> ShapedPage:  # noqa: PLR0912, PLR0915
        if not isinstance(data, list):
            raise MalformedResponse(f"'data' is {type(data).__name__}, expected a list")
        page = ShapedPage()
        lines = page.lines
        keys = self._keys
        days = self._days
        mid = self._mid
        end = self._end
        for record in data:
            if not isinstance(record, dict):
                raise MalformedResponse("a data item is not an object")
            location = record.get("locationId")
            if type(location) is not int or location <= 0:
                raise MalformedResponse(f"locationId {location!r} is not a positive integer")
            head = [f'{{"location_id":{location}']
            for api_field, column in (
                ("referenceNumber", "reference_number"),
                ("zoneId", "zone_id"),
            ):
                value = record.get(api_field)
                if value is not None:
                    if not isinstance(value, str):
                        raise MalformedResponse(
                            f"{api_field} of location {location} is not a string"
                        )
                    head.append(f',"{column}":{dumps(value).decode()}')
            head.append(',"ts":"')
            prefix = "".join(head)
            by_key: dict[str, dict[str, int]] = {}
            for metric, series in record.items():
                if metric in _IDENTITY_FIELDS:
                    continue
                if type(series) is not dict:
                    raise MalformedResponse(
                        f"metric {metric!r} of location {location} is not a map"
                    )
                for key, value in series.items():
                    if type(value) is not int or value < 0 or value > _MAX_METRIC_VALUE:
                        raise MalformedResponse(
                            f"metric {metric!r} of location {location} at {key[:40]!r} "
                            f"is {value!r}, not a natural number"
                        )
                    bucket = by_key.get(key)
                    if bucket is None:
                        by_key[key] = bucket = {}
                    bucket[metric] = value
            page.locations += 1
            for key in sorted(by_key):
                parsed = keys.get(key) or self._parse_key(key)
                ts, dt = parsed
                if dt not in days:
                    page.dropped_rows += 1
                    continue
                values = by_key[key]
                parts = [prefix, ts, mid]
                for api, piece in _METRIC_PIECES:
                    value = values.get(api)
                    if value is not None:
                        parts.append(piece)
                        parts.append(str(value))
                if not _KNOWN.issuperset(values):
                    extra = {k: v for k, v in values.items() if k not in _KNOWN}
                    if extra:
                        parts.append(',"extra":')
                        parts.append(dumps(extra).decode())
                parts.append(end)
                bucket_lines = lines.get(dt)
                if bucket_lines is None:
                    lines[dt] = bucket_lines = []
                    page.rows[dt] = 0
                bucket_lines.append("".join(parts))
                page.rows[dt] += 1
        return page
