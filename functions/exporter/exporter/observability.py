"""The Powertools objects, created once here and imported wherever they are needed."""

from __future__ import annotations

import logging

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = "wifi-export"

logger = Logger(service=SERVICE)

# At DEBUG, botocore logs whole response bodies (the Secrets Manager answer holds
# the client secret) and signed request headers. Lambda's advanced logging
# controls can set the root logger to DEBUG, so these libraries are held at INFO,
# where they log nothing sensitive, whatever the root level is.
for _library in ("botocore", "boto3", "s3transfer", "urllib3"):
    logging.getLogger(_library).setLevel(logging.INFO)
tracer = Tracer(service=SERVICE)
metrics = Metrics(service=SERVICE, namespace="WifiExport")

__all__ = ["SERVICE", "MetricUnit", "logger", "metrics", "tracer"]
