"""Freshness of the lake, as metrics: after each commit, and on the nightly schedule.

`HoursSinceLastCompleteDay` (brand, basis): hours from the end of the newest
day that is present (not missing, not partial) to now. `MissingLocationDays`:
of the days a run committed, how many have fewer stores than the brand's
trailing median. The template alarms on both (docs/runbook.md, "Freshness").
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

from exporter.lake import records as lake
from exporter.observability import MetricUnit, lake_metric, logger
from exporter.ports import ObjectStore
from exporter.run.context import RunContext
from exporter.run.parallel import each_at_once

# How far back the newest complete day is looked for: a lake with none that recent
# reports the hours since the end of the day before (an alarm fires long before).
LOOK_BACK_DAYS: Final = 30


def hours_since_last_complete_day(
    records: dict[str, dict[str, Any]], today: date, now: datetime
) -> float:
    """Hours since the end of the newest complete day up to yesterday (a day that
    ended LOOK_BACK_DAYS ago when none is)."""
    for back in range(1, LOOK_BACK_DAYS + 1):
        day = today - timedelta(days=back)
        record = records.get(day.isoformat())
        if record and record.get("rows") and lake.status_of(record, records, day) == "present":
            break
    else:
        day = today - timedelta(days=LOOK_BACK_DAYS + 1)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)
    return round(max(0.0, (now - end).total_seconds() / 3600), 2)


def missing_location_days(records: dict[str, dict[str, Any]], first: date, last: date) -> list[str]:
    """Days first..last with rows but fewer stores than the trailing median."""
    out: list[str] = []
    day = first
    while day <= last:
        record = records.get(day.isoformat())
        if record is not None and record.get("rows"):
            median = lake.trailing_median(lake.trailing_counts(records, day))
            if median is not None and record["locations"] < median:
                out.append(day.isoformat())
        day += timedelta(days=1)
    return out


def emit(
    store: ObjectStore,
    state_prefix: str,
    brand_id: int,
    basis: str,
    *,
    now: datetime,
    committed: tuple[date, date] | None = None,
    known: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Read the recent calendar and emit the metrics; `committed`: the days a run
    just committed (their store counts are checked); `known`: calendar month
    documents in hand. Returns what was emitted.

    The nightly commit reads one object: last month's (this month's is known).
    """
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=LOOK_BACK_DAYS)
    records: dict[str, dict[str, Any]] = {}
    if committed is not None:
        # The committed days and their trailing medians' days. A backfill's days
        # may be years back: the months between them and the look-back are read
        # only if they could be consulted (a look-back day's trailing median
        # reaches TRAILING_DAYS further back), so a commit of 2023 in 2026 reads
        # four months, not forty-three, and emits the same figures.
        since = committed[0] - timedelta(days=lake.TRAILING_DAYS)
        consulted = first - timedelta(days=lake.TRAILING_DAYS)
        if committed[1].isoformat()[:7] < consulted.isoformat()[:7]:  # whole months apart
            records = lake.read_days(
                store, state_prefix, brand_id, basis, (since, committed[1]), known=known
            )
            first = consulted
        else:
            first = min(first, since)
    records |= lake.read_days(store, state_prefix, brand_id, basis, (first, today), known=known)
    hours = hours_since_last_complete_day(records, today, now)
    lake_metric("HoursSinceLastCompleteDay", hours, MetricUnit.Count, brand_id, basis)
    emitted: dict[str, Any] = {"HoursSinceLastCompleteDay": hours}
    if committed is not None:
        short = missing_location_days(records, *committed)
        lake_metric("MissingLocationDays", len(short), MetricUnit.Count, brand_id, basis)
        emitted["MissingLocationDays"] = short
        if short:
            logger.warning(
                "days with fewer stores than usual",
                extra={"brand_id": brand_id, "time_basis": basis, "days": short[:31]},
            )
    return emitted


def on_schedule(ctx: RunContext, brand_ids: tuple[int, ...], basis: str) -> None:
    """The nightly reading, once the night's windows are queued: a lake that stopped
    filling (no run, every run failing) still reports its age.

    The brands' calendars are read side by side (one or two GETs each: hundreds
    of brands must not hold up the night), and the metrics printed in order.
    """
    now = ctx.clock()
    today = now.astimezone(UTC).date()

    def read(brand_id: int) -> tuple[int, float | None]:
        try:
            days = (today - timedelta(days=LOOK_BACK_DAYS), today)
            records = lake.read_days(ctx.store, ctx.layout.state_prefix, brand_id, basis, days)
            return brand_id, hours_since_last_complete_day(records, today, now)
        except Exception:  # metrics are best effort: never stop the night's runs
            logger.exception("freshness metrics failed", extra={"brand_id": brand_id})
            return brand_id, None

    for brand_id, hours in each_at_once(read, brand_ids):
        if hours is not None:
            lake_metric("HoursSinceLastCompleteDay", hours, MetricUnit.Count, brand_id, basis)
