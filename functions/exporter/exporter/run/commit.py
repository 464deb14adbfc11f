"""Committing a finished run: copy its staged parts into the table, replace older runs'
objects day by day, and write the manifest (docs/contracts.md, "S3 layout").

Called only under the finishing lease (`finish`), and at most once to the end:
a "committed" marker lets a later lease holder skip straight to notifying.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import date
from typing import Any, Final

from exporter import json_codec, parquet_table
from exporter.errors import TransientError
from exporter.lake import commit as lake
from exporter.observability import logger
from exporter.planning import days_of
from exporter.ports import RemainingMs
from exporter.run.basis import MIGRATION, irregular_local_days
from exporter.run.context import RunContext, iso
from exporter.run.counters import Counters
from exporter.run.coverage import (
    NO_ROWS,
    WHOLE,
    Coverage,
    Unreadable,
    coverage_of,
    remove_rows,
)
from exporter.run.keys import RunKeys, run_id_of_data_object
from exporter.run.owners import Owners, foreign_summary
from exporter.run.parallel import THREADS, each_at_once
from exporter.run.records import RunPlan, StagedObject, StepRecord, refused_ids

# A commit keeps this share of the safety margin for what follows its Parquet
# rebuilds (manifest, lake coverage, notification): no batch of days starts unless
# its cost, as measured on the batches before it, fits above that floor.
_PARQUET_FLOOR_SHARE: Final = 4


def old_layout_failure(ctx: RunContext, plan: RunPlan) -> str | None:
    """Fail the run, before its commit begins, if the brand still has old-layout objects.

    One LIST of at most one page, brand-wide: the old folders hold rows of both bases
    under one `dt`, which no query of the new table reads, and committing beside them
    would leave a brand half migrated. Recorded as any failure is (first reason wins);
    returns the run's recorded error, or None.
    """
    ledger = ctx.ledger
    keys = ledger.keys(plan)
    found = next(iter(ctx.store.list_keys(keys.old_layout)), None)
    if found is None or ledger.committed_manifest(plan) is not None:
        return None  # (committed by an earlier lease holder: the run can only go forward)
    ledger.record_failure(
        plan,
        f"S3 layout: brand {keys.brand_id} still has objects in the layout before time "
        f"bases were separate datasets ({found[-120:]!r}); nothing is committed. "
        f"Migrate them first ({MIGRATION}), then run again",
    )
    return ledger.failure(keys)


def commit_run(
    ctx: RunContext,
    plan: RunPlan,
    keys: RunKeys,
    *,
    resumed: bool = True,
    last_record: StepRecord | None = None,
    remaining_ms: RemainingMs | None = None,
) -> dict[str, Any]:
    """Make the run's rows the table's rows for its days; returns the manifest.

    `resumed`: an earlier lease holder may have committed (only the first holder,
    lease 0, knows that nobody did). `last_record`: a record the caller holds.
    `remaining_ms`: the invocation's time left, which the Parquet rebuilds keep to.
    """
    ledger = ctx.ledger
    if resumed:
        # A previous holder of the lease may have committed, then died before notifying.
        committed = ledger.committed_manifest(plan)
        if committed is not None:
            return committed
    if last_record is not None and last_record.whole_run(plan):
        records = [last_record]
    else:
        records = ledger.step_records(plan)
    by_dt: dict[str, list[StagedObject]] = defaultdict(list)
    copies: list[tuple[str, str, str]] = []  # (dt, staged key, table key)
    api = Counters.total(record.totals for record in records)
    for record in records:
        for obj in record.objects:
            by_dt[obj.dt].append(obj)
            copies.append((obj.dt, obj.key, keys.data_object(record.window, record.step, obj.dt)))
    # What this run replaces, recorded before anything reaches the table: a run
    # committing the same days later needs it to let this one win where it is newer.
    coverage = coverage_of(plan, records)
    ledger.record_coverage(plan, coverage.to_json())
    # Server-side copies, no data through the function; side by side, since a
    # long run has one object per (day, window, invocation).
    each_at_once(lambda copy: ctx.store.copy(copy[1], copy[2]), copies)
    written: dict[str, list[str]] = defaultdict(list)
    for dt, _, target in copies:
        written[dt].append(target)
    days = [day.isoformat() for day in days_of(plan.first_day, plan.last_day)]
    _place_empty_days(ctx, plan, keys, days, coverage=coverage, written=written)
    others: dict[str, Coverage] = {}  # other runs' coverage, read once
    owners = Owners(ctx, keys)
    # Every day of the run is settled, also days that now have no rows: a rerun
    # must not leave an older run's rows behind. Days share no object, so they are
    # settled side by side (a brand-year is 365 LISTs); `others` is shared, and two
    # days wanting the same run's coverage at once read it twice at worst.
    foreign: dict[str, list[str]] = {dt: [] for dt in days}  # left alone, reported
    each_at_once(
        lambda dt: _settle(
            ctx,
            keys,
            dt,
            set(written[dt]),
            coverage=coverage,
            others=others,
            owners=owners,
            foreign=foreign[dt],
        ),
        days,
    )
    left_alone = {key for found in foreign.values() for key in found}
    _rebuild_parquet(
        ctx, keys, days, resumed=resumed, remaining_ms=remaining_ms, foreign=left_alone
    )
    partitions = [
        {
            "dt": dt,
            "rows": sum(o.rows for o in by_dt[dt]),
            "objects": len(written[dt]),
            "bytes": sum(o.bytes for o in by_dt[dt]),
            "keys": sorted(written[dt]),
        }
        for dt in days
    ]
    changes = lake.on_commit(ctx, plan, records, coverage)
    manifest = _manifest(ctx, plan, partitions, api, steps=len(records))
    manifest["foreignObjects"] = foreign_summary(sorted(left_alone))
    if changes is not None:
        manifest["changes"] = changes  # what this run changed of the rows it replaced
    if plan.selection is not None:
        manifest["refused"] = refused_ids(records)
    ledger.record_commit(plan, manifest)
    return manifest


def _place_empty_days(
    ctx: RunContext,
    plan: RunPlan,
    keys: RunKeys,
    days: list[str],
    *,
    coverage: Coverage,
    written: dict[str, list[str]],
) -> None:
    """A zero-row object on each day the run replaces rows of but has none of.

    Newest-wins is settled by the objects each run finds in a partition: a newer
    run with no object of a day would be invisible to an older one committing
    after it, which would then keep the rows the newer run removed. Written, like
    the copies, before any day is settled; named like a step object of the day's
    first window, so the run's plan and history name it as theirs.
    """
    empty = [dt for dt in days if not written[dt] and coverage.covers(dt) is not None]
    for dt in empty:
        day = date.fromisoformat(dt)
        window = next(
            (i for i, w in enumerate(plan.windows) if w.first_day <= day <= w.last_day), 0
        )
        written[dt].append(keys.data_object(window, 0, dt))
    each_at_once(lambda dt: ctx.store.put(written[dt][0], NO_ROWS), empty)


def _rebuild_parquet(
    ctx: RunContext,
    keys: RunKeys,
    days: list[str],
    *,
    resumed: bool,
    remaining_ms: RemainingMs | None,
    foreign: set[str],
) -> None:
    """The Parquet twin of every day the run settled (exporter/parquet_table.py).

    Before the "committed" marker: a holder killed (or out of time) before every
    day is rebuilt leaves the commit to the next lease holder, which redoes it.
    Each rebuilt day is marked, so that holder rebuilds only the days left: a
    long commit goes forward over several invocations instead of starting over.
    """
    prefix = ctx.settings.parquet_prefix
    if prefix is None:
        return
    done: set[str] = set()
    if resumed:
        done = {k.rsplit("dt=", 1)[-1][:10] for k in ctx.store.list_keys(keys.parquet_done_prefix)}
    todo = [dt for dt in days if dt not in done]
    marker = json_codec.dumps({"at": ctx.now_iso()})
    sizes = _BatchSizes(ctx.settings.time_safety_margin_ms, remaining_ms)
    start = 0
    while start < len(todo):
        size = sizes.next(first=not start)
        if size == 0:
            raise TransientError(
                f"run {keys.run_id}: commit continues in the next invocation "
                f"(Parquet rebuilt on {len(days) - len(todo) + start} of {len(days)} days)"
            )
        batch = todo[start : start + size]
        started = time.monotonic()
        parquet_table.rebuild_all(
            ctx.store,
            [keys.partition(dt) for dt in batch],
            ctx.settings.data_prefix,
            prefix,
            ours=lambda key: key not in foreign and run_id_of_data_object(key) is not None,
        )
        each_at_once(lambda dt: ctx.store.put(keys.parquet_done(dt), marker), batch)
        sizes.took(len(batch), time.monotonic() - started)
        start += len(batch)


class _BatchSizes:
    """How many days the next batch of Parquet rebuilds may take on, by the clock.

    Every holder rebuilds at least one day whatever its time (a holder that redid
    the JSON part with little time left must still move the commit forward); the
    first batch is a single day when the invocation is already inside its safety
    margin. After that a batch is sized from the dearest day measured so far (a
    batch's time over its days), so that it ends above the floor kept for the rest
    of the finish; 0 hands over. A fixed first batch of 8 days overran a 2-s margin
    in the full-size chaos campaign (docs/decisions.md, "Parquet batches by the clock").
    """

    def __init__(self, margin_ms: int, remaining_ms: RemainingMs | None) -> None:
        self._margin_ms = margin_ms
        self._floor_ms = margin_ms // _PARQUET_FLOOR_SHARE
        self._remaining_ms = remaining_ms
        self._day_ms = 0.0

    def next(self, *, first: bool) -> int:
        if self._remaining_ms is None:
            return THREADS
        left = self._remaining_ms()
        if first:
            return THREADS if left >= self._margin_ms else 1
        spare = left - self._floor_ms
        if spare <= 0:
            return 0
        return THREADS if self._day_ms <= 0 else min(THREADS, int(spare // self._day_ms))

    def took(self, days: int, seconds: float) -> None:
        self._day_ms = max(self._day_ms, seconds * 1000 / days)


def _settle(
    ctx: RunContext,
    keys: RunKeys,
    dt: str,
    mine: set[str],
    *,
    coverage: Coverage,
    others: dict[str, Coverage],
    owners: Owners,
    foreign: list[str],
) -> None:
    """Newest run wins per location (or zone) and day; run ids sort by start time.

    Older runs' objects lose the rows this run covers; this run's own objects
    lose the rows a newer run (already committed here) covers. Whichever of two
    runs commits last sees the other's objects, so the order does not matter.
    Only objects a record of ours names count (run.owners); the others, and ours
    that cannot be read, are foreign: appended to `foreign`, never touched.
    """
    covered = coverage.covers(dt)
    listed = sorted(ctx.store.list_keys(keys.partition(dt)))
    # The copies came first: every object of ours must be there before the run can
    # report success (one missing makes the commit go again, copies included).
    missing = mine.difference(listed)
    if missing:
        raise TransientError(
            f"run {keys.run_id}: {len(missing)} of its objects of {dt} are not in the "
            "table after copying; the commit goes again"
        )
    for key in listed:
        if key in mine:
            continue
        owner = owners.owner(key, dt)
        if owner is None:
            _foreign(foreign, key)
        elif owner < keys.run_id:
            if covered is None:
                continue
            # A whole-brand run replaces it whoever wrote it: no coverage read then.
            older = WHOLE if coverage.kind == "all" else _coverage_of_run(ctx, owner, others)
            if coverage.replaces_all_of(older, dt):
                ctx.store.delete([key])  # every row it can hold is replaced: no need to read it
            else:
                # Emptied, it stays (with no rows) while the older run still
                # replaces something this one does not: it keeps that run's place.
                try:
                    remove_rows(
                        ctx.store, key, covered, keep_empty=not coverage.dominates(older, dt)
                    )
                except Unreadable:
                    _foreign(foreign, key)  # damaged: no retry would read it either
        elif owner != keys.run_id:
            newer = _coverage_of_run(ctx, owner, others)
            theirs = newer.covers(dt)
            if theirs is not None:
                keep = not newer.dominates(coverage, dt)
                for own in sorted(mine):
                    remove_rows(ctx.store, own, theirs, keep_empty=keep)


def _foreign(foreign: list[str], key: str) -> None:
    logger.warning("foreign object in a partition left alone", extra={"key": key})
    foreign.append(key)


def _coverage_of_run(ctx: RunContext, run_id: str, cache: dict[str, Coverage]) -> Coverage:
    """Another run's coverage, written before it copied anything into the table.

    Runs of versions before selections existed wrote none: they were whole-brand.
    """
    if run_id not in cache:
        raw, planned = ctx.ledger.coverage_of(run_id)
        if planned is not None and planned.selection is not None:
            raise TransientError(f"run {run_id} has table objects but no coverage yet")
        cache[run_id] = WHOLE if raw is None else Coverage.from_json(raw)
    return cache[run_id]


def _manifest(
    ctx: RunContext, plan: RunPlan, partitions: list[dict[str, Any]], api: Counters, steps: int
) -> dict[str, Any]:
    """What the run committed (docs/contracts.md, "Manifest")."""
    return {
        **plan.summary(),
        "status": "succeeded",
        "partitions": partitions,
        "totals": {
            "rows": sum(p["rows"] for p in partitions),
            "objects": sum(p["objects"] for p in partitions),
            "bytes": sum(p["bytes"] for p in partitions),
            "partitions": len(partitions),
            "droppedRowsOutsideRange": api.dropped_rows,
        },
        "api": api.api_json(),
        # What the API sent beyond its document (docs/contracts.md, "Manifest").
        "unknownFields": dict(api.unknown_fields),
        "irregularLocalDays": irregular_local_days(plan, api),
        "windows": len(plan.windows),
        "steps": steps,
        "startedAt": plan.started_at,
        "finishedAt": iso(ctx.clock()),
        "durationSeconds": round(ctx.seconds_since(plan), 3),
    }
