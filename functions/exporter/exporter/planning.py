"""Pure date planning: which days a run covers and how they split into windows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from exporter.config import TimeBasis

# The API accepts at most 5 days a request (seed document, "Usage").
MAX_WINDOW_DAYS = 5

# The earliest day an on-demand run may export. The Glue table's partition
# projection (`projection.dt.range` in template.yaml) starts on this day, so every
# day the exporter accepts is queryable; tests/template holds the two equal.
EARLIEST_DAY = date(2000, 1, 1)

# With a local basis a day is complete only once it has ended in the westernmost
# inhabited time zone (UTC-12).
_LATEST_UTC_OFFSET = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class Window:
    """One unit of work: a v3 cursor chain, or a chain of a selection part's batches."""

    index: int
    first_day: date
    last_day: date
    part: int = 0  # which part of a selection's ids; always 0 for a whole brand

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1


def split_windows(
    first_day: date, last_day: date, window_days: int, parts: int = 1
) -> list[Window]:
    """Consecutive windows of at most `window_days` days covering first..last inclusive,
    each repeated for every part of a selection (`parts` of them)."""
    if not 1 <= window_days <= MAX_WINDOW_DAYS:
        raise ValueError(f"window_days must be 1..{MAX_WINDOW_DAYS}, got {window_days}")
    if last_day < first_day:
        raise ValueError("last_day is before first_day")
    windows: list[Window] = []
    start = first_day
    while start <= last_day:
        end = min(start + timedelta(days=window_days - 1), last_day)
        first = len(windows)
        windows.extend(Window(first + p, start, end, p) for p in range(parts))
        start = end + timedelta(days=1)
    return windows


def last_complete_days(now: datetime, lookback_days: int, basis: TimeBasis) -> tuple[date, date]:
    """The last `lookback_days` whole days that have ended everywhere, as (first, last)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now_utc = now.astimezone(UTC)
    if basis == "local":
        now_utc -= _LATEST_UTC_OFFSET
    last = now_utc.date() - timedelta(days=1)
    return last - timedelta(days=lookback_days - 1), last


def request_range(window: Window, basis: TimeBasis) -> tuple[str, str]:
    """The API's startDate/endDate for a window: whole days, `Z` for a UTC basis."""
    suffix = "Z" if basis == "utc" else ""
    return (
        f"{window.first_day.isoformat()}T00:00:00.000{suffix}",
        f"{window.last_day.isoformat()}T23:59:59.999{suffix}",
    )


def days_of(first_day: date, last_day: date) -> list[date]:
    return [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]
