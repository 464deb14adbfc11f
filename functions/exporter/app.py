"""Lambda entry point: wires Powertools, parses the event, and hands it to the run protocol."""

from __future__ import annotations

import gc
import os
import sys
from typing import TYPE_CHECKING, Any

from exporter import events, wiring
from exporter.errors import InvalidEvent, OutOfTime
from exporter.observability import logger, metrics, traced
from exporter.redaction import error_text
from exporter.run.context import Invocation
from exporter.run.messages import handle_message, reject
from exporter.run.start import start_runs

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext


# How many modules were loaded when the heap was last frozen (`_freeze_new_modules`).
_frozen_at = [0]


@logger.inject_lambda_context(clear_state=True)
@traced
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        return _route(event, context)
    finally:
        _freeze_new_modules()


def _freeze_new_modules() -> None:
    """Move what is alive into the collector's permanent generation after an
    invocation that imported something.

    What an invocation imports (boto3, clients, Powertools, arro3) lives as long as
    the container, and every full collection, the interpreter's last one included,
    walked all of it again: about 0.1 s of a 2,000-location run's CPU
    (docs/performance.md, "CPU at the floor"). Frozen objects are still freed by
    reference counting; only a cycle frozen while garbage stays, which bounds the
    cost to the few invocations that load modules (a warm container stops loading).
    """
    if len(sys.modules) != _frozen_at[0]:
        gc.freeze()
        _frozen_at[0] = len(sys.modules)


def _route(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    ctx = wiring.context()
    remaining = context.get_remaining_time_in_millis
    try:
        kind = events.classify(event)
        if kind == "sqs":
            # Imported here, not at module level: it is the heaviest Powertools
            # import and the start paths do not need it.
            from aws_lambda_powertools.utilities.batch import (  # noqa: PLC0415
                BatchProcessor,
                EventType,
                process_partial_response,
            )

            processor = BatchProcessor(
                event_type=EventType.SQS, raise_on_entire_batch_failure=False
            )

            # Lambda sets AWS_REGION; a local stand-in may set only the default.
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", "")
            ours = events.queue_arn(ctx.settings.queue_url, region)

            started: list[str] = []

            def record_handler(record: SQSRecord) -> None:
                if started and remaining() < ctx.settings.time_safety_margin_ms:
                    # A later record of a batch (BatchSize above the template's 1)
                    # waits for its redelivery rather than start inside the margin:
                    # untouched, it costs no delivery of the run's own count.
                    logger.info("record left for redelivery: too little time left")
                    raise OutOfTime(f"record {record.message_id}: too little time left")
                started.append(record.message_id)
                if not events.from_queue(record.get("eventSourceARN"), ours):
                    # Sent by whoever may invoke the function, not by SQS: no run is
                    # touched, and the record counts as handled (nothing to redeliver).
                    source = str(record.get("eventSourceARN"))[:160]
                    reject(f"eventSourceARN {source!r} is not this deployment's queue")
                    return
                receive_count = int(record.attributes.approximate_receive_count or 1)
                handle_message(
                    ctx, record.body, receive_count, Invocation(record.message_id, remaining)
                )

            return dict(process_partial_response(event, record_handler, processor, context))
        now = ctx.clock()
        if kind == "scheduled":
            request = events.parse_scheduled(event, ctx.settings, now, context.aws_request_id)
        else:
            request = events.parse_on_demand(event, ctx.settings, now, context.aws_request_id)
    except InvalidEvent as exc:
        # The message may quote the event: one line, bounded (and redacted).
        message = error_text(str(exc))
        # A caller's mistake, answered to the caller: not an error of the function
        # (a healthy night logs INFO only; alarms count ERROR).
        logger.warning("invalid event", extra={"error": message})
        return {"error": "InvalidEvent", "message": message}
    return start_runs(ctx, request, Invocation(context.aws_request_id, remaining))
