"""At commit: the lake coverage of the run's days, and what the run changed.

Called once the run's rows are the table's (run.commit), before its manifest
is written. Reads and writes two small objects per month the run touches
(exporter.lake.records); never the table.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final

from exporter.lake import freshness
from exporter.lake import records as lake
from exporter.lake.sums import Change, DaySums, day_totals, merged_by_day, replace_day
from exporter.observability import logger
from exporter.planning import days_of
from exporter.ports import ObjectStore
from exporter.run.context import RunContext, iso
from exporter.run.coverage import Coverage
from exporter.run.records import RunPlan, StepRecord

# Location ids a calendar day names of the selection that wrote it last.
MAX_NAMED_IDS: Final = 1_000


def record_commit(
    store: ObjectStore,
    state_prefix: str,
    plan: RunPlan,
    steps: list[StepRecord],
    coverage: Coverage,
    *,
    committed_at: str,
    written: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """Update the lake coverage of the run's days; the manifest's `changes`, or None
    if the run replaced no day that had rows (docs/contracts.md, "Manifest").
    `written`: filled with the calendar documents as written (month -> document)."""
    new = merged_by_day((o.dt, o.sums) for step in steps for o in step.objects)
    changes: dict[str, Change] = {}
    all_days = [d.isoformat() for d in days_of(plan.first_day, plan.last_day)]
    for month in lake.months_of(plan.first_day, plan.last_day):
        days = [dt for dt in all_days if dt.startswith(month)]
        # Per day, of the attempt that is written (update_days may retry): what
        # the run changed and the day's calendar record. A day's sums are
        # dropped as soon as its record is made, not held for the whole month.
        found: dict[str, Change] = {}
        records: dict[str, dict[str, Any]] = {}

        def replace(
            dt: str,
            raw: dict[str, Any] | None,
            found: dict[str, Change] = found,
            records: dict[str, dict[str, Any]] = records,
        ) -> dict[str, Any]:
            old = None if raw is None else DaySums.from_dict(raw)
            day, change = replace_day(old, plan.run_id, new.get(dt, {}), coverage.covers(dt))
            found.pop(dt, None)
            if change is not None:
                found[dt] = change
            records[dt] = _calendar_day(plan, coverage, dt, day, committed_at)
            return day.to_dict()

        key = lake.month_key(state_prefix, plan.brand_id, plan.basis, month, "sums")
        lake.update_days(store, key, days, replace)
        changes.update(found)

        def calendar(
            doc: dict[str, Any], records: dict[str, Any] = records, month: str = month
        ) -> None:
            for dt, record in records.items():
                have = doc["days"].get(dt)
                if have is None or have.get("seq", 0) < record["seq"]:
                    doc["days"][dt] = record
            if written is not None:
                written[month] = doc

        lake.update(
            store, lake.month_key(state_prefix, plan.brand_id, plan.basis, month, "days"), calendar
        )
    if not changes:
        return None
    return {
        "days": {
            dt: {"locations": c.locations, "visits": c.visits}
            for dt, c in sorted(changes.items())
            if c.locations or c.visits
        }
    }


def _calendar_day(
    plan: RunPlan, coverage: Coverage, dt: str, day: DaySums, committed_at: str
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "date": dt,
        "timeBasis": plan.basis,
        **day_totals(day),
        "runId": max(day.runs or [plan.run_id]),
        "committedAt": committed_at,
        "seq": day.seq,
    }
    if coverage.kind == "zone":
        record["replacedZone"] = coverage.zone
    elif coverage.kind == "locations":
        ids = _replaced_ids(coverage, dt)
        # Named up to a limit: the calendar stays small for a selection of 10,000.
        record["replaced"] = ids[:MAX_NAMED_IDS]
        record["replacedCount"] = len(ids)
    return record


def _replaced_ids(coverage: Coverage, dt: str) -> list[int]:
    day = date.fromisoformat(dt)
    return sorted({i for first, last, ids in coverage.ranges if first <= day <= last for i in ids})


def on_commit(
    ctx: RunContext, plan: RunPlan, steps: list[StepRecord], coverage: Coverage
) -> dict[str, Any] | None:
    """The run.commit hook: the lake coverage, then the freshness metrics; `changes`."""
    store, prefix, now = ctx.store, ctx.layout.state_prefix, ctx.clock()
    written: dict[str, dict[str, Any]] = {}
    changes = record_commit(
        store, prefix, plan, steps, coverage, committed_at=iso(now), written=written
    )
    try:
        freshness.emit(
            store,
            prefix,
            plan.brand_id,
            plan.basis,
            now=now,
            committed=(plan.first_day, plan.last_day),
            known=written,
        )
    except Exception:  # metrics are best effort: the commit stands
        logger.exception("freshness metrics failed", extra={"run_id": plan.run_id})
    return changes
