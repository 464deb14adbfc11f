"""The Powertools objects, created once here and imported wherever they are needed."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

# The stack's ServiceName: its RunsFailed alarm filters on this metric dimension.
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "").strip() or "wifi-export"

logger = Logger(service=SERVICE)

# At DEBUG, botocore logs whole response bodies (the Secrets Manager answer holds
# the client secret) and signed request headers. Lambda's advanced logging
# controls can set the root logger to DEBUG, so these libraries are held at INFO,
# where they log nothing sensitive, whatever the root level is.
for _library in ("botocore", "boto3", "s3transfer", "urllib3"):
    logging.getLogger(_library).setLevel(logging.INFO)
metrics = Metrics(service=SERVICE, namespace="WifiExport")

Handler = TypeVar("Handler", bound=Callable[..., Any])


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


__all__ = ["SERVICE", "MetricUnit", "logger", "metrics", "traced", "tracing_enabled"]
