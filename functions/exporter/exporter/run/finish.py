"""Finishing a run: once every window is done (or one failed), commit and notify, once.

Committing and notifying happen under a lease: numbered lease objects created
with conditional puts, each valid until its holder's Lambda deadline. Work
that finds the lease taken stays queued until the run is notified, so the run
still finishes if the holder died; "committed" / "notified" markers make both
happen once (docs/architecture.md, "Finishing").
"""

from __future__ import annotations

from typing import Any

from exporter import json_codec, notify
from exporter.errors import TransientError
from exporter.observability import MetricUnit, logger, metrics
from exporter.redaction import error_text
from exporter.run import commit
from exporter.run.context import Invocation, RunContext
from exporter.run.keys import RunKeys, lease_number
from exporter.run.parallel import at_once
from exporter.run.records import RunPlan, StepRecord


def finish_run(
    ctx: RunContext, plan: RunPlan, inv: Invocation, *, last_record: StepRecord | None = None
) -> None:
    """Commit and/or notify if the run is over; a no-op while windows are still open.

    `last_record`: the step record that completed a window, if the caller holds it
    (a one-window run of one step then needs no listing of its records)."""
    keys = ctx.keys(plan)
    # Four reads, one round trip: markers are only ever created, so reading them
    # together sees what reading them one by one would.
    notified, failed_raw, cancel_request, done = at_once(
        lambda: ctx.store.exists(keys.notified),
        lambda: ctx.store.get(keys.failed),
        lambda: cancel_requested(ctx, keys),
        lambda: ctx.windows_done(plan),
    )
    if notified:
        return
    cancelling = cancel_request is not None
    if failed_raw is None and not cancelling:
        if done < len(plan.windows):
            ctx.write_status(plan, state="running", windows_done=done)
            return
        failed_raw = commit.refusal_failure(ctx, plan, keys)
    lease = _take_lease(ctx, keys, inv)
    if lease is None:
        # Someone holds the lease: keep this work alive (retried after the
        # visibility timeout) until the run is notified, so the run still
        # finishes if the holder died, once its lease has expired.
        raise TransientError(f"run {plan.run_id} is being finished by another invocation")
    # Only lease holders commit and notify: the first holder finds neither done.
    resumed = lease > 0
    if resumed and ctx.store.exists(keys.notified):
        return
    cancel = _close_cancel_slot(ctx, keys, failed=failed_raw is not None)
    duration = round(ctx.seconds_since(plan), 3)
    ended: dict[str, Any] = {"finishedAt": ctx.now_iso(), "durationSeconds": duration}
    if cancel is not None:
        error = _recorded_error(failed_raw) if failed_raw is not None else None
        subject, body = notify.cancelled_message(plan, cancel, duration, error)
        _publish(ctx, plan, subject, body, "cancelled")
        ctx.write_status(
            plan, state="cancelled", windows_done=done, cancel=cancel, rows=0, error=error, **ended
        )
        metrics.add_metric(name="RunsCancelled", unit=MetricUnit.Count, value=1)
    elif failed_raw is not None:
        error = _recorded_error(failed_raw)
        subject, body = notify.failure_message(plan, error, ctx.seconds_since(plan))
        _publish(ctx, plan, subject, body, "failed")
        ctx.write_status(plan, state="failed", windows_done=done, error=error, rows=0, **ended)
        metrics.add_metric(name="RunsFailed", unit=MetricUnit.Count, value=1)
    else:
        manifest = commit.commit_run(
            ctx,
            plan,
            keys,
            resumed=resumed,
            last_record=last_record,
            remaining_ms=inv.remaining_ms,
        )
        uri = f"s3://{ctx.settings.bucket_name}/{keys.manifest}"
        subject, body = notify.success_message(plan, manifest, uri)
        at_once(
            # The long-lived copy (the run's own folder expires with the staging).
            lambda: ctx.store.put(keys.history_manifest, json_codec.dumps_pretty(manifest)),
            lambda: _publish(ctx, plan, subject, body, "succeeded"),
        )
        totals = manifest["totals"]
        ctx.write_status(
            plan,
            state="succeeded",
            windows_done=len(plan.windows),
            totals=totals,
            api=manifest["api"],
            rows=totals["rows"],
            finishedAt=manifest["finishedAt"],
            durationSeconds=manifest["durationSeconds"],
            **({"refused": manifest["refused"]} if manifest.get("refused") else {}),
        )
        metrics.add_metric(name="RunsSucceeded", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="RowsExported", unit=MetricUnit.Count, value=totals["rows"])
        metrics.add_metric(name="BytesExported", unit=MetricUnit.Bytes, value=totals["bytes"])
    metrics.add_metric(name="RunDuration", unit=MetricUnit.Seconds, value=duration)
    ctx.store.put_if_absent(keys.notified, json_codec.dumps({"at": ctx.now_iso()}))


def cancel_requested(ctx: RunContext, keys: RunKeys) -> dict[str, Any] | None:
    """The run's cancel request (`wifi-export cancel`), or None (none, or refused)."""
    raw = ctx.store.get(keys.cancel)
    if raw is None:
        return None
    doc = json_codec.loads(raw)
    return doc if isinstance(doc, dict) and doc.get("cancel") is True else None


def _close_cancel_slot(ctx: RunContext, keys: RunKeys, *, failed: bool) -> dict[str, Any] | None:
    """Decide between finishing and a cancel, under the lease and before anything else.

    The cancel object is created by whoever comes first (a conditional put): a
    cancel request from the CLI, or this finisher closing the door on one. The
    finisher that finds a cancel request there returns it (the run ends
    cancelled, nothing is committed); once closed, a cancel is refused and
    the run goes forward (docs/architecture.md, "Cancelling").
    """
    closed = {
        "cancel": False,
        "reason": "the run's failure is being reported" if failed else "commit has begun",
        "at": ctx.now_iso(),
    }
    if ctx.store.put_if_absent(keys.cancel, json_codec.dumps(closed)):
        return None
    return cancel_requested(ctx, keys)


def fail_run(ctx: RunContext, run_id: str, error: str, inv: Invocation) -> None:
    """Mark the run failed (first reason wins) and send its one failure notification."""
    # Where an error enters the run's records: redacted, one line, bounded.
    error = error_text(error)
    plan = ctx.plan(run_id)
    keys = ctx.keys(plan)
    if next(iter(ctx.store.list_keys(keys.lease_prefix)), None) is not None:
        # Finishing has begun (partitions may be half replaced): the run can
        # only go forward. Keep the work alive; the DLQ alarm covers the worst.
        raise TransientError(f"run {run_id} is being committed; not failing it: {error}")
    first = ctx.store.put_if_absent(
        keys.failed, json_codec.dumps({"error": error, "at": ctx.now_iso()})
    )
    logger.error(
        "run failed" if first else "run already failed", extra={"run_id": run_id, "error": error}
    )
    finish_run(ctx, plan, inv)


def _take_lease(ctx: RunContext, keys: RunKeys, inv: Invocation) -> int | None:
    """Take the finishing lease unless a holder's lease is still running: its number,
    or None.

    A lease lasts until its holder's Lambda deadline, after which the next
    number is free; the conditional put decides between two takers.
    """
    now = ctx.clock().timestamp()
    leases = sorted(ctx.store.list_keys(keys.lease_prefix))
    number = 0
    if leases:
        raw = ctx.store.get(leases[-1])
        holder: dict[str, Any] = json_codec.loads(raw) if raw else {"expiresAt": 0}
        if holder["expiresAt"] > now:
            return None
        number = lease_number(leases[-1]) + 1
    expires = now + inv.remaining_ms() / 1000.0
    lease = json_codec.dumps({"holder": inv.holder, "expiresAt": expires})
    return number if ctx.store.put_if_absent(keys.lease(number), lease) else None


def _publish(
    ctx: RunContext, plan: RunPlan, subject: str, body: dict[str, Any], status: str
) -> None:
    message = notify.render(body)  # redacted, and within SNS's message size limit
    ctx.publisher.publish(subject, message, notify.attributes(plan, status))
    logger.info("notification published", extra={"run_id": plan.run_id, "status": status})


def _recorded_error(failed_raw: bytes) -> str:
    """The failure record's error, as the status and the notification show it
    (records written before errors were bounded, or by another writer, included)."""
    return error_text(str(json_codec.loads(failed_raw).get("error")))
