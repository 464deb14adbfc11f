"""Walking one window's v3 cursor chain while time allows: pages in, gzip parts out.

Three stages overlap: pages are read (and parsed) ahead on one thread, shaped
here, and compressed on another thread (docs/performance.md). Another page is
asked for only while there is time to process it too, then flush and hand
over (TIME_SAFETY_MARGIN_MS covers one page + flush + send).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from exporter.errors import MalformedResponse, OutOfTime, Throttled, TransientError
from exporter.gzip_writer import GzipWriter
from exporter.lake.sums import add_sums
from exporter.observability import api_metrics, logger
from exporter.pages import Fetch, read_ahead
from exporter.planning import Window, days_of, request_range
from exporter.ports import PageSource
from exporter.rows import RowShaper
from exporter.run.context import Invocation, RunContext
from exporter.run.counters import Counters
from exporter.run.records import RunPlan, StepRecord, Task
from exporter.variants import variant


@dataclass(frozen=True, slots=True)
class Walked:
    """What one invocation read of a window: compressed parts per day, and where it stopped."""

    writers: dict[str, GzipWriter]
    totals: Counters
    next_cursor: str | None
    locations: set[int]
    refused: tuple[int | str, ...] = ()
    # The API's Retry-After when the walk stopped on a 429 storm after some pages:
    # the next step backs off through the queue (run.step).
    retry_after_s: float | None = None
    # dt -> location -> [visits, rows, hours, digest] (rows.tally; exporter.lake).
    sums: dict[str, dict[str, list[int]]] = field(default_factory=dict)


def walk_window(
    ctx: RunContext, plan: RunPlan, task: Task, previous: StepRecord | None, inv: Invocation
) -> Walked:
    """Walk pages from the task's cursor while time allows; rows end up compressed.

    A transient failure after at least one page is not an error: the pages
    walked so far are kept and the step checkpoints at the page that failed.
    """
    window = plan.windows[task.window]
    start, end = request_range(window, plan.basis)
    shaper = RowShaper(
        plan.run_id,
        plan.basis,
        days_of(window.first_day, window.last_day),
        zero_filled=plan.selection is not None and variant(plan.selection.variant).zero_fill,
    )
    api = ctx.api()
    margin = ctx.settings.time_safety_margin_ms
    totals = Counters()
    # Every location of the window so far: one seen twice would be exported twice.
    locations: set[int] = set(previous.locations) if previous else set()

    def fetch_v3(cursor: str | None, follow_on: bool) -> tuple[list[Any], str | None]:
        # Retries of a follow-on page may not eat into the time reserved
        # for flushing the pages already walked and handing over.
        reserve = margin if follow_on else 0
        return api.fetch_v3(
            plan.brand_id, start, end, cursor, lambda: (inv.remaining_ms() - reserve) / 1000
        )

    fetch: Fetch = fetch_v3
    next_cursor = task.cursor
    writers: dict[str, GzipWriter] = {}
    refused: list[int | str] = []
    retry_after_s: float | None = None
    sums: dict[str, dict[str, list[int]]] = {}
    with ThreadPoolExecutor(1, thread_name_prefix="gzip") as packer:
        if plan.selection is not None:
            fetch = _batch_fetcher(api, plan, window, inv, reserve_ms=margin, refused=refused)
        pages = read_ahead(fetch, task.cursor, lambda: inv.remaining_ms() >= margin)
        try:
            for data, cursor_after in pages:
                next_cursor = cursor_after
                shaped = shaper.shape(data)
                _claim_locations(locations, shaped.location_ids)
                totals.pages += 1
                totals.dropped_rows += shaped.dropped_rows
                totals.note_irregular_days(shaped.irregular_days)
                totals.count_fields(shaped.unknown_fields)
                add_sums(sums, shaped.sums)
                for dt, lines in shaped.lines.items():
                    writer = writers.get(dt)
                    if writer is None:
                        writers[dt] = writer = GzipWriter(packer)
                    writer.write(b"".join(lines), shaped.rows[dt])
        except OutOfTime:
            if totals.pages == 0:
                raise
            # The read-ahead asked for a page the time budget no longer allows:
            # the ordinary hand-over, not a failure.
            logger.info(
                "time budget reached; checkpointing the pages walked so far",
                extra={"run_id": plan.run_id, "window": task.window, "pages": totals.pages},
            )
        except TransientError as exc:
            if totals.pages == 0:
                raise
            # Keep what this invocation walked: checkpoint at the page that
            # failed (next_cursor), and let the next invocation retry it.
            if isinstance(exc, Throttled):
                retry_after_s = exc.retry_after_s
            logger.warning(
                "page failed after retries; checkpointing the pages walked so far",
                extra={"run_id": plan.run_id, "window": task.window, "error": str(exc)},
            )
        finally:
            pages.close()
            api_metrics(api.stats)
    totals.api_calls = api.stats.calls
    totals.retries = api.stats.retries
    return Walked(writers, totals, next_cursor, locations, tuple(refused), retry_after_s, sums)


def _batch_fetcher(
    api: PageSource,
    plan: RunPlan,
    window: Window,
    inv: Invocation,
    *,
    reserve_ms: int,
    refused: list[int | str],
) -> Fetch:
    """The requests of a selection's part, walked like a v3 chain: the cursor is the
    number of the next batch (at most 50 ids and 5 days a request)."""
    assert plan.selection is not None
    selection = plan.selection
    batches = selection.part_batches(window.part)
    start, end = request_range(window, plan.basis)

    def fetch(cursor: str | None, follow_on: bool) -> tuple[list[Any], str | None]:
        batch = batches.start if cursor is None else int(cursor)
        if batch not in batches:
            raise MalformedResponse(f"checkpoint cursor {cursor!r} is not a batch of this part")
        reserve = reserve_ms if follow_on else 0
        records, denied = api.fetch_batch(
            selection.variant,
            selection.request_body(plan.brand_id, batch),
            start,
            end,
            lambda: (inv.remaining_ms() - reserve) / 1000,
        )
        refused.extend(denied)
        if selection.zone_id is not None:
            _label_zone(records, selection.zone_id)
        return records, str(batch + 1) if batch + 1 < batches.stop else None

    return fetch


def _label_zone(records: list[Any], zone: str) -> None:
    """Zone rows must say which zone they are, whether or not the API echoes it."""
    for record in records:
        if isinstance(record, dict):
            echoed = record.setdefault("zoneId", zone)
            if not isinstance(echoed, str) or echoed.lower() != zone:
                raise MalformedResponse(
                    f"zone export: the API answered for zone {str(echoed)[:40]!r}"
                )
            record["zoneId"] = zone


def _claim_locations(seen: set[int], ids: list[int]) -> None:
    """Add a page's locations to the window's; one already seen would be counted twice."""
    if not seen.isdisjoint(ids) or len(set(ids)) != len(ids):
        twice = seen.intersection(ids) | {i for i in ids if ids.count(i) > 1}
        raise MalformedResponse(
            f"the API returned location {min(twice)} twice in one window: "
            "its rows would be counted twice"
        )
    seen.update(ids)
