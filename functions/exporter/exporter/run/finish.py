"""Finishing a run: once every window is done (or one failed), commit and notify, once.

Committing and notifying happen under a lease: numbered lease objects created
with conditional puts, each valid until its holder's Lambda deadline. Work
that finds the lease taken stays queued until the run is notified, so the run
still finishes if the holder died; "committed" / "notified" markers make both
happen once (docs/architecture.md, "Finishing").
"""

from __future__ import annotations

from typing import Any, Final

from exporter import notify
from exporter.errors import TransientError
from exporter.observability import MetricUnit, logger, metrics
from exporter.redaction import error_text
from exporter.run import commit
from exporter.run.context import Invocation, RunContext
from exporter.run.ledger import Ledger
from exporter.run.parallel import at_once
from exporter.run.records import RunPlan, StepRecord

# Tries of the `notified` marker after the publish: a failure that outlasts them
# repeats the notification on redelivery, as a kill at that instant does.
_MARK_TRIES: Final = 3


def finish_run(
    ctx: RunContext, plan: RunPlan, inv: Invocation, *, last_record: StepRecord | None = None
) -> None:
    """Commit and/or notify if the run is over; a no-op while windows are still open.

    `last_record`: the step record that completed a window, if the caller holds it
    (a one-window run of one step then needs no listing of its records)."""
    ledger = ctx.ledger
    ending = ledger.ending(plan)
    if ending.notified:
        return
    failure, done = ending.failure, ending.windows_done
    if failure is None and ending.cancel is None:
        if done < len(plan.windows):
            ledger.report_progress(plan, windows_done=done)
            return
        failure = ledger.fail_if_all_refused(plan) or commit.old_layout_failure(ctx, plan)
    lease = _take_lease(ledger, plan, inv)
    if lease is None:
        # Someone holds the lease: keep this work alive (retried after the
        # visibility timeout) until the run is notified, so the run still
        # finishes if the holder died, once its lease has expired.
        raise TransientError(f"run {plan.run_id} is being finished by another invocation")
    # Only lease holders commit and notify: the first holder finds neither done.
    resumed = lease > 0
    if resumed and ledger.notified(plan):
        return
    cancel = ledger.close_cancel_slot(plan, failed=failure is not None)
    duration = round(ctx.seconds_since(plan), 3)
    ended: dict[str, Any] = {"finishedAt": ctx.now_iso(), "durationSeconds": duration}
    if cancel is not None:
        subject, body = notify.cancelled_message(plan, cancel, duration, failure)
        ledger.report_final(plan, "cancelled", done, cancel=cancel, rows=0, error=failure, **ended)
        _publish(ctx, plan, subject, body, "cancelled")
        metrics.add_metric(name="RunsCancelled", unit=MetricUnit.Count, value=1)
    elif failure is not None:
        subject, body = notify.failure_message(plan, failure, ctx.seconds_since(plan))
        ledger.report_final(plan, "failed", done, error=failure, rows=0, **ended)
        _publish(ctx, plan, subject, body, "failed")
        metrics.add_metric(name="RunsFailed", unit=MetricUnit.Count, value=1)
    else:
        manifest = commit.commit_run(
            ctx,
            plan,
            ctx.keys(plan),
            resumed=resumed,
            last_record=last_record,
            remaining_ms=inv.remaining_ms,
        )
        uri = f"s3://{ctx.settings.bucket_name}/{ctx.keys(plan).manifest}"
        subject, body = notify.success_message(plan, manifest, uri)
        totals = manifest["totals"]
        at_once(
            lambda: ledger.keep_manifest(plan, manifest),
            lambda: ledger.report_final(
                plan,
                "succeeded",
                len(plan.windows),
                totals=totals,
                api=manifest["api"],
                rows=totals["rows"],
                finishedAt=manifest["finishedAt"],
                durationSeconds=manifest["durationSeconds"],
                **({"refused": manifest["refused"]} if manifest.get("refused") else {}),
            ),
        )
        _publish(ctx, plan, subject, body, "succeeded")
        metrics.add_metric(name="RunsSucceeded", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="RowsExported", unit=MetricUnit.Count, value=totals["rows"])
        metrics.add_metric(name="BytesExported", unit=MetricUnit.Bytes, value=totals["bytes"])
    metrics.add_metric(name="RunDuration", unit=MetricUnit.Seconds, value=duration)
    _mark_notified(ledger, plan)


def fail_run(ctx: RunContext, run_id: str, error: str, inv: Invocation) -> None:
    """Mark the run failed (first reason wins) and send its one failure notification."""
    # Where an error enters the run's records: redacted, one line, bounded.
    error = error_text(error)
    ledger = ctx.ledger
    plan = ledger.plan(run_id)
    if ledger.finishing_began(plan):
        # Finishing has begun (partitions may be half replaced): the run can
        # only go forward. Keep the work alive; the DLQ alarm covers the worst.
        raise TransientError(f"run {run_id} is being committed; not failing it: {error}")
    first = ledger.record_failure(plan, error)
    logger.error(
        "run failed" if first else "run already failed", extra={"run_id": run_id, "error": error}
    )
    finish_run(ctx, plan, inv)


def _mark_notified(ledger: Ledger, plan: RunPlan) -> None:
    """The one write after the publish (docs/architecture.md, rule 8): everything that
    can fail comes before it, and it is tried again here rather than through a
    redelivery, which would publish again."""
    for attempt in range(_MARK_TRIES):
        try:
            ledger.mark_notified(plan)
            return
        except Exception:
            if attempt == _MARK_TRIES - 1:
                raise
            logger.warning(
                "notified marker not written; trying again", extra={"run_id": plan.run_id}
            )


def _take_lease(ledger: Ledger, plan: RunPlan, inv: Invocation) -> int | None:
    """The finishing lease, valid until this invocation's deadline; None if taken."""
    return ledger.take_lease(plan, inv.holder, inv.remaining_ms() / 1000.0)


def _publish(
    ctx: RunContext, plan: RunPlan, subject: str, body: dict[str, Any], status: str
) -> None:
    message = notify.render(body)  # redacted, and within SNS's message size limit
    ctx.publisher.publish(subject, message, notify.attributes(plan, status))
    logger.info("notification published", extra={"run_id": plan.run_id, "status": status})
