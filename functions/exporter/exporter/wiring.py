"""The composition root: real adapters for the ports, built once per cold start."""

from __future__ import annotations

import functools

from exporter.api_client import AnalytiksClient
from exporter.aws import S3Store, SnsPublisher, SqsQueue, read_credentials
from exporter.config import Settings, load_settings
from exporter.runs import Exporter
from exporter.service import Service


@functools.cache
def settings() -> Settings:
    return load_settings()


def build_service(config: Settings) -> Service:
    def api() -> AnalytiksClient:
        return AnalytiksClient(
            config.api_url,
            config.token_url,
            config.api_audience,
            lambda: read_credentials(config.secret_id),
        )

    exporter = Exporter(
        config,
        S3Store(config.bucket_name),
        SqsQueue(config.queue_url),
        SnsPublisher(config.topic_arn),
        api,
    )
    return Service(exporter)


@functools.cache
def service() -> Service:
    return build_service(settings())
