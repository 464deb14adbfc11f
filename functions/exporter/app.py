"""Lambda entry point: wires Powertools and routes the event; the work lives in `exporter`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from exporter import requests, wiring
from exporter.errors import InvalidEvent
from exporter.observability import logger, metrics, traced
from exporter.runs import Invocation
from exporter.service import utc_now

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext


@logger.inject_lambda_context(clear_state=True)
@traced
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    service = wiring.service()
    remaining = context.get_remaining_time_in_millis
    request_inv = Invocation(context.aws_request_id, remaining)
    try:
        kind = requests.classify(event)
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

            def record_handler(record: SQSRecord) -> None:
                receive_count = int(record.attributes.approximate_receive_count or 1)
                service.continue_task(
                    record.body, receive_count, Invocation(record.message_id, remaining)
                )

            return dict(process_partial_response(event, record_handler, processor, context))
        now = utc_now()
        if kind == "scheduled":
            request = requests.parse_scheduled(event, service.settings, now, context.aws_request_id)
        else:
            request = requests.parse_on_demand(event, service.settings, now, context.aws_request_id)
    except InvalidEvent as exc:
        logger.error("invalid event", extra={"error": str(exc)})
        return {"error": "InvalidEvent", "message": str(exc)}
    return service.start(request, request_inv)
