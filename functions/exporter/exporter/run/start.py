"""Starting runs: plan one run per brand, fan its windows out, answer with the plan.

Every brand's run is planned and its windows sent at once, brands side by side
on a few threads, so that a nightly run over hundreds of brands reaches the
queue (and its parallel pollers) within seconds. A scheduled invocation then
works on one window itself, the first brand's first, after everything else is
queued: the nightly one-brand export needs no queue hop, and no other window
waits for it. With an API rate budget (`API_MAX_RPS`) it does none: the queue's
pollers are then the only callers of the API and share the budget
(exporter.pacing). An on-demand run answers at once with its run ids and
plan; the queue does the work (docs/architecture.md, docs/decisions.md "Scale").
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Final

from exporter.errors import PermanentError
from exporter.events import RunRequest
from exporter.lake import freshness
from exporter.observability import MetricUnit, logger, metrics
from exporter.planning import Window, split_windows
from exporter.redaction import describe as describe_error
from exporter.run import finish, step
from exporter.run.context import Invocation, RunContext
from exporter.run.records import RunPlan, Task, make_run_id

# Brands planned and fanned out side by side (S3 and SQS calls wait on the network).
FAN_OUT_THREADS: Final = 16


def start_runs(ctx: RunContext, request: RunRequest, inv: Invocation) -> dict[str, Any]:
    """Plan the request's runs, fan their windows out, and describe them for the caller."""
    if not request.brand_ids:
        logger.warning("scheduled event with no BRAND_IDS configured: nothing to export")
        return {"runs": [], "message": "no brands configured (BRAND_IDS is empty)"}
    started_at = _first_start(ctx, request)
    windows = _windows(ctx, request)
    # One window inline, the first brand's first, once every other is queued: it
    # delays nobody. Not with a rate budget: the pollers share the API alone.
    inline = request.trigger == "scheduled" and ctx.settings.api_max_rps is None

    def launch(brand_id: int, skip_first: bool) -> RunPlan:
        plan, created = _plan_run(ctx, request, started_at, windows, brand_id)
        try:
            enqueue_windows(ctx, plan, skip_first=skip_first, new_run=created)
        except Exception as exc:
            # Windows that never reach the queue would leave the run open and
            # silent: fail it (one notification), then let the caller see why.
            finish.fail_run(
                ctx, plan.run_id, f"could not enqueue the run's windows: {describe_error(exc)}", inv
            )
            raise
        return plan

    brands = request.brand_ids
    with ThreadPoolExecutor(min(FAN_OUT_THREADS, len(brands)), "fan-out") as pool:
        launched = [pool.submit(launch, b, inline and n == 0) for n, b in enumerate(brands)]
    # Every brand was tried; the first error (its run failed and notified) is raised
    # after the others went out, so one broken brand holds up no other.
    plans = [future.result() for future in launched]
    if request.trigger == "scheduled":
        freshness.on_schedule(ctx, brands, request.basis)
    if inline:
        _run_first_window_inline(ctx, plans[0], inv)
    metrics.add_metric(name="RunsStarted", unit=MetricUnit.Count, value=len(plans))
    return {"runs": [describe(ctx, plan) for plan in plans]}


def plan_runs(ctx: RunContext, request: RunRequest) -> list[RunPlan]:
    """One run per brand; its windows are sent by `enqueue_windows`.

    Idempotent for a retried invocation: run ids derive from the request and
    its first start time, and an existing plan is reused.
    """
    started_at = _first_start(ctx, request)
    windows = _windows(ctx, request)
    return [_plan_run(ctx, request, started_at, windows, b)[0] for b in request.brand_ids]


def _windows(ctx: RunContext, request: RunRequest) -> tuple[Window, ...]:
    selection = request.selection
    parts = selection.parts if selection else 1
    return tuple(
        split_windows(request.first_day, request.last_day, ctx.settings.window_days, parts)
    )


def _plan_run(
    ctx: RunContext,
    request: RunRequest,
    started_at: datetime,
    windows: tuple[Window, ...],
    brand_id: int,
) -> tuple[RunPlan, bool]:
    """Plan one brand's run (or find the plan a first attempt wrote); True if new."""
    run_id = make_run_id(started_at, brand_id, request.request_key)
    plan = RunPlan(
        run_id=run_id,
        brand_id=brand_id,
        first_day=request.first_day,
        last_day=request.last_day,
        basis=request.basis,
        trigger=request.trigger,
        started_at=started_at.isoformat().replace("+00:00", "Z"),
        windows=windows,
        selection=request.selection,
    )
    ledger = ctx.ledger
    plan, created = ledger.create_plan(plan)
    if created:
        ledger.announce(plan)  # a new run enters the history index (`wifi-export runs`)
    else:
        ledger.report_progress(plan)
    logger.info(
        "run planned", extra={"run_id": run_id, "brand_id": brand_id, "windows": len(windows)}
    )
    return plan, created


def _first_start(ctx: RunContext, request: RunRequest) -> datetime:
    """When this request was first seen: Lambda's retry of an invocation (same
    request id or event id) must get the same run ids, not start new runs."""
    return ctx.ledger.first_sighting(request.request_key, request.started_at.astimezone(UTC))


def enqueue_windows(
    ctx: RunContext, plan: RunPlan, *, skip_first: bool = False, new_run: bool = False
) -> int:
    """Send step 0 of every window (but the first, when it runs inline).

    `new_run`: this invocation created the plan (nothing of it was sent before)."""
    first = 1 if skip_first else 0
    tasks = [Task(plan.run_id, plan.brand_id, w.index, 0, None) for w in plan.windows[first:]]
    return ctx.ledger.send_then_mark(plan, tasks, new_run=new_run)


def _run_first_window_inline(ctx: RunContext, plan: RunPlan, inv: Invocation) -> None:
    task = Task(plan.run_id, plan.brand_id, 0, 0, None)
    # Too little time left to do a page and hand over: let the queue do it.
    if inv.remaining_ms() < 2 * ctx.settings.time_safety_margin_ms:
        ctx.ledger.send_then_mark(plan, [task])
        return
    try:
        step.run_step(ctx, task, inv)
    except PermanentError as exc:
        finish.fail_run(ctx, task.run_id, str(exc), inv)
    except Exception as exc:  # transient: retried through the queue, with its DLQ
        logger.warning(
            "inline window failed transiently; handing it to the queue",
            extra={"run_id": task.run_id, "error": describe_error(exc)},
        )
        ctx.ledger.send_then_mark(plan, [task])


def describe(ctx: RunContext, plan: RunPlan) -> dict[str, Any]:
    """The answer to an invocation that started a run: its id and plan."""
    return {**plan.summary(), "windows": plan.windows_json(), "statusKey": ctx.keys(plan).status}
