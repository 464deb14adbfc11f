"""The Powertools objects, created once here and imported wherever they are needed."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics import MetricUnit

from exporter.redaction import redact, redact_value

if TYPE_CHECKING:
    from exporter.ports import CallStats

# The stack's ServiceName: its RunsFailed alarm filters on this metric dimension.
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "").strip() or "wifi-export"

# Attributes every LogRecord has; anything else on a record is an `extra` field.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
}


class RedactingFilter(logging.Filter):
    """Redacts a record's message and extra fields before any handler sees it
    (ours, and whatever else listens: pytest's capture, a root handler)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, dict):
            record.msg = redact_value(record.msg)
        elif record.args or isinstance(record.msg, str):
            record.msg = redact(record.getMessage())
            record.args = None
        for name, value in list(vars(record).items()):
            if name not in _RECORD_FIELDS:
                setattr(record, name, redact_value(value))
        if record.exc_info and not record.exc_text:
            # Standard formatters print `exc_text` when it is set.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


class RedactingFormatter(LambdaPowertoolsFormatter):
    """The structured log line is redacted whole (message, fields, the exception
    and its stack trace) before it is serialized, so that no secret hides behind
    JSON escaping (docs/reliability.md, "Secrets and hostile answers")."""

    def serialize(self, log: Any) -> str:
        return super().serialize(redact_value(log))


logger = Logger(service=SERVICE, logger_formatter=RedactingFormatter())
logger.addFilter(RedactingFilter())

# At DEBUG, botocore logs whole response bodies (the Secrets Manager answer holds
# the client secret) and signed request headers. Lambda's advanced logging
# controls can set the root logger to DEBUG, so these libraries are held at INFO,
# where they log nothing sensitive, whatever the root level is.
for _library in ("botocore", "boto3", "s3transfer", "urllib3"):
    logging.getLogger(_library).setLevel(logging.INFO)
# The template sets the namespace (POWERTOOLS_METRICS_NAMESPACE) and the log level
# (POWERTOOLS_LOG_LEVEL, which Powertools' Logger reads itself); these are the
# defaults outside Lambda.
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "").strip() or "WifiExport"
metrics = Metrics(service=SERVICE, namespace=NAMESPACE)

Handler = TypeVar("Handler", bound=Callable[..., Any])


def api_metrics(stats: CallStats) -> None:
    """What one step asked of the API, as metrics (each step has its own client).

    The run-level metrics are added where they happen: `Hops` (step), `RunsSucceeded`,
    `RunsFailed`, `RunsCancelled`, `RowsExported`, `BytesExported`, `RunDuration`
    (finish). One dimension only, `service` (the template's dashboard and alarms).
    """
    if not stats.calls:
        return
    metrics.add_metric(name="ApiCalls", unit=MetricUnit.Count, value=stats.calls)
    metrics.add_metric(name="ApiRetries", unit=MetricUnit.Count, value=stats.retries)
    metrics.add_metric(name="ApiThrottles", unit=MetricUnit.Count, value=stats.throttles)
    for latency in list(stats.latencies_ms):
        metrics.add_metric(name="ApiLatency", unit=MetricUnit.Milliseconds, value=latency)


def lake_metric(name: str, value: float, unit: MetricUnit, brand_id: int, basis: str) -> None:
    """A lake coverage metric (exporter.lake.freshness), printed at once, twice: per
    brand and basis (dashboard, drill-down), and with `service` alone, which the
    template's alarms read as the worst brand's (Maximum)."""
    for dimensions in ({"brand_id": str(brand_id), "time_basis": basis}, {}):
        with single_metric(
            name=name,
            unit=unit,
            value=value,
            namespace=NAMESPACE,
            default_dimensions={"service": SERVICE, **dimensions},
        ):
            pass


def tracing_enabled() -> bool:
    return os.environ.get("ENABLE_TRACING", "").strip().lower() in ("1", "true", "yes")


def traced(handler: Handler) -> Handler:
    """Wrap the handler with Powertools Tracer when ENABLE_TRACING is set.

    Opt-in because the X-Ray SDK is the heaviest import of a cold start (about
    as long as the rest of the function together), and a nightly batch export
    gets little from a trace that logs, metrics and the manifest do not show.
    """
    if not tracing_enabled():
        return handler
    from aws_lambda_powertools import Tracer  # noqa: PLC0415

    wrapped: Handler = Tracer(service=SERVICE).capture_lambda_handler(capture_response=False)(
        handler
    )
    return wrapped


__all__ = [
    "NAMESPACE",
    "SERVICE",
    "MetricUnit",
    "api_metrics",
    "lake_metric",
    "logger",
    "metrics",
    "traced",
    "tracing_enabled",
]
