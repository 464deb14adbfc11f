"""Lake coverage: which days of a brand the table holds, kept in the state prefix.

Not the run's own `coverage.json` (run.coverage: what one run replaces). Two
objects per brand, time basis and month (docs/contracts.md, "Lake coverage"):

    $STATE_PREFIX/lake/brand_id=<n>/time_basis=<b>/days/<YYYY-MM>.json   the calendar
    $STATE_PREFIX/lake/brand_id=<n>/time_basis=<b>/sums/<YYYY-MM>.json   per-location numbers

The calendar is small (a day is about 200 bytes), so a year of one brand is 12
GETs; the per-location numbers are read only by commits, to count what a rerun
changed. Both are updated with conditional writes (S3 `If-Match` /
`If-None-Match`): two runs committing the same month cannot undo each other.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import date, timedelta
from typing import Any, Final, Literal

from exporter import json_codec
from exporter.planning import days_of
from exporter.ports import ObjectStore
from exporter.run.keys import Layout

_ATTEMPTS: Final = 20
Status = Literal["present", "missing", "partial"]
# The trailing window a day's store and hour counts are compared with (their medians).
TRAILING_DAYS: Final = 28
# Hours a day may fall short of the usual without being partial: opening and closing
# hours vary a little (stores closed at night report no rows there: v1-v3 omit zeros).
HOURS_SLACK: Final = 2


def lake_prefix(state_prefix: str, brand_id: int, basis: str) -> str:
    return Layout(state_prefix, "").lake(brand_id, basis)


def month_key(state_prefix: str, brand_id: int, basis: str, month: str, kind: str) -> str:
    """`kind` is `days` (the calendar) or `sums` (per-location numbers)."""
    return Layout(state_prefix, "").lake_month(brand_id, basis, month, kind)


def months_of(first: date, last: date) -> list[str]:
    months: list[str] = []
    for day in days_of(first, last):
        month = day.isoformat()[:7]
        if not months or months[-1] != month:
            months.append(month)
    return months


def update(
    store: ObjectStore,
    key: str,
    change: Callable[[dict[str, Any]], None],
    *,
    loads: Callable[[bytes], dict[str, Any]] = json_codec.loads,
) -> None:
    """Read-modify-write one month object under a conditional write; `change` may run
    more than once (it is given a fresh read each time). `loads`: how the object is read."""
    for _ in range(_ATTEMPTS):
        found = store.get_versioned(key)
        doc: dict[str, Any] = {"v": 1, "days": {}} if found is None else loads(found[0])
        change(doc)
        body = json_codec.dumps_members(doc)
        if found is None:
            if store.put_if_absent(key, body):
                return
        elif store.put_if_match(key, body, found[1]):
            return
    raise RuntimeError(f"{key}: updated concurrently {_ATTEMPTS} times; retrying later")


def update_days(
    store: ObjectStore,
    key: str,
    days: Sequence[str],
    change: Callable[[str, dict[str, Any] | None], dict[str, Any]],
) -> None:
    """`update` of the given days of a month object, decoding only those: `change(dt,
    day or None)` returns the day's new record. The other days are written back as
    the text they were read as, never parsed.

    A month's per-location sums hold every location of every day: at 8,000 locations
    a full month is about 11 MB of JSON, 240,000 lists once parsed. A nightly commit
    replaces one day of it: its lake coverage took 0.5 s of CPU and 79 MB over its
    starting RSS with the month parsed and written whole, 0.09 s and 16 MB this way
    (docs/performance.md, "A month's sums, a day at a time").
    """

    def change_days(doc: dict[str, Any]) -> None:
        found = doc["days"]  # {} in a new object, else the days' text
        month: dict[str, Any] = (
            found if isinstance(found, dict) else json_codec.loads_members(found)
        )
        for dt in days:
            text = month.get(dt)
            month[dt] = change(dt, None if text is None else json_codec.loads_raw(text))
        doc["days"] = month

    update(store, key, change_days, loads=json_codec.loads_members)


def read_days(
    store: ObjectStore,
    state_prefix: str,
    brand_id: int,
    basis: str,
    days: tuple[date, date],
    *,
    known: dict[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """The calendar records of the days first..last (one GET per month); `known`:
    month -> calendar document already in hand (not read again)."""
    first, last = days
    out: dict[str, dict[str, Any]] = {}
    lo, hi = first.isoformat(), last.isoformat()
    for month in months_of(first, last):
        doc = (known or {}).get(month)
        if doc is None:
            raw = store.get(month_key(state_prefix, brand_id, basis, month, "days"))
            if raw is None:
                continue
            doc = json_codec.loads(raw)
        found = doc.get("days") if isinstance(doc, dict) else None
        for dt, record in (found if isinstance(found, dict) else {}).items():
            if lo <= dt <= hi and well_formed(dt, record):
                out[dt] = record
    return out


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_COUNTS: Final = ("rows", "locations", "hours")


def well_formed(dt: str, record: Any) -> bool:
    """A calendar record as the commit writes it. Anyone who can write the bucket can
    write this object: a malformed record reads as a missing day, never a crash, and
    its strings reach a terminal only through the CLI's plain console."""
    return (
        _DAY.fullmatch(dt) is not None
        and isinstance(record, dict)
        and all(type(record.get(n, 0)) is int and record.get(n, 0) >= 0 for n in _COUNTS)
        and all(isinstance(record.get(n), str) for n in ("runId", "committedAt"))
    )


def trailing_median(counts: list[int]) -> float | None:
    if not counts:
        return None
    ordered = sorted(counts)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[middle])
    return (ordered[middle - 1] + ordered[middle]) / 2


def statuses(
    records: dict[str, dict[str, Any]], basis: str, first: date, last: date
) -> list[dict[str, Any]]:
    """The days first..last in the `coverage --json` shape (docs/contracts.md, "Operations CLI").

    `records` may hold days before `first`: they feed the trailing median that
    tells a day with fewer stores than usual (partial).
    """
    out: list[dict[str, Any]] = []
    for day in days_of(first, last):
        dt = day.isoformat()
        record = records.get(dt)
        if record is None or not record.get("rows"):
            out.append({"date": dt, "status": "missing", "timeBasis": basis})
            continue
        out.append(
            {
                "date": dt,
                "status": status_of(record, records, day),
                "timeBasis": basis,
                "rows": record["rows"],
                "locations": record["locations"],
                "runId": record["runId"],
                "committedAt": record["committedAt"],
            }
        )
    return out


def status_of(record: dict[str, Any], records: dict[str, dict[str, Any]], day: date) -> Status:
    """Present, or partial: fewer stores than the brand's trailing median, or fewer
    hours with rows than its trailing median by more than HOURS_SLACK (a day cut
    short). Without a trailing day to compare with, a day with rows is present."""
    stores = trailing_median(trailing_counts(records, day))
    if stores is not None and record["locations"] < stores:
        return "partial"
    hours = trailing_median(trailing_counts(records, day, "hours"))
    if hours is not None and record.get("hours", 24) < hours - HOURS_SLACK:
        return "partial"
    return "present"


def trailing_counts(
    records: dict[str, dict[str, Any]], day: date, field: str = "locations"
) -> list[int]:
    """Store (or hour) counts of the days with rows in the TRAILING_DAYS before `day`."""
    counts: list[int] = []
    for back in range(1, TRAILING_DAYS + 1):
        record = records.get((day - timedelta(days=back)).isoformat())
        if record is not None and record.get("rows"):
            counts.append(record.get(field, 24))
    return counts


def missing_ranges(days: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    """Consecutive missing days as (first, last) ranges, in order."""
    ranges: list[tuple[str, str]] = []
    previous: date | None = None
    for entry in days:
        if entry["status"] != "missing":
            previous = None
            continue
        day = date.fromisoformat(entry["date"])
        if previous is not None and previous + timedelta(days=1) == day and ranges:
            ranges[-1] = (ranges[-1][0], entry["date"])
        else:
            ranges.append((entry["date"], entry["date"]))
        previous = day
    return ranges
