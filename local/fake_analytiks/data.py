"""Deterministic data model of the fake analytiks API (pure functions, no server).

Everything here is a pure function of its arguments and stable across processes
(no ``hash()``, no RNG), so tests can compute what the API returns without
running it.

* Locations of brand ``b`` with ``n`` locations: ``b * 100_000 + i`` for ``i`` in
  ``1..n``; reference number ``REF-<id>``; zone id ``uuid5(NAMESPACE, "<id>")``.
* Each location has a whole-hour UTC offset (:func:`location_offset_hours`), or,
  with the server's ``Quirks.zones``, an IANA time zone with daylight saving time
  (:func:`local_buckets`, :func:`utc_offset_minutes`).
* :func:`metric_value` gives a metric's value for one bucket. About 2.5% of
  locations are "dark" (always 0), about 18% of buckets are "closed" (every
  metric 0) and about 9% of the other metric values are 0 as well, so zero
  omission (v1-v3) really matters. ``allVisits == visits + bounces``;
  ``dwellTime`` is in ms (up to ~10^7), every other metric is below 500.
* Buckets start at multiples of ``bucket_minutes`` (UTC, which equals local
  alignment as offsets are whole hours). A request covers the buckets whose
  start ``s`` satisfies ``start <= s <= end``; for a local-time request the range
  is read in each location's own wall time.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Final, Literal
from zoneinfo import ZoneInfo

Basis = Literal["utc", "local"]

METRICS: Final[tuple[str, ...]] = (
    "visits",
    "dwellTime",
    "bounces",
    "allVisits",
    "walkBys",
    "newVisitors",
    "returningVisitors",
    "under15Mins",
    "from15To30Mins",
    "from30To45Mins",
    "from45To60Mins",
    "over60Mins",
)

LOCATION_ID_FACTOR: Final = 100_000
MAX_RANGE: Final = timedelta(days=5)
ZONE_NAMESPACE: Final = uuid.UUID("5b0e4c44-6d1e-4b7a-9a55-0a6e2f1c7a11")

# (low, span): a non-zero value is low + h % span. Extra metrics use _DEFAULT_SPEC.
_SPECS: Final[dict[str, tuple[int, int]]] = {
    "visits": (1, 399),
    "dwellTime": (1_000, 9_999_000),
    "bounces": (1, 99),
    "walkBys": (1, 499),
    "newVisitors": (1, 199),
    "returningVisitors": (1, 199),
    "under15Mins": (1, 199),
    "from15To30Mins": (1, 99),
    "from30To45Mins": (1, 79),
    "from45To60Mins": (1, 59),
    "over60Mins": (1, 49),
}
_DEFAULT_SPEC: Final = (1, 499)
DARK_PER_MILLE: Final = 25  # locations that never report anything
CLOSED_PERCENT: Final = 18  # buckets where every metric is 0
ZERO_PERCENT: Final = 9  # other metric values that are 0

_M64: Final = (1 << 64) - 1
_GOLD: Final = 0x9E3779B97F4A7C15
_MUL1: Final = 0xBF58476D1CE4E5B9
_MUL2: Final = 0x94D049BB133111EB
_EPOCH: Final = datetime(1970, 1, 1)  # naive: wall-clock arithmetic


def _mix(x: int) -> int:
    """splitmix64 finaliser: a good, cheap 64-bit integer hash."""
    x &= _M64
    x = ((x ^ (x >> 30)) * _MUL1) & _M64
    x = ((x ^ (x >> 27)) * _MUL2) & _M64
    return x ^ (x >> 31)


@lru_cache(maxsize=4096)
def _salt(name: str) -> int:
    """A stable 64-bit number per metric name (hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")


def _base(location_id: int, name: str) -> int:
    return _mix((location_id * _GOLD) ^ _salt(name))


def _bucket_hash(base: int, minute: int) -> int:
    # Same arithmetic as the inlined loops in location_series (keep in sync).
    x = ((base ^ (minute * _GOLD)) * _MUL1) & _M64
    x = ((x ^ (x >> 29)) * _MUL2) & _M64
    return x ^ (x >> 32)


def is_dark(location_id: int) -> bool:
    """Whether a location never reports any non-zero value (a dead sensor)."""
    return _base(location_id, "#dark") % 1000 < DARK_PER_MILLE


def location_ids(brand_id: int, count: int) -> list[int]:
    """The location ids of a brand with ``count`` locations, in id order."""
    first = brand_id * LOCATION_ID_FACTOR
    return list(range(first + 1, first + count + 1))


def brand_of(location_id: int) -> int:
    return location_id // LOCATION_ID_FACTOR


def reference_number(location_id: int) -> str:
    return f"REF-{location_id}"


_REF_RE: Final = re.compile(r"REF-([0-9]{1,18})")


def location_of_reference(reference: str) -> int | None:
    """The location id a reference number names (None if it is not REF-<id>)."""
    m = _REF_RE.fullmatch(reference)
    return int(m.group(1)) if m else None


def zone_id(location_id: int) -> str:
    """The zone id (a UUID string) of a location; each location has one zone."""
    return str(uuid.uuid5(ZONE_NAMESPACE, str(location_id)))


def location_offset_hours(location_id: int) -> int:
    """The location's UTC offset in whole hours, -11..+11 (local = UTC + offset)."""
    return ((location_id * 7) % 23) - 11


def epoch_minute(moment: datetime) -> int:
    """Minutes since the epoch; naive datetimes are read as UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return (moment - _EPOCH) // timedelta(minutes=1)


def metric_value(location_id: int, metric: str, bucket_start_utc: datetime) -> int:
    """The value of ``metric`` at one location for the bucket starting then (UTC).

    Naive datetimes are UTC. Any metric name works (unknown ones are "extra"
    metrics with values below 500). Returns a natural number, 0 for ~25% of
    buckets.
    """
    return _value(location_id, metric, epoch_minute(bucket_start_utc))


def _value(location_id: int, metric: str, minute: int) -> int:
    if is_dark(location_id):
        return 0
    if _bucket_hash(_base(location_id, "#closed"), minute) % 100 < CLOSED_PERCENT:
        return 0
    if metric == "allVisits":
        return _raw(location_id, "visits", minute) + _raw(location_id, "bounces", minute)
    return _raw(location_id, metric, minute)


def _raw(location_id: int, metric: str, minute: int) -> int:
    h = _bucket_hash(_base(location_id, metric), minute)
    if h % 100 < ZERO_PERCENT:
        return 0
    low, span = _SPECS.get(metric, _DEFAULT_SPEC)
    return low + (h >> 16) % span


def location_series(
    location_id: int, metrics: Sequence[str], utc_minutes: Sequence[int]
) -> list[list[int]]:
    """Values of each metric (outer list, in ``metrics`` order) for each bucket.

    The fast path used by the server; equal to :func:`metric_value` pointwise.
    """
    n = len(utc_minutes)
    if is_dark(location_id):
        return [[0] * n for _ in metrics]
    m64, gold, mul1, mul2 = _M64, _GOLD, _MUL1, _MUL2
    cbase = _base(location_id, "#closed")
    open_mask: list[bool] = []
    for minute in utc_minutes:
        x = ((cbase ^ (minute * gold)) * mul1) & m64
        x = ((x ^ (x >> 29)) * mul2) & m64
        open_mask.append((x ^ (x >> 32)) % 100 >= CLOSED_PERCENT)

    def raw(metric: str) -> list[int]:
        base = _base(location_id, metric)
        low, span = _SPECS.get(metric, _DEFAULT_SPEC)
        out: list[int] = []
        append = out.append
        for minute, is_open in zip(utc_minutes, open_mask, strict=True):
            if not is_open:
                append(0)
                continue
            x = ((base ^ (minute * gold)) * mul1) & m64
            x = ((x ^ (x >> 29)) * mul2) & m64
            x ^= x >> 32
            append(0 if x % 100 < ZERO_PERCENT else low + (x >> 16) % span)
        return out

    cache: dict[str, list[int]] = {}
    result: list[list[int]] = []
    for metric in metrics:
        if metric == "allVisits":
            visits = cache.get("visits") or raw("visits")
            bounces = cache.get("bounces") or raw("bounces")
            cache["visits"], cache["bounces"] = visits, bounces
            series = [a + b for a, b in zip(visits, bounces, strict=True)]
        else:
            series = cache.get(metric) or raw(metric)
            cache[metric] = series
        result.append(series)
    return result


# ---------------------------------------------------------------- dates and buckets

_DATE_RE: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z?)", re.ASCII
)


def parse_api_date(text: str) -> tuple[datetime, Basis]:
    """Parse an API date: ``2023-06-08T11:30:00.000Z`` (UTC) or without ``Z`` (local).

    Seconds and fractions are optional. Returns a naive datetime (wall time in
    its basis). Raises ValueError for anything else (offsets, date only, ...).
    """
    m = _DATE_RE.fullmatch(text)
    if m is None:
        raise ValueError(f"{text!r} is not an ISO 8601 date-time like 2023-06-08T11:30:00.000Z")
    year, month, day, hour, minute = (int(m.group(i)) for i in range(1, 6))
    second = int(m.group(6) or 0)
    micro = int((m.group(7) or "0").ljust(9, "0")[:6])
    try:
        moment = datetime(year, month, day, hour, minute, second, micro)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid date-time: {exc}") from None
    return moment, ("utc" if m.group(8) else "local")


def grid_minutes(start: datetime, end: datetime, bucket_minutes: int) -> list[int]:
    """Wall-clock epoch minutes of the bucket starts s with start <= s <= end."""
    bucket = timedelta(minutes=bucket_minutes)
    first = -((_EPOCH - start) // bucket)  # ceil
    last = (end - _EPOCH) // bucket  # floor
    return [i * bucket_minutes for i in range(first, last + 1)]


@lru_cache(maxsize=65536)
def wall_text(minute: int) -> str:
    return (_EPOCH + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%S")


def time_key(wall_minute: int, basis: Basis) -> str:
    """The response key of a bucket: ``...T08:00:00Z`` (UTC) or ``...T10:00:00`` (local)."""
    wall = wall_text(wall_minute)
    return wall + "Z" if basis == "utc" else wall


def utc_minutes_for(location_id: int, wall_minutes: Sequence[int], basis: Basis) -> list[int]:
    """UTC bucket starts of a location for request-basis wall-clock bucket starts."""
    if basis == "utc":
        return list(wall_minutes)
    shift = location_offset_hours(location_id) * 60
    return [m - shift for m in wall_minutes]


# ---------------------------------------------------------------- time zones (quirks)


def utc_offset_minutes(location_id: int, utc_minute: int, tz: str | None = None) -> int:
    """A location's UTC offset at a UTC instant: its IANA zone's (with daylight saving
    time) when it has one, else its fixed :func:`location_offset_hours`."""
    if tz is None:
        return location_offset_hours(location_id) * 60
    moment = (_EPOCH + timedelta(minutes=utc_minute)).replace(tzinfo=UTC)
    offset = moment.astimezone(ZoneInfo(tz)).utcoffset()
    assert offset is not None
    return offset // timedelta(minutes=1)


def offset_text(minutes: int) -> str:
    """``+02:00`` / ``-05:00`` / ``+00:00`` for an offset in minutes."""
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def local_buckets(
    location_id: int,
    start_wall: datetime,
    end_wall: datetime,
    bucket_minutes: int = 60,
    tz: str | None = None,
) -> list[tuple[int, int, int]]:
    """``(utc minute, wall minute, offset minutes)`` of the buckets of a local-time
    request whose wall-clock start is in [start, end], in time order.

    Buckets are aligned in UTC. With a zone that has daylight saving time an
    autumn day has 25 buckets (one wall-clock hour twice, at two offsets) and a
    spring day 23; without one, this is :func:`grid_minutes` at the fixed offset.
    """
    if tz is None:
        off = location_offset_hours(location_id) * 60
        return [(w - off, w, off) for w in grid_minutes(start_wall, end_wall, bucket_minutes)]
    low, high = epoch_minute(start_wall), epoch_minute(end_wall)
    margin = timedelta(hours=15)  # more than any UTC offset
    out: list[tuple[int, int, int]] = []
    for utc in grid_minutes(start_wall - margin, end_wall + margin, bucket_minutes):
        off = utc_offset_minutes(location_id, utc, tz)
        if low <= utc + off <= high:
            out.append((utc, utc + off, off))
    return out


def all_metrics(extra_metrics: Sequence[str] = ()) -> tuple[str, ...]:
    return METRICS + tuple(m for m in extra_metrics if m not in METRICS)


def location_record(
    location_id: int,
    metrics: Sequence[str],
    wall_minutes: Sequence[int],
    keys: Sequence[str],
    basis: Basis,
    *,
    zero_fill: bool,
    reference: str | None = None,
    zone: str | None = None,
    utc_minutes: Sequence[int] | None = None,
) -> dict[str, object]:
    """One location's response record (``keys[i]`` is the key of ``wall_minutes[i]``).

    ``zero_fill`` (v4) keeps every bucket with zeros; otherwise (v1-v3) zero
    buckets are omitted and a metric without any non-zero bucket is left out.
    ``utc_minutes`` (with one key each) replaces the buckets ``wall_minutes`` and
    ``basis`` give: the server's quirks use it for per-location time keys.
    """
    record: dict[str, object] = {"locationId": location_id}
    if reference is not None:
        record["referenceNumber"] = reference
    if zone is not None:
        record["zoneId"] = zone
    if utc_minutes is None:
        utc_minutes = utc_minutes_for(location_id, wall_minutes, basis)
    series = location_series(location_id, metrics, utc_minutes)
    for metric, values in zip(metrics, series, strict=True):
        if zero_fill:
            record[metric] = dict(zip(keys, values, strict=True))
        else:
            buckets = {k: v for k, v in zip(keys, values, strict=True) if v}
            if buckets:
                record[metric] = buckets
    return record
