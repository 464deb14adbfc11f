"""The Powertools objects, created once here and imported wherever they are needed."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = "wifi-export"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace="WifiExport")

__all__ = ["SERVICE", "MetricUnit", "logger", "metrics", "tracer"]
